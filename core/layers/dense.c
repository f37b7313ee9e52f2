/*
 * dense.c — fully connected layer, forward and backward side by side.
 *   in (B,I), W (O,I), b (O), out (B,O):  out = in·Wᵀ + b
 * Both directions are one BLAS call each (sgemv when B == 1). No activation
 * here: the caller applies mtc_act_* so an engine can fuse it later.
 */
#include "mtc.h"

#include <cblas.h>
#include <string.h>

#undef I /* cblas.h pulls in <complex.h>; I is the input width here */

void mtc_dense_forward(float *out, const float *in, const float *W,
                       const float *b, int B, int I, int O)
{
    mtc_dense_forward_ld(out, O, in, W, b, B, I, O);
}

/* out rows ld apart (ld > O: a block of output units of a wider layer, as
 * the model's split forward hands each thread). */
void mtc_dense_forward_ld(float *out, int ld, const float *in, const float *W, const float *b, int B, int I,
                          int O)
{
    if (B <= 0 || O <= 0) return;
    /* The bias is written first and the GEMM accumulates on top (beta = 1):
     * one pass over `out` fewer than GEMM(beta = 0) followed by a bias add,
     * and OpenBLAS skips its beta-scaling pass entirely when beta == 1. */
    float beta = 0.0f;
    if (b) {
        for (int r = 0; r < B; r++) memcpy(out + (size_t)r * ld, b, (size_t)O * sizeof *b);
        beta = 1.0f;
    }
    if (I <= 0) {
        if (!b)
            for (int r = 0; r < B; r++) memset(out + (size_t)r * ld, 0, (size_t)O * sizeof *out);
        return;
    }
    if (B == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, O, I, 1.0f, W, I, in, 1, beta, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, O, I, 1.0f, in, I,
                    W, I, beta, out, ld);
}

/* dW += doutᵀ·in, db += Σ_rows dout, din += dout·W; dout rows are ld apart
 * (ld > O: a block of output units of a wider gradient, as the model's
 * split backward hands each thread). */
void mtc_dense_backward_ld(float *din, float *dW, float *db, const float *dout, int ld,
                           const float *in, const float *W, int B, int I, int O)
{
    if (B <= 0 || O <= 0) return;
    if (db)
        for (int r = 0; r < B; r++) {
            const float *g = dout + (size_t)r * ld;
            for (int o = 0; o < O; o++) db[o] += g[o];
        }
    if (I <= 0) return;
    if (B == 1) {
        if (dW) cblas_sger(CblasRowMajor, O, I, 1.0f, dout, 1, in, 1, dW, I);
        if (din) cblas_sgemv(CblasRowMajor, CblasTrans, O, I, 1.0f, W, I, dout, 1, 1.0f, din, 1);
        return;
    }
    if (dW)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, B, 1.0f, dout, ld,
                    in, I, 1.0f, dW, I);
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, I, O, 1.0f, dout, ld,
                    W, I, 1.0f, din, I);
}

void mtc_dense_backward(float *din, float *dW, float *db, const float *dout,
                        const float *in, const float *W, int B, int I, int O)
{
    mtc_dense_backward_ld(din, dW, db, dout, O, in, W, B, I, O);
}
