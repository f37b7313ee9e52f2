/*
 * gemm_avx2.c — the AVX2 twin of mtc_gemm_scalar (gemm.c). Register block:
 * 6 rows × 16 columns (12 accumulators); per k 2 loads of W, 6 broadcasts
 * of X, 12 FMAs. It runs at 114-116 GFLOP/s on this machine's 116 GFLOP/s
 * FMA peak (docs/internals.md). Columns beyond a multiple of 16 go 8 at a
 * time; the last N % 8 go as a masked 8 on packed W (its panels are
 * zero-padded), one by one on row-major W. Rows go 6 at a time, the last
 * ones as blocks of 4 or 3 (rows_next). A block past row M re-reads the
 * last valid row (computed, not stored), so nothing past row M is read.
 * A batch of one row goes 64 columns at a time (row1x64). Every output is
 * the same chain of FMAs whichever block computes it, so a row's values do
 * not depend on M.
 */
#include "mtc.h"

#include <immintrin.h>
#include <string.h>

static inline __m256 epilogue(__m256 v, const float *bias, int relu)
{
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
    return relu ? _mm256_max_ps(v, _mm256_setzero_ps()) : v;
}

/* The first nt rows of accumulators r (8·V columns per row; of 8 columns
 * the first nc stored), + bias, relu. */
static inline __attribute__((always_inline)) void store_rows(const int V, float *Y, int64_t ldy, __m256 (*r)[2],
                                                             int nt, int nc, const float *bias, int relu)
{
    float b[8] = {0}; /* a partial block's bias, read only as far as it goes */
    if (bias && V == 1 && nc < 8) memcpy(b, bias, (size_t)nc * sizeof *b), bias = b;
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int i = 0; i < nt; i++, Y += ldy)
        for (int v = 0; v < V; v++) {
            __m256 o = epilogue(r[i][v], bias ? bias + 8 * v : NULL, relu);
            if (V == 2 || nc == 8) _mm256_storeu_ps(Y + 8 * v, o);
            else _mm256_maskstore_ps(Y, mask, o);
        }
}

/* One row of the k loop: broadcast x_i[k], FMA into r_i0 (and r_i1). */
#define ROW(i)                                                      \
    a = _mm256_broadcast_ss(x##i + k);                              \
    r##i##0 = _mm256_fmadd_ps(a, u0, r##i##0);                      \
    if (V == 2) r##i##1 = _mm256_fmadd_ps(a, u1, r##i##1);

/* With few rows GCC folds the W loads into each FMA (2 loads per row, 12
 * per k for 4 rows: the load ports, not the FMAs, set the pace); this
 * keeps them in registers. */
#define W_IN_REGISTERS __asm__("" : "+x"(u0), "+x"(u1));

/* 6 rows × 8·V columns. Named accumulators: an array of them spilled to the
 * stack (half speed). */
static inline __attribute__((always_inline)) void block6(const int V, float *Y, int64_t ldy, const float *const *x,
                                                         int K, const float *w, int64_t ld, int nt, int nc,
                                                         const float *bias, int relu)
{
    __m256 r00 = _mm256_setzero_ps(), r01 = r00, r10 = r00, r11 = r00, r20 = r00, r21 = r00, r30 = r00,
           r31 = r00, r40 = r00, r41 = r00, r50 = r00, r51 = r00;
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3], *x4 = x[4], *x5 = x[5];
    for (int k = 0; k < K; k++, w += ld) {
        __m256 u0 = _mm256_loadu_ps(w), u1 = V == 2 ? _mm256_loadu_ps(w + 8) : u0, a;
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
    }
    __m256 r[6][2] = {{r00, r01}, {r10, r11}, {r20, r21}, {r30, r31}, {r40, r41}, {r50, r51}};
    store_rows(V, Y, ldy, r, nt, nc, bias, relu);
}

/* 4 rows × 8·V columns */
static inline __attribute__((always_inline)) void block4(const int V, float *Y, int64_t ldy, const float *const *x,
                                                         int K, const float *w, int64_t ld, int nt, int nc,
                                                         const float *bias, int relu)
{
    __m256 r00 = _mm256_setzero_ps(), r01 = r00, r10 = r00, r11 = r00, r20 = r00, r21 = r00, r30 = r00,
           r31 = r00;
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    for (int k = 0; k < K; k++, w += ld) {
        __m256 u0 = _mm256_loadu_ps(w), u1 = V == 2 ? _mm256_loadu_ps(w + 8) : u0, a;
        W_IN_REGISTERS
        ROW(0) ROW(1) ROW(2) ROW(3)
    }
    __m256 r[4][2] = {{r00, r01}, {r10, r11}, {r20, r21}, {r30, r31}};
    store_rows(V, Y, ldy, r, nt, nc, bias, relu);
}

/* 3 rows × 8·V columns */
static inline __attribute__((always_inline)) void block3(const int V, float *Y, int64_t ldy, const float *const *x,
                                                         int K, const float *w, int64_t ld, int nt, int nc,
                                                         const float *bias, int relu)
{
    __m256 r00 = _mm256_setzero_ps(), r01 = r00, r10 = r00, r11 = r00, r20 = r00, r21 = r00;
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2];
    for (int k = 0; k < K; k++, w += ld) {
        __m256 u0 = _mm256_loadu_ps(w), u1 = V == 2 ? _mm256_loadu_ps(w + 8) : u0, a;
        W_IN_REGISTERS
        ROW(0) ROW(1) ROW(2)
    }
    __m256 r[3][2] = {{r00, r01}, {r10, r11}, {r20, r21}};
    store_rows(V, Y, ldy, r, nt, nc, bias, relu);
}

/* One row × 64 columns (four 16-column panels, 8 accumulators): batch 1.
 * A row in block6 keeps 2 FMA chains per k step and waits on their latency;
 * here 8 chains run side by side. Each output is still fma over k = 0..K-1
 * from 0, then + bias, relu: the same bits as in any other block. */
static void row1x64(float *y, const float *x, int K, const float *const *w, int64_t ld, const float *bias, int relu)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    for (int k = 0; k < K; k++, w0 += ld, w1 += ld, w2 += ld, w3 += ld) {
        __m256 b = _mm256_broadcast_ss(x + k);
        a0 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w0), a0);
        a1 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w0 + 8), a1);
        a2 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w1), a2);
        a3 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w1 + 8), a3);
        a4 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w2), a4);
        a5 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w2 + 8), a5);
        a6 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w3), a6);
        a7 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w3 + 8), a7);
    }
    __m256 r[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    for (int v = 0; v < 8; v++) _mm256_storeu_ps(y + 8 * v, epilogue(r[v], bias ? bias + 8 * v : NULL, relu));
}

typedef void (*block_fn)(float *Y, int64_t ldy, const float *const *x, int K, const float *w, int64_t ld, int nt,
                         int nc, const float *bias, int relu);
#define BLOCK(name, R, V)                                                                                       \
    static void name(float *Y, int64_t ldy, const float *const *x, int K, const float *w, int64_t ld, int nt, \
                     int nc, const float *bias, int relu)                                                      \
    {                                                                                                          \
        block##R(V, Y, ldy, x, K, w, ld, nt, nc, bias, relu);                                                  \
    }
BLOCK(block6x16, 6, 2)
BLOCK(block6x8, 6, 1)
BLOCK(block4x16, 4, 2)
BLOCK(block4x8, 4, 1)
BLOCK(block3x16, 3, 2)
BLOCK(block3x8, 3, 1)

/* Row block heights: 6 while that leaves 0 or ≥ 3 rows (or 5 are left);
 * then 4 and 3 so that at most one computed row is wasted past M ≥ 3 */
static int rows_next(int left) { return left == 4 || left == 7 || left == 8 ? 4 : left <= 3 ? 3 : 6; }

void mtc_gemm_avx2(float *Y, int64_t ldy, const float *X, int64_t ldx, int M, const mtc_gemm_w *W,
                   const float *bias, int relu)
{
    static const block_fn b16[7] = {[3] = block3x16, [4] = block4x16, [6] = block6x16},
                          b8[7] = {[3] = block3x8, [4] = block4x8, [6] = block6x8};
    const int N = W->N, K = W->K;
    int n1 = 0; /* batch 1: whole 64-column groups by row1x64, the rest below */
    if (M == 1)
        for (; n1 + 64 <= N; n1 += 64) {
            const float *w[4];
            int64_t ld;
            for (int j = 0; j < 4; j++) w[j] = mtc_gemm_col(W, n1 + 16 * j, &ld);
            row1x64(Y + n1, X, K, w, ld, bias ? bias + n1 : NULL, relu);
        }
    for (int t = 0, h; t < M; t += h) {
        h = rows_next(M - t);
        int nt = M - t < h ? M - t : h, n = n1;
        const float *x[6];
        for (int i = 0; i < 6; i++) x[i] = X + (t + (i < nt ? i : nt - 1)) * ldx;
        float *y = Y + t * ldy;
        int64_t ld;
        const float *w;
        for (; n + 16 <= N; n += 16) {
            w = mtc_gemm_col(W, n, &ld);
            b16[h](y + n, ldy, x, K, w, ld, nt, 16, bias ? bias + n : NULL, relu);
        }
        for (; n + 8 <= N || (W->packed && n < N); n += 8) { /* packed panels are zero-padded */
            w = mtc_gemm_col(W, n, &ld);
            b8[h](y + n, ldy, x, K, w, ld, nt, N - n < 8 ? N - n : 8, bias ? bias + n : NULL, relu);
        }
        for (; n < N; n++) { /* row-major W: the last N % 8 columns */
            w = mtc_gemm_col(W, n, &ld);
            for (int i = 0; i < nt; i++) {
                float sum = 0.0f;
                for (int k = 0; k < K; k++) sum += x[i][k] * w[k * ld];
                if (bias) sum += bias[n];
                y[i * ldy + n] = relu && !(sum > 0.0f) ? 0.0f : sum;
            }
        }
    }
}
