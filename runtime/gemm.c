/*
 * gemm.c — the fp32 GEMM of the runtime's dense layers and of the Winograd
 * planes: packing a dense layer's weights into 16-column panels, and the
 * scalar twin of the AVX2 kernel (gemm_avx2.c).
 *
 * Why not OpenBLAS here: sgemm packs both operands on every call. For a
 * dense layer at inference the weights never change, so mtc packs them once
 * at load; the activations are read in place. At the student's shape
 * (256 × 784 → 128) OpenBLAS spends 17% of its time in its two copy
 * routines when the batch comes from memory; the panel kernel reads X
 * straight from its rows (docs/internals.md has the figures).
 */
#include "mtc.h"

int64_t mtc_gemm_pack_floats(int N, int K) { return (int64_t)K * ((N + 15) & ~15); }

/* P[n/16][k][n%16] = W[n][k], zero past N */
void mtc_gemm_pack(float *P, const float *W, int N, int K)
{
    for (int n0 = 0; n0 < N; n0 += 16)
        for (int k = 0; k < K; k++) {
            float *p = P + (int64_t)n0 * K + (int64_t)k * 16;
            for (int j = 0; j < 16; j++) p[j] = n0 + j < N ? W[(int64_t)(n0 + j) * K + k] : 0.0f;
        }
}

void mtc_gemm_scalar(float *Y, int64_t ldy, const float *X, int64_t ldx, int M, const mtc_gemm_w *W,
                     const float *bias, int relu)
{
    const int N = W->N, K = W->K;
    for (int i = 0; i < M; i++) {
        float *y = Y + i * ldy;
        const float *x = X + i * ldx;
        for (int n0 = 0; n0 < N; n0 += 16) {
            int64_t ld;
            const float *w = mtc_gemm_col(W, n0, &ld);
            int nc = N - n0 < 16 ? N - n0 : 16;
            float acc[16] = {0};
            for (int k = 0; k < K; k++)
                for (int j = 0; j < nc; j++) acc[j] += x[k] * w[k * ld + j];
            for (int j = 0; j < nc; j++) {
                float v = bias ? acc[j] + bias[n0 + j] : acc[j];
                y[n0 + j] = relu && !(v > 0.0f) ? 0.0f : v;
            }
        }
    }
}
