/*
 * conv_shape.c — a convolution's shapes (mtc_conv_shape_init): what a model
 * needs to lay its layers out, apart from conv2d.c's im2col + SGEMM so that
 * building a model from a spec needs no BLAS.
 */
#include "mtc.h"

#include <string.h>

int mtc_conv_shape_init(mtc_conv_shape *s, int C, int H, int W, int OC, int K,
                        int stride, int pad)
{
    memset(s, 0, sizeof *s);
    if (C <= 0 || H <= 0 || W <= 0 || OC <= 0 || K <= 0 || stride <= 0 || pad < 0)
        return -1;
    if (H + 2 * pad < K || W + 2 * pad < K) return -1;
    s->C = C; s->H = H; s->W = W; s->OC = OC; s->K = K;
    s->stride = stride; s->pad = pad;
    s->G = 1;
    s->OH = (H + 2 * pad - K) / stride + 1;
    s->OW = (W + 2 * pad - K) / stride + 1;
    return 0;
}
