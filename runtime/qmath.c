/*
 * qmath.c — int8 arithmetic: gemmlowp-style fixed-point requantization,
 * affine u8 activations, symmetric s8 weights.
 *
 * Requantize an int32 accumulator x by a real multiplier r = s_in·s_w/s_out:
 *   r = m0·2^-31·2^-shift,  m0 ∈ [2^30, 2^31)
 *   y = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, m0), shift)
 * (a negative shift is a saturating left shift of x first), as gemmlowp and
 * TFLite do; everything is integer.
 */
#include "runtime/rt_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void mtc_quant_multiplier(double r, int32_t *m0, int *shift)
{
    if (!(r > 0) || !isfinite(r)) { *m0 = 0; *shift = 0; return; }
    int ex;
    double q = frexp(r, &ex); /* r = q·2^ex, q ∈ [0.5, 1) */
    int64_t m = llround(q * 2147483648.0);
    if (m == ((int64_t)1 << 31)) { m /= 2; ex++; }
    /* very small multipliers: the result is 0 for any int32 x anyway */
    if (ex < -31) { *m0 = 0; *shift = 0; return; }
    if (ex > 30) ex = 30;
    *m0 = (int32_t)m;
    *shift = -ex;
}

int32_t mtc_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

int32_t mtc_rdivpot(int32_t x, int e)
{
    if (e <= 0) return x;
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t rem = x & mask;
    int32_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > thr ? 1 : 0);
}

int32_t mtc_requantize(int32_t x, int32_t m0, int shift)
{
    return rt_requant(x, m0, shift); /* the epilogues' inline copy */
}

mtc_qparams mtc_qparams_from_range(float lo, float hi, int symmetric)
{
    mtc_qparams p;
    if (!isfinite(lo)) lo = 0;
    if (!isfinite(hi)) hi = 0;
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    if (symmetric) {
        float a = fmaxf(-lo, hi);
        p.scale = a > 0 ? a / 127.0f : 1.0f;
        p.zp = 128;
        return p;
    }
    float span = hi - lo;
    if (!(span > 0)) { p.scale = 1.0f; p.zp = 0; return p; }
    p.scale = span / 255.0f;
    long z = lroundf(-lo / p.scale);
    p.zp = (int32_t)(z < 0 ? 0 : z > 255 ? 255 : z);
    return p;
}

void mtc_quantize_u8(uint8_t *q, const float *x, int64_t n, mtc_qparams p)
{
    /* round half up: clamp to [0, 255] first, then floor(v + 0.5) by
     * truncation (v >= 0); branch-free so that it vectorizes */
    float inv = 1.0f / p.scale, zp = (float)p.zp + 0.5f;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] * inv + zp;
        v = v > 0.0f ? v : 0.0f;
        v = v < 255.5f ? v : 255.0f;
        q[i] = (uint8_t)(int32_t)v;
    }
}

void mtc_dequantize_u8(float *x, const uint8_t *q, int64_t n, mtc_qparams p)
{
    for (int64_t i = 0; i < n; i++) x[i] = ((int32_t)q[i] - p.zp) * p.scale;
}

void mtc_quantize_weights_s8(int8_t *q, float *scale, const float *W, int rows, int64_t cols,
                             int per_tensor)
{
    float gmax = 0;
    for (int r = 0; r < rows; r++) {
        float m = 0;
        for (int64_t j = 0; j < cols; j++) m = fmaxf(m, fabsf(W[r * cols + j]));
        scale[r] = m > 0 ? m / 127.0f : 1.0f;
        gmax = fmaxf(gmax, m);
    }
    if (per_tensor)
        for (int r = 0; r < rows; r++) scale[r] = gmax > 0 ? gmax / 127.0f : 1.0f;
    for (int r = 0; r < rows; r++) {
        float inv = 1.0f / scale[r];
        for (int64_t j = 0; j < cols; j++) {
            float v = nearbyintf(W[r * cols + j] * inv);
            q[r * cols + j] = (int8_t)(v < -127 ? -127 : v > 127 ? 127 : v);
        }
    }
}
