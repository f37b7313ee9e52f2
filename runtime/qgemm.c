/*
 * qgemm.c — the int8 GEMM reference (the scalar twin of qgemm_avx2.c and
 * qgemm_avx512.c) and the weight packing every kernel shares. The choice of
 * kernel at run time is isa.c's.
 *
 * C (M,N) s32 = A (M,K) u8 · Wᵀ, W (N,K) s8. The scalar kernel is the
 * specification: the AVX2 and AVX-512 VNNI kernels must give the same bits
 * (integer sums are exact; K ≤ 65536 keeps |C| < 2^31).
 *
 * Packed layout [N/16][K/4][16][4]: for channel block nb, k-group g, lane j,
 * byte i -> W[16·nb + j][4·g + i]; padding (n ≥ N or k ≥ K) is 0, so kernels
 * may read A past K (the products are 0).
 */
#include "mtc.h"

#include <stdlib.h>
#include <string.h>

static inline int64_t packed_index(const mtc_qweight *w, int n, int k)
{
    return ((int64_t)((n >> 4) * (w->Kp >> 2) + (k >> 2)) * 16 + (n & 15)) * 4 + (k & 3);
}

int mtc_qweight_pack(mtc_qweight *w, const int8_t *W, int N, int K, mtc_err *e)
{
    memset(w, 0, sizeof *w);
    if (N <= 0 || K <= 0 || K > 65536)
        return mtc_err_set(e, MTC_EINPUT, "int8 layer %dx%d: K must be in [1, 65536]", N, K);
    w->N = N; w->K = K;
    w->Np = (N + 15) & ~15;
    w->Kp = (K + 3) & ~3;
    w->data = aligned_alloc(64, (size_t)w->Np * (size_t)w->Kp);
    if (!w->data) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    memset(w->data, 0, (size_t)w->Np * (size_t)w->Kp);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) w->data[packed_index(w, n, k)] = W[(int64_t)n * K + k];
    return 0;
}

void mtc_qweight_free(mtc_qweight *w)
{
    free(w->data);
    memset(w, 0, sizeof *w);
}

void mtc_qgemm_scalar(const uint8_t *A, int lda, const mtc_qweight *w, int M, int32_t *C, int ldc)
{
    int G = w->Kp >> 2;
    for (int m = 0; m < M; m++) {
        const uint8_t *a = A + (int64_t)m * lda;
        for (int nb = 0; nb < w->Np >> 4; nb++) {
            int32_t acc[16] = {0};
            const int8_t *wp = w->data + (int64_t)nb * G * 64;
            for (int g = 0; g < G; g++, wp += 64)
                for (int i = 0; i < 4; i++) {
                    int k = 4 * g + i;
                    if (k >= w->K) break;
                    int32_t av = a[k];
                    for (int j = 0; j < 16; j++) acc[j] += av * wp[j * 4 + i];
                }
            int n0 = nb * 16, nn = w->N - n0 < 16 ? w->N - n0 : 16;
            memcpy(C + (int64_t)m * ldc + n0, acc, (size_t)nn * sizeof(int32_t));
        }
    }
}
