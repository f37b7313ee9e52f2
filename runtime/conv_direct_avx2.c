/*
 * conv_direct_avx2.c — the AVX2 direct convolution (conv_direct.c): 8
 * positions per vector; the AVX-512 kernel's bits.
 */
#include "mtc.h"

#include <immintrin.h>

#define VF __m256
#define VW 8
#define LOADU(p) _mm256_loadu_ps(p)
#define SPLAT(v) _mm256_set1_ps(v)
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define FN mtc_conv_direct_avx2

static inline __m256i lanes(int n) /* all-ones in the first n lanes */
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#define STORE_N(p, v, n) _mm256_maskstore_ps(p, lanes(n), v)

static inline void hpool_store(float *p, __m256 v, __m256 bias, int relu, int n)
{
    const __m256i ev = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6), od = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
    __m256 m = _mm256_add_ps(_mm256_max_ps(_mm256_permutevar8x32_ps(v, ev), _mm256_permutevar8x32_ps(v, od)), bias);
    if (relu) m = _mm256_max_ps(m, _mm256_setzero_ps());
    _mm_maskstore_ps(p, _mm256_castsi256_si128(lanes(n)), _mm256_castps256_ps128(m));
}
#define HPOOL_STORE_N(p, v, bias, relu, n) hpool_store(p, v, bias, relu, n)

#include "conv_direct_body.h"
