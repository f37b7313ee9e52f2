/*
 * conv_direct.c — direct convolution for inference convs with few input
 * channels (C·K·K ≤ MTC_DIRECT_MAX_CKK, stride 1: a network's first conv,
 * e.g. 1×28×28 → 32 channels, 3×3), where im2col + GEMM runs a K = 9
 * product (one FMA per loaded accumulator) and Winograd's transforms cost
 * more than they save. Each output row is computed in vectors of positions:
 * the C·K·K shifted input rows of a chunk are loaded once, every output
 * channel's weights are broadcast over them (4 channels at a time on
 * AVX2, 8 on AVX-512), so each FMA costs one load. Bias and relu follow;
 * a 2×2/2 max pool that follows the conv is fused (two output rows, then
 * the pairs of a row).
 *
 * Every output is fma(w[k], x[k], acc) for k = 0..CKK−1 from 0 ((c, kh, kw)
 * order), then + bias, then relu: the AVX2 (conv_direct_avx2.c) and
 * AVX-512 (conv_direct_avx512.c) kernels give the same bits; the scalar
 * twin here rounds the products separately (equal to rounding).
 *
 * The input is copied once per sample to a zero-padded plane per channel
 * (mtc_conv_direct_work_floats) whose rows are wide enough for whole
 * 16-position vectors, so no load needs a mask.
 */
#include "mtc.h"

#include <string.h>

int mtc_conv_direct_eligible(const mtc_conv_shape *s)
{
    return s->G == 1 && s->stride == 1 && s->C * s->K * s->K <= MTC_DIRECT_MAX_CKK && s->pad < s->K &&
           s->OH > 0 && s->OW > 0;
}

int mtc_conv_direct_wp(const mtc_conv_shape *s)
{
    return (s->OW + 15) / 16 * 16 + s->K - 1;
}

int64_t mtc_conv_direct_work_floats(const mtc_conv_shape *s)
{
    return (int64_t)s->C * (s->H + 2 * s->pad) * mtc_conv_direct_wp(s);
}

void mtc_conv_direct_pad(float *P, const float *in, const mtc_conv_shape *s)
{
    const int Hp = s->H + 2 * s->pad, Wp = mtc_conv_direct_wp(s);
    memset(P, 0, sizeof(float) * (size_t)mtc_conv_direct_work_floats(s));
    for (int c = 0; c < s->C; c++)
        for (int y = 0; y < s->H; y++)
            memcpy(P + ((int64_t)c * Hp + y + s->pad) * Wp + s->pad, in + ((int64_t)c * s->H + y) * s->W,
                   sizeof(float) * (size_t)s->W);
}

static float dot(const float *w, const float *P, const mtc_conv_shape *s, int oh, int ow)
{
    const int Hp = s->H + 2 * s->pad, Wp = mtc_conv_direct_wp(s), K = s->K;
    float a = 0.0f;
    for (int c = 0, k = 0; c < s->C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++, k++) a += w[k] * P[((int64_t)c * Hp + oh + kh) * Wp + ow + kw];
    return a;
}

void mtc_conv_direct_scalar(float *out, const float *in, const float *W, const float *b, int relu, int pool,
                            float *work, const mtc_conv_shape *s, int B)
{
    const int OC = s->OC, OH = s->OH, OW = s->OW, CKK = s->C * s->K * s->K;
    const int OHo = pool ? OH / 2 : OH, OWo = pool ? OW / 2 : OW;
    const int64_t in_size = (int64_t)s->C * s->H * s->W, out_size = (int64_t)OC * OHo * OWo;
    for (int bi = 0; bi < B; bi++) {
        mtc_conv_direct_pad(work, in + bi * in_size, s);
        float *o = out + bi * out_size;
        for (int oc = 0; oc < OC; oc++) {
            const float *w = W + (int64_t)oc * CKK;
            for (int r = 0; r < OHo; r++)
                for (int q = 0; q < OWo; q++) {
                    float v;
                    if (pool) {
                        float a = dot(w, work, s, 2 * r, 2 * q), c = dot(w, work, s, 2 * r, 2 * q + 1);
                        float d = dot(w, work, s, 2 * r + 1, 2 * q), e = dot(w, work, s, 2 * r + 1, 2 * q + 1);
                        a = a > c ? a : c;
                        d = d > e ? d : e;
                        v = a > d ? a : d;
                    } else {
                        v = dot(w, work, s, r, q);
                    }
                    v += b[oc];
                    o[((int64_t)oc * OHo + r) * OWo + q] = relu && v < 0.0f ? 0.0f : v;
                }
        }
    }
}

void mtc_conv_direct_forward(float *out, const float *in, const float *W, const float *b, int relu, int pool,
                             float *work, const mtc_conv_shape *s, int B, int isa)
{
    if (isa == MTC_ISA_AVX512) mtc_conv_direct_avx512(out, in, W, b, relu, pool, work, s, B);
    else if (isa == MTC_ISA_AVX2) mtc_conv_direct_avx2(out, in, W, b, relu, pool, work, s, B);
    else mtc_conv_direct_scalar(out, in, W, b, relu, pool, work, s, B);
}
