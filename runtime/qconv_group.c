/*
 * qconv_group.c — int8 grouped / depthwise convolution of one sample
 * (the runtime's int8 path for [conv] groups > 1): C (P, N) int32 =
 * Σ wq · u over each output's window, padding reading the input zero point
 * (what the dense path's im2col_u8 stores), so the epilogue's bias_eff
 * applies unchanged. Two forms: mtc_qconv_group works row by row (each tap
 * adds w·u over a row's valid columns, a loop the compiler vectorises, and
 * w·zp over the padded ones); mtc_qconv_group_ref is the tap-by-tap
 * definition, its scalar twin. Integer sums: the same values in any order,
 * checked equal in tests/test_runtime.c. mtc_qconv_dw_nhwc is the
 * depthwise case (one input channel per output) on a channels-last sample:
 * per output position, each tap adds w·u over the output channels,
 * contiguous on both sides.
 */
#include "mtc.h"

#define ROW_MAX 4096

void mtc_qconv_group_ref(const int8_t *wq, const uint8_t *x, int32_t zp, const mtc_conv_shape *s, int32_t *C)
{
    const int G = s->G, Cg = s->C / G, OCg = s->OC / G, K = s->K, N = s->OC;
    const int64_t HW = (int64_t)s->H * s->W, KK = (int64_t)Cg * K * K;
    for (int oc = 0; oc < N; oc++) {
        const int8_t *w = wq + oc * KK;
        const uint8_t *xg = x + (int64_t)(oc / OCg) * Cg * HW;
        for (int oh = 0; oh < s->OH; oh++)
            for (int ow = 0; ow < s->OW; ow++) {
                int32_t acc = 0;
                for (int cg = 0; cg < Cg; cg++)
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            const int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                            const int32_t u = ih < 0 || ih >= s->H || iw < 0 || iw >= s->W
                                                  ? zp : xg[cg * HW + (int64_t)ih * s->W + iw];
                            acc += (int32_t)w[(cg * K + kh) * K + kw] * u;
                        }
                C[((int64_t)oh * s->OW + ow) * N + oc] = acc;
            }
    }
}

void mtc_qconv_group(const int8_t *wq, const uint8_t *x, int32_t zp, const mtc_conv_shape *s, int32_t *C)
{
    const int G = s->G, Cg = s->C / G, OCg = s->OC / G, K = s->K, N = s->OC, OW = s->OW, st = s->stride;
    const int64_t HW = (int64_t)s->H * s->W, KK = (int64_t)Cg * K * K;
    if (OW > ROW_MAX) { /* wider than any image mtc reads */
        mtc_qconv_group_ref(wq, x, zp, s, C);
        return;
    }
    int32_t row[ROW_MAX];
    for (int oc = 0; oc < N; oc++) {
        const int8_t *w = wq + oc * KK;
        const uint8_t *xg = x + (int64_t)(oc / OCg) * Cg * HW;
        for (int oh = 0; oh < s->OH; oh++) {
            for (int ow = 0; ow < OW; ow++) row[ow] = 0;
            for (int cg = 0; cg < Cg; cg++)
                for (int kh = 0; kh < K; kh++) {
                    const int ih = oh * st - s->pad + kh;
                    const uint8_t *xr = ih >= 0 && ih < s->H ? xg + cg * HW + (int64_t)ih * s->W : NULL;
                    for (int kw = 0; kw < K; kw++) {
                        const int32_t wv = w[(cg * K + kh) * K + kw], wz = wv * zp;
                        int lo = 0, hi = 0;
                        if (xr) mtc_conv_valid_cols(s, kw, &lo, &hi);
                        const int off = kw - s->pad;
                        for (int ow = 0; ow < lo; ow++) row[ow] += wz;
                        if (st == 1)
                            for (int ow = lo; ow < hi; ow++) row[ow] += wv * (int32_t)xr[ow + off];
                        else
                            for (int ow = lo; ow < hi; ow++) row[ow] += wv * (int32_t)xr[ow * st + off];
                        for (int ow = hi > lo ? hi : lo; ow < OW; ow++) row[ow] += wz;
                    }
                }
            for (int ow = 0; ow < OW; ow++) C[((int64_t)oh * OW + ow) * N + oc] = row[ow];
        }
    }
}

void mtc_qconv_dw_weights(const int8_t *wq, const mtc_conv_shape *s, int8_t *wt)
{
    const int N = s->OC, KK = s->K * s->K;
    for (int n = 0; n < N; n++)
        for (int t = 0; t < KK; t++) wt[(int64_t)t * N + n] = wq[(int64_t)n * KK + t];
}

void mtc_qconv_dw_nhwc(const int8_t *wt, const uint8_t *x, int32_t zp, const mtc_conv_shape *s, int32_t *C)
{
    const int N = s->OC, Cin = s->C, mult = N / Cin, K = s->K, st = s->stride, OW = s->OW;
    for (int oh = 0; oh < s->OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
            int32_t *acc = C + ((int64_t)oh * OW + ow) * N;
            for (int n = 0; n < N; n++) acc[n] = 0;
            for (int kh = 0; kh < K; kh++) {
                const int ih = oh * st - s->pad + kh;
                for (int kw = 0; kw < K; kw++) {
                    const int iw = ow * st - s->pad + kw;
                    const int8_t *w = wt + (int64_t)(kh * K + kw) * N;
                    if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) {
                        for (int n = 0; n < N; n++) acc[n] += (int32_t)w[n] * zp;
                        continue;
                    }
                    const uint8_t *u = x + ((int64_t)ih * s->W + iw) * Cin;
                    if (mult == 1)
                        for (int n = 0; n < N; n++) acc[n] += (int32_t)w[n] * (int32_t)u[n];
                    else
                        for (int n = 0; n < N; n++) acc[n] += (int32_t)w[n] * (int32_t)u[n / mult];
                }
            }
        }
}
