/*
 * dropout.c — inverted dropout: keep each element with probability 1−p and
 * scale kept ones by 1/(1−p), so evaluation is the identity (don't call it).
 * mask[i] = 1 where kept. p <= 0 keeps everything; p >= 1 drops everything.
 * Randomness comes only from the caller's mtc_rng (one draw per element).
 */
#include "mtc.h"

#include <string.h>

void mtc_dropout_forward(float *out, uint8_t *mask, const float *in, int64_t n,
                         float p, mtc_rng *rng)
{
    if (p <= 0.0f) {
        if (out != in) memmove(out, in, (size_t)n * sizeof *out);
        if (mask) memset(mask, 1, (size_t)n);
        return;
    }
    if (p >= 1.0f) {
        memset(out, 0, (size_t)n * sizeof *out);
        if (mask) memset(mask, 0, (size_t)n);
        return;
    }
    const float scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) {
        uint8_t keep = mtc_rng_uniform(rng) >= p;
        if (mask) mask[i] = keep;
        out[i] = keep ? in[i] * scale : 0.0f;
    }
}

void mtc_dropout_backward(float *din, const float *dout, const uint8_t *mask,
                          int64_t n, float p)
{
    if (!din || p >= 1.0f) return;
    const float scale = p <= 0.0f ? 1.0f : 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) din[i] += mask[i] ? dout[i] * scale : 0.0f;
}
