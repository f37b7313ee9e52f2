/*
 * gemm_avx512.c — the AVX-512 twin of mtc_gemm_avx2 (gemm_avx2.c) for
 * packed weights. Register block: 6 rows × 64 columns (four 16-column
 * panels, 24 zmm accumulators); per k 4 loads of W, 6 broadcasts of X, 24
 * FMAs, so the two FMA ports, not the loads, set the pace. Narrower column
 * groups go 32 and 16 at a time (a partial last panel is zero-padded in the
 * packing and stored under a mask); rows go 6 at a time, the last ones as
 * blocks of 4 or 3 exactly as in the AVX2 kernel (a block past row M
 * re-reads the last valid row: computed, not stored). A batch of one row
 * goes 128 columns at a time (8 chains in flight).
 *
 * Every output is fma(x[k], w[k], acc) for k = 0..K-1 from 0, then + bias,
 * then max(·, 0) for relu: the same chain as the AVX2 kernel's, so the two
 * give the same bits (tests/test_layers.c checks it), and a row's values do
 * not depend on M. Row-major weights go to the AVX2 kernel, and so do 64 to
 * 127 columns left over at batch 1 (its row1x64 keeps 8 chains in flight).
 */
#include "mtc.h"

#include <immintrin.h>

static inline __m512 epilogue(__m512 v, const float *bias, int relu, __mmask16 m)
{
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias));
    return relu ? _mm512_max_ps(v, _mm512_setzero_ps()) : v;
}

/* nc (1..16) valid columns of a 16-column panel */
static inline __mmask16 cols_mask(int nc) { return (__mmask16)(nc >= 16 ? 0xffff : (1u << nc) - 1); }

/* The first nt rows of r (16·V columns each; the last panel's first nc
 * columns stored), + bias, relu. */
static inline __attribute__((always_inline)) void store_rows(const int V, float *Y, int64_t ldy, __m512 (*r)[4],
                                                             int nt, int nc, const float *bias, int relu)
{
    for (int i = 0; i < nt; i++, Y += ldy)
        for (int v = 0; v < V; v++) {
            __mmask16 m = v == V - 1 ? cols_mask(nc) : 0xffff;
            _mm512_mask_storeu_ps(Y + 16 * v, m, epilogue(r[i][v], bias ? bias + 16 * v : NULL, relu, m));
        }
}

/* one row of the k loop: broadcast x_i[k], FMA into r_i0..r_i(V-1) */
#define ROW(i)                                                         \
    a = _mm512_set1_ps(x##i[k]);                                       \
    r##i##0 = _mm512_fmadd_ps(a, u0, r##i##0);                         \
    if (V > 1) r##i##1 = _mm512_fmadd_ps(a, u1, r##i##1);              \
    if (V > 2) r##i##2 = _mm512_fmadd_ps(a, u2, r##i##2);              \
    if (V > 3) r##i##3 = _mm512_fmadd_ps(a, u3, r##i##3);

#define ACC(i) __m512 r##i##0 = _mm512_setzero_ps(), r##i##1 = r##i##0, r##i##2 = r##i##0, r##i##3 = r##i##0;
#define ROWS_OUT(i) {r##i##0, r##i##1, r##i##2, r##i##3}

/* R (6, 4 or 3) rows × 16·V columns; panels w[0..V-1], 16 floats per k */
static inline __attribute__((always_inline)) void block(const int R, const int V, float *Y, int64_t ldy,
                                                        const float *const *x, int K, const float *const *w, int nt,
                                                        int nc, const float *bias, int relu)
{
    ACC(0) ACC(1) ACC(2) ACC(3) ACC(4) ACC(5)
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3], *x4 = x[4], *x5 = x[5];
    const float *w0 = w[0], *w1 = w[V > 1 ? 1 : 0], *w2 = w[V > 2 ? 2 : 0], *w3 = w[V > 3 ? 3 : 0];
    for (int k = 0; k < K; k++) {
        __m512 u0 = _mm512_loadu_ps(w0 + 16 * k), u1 = V > 1 ? _mm512_loadu_ps(w1 + 16 * k) : u0,
               u2 = V > 2 ? _mm512_loadu_ps(w2 + 16 * k) : u0, u3 = V > 3 ? _mm512_loadu_ps(w3 + 16 * k) : u0, a;
        ROW(0) ROW(1) ROW(2)
        if (R > 3) { ROW(3) }
        if (R > 4) { ROW(4) ROW(5) }
    }
    __m512 r[6][4] = {ROWS_OUT(0), ROWS_OUT(1), ROWS_OUT(2), ROWS_OUT(3), ROWS_OUT(4), ROWS_OUT(5)};
    store_rows(V, Y, ldy, r, nt, nc, bias, relu);
}

typedef void (*block_fn)(float *Y, int64_t ldy, const float *const *x, int K, const float *const *w, int nt, int nc,
                         const float *bias, int relu);
#define BLOCK(R, V)                                                                                           \
    static void block##R##x##V(float *Y, int64_t ldy, const float *const *x, int K, const float *const *w,   \
                               int nt, int nc, const float *bias, int relu)                                  \
    {                                                                                                        \
        block(R, V, Y, ldy, x, K, w, nt, nc, bias, relu);                                                    \
    }
BLOCK(6, 4) BLOCK(6, 2) BLOCK(6, 1)
BLOCK(4, 4) BLOCK(4, 2) BLOCK(4, 1)
BLOCK(3, 4) BLOCK(3, 2) BLOCK(3, 1)

/* One row × 128 columns (eight panels, 8 accumulators): batch 1. */
static void row1x128(float *y, const float *x, int K, const float *const *w, const float *bias, int relu)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int k = 0; k < K; k++) {
        __m512 b = _mm512_set1_ps(x[k]);
        a0 = _mm512_fmadd_ps(b, _mm512_loadu_ps(w[0] + 16 * k), a0);
        a1 = _mm512_fmadd_ps(b, _mm512_loadu_ps(w[1] + 16 * k), a1);
        a2 = _mm512_fmadd_ps(b, _mm512_loadu_ps(w[2] + 16 * k), a2);
        a3 = _mm512_fmadd_ps(b, _mm512_loadu_ps(w[3] + 16 * k), a3);
        a4 = _mm512_fmadd_ps(b, _mm512_loadu_ps(w[4] + 16 * k), a4);
        a5 = _mm512_fmadd_ps(b, _mm512_loadu_ps(w[5] + 16 * k), a5);
        a6 = _mm512_fmadd_ps(b, _mm512_loadu_ps(w[6] + 16 * k), a6);
        a7 = _mm512_fmadd_ps(b, _mm512_loadu_ps(w[7] + 16 * k), a7);
    }
    __m512 r[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    for (int v = 0; v < 8; v++) _mm512_storeu_ps(y + 16 * v, epilogue(r[v], bias ? bias + 16 * v : NULL, relu, 0xffff));
}

/* as gemm_avx2.c: 6 while that leaves 0 or ≥ 3 rows, then 4 and 3 */
static int rows_next(int left) { return left == 4 || left == 7 || left == 8 ? 4 : left <= 3 ? 3 : 6; }

void mtc_gemm_avx512(float *Y, int64_t ldy, const float *X, int64_t ldx, int M, const mtc_gemm_w *W,
                     const float *bias, int relu)
{
    if (!W->packed) {
        mtc_gemm_avx2(Y, ldy, X, ldx, M, W, bias, relu);
        return;
    }
    static const block_fn b[7][5] = {[3] = {[1] = block3x1, [2] = block3x2, [4] = block3x4},
                                     [4] = {[1] = block4x1, [2] = block4x2, [4] = block4x4},
                                     [6] = {[1] = block6x1, [2] = block6x2, [4] = block6x4}};
    const int N = W->N, K = W->K, panels = (N + 15) / 16;
    const float *p[8];
    int n1 = 0; /* batch 1: whole 128-column groups by row1x128, the rest below */
    if (M == 1) {
        for (; n1 + 128 <= N; n1 += 128) {
            for (int j = 0; j < 8; j++) p[j] = W->p + (int64_t)(n1 + 16 * j) * K;
            row1x128(Y + n1, X, K, p, bias ? bias + n1 : NULL, relu);
        }
        if (N - n1 >= 64) { /* 64..127 columns left: the AVX2 kernel's 8 chains of 8 (the same bits) beat 4 of 16 */
            const mtc_gemm_w rest = {W->p + (int64_t)n1 * K, K, N - n1, 1};
            mtc_gemm_avx2(Y + n1, ldy, X, ldx, 1, &rest, bias ? bias + n1 : NULL, relu);
            return;
        }
    }
    for (int t = 0, h; t < M; t += h) {
        h = rows_next(M - t);
        int nt = M - t < h ? M - t : h;
        const float *x[6];
        for (int i = 0; i < 6; i++) x[i] = X + (t + (i < nt ? i : nt - 1)) * ldx;
        float *y = Y + t * ldy;
        for (int q = n1 / 16; q < panels;) {
            int V = panels - q >= 4 ? 4 : panels - q >= 2 ? 2 : 1;
            for (int j = 0; j < V; j++) p[j] = W->p + (int64_t)(q + j) * 16 * K;
            int nlast = N - 16 * (q + V - 1); /* columns of the last panel */
            b[h][V](y + 16 * q, ldy, x, K, p, nt, nlast < 16 ? nlast : 16, bias ? bias + 16 * q : NULL, relu);
            q += V;
        }
    }
}
