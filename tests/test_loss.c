/*
 * test_loss.c — losses against double-precision references: values, and
 * gradients against central finite differences of the reference
 * (tests/gradcheck.h), for scale·loss with scale = 1.7 so the scale is
 * covered too.
 *
 * Error bounds: gradients GRAD_TOL = 1e-4 relative to the gradient's max
 * magnitude (the double FD is good to ~1e-9; the float kernel rounds at
 * ~1e-7 per op over K ≤ 10 terms, observed ≤ ~1e-6 — run with GC_VERBOSE=1);
 * values LOSS_TOL = 1e-6 relative (losses are summed in double from
 * float-precision exponentials, ~1e-7).
 */
#include "tests/gradcheck.h"
#include "tests/testutil.h"
#include <cmocka.h>

#define GRAD_TOL 1e-4
#define LOSS_TOL 1e-6
#define SCALE 1.7f

static int loss_ok(const char *what, double got, double ref)
{
    double e = tu_relerr(got, ref, 1e-6);
    if (e > LOSS_TOL) {
        fprintf(stderr, "%s: loss %.10g vs reference %.10g (rel %.3g)\n", what, got, ref, e);
        return 0;
    }
    return 1;
}

/* ---- double references ----------------------------------------------------- */
static double logsumexp(const double *x, int K, double T)
{
    double mx = x[0];
    for (int k = 1; k < K; k++) mx = fmax(mx, x[k]);
    double z = 0.0;
    for (int k = 0; k < K; k++) z += exp((x[k] - mx) / T);
    return mx / T + log(z);
}

typedef struct {
    double *s, *t;
    const int32_t *y;
    int B, K;
    double smoothing, T, alpha, delta, scale;
    int kind;
} loss_ctx;

/* References are means over the labelled rows (label < 0, or a NaN
 * target, marks a missing one); KD mixes per sample and means over all. */
static double ce_ref(void *p)
{
    loss_ctx *c = p;
    double tot = 0.0;
    int n = 0;
    for (int r = 0; r < c->B; r++) {
        if (c->y[r] < 0) continue;
        n++;
        const double *x = c->s + r * c->K;
        double lz = logsumexp(x, c->K, 1.0);
        for (int k = 0; k < c->K; k++) {
            double q = c->smoothing / c->K + (k == c->y[r] ? 1.0 - c->smoothing : 0.0);
            tot += q * (lz - x[k]);
        }
    }
    return n ? c->scale * tot / n : 0.0;
}

/* α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−α)·CE(s, y) (where labelled), mean over B. */
static double kd_ref(void *p)
{
    loss_ctx *c = p;
    double tot = 0.0, hard = 0.0;
    for (int r = 0; r < c->B; r++) {
        const double *xs = c->s + r * c->K, *xt = c->t + r * c->K;
        double lzs = logsumexp(xs, c->K, c->T), lzt = logsumexp(xt, c->K, c->T), kl = 0.0;
        for (int k = 0; k < c->K; k++) {
            double lpt = xt[k] / c->T - lzt, lps = xs[k] / c->T - lzs;
            kl += exp(lpt) * (lpt - lps);
        }
        tot += c->alpha * c->T * c->T * kl;
        if (c->alpha != 1.0 && c->y[r] >= 0) hard += (1.0 - c->alpha) * (logsumexp(xs, c->K, 1.0) - xs[c->y[r]]);
    }
    return c->scale * (tot + hard) / c->B; /* per-sample mixing: both over all B */
}

static int row_nan(const double *t, int K)
{
    for (int k = 0; k < K; k++)
        if (isnan(t[k])) return 1;
    return 0;
}

static double bce_ref(void *p)
{
    loss_ctx *c = p;
    double tot = 0.0;
    int n = 0;
    for (int i = 0; i < c->B * c->K; i++) {
        if (row_nan(c->t + i / c->K * c->K, c->K)) continue;
        n += i % c->K == 0;
        double x = c->s[i], y = c->t[i];
        tot += fmax(x, 0.0) - x * y + log1p(exp(-fabs(x)));
    }
    return n ? c->scale * tot / n : 0.0;
}

static double reg_ref(void *p)
{
    loss_ctx *c = p;
    double tot = 0.0;
    int n = 0;
    for (int i = 0; i < c->B * c->K; i++) {
        if (row_nan(c->t + i / c->K * c->K, c->K)) continue;
        n += i % c->K == 0;
        double r = c->s[i] - c->t[i], a = fabs(r);
        if (c->kind == MTC_LOSS_MSE) tot += r * r;
        else if (c->kind == MTC_LOSS_MAE) tot += a;
        else tot += a <= c->delta ? 0.5 * r * r : c->delta * (a - 0.5 * c->delta);
    }
    return n ? c->scale * tot / n : 0.0;
}

static int32_t *rand_labels(mtc_rng *r, int B, int K)
{
    int32_t *y = malloc(B * sizeof *y);
    for (int i = 0; i < B; i++) y[i] = (int32_t)mtc_rng_below(r, K);
    return y;
}

/* ---- softmax ---------------------------------------------------------------- */
static void test_softmax_rows_stable_with_temperature(void **st)
{
    (void)st;
    const float x[2][4] = {{1000.f, 999.f, -1000.f, 998.f}, {-3.f, 0.5f, 2.f, -88.f}};
    for (float T = 1.0f; T <= 4.0f; T *= 4.0f) {
        float p[8];
        mtc_softmax_rows(p, &x[0][0], 2, 4, T);
        for (int r = 0; r < 2; r++) {
            double xd[4], sum = 0.0;
            for (int k = 0; k < 4; k++) xd[k] = x[r][k];
            double lz = logsumexp(xd, 4, T);
            for (int k = 0; k < 4; k++) {
                assert_true(isfinite(p[r * 4 + k]));
                assert_true(fabs(p[r * 4 + k] - exp(xd[k] / T - lz)) < 1e-6);
                sum += p[r * 4 + k];
            }
            assert_true(fabs(sum - 1.0) < 1e-6);
        }
        float q[8];
        memcpy(q, x, sizeof q);
        mtc_softmax_rows(q, q, 2, 4, T); /* in place */
        assert_memory_equal(p, q, sizeof q);
    }
}

/* ---- cross-entropy ------------------------------------------------------------ */
static void check_ce(float smoothing)
{
    const int B = 5, K = 7, n = B * K;
    mtc_rng r;
    mtc_rng_seed(&r, 21);
    float *x = gc_rand(&r, n, -4, 4), *d = gc_zeros(n);
    int32_t *y = rand_labels(&r, B, K);
    loss_ctx c = {gc_dup(x, n), NULL, y, B, K, smoothing, 1, 0, 0, SCALE, 0};
    double *g = gc_dzeros(n);
    double l = mtc_loss_softmax_ce(d, x, y, B, K, smoothing, SCALE);
    assert_true(loss_ok("ce", SCALE * l, ce_ref(&c)));
    gc_fd(ce_ref, &c, c.s, n, g);
    assert_true(gc_ok(smoothing > 0 ? "ce smoothed" : "ce", d, g, n, GRAD_TOL));
    float *d1 = gc_copy(d, n);
    assert_true(mtc_loss_softmax_ce(d, x, y, B, K, smoothing, SCALE) == l);
    assert_true(gc_doubled("ce", d1, d, n));
    assert_true(mtc_loss_softmax_ce(NULL, x, y, B, K, smoothing, SCALE) == l);
    free(x); free(d); free(y); free(c.s); free(g); free(d1);
}

static void test_ce_gradient_matches_fd(void **st)
{
    (void)st;
    check_ce(0.0f);
}

static void test_ce_label_smoothing_matches_fd(void **st)
{
    (void)st;
    check_ce(0.1f);
    check_ce(0.5f);
    /* uniform logits: every target gives log K, smoothed or not */
    float x[4] = {2, 2, 2, 2};
    int32_t y = 1;
    assert_true(fabs(mtc_loss_softmax_ce(NULL, x, &y, 1, 4, 0.3f, 1) - log(4.0)) < 1e-7);
}

static void test_ce_is_stable_for_huge_logits(void **st)
{
    (void)st;
    float x[3] = {1e4f, -1e4f, 0.0f}, d[3] = {0};
    int32_t y = 1;
    double l = mtc_loss_softmax_ce(d, x, &y, 1, 3, 0.0f, 1.0f);
    assert_true(fabs(l - 2e4) < 1e-3);
    assert_true(fabs(d[0] - 1.0f) < 1e-6 && fabs(d[1] + 1.0f) < 1e-6 && d[2] == 0.0f);
}

/* ---- KD ------------------------------------------------------------------------ */
static void test_kd_gradient_matches_fd_all_T_alpha(void **st)
{
    (void)st;
    const int B = 4, K = 6, n = B * K;
    const float Ts[] = {1, 2, 4, 8}, alphas[] = {0, 0.5f, 0.9f, 1};
    mtc_rng r;
    mtc_rng_seed(&r, 23);
    float *s = gc_rand(&r, n, -3, 3), *t = gc_rand(&r, n, -6, 6);
    int32_t *y = rand_labels(&r, B, K);
    double *g = gc_dzeros(n);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            char what[64];
            snprintf(what, sizeof what, "kd T=%g alpha=%g", Ts[i], alphas[j]);
            loss_ctx c = {gc_dup(s, n), gc_dup(t, n), y, B, K, 0, Ts[i], alphas[j], 0, SCALE, 0};
            float *d = gc_zeros(n);
            double l = mtc_loss_kd(d, s, t, y, B, K, Ts[i], alphas[j], SCALE);
            assert_true(loss_ok(what, SCALE * l, kd_ref(&c)));
            gc_fd(kd_ref, &c, c.s, n, g);
            assert_true(gc_ok(what, d, g, n, GRAD_TOL));
            float *d1 = gc_copy(d, n);
            mtc_loss_kd(d, s, t, y, B, K, Ts[i], alphas[j], SCALE);
            assert_true(gc_doubled(what, d1, d, n));
            free(c.s); free(c.t); free(d); free(d1);
        }
    free(s); free(t); free(y); free(g);
}

static void test_kd_alpha0_equals_ce_bit_for_bit(void **st)
{
    (void)st;
    const int B = 9, K = 10, n = B * K;
    mtc_rng r;
    mtc_rng_seed(&r, 29);
    float *s = gc_rand(&r, n, -5, 5), *t = gc_rand(&r, n, -5, 5);
    float *d_kd = gc_rand(&r, n, -1, 1), *d_ce = gc_copy(d_kd, n); /* non-zero start */
    int32_t *y = rand_labels(&r, B, K);
    for (float T = 1; T <= 8; T *= 2) {
        double lk = mtc_loss_kd(d_kd, s, t, y, B, K, T, 0.0f, 0.37f);
        double lc = mtc_loss_softmax_ce(d_ce, s, y, B, K, 0.0f, 0.37f);
        assert_memory_equal(&lk, &lc, sizeof lk);
        assert_memory_equal(d_kd, d_ce, n * sizeof *d_kd);
    }
    free(s); free(t); free(d_kd); free(d_ce); free(y);
}

static void test_kd_alpha1_needs_no_labels_and_is_zero_at_teacher(void **st)
{
    (void)st;
    const int B = 3, K = 5, n = B * K;
    mtc_rng r;
    mtc_rng_seed(&r, 31);
    float *s = gc_rand(&r, n, -3, 3), *d = gc_zeros(n);
    double l = mtc_loss_kd(d, s, s, NULL, B, K, 4.0f, 1.0f, 1.0f);
    assert_true(fabs(l) < 1e-7);
    for (int i = 0; i < n; i++) assert_true(fabsf(d[i]) < 1e-7f);
    free(s); free(d);
}

/* Probability shift: a wrong teacher row gets its top logit and the true
 * class's swapped (the rest kept), a right, tied or unlabelled row is left
 * alone; a bin logit on the wrong side of 0 changes sign. */
static void test_kd_correct_shifts_only_wrong_teacher_rows(void **st)
{
    (void)st;
    enum { B = 5, K = 4 };
    float t[B * K] = {
        1.0f, 3.0f, 0.5f, -1.0f, /* label 1: right, untouched */
        2.0f, 0.0f, 5.0f, 1.0f,  /* label 0: top is 2, swap 2 <-> 0 */
        4.0f, 4.0f, 0.0f, 0.0f,  /* label 1: tied with the (first) top: untouched */
        0.0f, 9.0f, 1.0f, 2.0f,  /* label -1: missing, untouched */
        0.0f, 9.0f, 1.0f, 2.0f,  /* label 3: swap 1 <-> 3 */
    };
    const int32_t y[B] = {1, 0, 1, -1, 3};
    const float want[B * K] = {
        1.0f, 3.0f, 0.5f, -1.0f,
        5.0f, 0.0f, 2.0f, 1.0f,
        4.0f, 4.0f, 0.0f, 0.0f,
        0.0f, 9.0f, 1.0f, 2.0f,
        0.0f, 2.0f, 1.0f, 9.0f,
    };
    assert_int_equal(mtc_kd_correct_cls(t, y, B, K), 2);
    for (int i = 0; i < B * K; i++) assert_true(t[i] == want[i]);
    /* corrected rows now rank the label first */
    for (int b = 0; b < B; b++) {
        if (y[b] < 0) continue;
        for (int k = 0; k < K; k++) assert_true(t[b * K + k] <= t[b * K + y[b]]);
    }
    assert_int_equal(mtc_kd_correct_cls(t, y, B, K), 0); /* idempotent */
    float bt[6] = {2.0f, -2.0f, 0.0f, 3.0f, -1.0f, 0.5f};
    const float by[6] = {1.0f, 1.0f, 1.0f, 0.0f, NAN, 0.2f};
    const float bwant[6] = {2.0f, 2.0f, 0.0f, -3.0f, -1.0f, -0.5f}; /* 0: a tie; NaN: missing */
    assert_int_equal(mtc_kd_correct_bin(bt, by, 6), 3);
    for (int i = 0; i < 6; i++) assert_true(bt[i] == bwant[i]);
    assert_int_equal(mtc_kd_correct_bin(bt, by, 6), 0);
}

/* ---- BCE ------------------------------------------------------------------------ */
static void test_bce_gradient_matches_fd_and_is_stable(void **st)
{
    (void)st;
    const int B = 4, K = 3, n = B * K;
    mtc_rng r;
    mtc_rng_seed(&r, 37);
    float *x = gc_rand(&r, n, -5, 5), *y = gc_rand(&r, n, 0, 1), *d = gc_zeros(n);
    y[0] = 0.0f;
    y[1] = 1.0f;
    loss_ctx c = {gc_dup(x, n), gc_dup(y, n), NULL, B, K, 0, 1, 0, 0, SCALE, 0};
    double *g = gc_dzeros(n);
    double l = mtc_loss_bce(d, x, y, B, K, SCALE);
    assert_true(loss_ok("bce", SCALE * l, bce_ref(&c)));
    gc_fd(bce_ref, &c, c.s, n, g);
    assert_true(gc_ok("bce", d, g, n, GRAD_TOL));
    float *d1 = gc_copy(d, n);
    mtc_loss_bce(d, x, y, B, K, SCALE);
    assert_true(gc_doubled("bce", d1, d, n));
    /* extreme logits: finite, exact limits */
    float xe[4] = {100.f, -100.f, 100.f, -100.f}, ye[4] = {1, 0, 0, 1}, de[4] = {0};
    double le = mtc_loss_bce(de, xe, ye, 1, 4, 1.0f);
    assert_true(isfinite(le) && fabs(le - 200.0) < 1e-9);
    assert_true(fabsf(de[0]) < 1e-30f && fabsf(de[1]) < 1e-30f);
    assert_true(fabsf(de[2] - 1.0f) < 1e-30f && fabsf(de[3] + 1.0f) < 1e-30f);
    free(x); free(y); free(d); free(c.s); free(c.t); free(g); free(d1);
}

/* ---- regression ------------------------------------------------------------------ */
static void check_reg(int kind, const char *what)
{
    const int B = 5, D = 3, n = B * D;
    const float delta = 1.0f;
    mtc_rng r;
    mtc_rng_seed(&r, 41 + kind);
    float *o = gc_rand(&r, n, -3, 3), *t = gc_rand(&r, n, -3, 3), *d = gc_zeros(n);
    for (int i = 0; i < n; i++) { /* keep residuals off the kinks at 0 and ±δ */
        float a = fabsf(o[i] - t[i]);
        if (a < 0.05f || fabsf(a - delta) < 0.05f) o[i] += 0.2f;
    }
    loss_ctx c = {gc_dup(o, n), gc_dup(t, n), NULL, B, D, 0, 1, 0, delta, SCALE, kind};
    double *g = gc_dzeros(n);
    double l = mtc_loss_reg(d, o, t, B, D, kind, delta, SCALE);
    assert_true(loss_ok(what, SCALE * l, reg_ref(&c)));
    gc_fd(reg_ref, &c, c.s, n, g);
    assert_true(gc_ok(what, d, g, n, GRAD_TOL));
    float *d1 = gc_copy(d, n);
    mtc_loss_reg(d, o, t, B, D, kind, delta, SCALE);
    assert_true(gc_doubled(what, d1, d, n));
    free(o); free(t); free(d); free(c.s); free(c.t); free(g); free(d1);
}

static void test_mse_mae_huber_match_fd(void **st)
{
    (void)st;
    check_reg(MTC_LOSS_MSE, "mse");
    check_reg(MTC_LOSS_MAE, "mae");
    check_reg(MTC_LOSS_HUBER, "huber");
    /* mean over B of the sum over D */
    float o[4] = {1, 2, 3, 4}, t[4] = {0, 0, 0, 0};
    assert_true(mtc_loss_reg(NULL, o, t, 2, 2, MTC_LOSS_MSE, 1, 1) == 15.0);
    assert_true(mtc_loss_reg(NULL, o, t, 2, 2, MTC_LOSS_MAE, 1, 1) == 5.0);
    /* huber δ=2: 0.5·1 + 2·(2−1) + 2·(3−1) + 2·(4−1) = 12.5, /2 */
    assert_true(mtc_loss_reg(NULL, o, t, 2, 2, MTC_LOSS_HUBER, 2, 1) == 6.25);
}

/* Missing labels (rows 1 and 4 of 6: label -1, NaN targets): every loss is
 * the mean over the labelled rows, value and gradient against the double
 * references by finite differences; the unlabelled rows get no gradient
 * (KD: the soft term's alone); a batch with no label gives 0 and no
 * gradient; with every row labelled the mean is the plain one over B. */
static void test_losses_with_missing_labels_match_fd(void **st)
{
    (void)st;
    const int B = 6, K = 3, n = B * K;
    mtc_rng r;
    mtc_rng_seed(&r, 31);
    float *s = gc_rand(&r, n, -3, 3), *t = gc_rand(&r, n, -2, 2), *tb = gc_rand(&r, n, 0, 1);
    int32_t *y = rand_labels(&r, B, K), none[6] = {-1, -1, -1, -1, -1, -1};
    y[1] = y[4] = MTC_LABEL_MISSING;
    for (int k = 0; k < K; k++) t[1 * K + k] = t[4 * K + k] = tb[1 * K + k] = tb[4 * K + k] = NAN;
    double *g = gc_dzeros(n);
    for (int which = 0; which < 5; which++) {
        static const char *const names[] = {"ce", "kd", "bce", "mse", "huber"};
        loss_ctx c = {gc_dup(s, n), gc_dup(which == 2 ? tb : t, n), y, B, K, 0, 2.0, 0.5, 1.0, SCALE,
                      which == 4 ? MTC_LOSS_HUBER : MTC_LOSS_MSE};
        float *d = gc_zeros(n);
        double l, ref;
        float *soft = gc_rand(&r, n, -2, 2);
        if (which == 1) free(c.t), c.t = gc_dup(soft, n);
        switch (which) {
        case 0: l = mtc_loss_softmax_ce(d, s, y, B, K, 0.0f, SCALE); ref = ce_ref(&c); gc_fd(ce_ref, &c, c.s, n, g); break;
        case 1: l = mtc_loss_kd(d, s, soft, y, B, K, 2.0f, 0.5f, SCALE); ref = kd_ref(&c); gc_fd(kd_ref, &c, c.s, n, g); break;
        case 2: l = mtc_loss_bce(d, s, tb, B, K, SCALE); ref = bce_ref(&c); gc_fd(bce_ref, &c, c.s, n, g); break;
        default:
            l = mtc_loss_reg(d, s, t, B, K, c.kind, 1.0f, SCALE);
            ref = reg_ref(&c);
            gc_fd(reg_ref, &c, c.s, n, g);
            break;
        }
        assert_true(loss_ok(names[which], SCALE * l, ref));
        assert_true(gc_ok(names[which], d, g, n, GRAD_TOL));
        for (int k = 0; k < K && which != 1; k++) assert_true(d[1 * K + k] == 0.0f && d[4 * K + k] == 0.0f);
        free(c.s); free(c.t); free(d); free(soft);
    }
    /* nothing labelled: 0, no gradient (KD with alpha 1 needs no labels) */
    float *d = gc_zeros(n);
    assert_true(mtc_loss_softmax_ce(d, s, none, B, K, 0.1f, SCALE) == 0.0);
    float *nan_t = gc_zeros(n);
    for (int i = 0; i < n; i++) nan_t[i] = NAN;
    assert_true(mtc_loss_bce(d, s, nan_t, B, K, SCALE) == 0.0);
    assert_true(mtc_loss_reg(d, s, nan_t, B, K, MTC_LOSS_MAE, 1.0f, SCALE) == 0.0);
    for (int i = 0; i < n; i++) assert_true(d[i] == 0.0f);
    free(d); free(nan_t); free(s); free(t); free(tb); free(y); free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_rows_stable_with_temperature),
        cmocka_unit_test(test_ce_gradient_matches_fd),
        cmocka_unit_test(test_ce_label_smoothing_matches_fd),
        cmocka_unit_test(test_ce_is_stable_for_huge_logits),
        cmocka_unit_test(test_kd_gradient_matches_fd_all_T_alpha),
        cmocka_unit_test(test_kd_alpha0_equals_ce_bit_for_bit),
        cmocka_unit_test(test_kd_alpha1_needs_no_labels_and_is_zero_at_teacher),
        cmocka_unit_test(test_kd_correct_shifts_only_wrong_teacher_rows),
        cmocka_unit_test(test_bce_gradient_matches_fd_and_is_stable),
        cmocka_unit_test(test_mse_mae_huber_match_fd),
        cmocka_unit_test(test_losses_with_missing_labels_match_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
