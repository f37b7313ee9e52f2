/*
 * epilogue_avx512.c — AVX-512 twin of the dense int8 epilogue: int32
 * accumulators + bias -> gemmlowp requantization -> zero point -> u8 clamp
 * (or -> float logits). Bit-identical to mtc_epilogue_dense_u8_scalar for
 * multipliers m0 > 0 and shifts >= 0 (what mtc_quant_multiplier gives for
 * real multipliers below 1); callers check mtc_epilogue_vectorizable first.
 */
#include "mtc.h"

#include <immintrin.h>

/* gemmlowp's two roundings in one. With ab = x·m0 (exact in 64 bits) and
 * e = shift ∈ [0, 30]:
 *   SaturatingRoundingDoublingHighMul(x, m0) = floor((ab + 2^30) / 2^31)
 * for both signs (its nudge 1 − 2^30 with truncation toward zero is a
 * ceiling: trunc((ab + 1 − 2^30) / 2^31) = floor((ab + 2^30) / 2^31));
 *   RoundingDivideByPOT(h, e ≥ 1) = floor((h + 2^(e−1) − [h < 0]) / 2^e)
 * (half away from zero), and h < 0 exactly when ab < −2^30. Nested floors
 * of integer divisions by powers of two are one floor, so
 *   q = (ab + 2^30 + 2^(30+e) − [ab < −2^30]·2^31) >> (31 + e)   (e ≥ 1)
 *   q = (ab + 2^30) >> 31                                          (e = 0)
 * an arithmetic shift of a 64-bit value (|ab| < 2^62: no overflow). Per
 * 64-bit lane: a multiply, an add, a compare, a masked subtract and a
 * shift; the per-channel constants are built once per 16 channels. The
 * test (tests/test_quant.c) checks it against mtc_requantize bit for bit. */
typedef struct q8c {
    __m512i m0, add, neg, sh; /* one half's lanes: channel pairs' even or odd member */
} q8c;

static inline q8c q8c_half(__m512i m0, __m512i e) /* e, m0: the half's values in the low 32 bits of each lane */
{
    const __m512i lo32 = _mm512_set1_epi64(0xffffffffLL), c30 = _mm512_set1_epi64(1LL << 30);
    e = _mm512_and_si512(e, lo32);
    __mmask8 nz = _mm512_test_epi64_mask(e, e);
    q8c c;
    c.m0 = m0;
    c.add = _mm512_add_epi64(c30, _mm512_maskz_sllv_epi64(nz, c30, e));
    c.neg = _mm512_maskz_mov_epi64(nz, _mm512_set1_epi64(1LL << 31));
    c.sh = _mm512_add_epi64(e, _mm512_set1_epi64(31));
    return c;
}

static inline __m512i q8_half(__m512i x, const q8c *c)
{
    __m512i ab = _mm512_mul_epi32(x, c->m0);
    __mmask8 neg = _mm512_cmplt_epi64_mask(ab, _mm512_set1_epi64(-(1LL << 30)));
    __m512i v = _mm512_mask_sub_epi64(_mm512_add_epi64(ab, c->add), neg, _mm512_add_epi64(ab, c->add), c->neg);
    return _mm512_srav_epi64(v, c->sh);
}

void mtc_epilogue_dense_u8_avx512(const int32_t *C, int M, int N, const int32_t *bias, const int32_t *m0,
                                  const int *shift, int32_t zo, int32_t lo, uint8_t *out)
{
    const __m512i vzo = _mm512_set1_epi32(zo), vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(255);
    for (int n = 0; n < N; n += 16) {
        const __mmask16 k = N - n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (N - n)) - 1);
        const __m512i vb = _mm512_maskz_loadu_epi32(k, bias + n), vm = _mm512_maskz_loadu_epi32(k, m0 + n);
        const __m512i ve = _mm512_maskz_loadu_epi32(k, shift + n);
        const q8c ev = q8c_half(vm, ve), od = q8c_half(_mm512_srli_epi64(vm, 32), _mm512_srli_epi64(ve, 32));
        for (int m = 0; m < M; m++) {
            __m512i acc = _mm512_add_epi32(_mm512_maskz_loadu_epi32(k, C + (int64_t)m * N + n), vb);
            __m512i qe = q8_half(acc, &ev), qo = q8_half(_mm512_srli_epi64(acc, 32), &od);
            /* even results in the low halves, odd ones moved up */
            __m512i v = _mm512_add_epi32(_mm512_mask_blend_epi32(0xAAAA, qe, _mm512_slli_epi64(qo, 32)), vzo);
            v = _mm512_min_epi32(_mm512_max_epi32(v, vlo), vhi);
            _mm512_mask_cvtepi32_storeu_epi8(out + (int64_t)m * N + n, k, v);
        }
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
