/*
 * cmd_verify.c — `mtc verify`: per-task retention gate between a reference
 * and a candidate checkpoint, both run through the reference runtime on the
 * same data. Exit 0 when every task's drop is within its budget, 1 when one
 * is not, 2 on bad input (including a reference at chance level). With
 * --report-only the same tables without budgets or verdicts, exit 0.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct side {
    const char *path;
    mtc_rt *rt;
    float *outs[MTC_MAX_TASKS];
    mtc_task_eval ev[MTC_MAX_TASKS];
    int have_ev;
    double metric[MTC_MAX_TASKS];
    double sps;
} side;

typedef struct task_row {
    const char *name, *metric_name;
    int kind;
    double ref, cand, drop, budget, agree, kl, mad;
    int pass;
    int64_t labelled;     /* samples the metrics are over */
    double ece, ece_ref, ece_budget; /* --max-ece: calibration error (NaN: not checked) */
} task_row;

/* --max-ece TASK=X,...: a cls/bin task's candidate ECE must stay <= X. */
static int parse_max_ece(const mtc_model *m, const char *s, double *b, mtc_err *e)
{
    for (int t = 0; t < MTC_MAX_TASKS; t++) b[t] = NAN;
    if (!s) return 0;
    char buf[2048], *save = NULL;
    if (strlen(s) >= sizeof buf) return mtc_err_set(e, MTC_EINPUT, "--max-ece: too long");
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end;
        if (!eq) return mtc_err_set(e, MTC_EINPUT, "--max-ece %s: expected TASK=ECE", tok);
        *eq = 0;
        int t = mtc_spec_task_index(&m->spec, tok);
        if (t < 0) return mtc_err_set(e, MTC_EINPUT, "--max-ece: the model has no task '%s'", tok);
        if (m->spec.tasks[t].kind == MTC_TASK_REG)
            return mtc_err_set(e, MTC_EINPUT, "--max-ece: task '%s' is a regression (no probabilities)", tok);
        double v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || !(v >= 0 && v <= 1))
            return mtc_err_set(e, MTC_EINPUT, "--max-ece %s=%s: expected a number in [0, 1]", tok, eq + 1);
        b[t] = v;
    }
    return 0;
}

static int same_tasks(const mtc_model *a, const mtc_model *b, const char *pa, const char *pb, mtc_err *e)
{
    if (a->spec.c != b->spec.c || a->spec.h != b->spec.h || a->spec.w != b->spec.w)
        return mtc_err_set(e, MTC_EINPUT, "%s takes %dx%dx%d inputs but %s takes %dx%dx%d", pa, a->spec.c,
                           a->spec.h, a->spec.w, pb, b->spec.c, b->spec.h, b->spec.w);
    if (a->spec.ntasks != b->spec.ntasks)
        return mtc_err_set(e, MTC_EINPUT, "%s has %d tasks but %s has %d", pa, a->spec.ntasks, pb, b->spec.ntasks);
    for (int t = 0; t < a->spec.ntasks; t++) {
        const mtc_task_spec *x = &a->spec.tasks[t], *y = &b->spec.tasks[t];
        if (strcmp(x->name, y->name) || x->kind != y->kind || x->dim != y->dim)
            return mtc_err_set(e, MTC_EINPUT, "task %d differs: %s has %s (%s, %d) but %s has %s (%s, %d)", t, pa,
                               x->name, mtc_task_kind_name(x->kind), x->dim, pb, y->name,
                               mtc_task_kind_name(y->kind), y->dim);
    }
    return 0;
}

static int run_side(side *s, const mtc_dataset *d, int threads, int batch, mtc_err *e)
{
    const mtc_model *m = mtc_rt_model(s->rt);
    mtc_rt_set_threads(s->rt, threads);
    int rc = mtc_rt_reserve(s->rt, batch, e);
    if (rc) return rc;
    /* inference time only: input conversion is not timed */
    int T = m->spec.ntasks;
    int64_t S = mtc_data_sample_size(d);
    float *x = malloc((size_t)batch * (size_t)S * sizeof(float));
    int64_t *bi = malloc((size_t)batch * sizeof(int64_t));
    if (!x || !bi) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    for (int t = 0; t < T && !rc; t++)
        if (!(s->outs[t] = malloc((size_t)d->n * (size_t)m->spec.tasks[t].dim * sizeof(float))))
            rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    /* an MPI job: each rank runs a contiguous share, rank 0 gathers the rows
     * (the runtime's outputs do not depend on the batch) and reports */
    const int np = mtc_comm_size(), rk = mtc_comm_rank();
    const int64_t lo = d->n * rk / np, hi = d->n * (rk + 1) / np;
    double busy = 0;
    for (int64_t s0 = lo; s0 < hi && !rc; s0 += batch) {
        int B = (int)(hi - s0 < batch ? hi - s0 : batch);
        for (int b = 0; b < B; b++) bi[b] = s0 + b;
        mtc_data_batch_x(d, bi, B, 0, NULL, x);
        float *o[MTC_MAX_TASKS];
        for (int t = 0; t < T; t++) o[t] = s->outs[t] + s0 * m->spec.tasks[t].dim;
        double t0 = cli_now();
        rc = mtc_rt_run(s->rt, x, B, o, e);
        busy += cli_now() - t0;
    }
    free(x);
    free(bi);
    s->sps = busy > 0 ? (double)(hi - lo) / busy : 0; /* one process's rate */
    enum { TAG = 29 };
    for (int t = 0; t < T && !rc && np > 1; t++) {
        size_t row = (size_t)m->spec.tasks[t].dim * sizeof(float);
        if (rk) {
            rc = mtc_comm_send(s->outs[t] + lo * m->spec.tasks[t].dim, (size_t)(hi - lo) * row, 0, TAG, e);
            continue;
        }
        for (int k = 1; k < np && !rc; k++) {
            int64_t a = d->n * k / np, b = d->n * (k + 1) / np;
            rc = mtc_comm_recv((char *)s->outs[t] + (size_t)a * row, (size_t)(b - a) * row, k, TAG, e);
        }
    }
    if (rk) return rc; /* rank 0 evaluates */
    if (!rc) rc = mtc_evaluate_outputs(m, d, NULL, 0, s->outs, s->ev, e);
    if (!rc) {
        s->have_ev = 1;
        for (int t = 0; t < m->spec.ntasks; t++) s->metric[t] = mtc_task_eval_primary(&s->ev[t], NULL);
    }
    return rc;
}

/* cls: top-1 agreement and mean KL(softmax(ref) ‖ softmax(cand));
 * bin: agreement of the 0.5 decisions; reg: mean |ref − cand|. */
static void agreement(task_row *r, const float *a, const float *b, int64_t n, int D)
{
    double agree = 0, kl = 0, mad = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *x = a + i * D, *y = b + i * D;
        if (r->kind == MTC_TASK_CLS) {
            int ax = 0, ay = 0;
            float mx = x[0], my = y[0];
            for (int k = 1; k < D; k++) {
                if (x[k] > x[ax]) ax = k;
                if (y[k] > y[ay]) ay = k;
                if (x[k] > mx) mx = x[k];
                if (y[k] > my) my = y[k];
            }
            agree += ax == ay;
            double zx = 0, zy = 0;
            for (int k = 0; k < D; k++) { zx += exp(x[k] - mx); zy += exp(y[k] - my); }
            double lzx = log(zx), lzy = log(zy), s = 0;
            for (int k = 0; k < D; k++) {
                double lp = x[k] - mx - lzx, lq = y[k] - my - lzy;
                s += exp(lp) * (lp - lq);
            }
            kl += s;
        } else if (r->kind == MTC_TASK_BIN) {
            for (int k = 0; k < D; k++) agree += (x[k] >= 0) == (y[k] >= 0);
        } else {
            for (int k = 0; k < D; k++) mad += fabs((double)x[k] - y[k]);
        }
    }
    r->agree = r->kind == MTC_TASK_CLS ? agree / n : r->kind == MTC_TASK_BIN ? agree / ((double)n * D) : NAN;
    r->kl = r->kind == MTC_TASK_CLS ? kl / n : NAN;
    r->mad = r->kind == MTC_TASK_REG ? mad / ((double)n * D) : NAN;
}

/* Appends n bytes to the growing buffer b (the JSON writer's storage, used
 * here for XML text). */
static void append(mtc_jw *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 4096) + n;
        char *p = realloc(b->buf, cap);
        if (!p) { b->oom = 1; return; }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}

static void xml_escape(mtc_jw *b, const char *s)
{
    for (; *s; s++) {
        const char *r = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : *s == '"' ? "&quot;" : NULL;
        if (r) append(b, r, strlen(r));
        else append(b, s, 1);
    }
}

static void xml_add(mtc_jw *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xml_add(mtc_jw *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    append(b, tmp, strlen(tmp)); /* fmt output is already XML */
}

#define MAX_CANDIDATES 16

/* One testcase per task (per candidate:task when there are several). */
static int write_junit(const char *path, const side *cands, task_row (*rows)[MTC_MAX_TASKS], int nc, int T,
                       int relative, mtc_err *e)
{
    mtc_jw b;
    memset(&b, 0, sizeof b);
    int fails = 0;
    for (int k = 0; k < nc; k++)
        for (int t = 0; t < T; t++) fails += !rows[k][t].pass;
    xml_add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"mtc verify\" tests=\"%d\" failures=\"%d\">\n",
            nc * T, fails);
    for (int i = 0; i < nc * T; i++) {
        const task_row *r = &rows[i / T][i % T];
        xml_add(&b, "  <testcase classname=\"mtc.verify\" name=\"");
        if (nc > 1) {
            xml_escape(&b, cands[i / T].path);
            xml_add(&b, ":");
        }
        xml_escape(&b, r->name);
        xml_add(&b, "\">");
        if (!r->pass) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s drop %.4f%s > budget %.4f (reference %.6g, candidate %.6g)", r->metric_name,
                     r->drop, relative ? "%" : "", r->budget, r->ref, r->cand);
            xml_add(&b, "\n    <failure message=\"");
            xml_escape(&b, msg);
            xml_add(&b, "\"/>\n  ");
        }
        xml_add(&b, "</testcase>\n");
    }
    xml_add(&b, "</testsuite>\n");
    int rc = b.oom ? mtc_err_set(e, MTC_ENOMEM, "out of memory") : mtc_write_file_atomic(path, b.buf, b.len, e);
    free(b.buf);
    return rc;
}

/* report: --report-only (no budgets: "budget" and "pass" left out) */
static void json_report(mtc_jw *w, const side *ref, const side *cand, const mtc_dataset *d, const task_row *rows,
                        int T, int relative, int pass, int report)
{
    mtc_jw_obj(w);
    mtc_jw_kstr(w, "reference", ref->path);
    mtc_jw_kstr(w, "candidate", cand->path);
    util_json_data(w, "data", d);
    mtc_jw_kstr(w, "drop_unit", relative ? "percent of reference" : "points");
    mtc_jw_key(w, "tasks");
    mtc_jw_obj(w);
    for (int t = 0; t < T; t++) {
        const task_row *r = &rows[t];
        mtc_jw_key(w, r->name);
        mtc_jw_obj(w);
        mtc_jw_kstr(w, "kind", mtc_task_kind_name(r->kind));
        mtc_jw_kstr(w, "metric", r->metric_name);
        mtc_jw_knum(w, "reference", r->ref);
        mtc_jw_knum(w, "candidate", r->cand);
        mtc_jw_knum(w, "drop", r->drop);
        mtc_jw_kint(w, "labelled", r->labelled);
        if (!isnan(r->ece)) {
            mtc_jw_knum(w, "ece", r->ece);
            mtc_jw_knum(w, "ece_reference", r->ece_ref);
            mtc_jw_knum(w, "ece_budget", r->ece_budget);
        }
        if (!report) {
            mtc_jw_knum(w, "budget", r->budget);
            mtc_jw_key(w, "pass");
            mtc_jw_bool(w, r->pass);
        }
        if (r->kind != MTC_TASK_REG) mtc_jw_knum(w, "top1_agreement", r->agree);
        if (r->kind == MTC_TASK_CLS) mtc_jw_knum(w, "mean_kl", r->kl);
        if (r->kind == MTC_TASK_REG) mtc_jw_knum(w, "mean_abs_diff", r->mad);
        mtc_jw_obj_end(w);
    }
    mtc_jw_obj_end(w);
    int64_t fr = mtc_rt_file_bytes(ref->rt), fc = mtc_rt_file_bytes(cand->rt);
    mtc_jw_kint(w, "reference_file_bytes", fr);
    mtc_jw_kint(w, "candidate_file_bytes", fc);
    mtc_jw_knum(w, "compression_ratio", fc ? (double)fr / fc : 0);
    mtc_jw_kint(w, "reference_weight_bytes", mtc_rt_weight_bytes(ref->rt));
    mtc_jw_kint(w, "candidate_weight_bytes", mtc_rt_weight_bytes(cand->rt));
    mtc_jw_knum(w, "reference_samples_per_s", ref->sps);
    mtc_jw_knum(w, "candidate_samples_per_s", cand->sps);
    if (!report) {
        mtc_jw_key(w, "pass");
        mtc_jw_bool(w, pass);
    }
    mtc_jw_obj_end(w);
}

static void print_detail(const side *ref, const side *cand, const mtc_dataset *d, const char *split,
                         const task_row *rows, int T, int relative, int batch, int threads, int all_pass, int report)
{
    printf("reference %s, candidate %s on %s/%s (%lld samples)\n", ref->path, cand->path, d->name, split,
           (long long)d->n);
    printf("%-12s %-8s %10s %10s %9s %8s %6s %9s %9s %9s\n", "task", "metric", "reference", "candidate",
           relative ? "drop %" : "drop", "budget", "", "agree", "kl|mad", "labelled");
    for (int t = 0; t < T; t++) {
        const task_row *r = &rows[t];
        char a[32], b[32], ag[32] = "-", kd[32];
        int acc = r->kind != MTC_TASK_REG;
        snprintf(a, sizeof a, acc ? "%.2f%%" : "%.4f", acc ? 100 * r->ref : r->ref);
        snprintf(b, sizeof b, acc ? "%.2f%%" : "%.4f", acc ? 100 * r->cand : r->cand);
        if (acc) snprintf(ag, sizeof ag, "%.2f%%", 100 * r->agree);
        snprintf(kd, sizeof kd, "%.4g", r->kind == MTC_TASK_CLS ? r->kl : r->kind == MTC_TASK_REG ? r->mad : 0.0);
        char bud[32] = "-";
        if (!report) snprintf(bud, sizeof bud, "%.3f", r->budget);
        printf("%-12s %-8s %10s %10s %9.3f %8s %6s %9s %9s %9lld\n", r->name, r->metric_name, a, b, r->drop, bud,
               report ? "" : r->pass ? "PASS" : "FAIL", ag, kd, (long long)r->labelled);
    }
    for (int t = 0; t < T; t++)
        if (!isnan(rows[t].ece))
            printf("calibration %-12s ECE reference %.4f, candidate %.4f, budget %.4f %s\n", rows[t].name, rows[t].ece_ref,
                   rows[t].ece, rows[t].ece_budget, rows[t].ece <= rows[t].ece_budget ? "PASS" : "FAIL");
    int64_t fr = mtc_rt_file_bytes(ref->rt), fc = mtc_rt_file_bytes(cand->rt);
    printf("size:  reference %lld bytes, candidate %lld bytes (%.2fx %s); weights %lld -> %lld bytes\n",
           (long long)fr, (long long)fc, fc && fr >= fc ? (double)fr / fc : fr ? (double)fc / fr : 0,
           fr >= fc ? "smaller" : "larger", (long long)mtc_rt_weight_bytes(ref->rt),
           (long long)mtc_rt_weight_bytes(cand->rt));
    printf("speed: reference %.0f samples/s, candidate %.0f samples/s (%.2fx; batch %d, %d thread%s)\n", ref->sps,
           cand->sps, ref->sps > 0 ? cand->sps / ref->sps : 0, batch, threads, threads > 1 ? "s" : "");
    if (!report) printf("%s\n", all_pass ? "PASS: every task within its budget" : "FAIL: a task is over its budget");
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* One row per checkpoint and task: the pipeline table of `make demo`. */
static void print_summary(const side *ref, const side *cands, int nc, const mtc_dataset *d, const char *split,
                          task_row (*rows)[MTC_MAX_TASKS], int T, int relative, int report)
{
    printf("reference %s on %s/%s (%lld samples); drop in %s\n", ref->path, d->name, split, (long long)d->n,
           relative ? "% of the reference" : "points");
    printf("%-22s %-10s %-8s %9s %7s %7s %12s %8s %12s %6s\n", "checkpoint", "task", "metric", "value", "drop",
           "budget", "bytes", "smaller", "samples/s", "");
    int64_t fr = mtc_rt_file_bytes(ref->rt);
    for (int k = -1; k < nc; k++) {
        const side *s = k < 0 ? ref : &cands[k];
        int64_t fb = mtc_rt_file_bytes(s->rt);
        for (int t = 0; t < T; t++) {
            const task_row *r = &rows[k < 0 ? 0 : k][t];
            int acc = r->kind != MTC_TASK_REG;
            double v = k < 0 ? r->ref : r->cand;
            char val[32], drop[32] = "-", bud[32] = "-";
            snprintf(val, sizeof val, acc ? "%.2f%%" : "%.4f", acc ? 100 * v : v);
            if (k >= 0) {
                snprintf(drop, sizeof drop, "%.2f", r->drop);
                if (!report) snprintf(bud, sizeof bud, "%.2f", r->budget);
            }
            printf("%-22.22s %-10.10s %-8.8s %9s %7s %7s %12lld %7.2fx %12.0f %6s\n", t ? "" : base_name(s->path),
                   r->name, r->metric_name, val, drop, bud, (long long)fb, fb ? (double)fr / fb : 0, s->sps,
                   k < 0 ? "ref" : report ? "" : r->pass ? "PASS" : "FAIL");
        }
    }
}

int cmd_verify(int argc, char **argv)
{
    const char *max_ece = NULL;
    const char *refp = NULL, *candp = NULL, *data = NULL, *split = "test", *max_drop = NULL, *rjson = NULL,
               *junit = NULL;
    int relative = 0, batch = 256, report = 0;
    char max_drop_help[96];
    snprintf(max_drop_help, sizeof max_drop_help, "per-task budget TASK=POINTS,... (others: %g point)",
             MTC_MAX_DROP_DEFAULT);
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"reference", OPT_STR, &refp, "reference checkpoint (e.g. the fp32 teacher or parent) (required)", 1, 0},
        {"candidate", OPT_STR, &candp, "candidate checkpoint(s), comma-separated (pruned / int8 / student) (required)", 1, 0},
        {"data", OPT_STR, &data, "data set name (required)", 1, 0},
        {"split", OPT_STR, &split, "train | test (default {default})", 1, 0},
        {"max-drop", OPT_STR, &max_drop, max_drop_help, 1, 0},
        {"max-ece", OPT_STR, &max_ece, "calibration gate TASK=ECE,...: a cls/bin task's expected calibration error (15 bins) must stay at or below it", 1, 0},
        {"relative", OPT_FLAG, &relative, "budgets in % of the reference metric", 1, 0},
        {"report-only", OPT_FLAG, &report, "compare only: no budgets, no PASS/FAIL, exit 0 (2 on bad input)", 1, 0},
        {"report-json", OPT_STR, &rjson, "write the report as JSON to this file", 1, 0},
        {"junit", OPT_STR, &junit, "write a JUnit XML report (one testcase per task)", 1, 0},
        {"batch", OPT_INT, &batch, "inference batch (default {default})", 1, 65536},
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    int npos;
    const char *pos[1];
    int rc = cli_parse("verify", "--reference A.mtc --candidate B.mtc --data NAME [--max-drop task=0.5,...]",
                       "Per-task accuracy retention gate: exit 0 pass, 1 a task over budget, 2 bad input.", opts,
                       argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (!refp || !candp || !data || npos) {
        fprintf(stderr, "mtc verify: need --reference, --candidate and --data (see mtc verify --help)\n");
        return 2;
    }
    if (report && (max_drop || junit || max_ece)) {
        fprintf(stderr, "mtc verify: --report-only checks no budgets: drop --%s\n",
                max_drop ? "max-drop" : max_ece ? "max-ece" : "junit");
        return 2;
    }
    if (strcmp(split, "train") && strcmp(split, "test")) {
        fprintf(stderr, "mtc verify: --split %s: expected train or test\n", split);
        return 2;
    }
    cli_apply_common(&c);
    if (mtc_comm_rank() != 0) c.quiet = 1; /* an MPI job: rank 0 reports */
    mtc_err e = {0};
    side ref = {.path = refp}, cands[MAX_CANDIDATES];
    memset(cands, 0, sizeof cands);
    char *cand_list = strdup(candp);
    int nc = 0;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    static task_row rows[MAX_CANDIDATES][MTC_MAX_TASKS];
    memset(rows, 0, sizeof rows);
    double budget[MTC_MAX_TASKS];
    int given[MTC_MAX_TASKS], T = 0, all_pass = 1;
    if (!cand_list) { rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory"); goto done; }
    for (char *tok = strtok(cand_list, ","); tok; tok = strtok(NULL, ",")) {
        if (nc == MAX_CANDIDATES) {
            rc = mtc_err_set(&e, MTC_EINPUT, "--candidate: at most %d checkpoints", MAX_CANDIDATES);
            goto done;
        }
        cands[nc++].path = tok;
    }
    if (!nc) { rc = mtc_err_set(&e, MTC_EINPUT, "--candidate: no checkpoint given"); goto done; }
    if ((rc = util_rt_load(refp, &ref.rt, &e))) goto done;
    const mtc_model *m = mtc_rt_model(ref.rt);
    T = m->spec.ntasks;
    for (int k = 0; k < nc; k++) {
        if ((rc = util_rt_load(cands[k].path, &cands[k].rt, &e))) goto done;
        if ((rc = same_tasks(m, mtc_rt_model(cands[k].rt), refp, cands[k].path, &e))) goto done;
    }
    if ((rc = mtc_budget_parse(m, max_drop, MTC_MAX_DROP_DEFAULT, budget, given, &e))) goto done;
    double ece_budget[MTC_MAX_TASKS];
    if ((rc = parse_max_ece(m, max_ece, ece_budget, &e))) goto done;
    if (relative)
        for (int t = 0; t < T; t++)
            if (budget[t] > 100) { rc = mtc_err_set(&e, MTC_EINPUT, "--max-drop: relative budgets are in [0, 100]%%"); goto done; }
    if ((rc = util_open_data(m, data, split, &d, &e))) goto done;
    cli_progress(&c, "verify: %lld samples of %s/%s, %d candidate%s", (long long)d.n, d.name, split, nc,
                 nc > 1 ? "s" : "");
    if ((rc = run_side(&ref, &d, c.threads, batch, &e))) goto done;
    if (mtc_comm_rank() != 0) { /* an MPI job: share the candidates' passes, rank 0 judges and reports */
        for (int k = 0; k < nc && !rc; k++) rc = run_side(&cands[k], &d, c.threads, batch, &e);
        goto done;
    }
    /* a reference no better than chance proves nothing */
    for (int t = 0; t < T; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        if (ts->kind == MTC_TASK_CLS && ref.ev[t].cls.accuracy <= 1.0 / ts->dim + 0.02) {
            rc = mtc_err_set(&e, MTC_EINPUT, "%s: reference accuracy %.2f%% on task '%s' is at chance level (%d classes): "
                             "not a usable baseline", refp, 100 * ref.ev[t].cls.accuracy, ts->name, ts->dim);
            goto done;
        }
        if (!ref.ev[t].n) {
            rc = mtc_err_set(&e, MTC_EINPUT, "%s: no sample of the %s split is labelled for task '%s': nothing to "
                             "compare", d.name, split, ts->name);
            goto done;
        }
        if (ts->kind == MTC_TASK_REG && !(ref.ev[t].reg.r2 > 0)) {
            rc = mtc_err_set(&e, MTC_EINPUT, "%s: reference R2 %.3f on task '%s' is no better than the mean: not a "
                             "usable baseline", refp, ref.ev[t].reg.r2, ts->name);
            goto done;
        }
    }
    for (int k = 0; k < nc; k++) {
        if ((rc = run_side(&cands[k], &d, c.threads, batch, &e))) goto done;
        for (int t = 0; t < T; t++) {
            task_row *r = &rows[k][t];
            r->name = m->spec.tasks[t].name;
            r->kind = m->spec.tasks[t].kind;
            mtc_task_eval_primary(&ref.ev[t], &r->metric_name);
            r->ref = ref.metric[t];
            r->cand = cands[k].metric[t];
            r->labelled = ref.ev[t].n;
            r->drop = mtc_metric_drop(r->kind, r->ref, r->cand, relative);
            r->budget = budget[t];
            r->pass = report || r->drop <= r->budget;
            r->ece = r->ece_ref = r->ece_budget = NAN;
            if (!isnan(ece_budget[t])) { /* the calibration gate */
                mtc_reliability cr, cc;
                if ((rc = mtc_task_calibration(m, &d, t, ref.outs[t], 15, &cr, &e)) ||
                    (rc = mtc_task_calibration(m, &d, t, cands[k].outs[t], 15, &cc, &e)))
                    goto done;
                r->ece = cc.ece, r->ece_ref = cr.ece, r->ece_budget = ece_budget[t];
                r->pass &= r->ece <= r->ece_budget;
            }
            all_pass &= r->pass;
            agreement(r, ref.outs[t], cands[k].outs[t], d.n, m->spec.tasks[t].dim);
        }
    }
    mtc_jw w;
    mtc_jw_init(&w);
    if (nc == 1) {
        json_report(&w, &ref, &cands[0], &d, rows[0], T, relative, all_pass, report);
    } else {
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "reference", refp);
        util_json_data(&w, "data", &d);
        mtc_jw_key(&w, "candidates");
        mtc_jw_arr(&w);
        for (int k = 0; k < nc; k++) {
            int ok = 1;
            for (int t = 0; t < T; t++) ok &= rows[k][t].pass;
            json_report(&w, &ref, &cands[k], &d, rows[k], T, relative, ok, report);
        }
        mtc_jw_arr_end(&w);
        if (!report) {
            mtc_jw_key(&w, "pass");
            mtc_jw_bool(&w, all_pass);
        }
        mtc_jw_obj_end(&w);
    }
    if (rjson && !rc) rc = mtc_write_file_atomic(rjson, w.buf, w.len, &e);
    if (junit && !rc) rc = write_junit(junit, cands, rows, nc, T, relative, &e);
    if (!rc && c.json) {
        printf("%s\n", w.buf);
    } else if (!rc && nc == 1) {
        print_detail(&ref, &cands[0], &d, split, rows[0], T, relative, batch, c.threads, all_pass, report);
    } else if (!rc) {
        print_summary(&ref, cands, nc, &d, split, rows, T, relative, report);
        if (!report)
            printf("%s\n", all_pass ? "PASS: every candidate within its budgets" : "FAIL: a task is over its budget");
    }
    mtc_jw_free(&w);
    if (!rc && !all_pass) rc = -1;
done:
    for (int t = 0; t < T; t++) free(ref.outs[t]);
    if (ref.have_ev) mtc_task_eval_free(ref.ev, T);
    mtc_rt_free(ref.rt);
    for (int k = 0; k < nc; k++) {
        for (int t = 0; t < T; t++) free(cands[k].outs[t]);
        if (cands[k].have_ev) mtc_task_eval_free(cands[k].ev, T);
        mtc_rt_free(cands[k].rt);
    }
    free(cand_list);
    mtc_data_free(&d);
    if (rc == -1) return 1;
    return rc ? cli_fail("verify", &e) : 0;
}
