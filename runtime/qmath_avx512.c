/*
 * qmath_avx512.c — float -> u8 activation quantization with AVX-512, the same
 * float operations in the same order as mtc_quantize_u8 (mul, add, clamp,
 * truncate; -std=c11 keeps the compiler from fusing them), so the bytes are
 * identical.
 */
#include "mtc.h"

#include <immintrin.h>

void mtc_quantize_u8_avx512(uint8_t *q, const float *x, int64_t n, mtc_qparams p)
{
    float inv = 1.0f / p.scale, zp = (float)p.zp + 0.5f;
    __m512 vi = _mm512_set1_ps(inv), vz = _mm512_set1_ps(zp), lo = _mm512_setzero_ps(),
           hi = _mm512_set1_ps(255.0f), lim = _mm512_set1_ps(255.5f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vi), vz);
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, lo, _CMP_GT_OQ), lo, v);
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, lim, _CMP_LT_OQ), hi, v);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v)));
    }
    for (; i < n; i++) {
        float v = x[i] * inv + zp;
        v = v > 0.0f ? v : 0.0f;
        v = v < 255.5f ? v : 255.0f;
        q[i] = (uint8_t)(int32_t)v;
    }
}
