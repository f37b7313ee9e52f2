/*
 * test_optim.c — optimizers against hand-computed steps (values in the
 * comments are worked out by hand / with a calculator), clipping, decay
 * masks, convergence on a small quadratic, and LR schedules at known steps.
 * Parameters are float, so hand values are held to 1e-6 absolute.
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-6

static mtc_optim make(int kind, float momentum, int nesterov, int64_t n)
{
    mtc_optim_cfg c;
    mtc_optim_cfg_default(&c, kind);
    c.momentum = momentum;
    c.nesterov = nesterov;
    c.weight_decay = 0.0f;
    mtc_optim o;
    mtc_err e = {0};
    assert_int_equal(mtc_optim_init(&o, &c, n, &e), 0);
    return o;
}

static void test_defaults_follow_pytorch(void **st)
{
    (void)st;
    mtc_optim_cfg c;
    mtc_optim_cfg_default(&c, MTC_OPT_ADAM);
    assert_true(c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f && c.clip_norm == 0);
    mtc_optim_cfg_default(&c, MTC_OPT_SGD);
    assert_true(c.momentum == 0.9f && c.nesterov == 0 && c.weight_decay == 0);
    mtc_optim o;
    mtc_err e = {0};
    c.kind = 7;
    assert_int_equal(mtc_optim_init(&o, &c, 3, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "optimizer"));
}

static void test_sgd_plain_step(void **st)
{
    (void)st;
    mtc_optim o = make(MTC_OPT_SGD, 0.0f, 0, 2);
    assert_null(o.m); /* no state without momentum */
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f};
    /* p − lr·g with lr 0.1 */
    float norm = mtc_optim_step(&o, p, g, NULL, 0.1f);
    assert_float_equal(p[0], 0.95, EPS);
    assert_float_equal(p[1], -2.025, EPS);
    assert_float_equal(norm, sqrt(0.25 + 0.0625), EPS);
    mtc_optim_free(&o);
}

static void test_sgd_momentum_two_steps(void **st)
{
    (void)st;
    mtc_optim o = make(MTC_OPT_SGD, 0.9f, 0, 1);
    float p = 1.0f, g = 0.5f;
    mtc_optim_step(&o, &p, &g, NULL, 0.1f); /* m = 0.5, p = 1 − 0.05 */
    assert_float_equal(p, 0.95, EPS);
    g = 0.2f;
    mtc_optim_step(&o, &p, &g, NULL, 0.1f); /* m = 0.45 + 0.2 = 0.65, p = 0.95 − 0.065 */
    assert_float_equal(p, 0.885, EPS);
    mtc_optim_free(&o);
}

static void test_sgd_nesterov_two_steps(void **st)
{
    (void)st;
    mtc_optim o = make(MTC_OPT_SGD, 0.9f, 1, 1);
    float p = 1.0f, g = 0.5f;
    mtc_optim_step(&o, &p, &g, NULL, 0.1f); /* m = 0.5, d = 0.5 + 0.45 = 0.95 */
    assert_float_equal(p, 0.905, EPS);
    g = 0.2f;
    mtc_optim_step(&o, &p, &g, NULL, 0.1f); /* m = 0.65, d = 0.2 + 0.585 = 0.785 */
    assert_float_equal(p, 0.8265, EPS);
    mtc_optim_free(&o);
}

static void test_adam_two_steps_with_bias_correction(void **st)
{
    (void)st;
    mtc_optim o = make(MTC_OPT_ADAM, 0, 0, 1);
    float p = 1.0f, g = 0.5f;
    /* m = 0.05, v = 2.5e-4; m̂ = 0.5, v̂ = 0.25: p = 1 − 0.01·0.5/(0.5 + 1e-8) */
    mtc_optim_step(&o, &p, &g, NULL, 0.01f);
    assert_float_equal(p, 0.9900000002, EPS);
    g = -0.1f;
    /* m = 0.035, v = 2.5975e-4; m̂ = 0.035/0.19, v̂ = 2.5975e-4/0.001999:
     * p = 0.99 − 0.01·0.1842105/0.3604708 = 0.98488974 */
    mtc_optim_step(&o, &p, &g, NULL, 0.01f);
    assert_float_equal(p, 0.98488974, EPS);
    assert_int_equal(o.t, 2);
    mtc_optim_free(&o);
}

static void test_adamw_decay_is_decoupled_and_masked(void **st)
{
    (void)st;
    mtc_optim_cfg c;
    mtc_optim_cfg_default(&c, MTC_OPT_ADAMW);
    assert_float_equal(c.weight_decay, 0.01, 1e-9);
    c.weight_decay = 0.1f;
    mtc_optim o;
    mtc_err e = {0};
    assert_int_equal(mtc_optim_init(&o, &c, 3, &e), 0);
    float p[3] = {2.0f, 1.0f, 1.0f}, g[3] = {0.0f, 0.5f, 0.5f};
    const uint8_t mask[3] = {1, 1, 0};
    mtc_optim_step(&o, p, g, mask, 0.01f);
    /* g = 0: only the decay, p·(1 − lr·wd) = 2·0.999 */
    assert_float_equal(p[0], 1.998, EPS);
    /* decay then Adam's first step ≈ lr·sign(g): 0.999 − 0.01 */
    assert_float_equal(p[1], 0.989, EPS);
    /* masked out: Adam step only */
    assert_float_equal(p[2], 0.99, EPS);
    mtc_optim_free(&o);
}

static void test_l1_l2_weight_decay_only_where_masked(void **st)
{
    (void)st;
    mtc_optim_cfg c;
    mtc_optim_cfg_default(&c, MTC_OPT_SGD);
    c.momentum = 0.0f;
    c.l2 = 0.1f;
    c.l1 = 0.05f;
    mtc_optim o;
    mtc_err e = {0};
    assert_int_equal(mtc_optim_init(&o, &c, 4, &e), 0);
    float p[4] = {2.0f, -2.0f, 0.0f, 2.0f}, g[4] = {0};
    const uint8_t mask[4] = {1, 1, 1, 0};
    mtc_optim_step(&o, p, g, mask, 1.0f);
    /* g += 0.1·p + 0.05·sign(p): 2 − 0.25, −2 + 0.25, sign(0) = 0, untouched */
    assert_float_equal(p[0], 1.75, EPS);
    assert_float_equal(p[1], -1.75, EPS);
    assert_float_equal(p[2], 0.0, EPS);
    assert_float_equal(p[3], 2.0, EPS);
    mtc_optim_free(&o);
    /* coupled weight decay for SGD behaves as an L2 term */
    mtc_optim_cfg_default(&c, MTC_OPT_SGD);
    c.momentum = 0.0f;
    c.weight_decay = 0.1f;
    assert_int_equal(mtc_optim_init(&o, &c, 4, &e), 0);
    float q[4] = {2.0f, -2.0f, 0.0f, 2.0f};
    mtc_optim_step(&o, q, g, NULL, 1.0f);
    assert_float_equal(q[0], 1.8, EPS);
    assert_float_equal(q[3], 1.8, EPS);
    mtc_optim_free(&o);
}

static void test_clipping_scales_to_max_norm_first(void **st)
{
    (void)st;
    mtc_optim_cfg c;
    mtc_optim_cfg_default(&c, MTC_OPT_SGD);
    c.momentum = 0.0f;
    c.clip_norm = 1.0f;
    c.l2 = 1.0f; /* added after clipping: p = 0 so it adds nothing here */
    mtc_optim o;
    mtc_err e = {0};
    assert_int_equal(mtc_optim_init(&o, &c, 2, &e), 0);
    float p[2] = {0, 0}, g[2] = {3, 4};
    float norm = mtc_optim_step(&o, p, g, NULL, 1.0f);
    assert_float_equal(norm, 5.0, EPS);
    assert_float_equal(p[0], -0.6, EPS);
    assert_float_equal(p[1], -0.8, EPS);
    assert_true(g[0] == 3.0f && g[1] == 4.0f); /* grads untouched */
    /* below the threshold nothing is scaled */
    float q[2] = {0, 0}, h[2] = {0.3f, 0.4f};
    c.l2 = 0.0f;
    o.cfg = c;
    mtc_optim_step(&o, q, h, NULL, 1.0f);
    assert_float_equal(q[0], -0.3, EPS);
    assert_float_equal(q[1], -0.4, EPS);
    mtc_optim_free(&o);
}

/* f(p) = Σ a_i (p_i − c_i)², condition number 20 */
static void minimise_quadratic(int kind, float momentum, int nesterov, float lr0)
{
    enum { N = 4, STEPS = 600 };
    const float a[N] = {1.0f, 0.5f, 2.0f, 0.1f}, c[N] = {1.0f, -2.0f, 0.5f, 3.0f};
    mtc_optim o = make(kind, momentum, nesterov, N);
    mtc_sched s = {MTC_SCHED_COSINE, lr0, 10, 0, 0, 0.0f};
    float p[N] = {0}, g[N];
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++) g[i] = 2 * a[i] * (p[i] - c[i]);
        mtc_optim_step(&o, p, g, NULL, mtc_sched_lr(&s, t, STEPS));
    }
    for (int i = 0; i < N; i++) {
        if (fabsf(p[i] - c[i]) > 1e-2f)
            fail_msg("optimizer %d: p[%d] = %g, want %g", kind, i, p[i], c[i]);
    }
    mtc_optim_free(&o);
}

static void test_each_optimizer_minimises_a_quadratic(void **st)
{
    (void)st;
    minimise_quadratic(MTC_OPT_SGD, 0.0f, 0, 0.2f);
    minimise_quadratic(MTC_OPT_SGD, 0.9f, 0, 0.05f);
    minimise_quadratic(MTC_OPT_SGD, 0.9f, 1, 0.05f);
    minimise_quadratic(MTC_OPT_ADAM, 0, 0, 0.1f);
    minimise_quadratic(MTC_OPT_ADAMW, 0, 0, 0.1f); /* wd 0 here: make() */
}

static void test_schedule_warmup_step_cosine(void **st)
{
    (void)st;
    mtc_sched c = {MTC_SCHED_CONST, 0.1f, 4, 0, 0, 0};
    assert_float_equal(mtc_sched_lr(&c, 0, 100), 0.025, EPS);
    assert_float_equal(mtc_sched_lr(&c, 1, 100), 0.05, EPS);
    assert_float_equal(mtc_sched_lr(&c, 3, 100), 0.1, EPS);
    assert_float_equal(mtc_sched_lr(&c, 50, 100), 0.1, EPS);
    mtc_sched s = {MTC_SCHED_STEP, 1.0f, 0, 10, 0.5f, 0};
    assert_float_equal(mtc_sched_lr(&s, 9, 100), 1.0, EPS);
    assert_float_equal(mtc_sched_lr(&s, 10, 100), 0.5, EPS);
    assert_float_equal(mtc_sched_lr(&s, 25, 100), 0.25, EPS);
    /* cosine from 1 to 0.1 over steps 10..110 after a 10-step warm-up */
    mtc_sched k = {MTC_SCHED_COSINE, 1.0f, 10, 0, 0, 0.1f};
    assert_float_equal(mtc_sched_lr(&k, 4, 110), 0.5, EPS);
    assert_float_equal(mtc_sched_lr(&k, 10, 110), 1.0, EPS);
    assert_float_equal(mtc_sched_lr(&k, 35, 110), 0.1 + 0.9 * 0.5 * (1 + cos(M_PI / 4)), EPS);
    assert_float_equal(mtc_sched_lr(&k, 60, 110), 0.55, EPS);
    assert_float_equal(mtc_sched_lr(&k, 110, 110), 0.1, EPS);
    assert_float_equal(mtc_sched_lr(&k, 500, 110), 0.1, EPS);
}

/* The pool-split step updates every element exactly as the serial one,
 * for each optimizer, with L1/L2, a decay mask and clipping, over a size
 * that does not divide evenly between threads. */
static void test_pool_step_equals_serial_bit_for_bit(void **st)
{
    (void)st;
    const int64_t n = (1 << 17) + 13;
    mtc_pool *pool = mtc_pool_create(3);
    assert_non_null(pool);
    float *pa = malloc(n * sizeof(float)), *pb = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    uint8_t *mask = malloc((size_t)n);
    assert_true(pa && pb && g && mask);
    /* clip x penalties: plain Adam (no penalty, no decay) takes its own
     * branch-free loop, the rest the general one */
    for (int kind = MTC_OPT_SGD; kind <= MTC_OPT_ADAMW; kind++)
        for (int var = 0; var < 4; var++) {
            const int clip = var & 1, pen = var >> 1;
            mtc_optim_cfg c;
            mtc_optim_cfg_default(&c, kind);
            c.l1 = pen ? 1e-4f : 0.0f, c.l2 = pen ? 1e-3f : 0.0f, c.nesterov = kind == MTC_OPT_SGD;
            c.clip_norm = clip ? 0.5f : 0.0f;
            mtc_optim a, b;
            mtc_err e = {0};
            assert_int_equal(mtc_optim_init(&a, &c, n, &e), 0);
            assert_int_equal(mtc_optim_init(&b, &c, n, &e), 0);
            mtc_rng r;
            mtc_rng_seed(&r, 5 + kind);
            for (int64_t i = 0; i < n; i++) {
                pa[i] = pb[i] = mtc_rng_normal(&r);
                mask[i] = (uint8_t)(i % 3 != 0);
            }
            for (int s = 0; s < 3; s++) {
                for (int64_t i = 0; i < n; i++) g[i] = mtc_rng_normal(&r) * 0.01f;
                float na = mtc_optim_step(&a, pa, g, mask, 1e-2f);
                float nb = mtc_optim_step_pool(&b, pool, pb, g, mask, 1e-2f);
                if (clip) assert_true(na == nb);
            }
            assert_memory_equal(pa, pb, n * sizeof(float));
            if (a.m) assert_memory_equal(a.m, b.m, n * sizeof(float));
            if (a.v) assert_memory_equal(a.v, b.v, n * sizeof(float));
            mtc_optim_free(&a);
            mtc_optim_free(&b);
        }
    free(pa); free(pb); free(g); free(mask);
    mtc_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_follow_pytorch),
        cmocka_unit_test(test_sgd_plain_step),
        cmocka_unit_test(test_sgd_momentum_two_steps),
        cmocka_unit_test(test_sgd_nesterov_two_steps),
        cmocka_unit_test(test_adam_two_steps_with_bias_correction),
        cmocka_unit_test(test_adamw_decay_is_decoupled_and_masked),
        cmocka_unit_test(test_l1_l2_weight_decay_only_where_masked),
        cmocka_unit_test(test_clipping_scales_to_max_norm_first),
        cmocka_unit_test(test_each_optimizer_minimises_a_quadratic),
        cmocka_unit_test(test_schedule_warmup_step_cosine),
        cmocka_unit_test(test_pool_step_equals_serial_bit_for_bit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
