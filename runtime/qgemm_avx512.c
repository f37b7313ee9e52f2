/*
 * qgemm_avx512.c — int8 GEMM with AVX-512 VNNI: vpdpbusd multiplies 4 u8
 * activations by 4 s8 weights per 32-bit lane and adds the 4 products (exact
 * in s16, no saturation) to an s32 accumulator. Bit-exact to
 * mtc_qgemm_scalar: integer sums, only the order differs.
 *
 * Tile: MR rows of A × NB blocks of 16 channels (up to 4 × 4 = 16 zmm
 * accumulators). Per k-group of 4: one 64-byte packed weight row per block,
 * A's 4 bytes broadcast per row.
 */
#include "mtc.h"

#include <immintrin.h>
#include <string.h>

static inline __m512i bcast4(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4); /* may read up to 3 bytes past K: weights there are 0 */
    return _mm512_set1_epi32(v);
}

static inline __attribute__((always_inline)) void tile(const uint8_t *A, int lda, const mtc_qweight *w,
                                                       int m0, int nb0, int MR, int NB, int32_t *C,
                                                       int ldc)
{
    const int G = w->Kp >> 2;
    __m512i acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) acc[r][b] = _mm512_setzero_si512();
    const int8_t *wp[4];
    #pragma GCC unroll 4
    for (int b = 0; b < NB; b++) wp[b] = w->data + (int64_t)(nb0 + b) * G * 64;
    const uint8_t *ap[4];
    #pragma GCC unroll 4
    for (int r = 0; r < MR; r++) ap[r] = A + (int64_t)(m0 + r) * lda;
    for (int g = 0; g < G; g++) {
        __m512i wv[4];
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) wv[b] = _mm512_load_si512((const void *)(wp[b] + (int64_t)g * 64));
        #pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            __m512i a = bcast4(ap[r] + 4 * g);
            #pragma GCC unroll 4
            for (int b = 0; b < NB; b++) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], a, wv[b]);
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
        #pragma GCC unroll 4
        for (int b = 0; b < NB; b++) {
            int n0 = (nb0 + b) * 16, left = w->N - n0;
            int32_t *dst = C + (int64_t)(m0 + r) * ldc + n0;
            if (left >= 16) _mm512_storeu_si512((void *)dst, acc[r][b]);
            else _mm512_mask_storeu_epi32(dst, (__mmask16)((1u << left) - 1), acc[r][b]);
        }
}

#define TILE_NB(MR_)                                                              \
    switch (nb) {                                                                 \
    case 4: tile(A, lda, w, m, b0, MR_, 4, C, ldc); break;                        \
    case 3: tile(A, lda, w, m, b0, MR_, 3, C, ldc); break;                        \
    case 2: tile(A, lda, w, m, b0, MR_, 2, C, ldc); break;                        \
    default: tile(A, lda, w, m, b0, MR_, 1, C, ldc); break;                       \
    }

void mtc_qgemm_avx512(const uint8_t *A, int lda, const mtc_qweight *w, int M, int32_t *C, int ldc)
{
    int NBLK = w->Np >> 4;
    for (int b0 = 0; b0 < NBLK; b0 += 4) {
        int nb = NBLK - b0 < 4 ? NBLK - b0 : 4;
        int m = 0;
        for (; m + 4 <= M; m += 4) TILE_NB(4)
        switch (M - m) {
        case 3: TILE_NB(3) break;
        case 2: TILE_NB(2) break;
        case 1: TILE_NB(1) break;
        default: break;
        }
    }
}
