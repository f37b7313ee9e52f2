/*
 * qmath_avx2.c — float -> u8 activation quantization with AVX2, bit-identical
 * to mtc_quantize_u8 (same float operations in the same order).
 */
#include "mtc.h"

#include <immintrin.h>

void mtc_quantize_u8_avx2(uint8_t *q, const float *x, int64_t n, mtc_qparams p)
{
    float inv = 1.0f / p.scale, zp = (float)p.zp + 0.5f;
    __m256 vi = _mm256_set1_ps(inv), vz = _mm256_set1_ps(zp), lo = _mm256_setzero_ps(),
           hi = _mm256_set1_ps(255.0f), lim = _mm256_set1_ps(255.5f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vi), vz);
        v = _mm256_blendv_ps(lo, v, _mm256_cmp_ps(v, lo, _CMP_GT_OQ));
        v = _mm256_blendv_ps(hi, v, _mm256_cmp_ps(v, lim, _CMP_LT_OQ));
        __m256i w = _mm256_cvttps_epi32(v); /* 8 x s32 in [0, 255] */
        __m128i s16 = _mm_packs_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        __m128i u8 = _mm_packus_epi16(s16, s16);
        _mm_storel_epi64((__m128i *)(q + i), u8);
    }
    for (; i < n; i++) {
        float v = x[i] * inv + zp;
        v = v > 0.0f ? v : 0.0f;
        v = v < 255.5f ? v : 255.0f;
        q[i] = (uint8_t)(int32_t)v;
    }
}
