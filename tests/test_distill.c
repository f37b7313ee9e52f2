/*
 * test_distill.c — soft-label files (round trip f32/f16, multi-teacher
 * average, per-task teacher choice, truncation and mismatch errors), KD
 * training on synthetic data, α = 0 equals plain training bit for bit, and
 * the `mtc label` / `mtc distill` command lines.
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *teacher_spec =
    "[input] shape=4\n[dense] units=32 act=relu\n"
    "[task fine] kind=cls classes=4\n[task coarse] kind=cls from=fine:0,0,1,1\n"
    "[task level] kind=reg outputs=1\n[task pos] kind=bin outputs=1\n";
static const char *student_spec =
    "[input] shape=4\n[dense] units=12 act=relu\n"
    "[task fine] kind=cls classes=4\n[task coarse] kind=cls from=fine:0,0,1,1\n"
    "[task level] kind=reg outputs=1\n[task pos] kind=bin outputs=1\n";

static void build(const char *text, mtc_model *m, uint64_t seed)
{
    mtc_err e = {0};
    if (tu_build_model(text, m, seed, &e)) fail_msg("model: %s", e.msg);
}

static void quick_cfg(mtc_train_cfg *c, int epochs)
{
    mtc_train_cfg_default(c);
    c->epochs = epochs;
    c->batch = 32;
    c->sched.lr = 5e-3f;
}

static void train_teacher(mtc_model *m, const mtc_dataset *d, int epochs)
{
    mtc_train_cfg c;
    quick_cfg(&c, epochs);
    mtc_train_result res;
    mtc_err e = {0};
    assert_int_equal(mtc_train(m, d, &c, &res, &e), 0);
    free(res.history_json);
}

/* Labels d with the teachers (cfg prepared by the caller) into dir/name. */
static char *write_soft(const char *dir, const char *name, mtc_label_cfg *cfg, const mtc_dataset *d)
{
    char *p = tu_path(dir, name);
    mtc_err e = {0};
    int rc = mtc_soft_write(p, cfg, d, &e);
    if (rc) fail_msg("mtc_soft_write: %s", e.msg);
    return p;
}

/* One teacher at the library's label defaults into dir/name. */
static char *write_soft1(const char *dir, const char *name, mtc_model *t, const mtc_dataset *d)
{
    mtc_label_cfg cfg;
    mtc_label_cfg_default(&cfg);
    cfg.nteachers = 1;
    cfg.teachers[0] = t;
    return write_soft(dir, name, &cfg, d);
}

static void predict(mtc_model *m, const mtc_dataset *d, int batch, float **outs)
{
    mtc_err e = {0};
    assert_int_equal(mtc_model_predict(m, d, NULL, 0, batch, outs, &e), 0);
}

/* The teacher as `mtc label` runs it: in the runtime, sparse kernel off. */
static mtc_rt *teacher_runtime(const mtc_model *t)
{
    mtc_err e = {0};
    mtc_rt *rt = NULL;
    if (mtc_rt_from_model(t, "teacher", &rt, &e)) fail_msg("runtime: %s", e.msg);
    mtc_rt_set_sparse(rt, 0);
    return rt;
}

/* The teacher's outputs on all of d as `mtc label` computes them. */
static void rt_outputs(const mtc_model *t, const mtc_dataset *d, int batch, float **outs)
{
    mtc_rt *rt = teacher_runtime(t);
    mtc_err e = {0};
    if (mtc_rt_predict(rt, d, NULL, 0, batch, outs, &e)) fail_msg("runtime: %s", e.msg);
    mtc_rt_free(rt);
}

static void free_outs(float **o, int n)
{
    for (int t = 0; t < n; t++) free(o[t]);
}

/* ---- half precision --------------------------------------------------------- */

static void test_f16_rounds_to_nearest_even_and_saturates(void **st)
{
    (void)st;
    assert_int_equal(mtc_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(mtc_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(mtc_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(mtc_f32_to_f16(1e6f), 0x7bff);      /* saturates */
    assert_int_equal(mtc_f32_to_f16(-1e6f), 0xfbff);
    assert_int_equal(mtc_f32_to_f16(INFINITY), 0x7c00);
    assert_true(isnan(mtc_f16_to_f32(mtc_f32_to_f16(NAN))));
    assert_int_equal(mtc_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);     /* tie -> even */
    assert_int_equal(mtc_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02); /* tie -> even */
    assert_int_equal(mtc_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3c01);
    assert_int_equal(mtc_f32_to_f16(ldexpf(1, -24)), 0x0001);     /* smallest subnormal */
    assert_int_equal(mtc_f32_to_f16(ldexpf(1, -25)), 0x0000);     /* tie -> even 0 */
    assert_int_equal(mtc_f32_to_f16(3 * ldexpf(1, -25)), 0x0002); /* tie -> even 2 */
    assert_int_equal(mtc_f32_to_f16(ldexpf(1023, -24) + ldexpf(1, -25)), 0x0400); /* to smallest normal */
    /* every half value survives half -> float -> half */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        if (mtc_f32_to_f16(mtc_f16_to_f32((uint16_t)h)) != h) fail_msg("half 0x%04x does not round-trip", h);
    }
}

/* ---- soft-label files ------------------------------------------------------- */

static void read_ok(const char *path, const mtc_model *st, const mtc_dataset *d, mtc_soft *s, float **hints,
                    int *hd)
{
    mtc_err e = {0};
    int rc = mtc_soft_read(path, st, d, 0, s, hints, hd, &e);
    if (rc) fail_msg("mtc_soft_read: %s", e.msg);
}

static void roundtrip(int f16)
{
    char *dir = tu_mkdtemp();
    mtc_dataset d;
    tu_synth_data(&d, 300, 1);
    mtc_model t, s;
    build(teacher_spec, &t, 3);
    build(student_spec, &s, 4);
    train_teacher(&t, &d, 1); /* gives reg outputs a real mean/std */
    mtc_label_cfg cfg;
    mtc_label_cfg_default(&cfg);
    cfg.nteachers = 1;
    cfg.teachers[0] = &t;
    cfg.batch = 64;
    cfg.rows_per_chunk = 128; /* 3 chunks, batches aligned with predict's */
    cfg.f16 = f16;
    cfg.hints = 1;
    char *p = write_soft(dir, "soft.mtl", &cfg, &d);
    mtc_soft soft;
    float *hints = NULL;
    int hd = 0;
    read_ok(p, &s, &d, &soft, &hints, &hd);
    /* the reference: the teacher's runtime on all 300 samples in one batch
     * (the file was written 64 rows at a time: soft labels do not depend
     * on the batch) */
    float *outs[MTC_MAX_TASKS], *tr = malloc(300 * t.trunk_out * sizeof(float)), *x = malloc(300 * 4 * sizeof(float));
    int64_t idx[300];
    for (int i = 0; i < 300; i++) idx[i] = i;
    mtc_data_batch_x(&d, idx, 300, 0, NULL, x);
    for (int k = 0; k < 4; k++) outs[k] = malloc(300 * t.spec.tasks[k].dim * sizeof(float));
    mtc_rt *rt = teacher_runtime(&t);
    mtc_err e = {0};
    assert_int_equal(mtc_rt_run_trunk(rt, x, 300, outs, tr, &e), 0);
    mtc_rt_free(rt);
    assert_int_equal(soft.n, 300);
    for (int k = 0; k < 4; k++) {
        int D = s.spec.tasks[k].dim;
        assert_non_null(soft.v[k]);
        assert_int_equal(soft.dim[k], D);
        for (int64_t i = 0; i < 300 * D; i++) {
            if (!f16) {
                if (soft.v[k][i] != outs[k][i]) fail_msg("task %d value %lld: %g != %g", k, (long long)i, soft.v[k][i], outs[k][i]);
            } else if (tu_relerr(soft.v[k][i], outs[k][i], 6.1e-5) > 1e-3) {
                fail_msg("f16 task %d value %lld: %g vs %g", k, (long long)i, soft.v[k][i], outs[k][i]);
            }
        }
    }
    /* hints: teacher 0's trunk output */
    assert_int_equal(hd, (int)t.trunk_out);
    assert_non_null(hints);
    for (int64_t i = 0; i < 300 * hd; i++)
        assert_true(tu_relerr(hints[i], tr[i], 6.1e-5) <= (f16 ? 1e-3 : 0));
    /* and the training model's forward agrees to rounding: OpenBLAS's sgemm
     * against the runtime's kernel (FMA or not), sums of 4 and 32 terms of
     * size ~1, so a few ulp of 1 (reg outputs ×std: 1e-5 absolute) */
    float *mo[MTC_MAX_TASKS];
    predict(&t, &d, 64, mo);
    for (int k = 0; k < 4; k++)
        for (int64_t i = 0; i < 300 * t.spec.tasks[k].dim; i++)
            if (tu_relerr(mo[k][i], outs[k][i], 1.0) > 1e-5) fail_msg("task %d value %lld: %g vs %g", k, (long long)i, mo[k][i], outs[k][i]);
    free_outs(mo, 4);
    free(tr);
    free(x);
    /* a shard (--shard-data) of samples [110, 210): its rows and hints */
    mtc_dataset ds = d;
    ds.x_f32 = d.x_f32 + 110 * 4;
    ds.n = 100, ds.shard_lo = 110, ds.split_n = 300;
    mtc_soft sw;
    float *hw = NULL;
    int hdw = 0;
    read_ok(p, &s, &ds, &sw, &hw, &hdw);
    assert_int_equal(sw.n, 100);
    for (int k = 0; k < 4; k++) {
        int D = s.spec.tasks[k].dim;
        assert_memory_equal(sw.v[k], soft.v[k] + 110 * D, 100 * D * sizeof(float));
    }
    assert_int_equal(hdw, hd);
    assert_memory_equal(hw, hints + 110 * hd, 100 * (size_t)hd * sizeof(float));
    mtc_soft_free(&sw);
    free(hw);
    char *hdr = NULL;
    assert_int_equal(mtc_soft_header(p, &hdr, &e), 0);
    assert_non_null(strstr(hdr, f16 ? "\"dtype\":\"f16\"" : "\"dtype\":\"f32\""));
    assert_non_null(strstr(hdr, "\"name\":\"coarse\""));
    free(hdr);
    free(hints);
    free_outs(outs, 4);
    mtc_soft_free(&soft);
    mtc_model_free(&t);
    mtc_model_free(&s);
    mtc_data_free(&d);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void test_soft_roundtrip_f32_is_exact(void **st)
{
    (void)st;
    roundtrip(0);
}

static void test_soft_roundtrip_f16_within_1e3_relative(void **st)
{
    (void)st;
    roundtrip(1);
}

static void test_multi_teacher_average_and_task_choice(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mtc_dataset d;
    tu_synth_data(&d, 200, 2);
    mtc_model a, b, c, s;
    build(teacher_spec, &a, 5);
    build(teacher_spec, &b, 6);
    build(teacher_spec, &c, 7);
    build(student_spec, &s, 8);
    float *oa[MTC_MAX_TASKS], *ob[MTC_MAX_TASKS], *oc[MTC_MAX_TASKS];
    rt_outputs(&a, &d, 64, oa); /* the file: batches of 50 */
    rt_outputs(&b, &d, 64, ob);
    rt_outputs(&c, &d, 64, oc);
    mtc_label_cfg cfg;
    mtc_label_cfg_default(&cfg);
    cfg.nteachers = 2;
    cfg.teachers[0] = &a;
    cfg.teachers[1] = &b;
    cfg.batch = 50;
    cfg.rows_per_chunk = 100;
    char *p = write_soft(dir, "avg.mtl", &cfg, &d);
    mtc_soft soft;
    read_ok(p, &s, &d, &soft, NULL, NULL);
    for (int k = 0; k < 4; k++)
        for (int64_t i = 0; i < 200 * s.spec.tasks[k].dim; i++) {
            float want = (float)(((double)oa[k][i] + ob[k][i]) / 2);
            if (soft.v[k][i] != want) fail_msg("task %d value %lld: %g, mean %g", k, (long long)i, soft.v[k][i], want);
        }
    mtc_soft_free(&soft);
    free(p);

    /* fine from b only; pos from c, which is used for nothing else */
    cfg.nteachers = 3;
    cfg.teachers[2] = &c;
    cfg.task_only[2] = 1;
    cfg.ntask_teacher = 2;
    snprintf(cfg.task_teacher_name[0], MTC_NAME_MAX, "fine");
    cfg.task_teacher_idx[0] = 1;
    snprintf(cfg.task_teacher_name[1], MTC_NAME_MAX, "pos");
    cfg.task_teacher_idx[1] = 2;
    p = write_soft(dir, "choice.mtl", &cfg, &d);
    read_ok(p, &s, &d, &soft, NULL, NULL);
    for (int64_t i = 0; i < 200 * 4; i++) assert_true(soft.v[0][i] == ob[0][i]);
    for (int64_t i = 0; i < 200; i++) {
        assert_true(soft.v[1][i * 2] == (float)(((double)oa[1][i * 2] + ob[1][i * 2]) / 2)); /* coarse: a, b */
        assert_true(soft.v[2][i] == (float)(((double)oa[2][i] + ob[2][i]) / 2));             /* level: a, b */
        assert_true(soft.v[3][i] == oc[3][i]);                                               /* pos: c */
    }
    char *hdr = NULL;
    mtc_err e = {0};
    assert_int_equal(mtc_soft_header(p, &hdr, &e), 0);
    assert_non_null(strstr(hdr, "\"name\":\"fine\",\"kind\":\"cls\",\"dim\":4,\"teacher\":1,\"sources\":[1]"));
    free(hdr);
    /* a task the chosen teacher lacks is refused, naming it */
    snprintf(cfg.task_teacher_name[1], MTC_NAME_MAX, "nope");
    char *q = tu_path(dir, "bad.mtl");
    assert_int_equal(mtc_soft_write(q, &cfg, &d, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "no task 'nope'"));
    free(q);
    mtc_soft_free(&soft);
    free_outs(oa, 4);
    free_outs(ob, 4);
    free_outs(oc, 4);
    mtc_model_free(&a);
    mtc_model_free(&b);
    mtc_model_free(&c);
    mtc_model_free(&s);
    mtc_data_free(&d);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static char *small_file(const char *dir, mtc_model *t, const mtc_dataset *d)
{
    mtc_label_cfg cfg;
    mtc_label_cfg_default(&cfg);
    cfg.nteachers = 1;
    cfg.teachers[0] = t;
    cfg.rows_per_chunk = 16;
    cfg.hints = 1;
    return write_soft(dir, "small.mtl", &cfg, d);
}

static void test_every_truncation_fails_cleanly_naming_the_file(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mtc_dataset d;
    tu_synth_data(&d, 40, 3);
    mtc_model t, s;
    build(teacher_spec, &t, 9);
    build(student_spec, &s, 10);
    char *p = small_file(dir, &t, &d);
    size_t n;
    unsigned char *bytes = tu_read(p, &n);
    assert_non_null(bytes);
    char *q = tu_path(dir, "cut.mtl");
    for (size_t len = 0; len < n; len++) {
        assert_int_equal(tu_write(q, bytes, len), 0);
        mtc_soft soft;
        float *hints = (float *)1;
        int hd = -1;
        mtc_err e = {0};
        int rc = mtc_soft_read(q, &s, &d, 0, &soft, &hints, &hd, &e);
        if (rc == 0) fail_msg("truncation to %zu of %zu bytes was accepted", len, n);
        if (!strstr(e.msg, q)) fail_msg("truncation to %zu: message '%s' lacks the path", len, e.msg);
        assert_null(soft.v[0]);
        assert_null(hints);
    }
    /* and the whole file still reads */
    mtc_soft soft;
    read_ok(p, &s, &d, &soft, NULL, NULL);
    mtc_soft_free(&soft);
    free(bytes);
    free(q);
    free(p);
    mtc_model_free(&t);
    mtc_model_free(&s);
    mtc_data_free(&d);
    tu_rmdir(dir);
    free(dir);
}

static void expect_read_error(const char *path, const char *spec, const mtc_dataset *d, const char *needle)
{
    mtc_model s;
    build(spec, &s, 1);
    mtc_soft soft;
    mtc_err e = {0};
    assert_int_equal(mtc_soft_read(path, &s, d, 0, &soft, NULL, NULL, &e), MTC_EINPUT);
    if (!strstr(e.msg, needle)) fail_msg("message '%s' lacks '%s'", e.msg, needle);
    if (!strstr(e.msg, path)) fail_msg("message '%s' lacks the path", e.msg);
    mtc_model_free(&s);
}

static void test_mismatches_are_refused_naming_data_and_task(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mtc_dataset d, other;
    tu_synth_data(&d, 40, 4);
    tu_synth_data(&other, 40, 4);
    other.tasks[0].labels[7] = (other.tasks[0].labels[7] + 1) % 4; /* one label differs */
    mtc_data_rehash(&other);
    mtc_model t;
    build(teacher_spec, &t, 11);
    char *p = small_file(dir, &t, &d);
    expect_read_error(p, student_spec, &other, "made for data set synthetic");
    snprintf(other.name, sizeof other.name, "elsewhere");
    expect_read_error(p, student_spec, &other, ", not elsewhere");
    expect_read_error(p, "[input] shape=4\n[dense] units=4\n[task fine] kind=cls classes=4\n[task extra] kind=reg outputs=1\n",
                      &d, "no soft labels for task 'extra'");
    expect_read_error(p, "[input] shape=4\n[dense] units=4\n[task fine] kind=cls classes=5\n", &d,
                      "task 'fine' is cls with 4 outputs in the file, the student has cls with 5");
    expect_read_error(p, "[input] shape=4\n[dense] units=4\n[task level] kind=cls classes=2\n", &d,
                      "task 'level' is reg with 1 outputs in the file");
    /* allow_missing: the extra task trains on labels only */
    mtc_model s;
    build("[input] shape=4\n[dense] units=4\n[task fine] kind=cls classes=4\n[task extra] kind=reg outputs=1\n", &s, 1);
    mtc_soft soft;
    mtc_err e = {0};
    assert_int_equal(mtc_soft_read(p, &s, &d, 1, &soft, NULL, NULL, &e), 0);
    assert_non_null(soft.v[0]);
    assert_null(soft.v[1]);
    mtc_soft_free(&soft);
    mtc_model_free(&s);
    /* a non-.mtl file */
    char *q = tu_path(dir, "junk.mtl");
    assert_int_equal(tu_write(q, "hello world, not a container", 28), 0);
    expect_read_error(q, student_spec, &d, "bad magic");
    free(q);
    free(p);
    mtc_model_free(&t);
    mtc_data_free(&d);
    mtc_data_free(&other);
    tu_rmdir(dir);
    free(dir);
}

/* ---- training ----------------------------------------------------------------- */

static void test_kd_student_learns_from_a_trained_teacher(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mtc_dataset d, dt;
    tu_synth_data(&d, 1500, 5);
    tu_synth_data(&dt, 500, 55);
    mtc_model t, s;
    build(teacher_spec, &t, 12);
    train_teacher(&t, &d, 6);
    char *p = write_soft1(dir, "soft.mtl", &t, &d);
    build(student_spec, &s, 13);
    mtc_soft soft;
    read_ok(p, &s, &d, &soft, NULL, NULL);
    mtc_train_cfg c;
    quick_cfg(&c, 6);
    c.soft = &soft;
    for (int k = 0; k < MTC_MAX_TASKS; k++) { c.kd_T[k] = 4; c.kd_alpha[k] = 0.9f; }
    mtc_train_result res;
    mtc_err e = {0};
    assert_int_equal(mtc_train(&s, &d, &c, &res, &e), 0);
    free(res.history_json);
    mtc_task_eval ev[MTC_MAX_TASKS], tev[MTC_MAX_TASKS];
    assert_int_equal(mtc_evaluate(&s, &dt, NULL, 0, 128, ev, &e), 0);
    assert_int_equal(mtc_evaluate(&t, &dt, NULL, 0, 128, tev, &e), 0);
    if (ev[0].cls.accuracy < 0.75) fail_msg("fine accuracy %.3f (teacher %.3f, chance 0.25)", ev[0].cls.accuracy, tev[0].cls.accuracy);
    assert_true(ev[1].cls.accuracy > 0.85); /* coarse, chance 0.5 */
    assert_true(ev[2].reg.mae < 0.25);      /* level std 0.5 */
    assert_true(ev[3].bin.accuracy > 0.85); /* pos, chance 0.5 */
    /* the student follows the teacher */
    float *so[MTC_MAX_TASKS], *to[MTC_MAX_TASKS];
    predict(&s, &dt, 128, so);
    predict(&t, &dt, 128, to);
    mtc_agreement ag;
    mtc_distill_agreement(MTC_TASK_CLS, 4, to[0], so[0], dt.n, &ag);
    assert_true(ag.agree > 0.75);
    assert_true(ag.kl >= 0 && ag.kl < 0.5);
    mtc_distill_agreement(MTC_TASK_REG, 1, to[2], so[2], dt.n, &ag);
    assert_true(isnan(ag.agree) && ag.mean_abs_diff < 0.25);
    mtc_distill_agreement(MTC_TASK_CLS, 4, to[0], to[0], dt.n, &ag);
    assert_true(ag.agree == 1.0 && fabs(ag.kl) < 1e-9);
    free_outs(so, 4);
    free_outs(to, 4);
    mtc_task_eval_free(ev, 4);
    mtc_task_eval_free(tev, 4);
    mtc_soft_free(&soft);
    mtc_model_free(&t);
    mtc_model_free(&s);
    mtc_data_free(&d);
    mtc_data_free(&dt);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void test_alpha0_distill_equals_plain_training_bit_for_bit(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mtc_dataset d;
    tu_synth_data(&d, 400, 6);
    mtc_model t, a, b;
    build(teacher_spec, &t, 14);
    char *p = write_soft1(dir, "soft.mtl", &t, &d);
    build(student_spec, &a, 15);
    build(student_spec, &b, 15);
    mtc_soft soft;
    read_ok(p, &b, &d, &soft, NULL, NULL);
    mtc_train_cfg c;
    quick_cfg(&c, 2);
    mtc_train_result ra, rb;
    mtc_err e = {0};
    assert_int_equal(mtc_train(&a, &d, &c, &ra, &e), 0);
    c.soft = &soft;
    for (int k = 0; k < MTC_MAX_TASKS; k++) { c.kd_T[k] = 3; c.kd_alpha[k] = 0; }
    assert_int_equal(mtc_train(&b, &d, &c, &rb, &e), 0);
    assert_int_equal(a.nparams, b.nparams);
    assert_memory_equal(a.params, b.params, sizeof(float) * (size_t)a.nparams);
    /* and alpha > 0 does change the result */
    mtc_model x;
    build(student_spec, &x, 15);
    for (int k = 0; k < MTC_MAX_TASKS; k++) c.kd_alpha[k] = 0.5f;
    mtc_train_result rx;
    assert_int_equal(mtc_train(&x, &d, &c, &rx, &e), 0);
    assert_true(memcmp(a.params, x.params, sizeof(float) * (size_t)a.nparams) != 0);
    free(ra.history_json);
    free(rb.history_json);
    free(rx.history_json);
    mtc_soft_free(&soft);
    mtc_model_free(&t);
    mtc_model_free(&a);
    mtc_model_free(&b);
    mtc_model_free(&x);
    mtc_data_free(&d);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* --correct-teacher (probability shift): soft labels from an untrained
 * teacher mislead a student trained mostly on them (alpha 0.9); corrected,
 * the same soft labels rank the true class first and the student learns the
 * task. Where the teacher is right on every sample the correction changes
 * nothing, bit for bit. */
static void test_kd_correct_teacher(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mtc_dataset d, dt;
    tu_synth_data(&d, 1500, 5);
    tu_synth_data(&dt, 500, 55);
    mtc_model t, a, b;
    build(teacher_spec, &t, 12); /* untrained: its classes are noise */
    char *p = write_soft1(dir, "soft.mtl", &t, &d);
    build(student_spec, &a, 13);
    build(student_spec, &b, 13);
    mtc_soft soft;
    read_ok(p, &a, &d, &soft, NULL, NULL);
    mtc_train_cfg c;
    quick_cfg(&c, 6);
    c.soft = &soft;
    for (int k = 0; k < MTC_MAX_TASKS; k++) { c.kd_T[k] = 2; c.kd_alpha[k] = 0.9f; }
    mtc_train_result ra, rb;
    mtc_err e = {0};
    assert_int_equal(mtc_train(&a, &d, &c, &ra, &e), 0);
    c.kd_correct = 1;
    assert_int_equal(mtc_train(&b, &d, &c, &rb, &e), 0);
    mtc_task_eval ea[MTC_MAX_TASKS], eb[MTC_MAX_TASKS];
    assert_int_equal(mtc_evaluate(&a, &dt, NULL, 0, 128, ea, &e), 0);
    assert_int_equal(mtc_evaluate(&b, &dt, NULL, 0, 128, eb, &e), 0);
    if (!(eb[0].cls.accuracy >= 0.75 && eb[0].cls.accuracy > ea[0].cls.accuracy + 0.1))
        fail_msg("fine: corrected %.3f, uncorrected %.3f", eb[0].cls.accuracy, ea[0].cls.accuracy);
    if (!(eb[3].bin.accuracy > ea[3].bin.accuracy))
        fail_msg("pos: corrected %.3f, uncorrected %.3f", eb[3].bin.accuracy, ea[3].bin.accuracy);
    free(ra.history_json);
    free(rb.history_json);
    mtc_task_eval_free(ea, 4);
    mtc_task_eval_free(eb, 4);
    /* a teacher right on every sample of `fine` (soft KD there only) */
    for (int64_t i = 0; i < soft.n; i++)
        for (int k = 0; k < 4; k++) soft.v[0][i * 4 + k] = k == d.tasks[0].labels[i] ? 3.0f : (float)k * 0.5f;
    for (int k = 0; k < MTC_MAX_TASKS; k++) c.kd_alpha[k] = 0;
    c.kd_alpha[0] = 0.9f;
    mtc_model x, y;
    build(student_spec, &x, 13);
    build(student_spec, &y, 13);
    c.kd_correct = 0;
    assert_int_equal(mtc_train(&x, &d, &c, &ra, &e), 0);
    c.kd_correct = 1;
    assert_int_equal(mtc_train(&y, &d, &c, &rb, &e), 0);
    assert_memory_equal(x.params, y.params, sizeof(float) * (size_t)x.nparams);
    free(ra.history_json);
    free(rb.history_json);
    mtc_soft_free(&soft);
    mtc_model_free(&t);
    mtc_model_free(&a);
    mtc_model_free(&b);
    mtc_model_free(&x);
    mtc_model_free(&y);
    mtc_data_free(&d);
    mtc_data_free(&dt);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* KD minus scratch, paired per sample: the metric's difference, its
 * standard error from the per-sample differences, unlabelled rows skipped. */
static void test_paired_diff(void **st)
{
    (void)st;
    mtc_paired p;
    /* cls, 3 classes, 5 samples (the last unlabelled): a right on 0,1,2;
     * b right on 1,3 -> per-sample a-b: +1, 0, +1, -1 */
    const float a[] = {5, 0, 0, 0, 5, 0, 0, 0, 5, 5, 0, 0, 0, 0, 5};
    const float b[] = {0, 5, 0, 0, 5, 0, 5, 0, 0, 0, 0, 5, 0, 0, 5};
    const int32_t lab[] = {0, 1, 2, 2, MTC_LABEL_MISSING};
    mtc_distill_paired(MTC_TASK_CLS, 3, a, b, lab, NULL, 5, &p);
    assert_int_equal(p.n_used, 4);
    assert_true(fabs(p.diff - 0.25) < 1e-12); /* 3/4 - 2/4 */
    /* differences 1,0,1,-1: mean .25, sample variance (3 - 4*.0625)/3 */
    assert_true(fabs(p.se - sqrt((3.0 - 0.25) / 3.0 / 4.0)) < 1e-12);
    assert_true(fabs(p.ci95 - 1.96 * p.se) < 1e-15);
    /* swapping the models flips the sign, not the error */
    mtc_paired q;
    mtc_distill_paired(MTC_TASK_CLS, 3, b, a, lab, NULL, 5, &q);
    assert_true(fabs(q.diff + p.diff) < 1e-12 && fabs(q.se - p.se) < 1e-12);
    /* reg: mean |o - t| per sample; a row with a NaN target is unlabelled */
    const float ra[] = {1, 2, 3}, rb[] = {2, 2, 0}, rt[] = {1, 0, NAN};
    mtc_distill_paired(MTC_TASK_REG, 1, ra, rb, NULL, rt, 3, &p);
    assert_int_equal(p.n_used, 2);
    assert_true(fabs(p.diff - (-0.5)) < 1e-12); /* MAE 1.0 against 1.5: a is better, diff < 0 */
    assert_true(fabs(p.se - sqrt(0.5 / 2.0)) < 1e-12); /* differences -1, 0 */
    /* bin, 2 outputs: the share of correct outputs per sample */
    const float ba[] = {1, 1, -1, 1}, bb[] = {1, -1, -1, -1}, bt[] = {1, 1, 0, 1};
    mtc_distill_paired(MTC_TASK_BIN, 2, ba, bb, NULL, bt, 2, &p);
    assert_true(fabs(p.diff - 0.5) < 1e-12 && fabs(p.se) < 1e-12); /* +.5 on both samples */
    /* nothing labelled: NaN; one sample: a difference, no error */
    const int32_t none[] = {MTC_LABEL_MISSING};
    mtc_distill_paired(MTC_TASK_CLS, 3, a, b, none, NULL, 1, &p);
    assert_true(p.n_used == 0 && isnan(p.diff) && isnan(p.se) && isnan(p.ci95));
    mtc_distill_paired(MTC_TASK_CLS, 3, a, b, lab, NULL, 1, &p);
    assert_true(p.n_used == 1 && fabs(p.diff - 1.0) < 1e-12 && isnan(p.se) && isnan(p.ci95));
}

static void test_gap_closed(void **st)
{
    (void)st;
    assert_true(fabs(mtc_distill_gap_closed(0.9, 0.85, 0.8, 1) - 0.5) < 1e-12);
    assert_true(fabs(mtc_distill_gap_closed(0.1, 0.2, 0.3, 0) - 0.5) < 1e-12); /* lower is better (MAE) */
    assert_true(isnan(mtc_distill_gap_closed(0.8, 0.9, 0.8, 1)));
    assert_true(isnan(mtc_distill_gap_closed(NAN, 0.9, 0.8, 1)));
    /* a teacher worse than scratch: no gap, in either direction */
    assert_true(isnan(mtc_distill_gap_closed(0.795, 0.816, 0.832, 1)));
    assert_true(isnan(mtc_distill_gap_closed(0.3, 0.2, 0.1, 0)));
}

/* --tune's guard: a run worse than alpha 0 on any task is found (the first
 * such task), and the fallback is the run nowhere worse with the largest
 * mean relative gain; alpha 0 when every other run loses somewhere. */
static void test_tune_guard(void **st)
{
    (void)st;
    const int lb[3] = {0, 1, 1}; /* accuracy, MAE, MAE */
    double val[5][MTC_MAX_TASKS] = {
        {0.70, 2.00, 1.50}, /* alpha 0 */
        {0.71, 1.99, 1.49}, /* nowhere worse: gain 1/70 + 1/200 + 1/150 */
        {0.75, 1.90, 1.51}, /* best on two tasks, worse on y2 */
        {0.70, 1.98, 1.40}, /* nowhere worse: gain 0 + 1/100 + 1/15: the largest */
        {0.69, 1.00, 1.00}, /* worse on c */
    };
    assert_int_equal(mtc_distill_tune_worse(val[1], val[0], lb, 3), -1);
    assert_int_equal(mtc_distill_tune_worse(val[2], val[0], lb, 3), 2);
    assert_int_equal(mtc_distill_tune_worse(val[4], val[0], lb, 3), 0);
    assert_int_equal(mtc_distill_tune_worse(val[0], val[0], lb, 3), -1); /* equal is not worse */
    assert_int_equal(mtc_distill_tune_fallback((const double(*)[MTC_MAX_TASKS])val, 5, lb, 3), 3);
    assert_int_equal(mtc_distill_tune_fallback((const double(*)[MTC_MAX_TASKS])val, 3, lb, 3), 1);
    val[1][1] = 2.01; /* now every other run loses somewhere */
    val[3][0] = 0.65;
    assert_int_equal(mtc_distill_tune_fallback((const double(*)[MTC_MAX_TASKS])val, 5, lb, 3), 0);
    /* a task without validation labels (NaN) neither blocks nor counts */
    double v[5][MTC_MAX_TASKS] = {{0.5, NAN}, {0.6, NAN}};
    const int lb2[2] = {0, 1};
    assert_int_equal(mtc_distill_tune_fallback((const double(*)[MTC_MAX_TASKS])v, 2, lb2, 2), 1);
}

/* ---- command line ------------------------------------------------------------- */

/* ---- stored augmented views (--augment-copies) --------------------------------- */

/* n 1x6x6 u8 images; task "fine" = brightest quadrant (4 classes). */
static void image_data(mtc_dataset *d, int64_t n, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "synthetic-images");
    snprintf(d->split, sizeof d->split, "train");
    d->n = n; d->c = 1; d->h = 6; d->w = 6;
    d->x_u8 = malloc((size_t)n * 36);
    d->ntasks = 1;
    snprintf(d->tasks[0].name, MTC_NAME_MAX, "fine");
    d->tasks[0].kind = MTC_TASK_CLS;
    d->tasks[0].dim = 4;
    d->tasks[0].labels = malloc(sizeof(int32_t) * (size_t)n);
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) {
        int q[4] = {0};
        for (int p = 0; p < 36; p++) {
            d->x_u8[i * 36 + p] = (uint8_t)mtc_rng_below(&r, 256);
            q[(p / 6 >= 3) * 2 + (p % 6 >= 3)] += d->x_u8[i * 36 + p];
        }
        int best = 0;
        for (int k = 1; k < 4; k++) best = q[k] > q[best] ? k : best;
        d->tasks[0].labels[i] = best;
    }
    mtc_data_rehash(d);
}

static const char *img_spec = "[input] shape=1x6x6\n[dense] units=16 act=relu\n[task fine] kind=cls classes=4\n";

static void test_data_view_zero_is_the_sample_and_views_are_reproducible(void **st)
{
    (void)st;
    int seen[5][5] = {{0}}, flips = 0;
    for (int64_t i = 0; i < 400; i++) {
        int dx, dy, fl, dx2, dy2, fl2;
        mtc_data_view(MTC_AUG_SHIFT | MTC_AUG_FLIP, 7, i, 0, &dx, &dy, &fl);
        assert_true(dx == 0 && dy == 0 && fl == 0); /* view 0: the sample itself */
        mtc_data_view(MTC_AUG_SHIFT | MTC_AUG_FLIP, 7, i, 3, &dx, &dy, &fl);
        mtc_data_view(MTC_AUG_SHIFT | MTC_AUG_FLIP, 7, i, 3, &dx2, &dy2, &fl2);
        assert_true(dx == dx2 && dy == dy2 && fl == fl2); /* a function of (seed, i, k) only */
        assert_true(dx >= -2 && dx <= 2 && dy >= -2 && dy <= 2);
        seen[dx + 2][dy + 2] = 1;
        flips += fl;
        mtc_data_view(MTC_AUG_FLIP, 7, i, 3, &dx, &dy, &fl);
        assert_true(dx == 0 && dy == 0); /* flip only: no shift */
    }
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++) assert_true(seen[a][b]); /* all 25 shifts occur */
    assert_true(flips > 120 && flips < 280);
    /* another seed gives other views */
    int differ = 0;
    for (int64_t i = 0; i < 50; i++) {
        int a[3], b[3];
        mtc_data_view(MTC_AUG_SHIFT, 7, i, 1, &a[0], &a[1], &a[2]);
        mtc_data_view(MTC_AUG_SHIFT, 8, i, 1, &b[0], &b[1], &b[2]);
        differ += a[0] != b[0] || a[1] != b[1];
    }
    assert_true(differ > 25);
}

static void test_augment_copies_store_the_teacher_on_each_view(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mtc_dataset d;
    image_data(&d, 200, 5);
    mtc_model t;
    build(img_spec, &t, 3);
    mtc_label_cfg cfg;
    mtc_label_cfg_default(&cfg);
    cfg.nteachers = 1;
    cfg.teachers[0] = &t;
    cfg.batch = 64;
    cfg.rows_per_chunk = 90; /* chunks straddle the view boundaries */
    char *p1 = write_soft(dir, "plain.mtl", &cfg, &d);
    cfg.aug_copies = 3;
    cfg.aug = MTC_AUG_SHIFT | MTC_AUG_FLIP;
    cfg.aug_seed = 11;
    char *p3 = write_soft(dir, "views.mtl", &cfg, &d);
    mtc_soft s1, s3;
    read_ok(p1, &t, &d, &s1, NULL, NULL);
    read_ok(p3, &t, &d, &s3, NULL, NULL);
    assert_int_equal(s1.copies, 1);
    assert_int_equal(s3.copies, 3);
    assert_int_equal(s3.aug, MTC_AUG_SHIFT | MTC_AUG_FLIP);
    assert_true(s3.aug_seed == 11);
    assert_int_equal(s3.n, 200);
    /* view 0 rows are the unaugmented file's rows, bit for bit */
    assert_memory_equal(s3.v[0], s1.v[0], 200 * 4 * sizeof(float));
    /* every view k row is the teacher's runtime output on the image
     * mtc_data_view rebuilds, at batch 1 (the file: batches of 64), bit for bit */
    float x[36], y[4];
    int changed = 0;
    mtc_rt *rt = teacher_runtime(&t);
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < 200; i++) {
            mtc_err re = {0};
            mtc_data_batch_x_views(&d, &i, &k, 1, s3.aug, s3.aug_seed, x);
            assert_int_equal(mtc_rt_run(rt, x, 1, (float *[]){y}, &re), 0);
            for (int q = 0; q < 4; q++)
                if (s3.v[0][(k * 200 + i) * 4 + q] != y[q])
                    fail_msg("view %d sample %lld out %d: %.9g vs %.9g", k, (long long)i, q,
                             s3.v[0][(k * 200 + i) * 4 + q], y[q]);
            changed += k > 0 && memcmp(&s3.v[0][(k * 200 + i) * 4], &s1.v[0][i * 4], 4 * sizeof(float)) != 0;
        }
    assert_true(changed > 300); /* the views really differ from the sample */
    mtc_rt_free(rt);
    /* a shard (--shard-data) of samples [60, 130) reads its rows of every
     * view, and rebuilds its views from the split's sample index */
    mtc_dataset ds = d;
    const int64_t lo = 60, k = 70;
    ds.x_u8 = d.x_u8 + lo * 36;
    for (int t2 = 0; t2 < d.ntasks; t2++) ds.tasks[t2].labels = d.tasks[t2].labels + lo;
    ds.n = k, ds.shard_lo = lo, ds.split_n = d.n;
    mtc_soft sw;
    read_ok(p3, &t, &ds, &sw, NULL, NULL);
    assert_int_equal(sw.n, k);
    assert_int_equal(sw.copies, 3);
    for (int v = 0; v < 3; v++) {
        assert_memory_equal(sw.v[0] + v * k * 4, s3.v[0] + (v * 200 + lo) * 4, (size_t)k * 4 * sizeof(float));
        for (int64_t i = 0; i < k; i++) {
            float xs[36];
            int64_t gi = lo + i;
            mtc_data_batch_x_views(&ds, &i, &v, 1, s3.aug, s3.aug_seed, xs);
            mtc_data_batch_x_views(&d, &gi, &v, 1, s3.aug, s3.aug_seed, x);
            assert_memory_equal(xs, x, sizeof x);
        }
    }
    mtc_soft_free(&sw);
    char *hdr = NULL;
    mtc_err e = {0};
    assert_int_equal(mtc_soft_header(p3, &hdr, &e), 0);
    assert_non_null(strstr(hdr, "\"copies\":3"));
    assert_non_null(strstr(hdr, "\"kind\":\"shift+flip\""));
    free(hdr);
    /* distillation from the views trains, and refuses an extra --augment */
    mtc_model s;
    build(img_spec, &s, 4);
    mtc_train_cfg c;
    quick_cfg(&c, 2);
    c.soft = &s3;
    c.kd_T[0] = 2, c.kd_alpha[0] = 0.5f;
    c.aug = MTC_AUG_SHIFT;
    mtc_train_result res = {0};
    assert_int_not_equal(mtc_train(&s, &d, &c, &res, &e), 0);
    assert_non_null(strstr(e.msg, "augment"));
    c.aug = 0;
    assert_int_equal(mtc_train(&s, &d, &c, &res, &e), 0);
    assert_int_equal(res.epochs_run, 2);
    free(res.history_json);
    /* bad settings are refused before anything is written */
    cfg.aug = 0;
    char *p4 = tu_path(dir, "bad.mtl");
    assert_int_not_equal(mtc_soft_write(p4, &cfg, &d, &e), 0);
    assert_non_null(strstr(e.msg, "augmentation"));
    cfg.aug = MTC_AUG_SHIFT;
    cfg.aug_copies = 65;
    assert_int_not_equal(mtc_soft_write(p4, &cfg, &d, &e), 0);
    assert_non_null(strstr(e.msg, "--augment-copies"));
    size_t n;
    unsigned char *none = tu_read(p4, &n);
    assert_null(none);
    mtc_dataset f;
    tu_synth_data(&f, 50, 1); /* features: no views */
    mtc_model ft;
    build("[input] shape=4\n[dense] units=8 act=relu\n[task fine] kind=cls classes=4\n", &ft, 1);
    cfg.teachers[0] = &ft;
    cfg.aug_copies = 2;
    assert_int_not_equal(mtc_soft_write(p4, &cfg, &f, &e), 0);
    assert_non_null(strstr(e.msg, "image"));
    mtc_model_free(&ft);
    mtc_data_free(&f);
    mtc_soft_free(&s1);
    mtc_soft_free(&s3);
    mtc_model_free(&s);
    mtc_model_free(&t);
    mtc_data_free(&d);
    free(p1); free(p3); free(p4);
    tu_rmdir(dir);
    free(dir);
}

static void test_cli_refuses_augment_and_missing_teacher(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    char *out = NULL, *err = NULL;
    int rc = tu_run_mtc(dir, "distill --augment shift --spec s.cfg --data fashion-mnist --soft s.mtl -o x.mtc", &out, &err);
    assert_int_equal(rc, 2);
    assert_non_null(err);
    assert_non_null(strstr(err, "augment-copies"));
    free(out);
    free(err);
    char args[4200];
    snprintf(args, sizeof args, "label %s/missing-teacher.mtc --data fashion-mnist -o %s/x.mtl", dir, dir);
    rc = tu_run_mtc(dir, args, &out, &err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "missing-teacher.mtc"));
    free(out);
    free(err);
    tu_rmdir(dir);
    free(dir);
}

/* train -> label -> distill on a small CSV through the binary. */
static void test_cli_label_and_distill_end_to_end(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mtc_dataset d;
    tu_synth_data(&d, 500, 7);
    char *csv = tu_path(dir, "t.csv"), *spec = tu_path(dir, "s.cfg");
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fprintf(f, "a,b,c,e,fine,level\n");
    for (int64_t i = 0; i < d.n; i++) {
        const float *x = d.x_f32 + i * 4;
        fprintf(f, "%.6f,%.6f,%.6f,%.6f,%d,%.6f\n", x[0], x[1], x[2], x[3], d.tasks[0].labels[i], d.tasks[1].targets[i]);
    }
    fclose(f);
    const char *text = "[input] shape=4 columns=a,b,c,e\n[dense] units=16 act=relu\n"
                       "[task fine] kind=cls classes=4\n[task level] kind=reg outputs=1\n";
    assert_int_equal(tu_write(spec, text, strlen(text)), 0);
    char args[8192], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "train --spec %s --data csv:%s --epochs 3 --lr 0.005 --batch 32 -o %s/t.mtc --quiet", spec, csv, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    free(out); free(err);
    snprintf(args, sizeof args, "label %s/t.mtc --data csv:%s -o %s/s.mtl --f16 --json --quiet", dir, csv, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("label: %s", err);
    assert_non_null(strstr(out, "\"dtype\":\"f16\""));
    /* options not given run at the library's defaults */
    mtc_label_cfg lc;
    mtc_label_cfg_default(&lc);
    char rpc[64];
    snprintf(rpc, sizeof rpc, "\"rows_per_chunk\":%d", lc.rows_per_chunk);
    assert_non_null(strstr(out, rpc));
    free(out); free(err);
    snprintf(args, sizeof args,
             "distill --spec %s --data csv:%s --soft %s/s.mtl -o %s/st.mtc --epochs 3 --lr 0.005 --batch 32 "
             "--task level:alpha=0.25 --compare-scratch --teacher %s/t.mtc --json --quiet",
             spec, csv, dir, dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("distill: %s", err);
    mtc_json j = {0};
    mtc_err e = {0};
    assert_int_equal(mtc_json_parse(out, strlen(out), &j, &e), 0);
    const mtc_json *fine = mtc_json_get(mtc_json_get(&j, "tasks"), "fine");
    const mtc_json *level = mtc_json_get(mtc_json_get(&j, "tasks"), "level");
    assert_non_null(fine);
    assert_non_null(level);
    assert_true(mtc_json_num(fine, "student_kd", 0) > 0.5);
    assert_true(mtc_json_num(fine, "teacher", 0) > 0.5);
    assert_true(mtc_json_num(fine, "scratch", 0) > 0.5);
    /* fine has no --task override: the library's defaults; level overrides alpha only */
    mtc_train_cfg dflt;
    mtc_train_cfg_default(&dflt);
    assert_true(mtc_json_num(fine, "T", 0) == dflt.kd_T[0]);
    assert_true(mtc_json_num(fine, "alpha", 0) == dflt.kd_alpha[0]);
    assert_true(mtc_json_num(level, "T", 0) == dflt.kd_T[0]);
    assert_true(fabs(mtc_json_num(level, "alpha", 0) - 0.25) < 1e-6);
    assert_true(mtc_json_num(fine, "agreement", 0) > 0.5);
    assert_true(mtc_json_num(level, "mean_abs_diff", 9) < 1);
    mtc_json_free(&j);
    free(out); free(err);
    /* the checkpoint names its producer and its parent (the teacher's hash) */
    mtc_model m;
    char *meta = NULL, *p = tu_path(dir, "st.mtc");
    assert_int_equal(mtc_model_load(p, &m, &meta, &e), 0);
    assert_non_null(strstr(meta, "\"producer\":\"mtc distill\""));
    uint64_t h;
    char *tp = tu_path(dir, "t.mtc"), hex[40];
    assert_int_equal(mtc_file_hash(tp, &h, &e), 0);
    snprintf(hex, sizeof hex, "\"parent\":\"%016llx\"", (unsigned long long)h);
    assert_non_null(strstr(meta, hex));
    assert_non_null(strstr(meta, "\"correct_teacher\":false"));
    free(meta);
    /* --correct-teacher says how often the teacher is wrong and records itself */
    snprintf(args, sizeof args,
             "distill --spec %s --data csv:%s --soft %s/s.mtl -o %s/sc.mtc --epochs 1 --batch 32 --correct-teacher",
             spec, csv, dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("distill --correct-teacher: %s", err);
    assert_non_null(strstr(err, "correct-teacher: fine: the teacher is wrong on "));
    assert_null(strstr(err, "correct-teacher: level")); /* reg: left alone */
    free(out); free(err);
    char *pc = tu_path(dir, "sc.mtc");
    mtc_model mc;
    assert_int_equal(mtc_model_load(pc, &mc, &meta, &e), 0);
    assert_non_null(strstr(meta, "\"correct_teacher\":true"));
    free(meta);
    mtc_model_free(&mc);
    free(pc);
    free(tp);
    free(p);
    mtc_model_free(&m);
    /* --tune: five runs, each task's alpha the best on validation (ties: the
     * smaller alpha), every value tried in the checkpoint's metadata; the
     * final student never worse than alpha 0 (the labels alone) on any task's
     * validation metric: when the mix was, every task took the grid's run
     * nowhere worse than alpha 0 (and retrained to its metrics) */
    snprintf(args, sizeof args, "distill --spec %s --data csv:%s --soft %s/s.mtl -o %s/tu.mtc --epochs 2 --lr 0.005 "
             "--batch 32 --tune --quiet", spec, csv, dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("distill --tune: %s", err);
    free(out); free(err);
    p = tu_path(dir, "tu.mtc");
    assert_int_equal(mtc_model_load(p, &m, &meta, &e), 0);
    assert_int_equal(mtc_json_parse(meta, strlen(meta), &j, &e), 0);
    const mtc_json *dj = mtc_json_get(&j, "distill"), *tt = mtc_json_get(dj, "tasks");
    const double fb = mtc_json_num(dj, "tune_fallback_alpha", NAN);
    static const char *const tn[2] = {"fine", "level"};
    for (int k = 0; k < 2; k++) {
        const mtc_json *tk = mtc_json_get(tt, tn[k]), *tu = mtc_json_get(tk, "tune");
        assert_true(tu && tu->n == 5);
        int best = 0;
        for (int g = 1; g < 5; g++) {
            double v = mtc_json_num(&tu->items[g], "val", NAN), b = mtc_json_num(&tu->items[best], "val", NAN);
            if (k ? v < b : v > b) best = g;
        }
        double want = isnan(fb) ? mtc_json_num(&tu->items[best], "alpha", NAN) : fb;
        double got = mtc_json_num(tk, "alpha", NAN);
        if (!(fabs(want - got) < 1e-9)) fail_msg("%s: alpha %.2f, want %.2f", tn[k], got, want);
        double v0 = mtc_json_num(&tu->items[0], "val", NAN), v = mtc_json_num(tk, "val", NAN);
        if (k ? !(v <= v0) : !(v >= v0)) fail_msg("%s: validation %.6f, worse than alpha 0's %.6f", tn[k], v, v0);
        for (int g = 0; !isnan(fb) && g < 5; g++) /* the fallback is its grid run again */
            if (fabs(mtc_json_num(&tu->items[g], "alpha", NAN) - fb) < 1e-9)
                assert_true(mtc_json_num(&tu->items[g], "val", NAN) == v);
    }
    mtc_json_free(&j);
    free(meta);
    free(p);
    mtc_model_free(&m);
    snprintf(args, sizeof args, "distill --spec %s --data csv:%s --soft %s/s.mtl -o %s/tu.mtc --epochs 1 --val 0 --tune --quiet",
             spec, csv, dir, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "--tune"));
    free(out); free(err);
    /* soft labels for another data set (one label changed) are refused with exit 2 */
    char *csv2 = tu_path(dir, "t2.csv");
    size_t n;
    char *txt = (char *)tu_read(csv, &n);
    char *row1 = strchr(txt, '\n') + 1, *lab = strchr(row1, ',');
    for (int k = 0; k < 3; k++) lab = strchr(lab + 1, ',');
    lab[1] = lab[1] == '0' ? '1' : '0';
    assert_int_equal(tu_write(csv2, txt, n), 0);
    snprintf(args, sizeof args, "distill --spec %s --data csv:%s --soft %s/s.mtl -o %s/x.mtc --epochs 1 --quiet", spec, csv2, dir, dir);
    int rc = tu_run_mtc(dir, args, &out, &err);
    assert_int_equal(rc, 2);
    if (!strstr(err, "made for data set")) fail_msg("stderr: %s", err);
    free(out); free(err);
    free(txt);
    free(csv2);
    free(csv);
    free(spec);
    mtc_data_free(&d);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_rounds_to_nearest_even_and_saturates),
        cmocka_unit_test(test_soft_roundtrip_f32_is_exact),
        cmocka_unit_test(test_soft_roundtrip_f16_within_1e3_relative),
        cmocka_unit_test(test_multi_teacher_average_and_task_choice),
        cmocka_unit_test(test_every_truncation_fails_cleanly_naming_the_file),
        cmocka_unit_test(test_mismatches_are_refused_naming_data_and_task),
        cmocka_unit_test(test_kd_student_learns_from_a_trained_teacher),
        cmocka_unit_test(test_alpha0_distill_equals_plain_training_bit_for_bit),
        cmocka_unit_test(test_kd_correct_teacher),
        cmocka_unit_test(test_gap_closed),
        cmocka_unit_test(test_paired_diff),
        cmocka_unit_test(test_tune_guard),
        cmocka_unit_test(test_data_view_zero_is_the_sample_and_views_are_reproducible),
        cmocka_unit_test(test_augment_copies_store_the_teacher_on_each_view),
        cmocka_unit_test(test_cli_refuses_augment_and_missing_teacher),
        cmocka_unit_test(test_cli_label_and_distill_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
