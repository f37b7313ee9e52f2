/*
 * conv_group.c — grouped (and depthwise) 2-D convolution, direct loops.
 *   in (B,C,H,W), W (OC, C/G, K, K), b (OC), out (B,OC,OH,OW); output
 *   channel oc reads the C/G input channels of its group g = oc / (OC/G).
 * Depthwise (G = C) has one input channel per output: im2col + GEMM would
 * run a 1-row GEMM per channel, so the kernels loop directly, K·K
 * multiply-adds per output in a fixed order: every output is computed the
 * same way whatever the batch (batch-invariant bytes). No BLAS: the
 * runtime (libmtcrt) uses the forward too.
 */
#include "mtc.h"

#include <string.h>

int mtc_conv_shape_groups(mtc_conv_shape *s, int G)
{
    if (G < 1 || s->C % G || s->OC % G) return -1;
    s->G = G;
    return 0;
}

void mtc_conv_valid_cols(const mtc_conv_shape *s, int kw, int *lo, int *hi)
{
    int st = s->stride, a = s->pad - kw, l = 0, h;
    if (a > 0) l = (a + st - 1) / st;
    int last = s->W - 1 + a;
    h = last >= 0 ? last / st + 1 : 0;
    if (h > s->OW) h = s->OW;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

void mtc_conv2d_group_forward(float *out, const float *in, const float *W, const float *b,
                              const mtc_conv_shape *s, int B)
{
    const int G = s->G, Cg = s->C / G, OCg = s->OC / G, K = s->K, st = s->stride, p = s->pad;
    const int64_t HW = (int64_t)s->H * s->W, OHW = (int64_t)s->OH * s->OW;
    for (int bi = 0; bi < B; bi++)
        for (int oc = 0; oc < s->OC; oc++) {
            float *o = out + ((int64_t)bi * s->OC + oc) * OHW;
            const float bv = b ? b[oc] : 0.0f;
            for (int64_t i = 0; i < OHW; i++) o[i] = bv;
            const int g = oc / OCg;
            for (int cg = 0; cg < Cg; cg++) {
                const float *x = in + ((int64_t)bi * s->C + g * Cg + cg) * HW;
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) {
                        const float w = W[(((int64_t)oc * Cg + cg) * K + kh) * K + kw];
                        int lo, hi;
                        mtc_conv_valid_cols(s, kw, &lo, &hi);
                        const int off = kw - p;
                        for (int oh = 0; oh < s->OH; oh++) {
                            const int ih = oh * st - p + kh;
                            if (ih < 0 || ih >= s->H) continue;
                            const float *xr = x + (int64_t)ih * s->W;
                            float *orow = o + (int64_t)oh * s->OW;
                            if (st == 1)
                                for (int ow = lo; ow < hi; ow++) orow[ow] += w * xr[ow + off];
                            else
                                for (int ow = lo; ow < hi; ow++) orow[ow] += w * xr[ow * st + off];
                        }
                    }
            }
        }
}

void mtc_conv2d_group_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                               const float *W, const mtc_conv_shape *s, int B)
{
    const int G = s->G, Cg = s->C / G, OCg = s->OC / G, K = s->K, st = s->stride, p = s->pad;
    const int64_t HW = (int64_t)s->H * s->W, OHW = (int64_t)s->OH * s->OW;
    for (int bi = 0; bi < B; bi++)
        for (int oc = 0; oc < s->OC; oc++) {
            const float *go = dout + ((int64_t)bi * s->OC + oc) * OHW;
            if (db) {
                float acc = 0.0f;
                for (int64_t i = 0; i < OHW; i++) acc += go[i];
                db[oc] += acc;
            }
            const int g = oc / OCg;
            for (int cg = 0; cg < Cg; cg++) {
                const int64_t xo = ((int64_t)bi * s->C + g * Cg + cg) * HW;
                const float *x = in + xo;
                float *dx = din ? din + xo : NULL;
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) {
                        const int64_t wi = (((int64_t)oc * Cg + cg) * K + kh) * K + kw;
                        const float w = W[wi];
                        int lo, hi;
                        mtc_conv_valid_cols(s, kw, &lo, &hi);
                        const int off = kw - p;
                        float acc = 0.0f;
                        for (int oh = 0; oh < s->OH; oh++) {
                            const int ih = oh * st - p + kh;
                            if (ih < 0 || ih >= s->H) continue;
                            const float *gr = go + (int64_t)oh * s->OW;
                            const int64_t r = (int64_t)ih * s->W;
                            for (int ow = lo; ow < hi; ow++) {
                                const int64_t iw = r + (int64_t)ow * st + off;
                                acc += gr[ow] * x[iw];
                                if (dx) dx[iw] += w * gr[ow];
                            }
                        }
                        if (dW) dW[wi] += acc;
                    }
            }
        }
}
