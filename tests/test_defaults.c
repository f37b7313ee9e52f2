/*
 * test_defaults.c — every default lives once, in the library's
 * *_cfg_default: the values docs/distill.md chose are the library's, and
 * the defaults the CLI's --help prints are the library's values, formatted
 * as the help formats them (so the help cannot drift from the library).
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_train_cfg_default_is_the_kd_pair_docs_chose(void **st)
{
    (void)st;
    mtc_train_cfg c;
    mtc_train_cfg_default(&c);
    /* docs/distill.md: T = 2, alpha = 0.5 won the validation sweep; T = 4,
     * alpha = 0.9 lost to scratch training */
    for (int t = 0; t < MTC_MAX_TASKS; t++) {
        assert_true(c.kd_T[t] == 2.0f);
        assert_true(c.kd_alpha[t] == 0.5f);
    }
    /* pruning's KD fine-tunes start from the same training defaults */
    mtc_prune_cfg p;
    mtc_prune_cfg_default(&p);
    for (int t = 0; t < MTC_MAX_TASKS; t++) {
        assert_true(p.train.kd_T[t] == c.kd_T[t]);
        assert_true(p.train.kd_alpha[t] == c.kd_alpha[t]);
    }
}

/* `mtc ARGS` (ARGS ends in --help): its stdout, malloc'd. */
static char *help_of(const char *args)
{
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL;
    int rc = tu_run_mtc(dir, args, &out, &err);
    if (rc != 0 || !out) fail_msg("mtc %s exited %d: %s", args, rc, err ? err : "");
    free(err);
    tu_rmdir(dir);
    free(dir);
    return out;
}

/* The help line of --name: "  --name ARG   text" up to the newline. */
static char *help_line(const char *help, const char *name)
{
    char key[96];
    snprintf(key, sizeof key, "\n  --%s ", name);
    const char *p = strstr(help, key);
    if (!p) return NULL;
    p++;
    const char *end = strchr(p, '\n');
    return strndup(p, end ? (size_t)(end - p) : strlen(p));
}

/* --name's help says "default VALUE" (VALUE not followed by more of a number). */
static void expect_default(const char *help, const char *name, const char *value)
{
    char *line = help_line(help, name), want[160];
    if (!line) fail_msg("no --%s in the help", name);
    snprintf(want, sizeof want, "default %s", value);
    const char *p = strstr(line, want);
    char next = p ? p[strlen(want)] : 0;
    if (!p || isalnum((unsigned char)next) || next == '.')
        fail_msg("--%s: expected \"%s\" (the library's) in: %s", name, want, line);
    free(line);
}

static void expect_default_int(const char *help, const char *name, int v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%d", v);
    expect_default(help, name, buf);
}

static void expect_default_float(const char *help, const char *name, double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%g", v); /* the help's format for X options */
    expect_default(help, name, buf);
}

/* The CLI's spelling of MTC_AUG_* bits. */
static const char *aug_name(int aug)
{
    return aug == (MTC_AUG_SHIFT | MTC_AUG_FLIP) ? "shift,flip" : aug == MTC_AUG_SHIFT ? "shift"
         : aug == MTC_AUG_FLIP ? "flip" : "none";
}

/* The options every training command shares (UTIL_TRAIN_OPTS) and the
 * common ones, against mtc_train_cfg_default. */
static void expect_train_defaults(const char *help)
{
    mtc_train_cfg d;
    mtc_optim_cfg sgd;
    mtc_quant_cfg q;
    mtc_train_cfg_default(&d);
    mtc_optim_cfg_default(&sgd, MTC_OPT_SGD);
    mtc_quant_cfg_default(&q);
    expect_default_int(help, "epochs", d.epochs);
    expect_default_int(help, "batch", d.batch);
    expect_default_float(help, "lr", d.sched.lr);
    expect_default(help, "optimizer", mtc_optim_kind_name(d.opt.kind));
    expect_default_float(help, "momentum", sgd.momentum);
    mtc_optim_cfg adam, adamw;
    mtc_optim_cfg_default(&adam, MTC_OPT_ADAM);
    mtc_optim_cfg_default(&adamw, MTC_OPT_ADAMW);
    char wd[96];
    snprintf(wd, sizeof wd, "the optimizer's: adamw %g, adam and sgd %g", adamw.weight_decay, adam.weight_decay);
    expect_default(help, "weight-decay", wd);
    expect_default(help, "schedule", mtc_sched_kind_name(d.sched.kind));
    expect_default_int(help, "warmup", (int)d.sched.warmup);
    expect_default_int(help, "step-size", (int)d.sched.step_size);
    expect_default_float(help, "gamma", d.sched.gamma);
    expect_default_float(help, "min-lr", d.sched.min_lr);
    expect_default(help, "weighting", mtc_weighting_name(d.weighting));
    expect_default_float(help, "gradnorm-alpha", d.gradnorm_alpha);
    expect_default_float(help, "val", (float)d.val_frac);
    expect_default(help, "augment", aug_name(d.aug));
    expect_default_int(help, "seed", (int)d.seed);
    expect_default_int(help, "threads", q.threads);
}

static void test_train_and_distill_help_print_the_train_cfg_defaults(void **st)
{
    (void)st;
    char *help = help_of("train --help");
    expect_train_defaults(help);
    free(help);
    mtc_train_cfg d;
    mtc_train_cfg_default(&d);
    help = help_of("distill --help");
    expect_train_defaults(help);
    expect_default_float(help, "temperature", d.kd_T[0]);
    expect_default_float(help, "alpha", d.kd_alpha[0]);
    expect_default_float(help, "hint-weight", d.hint_weight);
    char summary[96];
    snprintf(summary, sizeof summary, "Defaults T=%g, alpha=%g were chosen", d.kd_T[0], d.kd_alpha[0]);
    if (!strstr(help, summary)) fail_msg("distill --help does not say \"%s\"", summary);
    free(help);
    /* options given before --help do not change the defaults it prints */
    help = help_of("distill --temperature 7 --alpha 0.125 --epochs 3 --help");
    expect_default_float(help, "temperature", d.kd_T[0]);
    expect_default_float(help, "alpha", d.kd_alpha[0]);
    expect_default_int(help, "epochs", d.epochs);
    free(help);
}

static void test_prune_help_prints_the_prune_cfg_defaults(void **st)
{
    (void)st;
    mtc_prune_cfg p;
    mtc_struct_cfg s;
    mtc_prune_cfg_default(&p);
    mtc_struct_cfg_default(&s);
    char *help = help_of("prune --help");
    expect_default_float(help, "temperature", p.train.kd_T[0]);
    expect_default_float(help, "alpha", p.train.kd_alpha[0]);
    expect_default(help, "scope", p.scope == MTC_PRUNE_GLOBAL ? "global" : "layer");
    expect_default(help, "schedule", p.agp ? "agp" : "oneshot");
    expect_default_int(help, "steps", p.steps);
    expect_default_float(help, "initial-sparsity", (float)p.initial_sparsity);
    expect_default_int(help, "finetune-epochs", p.finetune_epochs);
    expect_default_float(help, "lr", p.train.sched.lr);
    expect_default_int(help, "batch", p.train.batch);
    expect_default(help, "optimizer", mtc_optim_kind_name(p.train.opt.kind));
    expect_default_float(help, "val", (float)p.train.val_frac);
    expect_default_float(help, "keep", (float)s.keep);
    expect_default(help, "rank", s.rank == MTC_RANK_L1 ? "l1" : s.rank == MTC_RANK_L2 ? "l2" : "taylor");
    expect_default_int(help, "taylor-batches", s.batches);
    free(help);
}

static void test_label_help_prints_the_label_cfg_defaults(void **st)
{
    (void)st;
    mtc_label_cfg l;
    mtc_label_cfg_default(&l);
    char *help = help_of("label --help");
    expect_default_int(help, "batch", l.batch);
    expect_default_int(help, "rows-per-chunk", l.rows_per_chunk);
    expect_default_int(help, "augment-copies", l.aug_copies);
    expect_default(help, "augment", aug_name(l.aug));
    free(help);
}

static void test_quantize_and_verify_help_print_the_quant_cfg_defaults(void **st)
{
    (void)st;
    mtc_quant_cfg q;
    mtc_quant_cfg_default(&q);
    char *help = help_of("quantize --help"), others[64];
    expect_default_int(help, "calib", q.calib_n);
    expect_default(help, "calib-method", mtc_calib_method_name(q.calib_method));
    expect_default_float(help, "percentile", (float)q.percentile);
    expect_default(help, "act", q.act_symmetric ? "s8" : "u8");
    expect_default_int(help, "val", q.val_n);
    /* a task --max-drop does not name: the cfg's budget, verify's too */
    snprintf(others, sizeof others, "others: %g point", q.max_drop[0]);
    char *line = help_line(help, "max-drop");
    assert_non_null(line);
    if (!strstr(line, others)) fail_msg("quantize --max-drop: expected \"%s\" in: %s", others, line);
    free(line);
    free(help);
    assert_true(q.max_drop[0] == MTC_MAX_DROP_DEFAULT);
    help = help_of("verify --help");
    line = help_line(help, "max-drop");
    assert_non_null(line);
    if (!strstr(line, others)) fail_msg("verify --max-drop: expected \"%s\" in: %s", others, line);
    free(line);
    free(help);
}

/* mtc train --optimizer adamw without --weight-decay trains with AdamW's
 * own decay (the library's), not 0: the same checkpoint bytes as passing
 * that value, other bytes than --weight-decay 0. */
static void test_adamw_without_weight_decay_uses_the_library_default(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *csv = tu_path(dir, "d.csv"), *spec = tu_path(dir, "m.cfg");
    tu_write_synth_csv(csv, 300, 5);
    const char *text = "[input] shape=4 columns=x0,x1,x2,x3\n[dense] units=16 act=relu\n[task fine] kind=cls classes=4\n";
    assert_int_equal(tu_write(spec, text, strlen(text)), 0);
    mtc_optim_cfg adamw;
    mtc_optim_cfg_default(&adamw, MTC_OPT_ADAMW);
    assert_true(adamw.weight_decay > 0);
    const char *extra[3] = {"", NULL, "--weight-decay 0"};
    char wd[64], args[2048], *out, *err;
    snprintf(wd, sizeof wd, "--weight-decay %.9g", adamw.weight_decay);
    extra[1] = wd;
    unsigned char *bytes[3];
    size_t n[3];
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof args, "train --spec '%s' --data 'csv:%s' --epochs 2 --optimizer adamw --lr 0.05 %s "
                 "--quiet --no-test -o '%s/m%d.mtc'", spec, csv, extra[k], dir, k);
        if (tu_run_mtc(dir, args, &out, &err) != 0) fail_msg("train: %s", err);
        free(out); free(err);
        char name[32];
        snprintf(name, sizeof name, "m%d.mtc", k);
        char *p = tu_path(dir, name);
        assert_non_null(bytes[k] = tu_read(p, &n[k]));
        free(p);
    }
    assert_true(n[0] == n[1] && !memcmp(bytes[0], bytes[1], n[0]));  /* the default is AdamW's decay */
    assert_true(n[0] != n[2] || memcmp(bytes[0], bytes[2], n[0])); /* and decay matters here */
    for (int k = 0; k < 3; k++) free(bytes[k]);
    tu_rmdir(dir);
    free(dir); free(csv); free(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_cfg_default_is_the_kd_pair_docs_chose),
        cmocka_unit_test(test_train_and_distill_help_print_the_train_cfg_defaults),
        cmocka_unit_test(test_prune_help_prints_the_prune_cfg_defaults),
        cmocka_unit_test(test_label_help_prints_the_label_cfg_defaults),
        cmocka_unit_test(test_quantize_and_verify_help_print_the_quant_cfg_defaults),
        cmocka_unit_test(test_adamw_without_weight_decay_uses_the_library_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
