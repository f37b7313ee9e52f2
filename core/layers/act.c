/*
 * act.c — element-wise activations: relu, leaky relu (slope 0.01), tanh,
 * sigmoid, gelu (tanh approximation). Forward overwrites (may run in place),
 * backward accumulates din += dout·f'(x).
 *
 * Backward takes both the pre-activation `in` and the post-activation `out`
 * and uses whichever is cheaper: relu/leaky/gelu read `in`, tanh/sigmoid read
 * `out`. For an in-place forward where one of them is gone, pass NULL:
 * relu/leaky fall back to `out` (sign(out) == sign(in)), tanh/sigmoid
 * recompute from `in`. gelu needs `in`.
 */
#include "mtc.h"

#include <math.h>
#include <string.h>

static const char *const act_names[] = {"none", "relu", "leaky", "tanh",
                                        "sigmoid", "gelu"};

int mtc_act_parse(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < (int)(sizeof act_names / sizeof *act_names); i++)
        if (strcmp(s, act_names[i]) == 0) return i;
    if (strcmp(s, "linear") == 0 || strcmp(s, "identity") == 0) return MTC_ACT_NONE;
    if (strcmp(s, "leaky_relu") == 0 || strcmp(s, "leakyrelu") == 0) return MTC_ACT_LEAKY;
    return -1;
}

const char *mtc_act_name(int act)
{
    if (act < 0 || act >= (int)(sizeof act_names / sizeof *act_names)) return "?";
    return act_names[act];
}

#define LEAKY_SLOPE 0.01f
#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

static inline float sigmoidf(float x)
{
    /* exp of a non-positive argument only: no overflow for either sign */
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float z = expf(x);
    return z / (1.0f + z);
}

void mtc_act_forward(float *out, const float *in, int64_t n, int act)
{
    switch (act) {
    case MTC_ACT_RELU:
        for (int64_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
        break;
    case MTC_ACT_LEAKY:
        for (int64_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : LEAKY_SLOPE * in[i];
        break;
    case MTC_ACT_TANH:
        for (int64_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
        break;
    case MTC_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) out[i] = sigmoidf(in[i]);
        break;
    case MTC_ACT_GELU:
        /* gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
        for (int64_t i = 0; i < n; i++) {
            float x = in[i];
            out[i] = 0.5f * x * (1.0f + tanhf(GELU_C * (x + GELU_A * x * x * x)));
        }
        break;
    default: /* MTC_ACT_NONE */
        if (out != in) memmove(out, in, (size_t)n * sizeof *out);
        break;
    }
}

void mtc_act_backward(float *din, const float *dout, const float *in,
                      const float *out, int64_t n, int act)
{
    if (!din) return;
    switch (act) {
    case MTC_ACT_RELU: {
        const float *x = in ? in : out;
        for (int64_t i = 0; i < n; i++) din[i] += x[i] > 0.0f ? dout[i] : 0.0f;
        break;
    }
    case MTC_ACT_LEAKY: {
        const float *x = in ? in : out;
        for (int64_t i = 0; i < n; i++)
            din[i] += x[i] > 0.0f ? dout[i] : LEAKY_SLOPE * dout[i];
        break;
    }
    case MTC_ACT_TANH: /* 1 − tanh² */
        if (out)
            for (int64_t i = 0; i < n; i++) din[i] += dout[i] * (1.0f - out[i] * out[i]);
        else
            for (int64_t i = 0; i < n; i++) {
                float y = tanhf(in[i]);
                din[i] += dout[i] * (1.0f - y * y);
            }
        break;
    case MTC_ACT_SIGMOID: /* σ(1 − σ) */
        if (out)
            for (int64_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
        else
            for (int64_t i = 0; i < n; i++) {
                float y = sigmoidf(in[i]);
                din[i] += dout[i] * y * (1.0f - y);
            }
        break;
    case MTC_ACT_GELU:
        /* d/dx = 0.5(1+th) + 0.5·x·(1−th²)·√(2/π)·(1 + 3·0.044715·x²) */
        for (int64_t i = 0; i < n; i++) {
            float x = in[i], x2 = x * x;
            float th = tanhf(GELU_C * (x + GELU_A * x2 * x));
            float d = 0.5f * (1.0f + th) +
                      0.5f * x * (1.0f - th * th) * GELU_C * (1.0f + 3.0f * GELU_A * x2);
            din[i] += dout[i] * d;
        }
        break;
    default:
        for (int64_t i = 0; i < n; i++) din[i] += dout[i];
        break;
    }
}
