/*
 * sparse_tile.h — the tile kernel of the sparse runtime, written once for
 * the AVX2 and AVX-512 twins (runtime/sparse_avx2.c, sparse_avx512.c). The
 * including file defines the vector: SPT_L floats of type SPT_V and
 * SPT_LOAD/STORE (aligned), SPT_ZERO, SPT_SET1, SPT_FMA, SPT_ADD; it gets
 * static panel_q and tile_q (Q registers per nonzero, tiles of SPT_L·Q rows).
 */
#ifndef MTC_SPARSE_TILE_H
#define MTC_SPARSE_TILE_H

/* acc[n][0..LQ) += Σ over row n's nonzeros in panel p of val·xt[col − k0]:
 * Q registers of L rows per nonzero, 8/Q nonzeros in flight (8 chains).
 * Inlined with a constant Q, so a[] lives in registers. */
static inline __attribute__((always_inline)) void panel_q(float *acc, const float *xt, const mtc_csr *W, int p,
                                                           const int Q)
{
    const int U = 8 / Q, T = SPT_L * Q;
    int k0 = p * W->KP;
    const int32_t *split = W->split + p;
    for (int n = 0; n < W->N; n++, split += W->P + 1) {
        int32_t j = split[0], end = split[1];
        if (j == end) continue;
        float *ac = acc + (int64_t)n * T;
        SPT_V a[8];
        for (int c = 0; c < 8; c++) a[c] = c < Q ? SPT_LOAD(ac + SPT_L * c) : SPT_ZERO();
        for (; j + U <= end; j += U)
            for (int u = 0; u < U; u++) {
                SPT_V v = SPT_SET1(W->val[j + u]);
                const float *x = xt + (int64_t)(rt_csr_col(W, j + u) - k0) * T;
                for (int q = 0; q < Q; q++)
                    a[u * Q + q] = SPT_FMA(v, SPT_LOAD(x + SPT_L * q), a[u * Q + q]);
            }
        for (; j < end; j++) { /* a[] with a variable index would live on the stack */
            SPT_V v = SPT_SET1(W->val[j]);
            const float *x = xt + (int64_t)(rt_csr_col(W, j) - k0) * T;
            for (int q = 0; q < Q; q++) a[q] = SPT_FMA(v, SPT_LOAD(x + SPT_L * q), a[q]);
        }
        for (int q = 0; q < Q; q++) {
            for (int u = 1; u < U; u++) a[q] = SPT_ADD(a[q], a[u * Q + q]);
            SPT_STORE(ac + SPT_L * q, a[q]);
        }
    }
}

/* Up to LQ rows of X: transposed one panel at a time into the aligned
 * scratch, sums in acc (N, LQ) starting from the bias. */
static inline __attribute__((always_inline)) void tile_q(const float *X, int rows, const mtc_csr *W,
                                                          const float *bias, int relu, float *Y, float *scratch,
                                                          const int Q)
{
    const int T = SPT_L * Q;
    int N = W->N, K = W->K;
    float *acc = rt_align64(scratch), *xt = acc + (int64_t)N * T;
    for (int n = 0; n < N; n++) {
        SPT_V b = SPT_SET1(bias ? bias[n] : 0.0f);
        for (int q = 0; q < Q; q++) SPT_STORE(acc + (int64_t)n * T + SPT_L * q, b);
    }
    for (int p = 0; p < W->P; p++) {
        int k0 = p * W->KP, kw = K - k0 < W->KP ? K - k0 : W->KP;
        rt_spmm_transpose_avx2(xt, X + k0, K, rows, kw, T);
        panel_q(acc, xt, W, p, Q);
    }
    rt_spmm_tile_store(acc, T, rows, N, relu, Y);
}

#endif
