/*
 * act.c — element-wise activations: relu, leaky relu (slope 0.01), tanh,
 * sigmoid, gelu (tanh approximation), gelu_erf (the exact x·Φ(x), what
 * PyTorch's nn.GELU() computes and ONNX exports as Div/Erf/Add/Mul/Mul). Forward overwrites (may run in place),
 * backward accumulates din += dout·f'(x).
 *
 * Backward takes both the pre-activation `in` and the post-activation `out`
 * and uses whichever is cheaper: relu/leaky/gelu read `in`, tanh/sigmoid read
 * `out`. For an in-place forward where one of them is gone, pass NULL:
 * relu/leaky fall back to `out` (sign(out) == sign(in)), tanh/sigmoid
 * recompute from `in`. gelu and gelu_erf need `in`.
 */
#include "mtc.h"

#include <math.h>
#include <string.h>

static const char *const act_names[] = {"none", "relu", "leaky", "tanh",
                                        "sigmoid", "gelu", "gelu_erf"};

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
#define SQRT1_2 0.70710678118654752f     /* 1/√2 */
#define INV_SQRT2PI 0.39894228040143268f /* 1/√(2π) */

/* e^x in plain float and integer operations, so that GCC vectorises the
 * loops that call it (libm's expf/tanhf stay scalar calls: gelu through tanhf
 * trained 3.5x slower than relu). Cephes's expf: x = n·ln2 + r, |r| ≤ ln2/2,
 * e^r by a polynomial, 2^n added into the exponent bits; n is rounded by the
 * 1.5·2^23 shifter (the low mantissa bits of x·log2e + 1.5·2^23 hold n).
 * Below -86 the result is 0, above 88 it is 2^127 (finite, so that e·s in
 * gelu's derivative stays finite), both chosen by bit masks: a `?:` there
 * lets GCC sink the polynomial into a branch it then cannot vectorise.
 * Relative error below 1e-7 (test_layers checks 2e-7). */
static inline __attribute__((always_inline)) float exp_fast(float x)
{
    const float shifter = 12582912.0f;
    float t = x * 1.44269504088896341f + shifter, n = t - shifter;
    uint32_t ti, pi;
    memcpy(&ti, &t, sizeof ti);
    float r = x - n * 0.693359375f; /* ln2 = 0.693359375 - 2.12194440e-4, */
    r = r + n * 2.12194440e-4f;     /* the high part exact in n·hi */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    memcpy(&pi, &p, sizeof pi);
    pi += (ti - 0x4B400000u) << 23;
    uint32_t lo = 0u - (uint32_t)(x >= -86.0f), hi = 0u - (uint32_t)(x > 88.0f);
    pi = (pi & lo & ~hi) | (0x7F000000u & hi);
    memcpy(&p, &pi, sizeof p);
    return p;
}

/* gelu's tanh form as a sigmoid: 0.5·(1 + tanh(u)) = 1/(1 + e), e = e^(−2u) */
static inline __attribute__((always_inline)) float gelu_e(float x)
{
    return exp_fast(-2.0f * GELU_C * (x + GELU_A * x * x * x));
}

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
        /* gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) = x·s */
        for (int64_t i = 0; i < n; i++) out[i] = in[i] / (1.0f + gelu_e(in[i]));
        break;
    case MTC_ACT_GELU_ERF: /* x·Φ(x) = 0.5·x·(1 + erf(x/√2)) */
        for (int64_t i = 0; i < n; i++) out[i] = 0.5f * in[i] * (1.0f + erff(in[i] * SQRT1_2));
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
        /* a select of loaded values: `x > 0 ? dout[i] : 0` loads
         * conditionally, which GCC 12 will not vectorise */
        for (int64_t i = 0; i < n; i++) {
            float d = dout[i];
            din[i] += x[i] > 0.0f ? d : 0.0f;
        }
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
        /* d/dx = 0.5(1+th) + 0.5·x·(1−th²)·√(2/π)·(1 + 3·0.044715·x²)
         *      = s + 2·x·s·(1−s)·√(2/π)·(1 + 3·0.044715·x²), s = 1/(1+e),
         * with 1 − s as e·s: no cancellation where s is near 1 */
        for (int64_t i = 0; i < n; i++) {
            float x = in[i], e = gelu_e(x), s = 1.0f / (1.0f + e);
            float d = s + 2.0f * x * s * (e * s) * GELU_C * (1.0f + 3.0f * GELU_A * x * x);
            din[i] += dout[i] * d;
        }
        break;
    case MTC_ACT_GELU_ERF: /* Φ(x) + x·φ(x) */
        for (int64_t i = 0; i < n; i++) {
            float x = in[i];
            float d = 0.5f * (1.0f + erff(x * SQRT1_2)) + x * INV_SQRT2PI * expf(-0.5f * x * x);
            din[i] += dout[i] * d;
        }
        break;
    default:
        for (int64_t i = 0; i < n; i++) din[i] += dout[i];
        break;
    }
}
