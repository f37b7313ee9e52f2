/*
 * test_explain.c — calibration and gate usage (`mtc explain`, `mtc verify
 * --max-ece`):
 *   - ECE of a perfectly calibrated synthetic predictor is ~0 (sampling
 *     noise only), of a constant one |accuracy - confidence| exactly;
 *     bin edges: 1.0 in the last bin, 0 in the first;
 *   - explain on an MMoE writes explain.json whose gate usage rows sum to 1
 *     and whose entropies lie in [0, log E], the heatmap and one
 *     reliability diagram per cls task; --gates on a hard-sharing model and
 *     a bin count out of range are exit 2;
 *   - verify --max-ece passes a budget above the candidate's ECE and fails
 *     (exit 1) one below it; a regression task is exit 2;
 *   - saliency of a linear model is exactly its weights times the input
 *     (plain and SmoothGrad); Spearman of known rankings; explain --compare
 *     of a model with itself has rank correlation 1, an int8 model through
 *     the straight-through estimate agrees with its fp32 parent; an int8
 *     model without --ste/--twin writes calibration and exits 2 for
 *     saliency; --samples out of range and --twin on fp32 are exit 2.
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_ece_of_calibrated_and_constant_predictors(void **st)
{
    (void)st;
    const int64_t n = 200000;
    float *conf = malloc(n * sizeof *conf);
    uint8_t *ok = malloc(n);
    mtc_rng r;
    mtc_rng_seed(&r, 3);
    for (int64_t i = 0; i < n; i++) {
        conf[i] = mtc_rng_uniform(&r);
        ok[i] = mtc_rng_uniform(&r) < conf[i]; /* right with probability conf: calibrated */
    }
    mtc_reliability c;
    mtc_err e = {0};
    assert_int_equal(mtc_calibration(conf, ok, n, 15, &c, &e), 0);
    /* per bin ~13,333 draws: |acc - conf| ~ 0.004 of noise */
    if (!(c.ece < 0.01)) fail_msg("calibrated predictor: ECE %.4f", c.ece);
    int64_t total = 0;
    for (int b = 0; b < 15; b++) total += c.bin_n[b];
    assert_int_equal(total, n);
    /* constant 0.8, right on 60%: ECE = MCE = 0.2 */
    for (int64_t i = 0; i < 1000; i++) conf[i] = 0.8f, ok[i] = i % 5 < 3;
    assert_int_equal(mtc_calibration(conf, ok, 1000, 15, &c, &e), 0);
    assert_true(fabs(c.ece - 0.2) < 1e-6 && fabs(c.mce - 0.2) < 1e-6);
    /* edges: 1 in the last bin, 0 in the first; out of range is an error */
    conf[0] = 1.0f, conf[1] = 0.0f;
    assert_int_equal(mtc_calibration(conf, ok, 2, 10, &c, &e), 0);
    assert_true(c.bin_n[9] == 1 && c.bin_n[0] == 1);
    conf[0] = 1.5f;
    assert_int_equal(mtc_calibration(conf, ok, 1, 10, &c, &e), MTC_EINPUT);
    assert_int_equal(mtc_calibration(conf, ok, 1, 0, &c, &e), MTC_EINPUT);
    free(conf);
    free(ok);
}

static double jnum_at(const mtc_json *a, int i)
{
    const mtc_json *v = a && i < (int)a->n ? &a->items[i] : NULL;
    return v ? v->num : NAN;
}

static void test_explain_gates_and_reliability(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[4096];
    char *csv = tu_path(dir, "d.csv"), *mm = tu_path(dir, "mmoe.mtc"), *hs = tu_path(dir, "hard.mtc");
    tu_write_synth_csv(csv, 600, 3);
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model("[input] shape=4 columns=x0,x1,x2,x3\n[mmoe] experts=3\n[dense] units=8 act=relu\n"
                                    "[task fine] kind=cls classes=4\n[task fine2] kind=cls classes=4 column=fine\n",
                                    &m, 4, &e), 0);
    assert_int_equal(mtc_model_save(&m, mm, "{}", &e), 0);
    mtc_model_free(&m);
    char *sp = tu_path(dir, "hard.cfg");
    const char *spec = "[input] shape=4 columns=x0,x1,x2,x3\n[dense] units=8 act=relu\n[task fine] kind=cls classes=4\n";
    assert_int_equal(tu_write(sp, spec, strlen(spec)), 0);
    snprintf(args, sizeof args, "train --spec %s --data csv:%s --epochs 10 --lr 0.01 --quiet -o %s", sp, csv, hs);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("train: %s", err);
    free(out); free(err);
    free(sp);
    snprintf(args, sizeof args, "explain %s --data csv:%s -o %s/ex --compare %s --quiet", mm, csv, dir, mm);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("explain: %s", err);
    free(out); free(err);
    char *jp = tu_path(dir, "ex/explain.json"), *txt = (char *)tu_read(jp, NULL);
    assert_non_null(txt);
    mtc_json j;
    assert_int_equal(mtc_json_parse(txt, strlen(txt), &j, &e), 0);
    const mtc_json *tasks = mtc_json_get(&j, "tasks");
    static const char *const names[2] = {"fine", "fine2"};
    for (int t = 0; t < 2; t++) {
        const mtc_json *tj = mtc_json_get(tasks, names[t]), *u = mtc_json_get(tj, "gate_usage");
        assert_non_null(u);
        assert_int_equal((int)u->n, 3);
        double sum = 0;
        for (int k = 0; k < 3; k++) sum += jnum_at(u, k);
        if (fabs(sum - 1.0) > 1e-9) fail_msg("task %s: gate usage sums to %.12f", names[t], sum);
        const mtc_json *cu = mtc_json_get(tj, "compare_gate_usage"); /* the model against itself */
        assert_true(cu && cu->n == 3);
        for (int k = 0; k < 3; k++) assert_true(jnum_at(cu, k) == jnum_at(u, k));
        double h = mtc_json_num(tj, "gate_entropy", -1), hsm = mtc_json_num(tj, "gate_entropy_per_sample", -1);
        assert_true(h >= 0 && h <= log(3.0) + 1e-12 && hsm >= 0 && hsm <= h + 1e-12);
        double ece = mtc_json_num(tj, "ece", -1);
        assert_true(ece >= 0 && ece <= 1);
    }
    mtc_json_free(&j);
    free(txt);
    struct stat sb;
    char *g = tu_path(dir, "ex/gates.png"), *rel = tu_path(dir, "ex/reliability-fine.png");
    assert_int_equal(stat(g, &sb), 0);
    assert_int_equal(stat(rel, &sb), 0);
    /* bad input */
    snprintf(args, sizeof args, "explain %s --data csv:%s -o %s/ex2 --gates", hs, csv, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "no MMoE gates"));
    free(out); free(err);
    snprintf(args, sizeof args, "explain %s --data csv:%s -o %s/ex3 --bins 0", hs, csv, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    free(out); free(err);
    /* verify --max-ece: the candidate is the reference; budget above and below its ECE */
    snprintf(args, sizeof args, "verify --reference %s --candidate %s --data csv:%s --max-ece fine=1 --json", hs, hs, csv);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("verify --max-ece fine=1: %s", err);
    assert_non_null(strstr(out, "\"ece\""));
    free(out); free(err);
    snprintf(args, sizeof args, "verify --reference %s --candidate %s --data csv:%s --max-ece fine=0", hs, hs, csv);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 1);
    assert_non_null(strstr(out, "calibration"));
    free(out); free(err);
    free(csv); free(mm); free(hs); free(jp); free(g); free(rel);
    tu_rmdir(dir);
    free(dir);
}


/* ---- saliency ------------------------------------------------------------- */

static void test_saliency_of_a_linear_model_is_weights_times_input(void **st)
{
    (void)st;
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model("[input] shape=6\n[task a] kind=cls classes=3\n[task r] kind=reg outputs=1\n", &m, 9,
                                    &e), 0);
    enum { N = 5, S = 6 };
    float x[N * S], out[N * S];
    mtc_rng r;
    mtc_rng_seed(&r, 4);
    for (int i = 0; i < N * S; i++) x[i] = mtc_rng_normal(&r);
    int32_t cls[N] = {0, 1, 2, -1, 1};
    const mtc_layer *A = &m.head[0].layers[0], *R = &m.head[1].layers[0];
    for (int smooth = 0; smooth <= 7; smooth += 7) {
        assert_int_equal(mtc_saliency(&m, x, N, 0, cls, smooth, 0.3f, 1, out, &e), 0);
        /* the prediction explains sample 3 */
        mtc_model_forward(&m, x + 3 * S, 1, MTC_FWD_EVAL, NULL);
        int c3 = 0;
        for (int j = 1; j < 3; j++)
            if (m.outputs[0][j] > m.outputs[0][c3]) c3 = j;
        for (int i = 0; i < N; i++) {
            int c = i == 3 ? c3 : cls[i];
            for (int j = 0; j < S; j++) {
                float want = m.params[A->w_off + c * S + j] * x[i * S + j];
                if (out[i * S + j] != want)
                    fail_msg("smooth %d sample %d input %d: %.9g, weight x input %.9g", smooth, i, j, out[i * S + j], want);
            }
        }
        assert_int_equal(mtc_saliency(&m, x, N, 1, NULL, smooth, 0.3f, 1, out, &e), 0);
        for (int i = 0; i < N * S; i++) assert_true(out[i] == m.params[R->w_off + i % S] * x[i]);
    }
    mtc_model_free(&m);
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {50, 40, 30, 20, 10}, c[5] = {0, 0, 1, 1, 2}, d[5] = {-1, 2, -3, 4, -5};
    assert_true(fabs(mtc_spearman(a, b, 5, 0) + 1) < 1e-12);
    assert_true(fabs(mtc_spearman(a, a, 5, 0) - 1) < 1e-12);
    assert_true(fabs(mtc_spearman(a, d, 5, 1) - 1) < 1e-12); /* |d| ranks as a */
    /* ties share ranks 1.5, 1.5, 3.5, 3.5, 5: rho with 1..5 = 0.9486833 */
    assert_true(fabs(mtc_spearman(a, c, 5, 0) - 0.9486832980505138) < 1e-12);
    assert_true(isnan(mtc_spearman(a, (float[5]){2, 2, 2, 2, 2}, 5, 0)));
}

static double task_num(const char *path, const char *task, const char *key)
{
    char *txt = (char *)tu_read(path, NULL);
    if (!txt) return NAN;
    mtc_json j;
    mtc_err e = {0};
    double v = NAN;
    if (mtc_json_parse(txt, strlen(txt), &j, &e) == 0) {
        v = mtc_json_num(mtc_json_get(mtc_json_get(&j, "tasks"), task), key, NAN);
        mtc_json_free(&j);
    }
    free(txt);
    return v;
}

static void test_explain_saliency_compare_int8_and_bad_input(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[4096];
    char *csv = tu_path(dir, "d.csv"), *fp = tu_path(dir, "m.mtc"), *q8 = tu_path(dir, "m.q8.mtc");
    char *sp = tu_path(dir, "m.cfg");
    tu_write_synth_csv(csv, 600, 5);
    const char *spec = "[input] shape=4 columns=x0,x1,x2,x3\n[dense] units=16 act=relu\n[dense] units=16 act=relu\n"
                       "[task fine] kind=cls classes=4\n";
    assert_int_equal(tu_write(sp, spec, strlen(spec)), 0);
    snprintf(args, sizeof args, "train --spec %s --data csv:%s --epochs 8 --lr 0.01 --quiet -o %s", sp, csv, fp);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("train: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "quantize %s --data csv:%s --quiet -o %s", fp, csv, q8);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("quantize: %s", err);
    free(out); free(err);
    /* a model against itself: rank correlation 1 */
    snprintf(args, sizeof args, "explain %s --data csv:%s -o %s/self --samples 0-49 --compare %s --quiet", fp, csv, dir, fp);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("explain --compare self: %s", err);
    free(out); free(err);
    char *js = tu_path(dir, "self/explain.json"), *png = tu_path(dir, "self/saliency.png");
    double self = task_num(js, "fine", "rank_correlation");
    if (!(fabs(self - 1) < 1e-12)) fail_msg("self rank correlation %.6f", self);
    struct stat sb;
    assert_int_equal(stat(png, &sb), 0);
    /* int8 without --ste / --twin: calibration written, saliency exit 2 */
    snprintf(args, sizeof args, "explain %s --data csv:%s -o %s/q", q8, csv, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "m.q8.mtc"));
    assert_non_null(strstr(err, "--ste"));
    free(out); free(err);
    char *qj = tu_path(dir, "q/explain.json");
    assert_true(task_num(qj, "fine", "ece") >= 0);
    /* straight-through: the int8 model looks where its fp32 parent does */
    snprintf(args, sizeof args, "explain %s --data csv:%s -o %s/ste --samples 0-99 --ste --compare %s --quiet", q8, csv,
             dir, fp);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("explain --ste: %s", err);
    free(out); free(err);
    char *sj = tu_path(dir, "ste/explain.json");
    double ste = task_num(sj, "fine", "rank_correlation");
    print_message("int8 (straight-through) vs fp32 parent: rank correlation %.4f\n", ste);
    if (!(ste > 0.9 && ste < 1)) fail_msg("int8 vs fp32 rank correlation %.4f", ste);
    /* bad input */
    snprintf(args, sizeof args, "explain %s --data csv:%s -o %s/bad --samples 0-600", fp, csv, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "out of range"));
    free(out); free(err);
    snprintf(args, sizeof args, "explain %s --data csv:%s -o %s/bad --twin %s", fp, csv, dir, fp);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    free(out); free(err);
    snprintf(args, sizeof args, "explain %s --data csv:%s -o %s/bad --samples 3-1", fp, csv, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    free(out); free(err);
    free(csv); free(fp); free(q8); free(sp); free(js); free(png); free(qj); free(sj);
    tu_rmdir(dir);
    free(dir);
}

/* ---- task conflict during training -------------------------------------- */

typedef struct { double last; int n; } conflict_cap;
static void capture(void *ctx, const mtc_epoch_stats *st)
{
    conflict_cap *c = ctx;
    if (st->nconflict) c->last = st->conflict[0], c->n = st->nconflict;
}

/* Two tasks whose heads start equal: their gradients on the shared layer
 * are identical (cosine 1) when the tasks are the same, and point apart
 * (cosine < 0) when one target is the other negated. */
static double pair_cosine(int opposed)
{
    mtc_dataset d;
    tu_synth_data(&d, 512, 7);
    /* task "neg": -level (opposed) or level (identical) */
    mtc_data_task *lv = &d.tasks[1], *ng = &d.tasks[d.ntasks++];
    *ng = *lv;
    snprintf(ng->name, sizeof ng->name, "neg");
    ng->targets = malloc(sizeof(float) * (size_t)d.n);
    for (int64_t i = 0; i < d.n; i++) ng->targets[i] = opposed ? -lv->targets[i] : lv->targets[i];
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model("[input] shape=4\n[dense] units=8 act=tanh\n[task level] kind=reg outputs=1\n"
                                    "[task neg] kind=reg outputs=1\n", &m, 3, &e), 0);
    const mtc_layer *a = &m.head[0].layers[0], *b = &m.head[1].layers[0];
    memcpy(m.params + b->w_off, m.params + a->w_off, (size_t)a->nw * sizeof(float));
    memcpy(m.params + b->b_off, m.params + a->b_off, (size_t)a->nb * sizeof(float));
    mtc_train_cfg cfg;
    mtc_train_cfg_default(&cfg);
    cfg.epochs = 1, cfg.batch = 64, cfg.conflict_every = 1, cfg.val_frac = 0;
    cfg.keep_standardisation = 1; /* the same targets, the same scale for both */
    conflict_cap cap = {NAN, 0};
    cfg.progress = capture, cfg.progress_ctx = &cap;
    mtc_train_result res;
    if (mtc_train(&m, &d, &cfg, &res, &e)) fail_msg("%s", e.msg);
    assert_int_equal(cap.n, 1);
    free(res.history_json);
    mtc_model_free(&m);
    mtc_data_free(&d);
    return cap.last;
}

static void test_task_conflict_identical_and_opposed(void **st)
{
    (void)st;
    double same = pair_cosine(0), opp = pair_cosine(1);
    print_message("cosine: identical tasks %.6f, opposed %.6f\n", same, opp);
    if (!(same > 0.9999)) fail_msg("identical tasks: cosine %.6f", same);
    if (!(opp < -0.5)) fail_msg("opposed tasks: cosine %.6f", opp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ece_of_calibrated_and_constant_predictors),
        cmocka_unit_test(test_explain_gates_and_reliability),
        cmocka_unit_test(test_task_conflict_identical_and_opposed),
        cmocka_unit_test(test_saliency_of_a_linear_model_is_weights_times_input),
        cmocka_unit_test(test_explain_saliency_compare_int8_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
