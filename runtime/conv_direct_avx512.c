/*
 * conv_direct_avx512.c — the AVX-512 direct convolution (conv_direct.c):
 * 16 positions per vector; the AVX2 kernel's bits.
 */
#include "mtc.h"

#include <immintrin.h>

#define VF __m512
#define VW 16
#define LOADU(p) _mm512_loadu_ps(p)
#define SPLAT(v) _mm512_set1_ps(v)
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define STORE_N(p, v, n) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1), v)
#define FN mtc_conv_direct_avx512
#define OCB 8

/* max of lane pairs, + bias, relu, the first n (≤ 8) values to p */
static inline void hpool_store(float *p, __m512 v, __m512 bias, int relu, int n)
{
    const __m512i ev = _mm512_set_epi32(14, 12, 10, 8, 6, 4, 2, 0, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi32(15, 13, 11, 9, 7, 5, 3, 1, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512 m = _mm512_add_ps(_mm512_max_ps(_mm512_permutexvar_ps(ev, v), _mm512_permutexvar_ps(od, v)), bias);
    if (relu) m = _mm512_max_ps(m, _mm512_setzero_ps());
    _mm256_mask_storeu_ps(p, (__mmask8)((1u << n) - 1), _mm512_castps512_ps256(m));
}
#define HPOOL_STORE_N(p, v, bias, relu, n) hpool_store(p, v, bias, relu, n)

#include "conv_direct_body.h"
