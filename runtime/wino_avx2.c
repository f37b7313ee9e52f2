/*
 * wino_avx2.c — the AVX2 twins of wino.c's input and output transforms, 8
 * channels per step, the same operations in the same order (the same bits).
 * The 16 plane GEMMs run on mtc_gemm_avx2 (gemm_avx2.c). Written out rather
 * than left to the compiler: a default build (-O3, baseline x86-64) made
 * the output transform 40% of the teacher's inference.
 */
#include "mtc.h"

#include <immintrin.h>

/* input_tile of wino.c, 8 channels per step */
int mtc_wino_input_avx2(float *V, int t, const float *P, int th, int tw, int C, int Wp)
{
    const int64_t vs = (int64_t)MTC_WINO_TB * C, rs = (int64_t)Wp * C;
    float *v = V + (int64_t)t * C;
    const float *d = P + ((int64_t)2 * th * Wp + 2 * tw) * C;
    const int C8 = C & ~7;
    for (int c = 0; c < C8; c += 8) {
        __m256 r[4][4];
        for (int j = 0; j < 4; j++) { /* r = Bᵀ d, column j */
            const float *q = d + (int64_t)j * C + c;
            __m256 d0 = _mm256_loadu_ps(q), d1 = _mm256_loadu_ps(q + rs), d2 = _mm256_loadu_ps(q + 2 * rs),
                   d3 = _mm256_loadu_ps(q + 3 * rs);
            r[0][j] = _mm256_sub_ps(d0, d2);
            r[1][j] = _mm256_add_ps(d1, d2);
            r[2][j] = _mm256_sub_ps(d2, d1);
            r[3][j] = _mm256_sub_ps(d1, d3);
        }
        for (int i = 0; i < 4; i++) { /* (Bᵀ d) B, row i */
            float *o = v + (int64_t)(4 * i) * vs + c;
            _mm256_storeu_ps(o, _mm256_sub_ps(r[i][0], r[i][2]));
            _mm256_storeu_ps(o + vs, _mm256_add_ps(r[i][1], r[i][2]));
            _mm256_storeu_ps(o + 2 * vs, _mm256_sub_ps(r[i][2], r[i][1]));
            _mm256_storeu_ps(o + 3 * vs, _mm256_sub_ps(r[i][1], r[i][3]));
        }
    }
    return C8;
}

/* output_transform of wino.c, 8 channels per step */
int mtc_wino_output_avx2(float *Y, const float *M, int t, int OC, const float *b, int relu)
{
    const int64_t ms = (int64_t)MTC_WINO_TB * OC;
    const float *m = M + (int64_t)t * OC;
    const int OC8 = OC & ~7;
    const __m256 zero = _mm256_setzero_ps();
    for (int oc = 0; oc < OC8; oc += 8) {
        __m256 k[16], sa[2][4];
        for (int x = 0; x < 16; x++) k[x] = _mm256_loadu_ps(m + x * ms + oc);
        for (int j = 0; j < 4; j++) { /* Aᵀ M */
            sa[0][j] = _mm256_add_ps(_mm256_add_ps(k[j], k[4 + j]), k[8 + j]);
            sa[1][j] = _mm256_sub_ps(_mm256_sub_ps(k[4 + j], k[8 + j]), k[12 + j]);
        }
        const __m256 bias = b ? _mm256_loadu_ps(b + oc) : zero;
        for (int a = 0; a < 2; a++) { /* (Aᵀ M) A */
            __m256 y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(sa[a][0], sa[a][1]), sa[a][2]), bias);
            __m256 y1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(sa[a][1], sa[a][2]), sa[a][3]), bias);
            if (relu) { /* y > 0 ? y : 0, as the scalar twin */
                y0 = _mm256_and_ps(y0, _mm256_cmp_ps(y0, zero, _CMP_GT_OQ));
                y1 = _mm256_and_ps(y1, _mm256_cmp_ps(y1, zero, _CMP_GT_OQ));
            }
            _mm256_storeu_ps(Y + (2 * a) * OC + oc, y0);
            _mm256_storeu_ps(Y + (2 * a + 1) * OC + oc, y1);
        }
    }
    return OC8;
}
