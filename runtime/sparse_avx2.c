/*
 * sparse_avx2.c — the AVX2 twin of mtc_spmm_scalar (runtime/sparse.c):
 * same loop orders, 8-wide gathers for the row-by-row dot, tiles of 32 (or
 * 16) batch rows, 4 (or 2) registers per nonzero. Sums are grouped
 * differently from the scalar twin: equal to rounding, not to the bit.
 * Also the 8×8 transpose that fills the tile, shared with the AVX-512 twin.
 */
#include "runtime/rt_internal.h"

#include <immintrin.h>

/* r[i] = row i (8 floats) -> r[c] = column c. */
static inline void transpose8(__m256 r[8])
{
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) { /* rows 0-3, then 4-7 */
        __m256 *u = t + 4 * h, *v = s + 4 * h;
        v[0] = _mm256_shuffle_ps(u[0], u[2], _MM_SHUFFLE(1, 0, 1, 0));
        v[1] = _mm256_shuffle_ps(u[0], u[2], _MM_SHUFFLE(3, 2, 3, 2));
        v[2] = _mm256_shuffle_ps(u[1], u[3], _MM_SHUFFLE(1, 0, 1, 0));
        v[3] = _mm256_shuffle_ps(u[1], u[3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(s[c], s[c + 4], 0x20);
        r[c + 4] = _mm256_permute2f128_ps(s[c], s[c + 4], 0x31);
    }
}

void rt_spmm_transpose_avx2(float *xt, const float *X, int64_t ldx, int rows, int kw, int T)
{
    for (int i0 = 0; i0 < T; i0 += 8) {
        int k = 0;
        for (; k + 8 <= kw; k += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = i0 + i < rows ? _mm256_loadu_ps(X + (i0 + i) * ldx + k) : _mm256_setzero_ps();
            transpose8(r);
            for (int c = 0; c < 8; c++) _mm256_storeu_ps(xt + (int64_t)(k + c) * T + i0, r[c]);
        }
        for (; k < kw; k++)
            for (int i = i0; i < i0 + 8; i++) xt[(int64_t)k * T + i] = i < rows ? X[i * ldx + k] : 0.0f;
    }
}

static inline __m256i cols8(const mtc_csr *W, int32_t j)
{
    if (W->col16) return _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(W->col16 + j)));
    return _mm256_loadu_si256((const __m256i *)(W->col32 + j));
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* Σ_j val[j]·x[col[j]] over row n: 8 nonzeros a gather, two in flight. */
static float row_dot(const float *x, const mtc_csr *W, int n)
{
    int32_t j = W->rowptr[n], end = W->rowptr[n + 1];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; j + 16 <= end; j += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(W->val + j), _mm256_i32gather_ps(x, cols8(W, j), 4), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(W->val + j + 8), _mm256_i32gather_ps(x, cols8(W, j + 8), 4), a1);
    }
    float s = hsum8(_mm256_add_ps(a0, a1));
    for (; j < end; j++) s += W->val[j] * x[rt_csr_col(W, j)];
    return s;
}

#define SPT_L 8
#define SPT_V __m256
#define SPT_LOAD _mm256_load_ps
#define SPT_STORE _mm256_store_ps
#define SPT_ZERO _mm256_setzero_ps
#define SPT_SET1 _mm256_set1_ps
#define SPT_FMA _mm256_fmadd_ps
#define SPT_ADD _mm256_add_ps
#include "runtime/sparse_tile.h"

static void tile16(const float *X, int rows, const mtc_csr *W, const float *bias, int relu, float *Y, float *s)
{
    tile_q(X, rows, W, bias, relu, Y, s, 2);
}

static void tile32(const float *X, int rows, const mtc_csr *W, const float *bias, int relu, float *Y, float *s)
{
    tile_q(X, rows, W, bias, relu, Y, s, 4);
}

void rt_spmm_rows_avx2(const float *X, int rows, const mtc_csr *W, const float *bias, int relu, float *Y)
{
    int K = W->K, N = W->N;
    for (int b = 0; b < rows; b++)
        for (int n = 0; n < N; n++)
            Y[(int64_t)b * N + n] = rt_relu_if(row_dot(X + (int64_t)b * K, W, n) + (bias ? bias[n] : 0.0f), relu);
}

void rt_spmm_tiled_avx2(const float *X, int B, const mtc_csr *W, const float *bias, int relu, float *Y,
                        float *scratch, rt_spmm_tile_fn t32, rt_spmm_tile_fn t16)
{
    int K = W->K, N = W->N, b = 0;
    for (int rows; B - b > 16; b += rows) {
        rows = B - b < 32 ? B - b : 32;
        t32(X + (int64_t)b * K, rows, W, bias, relu, Y + (int64_t)b * N, scratch);
    }
    if (B - b >= 3) t16(X + (int64_t)b * K, B - b, W, bias, relu, Y + (int64_t)b * N, scratch);
    else rt_spmm_rows_avx2(X + (int64_t)b * K, B - b, W, bias, relu, Y + (int64_t)b * N);
}

void mtc_spmm_avx2(const float *X, int B, const mtc_csr *W, const float *bias, int relu, float *Y,
                   float *scratch)
{
    rt_spmm_tiled_avx2(X, B, W, bias, relu, Y, scratch, tile32, tile16);
}
