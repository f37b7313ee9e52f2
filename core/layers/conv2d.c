/*
 * conv2d.c — 2-D convolution as im2col + SGEMM, over chunks of samples with
 * each chunk folded into the GEMM's N dimension.
 *   in (B,C,H,W), W (OC,C,K,K) = (OC, CKK), b (OC), out (B,OC,OH,OW)
 *   per chunk of Bc samples (mtc_conv_chunk): col (CKK, N), N = Bc·OH·OW,
 *   column b·OH·OW + oh·OW + ow; out_tmp (OC, N) = W · col, scattered to
 *   (Bc,OC,OH,OW) + bias.
 * Why chunks: the whole-batch im2col of a 3×3 conv is 9·C times the input
 * (29 MB for a 32->64 conv on 14×14 at batch 128) and dominated training
 * memory; a chunk of about CONV_CHUNK_COLS columns keeps the GEMM as fast
 * (faster: the chunk stays in cache) with a workspace below a megabyte.
 * Workspace layout of `col` (mtc_conv_col_floats floats):
 *   col[0, CKK·N)            the chunk's im2col matrix
 *   col[CKK·N, (CKK+OC)·N)   out_tmp in forward, dout regathered as (OC,N)
 *                            in backward
 * `dcol` needs CKK·N floats; the same count is enough. col and dcol must not
 * overlap. Nothing is allocated here. A one-sample chunk needs no tail: the
 * GEMM writes straight into `out` (its layout already is (OC, OH·OW)) and
 * reads dout in place; a 1×1, stride 1, pad 0 convolution skips im2col too.
 * Only dW depends on the chunking (its sum over samples runs chunk by chunk).
 */
#include "mtc.h"

#include <cblas.h>
#include <string.h>

/* GEMM columns per chunk (N = chunk·OH·OW). Measured (1 thread, batch 128,
 * 32->64 3×3 on 14×14, forward + backward): 39-40 ms for anything from 196
 * to 2048 columns, 41 ms at 4096, 48 ms for the whole batch (25088), whose
 * im2col no longer fits in cache. 512 stays clear of tiny GEMMs for small
 * images and costs 0.8 MB of col for that layer. */
#define CONV_CHUNK_COLS 512

/* Enough samples for about CONV_CHUNK_COLS columns (at least one), at
 * most B. */
int mtc_conv_chunk(const mtc_conv_shape *s, int B)
{
    int64_t ohw = (int64_t)s->OH * s->OW, c = (CONV_CHUNK_COLS + ohw - 1) / ohw;
    return c < B ? (int)c : B;
}

int64_t mtc_conv_col_floats(const mtc_conv_shape *s, int B)
{
    if (s->G > 1) return 1; /* the direct grouped kernels need none */
    int64_t N = (int64_t)mtc_conv_chunk(s, B) * s->OH * s->OW;
    return ((int64_t)s->C * s->K * s->K + s->OC) * N;
}

static int is_pointwise(const mtc_conv_shape *s, int B)
{
    return B == 1 && s->K == 1 && s->stride == 1 && s->pad == 0;
}

/* A "same" convolution (stride 1, output as large as the input): the
 * (kh, kw) row of one sample's plane is the input plane shifted by
 * (kh − pad)·W + kw − pad, so one copy moves it, and only the ends (rows
 * above and below the image) and the columns that wrapped around a row edge
 * (ow outside [lo, hi)) are zeroed after. Row by row this was OH short
 * memcpy/memset calls per plane: 6% of a BN teacher's training went to
 * the calls. */
static int same_conv(const mtc_conv_shape *s)
{
    return s->stride == 1 && s->OH == s->H && s->OW == s->W;
}

static void shift_plane(float *dst, const float *src, const mtc_conv_shape *s, int kh, int kw, int lo, int hi)
{
    const int OW = s->OW;
    const int64_t n = (int64_t)s->OH * OW, shift = (int64_t)(kh - s->pad) * s->W + (kw - s->pad);
    int64_t i0 = shift < 0 ? -shift : 0, i1 = shift > 0 ? n - shift : n;
    if (i0 > n) i0 = n;
    if (i1 < i0) i1 = i0;
    for (int64_t i = 0; i < i0; i++) dst[i] = 0.0f;
    memcpy(dst + i0, src + i0 + shift, (size_t)(i1 - i0) * sizeof *dst);
    for (int64_t i = i1; i < n; i++) dst[i] = 0.0f;
    /* strided column stores (a row-by-row loop became memset calls) */
    for (int ow = 0; ow < lo; ow++)
        for (int64_t i = ow; i < n; i += OW) dst[i] = 0.0f;
    for (int ow = hi; ow < OW; ow++)
        for (int64_t i = ow; i < n; i += OW) dst[i] = 0.0f;
}

/* col[r, b·OHW + oh·OW + ow] = in[b, c, oh·st − pad + kh, ow·st − pad + kw] */
static void im2col(float *col, const float *in, const mtc_conv_shape *s, int B)
{
    const int K = s->K, st = s->stride, p = s->pad, OH = s->OH, OW = s->OW;
    const int64_t OHW = (int64_t)OH * OW, N = B * OHW, HW = (int64_t)s->H * s->W;
    const int same = same_conv(s);
    for (int c = 0; c < s->C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                float *dst = col + ((int64_t)(c * K + kh) * K + kw) * N;
                int lo, hi;
                mtc_conv_valid_cols(s, kw, &lo, &hi);
                for (int b = 0; b < B; b++) {
                    const float *src = in + ((int64_t)b * s->C + c) * HW;
                    if (same) {
                        shift_plane(dst + b * OHW, src, s, kh, kw, lo, hi);
                        continue;
                    }
                    for (int oh = 0; oh < OH; oh++) {
                        float *row = dst + b * OHW + (int64_t)oh * OW;
                        int ih = oh * st - p + kh;
                        if (ih < 0 || ih >= s->H) {
                            memset(row, 0, (size_t)OW * sizeof *row);
                            continue;
                        }
                        const float *srow = src + (int64_t)ih * s->W;
                        const int off = kw - p; /* iw = ow·st + off */
                        for (int ow = 0; ow < lo; ow++) row[ow] = 0.0f;
                        if (st == 1 && hi > lo)
                            memcpy(row + lo, srow + lo + off, (size_t)(hi - lo) * sizeof *row);
                        else
                            for (int ow = lo; ow < hi; ow++) row[ow] = srow[ow * st + off];
                        for (int ow = hi; ow < OW; ow++) row[ow] = 0.0f;
                    }
                }
            }
}

/* The adjoint of im2col: din[b,c,ih,iw] += every col entry that read it. */
static void col2im_add(float *din, const float *col, const mtc_conv_shape *s, int B)
{
    const int K = s->K, st = s->stride, p = s->pad, OH = s->OH, OW = s->OW;
    const int64_t OHW = (int64_t)OH * OW, N = B * OHW, HW = (int64_t)s->H * s->W;
    for (int c = 0; c < s->C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                const float *src = col + ((int64_t)(c * K + kh) * K + kw) * N;
                int lo, hi;
                mtc_conv_valid_cols(s, kw, &lo, &hi);
                for (int b = 0; b < B; b++) {
                    float *dst = din + ((int64_t)b * s->C + c) * HW;
                    for (int oh = 0; oh < OH; oh++) {
                        int ih = oh * st - p + kh;
                        if (ih < 0 || ih >= s->H) continue;
                        const float *row = src + b * OHW + (int64_t)oh * OW;
                        float *drow = dst + (int64_t)ih * s->W;
                        const int off = kw - p;
                        if (st == 1)
                            for (int ow = lo; ow < hi; ow++) drow[ow + off] += row[ow];
                        else
                            for (int ow = lo; ow < hi; ow++) drow[ow * st + off] += row[ow];
                    }
                }
            }
}

/* One chunk of B samples: im2col, one GEMM, scatter + bias. */
static void forward_chunk(float *out, const float *in, const float *W, const float *b,
                          float *col, const mtc_conv_shape *s, int B)
{
    const int OC = s->OC, CKK = s->C * s->K * s->K;
    const int64_t OHW = (int64_t)s->OH * s->OW, N = B * OHW;
    const float *A = in;
    if (!is_pointwise(s, B)) {
        im2col(col, in, s, B);
        A = col;
    }
    if (B == 1) { /* (OC, OHW) is already the output layout */
        float beta = 0.0f;
        if (b) {
            for (int oc = 0; oc < OC; oc++)
                for (int64_t i = 0; i < OHW; i++) out[oc * OHW + i] = b[oc];
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, (int)N, CKK, 1.0f,
                    W, CKK, A, (int)N, beta, out, (int)N);
        return;
    }
    float *tmp = col + (int64_t)CKK * N;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, (int)N, CKK, 1.0f, W,
                CKK, A, (int)N, 0.0f, tmp, (int)N);
    for (int bi = 0; bi < B; bi++)
        for (int oc = 0; oc < OC; oc++) {
            const float *src = tmp + (int64_t)oc * N + bi * OHW;
            float *dst = out + ((int64_t)bi * OC + oc) * OHW;
            float bv = b ? b[oc] : 0.0f;
            for (int64_t i = 0; i < OHW; i++) dst[i] = src[i] + bv;
        }
}

void mtc_conv2d_forward(float *out, const float *in, const float *W,
                        const float *b, float *col, const mtc_conv_shape *s,
                        int B)
{
    if (s->G > 1) {
        mtc_conv2d_group_forward(out, in, W, b, s, B);
        return;
    }
    const int64_t is = (int64_t)s->C * s->H * s->W, os = (int64_t)s->OC * s->OH * s->OW;
    const int bc = mtc_conv_chunk(s, B);
    for (int b0 = 0; b0 < B; b0 += bc) {
        int n = B - b0 < bc ? B - b0 : bc;
        forward_chunk(out + b0 * os, in + b0 * is, W, b, col, s, n);
    }
}

/* One chunk of B samples: dW += dout_mat · colᵀ, din += col2im(Wᵀ · dout_mat). */
static void backward_chunk(float *din, float *dW, const float *dout, const float *in,
                           const float *W, float *col, float *dcol, const mtc_conv_shape *s,
                           int B)
{
    const int OC = s->OC, CKK = s->C * s->K * s->K;
    const int64_t OHW = (int64_t)s->OH * s->OW, N = B * OHW;
    const float *dmat = dout;
    if (B > 1) { /* regather (B,OC,OHW) -> (OC, B·OHW) */
        float *g = col + (int64_t)CKK * N;
        for (int bi = 0; bi < B; bi++)
            for (int oc = 0; oc < OC; oc++)
                memcpy(g + (int64_t)oc * N + bi * OHW, dout + ((int64_t)bi * OC + oc) * OHW,
                       (size_t)OHW * sizeof *g);
        dmat = g;
    }
    const int pw = is_pointwise(s, B);
    if (dW) {
        const float *A = in;
        if (!pw) {
            im2col(col, in, s, B);
            A = col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, CKK, (int)N, 1.0f, dmat,
                    (int)N, A, (int)N, 1.0f, dW, CKK);
    }
    if (din) {
        if (pw) { /* din (C, HW) += Wᵀ · dout directly */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, (int)N, OC, 1.0f, W,
                        CKK, dmat, (int)N, 1.0f, din, (int)N);
            return;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, (int)N, OC, 1.0f, W,
                    CKK, dmat, (int)N, 0.0f, dcol, (int)N);
        col2im_add(din, dcol, s, B);
    }
}

/* Σ x[0..n) in 16 interleaved partial sums, combined pairwise: independent
 * adds the compiler turns into vector adds (one running sum was a chain of
 * dependent scalar adds, 9% of teacher training). Fixed order: deterministic. */
static float sum_lanes(const float *x, int64_t n)
{
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += x[i + l];
    for (; i < n; i++) acc[i & 15] += x[i];
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* dW += Σ_chunks dout_mat · colᵀ, db += Σ dout, din += col2im(Wᵀ · dout_mat).
 * col is recomputed from `in` (its contents on entry are ignored). */
void mtc_conv2d_backward(float *din, float *dW, float *db, const float *dout,
                         const float *in, const float *W, float *col,
                         float *dcol, const mtc_conv_shape *s, int B)
{
    if (B <= 0) return;
    if (s->G > 1) {
        mtc_conv2d_group_backward(din, dW, db, dout, in, W, s, B);
        return;
    }
    const int OC = s->OC;
    const int64_t OHW = (int64_t)s->OH * s->OW;
    const int64_t is = (int64_t)s->C * s->H * s->W, os = OC * OHW;
    if (db)
        for (int bi = 0; bi < B; bi++)
            for (int oc = 0; oc < OC; oc++) {
                const float *g = dout + ((int64_t)bi * OC + oc) * OHW;
                db[oc] += sum_lanes(g, OHW);
            }
    if (!dW && !din) return;
    const int bc = mtc_conv_chunk(s, B);
    for (int b0 = 0; b0 < B; b0 += bc) {
        int n = B - b0 < bc ? B - b0 : bc;
        backward_chunk(din ? din + b0 * is : NULL, dW, dout + b0 * os, in + b0 * is, W, col,
                       dcol, s, n);
    }
}
