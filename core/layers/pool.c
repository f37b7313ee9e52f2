/*
 * pool.c — max and average pooling, no padding.
 *   in (B,C,H,W) -> out (B,C,OH,OW), OH = (H−K)/stride + 1
 * maxpool records, per output, the index ih·W + iw of the winning input
 * inside its (H,W) plane (first maximum on ties); backward routes dout there.
 * argmax may be NULL in forward for inference.
 */
#include "mtc.h"

/* 2x2/2: the same comparisons in the same order as the loop below (keep
 * the first maximum: x > m replaces), written as selects over a row so that
 * they vectorise; the winner's index rides on the same selects. Inlined
 * twice, with argmax NULL (inference: the index work drops out) and not. */
static inline void maxpool2(float *out, int32_t *argmax, const float *in, int64_t planes, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * H * W;
        float *y = out + pl * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
            const int32_t i0 = 2 * oh * W, i1 = i0 + W;
            float *yo = y + oh * OW;
            int32_t *ao = argmax ? argmax + pl * OH * OW + oh * OW : NULL;
            for (int ow = 0; ow < OW; ow++) {
                float m = r0[2 * ow], v = r0[2 * ow + 1];
                int32_t b = i0 + 2 * ow;
                b = v > m ? i0 + 2 * ow + 1 : b;
                m = v > m ? v : m;
                v = r1[2 * ow];
                b = v > m ? i1 + 2 * ow : b;
                m = v > m ? v : m;
                v = r1[2 * ow + 1];
                b = v > m ? i1 + 2 * ow + 1 : b;
                m = v > m ? v : m;
                yo[ow] = m;
                if (argmax) ao[ow] = b;
            }
        }
    }
}

void mtc_maxpool_forward(float *out, int32_t *argmax, const float *in, int B,
                         int C, int H, int W, int K, int stride)
{
    const int OH = (H - K) / stride + 1, OW = (W - K) / stride + 1;
    const int64_t planes = (int64_t)B * C;
    if (K == 2 && stride == 2) {
        if (argmax) maxpool2(out, argmax, in, planes, H, W);
        else maxpool2(out, NULL, in, planes, H, W);
        return;
    }
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * H * W;
        float *y = out + pl * OH * OW;
        int32_t *am = argmax ? argmax + pl * OH * OW : NULL;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                int h0 = oh * stride, w0 = ow * stride;
                int best = h0 * W + w0;
                float m = x[best];
                for (int kh = 0; kh < K; kh++) {
                    const float *row = x + (h0 + kh) * W + w0;
                    for (int kw = 0; kw < K; kw++)
                        if (row[kw] > m) {
                            m = row[kw];
                            best = (h0 + kh) * W + w0 + kw;
                        }
                }
                y[oh * OW + ow] = m;
                if (am) am[oh * OW + ow] = best;
            }
    }
}

void mtc_maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                          int B, int C, int OH, int OW, int H, int W)
{
    if (!din) return;
    const int64_t planes = (int64_t)B * C, ohw = (int64_t)OH * OW;
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dx = din + pl * H * W;
        const float *g = dout + pl * ohw;
        const int32_t *am = argmax + pl * ohw;
        for (int64_t i = 0; i < ohw; i++) dx[am[i]] += g[i];
    }
}

void mtc_avgpool_forward(float *out, const float *in, int B, int C, int H,
                         int W, int K, int stride)
{
    const int OH = (H - K) / stride + 1, OW = (W - K) / stride + 1;
    const int64_t planes = (int64_t)B * C;
    const float inv = 1.0f / (float)(K * K);
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * H * W;
        float *y = out + pl * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                const float *win = x + oh * stride * W + ow * stride;
                float acc = 0.0f;
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) acc += win[kh * W + kw];
                y[oh * OW + ow] = acc * inv;
            }
    }
}

void mtc_avgpool_backward(float *din, const float *dout, int B, int C, int H,
                          int W, int K, int stride)
{
    if (!din) return;
    const int OH = (H - K) / stride + 1, OW = (W - K) / stride + 1;
    const int64_t planes = (int64_t)B * C;
    const float inv = 1.0f / (float)(K * K);
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dx = din + pl * H * W;
        const float *g = dout + pl * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                float v = g[oh * OW + ow] * inv;
                float *win = dx + oh * stride * W + ow * stride;
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) win[kh * W + kw] += v;
            }
    }
}
