/*
 * cmd_distill.c — `mtc distill`: train a student from a spec on stored soft
 * labels (.mtl from `mtc label`) with the per-task KD loss of mtc_train:
 *   cls  a·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−a)·CE(s, y)
 *   bin  a·BCE(s, sigmoid(t/T)) + (1−a)·BCE(s, y)
 *   reg  a·MSE(s, t) + (1−a)·label loss
 * then report per task: teacher (--teacher), KD student, the same student
 * trained from scratch (--compare-scratch), the share of the gap closed and
 * teacher–student agreement on the test split.
 * Hint (feature) loss: --hint-weight B with a .mtl written by `mtc label
 * --hints` adds B·||P h_s − h_t||²/Dt through a learned projection P.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OVERRIDES 32

typedef struct report_row {
    const char *name;
    int kind;
    const char *metric;      /* accuracy | mae */
    double teacher, kd, scratch, gap;
    double val_kd, val_scratch; /* best epoch's validation metric */
    mtc_paired vs;           /* KD minus scratch, paired on the test samples */
    float T, alpha;
    int soft;                /* has soft labels */
    int have_ag;
    mtc_agreement ag;
    int64_t labelled;        /* test samples labelled for the task */
} report_row;

/* "NAME:T=4,alpha=0.9" -> per-task T / alpha of model m. */
static int apply_override(const char *s, const mtc_model *m, float *T, float *alpha, mtc_err *e)
{
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || colon - s >= MTC_NAME_MAX)
        return mtc_err_set(e, MTC_EINPUT, "--task %s: expected NAME:T=X,alpha=Y", s);
    char name[MTC_NAME_MAX], kv[256];
    snprintf(name, sizeof name, "%.*s", (int)(colon - s), s);
    int t = mtc_spec_task_index(&m->spec, name);
    if (t < 0) return mtc_err_set(e, MTC_EINPUT, "--task %s: the student has no task '%s'", s, name);
    snprintf(kv, sizeof kv, "%s", colon + 1);
    char *save = NULL;
    int any = 0;
    for (char *tok = strtok_r(kv, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end = NULL;
        if (!eq) return mtc_err_set(e, MTC_EINPUT, "--task %s: '%s' is not KEY=VALUE", s, tok);
        *eq = 0;
        double v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end) return mtc_err_set(e, MTC_EINPUT, "--task %s: '%s' is not a number", s, eq + 1);
        if (!strcmp(tok, "T") || !strcmp(tok, "temperature")) {
            if (!(v > 0 && v <= 100)) return mtc_err_set(e, MTC_EINPUT, "--task %s: T must be in (0, 100]", s);
            T[t] = (float)v;
        } else if (!strcmp(tok, "alpha")) {
            if (!(v >= 0 && v <= 1)) return mtc_err_set(e, MTC_EINPUT, "--task %s: alpha must be in [0, 1]", s);
            alpha[t] = (float)v;
        } else {
            return mtc_err_set(e, MTC_EINPUT, "--task %s: unknown key '%s' (T or alpha)", s, tok);
        }
        any = 1;
    }
    if (!any) return mtc_err_set(e, MTC_EINPUT, "--task %s: nothing to set", s);
    return 0;
}

/* --task may repeat, which cli_parse does not support: take every --task
 * out of argv first. Returns the new argc or -1. */
static int take_task_opts(int argc, char **argv, char **rest, const char **ov, int *nov)
{
    int n = 0;
    *nov = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (i > 0 && !strcmp(a, "--task")) {
            if (i + 1 >= argc) { fprintf(stderr, "mtc distill: --task needs a value\n"); return -1; }
            val = argv[++i];
        } else if (i > 0 && !strncmp(a, "--task=", 7)) {
            val = a + 7;
        }
        if (!val) { rest[n++] = argv[i]; continue; }
        if (*nov >= MAX_OVERRIDES) { fprintf(stderr, "mtc distill: more than %d --task options\n", MAX_OVERRIDES); return -1; }
        ov[(*nov)++] = val;
    }
    rest[n] = NULL;
    return n;
}

static void fmt_metric(char *buf, size_t n, double v, int kind)
{
    if (!isfinite(v)) snprintf(buf, n, "-");
    else if (kind == MTC_TASK_REG) snprintf(buf, n, "%.4f", v);
    else snprintf(buf, n, "%.2f%%", 100 * v);
}

/* KD minus scratch with its 95% half-width: points for accuracies, the
 * metric's units for MAE. */
static void fmt_paired(char *buf, size_t n, const mtc_paired *p, int kind)
{
    const double f = kind == MTC_TASK_REG ? 1.0 : 100.0;
    if (!isfinite(p->diff)) snprintf(buf, n, "-");
    else if (!isfinite(p->ci95)) snprintf(buf, n, kind == MTC_TASK_REG ? "%+.4f" : "%+.2f", f * p->diff);
    else snprintf(buf, n, kind == MTC_TASK_REG ? "%+.4f±%.4f" : "%+.2f±%.2f", f * p->diff, f * p->ci95);
}

static void print_report(const report_row *r, int n, int scratch, int teacher)
{
    printf("%-12s %-4s %-8s %9s %10s %9s %10s %15s %5s %5s %9s %10s %9s\n", "task", "kind", "metric", "teacher",
           "student-KD", "scratch", "gap closed", "KD-scratch 95%", "T", "alpha", "agree", "KL/|diff|", "labelled");
    for (int i = 0; i < n; i++) {
        char t[32], k[32], s[32], g[32], a[32], kl[32], d[48];
        fmt_metric(t, sizeof t, teacher ? r[i].teacher : NAN, r[i].kind);
        fmt_metric(k, sizeof k, r[i].kd, r[i].kind);
        fmt_metric(s, sizeof s, scratch ? r[i].scratch : NAN, r[i].kind);
        if (isfinite(r[i].gap)) snprintf(g, sizeof g, "%.1f%%", 100 * r[i].gap);
        else snprintf(g, sizeof g, "-");
        fmt_paired(d, sizeof d, &r[i].vs, r[i].kind);
        snprintf(a, sizeof a, "-");
        snprintf(kl, sizeof kl, "-");
        if (r[i].have_ag) {
            if (isfinite(r[i].ag.agree)) snprintf(a, sizeof a, "%.2f%%", 100 * r[i].ag.agree);
            if (r[i].kind == MTC_TASK_REG) snprintf(kl, sizeof kl, "%.4f", r[i].ag.mean_abs_diff);
            else snprintf(kl, sizeof kl, "%.4f", r[i].ag.kl);
        }
        printf("%-12s %-4s %-8s %9s %10s %9s %10s %15s %5g %5g %9s %10s %9lld\n", r[i].name,
               mtc_task_kind_name(r[i].kind), r[i].metric, t, k, s, g, d, r[i].soft ? r[i].T : 0.0,
               r[i].soft ? r[i].alpha : 0.0, a, kl, (long long)r[i].labelled);
    }
}

static void json_report(mtc_jw *w, const report_row *r, int n)
{
    mtc_jw_obj(w);
    for (int i = 0; i < n; i++) {
        mtc_jw_key(w, r[i].name);
        mtc_jw_obj(w);
        mtc_jw_kstr(w, "kind", mtc_task_kind_name(r[i].kind));
        mtc_jw_kstr(w, "metric", r[i].metric);
        mtc_jw_kint(w, "labelled", r[i].labelled);
        mtc_jw_knum(w, "teacher", r[i].teacher);
        mtc_jw_knum(w, "student_kd", r[i].kd);
        mtc_jw_knum(w, "scratch", r[i].scratch);
        mtc_jw_knum(w, "gap_closed", r[i].gap);
        /* the metric's difference and its 95% half-width (paired, test split) */
        mtc_jw_knum(w, "kd_minus_scratch", r[i].vs.diff);
        mtc_jw_knum(w, "kd_minus_scratch_ci95", r[i].vs.ci95);
        mtc_jw_knum(w, "val_student_kd", r[i].val_kd);
        mtc_jw_knum(w, "val_scratch", r[i].val_scratch);
        mtc_jw_key(w, "soft_labels");
        mtc_jw_bool(w, r[i].soft);
        mtc_jw_knum(w, "T", r[i].soft ? r[i].T : NAN);
        mtc_jw_knum(w, "alpha", r[i].soft ? r[i].alpha : 0.0);
        mtc_jw_knum(w, "agreement", r[i].have_ag ? r[i].ag.agree : NAN);
        mtc_jw_knum(w, "kl", r[i].have_ag ? r[i].ag.kl : NAN);
        mtc_jw_knum(w, "mean_abs_diff", r[i].have_ag ? r[i].ag.mean_abs_diff : NAN);
        mtc_jw_obj_end(w);
    }
    mtc_jw_obj_end(w);
}

/* Teacher list and parent hash from the .mtl header. */
static void json_lineage(mtc_jw *w, const mtc_json *hdr)
{
    const mtc_json *ts = hdr ? mtc_json_get(hdr, "teachers") : NULL;
    mtc_jw_key(w, "parent");
    if (ts && ts->type == MTC_JARR && ts->n == 1 && mtc_json_str(&ts->items[0], "hash")) {
        mtc_jw_str(w, mtc_json_str(&ts->items[0], "hash"));
    } else if (ts && ts->type == MTC_JARR && ts->n > 1) {
        mtc_jw_arr(w);
        for (int i = 0; i < ts->n; i++) {
            const char *h = mtc_json_str(&ts->items[i], "hash");
            if (h) mtc_jw_str(w, h);
            else mtc_jw_null(w);
        }
        mtc_jw_arr_end(w);
    } else {
        mtc_jw_null(w);
    }
    mtc_jw_key(w, "teachers");
    if (ts) mtc_jw_value(w, ts);
    else mtc_jw_null(w);
}

/* Is the teacher file one of the .mtl's teachers? */
static int teacher_in_header(const mtc_json *hdr, const char *hash)
{
    const mtc_json *ts = hdr ? mtc_json_get(hdr, "teachers") : NULL;
    for (int i = 0; ts && ts->type == MTC_JARR && i < ts->n; i++) {
        const char *h = mtc_json_str(&ts->items[i], "hash");
        if (h && !strcmp(h, hash)) return 1;
    }
    return 0;
}

#define TUNE_N 5
static const float tune_grid[TUNE_N] = {0.0f, 0.25f, 0.5f, 0.75f, 0.9f};

/* A fresh student (spec, seed, the data's class names) trained with cfg into
 * *m (built here; freed on error). */
static int train_fresh(const mtc_spec *spec, const char *spec_text, const mtc_dataset *d, const mtc_train_cfg *cfg,
                       uint64_t seed, mtc_model *m, mtc_train_result *r, mtc_err *e)
{
    int rc = mtc_model_build(spec, spec_text, m, e);
    if (rc) return rc;
    mtc_model_init_params(m, seed);
    if ((rc = mtc_model_set_class_names(m, d, e)) || (rc = mtc_train(m, d, cfg, r, e))) mtc_model_free(m);
    return rc;
}

/* --tune: the student trained once per alpha of the grid (every task at that
 * alpha, T as set), each task's validation metric noted (accuracy: higher
 * is better; MAE: lower), and each task's best alpha kept in cfg (ties: the
 * smaller alpha). Tasks without soft labels are left alone. */
static int tune_alpha(const mtc_spec *spec, const char *spec_text, const mtc_dataset *d, mtc_train_cfg *cfg,
                      const mtc_soft *soft, uint64_t seed, const cli_common *c, double val[][MTC_MAX_TASKS],
                      mtc_err *e)
{
    const int T = spec->ntasks;
    int best[MTC_MAX_TASKS] = {0};
    for (int g = 0; g < TUNE_N; g++) {
        mtc_model tm;
        mtc_train_cfg tc = *cfg;
        for (int t = 0; t < T; t++) tc.kd_alpha[t] = tune_grid[g];
        tc.checkpoint_path = tc.resume_path = NULL;
        tc.progress = NULL, tc.step_progress = NULL;
        mtc_train_result r = {0};
        int rc = train_fresh(spec, spec_text, d, &tc, seed, &tm, &r, e);
        free(r.history_json);
        if (rc) return rc;
        mtc_model_free(&tm);
        char line[600];
        int n = snprintf(line, sizeof line, "tune: alpha %.2f:", tune_grid[g]);
        for (int t = 0; t < T; t++) {
            val[g][t] = r.val_metric[t];
            const int reg = spec->tasks[t].kind == MTC_TASK_REG;
            n += snprintf(line + n, sizeof line - (size_t)n, reg ? "  %s MAE %.4f" : "  %s %.2f%%", spec->tasks[t].name,
                          reg ? val[g][t] : 100 * val[g][t]);
            if (g && (reg ? val[g][t] < val[best[t]][t] : val[g][t] > val[best[t]][t])) best[t] = g;
            if (n >= (int)sizeof line) n = (int)sizeof line - 1;
        }
        cli_progress(c, "%s", line);
    }
    for (int t = 0; t < T; t++)
        if (soft->v[t]) cfg->kd_alpha[t] = tune_grid[best[t]];
    return 0;
}

/* --correct-teacher: how often the stored soft labels (view 0) disagree
 * with the training labels, per cls/bin task: what the correction changes. */
static int report_teacher_wrong(const cli_common *c, const mtc_model *m, const mtc_dataset *d, const mtc_soft *soft,
                                mtc_err *e)
{
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        if (!soft->v[t] || ts->kind == MTC_TASK_REG) continue;
        int32_t *lab = NULL;
        const float *tg = NULL;
        int rc = mtc_model_bind_task(m, t, d, &lab, &tg, e);
        if (rc) return rc;
        const int64_t nv = d->n * ts->dim;
        float *v = malloc(sizeof(float) * (size_t)nv);
        if (!v) { free(lab); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
        memcpy(v, soft->v[t], sizeof(float) * (size_t)nv); /* view 0: the first n rows */
        int64_t wrong = 0, labelled = 0;
        if (ts->kind == MTC_TASK_CLS) {
            for (int64_t i = 0; i < d->n; i++) labelled += lab[i] >= 0 && lab[i] < ts->dim;
            wrong = mtc_kd_correct_cls(v, lab, (int)d->n, ts->dim);
        } else {
            for (int64_t i = 0; i < nv; i++) labelled += !isnan(tg[i]);
            wrong = mtc_kd_correct_bin(v, tg, (int)nv);
        }
        cli_progress(c, "correct-teacher: %s: the teacher is wrong on %lld of %lld labelled %s (%.2f%%): corrected",
                     ts->name, (long long)wrong, (long long)labelled, ts->kind == MTC_TASK_CLS ? "samples" : "outputs",
                     labelled ? 100.0 * (double)wrong / (double)labelled : 0.0);
        free(v);
        free(lab);
    }
    return 0;
}

int cmd_distill(int argc, char **argv)
{
    const char *spec_path = NULL, *data = NULL, *out = NULL, *soft_path = NULL, *teacher_path = NULL, *transfer = NULL;
    char joined[512];
    const char *task_dummy = NULL;
    mtc_train_cfg dflt; /* T, alpha and the hint weight start at the library's defaults */
    mtc_train_cfg_default(&dflt);
    float T = dflt.kd_T[0], alpha = dflt.kd_alpha[0], hint_weight = dflt.hint_weight, *hints = NULL;
    int compare = 0, allow_missing = 0, hint_dim = 0, tune = 0, correct = 0;
    double tune_val[TUNE_N][MTC_MAX_TASKS];
    int tune_fallback_g = -1; /* the grid run kept when the mixed alphas did worse than alpha 0 */
    cli_common c;
    cli_common_defaults(&c);
    util_train_opts to;
    util_train_opts_default(&to);
    cli_opt opts[] = {
        {"spec", OPT_STR, &spec_path, "student spec file (required)", 1, 0},
        {"data", OPT_STR, &data, "data set the soft labels were made for (required)", 1, 0},
        {"transfer", OPT_STR, &transfer, "unlabelled data joined after --data (as --data D+NAME): soft loss on every "
                                         "sample, hard loss where a label exists; label it with the same option", 1, 0},
        {"soft", OPT_STR, &soft_path, "soft-label file from `mtc label` (required)", 1, 0},
        {"out", OPT_STR, &out, "output student checkpoint (-o; required)", 1, 0},
        {"temperature", OPT_FLOAT, &T, "KD temperature T for every task (default {default}, chosen on the validation split)", 1e-3, 100},
        {"alpha", OPT_FLOAT, &alpha, "weight of the soft loss, 1-alpha on the labels (default {default}, chosen on the validation split)", 0, 1},
        {"task", OPT_STR, &task_dummy, "NAME:T=X,alpha=Y per-task override (repeatable)", 1, 0},
        {"allow-missing", OPT_FLAG, &allow_missing, "student tasks without soft labels train on labels only", 1, 0},
        {"teacher", OPT_STR, &teacher_path, "teacher checkpoint: report its test metrics and agreement", 1, 0},
        {"hint-weight", OPT_FLOAT, &hint_weight, "hint loss weight on the trunk output (needs `mtc label --hints`; default {default} = off)", 0, 1e4},
        {"correct-teacher", OPT_FLAG, &correct, "where the teacher is wrong on a labelled sample, its soft label has the "
                                                "top class and the true class swapped (cls; a bin logit changes sign): "
                                                "probability shift, docs/distill.md", 1, 0},
        {"compare-scratch", OPT_FLAG, &compare, "also train the student from scratch (same settings) and report the gap closed", 1, 0},
        {"tune", OPT_FLAG, &tune, "choose alpha per task on the validation split: one run per alpha in {0, .25, .5, .75, .9}, "
                                  "then the final run with each task's best; if that mix does worse than alpha 0 (the "
                                  "labels alone) on a task, the grid's run nowhere worse than alpha 0: never worse than "
                                  "scratch on validation", 1, 0},
        UTIL_TRAIN_OPTS(&to),
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    const char *ov[MAX_OVERRIDES];
    int nov = 0;
    if (!rest) return 2;
    int rargc = take_task_opts(argc, argv, rest, ov, &nov);
    if (rargc < 0) { free(rest); return 2; }
    const char *pos[1];
    int npos;
    char summary[1200];
    snprintf(summary, sizeof summary,
             "Train a student on the teacher's stored soft labels (knowledge distillation).\n"
             "Per task: cls a*T^2*KL(softmax(t/T)||softmax(s/T)) + (1-a)*CE(s,y); bin the same with\n"
             "sigmoids; reg a*MSE(s,t) + (1-a)*label loss. Defaults T=%g, alpha=%g were chosen by a sweep on\n"
             "the validation split (docs/distill.md). Augmentation comes from the soft-label file: with\n"
             "`mtc label --augment-copies K` each step trains on one of the K stored views of a sample\n"
             "(the --compare-scratch twin then trains with the same augmentation, drawn freshly);\n"
             "without, KD runs unaugmented. --augment is refused. --hint-weight adds a hint loss on the\n"
             "trunk output through a learned projection (soft labels written with --hints).\n"
             "Every training option of `mtc train` applies.",
             dflt.kd_T[0], dflt.kd_alpha[0]);
    int rc = cli_parse("distill", "--spec student.cfg --data NAME --soft soft.mtl -o student.mtc [options]", summary,
                       opts, rargc, rest, pos, 0, &npos);
    if (rc) { free(rest); return rc < 0 ? 0 : rc; }
    free(rest); /* strings still point into argv */
    if (strcmp(to.augment, "none")) {
        fprintf(stderr, "mtc distill: --augment %s: KD from --soft trains on the views stored in the file "
                        "(mtc label --augment-copies K); drop --augment\n", to.augment);
        return 2;
    }
    if (data && transfer) { /* --transfer U is --data D+U */
        if (snprintf(joined, sizeof joined, "%s+%s", data, transfer) >= (int)sizeof joined) {
            fprintf(stderr, "mtc distill: --data and --transfer: names too long\n");
            return 2;
        }
        data = joined;
    }
    if (!spec_path || !data || !soft_path || !out) {
        fprintf(stderr, "mtc distill: --spec, --data, --soft and -o are required (see mtc distill --help)\n");
        return 2;
    }
    cli_apply_common(&c);
    mtc_err e = {0};
    mtc_spec spec;
    char *spec_text = NULL, *hdr_text = NULL;
    mtc_model m, ms, tm;
    int have_m = 0, have_ms = 0, have_tm = 0, have_ev = 0, have_sev = 0, have_tev = 0;
    mtc_dataset d, dt, dtt;
    memset(&d, 0, sizeof d);
    memset(&dt, 0, sizeof dt);
    memset(&dtt, 0, sizeof dtt);
    mtc_soft soft = {0};
    mtc_json hdr = {0};
    mtc_train_cfg cfg, scfg;
    mtc_train_result res = {0}, sres = {0};
    mtc_task_eval ev[MTC_MAX_TASKS], sev[MTC_MAX_TASKS], tev[MTC_MAX_TASKS];
    float *souts[MTC_MAX_TASKS] = {0}, *touts[MTC_MAX_TASKS] = {0}, *scouts[MTC_MAX_TASKS] = {0};
    report_row rows[MTC_MAX_TASKS];
    char thash[17] = "";
    mtc_jw w, j;
    mtc_jw_init(&w);
    mtc_jw_init(&j);

    if ((rc = mtc_spec_load(spec_path, &spec, &spec_text, &e))) goto out;
    if (spec.ntrain)
        cli_progress(&c, "distill: %s: its [train] section is `mtc train`'s recipe, not applied here "
                         "(distill takes its settings from its flags)", spec_path);
    if ((rc = mtc_model_build(&spec, spec_text, &m, &e))) {
        if (!strncmp(e.msg, "spec:", 5)) { /* shape errors: name the spec file */
            char msg[sizeof e.msg];
            snprintf(msg, sizeof msg, "%.200s:%.300s", spec_path, e.msg + 5);
            memcpy(e.msg, msg, sizeof msg);
        }
        goto out;
    }
    have_m = 1;
    if ((rc = util_train_cfg(&to, &c, out, &cfg, &e))) goto out;
    cfg.progress = util_progress;
    cfg.progress_ctx = &c;
    for (int t = 0; t < MTC_MAX_TASKS; t++) { cfg.kd_T[t] = T; cfg.kd_alpha[t] = alpha; }
    for (int i = 0; i < nov; i++)
        if ((rc = apply_override(ov[i], &m, cfg.kd_T, cfg.kd_alpha, &e))) goto out;
    if ((rc = util_open_data(&m, data, "train", &d, &e))) goto out;
    util_report_data(&c, &d);
    if ((rc = mtc_model_set_class_names(&m, &d, &e))) goto out;
    if ((rc = mtc_soft_read(soft_path, &m, &d, allow_missing, &soft, hint_weight > 0 ? &hints : NULL,
                            &hint_dim, &e)))
        goto out;
    if (hint_weight > 0 && !hints) {
        rc = mtc_err_set(&e, MTC_EINPUT, "%s: --hint-weight needs soft labels written by `mtc label --hints`", soft_path);
        goto out;
    }
    cfg.hints = hints;
    cfg.hint_dim = hint_dim;
    cfg.hint_weight = hint_weight;
    cfg.kd_correct = correct;
    if (correct && (rc = report_teacher_wrong(&c, &m, &d, &soft, &e))) goto out;
    if ((rc = mtc_soft_header(soft_path, &hdr_text, &e))) goto out;
    if ((rc = mtc_json_parse(hdr_text, strlen(hdr_text), &hdr, &e))) goto out;
    cfg.soft = &soft;
    scfg = cfg;
    scfg.checkpoint_path = NULL; /* the state file belongs to the KD run */
    scfg.resume_path = NULL;
    scfg.soft = NULL; /* scratch: plain training, alpha = 0 everywhere */
    scfg.hints = NULL;
    scfg.aug = soft.copies > 1 ? soft.aug : 0; /* the twin sees augmented images too */

    cli_progress(&c, "distill: %s, %lld samples, %lld parameters, %d task(s), soft labels %s", d.name,
                 (long long)d.n, (long long)m.nparams, m.spec.ntasks, soft_path);
    if (tune) {
        if (cfg.val_frac <= 0) {
            rc = mtc_err_set(&e, MTC_EINPUT, "--tune chooses on the validation split: --val must be above 0");
            goto out;
        }
        cli_progress(&c, "distill --tune: %d runs, one per alpha, then the final one", TUNE_N);
        if ((rc = tune_alpha(&spec, spec_text, &d, &cfg, &soft, c.seed, &c, tune_val, &e))) goto out;
        char line[600];
        int n = snprintf(line, sizeof line, "tune: chosen on validation:");
        for (int t = 0; t < m.spec.ntasks && n < (int)sizeof line; t++)
            n += snprintf(line + n, sizeof line - (size_t)n, "  %s alpha %.2f", m.spec.tasks[t].name,
                          soft.v[t] ? cfg.kd_alpha[t] : 0.0);
        cli_progress(&c, "%s", line);
    }
    mtc_model_init_params(&m, c.seed);
    double t_train = util_now();
    if ((rc = mtc_train(&m, &d, &cfg, &res, &e))) goto out;
    int lower_better[MTC_MAX_TASKS];
    for (int t = 0; t < m.spec.ntasks; t++) lower_better[t] = m.spec.tasks[t].kind == MTC_TASK_REG;
    int worse_t = tune ? mtc_distill_tune_worse(res.val_metric, tune_val[0], lower_better, m.spec.ntasks) : -1;
    if (worse_t >= 0) {
        /* each task's best alpha, mixed, moved through the shared layers:
         * worse than the labels alone on some task. Keep the grid's run that
         * is nowhere worse than alpha 0 (alpha 0 at worst): KD never loses to
         * scratch on the validation split. The same seed retrains it to the
         * grid run's bytes. */
        tune_fallback_g = mtc_distill_tune_fallback((const double(*)[MTC_MAX_TASKS])tune_val, TUNE_N, lower_better,
                                                    m.spec.ntasks);
        const int reg = m.spec.tasks[worse_t].kind == MTC_TASK_REG;
        cli_progress(&c, "tune: the mixed alphas did worse than alpha 0 on validation (%s %s %.4f against %.4f): "
                         "every task at alpha %.2f instead",
                     m.spec.tasks[worse_t].name, reg ? "MAE" : "accuracy", res.val_metric[worse_t],
                     tune_val[0][worse_t], tune_grid[tune_fallback_g]);
        for (int t = 0; t < m.spec.ntasks; t++)
            if (soft.v[t]) cfg.kd_alpha[t] = tune_grid[tune_fallback_g];
        mtc_model_free(&m);
        have_m = 0;
        free(res.history_json);
        memset(&res, 0, sizeof res);
        if ((rc = train_fresh(&spec, spec_text, &d, &cfg, c.seed, &m, &res, &e))) goto out;
        have_m = 1;
    }
    util_report_comm(&c, util_now() - t_train);
    if (compare) {
        cli_progress(&c, "distill: the same student from scratch (same seed, epochs, optimizer; no soft labels)");
        if ((rc = mtc_model_build(&spec, spec_text, &ms, &e))) goto out;
        have_ms = 1;
        mtc_model_init_params(&ms, c.seed);
        if ((rc = mtc_train(&ms, &d, &scfg, &sres, &e))) goto out;
    }
    /* test split: KD student, scratch student, teacher, agreement */
    if ((rc = util_open_data(&m, data, "test", &dt, &e))) goto out;
    if ((rc = mtc_model_predict(&m, &dt, NULL, 0, 256, souts, &e))) goto out;
    if ((rc = mtc_evaluate_outputs(&m, &dt, NULL, 0, souts, ev, &e))) goto out;
    have_ev = 1;
    if (compare) {
        if ((rc = mtc_model_predict(&ms, &dt, NULL, 0, 256, scouts, &e))) goto out;
        if ((rc = mtc_evaluate_outputs(&ms, &dt, NULL, 0, scouts, sev, &e))) goto out;
        have_sev = 1;
    }
    if (teacher_path) {
        uint64_t h;
        if ((rc = util_model_load(teacher_path, &tm, &e))) goto out;
        have_tm = 1;
        if ((rc = mtc_file_hash(teacher_path, &h, &e))) goto out;
        snprintf(thash, sizeof thash, "%016llx", (unsigned long long)h);
        if (!teacher_in_header(&hdr, thash))
            cli_progress(&c, "distill: note: %s (hash %s) is not among the teachers of %s", teacher_path, thash,
                         soft_path);
        if ((rc = util_open_data(&tm, data, "test", &dtt, &e))) goto out;
        if (dtt.n != dt.n) {
            rc = mtc_err_set(&e, MTC_EINPUT, "%s: the teacher's test split has %lld samples, the student's %lld",
                             teacher_path, (long long)dtt.n, (long long)dt.n);
            goto out;
        }
        if ((rc = mtc_model_predict(&tm, &dtt, NULL, 0, 256, touts, &e))) goto out;
        if ((rc = mtc_evaluate_outputs(&tm, &dtt, NULL, 0, touts, tev, &e))) goto out;
        have_tev = 1;
    }
    for (int t = 0; t < m.spec.ntasks; t++) {
        report_row *r = &rows[t];
        memset(r, 0, sizeof *r);
        r->name = m.spec.tasks[t].name;
        r->kind = m.spec.tasks[t].kind;
        r->kd = mtc_task_eval_primary(&ev[t], &r->metric);
        r->labelled = ev[t].n;
        r->scratch = have_sev ? mtc_task_eval_primary(&sev[t], NULL) : NAN;
        r->val_kd = res.val_metric[t];
        r->val_scratch = have_sev ? sres.val_metric[t] : NAN;
        r->teacher = NAN;
        r->T = cfg.kd_T[t];
        r->alpha = cfg.kd_alpha[t];
        r->soft = soft.v[t] != NULL;
        int ti = have_tev ? mtc_spec_task_index(&tm.spec, r->name) : -1;
        if (ti >= 0 && tm.spec.tasks[ti].kind == r->kind && tm.spec.tasks[ti].dim == m.spec.tasks[t].dim) {
            r->teacher = mtc_task_eval_primary(&tev[ti], NULL);
            mtc_distill_agreement(r->kind, m.spec.tasks[t].dim, touts[ti], souts[t], dt.n, &r->ag);
            r->have_ag = 1;
        }
        r->gap = mtc_distill_gap_closed(r->teacher, r->kd, r->scratch, r->kind != MTC_TASK_REG);
        r->vs.diff = r->vs.se = r->vs.ci95 = NAN;
        if (have_sev) { /* the same test samples, paired: is the difference beyond noise? */
            int32_t *lab = NULL;
            const float *tg = NULL;
            if ((rc = mtc_model_bind_task(&m, t, &dt, &lab, &tg, &e))) goto out;
            mtc_distill_paired(r->kind, m.spec.tasks[t].dim, souts[t], scouts[t], lab, tg, dt.n, &r->vs);
            free(lab);
        }
    }

    /* metadata: lineage, KD settings, training, per-task results, history */
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "producer", "mtc distill");
    mtc_jw_kstr(&w, "version", MTC_VERSION);
    json_lineage(&w, &hdr);
    util_json_data(&w, "data", &d);
    mtc_jw_key(&w, "distill");
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "soft", soft_path);
    mtc_jw_kstr(&w, "soft_dtype", mtc_json_str(&hdr, "dtype") ? mtc_json_str(&hdr, "dtype") : "?");
    mtc_jw_key(&w, "augmentation");
    if (mtc_json_get(&hdr, "augmentation")) mtc_jw_value(&w, mtc_json_get(&hdr, "augmentation"));
    else mtc_jw_str(&w, "none");
    mtc_jw_knum(&w, "hint_weight", hints ? hint_weight : 0.0);
    mtc_jw_key(&w, "correct_teacher");
    mtc_jw_bool(&w, correct);
    if (tune_fallback_g >= 0) mtc_jw_knum(&w, "tune_fallback_alpha", tune_grid[tune_fallback_g]);
    mtc_jw_key(&w, "tasks");
    mtc_jw_obj(&w);
    for (int t = 0; t < m.spec.ntasks; t++) {
        mtc_jw_key(&w, m.spec.tasks[t].name);
        mtc_jw_obj(&w);
        mtc_jw_key(&w, "soft_labels");
        mtc_jw_bool(&w, rows[t].soft);
        mtc_jw_knum(&w, "T", cfg.kd_T[t]);
        mtc_jw_knum(&w, "alpha", rows[t].soft ? cfg.kd_alpha[t] : 0.0);
        if (tune) mtc_jw_knum(&w, "val", res.val_metric[t]); /* the final run's */
        if (tune && rows[t].soft) { /* the validation metric of every alpha tried */
            mtc_jw_key(&w, "tune");
            mtc_jw_arr(&w);
            for (int g = 0; g < TUNE_N; g++) {
                mtc_jw_obj(&w);
                mtc_jw_knum(&w, "alpha", tune_grid[g]);
                mtc_jw_knum(&w, "val", tune_val[g][t]);
                mtc_jw_obj_end(&w);
            }
            mtc_jw_arr_end(&w);
        }
        mtc_jw_obj_end(&w);
    }
    mtc_jw_obj_end(&w);
    mtc_jw_obj_end(&w);
    util_json_training(&w, &m, &to, &c, &cfg, &res);
    mtc_jw_key(&w, "test");
    util_json_eval(&w, &m, ev);
    mtc_jw_key(&w, "report");
    json_report(&w, rows, m.spec.ntasks);
    if (compare) {
        mtc_jw_key(&w, "scratch_history");
        mtc_jw_raw(&w, sres.history_json ? sres.history_json : "[]");
    }
    mtc_jw_obj_end(&w);
    if (w.oom) { rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory"); goto out; }
    if ((rc = mtc_model_save(&m, out, w.buf, &e))) goto out;

    if (c.json) {
        mtc_jw_obj(&j);
        mtc_jw_kstr(&j, "model", out);
        mtc_jw_kstr(&j, "data", data);
        mtc_jw_kstr(&j, "soft", soft_path);
        if (teacher_path) mtc_jw_kstr(&j, "teacher", teacher_path);
        mtc_jw_kint(&j, "parameters", m.nparams);
        mtc_jw_knum(&j, "samples_per_s", res.samples_per_s);
        mtc_jw_knum(&j, "samples_per_s_mean", res.samples_per_s_mean);
        mtc_jw_key(&j, "tasks");
        json_report(&j, rows, m.spec.ntasks);
        mtc_jw_obj_end(&j);
        printf("%s\n", j.buf);
    } else {
        printf("test split of %s (%lld samples):\n", dt.name, (long long)dt.n);
        print_report(rows, m.spec.ntasks, compare, have_tev);
        for (int t = 0; compare && !tune && t < m.spec.ntasks; t++) {
            const report_row *r = &rows[t];
            if (!r->soft || !(r->kind == MTC_TASK_REG ? r->kd > r->scratch : r->kd < r->scratch)) continue;
            char d[48];
            fmt_paired(d, sizeof d, &r->vs, r->kind);
            const int noise = !(fabs(r->vs.diff) > r->vs.ci95); /* NaN: cannot tell, say noise */
            printf("note: KD is behind scratch on %s (%s, %s); --tune chooses alpha per task on the validation "
                   "split and never ends worse than the labels alone there\n",
                   r->name, d,
                   noise ? "within a paired test's 95% interval of no difference" : "beyond a paired test's 95% interval");
            break;
        }
        printf("wrote %s (%lld parameters)\n", out, (long long)m.nparams);
    }
out:
    for (int t = 0; t < MTC_MAX_TASKS; t++) { free(souts[t]); free(touts[t]); free(scouts[t]); }
    if (have_ev) mtc_task_eval_free(ev, m.spec.ntasks);
    if (have_sev) mtc_task_eval_free(sev, m.spec.ntasks);
    if (have_tev) mtc_task_eval_free(tev, tm.spec.ntasks);
    mtc_jw_free(&w);
    mtc_jw_free(&j);
    mtc_json_free(&hdr);
    free(hdr_text);
    free(res.history_json);
    free(sres.history_json);
    mtc_soft_free(&soft);
    free(hints);
    mtc_data_free(&d);
    mtc_data_free(&dt);
    mtc_data_free(&dtt);
    if (have_m) mtc_model_free(&m);
    if (have_ms) mtc_model_free(&ms);
    if (have_tm) mtc_model_free(&tm);
    free(spec_text);
    return rc ? cli_fail("distill", &e) : 0;
}
