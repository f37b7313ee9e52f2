/*
 * sparse_avx512.c — the AVX-512 twin of mtc_spmm_scalar (runtime/sparse.c):
 * tiles of 32 (or 16) batch rows, 2 (or 1) registers per nonzero; single
 * rows go to the AVX2 gathers. Sums are grouped differently from the
 * scalar twin: equal to rounding, not to the bit.
 */
#include "runtime/rt_internal.h"

#include <immintrin.h>

/* acc[n][0..16Q) += Σ over row n's nonzeros in panel p of val·xt[col − k0]:
 * Q registers of 16 rows per nonzero, 8/Q nonzeros in flight (8 chains).
 * Inlined with a constant Q, so a[] lives in registers. */
static inline __attribute__((always_inline)) void panel_q(float *acc, const float *xt, const mtc_csr *W, int p,
                                                           const int Q)
{
    const int U = 8 / Q, T = 16 * Q;
    int k0 = p * W->KP;
    const int32_t *split = W->split + p;
    for (int n = 0; n < W->N; n++, split += W->P + 1) {
        int32_t j = split[0], end = split[1];
        if (j == end) continue;
        float *ac = acc + (int64_t)n * T;
        __m512 a[8];
        for (int c = 0; c < 8; c++) a[c] = c < Q ? _mm512_load_ps(ac + 16 * c) : _mm512_setzero_ps();
        for (; j + U <= end; j += U)
            for (int u = 0; u < U; u++) {
                __m512 v = _mm512_set1_ps(W->val[j + u]);
                const float *x = xt + (int64_t)(rt_csr_col(W, j + u) - k0) * T;
                for (int q = 0; q < Q; q++)
                    a[u * Q + q] = _mm512_fmadd_ps(v, _mm512_load_ps(x + 16 * q), a[u * Q + q]);
            }
        for (; j < end; j++) { /* a[] with a variable index would live on the stack */
            __m512 v = _mm512_set1_ps(W->val[j]);
            const float *x = xt + (int64_t)(rt_csr_col(W, j) - k0) * T;
            for (int q = 0; q < Q; q++) a[q] = _mm512_fmadd_ps(v, _mm512_load_ps(x + 16 * q), a[q]);
        }
        for (int q = 0; q < Q; q++) {
            for (int u = 1; u < U; u++) a[q] = _mm512_add_ps(a[q], a[u * Q + q]);
            _mm512_store_ps(ac + 16 * q, a[q]);
        }
    }
}

/* Up to 16Q rows of X: transposed one panel at a time into the aligned
 * scratch, sums in acc (N, 16Q) starting from the bias. */
static inline __attribute__((always_inline)) void tile_q(const float *X, int rows, const mtc_csr *W,
                                                          const float *bias, int relu, float *Y, float *scratch,
                                                          const int Q)
{
    const int T = 16 * Q;
    int N = W->N, K = W->K;
    float *acc = rt_align64(scratch), *xt = acc + (int64_t)N * T;
    for (int n = 0; n < N; n++) {
        __m512 b = _mm512_set1_ps(bias ? bias[n] : 0.0f);
        for (int q = 0; q < Q; q++) _mm512_store_ps(acc + (int64_t)n * T + 16 * q, b);
    }
    for (int p = 0; p < W->P; p++) {
        int k0 = p * W->KP, kw = K - k0 < W->KP ? K - k0 : W->KP;
        rt_spmm_transpose_avx2(xt, X + k0, K, rows, kw, T);
        panel_q(acc, xt, W, p, Q);
    }
    rt_spmm_tile_store(acc, T, rows, N, relu, Y);
}

static void tile16(const float *X, int rows, const mtc_csr *W, const float *bias, int relu, float *Y, float *s)
{
    tile_q(X, rows, W, bias, relu, Y, s, 1);
}

static void tile32(const float *X, int rows, const mtc_csr *W, const float *bias, int relu, float *Y, float *s)
{
    tile_q(X, rows, W, bias, relu, Y, s, 2);
}

/* rt_spmm_tiled_avx2 with 16-wide tiles. Row by row it uses the AVX2
 * gathers: on the AMD EPYC it was measured on, 8-wide gathers beat 16-wide
 * ones (batch 1 at 95% sparse: 2.1 against 2.8 µs). */
void mtc_spmm_avx512(const float *X, int B, const mtc_csr *W, const float *bias, int relu, float *Y,
                     float *scratch)
{
    rt_spmm_tiled_avx2(X, B, W, bias, relu, Y, scratch, tile32, tile16);
}
