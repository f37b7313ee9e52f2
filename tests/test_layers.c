/*
 * test_layers.c — every layer kernel against a double-precision reference:
 * forward values, and backward against central finite differences of the
 * double reference (tests/gradcheck.h). The objective is L = Σ proj·out for
 * a fixed random proj, so the analytic gradients are backward(dout = proj).
 *
 * Error bound: GRAD_TOL = 1e-4 on max|analytic − FD| / max|FD|. The FD of
 * the double reference is accurate to ~1e-9 (h = 1e-6, O(h²) truncation and
 * 1e-16/h rounding), so the error measured is the float kernel's own
 * rounding: ~1e-7 per operation over sums of at most a few hundred terms
 * here, i.e. ≤ ~1e-5. A wrong formula gives errors of order 1. Forward values
 * are held to FWD_TOL = 1e-5 relative for the same reason.
 * Every backward is also called twice to check it accumulates (+=).
 */
#include "tests/gradcheck.h"
#include "tests/testutil.h"
#include <cmocka.h>

#ifndef GRAD_TOL
#define GRAD_TOL 1e-4
#endif
#define FWD_TOL 1e-5

static int fwd_ok(const char *what, const float *a, const double *ref, int64_t n)
{
    return gc_ok(what, a, ref, n, FWD_TOL);
}

static double dot(const double *proj, const double *out, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += proj[i] * out[i];
    return s;
}

/* ---- activations --------------------------------------------------------- */
static double act_ref(double x, int act)
{
    switch (act) {
    case MTC_ACT_RELU: return x > 0 ? x : 0;
    case MTC_ACT_LEAKY: return x > 0 ? x : 0.01 * x;
    case MTC_ACT_TANH: return tanh(x);
    case MTC_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case MTC_ACT_GELU:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case MTC_ACT_GELU_ERF: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    default: return x;
    }
}

typedef struct { double *x, *proj; int64_t n; int act; } act_ctx;
static double act_obj(void *p)
{
    act_ctx *c = p;
    double s = 0.0;
    for (int64_t i = 0; i < c->n; i++) s += c->proj[i] * act_ref(c->x[i], c->act);
    return s;
}

static void test_act_forward_and_backward_match_fd(void **st)
{
    (void)st;
    const int64_t n = 64;
    mtc_rng r;
    mtc_rng_seed(&r, 1);
    for (int act = MTC_ACT_NONE; act <= MTC_ACT_GELU_ERF; act++) {
        float *x = gc_rand(&r, n, -3.0f, 3.0f), *proj = gc_rand(&r, n, -1.0f, 1.0f);
        for (int64_t i = 0; i < n; i++)
            if (fabsf(x[i]) < 0.01f) x[i] = 0.05f; /* keep off the relu kink */
        float *y = gc_zeros(n), *dx = gc_zeros(n), *dx1;
        double *xd = gc_dup(x, n), *pd = gc_dup(proj, n), *yr = gc_dzeros(n), *g = gc_dzeros(n);
        mtc_act_forward(y, x, n, act);
        for (int64_t i = 0; i < n; i++) yr[i] = act_ref(xd[i], act);
        assert_true(fwd_ok(mtc_act_name(act), y, yr, n));
        act_ctx c = {xd, pd, n, act};
        gc_fd(act_obj, &c, xd, n, g);
        mtc_act_backward(dx, proj, x, y, n, act);
        assert_true(gc_ok(mtc_act_name(act), dx, g, n, GRAD_TOL));
        dx1 = gc_copy(dx, n);
        mtc_act_backward(dx, proj, x, y, n, act);
        assert_true(gc_doubled(mtc_act_name(act), dx1, dx, n));
        /* in-place forward: the lost pointer may be NULL */
        memset(dx, 0, n * sizeof *dx);
        if (act != MTC_ACT_GELU && act != MTC_ACT_GELU_ERF) {
            mtc_act_backward(dx, proj, act == MTC_ACT_TANH || act == MTC_ACT_SIGMOID ? x : NULL,
                             act == MTC_ACT_TANH || act == MTC_ACT_SIGMOID ? NULL : y, n, act);
            assert_true(gc_ok("act with one side NULL", dx, g, n, GRAD_TOL));
        }
        float *z = gc_copy(x, n);
        mtc_act_forward(z, z, n, act);
        assert_memory_equal(z, y, n * sizeof *z);
        free(x); free(proj); free(y); free(dx); free(dx1); free(z);
        free(xd); free(pd); free(yr); free(g);
    }
}

/* gelu runs on act.c's own exp (vectorisable, not libm's): its forward and
 * derivative against the double formula over [-40, 40] in steps of 1e-3,
 * to 3e-7 / 1e-6 of max(1, |value|) (measured 1.2e-7 / 1.5e-7), and at
 * extremes (no NaN, no overflow: gelu(x) → x above, → 0 below). */
static void test_gelu_matches_double_over_wide_range(void **st)
{
    (void)st;
    const int64_t n = 80001 + 6;
    float *x = gc_zeros(n), *y = gc_zeros(n), *dy = gc_zeros(n), *one = gc_zeros(n);
    for (int64_t i = 0; i < n - 6; i++) x[i] = -40.0f + 1e-3f * (float)i;
    const float ext[6] = {-1e4f, -200.0f, -87.5f, 87.5f, 200.0f, 1e4f};
    memcpy(x + n - 6, ext, sizeof ext);
    for (int64_t i = 0; i < n; i++) one[i] = 1.0f;
    mtc_act_forward(y, x, n, MTC_ACT_GELU);
    mtc_act_backward(dy, one, x, y, n, MTC_ACT_GELU);
    const double c = sqrt(2.0 / M_PI), a = 0.044715;
    double worst = 0.0, worst_d = 0.0;
    for (int64_t i = 0; i < n - 6; i++) {
        double v = x[i], th = tanh(c * (v + a * v * v * v));
        double f = 0.5 * v * (1.0 + th);
        double d = 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * c * (1.0 + 3.0 * a * v * v);
        worst = fmax(worst, fabs(y[i] - f) / fmax(1.0, fabs(f)));
        worst_d = fmax(worst_d, fabs(dy[i] - d) / fmax(1.0, fabs(d)));
    }
    print_message("gelu: max error %.3g (value), %.3g (derivative)\n", worst, worst_d);
    assert_true(worst <= 3e-7);
    assert_true(worst_d <= 1e-6);
    for (int k = 0; k < 6; k++) {
        float v = y[n - 6 + k], d = dy[n - 6 + k];
        assert_true(isfinite(v) && isfinite(d));
        if (ext[k] > 0) assert_true(v == ext[k] && d == 1.0f);
        else assert_true(fabsf(v) < 1e-30f && fabsf(d) < 1e-20f);
    }
    free(x); free(y); free(dy); free(one);
}

static void test_act_parse_and_name_round_trip(void **st)
{
    (void)st;
    for (int a = MTC_ACT_NONE; a <= MTC_ACT_GELU_ERF; a++)
        assert_int_equal(mtc_act_parse(mtc_act_name(a)), a);
    assert_int_equal(mtc_act_parse("swish"), -1);
    assert_int_equal(mtc_act_parse(NULL), -1);
}

/* ---- dense --------------------------------------------------------------- */
typedef struct { double *in, *W, *b, *proj; int B, I, O; } dense_ctx;
static void dense_ref(double *out, const dense_ctx *c)
{
    for (int r = 0; r < c->B; r++)
        for (int o = 0; o < c->O; o++) {
            double s = c->b ? c->b[o] : 0.0;
            for (int i = 0; i < c->I; i++) s += c->in[r * c->I + i] * c->W[o * c->I + i];
            out[r * c->O + o] = s;
        }
}
static double dense_obj(void *p)
{
    dense_ctx *c = p;
    double *out = gc_dzeros((int64_t)c->B * c->O);
    dense_ref(out, c);
    double s = dot(c->proj, out, (int64_t)c->B * c->O);
    free(out);
    return s;
}

static void check_dense(int B, int I, int O, int with_bias)
{
    mtc_rng r;
    mtc_rng_seed(&r, 100 + B);
    const int64_t nin = (int64_t)B * I, nw = (int64_t)O * I, nout = (int64_t)B * O;
    float *in = gc_rand(&r, nin, -1, 1), *W = gc_rand(&r, nw, -1, 1), *b = gc_rand(&r, O, -1, 1);
    float *proj = gc_rand(&r, nout, -1, 1), *out = gc_zeros(nout);
    float *din = gc_zeros(nin), *dW = gc_zeros(nw), *db = gc_zeros(O);
    dense_ctx c = {gc_dup(in, nin), gc_dup(W, nw), with_bias ? gc_dup(b, O) : NULL,
                   gc_dup(proj, nout), B, I, O};
    double *ref = gc_dzeros(nout), *g = gc_dzeros(nin > nw ? nin : nw);
    mtc_dense_forward(out, in, W, with_bias ? b : NULL, B, I, O);
    dense_ref(ref, &c);
    assert_true(fwd_ok("dense forward", out, ref, nout));
    mtc_dense_backward(din, dW, with_bias ? db : NULL, proj, in, W, B, I, O);
    gc_fd(dense_obj, &c, c.in, nin, g);
    assert_true(gc_ok("dense din", din, g, nin, GRAD_TOL));
    gc_fd(dense_obj, &c, c.W, nw, g);
    assert_true(gc_ok("dense dW", dW, g, nw, GRAD_TOL));
    if (with_bias) {
        gc_fd(dense_obj, &c, c.b, O, g);
        assert_true(gc_ok("dense db", db, g, O, GRAD_TOL));
    }
    float *din1 = gc_copy(din, nin), *dW1 = gc_copy(dW, nw), *db1 = gc_copy(db, O);
    mtc_dense_backward(din, dW, with_bias ? db : NULL, proj, in, W, B, I, O);
    assert_true(gc_doubled("dense din", din1, din, nin));
    assert_true(gc_doubled("dense dW", dW1, dW, nw));
    if (with_bias) assert_true(gc_doubled("dense db", db1, db, O));
    /* NULL gradients are skipped */
    mtc_dense_backward(NULL, NULL, NULL, proj, in, W, B, I, O);
    /* a block of output units [o0, O) through the strided form (the split
     * backward's per-thread share) accumulates the same rows of dW, db */
    if (O > 1) {
        const int o0 = O / 2;
        float *dWb = gc_zeros(nw), *dbb = gc_zeros(O), *dWf = gc_zeros(nw), *dbf = gc_zeros(O);
        mtc_dense_backward(NULL, dWf, dbf, proj, in, W, B, I, O);
        mtc_dense_backward_ld(NULL, dWb + (int64_t)o0 * I, dbb + o0, proj + o0, O, in, W, B, I, O - o0);
        for (int64_t i = (int64_t)o0 * I; i < nw; i++) assert_true(fabsf(dWb[i] - dWf[i]) <= 1e-6f * (1 + fabsf(dWf[i])));
        for (int o = o0; o < O; o++) assert_true(fabsf(dbb[o] - dbf[o]) <= 1e-6f * (1 + fabsf(dbf[o])));
        for (int64_t i = 0; i < (int64_t)o0 * I; i++) assert_true(dWb[i] == 0.0f); /* nothing outside the block */
        free(dWb); free(dbb); free(dWf); free(dbf);
    }
    free(in); free(W); free(b); free(proj); free(out); free(din); free(dW); free(db);
    free(din1); free(dW1); free(db1);
    free(c.in); free(c.W); free(c.b); free(c.proj); free(ref); free(g);
}

static void test_dense_backward_matches_fd(void **st)
{
    (void)st;
    check_dense(5, 7, 4, 1);
    check_dense(3, 6, 5, 0);
}

static void test_dense_batch1_uses_same_math(void **st)
{
    (void)st;
    check_dense(1, 9, 6, 1);
    check_dense(1, 4, 3, 0);
}

/* ---- conv2d -------------------------------------------------------------- */
typedef struct { double *in, *W, *b, *proj; mtc_conv_shape s; int B; } conv_ctx;
/* Direct convolution, the obvious seven loops. */
static void conv_ref(double *out, const conv_ctx *c)
{
    const mtc_conv_shape *s = &c->s;
    for (int b = 0; b < c->B; b++)
        for (int oc = 0; oc < s->OC; oc++)
            for (int oh = 0; oh < s->OH; oh++)
                for (int ow = 0; ow < s->OW; ow++) {
                    double acc = c->b ? c->b[oc] : 0.0;
                    const int Cg = s->C / s->G, g = oc / (s->OC / s->G); /* groups: G = 1 is dense */
                    for (int cg = 0; cg < Cg; cg++)
                        for (int kh = 0; kh < s->K; kh++)
                            for (int kw = 0; kw < s->K; kw++) {
                                int ih = oh * s->stride - s->pad + kh;
                                int iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                acc += c->W[((oc * Cg + cg) * s->K + kh) * s->K + kw] *
                                       c->in[((b * s->C + g * Cg + cg) * s->H + ih) * s->W + iw];
                            }
                    out[((b * s->OC + oc) * s->OH + oh) * s->OW + ow] = acc;
                }
}
static double conv_obj(void *p)
{
    conv_ctx *c = p;
    int64_t n = (int64_t)c->B * c->s.OC * c->s.OH * c->s.OW;
    double *out = gc_dzeros(n);
    conv_ref(out, c);
    double s = dot(c->proj, out, n);
    free(out);
    return s;
}

static void check_conv_g(int B, int C, int H, int W, int OC, int K, int stride, int pad, int G,
                         int grads)
{
    char what[96];
    snprintf(what, sizeof what, "conv B%d C%d %dx%d OC%d K%d s%d p%d G%d", B, C, H, W, OC, K,
             stride, pad, G);
    mtc_conv_shape s;
    assert_int_equal(mtc_conv_shape_init(&s, C, H, W, OC, K, stride, pad), 0);
    assert_int_equal(mtc_conv_shape_groups(&s, G), 0);
    mtc_rng r;
    mtc_rng_seed(&r, 7 * B + K + stride + pad + 31 * G);
    const int64_t nin = (int64_t)B * C * H * W, nw = (int64_t)OC * (C / G) * K * K;
    const int64_t nout = (int64_t)B * OC * s.OH * s.OW, ncol = mtc_conv_col_floats(&s, B);
    float *in = gc_rand(&r, nin, -1, 1), *Wt = gc_rand(&r, nw, -1, 1), *b = gc_rand(&r, OC, -1, 1);
    float *proj = gc_rand(&r, nout, -1, 1), *out = gc_zeros(nout);
    float *col = gc_rand(&r, ncol, -9, 9), *dcol = gc_rand(&r, ncol, -9, 9); /* garbage */
    conv_ctx c = {gc_dup(in, nin), gc_dup(Wt, nw), gc_dup(b, OC), gc_dup(proj, nout), s, B};
    double *ref = gc_dzeros(nout);
    mtc_conv2d_forward(out, in, Wt, b, col, &s, B);
    conv_ref(ref, &c);
    if (!fwd_ok(what, out, ref, nout)) fail_msg("%s forward", what);
    if (grads) {
        float *din = gc_zeros(nin), *dW = gc_zeros(nw), *db = gc_zeros(OC);
        double *g = gc_dzeros(nin > nw ? nin : nw);
        mtc_conv2d_backward(din, dW, db, proj, in, Wt, col, dcol, &s, B);
        gc_fd(conv_obj, &c, c.in, nin, g);
        if (!gc_ok(what, din, g, nin, GRAD_TOL)) fail_msg("%s din", what);
        gc_fd(conv_obj, &c, c.W, nw, g);
        if (!gc_ok(what, dW, g, nw, GRAD_TOL)) fail_msg("%s dW", what);
        gc_fd(conv_obj, &c, c.b, OC, g);
        if (!gc_ok(what, db, g, OC, GRAD_TOL)) fail_msg("%s db", what);
        float *din1 = gc_copy(din, nin), *dW1 = gc_copy(dW, nw), *db1 = gc_copy(db, OC);
        mtc_conv2d_backward(din, dW, db, proj, in, Wt, col, dcol, &s, B);
        assert_true(gc_doubled("conv din", din1, din, nin));
        assert_true(gc_doubled("conv dW", dW1, dW, nw));
        assert_true(gc_doubled("conv db", db1, db, OC));
        /* each gradient alone (the others NULL) gives the same values */
        float *dW2 = gc_zeros(nw), *din2 = gc_zeros(nin);
        mtc_conv2d_backward(NULL, dW2, NULL, proj, in, Wt, col, dcol, &s, B);
        mtc_conv2d_backward(din2, NULL, NULL, proj, in, Wt, col, dcol, &s, B);
        assert_true(gc_doubled("conv dW alone", dW2, dW, nw));
        assert_true(gc_doubled("conv din alone", din2, din, nin));
        free(din); free(dW); free(db); free(g); free(din1); free(dW1); free(db1);
        free(dW2); free(din2);
    }
    if (G > 1) { /* grouped: every sample computed alone gives the batch's bytes */
        const int64_t is = nin / B, os = nout / B;
        float *one = gc_zeros(os);
        for (int bi = 0; bi < B; bi++) {
            mtc_conv2d_forward(one, in + bi * is, Wt, b, col, &s, 1);
            if (memcmp(one, out + bi * os, (size_t)os * sizeof *one)) fail_msg("%s: sample %d alone differs", what, bi);
        }
        free(one);
    }
    free(in); free(Wt); free(b); free(proj); free(out); free(col); free(dcol);
    free(c.in); free(c.W); free(c.b); free(c.proj); free(ref);
}

static void check_conv(int B, int C, int H, int W, int OC, int K, int stride, int pad, int grads)
{
    check_conv_g(B, C, H, W, OC, K, stride, pad, 1, grads);
}

/* Grouped and depthwise convolution against the direct reference and
 * finite differences; a grouped conv equals a dense one whose weights are
 * zero outside the groups' blocks (to float rounding: other summation
 * order); groups must divide both channel counts. */
static void test_grouped_and_depthwise_conv(void **st)
{
    (void)st;
    check_conv_g(2, 4, 6, 6, 6, 3, 1, 1, 2, 1); /* 2 groups of 2 -> 3 */
    check_conv_g(3, 3, 7, 7, 3, 3, 1, 1, 3, 1); /* depthwise */
    check_conv_g(2, 3, 7, 7, 6, 3, 2, 1, 3, 1); /* depthwise, multiplier 2, stride 2 */
    check_conv_g(2, 4, 5, 5, 4, 1, 1, 0, 4, 1); /* 1x1 depthwise */
    mtc_conv_shape s, d;
    assert_int_equal(mtc_conv_shape_init(&s, 4, 5, 5, 6, 3, 1, 1), 0);
    assert_int_equal(mtc_conv_shape_groups(&s, 3), -1); /* 3 does not divide 4 */
    assert_int_equal(mtc_conv_shape_groups(&s, 4), -1); /* nor 6 */
    assert_int_equal(mtc_conv_shape_groups(&s, 2), 0);
    d = s;
    d.G = 1;
    mtc_rng r;
    mtc_rng_seed(&r, 5);
    const int B = 2, Cg = 2, OCg = 3;
    float *in = gc_rand(&r, B * 4 * 25, -1, 1), *Wg = gc_rand(&r, 6 * Cg * 9, -1, 1), *b = gc_rand(&r, 6, -1, 1);
    float *Wd = gc_zeros(6 * 4 * 9), *og = gc_zeros(B * 6 * 25), *od = gc_zeros(B * 6 * 25);
    for (int oc = 0; oc < 6; oc++)
        for (int cg = 0; cg < Cg; cg++)
            memcpy(Wd + (oc * 4 + (oc / OCg) * Cg + cg) * 9, Wg + (oc * Cg + cg) * 9, 9 * sizeof(float));
    float *col = gc_zeros(mtc_conv_col_floats(&d, B));
    mtc_conv2d_forward(og, in, Wg, b, NULL, &s, B);
    mtc_conv2d_forward(od, in, Wd, b, col, &d, B);
    for (int i = 0; i < B * 6 * 25; i++) assert_true(fabsf(og[i] - od[i]) <= 1e-5f * (1 + fabsf(od[i])));
    free(in); free(Wg); free(b); free(Wd); free(og); free(od); free(col);
}

static void test_conv_shape_rejects_impossible(void **st)
{
    (void)st;
    mtc_conv_shape s;
    assert_int_equal(mtc_conv_shape_init(&s, 1, 28, 28, 32, 3, 1, 1), 0);
    assert_int_equal(s.OH, 28);
    assert_int_equal(mtc_conv_shape_init(&s, 1, 28, 28, 32, 3, 2, 0), 0);
    assert_int_equal(s.OH, 13);
    assert_int_equal(mtc_conv_shape_init(&s, 1, 2, 2, 4, 5, 1, 0), -1);
    assert_int_equal(mtc_conv_shape_init(&s, 1, 4, 4, 4, 3, 0, 0), -1);
    assert_int_equal(mtc_conv_shape_init(&s, 0, 4, 4, 4, 3, 1, 0), -1);
    assert_int_equal(mtc_conv_shape_init(&s, 1, 4, 4, 4, 3, 1, -1), -1);
    /* col holds im2col (C·K·K, N) plus an (OC, N) area, N = B·OH·OW */
    assert_int_equal(mtc_conv_shape_init(&s, 3, 5, 5, 4, 3, 1, 1), 0);
    assert_int_equal(mtc_conv_col_floats(&s, 2), (3 * 9 + 4) * 2 * 25);
}

/* The kernels work in chunks of about 512 columns, so the workspace stops
 * growing with the batch (28x28 -> one sample a chunk, 14x14 -> three). */
static void test_conv_workspace_does_not_grow_with_the_batch(void **st)
{
    (void)st;
    mtc_conv_shape s;
    assert_int_equal(mtc_conv_shape_init(&s, 1, 28, 28, 32, 3, 1, 1), 0);
    assert_int_equal(mtc_conv_col_floats(&s, 128), mtc_conv_col_floats(&s, 1));
    assert_int_equal(mtc_conv_shape_init(&s, 32, 14, 14, 64, 3, 1, 1), 0);
    assert_int_equal(mtc_conv_chunk(&s, 128), 3);
    assert_int_equal(mtc_conv_col_floats(&s, 128), (32 * 9 + 64) * 3 * 196);
}

static void test_conv2d_forward_matches_direct_loop(void **st)
{
    (void)st;
    check_conv(3, 2, 6, 7, 4, 3, 1, 0, 0);
    check_conv(3, 2, 6, 7, 4, 3, 1, 1, 0);
    check_conv(2, 3, 7, 6, 5, 3, 2, 0, 0);
    check_conv(2, 3, 7, 6, 5, 3, 2, 1, 0);
    check_conv(1, 2, 5, 5, 3, 3, 1, 1, 0);  /* B == 1 writes straight to out */
    check_conv(1, 4, 5, 6, 3, 1, 1, 0, 0);  /* pointwise, B == 1: no im2col */
    check_conv(2, 4, 5, 6, 3, 1, 1, 0, 0);
    check_conv(2, 1, 8, 8, 2, 5, 3, 2, 0);
    check_conv(1, 1, 3, 3, 2, 2, 1, 2, 0);  /* windows entirely in padding */
    check_conv(4, 1, 28, 28, 8, 3, 1, 1, 0);
    /* "same" convolutions (stride 1, output size = input size) shift whole
     * planes: 5x5 pad 2, shifts longer than a 2x2 plane, a 3x7 plane */
    check_conv(2, 2, 7, 6, 3, 5, 1, 2, 0);
    check_conv(2, 1, 2, 2, 2, 5, 1, 2, 0);
    check_conv(3, 2, 3, 7, 2, 3, 1, 1, 0);
}

/* An inference conv kernel's outputs on one ISA: every unpooled output
 * written (they start as NaN) and close to the double loop's (ref, relu
 * applied when asked), and its fused 2x2/2 max pool the same bits as
 * pooling its own unpooled output. */
static void check_conv_kernel(const char *what, int isa, int relu, const float *out, const double *ref, int64_t nout,
                              const float *fused, float *pooled, int64_t npool, int B, const mtc_conv_shape *s)
{
    for (int64_t i = 0; i < nout; i++) /* gc_err's fmax would skip a NaN */
        if (!isfinite(out[i])) fail_msg("%s isa %d: output %lld not written", what, isa, (long long)i);
    if (!fwd_ok(what, out, ref, nout)) fail_msg("%s isa %d relu %d", what, isa, relu);
    mtc_maxpool_forward(pooled, NULL, out, B, s->OC, s->OH, s->OW, 2, 2);
    if (memcmp(fused, pooled, (size_t)npool * sizeof *fused))
        fail_msg("%s isa %d relu %d: fused max pool differs", what, isa, relu);
}

/* Winograd F(2x2, 3x3) (inference) against the double direct loop, with
 * and without relu (and with a fused 2x2 max pool against the pool of its
 * output, bit for bit), on the scalar kernels and on the AVX2 ones when the
 * CPU has them: tile counts beyond one block of MTC_WINO_TB, odd output sizes
 * (half-used edge tiles), channel counts that are not multiples of 8 or 16
 * (the kernels' tails), pad 0 and 2. The workspace starts as garbage. */
static void check_wino(int B, int C, int H, int W, int OC, int pad)
{
    char what[96];
    snprintf(what, sizeof what, "winograd B%d C%d %dx%d OC%d p%d", B, C, H, W, OC, pad);
    mtc_conv_shape s;
    assert_int_equal(mtc_conv_shape_init(&s, C, H, W, OC, 3, 1, pad), 0);
    assert_true(mtc_wino_eligible(&s));
    mtc_rng r;
    mtc_rng_seed(&r, 11 * B + C + pad);
    const int64_t nin = (int64_t)B * C * H * W, nw = (int64_t)OC * C * 9, nout = (int64_t)B * OC * s.OH * s.OW;
    float *in = gc_rand(&r, nin, -1, 1), *Wt = gc_rand(&r, nw, -1, 1), *b = gc_rand(&r, OC, -1, 1);
    float *U = gc_zeros(mtc_wino_u_floats(&s)), *out = gc_zeros(nout);
    float *work = gc_rand(&r, mtc_wino_work_floats(&s), -9, 9);
    conv_ctx c = {gc_dup(in, nin), gc_dup(Wt, nw), gc_dup(b, OC), NULL, s, B};
    double *ref = gc_dzeros(nout), *ref_relu = gc_dzeros(nout);
    conv_ref(ref, &c);
    for (int64_t i = 0; i < nout; i++) ref_relu[i] = ref[i] > 0 ? ref[i] : 0;
    mtc_wino_weights(U, Wt, &s);
    const int64_t npool = (int64_t)B * OC * (s.OH / 2) * (s.OW / 2);
    float *pooled = gc_zeros(npool), *fused = gc_zeros(npool);
    float *out2 = gc_zeros(nout); /* the AVX2 path's output, which the AVX-512 GEMM repeats bit for bit */
    const int top = mtc_qgemm_isa_supported(MTC_ISA_AVX512) ? 2 : mtc_qgemm_isa_supported(MTC_ISA_AVX2);
    for (int avx2 = 0; avx2 <= top; avx2++)
        for (int relu = 0; relu <= 1; relu++) {
            for (int64_t i = 0; i < nout; i++) out[i] = NAN; /* every output written */
            mtc_wino_forward(out, in, U, b, relu, 0, work, &s, B, avx2);
            if (avx2 == 2) {
                mtc_wino_forward(out2, in, U, b, relu, 0, work, &s, B, 1);
                if (memcmp(out, out2, (size_t)nout * sizeof *out)) fail_msg("%s relu %d: AVX-512 GEMM differs from AVX2", what, relu);
            }
            for (int64_t i = 0; i < npool; i++) fused[i] = NAN;
            mtc_wino_forward(fused, in, U, b, relu, 1, work, &s, B, avx2);
            check_conv_kernel(what, avx2, relu, out, relu ? ref_relu : ref, nout, fused, pooled, npool, B, &s);
        }
    free(pooled); free(fused); free(out2);
    free(in); free(Wt); free(b); free(U); free(out); free(work);
    free(c.in); free(c.W); free(c.b); free(ref); free(ref_relu);
}

static void test_winograd_matches_direct_loop(void **st)
{
    (void)st;
    check_wino(1, 8, 14, 14, 16, 1);  /* 49 tiles: four full blocks and one */
    check_wino(2, 9, 7, 5, 13, 1);    /* odd sizes; C and OC tails */
    check_wino(3, 16, 6, 6, 40, 0);   /* pad 0; OC = 32 + 8 */
    check_wino(1, 8, 5, 5, 24, 2);    /* pad 2: output larger than input */
    check_wino(2, 32, 14, 14, 64, 1); /* the teacher's second conv */
    mtc_conv_shape s;
    assert_int_equal(mtc_conv_shape_init(&s, 8, 9, 9, 4, 5, 1, 2), 0);
    assert_false(mtc_wino_eligible(&s)); /* 5x5 */
    assert_int_equal(mtc_conv_shape_init(&s, 8, 9, 9, 4, 3, 2, 1), 0);
    assert_false(mtc_wino_eligible(&s)); /* stride 2 */
    assert_int_equal(mtc_conv_shape_init(&s, 1, 28, 28, 32, 3, 1, 1), 0);
    assert_false(mtc_wino_eligible(&s)); /* one input channel: im2col is cheaper */
}

/* The direct convolution (few input channels) against the double direct
 * loop on every ISA the CPU has, with and without relu; AVX2 and AVX-512
 * give the same bits; the fused 2x2 max pool equals pooling the kernel's
 * own output bit for bit. Odd widths and heights (pooling drops the last
 * row/column; partial vectors), widths past one or two 16-lane vectors,
 * OC not a multiple of the 4-channel block, 5x5 pad 2, 3 channels, pad 0.
 * The workspace starts as garbage. */
static void check_direct(int B, int C, int H, int W, int OC, int K, int pad)
{
    char what[96];
    snprintf(what, sizeof what, "direct conv B%d C%d %dx%d OC%d K%d p%d", B, C, H, W, OC, K, pad);
    mtc_conv_shape s;
    assert_int_equal(mtc_conv_shape_init(&s, C, H, W, OC, K, 1, pad), 0);
    assert_true(mtc_conv_direct_eligible(&s));
    mtc_rng r;
    mtc_rng_seed(&r, 13 * B + 7 * C + W + pad);
    const int64_t nin = (int64_t)B * C * H * W, nw = (int64_t)OC * C * K * K, nout = (int64_t)B * OC * s.OH * s.OW;
    const int64_t npool = (int64_t)B * OC * (s.OH / 2) * (s.OW / 2);
    float *in = gc_rand(&r, nin, -1, 1), *Wt = gc_rand(&r, nw, -1, 1), *b = gc_rand(&r, OC, -1, 1);
    float *work = gc_rand(&r, mtc_conv_direct_work_floats(&s), -9, 9);
    float *out = gc_zeros(nout), *pooled = gc_zeros(npool), *fused = gc_zeros(npool);
    float *avx2[2] = {gc_zeros(nout), gc_zeros(npool)};
    conv_ctx c = {gc_dup(in, nin), gc_dup(Wt, nw), gc_dup(b, OC), NULL, s, B};
    double *ref = gc_dzeros(nout), *ref_relu = gc_dzeros(nout);
    conv_ref(ref, &c);
    for (int64_t i = 0; i < nout; i++) ref_relu[i] = ref[i] > 0 ? ref[i] : 0;
    for (int isa = MTC_ISA_SCALAR; isa <= MTC_ISA_AVX512; isa++) {
        if (isa != MTC_ISA_SCALAR && !mtc_qgemm_isa_supported(isa)) continue;
        for (int relu = 0; relu <= 1; relu++) {
            for (int64_t i = 0; i < nout; i++) out[i] = NAN; /* every output written */
            mtc_conv_direct_forward(out, in, Wt, b, relu, 0, work, &s, B, isa);
            for (int64_t i = 0; i < npool; i++) fused[i] = NAN;
            mtc_conv_direct_forward(fused, in, Wt, b, relu, 1, work, &s, B, isa);
            check_conv_kernel(what, isa, relu, out, relu ? ref_relu : ref, nout, fused, pooled, npool, B, &s);
            if (isa == MTC_ISA_AVX2 && relu) {
                memcpy(avx2[0], out, (size_t)nout * sizeof *out);
                memcpy(avx2[1], fused, (size_t)npool * sizeof *out);
            }
            if (isa == MTC_ISA_AVX512 && relu &&
                (memcmp(avx2[0], out, (size_t)nout * sizeof *out) || memcmp(avx2[1], fused, (size_t)npool * sizeof *out)))
                fail_msg("%s: AVX-512 differs from AVX2", what);
        }
    }
    free(in); free(Wt); free(b); free(work); free(out); free(pooled); free(fused); free(avx2[0]); free(avx2[1]);
    free(c.in); free(c.W); free(c.b); free(ref); free(ref_relu);
}

static void test_conv_direct_matches_direct_loop(void **st)
{
    (void)st;
    check_direct(2, 1, 28, 28, 32, 3, 1); /* the teacher's first conv */
    check_direct(1, 1, 7, 9, 5, 3, 1);    /* odd sizes, OC = 4 + 1 */
    check_direct(3, 3, 11, 33, 6, 3, 0);  /* RGB, pad 0, three vectors a row, odd pooled width */
    check_direct(1, 1, 12, 17, 3, 5, 2);  /* 5x5 pad 2; fewer channels than one block */
    check_direct(1, 2, 4, 40, 8, 3, 1);   /* 40 wide: 16 + 16 + 8 */
    mtc_conv_shape s;
    assert_int_equal(mtc_conv_shape_init(&s, 4, 9, 9, 4, 3, 1, 1), 0);
    assert_false(mtc_conv_direct_eligible(&s)); /* 36 taps */
    assert_int_equal(mtc_conv_shape_init(&s, 1, 9, 9, 4, 3, 2, 1), 0);
    assert_false(mtc_conv_direct_eligible(&s)); /* stride 2 */
}

/* mtc_gemm (the runtime's dense layers and the Winograd planes), scalar and
 * AVX2, against the double loop: packed and row-major W, with and without
 * bias and relu, row counts across the 6/4/3 row blocks, column tails of
 * 16/8/masked/single columns. Y has a wider row stride, filled with NaN: every
 * output written, nothing past column N or row M touched. X holds exactly M
 * rows (make sanitize sees a read past them). */
static void check_gemm(int M, int N, int K, int packed)
{
    mtc_rng r;
    mtc_rng_seed(&r, 131 * M + 7 * N + K + packed);
    const int ldx = K + 3, ldy = N + 5;
    float *X = gc_rand(&r, (int64_t)(M - 1) * ldx + K, -1, 1), *Wd = gc_rand(&r, (int64_t)N * K, -1, 1);
    float *b = gc_rand(&r, N, -1, 1), *Y = gc_zeros((int64_t)M * ldy + 1);
    float *P = gc_zeros(packed ? mtc_gemm_pack_floats(N, K) : (int64_t)K * N);
    if (packed) {
        mtc_gemm_pack(P, Wd, N, K);
    } else { /* row-major (K, N) */
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) P[(int64_t)k * N + n] = Wd[(int64_t)n * K + k];
    }
    mtc_gemm_w W = {P, K, N, packed};
    double *ref = gc_dzeros((int64_t)M * N);
    float *y2 = gc_zeros((int64_t)M * ldy + 1); /* the AVX2 kernel's output, which AVX-512 repeats bit for bit */
    const int top = mtc_qgemm_isa_supported(MTC_ISA_AVX512) ? 2 : mtc_qgemm_isa_supported(MTC_ISA_AVX2) ? 1 : 0;
    for (int isa = 0; isa <= top; isa++)
        for (int v = 0; v < 4; v++) { /* bias, relu */
            int bias = v & 1, relu = v >> 1;
            char what[96];
            snprintf(what, sizeof what, "gemm M%d N%d K%d packed %d isa %d bias %d relu %d", M, N, K, packed, isa,
                     bias, relu);
            for (int i = 0; i < M; i++)
                for (int n = 0; n < N; n++) {
                    double a = bias ? b[n] : 0.0;
                    for (int k = 0; k < K; k++) a += (double)X[(int64_t)i * ldx + k] * Wd[(int64_t)n * K + k];
                    ref[(int64_t)i * N + n] = relu && a < 0 ? 0.0 : a;
                }
            for (int64_t i = 0; i < (int64_t)M * ldy + 1; i++) Y[i] = NAN;
            mtc_gemm_get(isa)(Y, ldy, X, ldx, M, &W, bias ? b : NULL, relu); /* isa: MTC_ISA_* */
            if (isa == 2 && v == 3) { /* bias and relu: the same bits as AVX2's */
                mtc_gemm_avx2(y2, ldy, X, ldx, M, &W, b, 1);
                for (int i = 0; i < M; i++)
                    for (int n = 0; n < N; n++)
                        if (memcmp(&y2[(int64_t)i * ldy + n], &Y[(int64_t)i * ldy + n], sizeof(float)))
                            fail_msg("%s: Y[%d][%d] %.9g, AVX2 %.9g", what, i, n, Y[(int64_t)i * ldy + n],
                                     y2[(int64_t)i * ldy + n]);
            }
            float *got = gc_zeros((int64_t)M * N);
            for (int i = 0; i < M; i++)
                for (int n = 0; n < ldy; n++) {
                    float y = Y[(int64_t)i * ldy + n];
                    if (n < N && !isfinite(y)) fail_msg("%s: Y[%d][%d] not written", what, i, n);
                    if (n >= N && !isnan(y)) fail_msg("%s: Y[%d][%d] past N written", what, i, n);
                    if (n < N) got[(int64_t)i * N + n] = y;
                }
            if (!isnan(Y[(int64_t)M * ldy])) fail_msg("%s: row M written", what);
            if (!fwd_ok(what, got, ref, (int64_t)M * N)) fail_msg("%s", what);
            free(got);
        }
    free(X); free(Wd); free(b); free(Y); free(P); free(ref); free(y2);
}

static void test_gemm_matches_double_loop(void **st)
{
    (void)st;
    for (int packed = 0; packed <= 1; packed++) {
        for (int M = 1; M <= 13; M++) check_gemm(M, 40, 9, packed); /* every 6/4/3 row block mix */
        check_gemm(7, 10, 33, packed);   /* a head: 8 + 2 columns */
        check_gemm(5, 4, 17, packed);    /* fewer than 8 columns */
        check_gemm(12, 16, 1, packed);   /* K = 1 */
        check_gemm(32, 128, 784, packed); /* the student's trunk */
        check_gemm(1, 300, 20, packed);   /* batch 1: a 128-column group, then 4, 2 and a partial panel */
        check_gemm(8, 200, 31, packed);   /* 4 + 4 + partial; rows 6 + ... */
    }
}

static void test_conv2d_backward_matches_fd_stride1(void **st)
{
    (void)st;
    check_conv(2, 2, 5, 6, 3, 3, 1, 0, 1);
    check_conv(2, 2, 5, 6, 3, 3, 1, 1, 1);
    check_conv(1, 2, 5, 4, 3, 3, 1, 1, 1);
    check_conv(1, 3, 4, 4, 2, 1, 1, 0, 1); /* pointwise B == 1 path */
    check_conv(2, 3, 4, 4, 2, 1, 1, 0, 1);
    check_conv(3, 2, 16, 16, 3, 3, 1, 1, 1); /* chunks of 2 samples + 1 */
    check_conv(3, 1, 24, 24, 2, 3, 1, 1, 1); /* one sample per chunk */
    check_conv(2, 2, 7, 6, 3, 5, 1, 2, 1);   /* "same" 5x5: shifted planes */
    check_conv(2, 1, 2, 2, 2, 5, 1, 2, 1);
}

static void test_conv2d_backward_matches_fd_stride2(void **st)
{
    (void)st;
    check_conv(2, 2, 7, 6, 3, 3, 2, 0, 1);
    check_conv(2, 2, 7, 6, 3, 3, 2, 1, 1);
    check_conv(1, 2, 6, 7, 2, 2, 2, 1, 1);
}

/* ---- pooling ------------------------------------------------------------- */
typedef struct { double *in, *proj; int B, C, H, W, K, stride, avg; } pool_ctx;
static void pool_ref(double *out, const pool_ctx *c)
{
    int OH = (c->H - c->K) / c->stride + 1, OW = (c->W - c->K) / c->stride + 1;
    for (int p = 0; p < c->B * c->C; p++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                double acc = c->avg ? 0.0 : -INFINITY;
                for (int kh = 0; kh < c->K; kh++)
                    for (int kw = 0; kw < c->K; kw++) {
                        double v = c->in[(p * c->H + oh * c->stride + kh) * c->W +
                                         ow * c->stride + kw];
                        acc = c->avg ? acc + v : fmax(acc, v);
                    }
                out[(p * OH + oh) * OW + ow] = c->avg ? acc / (c->K * c->K) : acc;
            }
}
static double pool_obj(void *p)
{
    pool_ctx *c = p;
    int OH = (c->H - c->K) / c->stride + 1, OW = (c->W - c->K) / c->stride + 1;
    int64_t n = (int64_t)c->B * c->C * OH * OW;
    double *out = gc_dzeros(n);
    pool_ref(out, c);
    double s = dot(c->proj, out, n);
    free(out);
    return s;
}

static void check_pool(int avg, int B, int C, int H, int W, int K, int stride)
{
    mtc_rng r;
    mtc_rng_seed(&r, 31 + K + stride);
    const int OH = (H - K) / stride + 1, OW = (W - K) / stride + 1;
    const int64_t nin = (int64_t)B * C * H * W, nout = (int64_t)B * C * OH * OW;
    /* distinct values ≥ 0.01 apart so a ±1e-6 FD step never flips a max */
    int64_t *perm = malloc(nin * sizeof *perm);
    for (int64_t i = 0; i < nin; i++) perm[i] = i;
    mtc_shuffle_i64(&r, perm, nin);
    float *in = malloc(nin * sizeof *in);
    for (int64_t i = 0; i < nin; i++) in[i] = 0.01f * (float)perm[i] - 1.0f;
    float *proj = gc_rand(&r, nout, -1, 1), *out = gc_zeros(nout), *din = gc_zeros(nin);
    int32_t *am = malloc(nout * sizeof *am);
    pool_ctx c = {gc_dup(in, nin), gc_dup(proj, nout), B, C, H, W, K, stride, avg};
    double *ref = gc_dzeros(nout), *g = gc_dzeros(nin);
    if (avg) mtc_avgpool_forward(out, in, B, C, H, W, K, stride);
    else mtc_maxpool_forward(out, am, in, B, C, H, W, K, stride);
    pool_ref(ref, &c);
    assert_true(fwd_ok(avg ? "avgpool" : "maxpool", out, ref, nout));
    if (avg) mtc_avgpool_backward(din, proj, B, C, H, W, K, stride);
    else mtc_maxpool_backward(din, proj, am, B, C, OH, OW, H, W);
    gc_fd(pool_obj, &c, c.in, nin, g);
    assert_true(gc_ok(avg ? "avgpool din" : "maxpool din", din, g, nin, GRAD_TOL));
    float *din1 = gc_copy(din, nin);
    if (avg) mtc_avgpool_backward(din, proj, B, C, H, W, K, stride);
    else mtc_maxpool_backward(din, proj, am, B, C, OH, OW, H, W);
    assert_true(gc_doubled("pool din", din1, din, nin));
    if (!avg) { /* argmax is an index into the input plane */
        for (int64_t i = 0; i < nout; i++) {
            assert_true(am[i] >= 0 && am[i] < H * W);
            assert_true(in[(i / (OH * OW)) * H * W + am[i]] == out[i]);
        }
        float *o2 = gc_zeros(nout);
        mtc_maxpool_forward(o2, NULL, in, B, C, H, W, K, stride); /* inference */
        assert_memory_equal(o2, out, nout * sizeof *o2);
        free(o2);
    }
    free(perm); free(in); free(proj); free(out); free(din); free(din1); free(am);
    free(c.in); free(c.proj); free(ref); free(g);
}

static void test_maxpool_backward_routes_to_argmax(void **st)
{
    (void)st;
    check_pool(0, 2, 3, 6, 6, 2, 2);
    check_pool(0, 2, 2, 7, 5, 3, 2); /* overlapping windows */
    check_pool(0, 1, 1, 5, 5, 2, 1);
}

/* Max pooling's rule on ties, the one argmax (and so the backward pass)
 * relies on: scan order, strict >, the first maximum wins; odd sizes drop
 * the last row/column. */
static void test_maxpool_2x2_ties_pick_the_first_maximum(void **st)
{
    (void)st;
    const int B = 2, C = 3, H = 7, W = 9, OH = 3, OW = 4;
    float in[2 * 3 * 7 * 9], out[2 * 3 * 3 * 4];
    int32_t am[2 * 3 * 3 * 4];
    mtc_rng r;
    mtc_rng_seed(&r, 77);
    for (int i = 0; i < B * C * H * W; i++) in[i] = (float)mtc_rng_below(&r, 3); /* many ties */
    /* twice: plain ties, then signed zeros and NaNs among them (NaN never
     * wins a strict >); the 2x2 paths are vectorised selects, the reference
     * is the scan loop */
    for (int round = 0; round < 2; round++) {
        if (round) in[5] = -0.0f, in[6] = 0.0f, in[W + 5] = NAN, in[2 * W] = NAN, in[3 * W + 1] = -0.0f;
        mtc_maxpool_forward(out, am, in, B, C, H, W, 2, 2);
        for (int pl = 0; pl < B * C; pl++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    const float *x = in + pl * H * W;
                    int best = 2 * oh * W + 2 * ow;
                    for (int kh = 0; kh < 2; kh++)
                        for (int kw = 0; kw < 2; kw++) {
                            int q = (2 * oh + kh) * W + 2 * ow + kw;
                            if (x[q] > x[best]) best = q;
                        }
                    int o = (pl * OH + oh) * OW + ow;
                    assert_int_equal(am[o], best);
                    assert_memory_equal(&out[o], &x[best], sizeof(float));
                }
        /* inference (no argmax) takes its own path: the same bytes */
        float out2[2 * 3 * 3 * 4];
        mtc_maxpool_forward(out2, NULL, in, B, C, H, W, 2, 2);
        assert_memory_equal(out, out2, sizeof out);
    }
}

static void test_avgpool_backward_matches_fd(void **st)
{
    (void)st;
    check_pool(1, 2, 3, 6, 6, 2, 2);
    check_pool(1, 2, 2, 7, 5, 3, 2);
    check_pool(1, 1, 1, 5, 5, 2, 1);
}

/* ---- dropout ------------------------------------------------------------- */
typedef struct { double *in, *proj; const uint8_t *mask; int64_t n; double p; } drop_ctx;
static double drop_obj(void *pp)
{
    drop_ctx *c = pp;
    double s = 0.0;
    for (int64_t i = 0; i < c->n; i++)
        s += c->proj[i] * (c->mask[i] ? c->in[i] / (1.0 - c->p) : 0.0);
    return s;
}

static void test_dropout_fixed_mask_backward_matches_fd(void **st)
{
    (void)st;
    const int64_t n = 200;
    const float p = 0.3f;
    mtc_rng r;
    mtc_rng_seed(&r, 5);
    float *in = gc_rand(&r, n, -1, 1), *proj = gc_rand(&r, n, -1, 1);
    float *out = gc_zeros(n), *din = gc_zeros(n);
    uint8_t *mask = malloc(n);
    mtc_dropout_forward(out, mask, in, n, p, &r);
    drop_ctx c = {gc_dup(in, n), gc_dup(proj, n), mask, n, p};
    double *ref = gc_dzeros(n), *g = gc_dzeros(n);
    int kept = 0;
    for (int64_t i = 0; i < n; i++) {
        ref[i] = mask[i] ? c.in[i] / (1.0 - p) : 0.0;
        kept += mask[i];
    }
    assert_true(kept > 100 && kept < 180);
    assert_true(fwd_ok("dropout", out, ref, n));
    mtc_dropout_backward(din, proj, mask, n, p);
    gc_fd(drop_obj, &c, c.in, n, g);
    assert_true(gc_ok("dropout din", din, g, n, GRAD_TOL));
    float *din1 = gc_copy(din, n);
    mtc_dropout_backward(din, proj, mask, n, p);
    assert_true(gc_doubled("dropout din", din1, din, n));
    /* same seed, same mask; p = 0 is the identity */
    mtc_rng r2;
    mtc_rng_seed(&r2, 5);
    float *junk = gc_rand(&r2, 2 * n, 0, 1); /* replay the two draws above */
    uint8_t *mask2 = malloc(n);
    mtc_dropout_forward(din1, mask2, in, n, p, &r2);
    assert_memory_equal(mask, mask2, n);
    mtc_dropout_forward(din1, mask2, in, n, 0.0f, &r2);
    assert_memory_equal(din1, in, n * sizeof *in);
    free(in); free(proj); free(out); free(din); free(din1); free(mask); free(mask2);
    free(junk); free(c.in); free(c.proj); free(ref); free(g);
}

static void test_dropout_keep_rate(void **st)
{
    (void)st;
    const int64_t n = 100000;
    mtc_rng r;
    mtc_rng_seed(&r, 9);
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *m = malloc(n);
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
    mtc_dropout_forward(y, m, x, n, 0.25f, &r);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += y[i];
    assert_true(fabs(sum / n - 1.0) < 0.01); /* inverted: expectation kept */
    free(x); free(y); free(m);
}

/* ---- batchnorm / layernorm ----------------------------------------------- */
typedef struct { double *in, *gamma, *beta, *proj; int B, C, S; double eps; } bn_ctx;
static void bn_ref(double *out, const bn_ctx *c)
{
    const int n = c->B * c->S;
    for (int ch = 0; ch < c->C; ch++) {
        double mu = 0.0, var = 0.0;
        for (int b = 0; b < c->B; b++)
            for (int i = 0; i < c->S; i++) mu += c->in[(b * c->C + ch) * c->S + i];
        mu /= n;
        for (int b = 0; b < c->B; b++)
            for (int i = 0; i < c->S; i++) {
                double d = c->in[(b * c->C + ch) * c->S + i] - mu;
                var += d * d;
            }
        var /= n;
        for (int b = 0; b < c->B; b++)
            for (int i = 0; i < c->S; i++) {
                int k = (b * c->C + ch) * c->S + i;
                out[k] = c->gamma[ch] * (c->in[k] - mu) / sqrt(var + c->eps) + c->beta[ch];
            }
    }
}
static double bn_obj(void *p)
{
    bn_ctx *c = p;
    int64_t n = (int64_t)c->B * c->C * c->S;
    double *out = gc_dzeros(n);
    bn_ref(out, c);
    double s = dot(c->proj, out, n);
    free(out);
    return s;
}

static void check_bn(int B, int C, int S)
{
    mtc_rng r;
    mtc_rng_seed(&r, 77 + S);
    const int64_t n = (int64_t)B * C * S;
    const float eps = 1e-5f;
    float *in = gc_rand(&r, n, -2, 3), *gamma = gc_rand(&r, C, 0.5f, 1.5f);
    float *beta = gc_rand(&r, C, -1, 1), *proj = gc_rand(&r, n, -1, 1);
    float *out = gc_zeros(n), *mean = gc_zeros(C), *rstd = gc_zeros(C);
    float *din = gc_zeros(n), *dg = gc_zeros(C), *dbt = gc_zeros(C);
    bn_ctx c = {gc_dup(in, n), gc_dup(gamma, C), gc_dup(beta, C), gc_dup(proj, n), B, C, S, eps};
    double *ref = gc_dzeros(n), *g = gc_dzeros(n);
    mtc_batchnorm_forward_train(out, mean, rstd, in, gamma, beta, NULL, NULL, 0.1f, eps, B, C, S);
    bn_ref(ref, &c);
    assert_true(fwd_ok("batchnorm", out, ref, n));
    mtc_batchnorm_backward(din, dg, dbt, proj, in, mean, rstd, gamma, B, C, S);
    gc_fd(bn_obj, &c, c.in, n, g);
    assert_true(gc_ok("bn din", din, g, n, GRAD_TOL));
    gc_fd(bn_obj, &c, c.gamma, C, g);
    assert_true(gc_ok("bn dgamma", dg, g, C, GRAD_TOL));
    gc_fd(bn_obj, &c, c.beta, C, g);
    assert_true(gc_ok("bn dbeta", dbt, g, C, GRAD_TOL));
    float *din1 = gc_copy(din, n), *dg1 = gc_copy(dg, C), *db1 = gc_copy(dbt, C);
    mtc_batchnorm_backward(din, dg, dbt, proj, in, mean, rstd, gamma, B, C, S);
    assert_true(gc_doubled("bn din", din1, din, n));
    assert_true(gc_doubled("bn dgamma", dg1, dg, C));
    assert_true(gc_doubled("bn dbeta", db1, dbt, C));
    free(in); free(gamma); free(beta); free(proj); free(out); free(mean); free(rstd);
    free(din); free(dg); free(dbt); free(din1); free(dg1); free(db1);
    free(c.in); free(c.gamma); free(c.beta); free(c.proj); free(ref); free(g);
}

static void test_batchnorm_train_backward_matches_fd(void **st)
{
    (void)st;
    check_bn(4, 3, 5); /* after conv: S = spatial */
    check_bn(6, 4, 1); /* after dense */
}

static void test_batchnorm_running_stats_momentum_unbiased(void **st)
{
    (void)st;
    /* one channel, B = 4, S = 1: x = 1,2,3,6 → mean 3, biased var 3.5,
     * unbiased 14/3 */
    const float x[4] = {1, 2, 3, 6};
    float out[4], mean, rstd, rm = 1.0f, rv = 2.0f;
    mtc_batchnorm_forward_train(out, &mean, &rstd, x, NULL, NULL, &rm, &rv, 0.1f, 0.0f, 4, 1, 1);
    assert_float_equal(mean, 3.0f, 1e-6);
    assert_float_equal(rstd, 1.0 / sqrt(3.5), 1e-6);
    assert_float_equal(rm, 0.9 * 1.0 + 0.1 * 3.0, 1e-6);
    assert_float_equal(rv, 0.9 * 2.0 + 0.1 * (14.0 / 3.0), 1e-6);
    assert_float_equal(out[3], 3.0 / sqrt(3.5), 1e-6);
    /* eval uses the running stats */
    float y;
    mtc_batchnorm_forward_eval(&y, &x[3], NULL, NULL, &rm, &rv, 0.0f, 1, 1, 1);
    assert_float_equal(y, (6.0 - rm) / sqrt(rv), 1e-6);
}

static void test_batchnorm_fold_equals_dense_then_eval_bn(void **st)
{
    (void)st;
    const int B = 4, I = 6, O = 5;
    mtc_rng r;
    mtc_rng_seed(&r, 3);
    float *in = gc_rand(&r, B * I, -1, 1), *W = gc_rand(&r, O * I, -1, 1);
    float *b = gc_rand(&r, O, -1, 1), *gamma = gc_rand(&r, O, 0.5f, 2);
    float *beta = gc_rand(&r, O, -1, 1), *rm = gc_rand(&r, O, -1, 1);
    float *rv = gc_rand(&r, O, 0.2f, 3);
    float *h = gc_zeros(B * O), *y = gc_zeros(B * O), *yf = gc_zeros(B * O);
    mtc_dense_forward(h, in, W, b, B, I, O);
    mtc_batchnorm_forward_eval(y, h, gamma, beta, rm, rv, 1e-5f, B, O, 1);
    mtc_batchnorm_fold(W, b, O, I, gamma, beta, rm, rv, 1e-5f);
    mtc_dense_forward(yf, in, W, b, B, I, O);
    for (int i = 0; i < B * O; i++) assert_true(tu_relerr(y[i], yf[i], 1e-3) < 1e-5);
    free(in); free(W); free(b); free(gamma); free(beta); free(rm); free(rv);
    free(h); free(y); free(yf);
}

typedef struct { double *in, *gamma, *beta, *proj; int N, F; double eps; } ln_ctx;
static void ln_ref(double *out, const ln_ctx *c)
{
    for (int r = 0; r < c->N; r++) {
        const double *x = c->in + r * c->F;
        double mu = 0.0, var = 0.0;
        for (int i = 0; i < c->F; i++) mu += x[i];
        mu /= c->F;
        for (int i = 0; i < c->F; i++) var += (x[i] - mu) * (x[i] - mu);
        var /= c->F;
        for (int i = 0; i < c->F; i++)
            out[r * c->F + i] = c->gamma[i] * (x[i] - mu) / sqrt(var + c->eps) + c->beta[i];
    }
}
static double ln_obj(void *p)
{
    ln_ctx *c = p;
    int64_t n = (int64_t)c->N * c->F;
    double *out = gc_dzeros(n);
    ln_ref(out, c);
    double s = dot(c->proj, out, n);
    free(out);
    return s;
}

static void test_layernorm_backward_matches_fd(void **st)
{
    (void)st;
    const int N = 4, F = 7;
    const int64_t n = N * F;
    mtc_rng r;
    mtc_rng_seed(&r, 11);
    float *in = gc_rand(&r, n, -2, 2), *gamma = gc_rand(&r, F, 0.5f, 1.5f);
    float *beta = gc_rand(&r, F, -1, 1), *proj = gc_rand(&r, n, -1, 1);
    float *out = gc_zeros(n), *mean = gc_zeros(N), *rstd = gc_zeros(N);
    float *din = gc_zeros(n), *dg = gc_zeros(F), *dbt = gc_zeros(F);
    ln_ctx c = {gc_dup(in, n), gc_dup(gamma, F), gc_dup(beta, F), gc_dup(proj, n), N, F, 1e-5};
    double *ref = gc_dzeros(n), *g = gc_dzeros(n);
    mtc_layernorm_forward(out, mean, rstd, in, gamma, beta, N, F, 1e-5f);
    ln_ref(ref, &c);
    assert_true(fwd_ok("layernorm", out, ref, n));
    mtc_layernorm_backward(din, dg, dbt, proj, in, mean, rstd, gamma, N, F);
    gc_fd(ln_obj, &c, c.in, n, g);
    assert_true(gc_ok("ln din", din, g, n, GRAD_TOL));
    gc_fd(ln_obj, &c, c.gamma, F, g);
    assert_true(gc_ok("ln dgamma", dg, g, F, GRAD_TOL));
    gc_fd(ln_obj, &c, c.beta, F, g);
    assert_true(gc_ok("ln dbeta", dbt, g, F, GRAD_TOL));
    float *din1 = gc_copy(din, n), *dg1 = gc_copy(dg, F), *db1 = gc_copy(dbt, F);
    mtc_layernorm_backward(din, dg, dbt, proj, in, mean, rstd, gamma, N, F);
    assert_true(gc_doubled("ln din", din1, din, n));
    assert_true(gc_doubled("ln dgamma", dg1, dg, F));
    assert_true(gc_doubled("ln dbeta", db1, dbt, F));
    free(in); free(gamma); free(beta); free(proj); free(out); free(mean); free(rstd);
    free(din); free(dg); free(dbt); free(din1); free(dg1); free(db1);
    free(c.in); free(c.gamma); free(c.beta); free(c.proj); free(ref); free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_act_forward_and_backward_match_fd),
        cmocka_unit_test(test_gelu_matches_double_over_wide_range),
        cmocka_unit_test(test_act_parse_and_name_round_trip),
        cmocka_unit_test(test_dense_backward_matches_fd),
        cmocka_unit_test(test_dense_batch1_uses_same_math),
        cmocka_unit_test(test_conv_shape_rejects_impossible),
        cmocka_unit_test(test_grouped_and_depthwise_conv),
        cmocka_unit_test(test_conv_workspace_does_not_grow_with_the_batch),
        cmocka_unit_test(test_conv2d_forward_matches_direct_loop),
        cmocka_unit_test(test_winograd_matches_direct_loop),
        cmocka_unit_test(test_conv_direct_matches_direct_loop),
        cmocka_unit_test(test_gemm_matches_double_loop),
        cmocka_unit_test(test_conv2d_backward_matches_fd_stride1),
        cmocka_unit_test(test_conv2d_backward_matches_fd_stride2),
        cmocka_unit_test(test_maxpool_backward_routes_to_argmax),
        cmocka_unit_test(test_maxpool_2x2_ties_pick_the_first_maximum),
        cmocka_unit_test(test_avgpool_backward_matches_fd),
        cmocka_unit_test(test_dropout_fixed_mask_backward_matches_fd),
        cmocka_unit_test(test_dropout_keep_rate),
        cmocka_unit_test(test_batchnorm_train_backward_matches_fd),
        cmocka_unit_test(test_batchnorm_running_stats_momentum_unbiased),
        cmocka_unit_test(test_batchnorm_fold_equals_dense_then_eval_bn),
        cmocka_unit_test(test_layernorm_backward_matches_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
