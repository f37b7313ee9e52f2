/*
 * qgemm_avx2.c — int8 GEMM with AVX2. vpmaddubsw would add two u8·s8
 * products into a saturating s16 (255·127·2 overflows), so this kernel
 * widens both sides to s16 and uses vpmaddwd (exact pair sums in s32), then
 * adds the pairs at the end. Bit-exact to mtc_qgemm_scalar.
 *
 * One 16-channel block at a time, 2 rows of A per pass: the block's 64-byte
 * packed weight row (16 channels × 4 k) is widened into 4 ymm of 4 channels
 * × 4 k; accumulators hold 2 partial sums per channel.
 */
#include "mtc.h"

#include <immintrin.h>
#include <string.h>

static inline __m256i bcast4_s16(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4); /* may read up to 3 bytes past K: weights there are 0 */
    return _mm256_cvtepu8_epi16(_mm_set1_epi32(v));
}

/* acc[q] holds channel 4q+j's two partial sums at s32 lanes 2j, 2j+1:
 * hadd + a 64-bit lane permute puts the 8 channel sums of acc[q], acc[q+1]
 * in order. */
static inline __m256i fold_pairs(__m256i x, __m256i y)
{
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(x, y), 0xD8);
}

static inline __attribute__((always_inline)) void block(const uint8_t *A, int lda, const mtc_qweight *w,
                                                        int m0, int MR, int nb, int32_t *C, int ldc)
{
    const int G = w->Kp >> 2;
    const int8_t *wp = w->data + (int64_t)nb * G * 64;
    __m256i acc[2][4];
    #pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
        #pragma GCC unroll 4
        for (int q = 0; q < 4; q++) acc[r][q] = _mm256_setzero_si256();
    for (int g = 0; g < G; g++, wp += 64) {
        __m256i wv[4];
        #pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            wv[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wp + 16 * q)));
        #pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            __m256i a = bcast4_s16(A + (int64_t)(m0 + r) * lda + 4 * g);
            #pragma GCC unroll 4
            for (int q = 0; q < 4; q++) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(a, wv[q]));
        }
    }
    int n0 = nb * 16, left = w->N - n0;
    #pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
        int32_t out[16];
        _mm256_storeu_si256((__m256i *)out, fold_pairs(acc[r][0], acc[r][1]));
        _mm256_storeu_si256((__m256i *)(out + 8), fold_pairs(acc[r][2], acc[r][3]));
        memcpy(C + (int64_t)(m0 + r) * ldc + n0, out, (size_t)(left < 16 ? left : 16) * sizeof(int32_t));
    }
}

void mtc_qgemm_avx2(const uint8_t *A, int lda, const mtc_qweight *w, int M, int32_t *C, int ldc)
{
    int NBLK = w->Np >> 4;
    for (int nb = 0; nb < NBLK; nb++) {
        int m = 0;
        for (; m + 2 <= M; m += 2) block(A, lda, w, m, 2, nb, C, ldc);
        if (m < M) block(A, lda, w, m, 1, nb, C, ldc);
    }
}
