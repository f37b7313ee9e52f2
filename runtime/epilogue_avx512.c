/*
 * epilogue_avx512.c — AVX-512 twin of the dense int8 epilogue: int32
 * accumulators + bias -> gemmlowp requantization -> zero point -> u8 clamp
 * (or -> float logits). Bit-identical to mtc_epilogue_dense_u8_scalar for
 * multipliers m0 > 0 and shifts >= 0 (what mtc_quant_multiplier gives for
 * real multipliers below 1); callers check mtc_epilogue_vectorizable first.
 */
#include "mtc.h"

#include <immintrin.h>

/* round(x·m0 / 2^31) with gemmlowp's nudge and truncation, 16 lanes */
static inline __m512i srdhm16(__m512i x, __m512i m0)
{
    const __m512i pos = _mm512_set1_epi64(1 << 30), neg = _mm512_set1_epi64(1 - (1 << 30));
    const __m512i lowmask = _mm512_set1_epi64((1LL << 31) - 1);
    __m512i r[2];
    for (int odd = 0; odd < 2; odd++) {
        __m512i a = odd ? _mm512_srli_epi64(x, 32) : x, b = odd ? _mm512_srli_epi64(m0, 32) : m0;
        __m512i ab = _mm512_mul_epi32(a, b); /* sign-extended low halves: exact 64-bit product */
        __mmask8 isneg = _mm512_cmplt_epi64_mask(ab, _mm512_setzero_si512());
        __m512i v = _mm512_add_epi64(ab, _mm512_mask_blend_epi64(isneg, pos, neg));
        /* division by 2^31 truncating toward zero */
        __mmask8 vneg = _mm512_cmplt_epi64_mask(v, _mm512_setzero_si512());
        v = _mm512_mask_add_epi64(v, vneg, v, lowmask);
        r[odd] = _mm512_srai_epi64(v, 31);
    }
    /* even results sit in the low halves, odd ones move up */
    return _mm512_mask_blend_epi32(0xAAAA, r[0], _mm512_slli_epi64(r[1], 32));
}

/* x / 2^e rounded half away from zero, per-lane e >= 0 */
static inline __m512i rdivpot16(__m512i x, __m512i e)
{
    const __m512i one = _mm512_set1_epi32(1);
    __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, e), one);
    __m512i rem = _mm512_and_si512(x, mask);
    __mmask16 xneg = _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512());
    __m512i thr = _mm512_mask_add_epi32(_mm512_srai_epi32(mask, 1), xneg, _mm512_srai_epi32(mask, 1), one);
    __m512i q = _mm512_srav_epi32(x, e);
    __mmask16 up = _mm512_cmpgt_epi32_mask(rem, thr);
    return _mm512_mask_add_epi32(q, up, q, one);
}

void mtc_epilogue_dense_u8_avx512(const int32_t *C, int M, int N, const int32_t *bias, const int32_t *m0,
                                  const int *shift, int32_t zo, int32_t lo, uint8_t *out)
{
    const __m512i vzo = _mm512_set1_epi32(zo), vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(255);
    int n16 = N & ~15;
    for (int m = 0; m < M; m++) {
        const int32_t *c = C + (int64_t)m * N;
        uint8_t *o = out + (int64_t)m * N;
        for (int n = 0; n < n16; n += 16) {
            __m512i acc = _mm512_add_epi32(_mm512_loadu_si512(c + n), _mm512_loadu_si512(bias + n));
            __m512i h = srdhm16(acc, _mm512_loadu_si512(m0 + n));
            __m512i v = _mm512_add_epi32(rdivpot16(h, _mm512_loadu_si512(shift + n)), vzo);
            v = _mm512_min_epi32(_mm512_max_epi32(v, vlo), vhi);
            _mm_storeu_si128((__m128i *)(o + n), _mm512_cvtepi32_epi8(v));
        }
        if (n16 < N)
            mtc_epilogue_dense_u8_scalar(c + n16, 1, N - n16, bias + n16, m0 + n16, shift + n16, zo, lo, o + n16,
                                         N);
    }
}

void mtc_epilogue_dense_f32_avx512(const int32_t *C, int M, int N, const int32_t *bias, const float *deq,
                                   int relu, float *out)
{
    int n16 = N & ~15;
    const __m512 zero = _mm512_setzero_ps();
    for (int m = 0; m < M; m++) {
        const int32_t *c = C + (int64_t)m * N;
        float *o = out + (int64_t)m * N;
        for (int n = 0; n < n16; n += 16) {
            __m512i acc = _mm512_add_epi32(_mm512_loadu_si512(c + n), _mm512_loadu_si512(bias + n));
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(deq + n));
            if (relu) v = _mm512_max_ps(v, zero);
            _mm512_storeu_ps(o + n, v);
        }
        for (int n = n16; n < N; n++) {
            float v = (float)(c[n] + bias[n]) * deq[n];
            o[n] = relu && v < 0 ? 0 : v;
        }
    }
}
