/*
 * sparse.c — pruned fp32 dense layers: the CSR copy of W built at load, the
 * scalar reference kernel (the AVX2/AVX-512 twins in sparse_avx*.c must
 * match it), dispatch, and the sparsity from which the runtime prefers it
 * over sgemm. It is not a general sparse library: W is sparse, X is dense.
 *
 * Y (B, N) = X (B, K)·Wᵀ + b. Two loop orders:
 *  - 1-2 rows: for each row and output n, a gather-dot over n's nonzeros,
 *    y = b[n] + Σ_j val[j]·x[col[j]] (no setup cost);
 *  - a tile of T rows: acc (N, T) starts at the bias; one panel of KP
 *    columns of X at a time is transposed into xt (KP, T) (32 KB), and
 *    for each n and nonzero j of n in the panel, acc[n][0..T) +=
 *    val[j]·xt[col[j] − k0][0..T): one value and one index feed T
 *    multiply-adds over contiguous memory (batch 256, 90% sparse: 114 µs,
 *    where gathering row by row would take 256 × 3.9 µs).
 */
#include "runtime/rt_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

double mtc_sparsity(const float *W, int64_t n)
{
    if (n <= 0) return 0.0;
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++) z += W[i] == 0.0f;
    return (double)z / (double)n;
}

void mtc_csr_free(mtc_csr *s)
{
    free(s->rowptr); free(s->split); free(s->col16); free(s->col32); free(s->val);
    memset(s, 0, sizeof *s);
}

/* Columns per panel: a panel of the transposed tile, KP·MTC_SPMM_TILE
 * floats (32 KB), stays in L1/L2 while every row's nonzeros in it are
 * used. Measured (784×128, batch 256): 256 beats 128 at every sparsity and
 * one panel of all 784 columns by 1.4× at 50% sparsity; wider panels win
 * ~5% from 90%, where the rows' pieces get short. */
#ifndef SPMM_PANEL
#define SPMM_PANEL 256
#endif

static int csr_alloc(mtc_csr *s, int N, int K, int64_t nnz)
{
    size_t cnt = nnz ? (size_t)nnz : 1;
    s->N = N; s->K = K; s->nnz = (int32_t)nnz;
    s->KP = SPMM_PANEL;
    s->P = (K + SPMM_PANEL - 1) / SPMM_PANEL;
    s->rowptr = malloc(((size_t)N + 1) * sizeof(int32_t));
    s->split = malloc((size_t)N * ((size_t)s->P + 1) * sizeof(int32_t));
    s->val = malloc(cnt * sizeof(float));
    if (K < 65536) s->col16 = malloc(cnt * sizeof(uint16_t)); /* a third less index traffic */
    else s->col32 = malloc(cnt * sizeof(int32_t));
    return s->rowptr && s->split && s->val && (s->col16 || s->col32);
}

int mtc_csr_from_dense(mtc_csr *s, const float *W, int N, int K, mtc_err *e)
{
    memset(s, 0, sizeof *s);
    int64_t nnz = 0, n = (int64_t)N * K;
    if (N <= 0 || K <= 0) return mtc_err_set(e, MTC_EINPUT, "csr: bad shape %dx%d", N, K);
    for (int64_t i = 0; i < n; i++) nnz += W[i] != 0.0f;
    if (nnz > INT32_MAX) return mtc_err_set(e, MTC_EINPUT, "csr: %lld nonzeros", (long long)nnz);
    if (!csr_alloc(s, N, K, nnz)) {
        mtc_csr_free(s);
        return mtc_err_set(e, MTC_ENOMEM, "csr: out of memory");
    }
    int32_t j = 0, *split = s->split;
    for (int r = 0; r < N; r++, split += s->P + 1) {
        s->rowptr[r] = j;
        for (int k = 0; k < K; k++) {
            if (k % s->KP == 0) split[k / s->KP] = j;
            float v = W[(int64_t)r * K + k];
            if (v == 0.0f) continue;
            s->val[j] = v;
            if (s->col16) s->col16[j] = (uint16_t)k;
            else s->col32[j] = k;
            j++;
        }
        split[s->P] = j;
    }
    s->rowptr[N] = j;
    return 0;
}

/* acc (N, TILE) then one panel of the tile (KP, TILE), from the first
 * 64-byte boundary (rt_align64). */
int64_t mtc_spmm_scratch_floats(const mtc_csr *W) { return ((int64_t)W->N + W->KP) * MTC_SPMM_TILE + 16; }

void rt_spmm_tile_store(const float *acc, int T, int rows, int N, int relu, float *Y)
{
    for (int i = 0; i < rows; i++)
        for (int n = 0; n < N; n++) Y[(int64_t)i * N + n] = rt_relu_if(acc[(int64_t)n * T + i], relu);
}

/* Σ_j val[j]·x[col[j]] over row n, four partial sums (latency, not order). */
static float row_dot(const float *x, const mtc_csr *W, int n)
{
    float s[4] = {0, 0, 0, 0};
    int32_t j = W->rowptr[n], end = W->rowptr[n + 1];
    if (W->col16)
        for (; j < end; j++) s[j & 3] += W->val[j] * x[W->col16[j]];
    else
        for (; j < end; j++) s[j & 3] += W->val[j] * x[W->col32[j]];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Scalar tile width: a fixed 16 floats, so the compiler can vectorize the
 * inner loop for whatever ISA it targets. */
#define TS 16

/* Columns [0, kw) of `rows` rows of X (row stride ldx) -> xt (kw, TS), rows
 * past `rows` zero. */
static void transpose_tile(float *xt, const float *X, int64_t ldx, int rows, int kw)
{
    for (int k = 0; k < kw; k++)
        for (int i = 0; i < TS; i++) xt[(int64_t)k * TS + i] = i < rows ? X[i * ldx + k] : 0.0f;
}

/* acc[n][0..TS) += Σ over row n's nonzeros in panel p of val·xt[col − k0]. */
static void panel_scalar(float *acc, const float *xt, const mtc_csr *W, int p)
{
    int k0 = p * W->KP;
    const int32_t *split = W->split + p;
    for (int n = 0; n < W->N; n++, split += W->P + 1) {
        float a[TS]; /* a local copy: acc and xt share the scratch, which would keep the loop scalar */
        memcpy(a, acc + (int64_t)n * TS, sizeof a);
        for (int32_t j = split[0]; j < split[1]; j++) {
            float v = W->val[j];
            const float *x = xt + (int64_t)(rt_csr_col(W, j) - k0) * TS;
            for (int i = 0; i < TS; i++) a[i] += v * x[i];
        }
        memcpy(acc + (int64_t)n * TS, a, sizeof a);
    }
}

static void tile_scalar(const float *X, int rows, const mtc_csr *W, const float *bias, int relu, float *Y,
                        float *scratch)
{
    int N = W->N, K = W->K;
    float *acc = rt_align64(scratch), *xt = acc + (int64_t)N * TS;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < TS; i++) acc[(int64_t)n * TS + i] = bias ? bias[n] : 0.0f;
    for (int p = 0; p < W->P; p++) {
        int k0 = p * W->KP, kw = K - k0 < W->KP ? K - k0 : W->KP;
        transpose_tile(xt, X + k0, K, rows, kw);
        panel_scalar(acc, xt, W, p);
    }
    rt_spmm_tile_store(acc, TS, rows, N, relu, Y);
}

/* Tiles of TS rows; the last 1-2 rows row by row (where a padded tile costs
 * more than the gathers). */
void mtc_spmm_scalar(const float *X, int B, const mtc_csr *W, const float *bias, int relu, float *Y,
                     float *scratch)
{
    int K = W->K, N = W->N, b = 0;
    for (int rows; B - b >= 3; b += rows) {
        rows = B - b < TS ? B - b : TS;
        tile_scalar(X + (int64_t)b * K, rows, W, bias, relu, Y + (int64_t)b * N, scratch);
    }
    for (; b < B; b++)
        for (int n = 0; n < N; n++)
            Y[(int64_t)b * N + n] = rt_relu_if(row_dot(X + (int64_t)b * K, W, n) + (bias ? bias[n] : 0.0f), relu);
}

mtc_spmm_fn mtc_spmm_get(int isa)
{
    if (!mtc_qgemm_isa_supported(isa)) isa = mtc_qgemm_isa();
    return isa == MTC_ISA_AVX512 ? mtc_spmm_avx512 : isa == MTC_ISA_AVX2 ? mtc_spmm_avx2 : mtc_spmm_scalar;
}

/* The measured crossovers (bench_infer sparse, K = 784, N = 128, AVX-512
 * kernels on a 2-core AMD EPYC, docs/prune.md), rounded up to 0.05:
 * from this sparsity the sparse kernel beats the runtime's dense path (its
 * packed GEMM at every batch size) at up to b_max rows per call. Measured
 * 2026-12-02 for 1-8 rows: 0.93 at 1, 0.91 at 2 and 4 (the GEMM's blocks of
 * 3 and 4 rows cost the same), 0.85 at 5, 0.86 at 6, 0.71 at 8; earlier
 * 0.52 at 16, 0.38 at 32 and 256. The last entry is the lowest: a CSR is
 * built from there. */
static const struct { int b_max; double min; } crossover[] = {
    {4, 0.95}, {7, 0.90}, {15, 0.80}, {31, 0.55}, {INT_MAX, 0.40},
};

double mtc_sparse_crossover(int B)
{
    int i = 0;
    while (B > crossover[i].b_max) i++;
    return crossover[i].min;
}
