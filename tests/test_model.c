/*
 * test_model.c — spec parsing, whole-model gradients (trunk, heads, MMoE
 * gates) against finite differences, checkpoint round trip, training on a
 * synthetic multi-task problem, task weighting, determinism.
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *text, mtc_spec *s, mtc_err *e)
{
    memset(e, 0, sizeof *e);
    return mtc_spec_parse(text, "t.cfg", s, e);
}

/* Every spec shipped in examples/ parses and builds; the two Fashion-MNIST
 * teachers differ only by their batchnorms (and the [train] recipe) (the same parameter count
 * apart from BN's γ and β: 2·(32 + 64)). */
static void test_example_specs_build(void **st)
{
    (void)st;
    const char *files[] = {"examples/fmnist-teacher.cfg", "examples/fmnist-teacher-plain.cfg",
                           "examples/fmnist-student.cfg", "examples/multifashion-teacher.cfg",
                           "examples/multifashion-student.cfg", "examples/tabular-mmoe.cfg",
                           "examples/fmnist-student-cnn.cfg", "examples/fmnist-student-dw.cfg",
                           "examples/multifashion-student-cnn.cfg"};
    enum { NFILES = sizeof files / sizeof *files };
    int64_t np[NFILES];
    for (int i = 0; i < NFILES; i++) {
        mtc_spec s;
        mtc_err e = {0};
        char *text = NULL;
        mtc_model m;
        if (mtc_spec_load(files[i], &s, &text, &e)) fail_msg("%s: %s", files[i], e.msg);
        if (mtc_model_build(&s, text, &m, &e)) fail_msg("%s: %s", files[i], e.msg);
        np[i] = m.nparams;
        if (i == 0) { /* the teacher carries its recipe, stored for mtc train to apply */
            assert_int_equal(s.ntrain, 5);
            assert_string_equal(s.train[4].key, "schedule");
            assert_string_equal(s.train[4].val, "cosine");
            assert_int_equal(s.train[4].line, s.tasks[1].line + 1);
        }
        mtc_model_free(&m);
        free(text);
    }
    assert_int_equal(np[0] - np[1], 2 * (32 + 64));
    /* the MultiFashion CNN student is the Fashion-MNIST one with 96 filters
     * in its last conv instead of 80 (16 more, each 64·3·3 weights + bias +
     * BN's γ, β) and two 10-class heads on 96 features instead of
     * `fashion` (10) and `super` (4) on 80 */
    assert_int_equal(np[8] - np[6], 16 * (64 * 9 + 1 + 2) + 2 * 10 * (96 + 1) - 14 * (80 + 1));
}

static void test_spec_parses_layers_tasks_heads_and_maps(void **st)
{
    (void)st;
    mtc_spec s;
    mtc_err e;
    const char *text = "# comment\n[input] shape = 1x28x28\n[conv] filters=8 size = 3 act = relu\n"
                       "[maxpool]\n[dense]\nunits = 16\nact = gelu\n"
                       "[task fashion] kind = cls classes = 10\n"
                       "[task super] kind = cls from = fashion:0,1,0,0,0,2,0,2,3,2\n"
                       "[task ink] kind = reg outputs = 2 loss = huber\n[head ink]\n[dense] units = 4 act = tanh\n";
    assert_int_equal(parse(text, &s, &e), 0);
    assert_int_equal(s.c, 1);
    assert_int_equal(s.h, 28);
    assert_int_equal(s.ntrunk, 3);
    assert_int_equal(s.trunk[0].filters, 8);
    assert_int_equal(s.trunk[2].units, 16);
    assert_int_equal(s.trunk[2].act, MTC_ACT_GELU);
    assert_int_equal(s.ntasks, 3);
    assert_int_equal(s.tasks[1].dim, 4);
    assert_int_equal(s.tasks[1].map[5], 2);
    assert_int_equal(s.tasks[2].kind, MTC_TASK_REG);
    assert_int_equal(s.tasks[2].loss, MTC_LOSS_HUBER);
    assert_int_equal(s.tasks[2].nhead, 1);
    assert_int_equal(s.tasks[2].head[0].units, 4);
}

static void expect_spec_error(const char *text, const char *needle)
{
    mtc_spec s;
    mtc_err e;
    assert_int_equal(parse(text, &s, &e), MTC_EINPUT);
    if (!strstr(e.msg, needle)) fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

static void test_spec_errors_name_file_line_and_problem(void **st)
{
    (void)st;
    expect_spec_error("[input] shape=1x4x4\n[lstm] units=3\n[task a] classes=2\n", "t.cfg:2: unknown section [lstm]");
    expect_spec_error("[input] shape=1x4x4\n[task a] classes=2\n[task a] classes=3\n", "t.cfg:3: duplicate task 'a'");
    expect_spec_error("[input] shape=1x4x4\n[task a] classes=2\n[head b]\n[dense] units=2\n", "[head b] has no matching [task b]");
    expect_spec_error("[input] shape=1x4x4\n[task a] kind=cls\n", "needs classes");
    expect_spec_error("[input] shape=1x4x4\n[dense] units=0\n[task a] classes=2\n", "t.cfg:2: units");
    expect_spec_error("[input] shape=1x4x4\n[dense] units=4 color=red\n[task a] classes=2\n", "unknown key 'color'");
    expect_spec_error("[input] shape=1x4x4\n[task a] classes=2\n[task b] from=a:0,1,2\n", "map of 'b' has 3 entries");
    expect_spec_error("[dense] units=4\n[task a] classes=2\n", "missing [input]");
}

static void test_model_build_rejects_shape_mismatch(void **st)
{
    (void)st;
    mtc_spec s;
    mtc_err e;
    mtc_model m;
    assert_int_equal(parse("[input] shape=1x4x4\n[dense] units=8\n[conv] filters=2 size=3\n[task a] classes=2\n", &s, &e), 0);
    assert_int_equal(mtc_model_build(&s, NULL, &m, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "spec:3: [conv] needs a CxHxW input"));
    assert_int_equal(parse("[input] shape=1x4x4\n[maxpool] size=8\n[task a] classes=2\n", &s, &e), 0);
    assert_int_equal(mtc_model_build(&s, NULL, &m, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "window larger"));
}

static void input_gradcheck(const char *text);

/* ---- whole-model gradient check ------------------------------------------- */

typedef struct {
    mtc_model m;
    int B;
    float *x;
    int32_t *lab[MTC_MAX_TASKS];
    float *targ[MTC_MAX_TASKS];
    float *dout[MTC_MAX_TASKS];
} gc_ctx;

static double total_loss(gc_ctx *g, int with_grad)
{
    mtc_model *m = &g->m;
    mtc_model_forward(m, g->x, g->B, 1, NULL);
    double L = 0;
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        float w = 0.5f + t; /* distinct weights exercise the weighted sum */
        float *d = with_grad ? g->dout[t] : NULL;
        if (d) memset(d, 0, sizeof(float) * (size_t)g->B * ts->dim);
        if (ts->kind == MTC_TASK_CLS)
            L += w * mtc_loss_softmax_ce(d, m->outputs[t], g->lab[t], g->B, ts->dim, 0.0f, w);
        else
            L += w * mtc_loss_reg(d, m->outputs[t], g->targ[t], g->B, ts->dim, MTC_LOSS_MSE, 1.0f, w);
    }
    return L;
}

/* A model of spec text with B random inputs, labels and targets. */
static void gc_setup(gc_ctx *g, const char *text, int B, uint64_t init_seed, uint64_t data_seed)
{
    mtc_spec s;
    mtc_err e;
    memset(g, 0, sizeof *g);
    assert_int_equal(parse(text, &s, &e), 0);
    assert_int_equal(mtc_model_build(&s, text, &g->m, &e), 0);
    mtc_model_init_params(&g->m, init_seed);
    g->B = B;
    assert_int_equal(mtc_model_reserve(&g->m, B, &e), 0);
    int64_t S = (int64_t)s.c * s.h * s.w;
    mtc_rng r;
    mtc_rng_seed(&r, data_seed);
    g->x = malloc(sizeof(float) * (size_t)(S * B));
    for (int64_t i = 0; i < S * B; i++) g->x[i] = mtc_rng_normal(&r);
    for (int t = 0; t < s.ntasks; t++) {
        int D = s.tasks[t].dim;
        g->lab[t] = malloc(sizeof(int32_t) * B);
        g->targ[t] = malloc(sizeof(float) * (size_t)(B * D));
        g->dout[t] = malloc(sizeof(float) * (size_t)(B * D));
        for (int b = 0; b < B; b++) g->lab[t][b] = (int32_t)mtc_rng_below(&r, (uint64_t)D);
        for (int i = 0; i < B * D; i++) g->targ[t][i] = mtc_rng_normal(&r);
    }
}

static void gc_free(gc_ctx *g)
{
    free(g->x);
    for (int t = 0; t < g->m.spec.ntasks; t++) { free(g->lab[t]); free(g->targ[t]); free(g->dout[t]); }
    mtc_model_free(&g->m);
}

/* floor_rel > 0: the absolute floor is also floor_rel x the largest
 * analytic gradient (deep models: float rounding of the loss through many
 * layers reaches ~1e-4 in the differences) */
static void gradcheck_spec_floor(const char *text, double floor_rel)
{
    gc_ctx g;
    gc_setup(&g, text, 3, 3, 11);
    total_loss(&g, 1);
    memset(g.m.grads, 0, sizeof(float) * (size_t)g.m.nparams);
    mtc_model_backward(&g.m, g.x, g.dout, g.B);
    float *an = malloc(sizeof(float) * (size_t)g.m.nparams);
    memcpy(an, g.m.grads, sizeof(float) * (size_t)g.m.nparams);
    /* Central differences in float with h = 1e-2 and h/2 on every parameter,
     * Richardson-extrapolated; the bound 3e-2 relative (floor 1e-3) covers
     * float rounding of O(1) losses (~1e-7/5e-3 = 2e-5) plus the O(h^4)
     * remainder of the curvature of tanh/gelu/normalisation. */
    const float h = 1e-2f;
    int bad = 0;
    double amax = 0;
    for (int64_t i = 0; i < g.m.nparams; i++) amax = fmax(amax, fabs(an[i]));
    for (int64_t i = 0; i < g.m.nparams; i++) {
        float p = g.m.params[i];
        double fdh[2];
        for (int k = 0; k < 2; k++) {
            float hk = k ? h / 2 : h;
            g.m.params[i] = p + hk;
            double lp = total_loss(&g, 0);
            g.m.params[i] = p - hk;
            double lm = total_loss(&g, 0);
            fdh[k] = (lp - lm) / (2 * hk);
        }
        g.m.params[i] = p;
        /* Richardson extrapolation cancels the O(h^2) term */
        double fd = (4 * fdh[1] - fdh[0]) / 3;
        if (tu_relerr(fd, an[i], fmax(1e-3, floor_rel * amax)) > 3e-2 && bad++ < 5)
            print_error("param %lld: analytic %g fd %g\n", (long long)i, an[i], fd);
    }
    assert_int_equal(bad, 0);
    free(an);
    gc_free(&g);
}

static void gradcheck_spec(const char *text)
{
    gradcheck_spec_floor(text, 0);
}

static void test_model_gradients_match_finite_differences_hard_sharing(void **st)
{
    (void)st;
    gradcheck_spec("[input] shape=2x6x6\n[conv] filters=3 size=3 act=tanh\n[avgpool] size=2\n[flatten]\n"
                   "[dense] units=5 act=gelu\n[layernorm]\n"
                   "[task a] kind=cls classes=3\n[task b] kind=reg outputs=2\n[head b]\n[dense] units=4 act=tanh\n");
}

static void test_model_gradients_match_finite_differences_mmoe_gates(void **st)
{
    (void)st;
    gradcheck_spec("[input] shape=1x2x3\n[mmoe] experts=3\n[dense] units=4 act=tanh\n"
                   "[task a] kind=cls classes=3\n[task b] kind=reg outputs=1\n");
}

static void test_model_gradients_match_finite_differences_depthwise_separable(void **st)
{
    (void)st;
    gradcheck_spec("[input] shape=2x6x6\n[conv] filters=4 size=3 pad=1 act=tanh\n"
                   "[conv] filters=4 size=3 pad=1 groups=4 act=tanh\n[conv] filters=6 size=1 groups=2\n[avgpool] size=2\n"
                   "[flatten]\n[dense] units=5 act=tanh\n[task a] kind=cls classes=3\n");
}

/* Residual blocks: a conv block with batchnorm whose [add] applies tanh, a
 * block nested inside another, one starting at the chain's input, and a
 * dense block in a head. */
static void test_model_gradients_match_finite_differences_residual(void **st)
{
    (void)st;
    gradcheck_spec_floor("[input] shape=2x5x5\n[residual]\n[conv] filters=2 size=3 pad=1 act=tanh\n[add]\n"
                   "[conv] filters=3 size=3 pad=1 act=tanh\n[residual]\n[conv] filters=3 size=3 pad=1\n[batchnorm]\n"
                   "[act] fn=tanh\n[residual]\n[conv] filters=3 size=1 act=tanh\n[add] act=gelu\n[add] act=tanh\n"
                   "[avgpool] size=5\n[flatten]\n[task a] kind=cls classes=3\n[task r] kind=reg outputs=2\n[head r]\n"
                   "[dense] units=4 act=tanh\n[residual]\n[dense] units=4 act=tanh\n[add]\n", 1e-2);
    input_gradcheck("[input] shape=2x5x5\n[residual]\n[conv] filters=2 size=3 pad=1 act=tanh\n[conv] filters=2 size=3 "
                    "pad=1\n[batchnorm]\n[add] act=tanh\n[gap]\n[task a] kind=cls classes=3\n");
}

static void test_residual_block_errors_name_the_line(void **st)
{
    (void)st;
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model("[input] shape=1x4x4\n[conv] filters=2 size=3 pad=1\n[add]\n[task a] kind=cls classes=2\n",
                                    &m, 1, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "spec:3: [add] without a [residual]"));
    assert_int_equal(tu_build_model("[input] shape=1x4x4\n[residual]\n[conv] filters=2 size=3 pad=1\n[task a] kind=cls "
                                    "classes=2\n", &m, 1, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "spec:2: [residual] never closed"));
    assert_int_equal(tu_build_model("[input] shape=1x4x4\n[residual]\n[conv] filters=2 size=3 pad=1\n[add]\n[task a] kind=cls "
                                    "classes=2\n", &m, 1, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "spec:4: [add]: the block's output is 2x4x4 but its input (line 2) was 1x4x4"));
    assert_int_equal(tu_build_model("[input] shape=1x4x4\n[residual]\n[conv] filters=1 size=3 pad=1\n[add] act=relu\n"
                                    "[task a] kind=cls classes=2\n", &m, 1, &e), 0);
    mtc_model_free(&m);
}

static void test_model_gradients_match_finite_differences_batchnorm(void **st)
{
    (void)st;
    gradcheck_spec("[input] shape=2x4x4\n[conv] filters=2 size=3 stride=2 pad=1\n[batchnorm]\n[act] fn=sigmoid\n"
                   "[dense] units=3\n[batchnorm]\n[act] fn=tanh\n[task a] kind=cls classes=2\n");
}

/* The input gradient of the eval-mode model (mtc_model_input_grad, used by
 * saliency) against central differences of the eval forward: running
 * batchnorm statistics (set away from 0/1), dropout off, the conv fused
 * with its max-pool, a batchnorm+relu pair (fused only in training), MMoE
 * gates and an empty trunk. Objective sum_t <w_t, output_t>. */
static double eval_objective(mtc_model *m, const float *x, int B, float *const *w)
{
    mtc_model_forward(m, x, B, MTC_FWD_EVAL, NULL);
    double L = 0;
    for (int t = 0; t < m->spec.ntasks; t++)
        for (int i = 0; i < B * m->spec.tasks[t].dim; i++) L += (double)w[t][i] * m->outputs[t][i];
    return L;
}

static void input_gradcheck(const char *text)
{
    gc_ctx g;
    gc_setup(&g, text, 3, 5, 14); /* data seed: no relu or max-pool kink within h of an input */
    mtc_model *m = &g.m;
    mtc_rng r;
    mtc_rng_seed(&r, 99);
    for (int64_t i = 0; i < m->nstats; i++) m->stats[i] = 0.3f * mtc_rng_normal(&r);
    for (int k = 0; k < m->nexperts; k++) /* variances positive */
        for (int i = 0; i < m->trunk[k].n; i++) {
            const mtc_layer *L = &m->trunk[k].layers[i];
            if (L->stat_off < 0) continue;
            for (int c = 0; c < L->in_c; c++) m->stats[L->stat_off + L->in_c + c] = 0.5f + mtc_rng_uniform(&r);
        }
    for (int t = 0; t < m->spec.ntasks; t++)
        for (int i = 0; i < g.B * m->spec.tasks[t].dim; i++) g.dout[t][i] = mtc_rng_normal(&r);
    const int64_t S = (int64_t)m->spec.c * m->spec.h * m->spec.w, n = S * g.B;
    float *dx = malloc(sizeof(float) * (size_t)n);
    mtc_model_forward(m, g.x, g.B, MTC_FWD_EVAL_GRAD, NULL);
    mtc_model_input_grad(m, g.x, g.dout, g.B, dx);
    const float h = 1e-2f;
    double *fd = malloc(sizeof(double) * (size_t)n), scale = 0;
    for (int64_t i = 0; i < n; i++) {
        float p = g.x[i];
        double fdh[2];
        for (int k = 0; k < 2; k++) {
            float hk = k ? h / 2 : h;
            g.x[i] = p + hk;
            double lp = eval_objective(m, g.x, g.B, g.dout);
            g.x[i] = p - hk;
            double lm = eval_objective(m, g.x, g.B, g.dout);
            fdh[k] = (lp - lm) / (2 * hk);
        }
        g.x[i] = p;
        fd[i] = (4 * fdh[1] - fdh[0]) / 3; /* Richardson, as the parameter check above */
        scale = fmax(scale, fabs(fd[i]));
    }
    /* relative 3e-2 (floor 1e-2 of the largest entry), plus the
     * differences' own noise as an absolute allowance: each objective
     * carries float rounding of ~|L|·2^-23 per output summed (n_out of
     * them), divided by 2h and amplified 5/3 by the extrapolation. That
     * rounding depends on the BLAS kernel, so it is added to the bound, not
     * used as a floor the 3e-2 is taken of. */
    double L0 = fabs(eval_objective(m, g.x, g.B, g.dout));
    int64_t nout = 0;
    for (int t = 0; t < m->spec.ntasks; t++) nout += (int64_t)g.B * m->spec.tasks[t].dim;
    double noise = 5.0 / 3.0 * 2.0 * sqrt((double)nout) * (L0 + 1) * 1.2e-7 / (2 * (h / 2));
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(fd[i] - dx[i]) > 3e-2 * fmax(fabs(fd[i]), 1e-2 * scale) + noise && bad++ < 5)
            print_error("input %lld: analytic %g fd %g (largest %g, noise %g)\n", (long long)i, dx[i], fd[i], scale, noise);
    free(fd);
    assert_int_equal(bad, 0);
    free(dx);
    gc_free(&g);
}

static void test_input_gradient_of_the_eval_model_matches_finite_differences(void **st)
{
    (void)st;
    input_gradcheck("[input] shape=2x6x6\n[conv] filters=3 size=3 act=tanh\n[maxpool] size=2\n[batchnorm]\n[act] fn=relu\n"
                    "[dropout] p=0.5\n[flatten]\n[dense] units=5 act=gelu\n[layernorm]\n"
                    "[task a] kind=cls classes=3\n[task b] kind=reg outputs=2\n[head b]\n[dense] units=4 act=tanh\n");
    input_gradcheck("[input] shape=1x2x3\n[mmoe] experts=3\n[dense] units=4 act=tanh\n"
                    "[task a] kind=cls classes=3\n[task b] kind=bin\n");
    input_gradcheck("[input] shape=5\n[task a] kind=cls classes=3\n[task b] kind=reg outputs=1\n");
    input_gradcheck("[input] shape=2x6x6\n[conv] filters=4 size=3 pad=1 act=tanh\n[conv] filters=8 size=3 groups=4 act=tanh\n"
                    "[gap]\n[task a] kind=cls classes=3\n");
}

/* ---- synthetic multi-task data ------------------------------------------- */

static const char *synth_spec =
    "[input] shape=4\n[dense] units=32 act=relu\n"
    "[task fine] kind=cls classes=4\n[task coarse] kind=cls from=fine:0,0,1,1\n"
    "[task level] kind=reg outputs=1\n";

static void build(const char *text, mtc_model *m, uint64_t seed)
{
    mtc_err e = {0};
    if (tu_build_model(text, m, seed, &e)) fail_msg("model: %s", e.msg);
}

static void train_synth(mtc_model *m, mtc_dataset *d, int weighting, mtc_train_result *res)
{
    mtc_train_cfg cfg;
    mtc_train_cfg_default(&cfg);
    cfg.epochs = 12;
    cfg.batch = 32;
    cfg.sched.lr = 3e-3f;
    cfg.weighting = weighting;
    mtc_err e = {0};
    int rc = mtc_train(m, d, &cfg, res, &e);
    if (rc) fail_msg("train: %s", e.msg);
}

static void test_training_learns_every_task_of_a_synthetic_problem(void **st)
{
    (void)st;
    mtc_dataset d;
    tu_synth_data(&d, 2000, 5);
    mtc_model m;
    build(synth_spec, &m, 1);
    mtc_train_result res;
    train_synth(&m, &d, MTC_WEIGHT_FIXED, &res);
    mtc_task_eval ev[MTC_MAX_TASKS];
    mtc_err e = {0};
    assert_int_equal(mtc_evaluate(&m, &d, NULL, 0, 64, ev, &e), 0);
    assert_true(ev[0].cls.accuracy > 0.9);  /* chance 0.25 */
    assert_true(ev[1].cls.accuracy > 0.93); /* derived coarse task, chance 0.5 */
    assert_true(ev[2].reg.mae < 0.15);      /* target std ~0.5 */
    assert_non_null(res.history_json);
    assert_non_null(strstr(res.history_json, "\"coarse\""));
    mtc_task_eval_free(ev, 3);
    free(res.history_json);
    mtc_model_free(&m);
    mtc_data_free(&d);
}

static void test_uncertainty_and_gradnorm_weights_move(void **st)
{
    (void)st;
    mtc_dataset d;
    tu_synth_data(&d, 1000, 6);
    int schemes[] = {MTC_WEIGHT_UNCERTAINTY, MTC_WEIGHT_GRADNORM, MTC_WEIGHT_DWA};
    for (int k = 0; k < 3; k++) {
        mtc_model m;
        build(synth_spec, &m, 2);
        mtc_train_result res;
        train_synth(&m, &d, schemes[k], &res);
        double spread = fabs(res.weight[0] - 1) + fabs(res.weight[1] - 1) + fabs(res.weight[2] - 1);
        /* DWA reacts to loss-ratio differences between epochs, so it moves
         * least; uncertainty and GradNorm move by tenths here */
        double need = schemes[k] == MTC_WEIGHT_DWA ? 0.005 : 0.05;
        if (!(spread > need)) fail_msg("scheme %d: weights did not move (%g %g %g)", k, res.weight[0], res.weight[1], res.weight[2]);
        if (schemes[k] != MTC_WEIGHT_UNCERTAINTY)
            assert_true(fabs(res.weight[0] + res.weight[1] + res.weight[2] - 3.0) < 1e-6);
        free(res.history_json);
        mtc_model_free(&m);
    }
    mtc_data_free(&d);
}

static void test_checkpoint_round_trip_gives_identical_outputs(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    char *p = tu_path(dir, "m.mtc");
    mtc_dataset d;
    tu_synth_data(&d, 300, 7);
    mtc_model m, m2;
    build("[input] shape=4\n[mmoe] experts=2\n[dense] units=8 act=relu\n[batchnorm]\n"
          "[task fine] kind=cls classes=4\n[task level] kind=reg outputs=1\n", &m, 3);
    mtc_train_result res;
    train_synth(&m, &d, MTC_WEIGHT_FIXED, &res);
    free(res.history_json);
    mtc_err e = {0};
    assert_int_equal(mtc_model_save(&m, p, "{\"x\":1}", &e), 0);
    char *meta = NULL;
    assert_int_equal(mtc_model_load(p, &m2, &meta, &e), 0);
    assert_string_equal(meta, "{\"x\":1}");
    float *o1[MTC_MAX_TASKS] = {0}, *o2[MTC_MAX_TASKS] = {0};
    /* the same batch size on both sides (training left m's buffers at 32):
     * the training engine's forward runs through sgemm, whose blocking, and
     * so its rounding, may depend on the batch under some OpenBLAS kernels
     * (Prescott); the batch-invariant path is the runtime's */
    assert_int_equal(mtc_model_predict(&m, &d, NULL, 0, 32, o1, &e), 0);
    assert_int_equal(mtc_model_predict(&m2, &d, NULL, 0, 32, o2, &e), 0);
    assert_memory_equal(o1[0], o2[0], sizeof(float) * 300 * 4);
    assert_memory_equal(o1[1], o2[1], sizeof(float) * 300);
    for (int t = 0; t < 2; t++) { free(o1[t]); free(o2[t]); }
    free(meta);
    mtc_model_free(&m);
    mtc_model_free(&m2);
    mtc_data_free(&d);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void test_same_seed_gives_identical_checkpoint_bytes(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    char *p[2] = {tu_path(dir, "a.mtc"), tu_path(dir, "b.mtc")};
    mtc_dataset d;
    tu_synth_data(&d, 500, 8);
    for (int k = 0; k < 2; k++) {
        mtc_model m;
        build("[input] shape=4\n[dense] units=16 act=relu\n[dropout] p=0.2\n[task fine] kind=cls classes=4\n", &m, 9);
        mtc_train_result res;
        train_synth(&m, &d, MTC_WEIGHT_FIXED, &res);
        mtc_err e = {0};
        assert_int_equal(mtc_model_save(&m, p[k], res.history_json ? "{}" : "{}", &e), 0);
        free(res.history_json);
        mtc_model_free(&m);
    }
    size_t n1, n2;
    unsigned char *a = tu_read(p[0], &n1), *b = tu_read(p[1], &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(a); free(b);
    free(p[0]); free(p[1]);
    mtc_data_free(&d);
    tu_rmdir(dir);
    free(dir);
}

static void keep_val_loss(void *ctx, const mtc_epoch_stats *s)
{
    *(double *)ctx = s->val_loss;
}

/* The validation loss of an (almost) untrained model on the split drawn by
 * (seed, val_seed): lr 1e-9, so the model is its initialisation and the
 * loss depends on which samples are held out, not on the shuffling. */
static double val_loss_of_split(const mtc_dataset *d, uint64_t seed, uint64_t val_seed)
{
    mtc_model m;
    build(synth_spec, &m, 3);
    mtc_train_cfg cfg;
    mtc_train_cfg_default(&cfg);
    cfg.epochs = 1;
    cfg.sched.lr = 1e-9f;
    cfg.seed = seed;
    cfg.val_seed = val_seed;
    double vl = -1;
    cfg.progress = keep_val_loss;
    cfg.progress_ctx = &vl;
    mtc_train_result res;
    mtc_err e = {0};
    if (mtc_train(&m, d, &cfg, &res, &e)) fail_msg("train: %s", e.msg);
    free(res.history_json);
    mtc_model_free(&m);
    return vl;
}

/* --val-seed fixes the validation split across training seeds; without it
 * the split follows the seed. */
static void test_val_seed_fixes_the_split_across_seeds(void **st)
{
    (void)st;
    mtc_dataset d;
    tu_synth_data(&d, 1000, 6);
    double a = val_loss_of_split(&d, 1, 7), b = val_loss_of_split(&d, 2, 7);
    double c = val_loss_of_split(&d, 1, 0), c1 = val_loss_of_split(&d, 1, 1), dd = val_loss_of_split(&d, 2, 0);
    assert_true(a > 0 && c > 0);
    assert_true(fabs(a - b) < 1e-6 * a);   /* one split, two seeds */
    assert_true(fabs(c - c1) < 1e-6 * c);  /* 0 = the seed */
    assert_true(fabs(c - dd) > 1e-3 * c);  /* by default each seed draws its own */
    assert_true(fabs(a - c) > 1e-3 * a);
    mtc_data_free(&d);
}

/* The hint loss pulls the trunk output towards teacher features through a
 * learned projection: its per-epoch value must fall. */
static void test_hint_loss_decreases_during_training(void **st)
{
    (void)st;
    mtc_dataset d;
    tu_synth_data(&d, 1000, 12);
    float *hints = malloc(sizeof(float) * 1000 * 3);
    for (int i = 0; i < 1000; i++)
        for (int j = 0; j < 3; j++) hints[i * 3 + j] = d.x_f32[i * 4 + j] - 0.5f * d.x_f32[i * 4 + 3];
    mtc_model m;
    build(synth_spec, &m, 4);
    mtc_train_cfg cfg;
    mtc_train_cfg_default(&cfg);
    cfg.epochs = 8;
    cfg.batch = 32;
    cfg.hints = hints;
    cfg.hint_dim = 3;
    cfg.hint_weight = 1.0f;
    mtc_train_result res;
    mtc_err e = {0};
    if (mtc_train(&m, &d, &cfg, &res, &e)) fail_msg("%s", e.msg);
    mtc_json h;
    assert_int_equal(mtc_json_parse(res.history_json, strlen(res.history_json), &h, &e), 0);
    assert_int_equal(h.n, 8);
    double first = mtc_json_num(&h.items[0], "hint_loss", -1), last = mtc_json_num(&h.items[7], "hint_loss", -1);
    assert_true(first > 0);
    if (!(last < 0.5 * first)) fail_msg("hint loss %g -> %g", first, last);
    mtc_json_free(&h);
    free(res.history_json);
    mtc_model_free(&m);
    free(hints);
    mtc_data_free(&d);
}

typedef struct { const char *state, *copy; int at_epoch; } snap_ctx;

/* Progress runs before that epoch's state is written, so at epoch k the
 * state file still holds the state after epoch k-1. */
static void snapshot_state(void *ctx, const mtc_epoch_stats *s)
{
    snap_ctx *c = ctx;
    if (s->epoch != c->at_epoch) return;
    size_t n;
    unsigned char *b = tu_read(c->state, &n);
    assert_non_null(b);
    assert_int_equal(tu_write(c->copy, b, n), 0);
    free(b);
}

static void run_resume_case(int weighting, int dropout)
{
    char *dir = tu_mkdtemp();
    char *state = tu_path(dir, "run.state"), *copy = tu_path(dir, "after2.state");
    char *pa = tu_path(dir, "a.mtc"), *pb = tu_path(dir, "b.mtc");
    mtc_dataset d;
    tu_synth_data(&d, 600, 13);
    const char *spec = dropout ? "[input] shape=4\n[dense] units=16 act=relu\n[dropout] p=0.3\n"
                                 "[task fine] kind=cls classes=4\n[task level] kind=reg outputs=1\n"
                               : synth_spec;
    mtc_train_cfg cfg;
    mtc_train_cfg_default(&cfg);
    cfg.epochs = 4;
    cfg.batch = 32;
    cfg.weighting = weighting;
    cfg.sched.kind = MTC_SCHED_COSINE;
    mtc_err e = {0};
    /* uninterrupted, writing states; snapshot the state after epoch 2 */
    mtc_model a;
    build(spec, &a, 5);
    snap_ctx sc = {state, copy, 3};
    cfg.checkpoint_path = state;
    cfg.checkpoint_every = 1;
    cfg.progress = snapshot_state;
    cfg.progress_ctx = &sc;
    mtc_train_result ra;
    if (mtc_train(&a, &d, &cfg, &ra, &e)) fail_msg("%s", e.msg);
    /* resumed from the epoch-2 state, from a differently initialised model */
    mtc_model b;
    build(spec, &b, 99);
    cfg.checkpoint_path = NULL;
    cfg.checkpoint_every = 0;
    cfg.progress = NULL;
    cfg.resume_path = copy;
    mtc_train_result rb;
    if (mtc_train(&b, &d, &cfg, &rb, &e)) fail_msg("resume: %s", e.msg);
    assert_int_equal(ra.best_epoch, rb.best_epoch);
    assert_string_equal(ra.history_json, rb.history_json);
    assert_int_equal(mtc_model_save(&a, pa, "{}", &e), 0);
    assert_int_equal(mtc_model_save(&b, pb, "{}", &e), 0);
    size_t na, nb;
    unsigned char *ba = tu_read(pa, &na), *bb = tu_read(pb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    free(ba); free(bb);
    /* other settings are refused */
    cfg.sched.lr = 5e-3f;
    mtc_model c;
    build(spec, &c, 5);
    mtc_train_result rc;
    assert_int_equal(mtc_train(&c, &d, &cfg, &rc, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "other settings"));
    mtc_model_free(&c);
    free(ra.history_json);
    free(rb.history_json);
    mtc_model_free(&a);
    mtc_model_free(&b);
    mtc_data_free(&d);
    free(state); free(copy); free(pa); free(pb);
    tu_rmdir(dir);
    free(dir);
}

static void test_resume_from_a_state_is_bit_identical_to_an_uninterrupted_run(void **st)
{
    (void)st;
    run_resume_case(MTC_WEIGHT_FIXED, 1);
    run_resume_case(MTC_WEIGHT_UNCERTAINTY, 0);
    run_resume_case(MTC_WEIGHT_GRADNORM, 0);
    run_resume_case(MTC_WEIGHT_DWA, 0);
}

/* Forward outputs and gradients with the batch split over 2 threads match
 * the single-threaded ones (up to summation order), and 2-thread training
 * is reproducible. */
static void fwd_bwd(const char *spec, int threads, float **outs, float **grads, int64_t *np)
{
    mtc_set_threads(threads);
    gc_ctx g;
    gc_setup(&g, spec, 7, 21, 5);
    if (threads > 1) assert_non_null(g.m.pool);
    g.m.par_always = 1; /* these layers are below the size that is split */
    total_loss(&g, 1);
    int D0 = g.m.spec.tasks[0].dim;
    *outs = malloc(sizeof(float) * (size_t)g.B * D0);
    memcpy(*outs, g.m.outputs[0], sizeof(float) * (size_t)g.B * D0);
    memset(g.m.grads, 0, sizeof(float) * (size_t)g.m.nparams);
    mtc_model_backward(&g.m, g.x, g.dout, g.B);
    *np = g.m.nparams;
    *grads = malloc(sizeof(float) * (size_t)g.m.nparams);
    memcpy(*grads, g.m.grads, sizeof(float) * (size_t)g.m.nparams);
    gc_free(&g);
    mtc_set_threads(1);
}

static void test_two_threads_match_one_thread(void **st)
{
    (void)st;
    const char *spec = "[input] shape=2x6x6\n[conv] filters=4 size=3 act=relu\n[maxpool] size=2\n"
                       "[conv] filters=3 size=3 act=tanh\n[batchnorm]\n[avgpool] size=3\n[flatten]\n"
                       "[dense] units=5 act=relu\n"
                       "[act] fn=sigmoid\n[task a] kind=cls classes=3\n[task b] kind=reg outputs=2\n";
    float *o1, *o2, *g1, *g2;
    int64_t n1, n2;
    fwd_bwd(spec, 1, &o1, &g1, &n1);
    fwd_bwd(spec, 2, &o2, &g2, &n2);
    assert_int_equal(n1, n2);
    for (int i = 0; i < 7 * 3; i++) assert_true(tu_relerr(o1[i], o2[i], 1e-6) < 1e-5);
    /* Summation order differs between the slices, so an entry near zero
     * carries an absolute error of the size of its summands: compare against
     * the gradient's scale (max |g|) there, relative error elsewhere. */
    double gmax = 0;
    for (int64_t i = 0; i < n1; i++) gmax = fmax(gmax, fabs(g1[i]));
    assert_true(gmax > 0);
    int bad = 0;
    for (int64_t i = 0; i < n1; i++) bad += tu_relerr(g1[i], g2[i], 1e-3 * gmax) > 1e-4;
    assert_int_equal(bad, 0);
    free(o1); free(o2); free(g1); free(g2);
}

/* A conv followed by a max-pool runs fused, chunk by chunk, without its
 * whole-batch output: outputs and gradients are those of the same conv with
 * its activation as a separate layer (which is not fused). 24x24 gives one
 * sample per conv chunk, so the batch of 7 takes seven chunks. */
static void check_conv_pool_fusion_g(const char *act, const char *pool, const char *groups)
{
    const char *fmt = "[input] shape=2x24x24\n[conv] filters=4 size=3%s%s%s\n%s\n%s\n[flatten]\n"
                      "[dense] units=5 act=tanh\n[task a] kind=cls classes=3\n";
    char fused[512], separate[512], fn[32];
    snprintf(fn, sizeof fn, "[act] fn=%s", act);
    snprintf(fused, sizeof fused, fmt, groups, " act=", act, "", pool);
    snprintf(separate, sizeof separate, fmt, groups, "", "", fn, pool);
    float *o1, *o2, *g1, *g2;
    int64_t n1, n2;
    fwd_bwd(fused, 1, &o1, &g1, &n1);
    fwd_bwd(separate, 1, &o2, &g2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(o1, o2, sizeof(float) * 7 * 3);
    /* overlapping windows sum a position's gradients before (separate) or
     * after (fused) the leaky slope: rounding only */
    double gmax = 0;
    for (int64_t i = 0; i < n1; i++) gmax = fmax(gmax, fabs(g1[i]));
    int bad = 0;
    for (int64_t i = 0; i < n1; i++) bad += tu_relerr(g1[i], g2[i], 1e-4 * gmax) > 1e-5;
    assert_int_equal(bad, 0);
    free(o1); free(o2); free(g1); free(g2);
}

static void check_conv_pool_fusion(const char *act, const char *pool)
{
    check_conv_pool_fusion_g(act, pool, "");
}

static void test_conv_fused_with_maxpool_matches_separate_layers(void **st)
{
    (void)st;
    check_conv_pool_fusion_g("relu", "[maxpool] size=2", " groups=2"); /* grouped, depthwise */
    check_conv_pool_fusion_g("leaky", "[maxpool] size=3 stride=2", " groups=2");
    check_conv_pool_fusion("relu", "[maxpool] size=2");
    check_conv_pool_fusion("leaky", "[maxpool] size=2");
    check_conv_pool_fusion("none", "[maxpool] size=2");
    check_conv_pool_fusion("relu", "[maxpool] size=3 stride=2");
    check_conv_pool_fusion("leaky", "[maxpool] size=3 stride=2");
}

/* A batchnorm followed by a relu runs as one layer in training; with a
 * no-op dropout between them it runs as two (each checked against finite
 * differences on its own above). Same bytes both ways, on 1 and 2 threads
 * (the BN split over channels). A finite-difference check of the pair
 * itself would straddle the relu's kink: BN centres its outputs on 0. */
static void test_batchnorm_fused_with_relu_matches_separate_layers(void **st)
{
    (void)st;
    const char *fmt = "[input] shape=2x8x8\n[conv] filters=4 size=3 pad=1\n[batchnorm]\n%s[act] fn=relu\n"
                      "[maxpool] size=2\n[flatten]\n[dense] units=6\n[batchnorm]\n%s[act] fn=relu\n"
                      "[task a] kind=cls classes=3\n";
    char fused[512], separate[512];
    snprintf(fused, sizeof fused, fmt, "", "");
    snprintf(separate, sizeof separate, fmt, "[dropout] p=0\n", "[dropout] p=0\n");
    for (int threads = 1; threads <= 2; threads++) {
        float *o1, *o2, *g1, *g2;
        int64_t n1, n2;
        fwd_bwd(fused, threads, &o1, &g1, &n1);
        fwd_bwd(separate, threads, &o2, &g2, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(o1, o2, sizeof(float) * 7 * 3);
        assert_memory_equal(g1, g2, sizeof(float) * (size_t)n1);
        free(o1); free(o2); free(g1); free(g2);
    }
}

static void test_labels_out_of_range_are_refused(void **st)
{
    (void)st;
    mtc_dataset d;
    tu_synth_data(&d, 100, 9);
    d.tasks[0].labels[17] = 9;
    mtc_model m;
    build(synth_spec, &m, 1);
    mtc_train_cfg cfg;
    mtc_train_cfg_default(&cfg);
    mtc_train_result res;
    mtc_err e = {0};
    assert_int_equal(mtc_train(&m, &d, &cfg, &res, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "sample 17"));
    mtc_model_free(&m);
    mtc_data_free(&d);
}

/* [gap] and [avgpool] global = 1: an average pool as large as the (square)
 * map, output 1x1 per channel, equal to the mean of each channel; a
 * non-square map is an error naming the line. */
static void test_global_average_pool(void **st)
{
    (void)st;
    mtc_model m;
    mtc_err e = {0};
    const char *specs[2] = {"[input] shape=1x6x6\n[conv] filters=4 size=3 pad=1 act=relu\n[gap]\n[dense] units=3\n"
                            "[task a] kind=cls classes=3\n",
                            "[input] shape=1x6x6\n[conv] filters=4 size=3 pad=1 act=relu\n[avgpool] global = 1\n"
                            "[dense] units=3\n[task a] kind=cls classes=3\n"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tu_build_model(specs[k], &m, 2, &e), 0);
        const mtc_layer *L = &m.trunk[0].layers[1];
        assert_int_equal(L->spec.type, MTC_L_AVGPOOL);
        assert_int_equal(L->spec.size, 6);
        assert_true(L->out_c == 4 && L->out_h == 1 && L->out_w == 1);
        float x[2 * 36];
        for (int i = 0; i < 72; i++) x[i] = (float)((i * 37) % 11) / 10.0f;
        assert_int_equal(mtc_model_reserve(&m, 2, &e), 0);
        mtc_model_forward(&m, x, 2, 0, NULL);
        const mtc_layer *C = &m.trunk[0].layers[0];
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 4; c++) {
                double s = 0;
                for (int i = 0; i < 36; i++) s += C->out[(b * 4 + c) * 36 + i];
                assert_true(fabs(L->out[b * 4 + c] - s / 36) < 1e-5);
            }
        mtc_model_free(&m);
    }
    assert_int_equal(tu_build_model("[input] shape=1x4x6\n[gap]\n[dense] units=2\n[task a] kind=cls classes=2\n", &m, 2, &e),
                     MTC_EINPUT);
    assert_non_null(strstr(e.msg, "square"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_global_average_pool),
        cmocka_unit_test(test_spec_parses_layers_tasks_heads_and_maps),
        cmocka_unit_test(test_example_specs_build),
        cmocka_unit_test(test_val_seed_fixes_the_split_across_seeds),
        cmocka_unit_test(test_spec_errors_name_file_line_and_problem),
        cmocka_unit_test(test_model_build_rejects_shape_mismatch),
        cmocka_unit_test(test_model_gradients_match_finite_differences_hard_sharing),
        cmocka_unit_test(test_model_gradients_match_finite_differences_mmoe_gates),
        cmocka_unit_test(test_model_gradients_match_finite_differences_batchnorm),
        cmocka_unit_test(test_model_gradients_match_finite_differences_depthwise_separable),
        cmocka_unit_test(test_model_gradients_match_finite_differences_residual),
        cmocka_unit_test(test_residual_block_errors_name_the_line),
        cmocka_unit_test(test_input_gradient_of_the_eval_model_matches_finite_differences),
        cmocka_unit_test(test_batchnorm_fused_with_relu_matches_separate_layers),
        cmocka_unit_test(test_training_learns_every_task_of_a_synthetic_problem),
        cmocka_unit_test(test_uncertainty_and_gradnorm_weights_move),
        cmocka_unit_test(test_checkpoint_round_trip_gives_identical_outputs),
        cmocka_unit_test(test_same_seed_gives_identical_checkpoint_bytes),
        cmocka_unit_test(test_labels_out_of_range_are_refused),
        cmocka_unit_test(test_two_threads_match_one_thread),
        cmocka_unit_test(test_conv_fused_with_maxpool_matches_separate_layers),
        cmocka_unit_test(test_hint_loss_decreases_during_training),
        cmocka_unit_test(test_resume_from_a_state_is_bit_identical_to_an_uninterrupted_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
