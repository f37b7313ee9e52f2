/*
 * wino_avx2.c — the AVX2 twin of wino.c's input transform, 8 channels per
 * step. The 16 plane GEMMs run on mtc_gemm_avx2 (gemm_avx2.c).
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
