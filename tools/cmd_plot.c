/*
 * cmd_plot.c — `mtc plot`: PNG charts from checkpoint metadata (or, for
 * size-accuracy --data, metrics measured by the runtime), pruning
 * sensitivity reports and datasets. Drawing lives in core/plot.c; this file
 * reads the inputs, builds series and picks the layout.
 *
 *   mtc plot curves model.mtc -o out.png
 *   mtc plot size-accuracy a.mtc b.mtc ... [--data NAME] -o out.png
 *   mtc plot sensitivity report.json -o out.png
 *   mtc plot confusion model.mtc [--task T] -o out.png
 *   mtc plot contact-sheet --data NAME [--n 64] -o out.png
 *
 * Formats are described in docs/plots.md.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PANEL_W 540
#define PANEL_H 400
#define MAX_SERIES 64     /* layers in a sensitivity report, files in size-accuracy */
#define REPORT_MAX ((size_t)64 << 20)

/* ---- shared helpers ------------------------------------------------------------ */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Parses the "meta" section of checkpoint `path` (the tensors are not read). */
static int read_meta(const char *path, mtc_json *meta, mtc_err *e)
{
    memset(meta, 0, sizeof *meta);
    mtc_creader r;
    int rc = mtc_creader_open(&r, path, "MTC1", e);
    if (rc) return rc;
    int i = mtc_creader_find(&r, "meta");
    void *text = NULL;
    uint64_t len = 0;
    if (i < 0) rc = mtc_err_set(e, MTC_EINPUT, "%s: checkpoint has no metadata", path);
    else rc = mtc_creader_read(&r, i, &text, &len, e);
    mtc_creader_close(&r);
    if (!rc && mtc_json_parse(text, (size_t)len, meta, e)) {
        char m[sizeof e->msg];
        snprintf(m, sizeof m, "%s", e->msg);
        rc = mtc_err_set(e, MTC_EINPUT, "%s: metadata: %s", path, m);
    }
    if (!rc && meta->type != MTC_JOBJ) {
        mtc_json_free(meta);
        rc = mtc_err_set(e, MTC_EINPUT, "%s: metadata is not a JSON object", path);
    }
    free(text);
    return rc;
}

/* A number, or NaN for null / anything else. */
static double jnum(const mtc_json *v)
{
    return v && v->type == MTC_JNUM ? v->num : NAN;
}

/* Index of name in names[0..*n), appended when new; -1 when full. */
static int name_index(char (*names)[MTC_NAME_MAX], int *n, int cap, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], name)) return i;
    if (*n >= cap) return -1;
    snprintf(names[*n], MTC_NAME_MAX, "%s", name);
    return (*n)++;
}

/* out.png -> out-<task>.png (or out-<task>.png appended when no .png). */
static void out_with_suffix(const char *out, const char *task, char *buf, size_t n)
{
    size_t l = strlen(out);
    if (l > 4 && !strcmp(out + l - 4, ".png")) snprintf(buf, n, "%.*s-%s.png", (int)(l - 4), out, task);
    else snprintf(buf, n, "%s-%s.png", out, task);
}

static int need_out(const char *cmd, const char *out)
{
    if (out) return 0;
    fprintf(stderr, "mtc %s: need -o out.png (see mtc %s --help)\n", cmd, cmd);
    return 2;
}

/* ---- curves ------------------------------------------------------------------- */

typedef struct curves {
    int ntasks, nep;
    char names[MTC_MAX_TASKS][MTC_NAME_MAX];
    double *epoch;                   /* nep */
    double *loss[MTC_MAX_TASKS];     /* nep each, NaN = missing */
    double *val[MTC_MAX_TASKS];
    char metric[MTC_NAME_MAX];       /* common val metric name, or "metric" */
} curves;

static void curves_free(curves *cv)
{
    free(cv->epoch);
    for (int t = 0; t < MTC_MAX_TASKS; t++) { free(cv->loss[t]); free(cv->val[t]); }
}

static int curves_read(const char *path, const mtc_json *meta, curves *cv, mtc_err *e)
{
    memset(cv, 0, sizeof *cv);
    const mtc_json *h = mtc_json_get(meta, "history");
    if (!h || h->type != MTC_JARR || h->n == 0)
        return mtc_err_set(e, MTC_EINPUT, "%s: no training history in the metadata", path);
    cv->nep = h->n;
    for (int k = 0; k < h->n; k++) { /* task names: union of "loss" keys in order */
        const mtc_json *l = mtc_json_get(&h->items[k], "loss");
        for (int i = 0; l && l->type == MTC_JOBJ && i < l->n; i++)
            name_index(cv->names, &cv->ntasks, MTC_MAX_TASKS, l->keys[i]);
    }
    if (!cv->ntasks) return mtc_err_set(e, MTC_EINPUT, "%s: history has no per-task \"loss\"", path);
    cv->epoch = malloc(sizeof(double) * (size_t)cv->nep);
    for (int t = 0; t < cv->ntasks; t++) {
        cv->loss[t] = malloc(sizeof(double) * (size_t)cv->nep);
        cv->val[t] = malloc(sizeof(double) * (size_t)cv->nep);
        if (!cv->loss[t] || !cv->val[t]) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    }
    if (!cv->epoch) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    cv->metric[0] = 0;
    int mixed = 0;
    for (int k = 0; k < cv->nep; k++) {
        const mtc_json *ep = &h->items[k];
        double x = jnum(mtc_json_get(ep, "epoch"));
        cv->epoch[k] = isfinite(x) ? x : k + 1;
        const mtc_json *l = mtc_json_get(ep, "loss"), *v = mtc_json_get(ep, "val"),
                       *vm = mtc_json_get(ep, "val_metric");
        for (int t = 0; t < cv->ntasks; t++) {
            cv->loss[t][k] = l ? jnum(mtc_json_get(l, cv->names[t])) : NAN;
            cv->val[t][k] = v ? jnum(mtc_json_get(v, cv->names[t])) : NAN;
            const char *name = vm ? mtc_json_str(vm, cv->names[t]) : NULL;
            if (!name || !isfinite(cv->val[t][k])) continue;
            if (!cv->metric[0]) snprintf(cv->metric, sizeof cv->metric, "%s", name);
            else if (strcmp(cv->metric, name)) mixed = 1;
        }
    }
    if (mixed || !cv->metric[0]) snprintf(cv->metric, sizeof cv->metric, "metric");
    return MTC_OK;
}

/* Exit code of a plot subcommand; with --json one object naming the PNG,
 * plus key: raw (a JSON value) when key is set. */
static int plot_done(const char *cmd, const cli_common *cc, const char *out, int rc, const mtc_err *e,
                     const char *key, const char *raw)
{
    if (rc) return cli_fail(cmd, e);
    if (cc->json) {
        mtc_jw w;
        mtc_jw_init(&w);
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "command", cmd);
        mtc_jw_kstr(&w, "png", out);
        if (key && raw) { mtc_jw_key(&w, key); mtc_jw_raw(&w, raw); }
        mtc_jw_obj_end(&w);
        printf("%s\n", w.buf);
        mtc_jw_free(&w);
    }
    return 0;
}

static int plot_curves(int argc, char **argv)
{
    const char *out = NULL, *pos[1];
    cli_common cc;
    cli_common_defaults(&cc);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output PNG (also -o)", 1, 0},
        CLI_COMMON(&cc),
        CLI_END,
    };
    int npos, rc = cli_parse("plot curves", "model.mtc -o out.png",
                             "Training curves from the checkpoint's metadata \"history\": training\n"
                             "loss per task (left) and validation metric per task (right) by epoch.",
                             opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1) {
        fprintf(stderr, "mtc plot curves: give one checkpoint (see mtc plot curves --help)\n");
        return 2;
    }
    if ((rc = need_out("plot curves", out))) return rc;
    mtc_err e = {0};
    mtc_json meta;
    if (read_meta(pos[0], &meta, &e)) return cli_fail("plot curves", &e);
    curves cv;
    rc = curves_read(pos[0], &meta, &cv, &e);
    mtc_json_free(&meta);
    mtc_canvas c = {0};
    if (!rc) rc = mtc_canvas_init(&c, 2 * PANEL_W, PANEL_H, MTC_WHITE, &e);
    if (!rc) {
        mtc_series sl[MTC_MAX_TASKS], sv[MTC_MAX_TASKS];
        for (int t = 0; t < cv.ntasks; t++) {
            sl[t] = (mtc_series){cv.names[t], cv.nep, cv.epoch, cv.loss[t], NULL, NULL};
            sv[t] = (mtc_series){cv.names[t], cv.nep, cv.epoch, cv.val[t], NULL, NULL};
        }
        char vtitle[96];
        snprintf(vtitle, sizeof vtitle, "validation %s", cv.metric);
        mtc_chart cl = {"training loss", "epoch", "loss", 0, 1, 0, 0, cv.nep <= 30};
        mtc_chart cvl = {vtitle, "epoch", cv.metric, 0, 1, 0, 0, cv.nep <= 30};
        rc = mtc_chart_lines(&c, 0, 0, PANEL_W, PANEL_H, &cl, sl, cv.ntasks, &e);
        if (!rc) rc = mtc_chart_lines(&c, PANEL_W, 0, PANEL_W, PANEL_H, &cvl, sv, cv.ntasks, &e);
        if (!rc) rc = mtc_canvas_write_png(&c, out, &e);
    }
    mtc_canvas_free(&c);
    curves_free(&cv);
    return plot_done("plot curves", &cc, out, rc, &e, NULL, NULL);
}

/* ---- size-accuracy ------------------------------------------------------------ */

/* A task's headline test metric: a number, or an object's accuracy (cls,
 * bin) or r2 (reg). NaN when there is none. */
static double task_metric(const mtc_json *v, const char **name)
{
    if (!v) return NAN;
    if (v->type == MTC_JNUM) { *name = "metric"; return v->num; }
    if (v->type != MTC_JOBJ) return NAN;
    static const char *keys[] = {"accuracy", "r2"};
    for (int i = 0; i < 2; i++) {
        double x = jnum(mtc_json_get(v, keys[i]));
        if (isfinite(x)) { *name = keys[i]; return x; }
    }
    return NAN;
}

/* One checkpoint of the chart: its size on disk, its test metric per task. */
typedef struct sa_point {
    const char *path;
    double bytes;
    int64_t params;                         /* the model's parameters (0: not measured) */
    int teacher;                            /* another plotted checkpoint was distilled from it */
    int ntasks;
    char task[MTC_MAX_TASKS][MTC_NAME_MAX];
    double value[MTC_MAX_TASKS];
    const char *metric[MTC_MAX_TASKS];      /* "accuracy", "r2" or "metric" (static) */
    char label[256];                        /* file name, " (teacher)" appended */
} sa_point;

/* The first value given for a task wins. */
static void sa_add(sa_point *p, const char *task, double v, const char *metric)
{
    for (int i = 0; i < p->ntasks; i++)
        if (!strcmp(p->task[i], task)) return;
    if (p->ntasks >= MTC_MAX_TASKS || !isfinite(v)) return;
    snprintf(p->task[p->ntasks], MTC_NAME_MAX, "%s", task);
    p->value[p->ntasks] = v;
    p->metric[p->ntasks++] = metric;
}

/* Metrics stored in the metadata: "metrics" (mtc prune) before "test". */
static void sa_from_meta(const mtc_json *meta, sa_point *p)
{
    const mtc_json *src[2] = {mtc_json_get(meta, "metrics"), mtc_json_get(meta, "test")};
    for (int s = 0; s < 2; s++) {
        if (!src[s] || src[s]->type != MTC_JOBJ) continue;
        for (int i = 0; i < src[s]->n; i++) {
            const char *mname = NULL;
            double y = task_metric(&src[s]->items[i], &mname);
            sa_add(p, src[s]->keys[i], y, mname);
        }
    }
}

/* Metrics measured as `mtc eval` does: the reference runtime (fp32, sparse
 * or int8) on data's test split; accuracy for cls/bin, r2 for reg. */
static int sa_measure(const char *path, const char *data, int threads, sa_point *p, mtc_err *e)
{
    mtc_rt *rt;
    int rc = mtc_rt_load(path, &rt, e);
    if (rc) return rc;
    mtc_rt_set_threads(rt, threads);
    const mtc_model *m = mtc_rt_model(rt);
    p->params = m->nparams;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    float *outs[MTC_MAX_TASKS] = {0};
    mtc_task_eval ev[MTC_MAX_TASKS];
    rc = util_open_data(m, data, "test", &d, e);
    if (!rc) rc = mtc_rt_predict(rt, &d, NULL, 0, 256, outs, e);
    if (!rc) rc = mtc_evaluate_outputs(m, &d, NULL, 0, outs, ev, e);
    if (!rc) {
        for (int t = 0; t < m->spec.ntasks; t++) {
            int reg = ev[t].kind == MTC_TASK_REG;
            sa_add(p, m->spec.tasks[t].name, reg ? ev[t].reg.r2 : mtc_task_eval_primary(&ev[t], NULL),
                   reg ? "r2" : "accuracy");
        }
        mtc_task_eval_free(ev, m->spec.ntasks);
    }
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(outs[t]);
    mtc_data_free(&d);
    mtc_rt_free(rt);
    return rc;
}

#define SA_MAX_TEACHERS 256

/* Appends the hashes in meta's "teachers" (written by mtc distill). */
static void sa_teacher_hashes(const mtc_json *meta, char (*hashes)[17], int *n)
{
    const mtc_json *ts = mtc_json_get(meta, "teachers");
    for (int i = 0; ts && ts->type == MTC_JARR && i < ts->n && *n < SA_MAX_TEACHERS; i++) {
        const char *h = mtc_json_str(&ts->items[i], "hash");
        if (h && strlen(h) == 16) snprintf(hashes[(*n)++], 17, "%s", h);
    }
}

/* Reads checkpoint path: its size, its metrics (measured when data is set,
 * else from the metadata) and the teachers it was distilled from. */
static int sa_read(const char *path, const char *data, int threads, sa_point *p, char (*hashes)[17], int *nh,
                   mtc_err *e)
{
    memset(p, 0, sizeof *p);
    p->path = path;
    mtc_json meta;
    int rc = read_meta(path, &meta, e);
    if (rc) return rc;
    struct stat st;
    if (stat(path, &st)) rc = mtc_err_set(e, MTC_EINPUT, "%s: cannot stat", path); /* read_meta opened it */
    else p->bytes = (double)st.st_size;
    sa_teacher_hashes(&meta, hashes, nh);
    if (!rc && data) rc = sa_measure(path, data, threads, p, e);
    else if (!rc) sa_from_meta(&meta, p);
    mtc_json_free(&meta);
    return rc;
}

/* Marks the points another point was distilled from; labels every point. */
static void sa_mark_teachers(sa_point *pts, int n, char (*hashes)[17], int nh)
{
    for (int f = 0; f < n; f++) {
        char h[17] = "";
        if (nh) util_file_hash(pts[f].path, h);
        for (int k = 0; k < nh && h[0] && !pts[f].teacher; k++) pts[f].teacher = !strcmp(h, hashes[k]);
        snprintf(pts[f].label, sizeof pts[f].label, "%s%s", base_name(pts[f].path),
                 pts[f].teacher ? " (teacher)" : "");
    }
}

/* --json: the points as plotted. */
static char *sa_json(const sa_point *pts, int n, int measured)
{
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_arr(&w);
    for (int f = 0; f < n; f++) {
        const sa_point *p = &pts[f];
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "file", p->path);
        mtc_jw_kint(&w, "bytes", (int64_t)p->bytes);
        if (p->params) mtc_jw_kint(&w, "params", p->params);
        mtc_jw_key(&w, "teacher");
        mtc_jw_bool(&w, p->teacher);
        mtc_jw_kstr(&w, "source", measured ? "runtime" : "metadata");
        mtc_jw_key(&w, "tasks");
        mtc_jw_obj(&w);
        for (int i = 0; i < p->ntasks; i++) mtc_jw_knum(&w, p->task[i], p->value[i]);
        mtc_jw_obj_end(&w);
        mtc_jw_obj_end(&w);
    }
    mtc_jw_arr_end(&w);
    if (w.oom) { mtc_jw_free(&w); return NULL; }
    return w.buf;
}

/* One series per task: x = size, y = metric, labelled, the teacher ringed. */
static int sa_draw(const sa_point *pts, int n, const char *out, mtc_err *e)
{
    char names[MTC_MAX_TASKS][MTC_NAME_MAX];
    int ntasks = 0, npts[MTC_MAX_TASKS] = {0}, mixed = 0;
    double xs[MTC_MAX_TASKS][MAX_SERIES], ys[MTC_MAX_TASKS][MAX_SERIES];
    const char *labels[MTC_MAX_TASKS][MAX_SERIES];
    unsigned char ring[MTC_MAX_TASKS][MAX_SERIES];
    const char *metric = NULL;
    for (int f = 0; f < n; f++)
        for (int i = 0; i < pts[f].ntasks; i++) {
            int t = name_index(names, &ntasks, MTC_MAX_TASKS, pts[f].task[i]);
            if (t < 0) continue;
            if (metric && strcmp(metric, pts[f].metric[i])) mixed = 1;
            metric = pts[f].metric[i];
            xs[t][npts[t]] = pts[f].bytes;
            ys[t][npts[t]] = pts[f].value[i];
            labels[t][npts[t]] = pts[f].label;
            ring[t][npts[t]++] = (unsigned char)pts[f].teacher;
        }
    mtc_canvas c = {0};
    int rc = mtc_canvas_init(&c, 760, 480, MTC_WHITE, e);
    if (!rc) {
        mtc_series s[MTC_MAX_TASKS];
        for (int t = 0; t < ntasks; t++) s[t] = (mtc_series){names[t], npts[t], xs[t], ys[t], labels[t], ring[t]};
        char ylabel[64];
        snprintf(ylabel, sizeof ylabel, "test %s", mixed ? "metric (accuracy; r2 for reg)" : metric);
        mtc_chart ch = {"size vs test metric", "file size (bytes)", ylabel, 1, 0, 0, 0, 0};
        rc = mtc_chart_scatter(&c, 0, 0, c.w, c.h, &ch, s, ntasks, e);
        if (!rc) rc = mtc_canvas_write_png(&c, out, e);
    }
    mtc_canvas_free(&c);
    return rc;
}

static int plot_size_accuracy(int argc, char **argv)
{
    const char *out = NULL, *data = NULL, *pos[MAX_SERIES];
    cli_common cc;
    cli_common_defaults(&cc);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output PNG (also -o)", 1, 0},
        {"data", OPT_STR, &data, "measure every checkpoint on this data set's test split (int8 needs it)", 1, 0},
        CLI_COMMON(&cc),
        CLI_END,
    };
    int npos, rc = cli_parse("plot size-accuracy", "a.mtc b.mtc ... [--data NAME] -o out.png",
                             "File size (bytes, log x) against each task's test metric: accuracy for\n"
                             "cls/bin tasks, r2 for regression. With --data every checkpoint is measured\n"
                             "through the reference runtime on NAME's test split, as mtc eval does\n"
                             "(fp32, pruned and int8 alike); without it the metric is read from the\n"
                             "metadata (\"metrics\" key if present, else \"test\"), which int8\n"
                             "checkpoints do not carry: they are skipped with a note. One colour per\n"
                             "task, points labelled with the file name; a checkpoint another one was\n"
                             "distilled from (its hash is in that one's \"teachers\") is ringed and\n"
                             "labelled \"(teacher)\". --json lists the points. Up to 64 checkpoints.",
                             opts, argc, argv, pos, MAX_SERIES, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos < 1) {
        fprintf(stderr, "mtc plot size-accuracy: give at least one checkpoint\n");
        return 2;
    }
    if ((rc = need_out("plot size-accuracy", out))) return rc;
    cli_apply_common(&cc);
    mtc_err e = {0};
    sa_point *pts = calloc((size_t)npos, sizeof *pts);
    char(*hashes)[17] = calloc(SA_MAX_TEACHERS, 17);
    int n = 0, nh = 0, skipped[MAX_SERIES], nskipped = 0;
    if (!pts || !hashes) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
    for (int f = 0; f < npos && !rc; f++) {
        if (data) cli_progress(&cc, "plot size-accuracy: measuring %s on %s/test", pos[f], data);
        if ((rc = sa_read(pos[f], data, cc.threads, &pts[n], hashes, &nh, &e))) break;
        if (pts[n].ntasks) n++;
        else skipped[nskipped++] = f;
    }
    if (!rc && !n)
        rc = mtc_err_set(&e, MTC_EINPUT, "no test metrics in any of the %d checkpoint(s)%s", npos,
                         data ? "" : " (give --data NAME to measure them)");
    for (int i = 0; !rc && !cc.quiet && i < nskipped; i++) /* an error stays one line */
        fprintf(stderr, "mtc plot size-accuracy: %s: %s, skipped\n", pos[skipped[i]],
                data ? "no finite test metric"
                     : "no test metrics in the metadata (int8 checkpoints carry none: give --data NAME)");
    if (!rc) sa_mark_teachers(pts, n, hashes, nh);
    if (!rc) rc = sa_draw(pts, n, out, &e);
    char *json = !rc && cc.json ? sa_json(pts, n, data != NULL) : NULL;
    if (!rc && cc.json && !json) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
    free(pts);
    free(hashes);
    rc = plot_done("plot size-accuracy", &cc, out, rc, &e, "points", json);
    free(json);
    return rc;
}

/* ---- sensitivity -------------------------------------------------------------- */

typedef struct sens {
    int ngrid, nlayers, ntasks;
    double *x;                            /* ngrid+1: 0 (unpruned), then grid */
    char names[MTC_MAX_TASKS][MTC_NAME_MAX];
    const char *layer[MAX_SERIES];        /* into the parsed JSON */
    double *v[MTC_MAX_TASKS][MAX_SERIES]; /* ngrid+1 each ([0] = "base"), NULL = layer lacks the task */
} sens;

static void sens_free(sens *s)
{
    free(s->x);
    for (int t = 0; t < MTC_MAX_TASKS; t++)
        for (int l = 0; l < MAX_SERIES; l++) free(s->v[t][l]);
}

static int sens_read(const char *path, const mtc_json *j, sens *s, mtc_err *e)
{
    memset(s, 0, sizeof *s);
    const mtc_json *g = mtc_json_get(j, "grid"), *ls = mtc_json_get(j, "layers");
    if (j->type != MTC_JOBJ || !g || g->type != MTC_JARR || g->n < 1)
        return mtc_err_set(e, MTC_EINPUT, "%s: expected a \"grid\" array of numbers", path);
    if (!ls || ls->type != MTC_JARR || ls->n < 1)
        return mtc_err_set(e, MTC_EINPUT, "%s: expected a non-empty \"layers\" array", path);
    if (ls->n > MAX_SERIES)
        return mtc_err_set(e, MTC_EINPUT, "%s: %d layers; at most %d can be plotted", path, ls->n, MAX_SERIES);
    s->ngrid = g->n;
    if (!(s->x = malloc(sizeof(double) * (size_t)(g->n + 1)))) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    s->x[0] = 0;
    for (int i = 0; i < g->n; i++)
        if (!isfinite(s->x[i + 1] = jnum(&g->items[i])))
            return mtc_err_set(e, MTC_EINPUT, "%s: grid[%d] is not a number", path, i);
    const mtc_json *base = mtc_json_get(j, "base");
    s->nlayers = ls->n;
    for (int l = 0; l < ls->n; l++) {
        const mtc_json *L = &ls->items[l], *tk = mtc_json_get(L, "tasks");
        s->layer[l] = mtc_json_str(L, "name");
        if (!s->layer[l] || !tk || tk->type != MTC_JOBJ)
            return mtc_err_set(e, MTC_EINPUT, "%s: layers[%d] needs \"name\" and a \"tasks\" object", path, l);
        for (int i = 0; i < tk->n; i++) {
            const mtc_json *a = &tk->items[i];
            if (a->type != MTC_JARR || a->n != s->ngrid)
                return mtc_err_set(e, MTC_EINPUT, "%s: layer %s task %s: expected %d values (one per grid point)",
                                   path, s->layer[l], tk->keys[i], s->ngrid);
            int t = name_index(s->names, &s->ntasks, MTC_MAX_TASKS, tk->keys[i]);
            if (t < 0) return mtc_err_set(e, MTC_EINPUT, "%s: more than %d tasks", path, MTC_MAX_TASKS);
            if (s->v[t][l]) continue; /* duplicate key: first one wins */
            if (!(s->v[t][l] = malloc(sizeof(double) * (size_t)(s->ngrid + 1))))
                return mtc_err_set(e, MTC_ENOMEM, "out of memory");
            s->v[t][l][0] = base ? jnum(mtc_json_get(base, tk->keys[i])) : NAN;
            for (int k = 0; k < s->ngrid; k++) s->v[t][l][k + 1] = jnum(&a->items[k]);
        }
    }
    if (!s->ntasks) return mtc_err_set(e, MTC_EINPUT, "%s: no layer has any task values", path);
    return MTC_OK;
}

static int plot_sensitivity(int argc, char **argv)
{
    const char *out = NULL, *pos[1];
    cli_common cc;
    cli_common_defaults(&cc);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output PNG (also -o)", 1, 0},
        CLI_COMMON(&cc),
        CLI_END,
    };
    int npos, rc = cli_parse("plot sensitivity", "report.json -o out.png",
                             "Per-task pruning sensitivity: one panel per task, one line per layer,\n"
                             "metric against the pruned fraction of that layer. The report format\n"
                             "({\"grid\":[..],\"layers\":[{\"name\":..,\"tasks\":{..}}]}) is in docs/plots.md.",
                             opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1) {
        fprintf(stderr, "mtc plot sensitivity: give one report.json (see mtc plot sensitivity --help)\n");
        return 2;
    }
    if ((rc = need_out("plot sensitivity", out))) return rc;
    mtc_err e = {0};
    char *text = NULL;
    size_t len = 0;
    if (mtc_read_file(pos[0], &text, &len, REPORT_MAX, &e)) return cli_fail("plot sensitivity", &e);
    mtc_json j;
    rc = mtc_json_parse(text, len, &j, &e);
    free(text);
    if (rc) {
        char m[sizeof e.msg];
        snprintf(m, sizeof m, "%s", e.msg);
        mtc_err_set(&e, MTC_EINPUT, "%s: %s", pos[0], m);
        return cli_fail("plot sensitivity", &e);
    }
    sens s;
    rc = sens_read(pos[0], &j, &s, &e);
    /* "metric": one name, or {task: name} as `mtc prune --sensitivity` writes */
    const mtc_json *metric = mtc_json_get(&j, "metric");
    mtc_canvas c = {0};
    int cols = s.ntasks < 2 ? s.ntasks : 2, rows = (s.ntasks + 1) / 2;
    if (!rc) rc = mtc_canvas_init(&c, cols * PANEL_W, rows * PANEL_H, MTC_WHITE, &e);
    for (int t = 0; !rc && t < s.ntasks; t++) {
        mtc_series ser[MAX_SERIES];
        int n = 0;
        for (int l = 0; l < s.nlayers; l++) {
            /* lines start at the unpruned metric ("base") when the grid lacks 0 */
            const double *v = s.v[t][l];
            int from0 = v && isfinite(v[0]) && s.x[1] > 0;
            ser[n++] = (mtc_series){s.layer[l], v ? s.ngrid + from0 : 0, s.x + !from0, v ? v + !from0 : NULL,
                                    NULL, NULL};
        }
        const char *yl = metric && metric->type == MTC_JSTR ? metric->str : metric ? mtc_json_str(metric, s.names[t]) : NULL;
        char title[96];
        snprintf(title, sizeof title, "sensitivity: %s", s.names[t]);
        mtc_chart ch = {title, "pruned fraction of the layer", yl ? yl : "metric", 0, 0, 0, 0,
                        s.ngrid <= 30};
        rc = mtc_chart_lines(&c, (t % 2) * PANEL_W, (t / 2) * PANEL_H, PANEL_W, PANEL_H, &ch, ser, n, &e);
    }
    if (!rc) rc = mtc_canvas_write_png(&c, out, &e);
    mtc_canvas_free(&c);
    sens_free(&s);
    mtc_json_free(&j);
    return plot_done("plot sensitivity", &cc, out, rc, &e, NULL, NULL);
}

/* ---- confusion ---------------------------------------------------------------- */

/* Reads a KxK "confusion" array into a malloc'd row-major double matrix. */
static int confusion_read(const char *path, const char *task, const mtc_json *obj, double **m, int *K,
                          mtc_err *e)
{
    const mtc_json *cf = mtc_json_get(obj, "confusion");
    *m = NULL;
    if (!cf || cf->type != MTC_JARR || cf->n < 1 || cf->n > 256)
        return mtc_err_set(e, MTC_EINPUT, "%s: task %s has no confusion matrix (1..256 classes)", path, task);
    *K = cf->n;
    if (!(*m = malloc(sizeof(double) * (size_t)*K * *K))) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    for (int i = 0; i < *K; i++) {
        const mtc_json *row = &cf->items[i];
        if (row->type != MTC_JARR || row->n != *K) {
            free(*m);
            *m = NULL;
            return mtc_err_set(e, MTC_EINPUT, "%s: task %s: confusion row %d is not %d numbers", path, task, i, *K);
        }
        for (int k = 0; k < *K; k++) (*m)[i * *K + k] = jnum(&row->items[k]);
    }
    return MTC_OK;
}

static int confusion_png(const char *path, const char *task, const mtc_json *obj, const char *out,
                         mtc_err *e)
{
    double *m;
    int K = 0;
    int rc = confusion_read(path, task, obj, &m, &K, e);
    if (rc) return rc;
    char title[160];
    double acc = jnum(mtc_json_get(obj, "accuracy"));
    if (isfinite(acc)) snprintf(title, sizeof title, "%s confusion (accuracy %.3f)", task, acc);
    else snprintf(title, sizeof title, "%s confusion", task);
    mtc_heatmap hm = {title, "predicted class", "true class", K, K, m, NULL, NULL, 1, 1};
    int w, h;
    mtc_heatmap_size(&hm, &w, &h);
    mtc_canvas c;
    rc = mtc_canvas_init(&c, w, h, MTC_WHITE, e);
    if (!rc) rc = mtc_chart_heatmap(&c, 0, 0, &hm, e);
    if (!rc) rc = mtc_canvas_write_png(&c, out, e);
    mtc_canvas_free(&c);
    free(m);
    return rc;
}

static int plot_confusion(int argc, char **argv)
{
    const char *out = NULL, *task = NULL, *pos[1];
    cli_common cc;
    cli_common_defaults(&cc);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output PNG (also -o); several tasks: OUT-<task>.png", 1, 0},
        {"task", OPT_STR, &task, "only this task (default: every cls task)", 1, 0},
        CLI_COMMON(&cc),
        CLI_END,
    };
    int npos, rc = cli_parse("plot confusion", "model.mtc [--task T] -o out.png",
                             "Confusion matrix heatmap (counts; colour = fraction of the true class)\n"
                             "from the checkpoint metadata's \"test\" metrics, one PNG per cls task.",
                             opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1) {
        fprintf(stderr, "mtc plot confusion: give one checkpoint (see mtc plot confusion --help)\n");
        return 2;
    }
    if ((rc = need_out("plot confusion", out))) return rc;
    mtc_err e = {0};
    mtc_json meta;
    if (read_meta(pos[0], &meta, &e)) return cli_fail("plot confusion", &e);
    const mtc_json *test = mtc_json_get(&meta, "test");
    int idx[MTC_MAX_TASKS * 4], n = 0;
    if (!test || test->type != MTC_JOBJ) {
        rc = mtc_err_set(&e, MTC_EINPUT, "%s: no \"test\" metrics in the metadata", pos[0]);
    } else {
        for (int i = 0; i < test->n && n < (int)(sizeof idx / sizeof idx[0]); i++) {
            const char *kind = mtc_json_str(&test->items[i], "kind");
            int cls = kind && !strcmp(kind, "cls");
            if (task ? !strcmp(test->keys[i], task) : cls) idx[n++] = i;
        }
        if (task && !n)
            rc = mtc_err_set(&e, MTC_EINPUT, "%s: --task %s: no such task in the test metrics", pos[0], task);
        else if (!n)
            rc = mtc_err_set(&e, MTC_EINPUT, "%s: no classification task in the test metrics", pos[0]);
    }
    for (int k = 0; !rc && k < n; k++) {
        char path[4200];
        const char *name = test->keys[idx[k]];
        if (n == 1) snprintf(path, sizeof path, "%s", out);
        else out_with_suffix(out, name, path, sizeof path);
        rc = confusion_png(pos[0], name, &test->items[idx[k]], path, &e);
        if (!rc && n > 1) printf("wrote %s\n", path);
    }
    mtc_json_free(&meta);
    return plot_done("plot confusion", &cc, out, rc, &e, NULL, NULL);
}

/* ---- contact sheet ------------------------------------------------------------ */

#define SHEET_GAP 6

/* "task=label" for sample i, cut to fit max_chars. */
static void sample_label(const mtc_data_task *t, int64_t i, char *buf, size_t n, int max_chars)
{
    if (t->kind == MTC_TASK_CLS) {
        int32_t y = t->labels[i];
        if (y >= 0 && y < t->nclass_names) snprintf(buf, n, "%s=%s", t->name, t->class_names[y]);
        else snprintf(buf, n, "%s=%d", t->name, y);
    } else {
        snprintf(buf, n, "%s=%.3g", t->name, t->targets[i * t->dim]);
    }
    if (max_chars >= 0 && (size_t)max_chars < n) buf[max_chars] = 0;
}

/* Sample i's pixel (x, y) as a colour: gray, or RGB from the first three
 * channel planes. */
static uint32_t sample_pixel(const mtc_dataset *d, int64_t i, int x, int y)
{
    const uint8_t *p = d->x_u8 + i * mtc_data_sample_size(d);
    size_t plane = (size_t)d->h * d->w, o = (size_t)y * d->w + x;
    if (d->c >= 3) return (uint32_t)p[o] << 16 | (uint32_t)p[plane + o] << 8 | p[2 * plane + o];
    return (uint32_t)p[o] * 0x010101u;
}

static int contact_sheet(const mtc_dataset *d, int n, const char *out, mtc_err *e)
{
    if (!d->x_u8)
        return mtc_err_set(e, MTC_EINPUT, "%s: not an image dataset (no pixels to show)", d->name);
    int scale = 3;
    if (d->w * 3 > 256 || d->h * 3 > 256) scale = d->w > 256 || d->h > 256 ? 0 : 1;
    if (!scale) return mtc_err_set(e, MTC_EINPUT, "%s: %dx%d images are too large for a contact sheet",
                                   d->name, d->h, d->w);
    int cols = (int)ceil(sqrt((double)n)), rows = (n + cols - 1) / cols;
    int tw = d->w * scale, th = d->h * scale + d->ntasks * (MTC_FONT_H + 2) + 2;
    if (tw < 7 * MTC_FONT_W) tw = 7 * MTC_FONT_W; /* room for short labels */
    int top = 2 * MTC_FONT_H + 16;
    char title[320];
    snprintf(title, sizeof title, "%s (%s): first %d samples", d->name, d->split, n);
    int W = cols * (tw + SHEET_GAP) + SHEET_GAP, H = top + rows * (th + SHEET_GAP) + SHEET_GAP;
    if (mtc_text_width(title, 2) + 2 * SHEET_GAP > W) W = mtc_text_width(title, 2) + 2 * SHEET_GAP;
    mtc_canvas c;
    int rc = mtc_canvas_init(&c, W, H, MTC_WHITE, e);
    if (rc) return rc;
    mtc_draw_text(&c, SHEET_GAP, 8, title, 2, 0x202020u);
    for (int i = 0; i < n; i++) {
        int x0 = SHEET_GAP + (i % cols) * (tw + SHEET_GAP), y0 = top + (i / cols) * (th + SHEET_GAP);
        int ix = x0 + (tw - d->w * scale) / 2;
        for (int y = 0; y < d->h; y++)
            for (int x = 0; x < d->w; x++)
                mtc_draw_rect(&c, ix + x * scale, y0 + y * scale, scale, scale, sample_pixel(d, i, x, y));
        for (int t = 0; t < d->ntasks; t++) {
            char lab[96];
            sample_label(&d->tasks[t], i, lab, sizeof lab, tw / MTC_FONT_W);
            mtc_draw_text(&c, x0, y0 + d->h * scale + 3 + t * (MTC_FONT_H + 2), lab, 1, mtc_palette(t));
        }
    }
    rc = mtc_canvas_write_png(&c, out, e);
    mtc_canvas_free(&c);
    return rc;
}

static int plot_contact_sheet(int argc, char **argv)
{
    const char *out = NULL, *data = NULL, *split = "train", *pos[1];
    int n = 64;
    cli_common cc;
    cli_common_defaults(&cc);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output PNG (also -o)", 1, 0},
        {"data", OPT_STR, &data, "image data set name (required)", 1, 0},
        {"split", OPT_STR, &split, "train | test (default {default})", 1, 0},
        {"n", OPT_INT, &n, "samples to show (default {default})", 1, 1024},
        CLI_COMMON(&cc),
        CLI_END,
    };
    int npos, rc = cli_parse("plot contact-sheet", "--data NAME [--n 64] [--split train] -o out.png",
                             "A grid of the first N samples of an image data set (upscaled 3x), with\n"
                             "each task's label under each tile.",
                             opts, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (!data) {
        fprintf(stderr, "mtc plot contact-sheet: need --data NAME (see mtc plot contact-sheet --help)\n");
        return 2;
    }
    if ((rc = need_out("plot contact-sheet", out))) return rc;
    mtc_err e = {0};
    mtc_dataset d;
    if (mtc_data_open(data, split, NULL, &d, &e)) return cli_fail("plot contact-sheet", &e);
    if (d.n < 1) rc = mtc_err_set(&e, MTC_EINPUT, "%s: the %s split is empty", data, split);
    if (!rc) rc = contact_sheet(&d, d.n < n ? (int)d.n : n, out, &e);
    mtc_data_free(&d);
    return plot_done("plot contact-sheet", &cc, out, rc, &e, NULL, NULL);
}

/* ---- dispatch ----------------------------------------------------------------- */

/* ---- pipeline diagram ------------------------------------------------------ */

static void box(mtc_canvas *c, int x, int y, int w, int h, uint32_t fill, const char *l1, const char *l2)
{
    mtc_draw_rect(c, x, y, w, h, fill);
    mtc_draw_rect_outline(c, x, y, w, h, 0x404040u);
    int s = 2;
    mtc_draw_text(c, x + (w - mtc_text_width(l1, s)) / 2, y + h / 2 - (l2 ? 18 : 8), l1, s, MTC_BLACK);
    if (l2) mtc_draw_text(c, x + (w - mtc_text_width(l2, 1)) / 2, y + h / 2 + 6, l2, 1, 0x303030u);
}

static void arrow(mtc_canvas *c, int x0, int y0, int x1, int y1)
{
    mtc_draw_line(c, x0, y0, x1, y1, 2, 0x404040u);
    /* head: a small filled triangle pointing along the (axis-aligned) line */
    int dx = (x1 > x0) - (x1 < x0), dy = (y1 > y0) - (y1 < y0);
    for (int k = 0; k < 10; k++) /* k px back from the tip, k/2 px to each side */
        mtc_draw_line(c, x1 - dx * k - dy * (k / 2), y1 - dy * k - dx * (k / 2), x1 - dx * k + dy * (k / 2),
                      y1 - dy * k + dx * (k / 2), 1, 0x404040u);
}

/* The data flow of the toolkit, for the README. */
static int plot_pipeline(int argc, char **argv)
{
    const char *out = NULL, *pos[1];
    cli_common cc;
    cli_common_defaults(&cc);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output PNG (also -o)", 1, 0},
        CLI_COMMON(&cc),
        CLI_END,
    };
    int npos, rc = cli_parse("plot pipeline", "-o out.png", "Draws mtc's pipeline: the stages and the files between them.",
                             opts, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = need_out("plot pipeline", out))) return rc;
    mtc_err e = {0};
    mtc_canvas c = {0};
    const int W = 1180, H = 330, bw = 150, bh = 74, gap = 42, y = 60;
    rc = mtc_canvas_init(&c, W, H, MTC_WHITE, &e);
    if (!rc) {
        mtc_draw_text(&c, 20, 16, "mtc: distill a multi-task teacher, compress the student, verify every task", 2,
                      MTC_BLACK);
        const char *t1[] = {"train", "label", "distill", "prune", "quantize", "verify"};
        const char *t2[] = {"teacher.mtc", "soft.mtl", "student.mtc", "pruned.mtc", "student.q8.mtc",
                            "exit 0/1/2, JSON, JUnit"};
        const uint32_t fill[] = {0xdbe9f6u, 0xe5f5e0u, 0xe5f5e0u, 0xfdeadau, 0xfdeadau, 0xf2e6f7u};
        for (int i = 0; i < 6; i++) {
            int x = 20 + i * (bw + gap);
            box(&c, x, y, bw, bh, fill[i], t1[i], t2[i]);
            if (i) arrow(&c, x - gap + 2, y + bh / 2, x - 2, y + bh / 2);
        }
        /* data feeding train, label and distill; runtime under verify */
        int dy = y + bh + 70;
        box(&c, 20, dy, 3 * bw + 2 * gap, bh, 0xf0f0f0u, "data set", "fashion-mnist, multifashion, csv:, png:");
        for (int i = 0; i < 3; i++) {
            int x = 20 + i * (bw + gap) + bw / 2;
            arrow(&c, x, dy, x, y + bh + 2);
        }
        int rx = 20 + 4 * (bw + gap);
        box(&c, rx, dy, 2 * bw + gap, bh, 0xf0f0f0u, "reference runtime", "fp32 / int8 (scalar, AVX2, AVX-512 VNNI)");
        arrow(&c, rx + bw + gap + bw / 2, dy, rx + bw + gap + bw / 2, y + bh + 2);
        mtc_draw_text(&c, 20, H - 24,
                      "per-task heads (cls / bin / reg), hard sharing or MMoE; task weighting fixed, uncertainty, "
                      "GradNorm, DWA",
                      1, 0x404040u);
        rc = mtc_canvas_write_png(&c, out, &e);
    }
    mtc_canvas_free(&c);
    return plot_done("plot pipeline", &cc, out, rc, &e, NULL, NULL);
}

/* ---- task conflict ------------------------------------------------------------ */

static int plot_conflict(int argc, char **argv)
{
    const char *out = NULL, *pos[1];
    cli_common cc;
    cli_common_defaults(&cc);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output PNG (also -o)", 1, 0},
        CLI_COMMON(&cc),
        CLI_END,
    };
    int npos, rc = cli_parse("plot conflict", "model.mtc -o out.png",
                             "Task conflict from the checkpoint's training history: the mean cosine between each pair\n"
                             "of tasks' gradients on the shared parameters per epoch (left; below 0 the tasks pull the\n"
                             "trunk apart) and the task weights on the same epochs (right: GradNorm, uncertainty, DWA).",
                             opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1) {
        fprintf(stderr, "mtc plot conflict: give one checkpoint (see mtc plot conflict --help)\n");
        return 2;
    }
    if ((rc = need_out("plot conflict", out))) return rc;
    mtc_err e = {0};
    mtc_json meta;
    if (read_meta(pos[0], &meta, &e)) return cli_fail("plot conflict", &e);
    curves cv;
    rc = curves_read(pos[0], &meta, &cv, &e);
    enum { MAXP = MTC_MAX_TASKS * (MTC_MAX_TASKS - 1) / 2 };
    char (*pairs)[MTC_NAME_MAX] = calloc(MAXP, MTC_NAME_MAX);
    double *cs[MAXP] = {0}, *wt[MTC_MAX_TASKS] = {0};
    int np = 0;
    const mtc_json *h = mtc_json_get(&meta, "history");
    if (!rc && !pairs) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
    for (int k = 0; !rc && k < cv.nep; k++) {
        const mtc_json *c = mtc_json_get(&h->items[k], "conflict");
        for (int i = 0; c && c->type == MTC_JOBJ && i < c->n; i++) name_index(pairs, &np, MAXP, c->keys[i]);
    }
    if (!rc && !np)
        rc = mtc_err_set(&e, MTC_EINPUT, "%s: no task conflict in the history (one task, a trunk not ending in a "
                         "dense or conv layer, or trained before mtc recorded it)", pos[0]);
    for (int p = 0; !rc && p < np; p++)
        if (!(cs[p] = malloc(sizeof(double) * (size_t)cv.nep))) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
    for (int t = 0; !rc && t < cv.ntasks; t++)
        if (!(wt[t] = malloc(sizeof(double) * (size_t)cv.nep))) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
    for (int k = 0; !rc && k < cv.nep; k++) {
        const mtc_json *c = mtc_json_get(&h->items[k], "conflict"), *w = mtc_json_get(&h->items[k], "weight");
        for (int p = 0; p < np; p++) cs[p][k] = c ? jnum(mtc_json_get(c, pairs[p])) : NAN;
        for (int t = 0; t < cv.ntasks; t++) wt[t][k] = w ? jnum(mtc_json_get(w, cv.names[t])) : NAN;
    }
    mtc_canvas c = {0};
    if (!rc) rc = mtc_canvas_init(&c, 2 * PANEL_W, PANEL_H, MTC_WHITE, &e);
    if (!rc) {
        mtc_series sp[MAXP], sw[MTC_MAX_TASKS];
        for (int p = 0; p < np; p++) sp[p] = (mtc_series){pairs[p], cv.nep, cv.epoch, cs[p], NULL, NULL};
        for (int t = 0; t < cv.ntasks; t++) sw[t] = (mtc_series){cv.names[t], cv.nep, cv.epoch, wt[t], NULL, NULL};
        mtc_chart cl = {"task gradient cosine (shared layer)", "epoch", "cosine", 0, 1, -1.0, 1.0, cv.nep <= 30};
        mtc_chart cw = {"task weights", "epoch", "weight", 0, 1, 0, 0, cv.nep <= 30};
        rc = mtc_chart_lines(&c, 0, 0, PANEL_W, PANEL_H, &cl, sp, np, &e);
        if (!rc) rc = mtc_chart_lines(&c, PANEL_W, 0, PANEL_W, PANEL_H, &cw, sw, cv.ntasks, &e);
        if (!rc) rc = mtc_canvas_write_png(&c, out, &e);
    }
    mtc_canvas_free(&c);
    for (int p = 0; p < MAXP; p++) free(cs[p]);
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(wt[t]);
    free(pairs);
    mtc_json_free(&meta);
    curves_free(&cv);
    return plot_done("plot conflict", &cc, out, rc, &e, NULL, NULL);
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *usage;
} subs[] = {
    {"curves", plot_curves, "curves model.mtc -o out.png"},
    {"conflict", plot_conflict, "conflict model.mtc -o out.png"},
    {"size-accuracy", plot_size_accuracy, "size-accuracy a.mtc b.mtc ... [--data NAME] -o out.png"},
    {"sensitivity", plot_sensitivity, "sensitivity report.json -o out.png"},
    {"confusion", plot_confusion, "confusion model.mtc [--task T] -o out.png"},
    {"contact-sheet", plot_contact_sheet, "contact-sheet --data NAME [--n 64] -o out.png"},
    {"pipeline", plot_pipeline, "pipeline -o out.png"},
};

int cmd_plot(int argc, char **argv)
{
    int nsubs = (int)(sizeof subs / sizeof subs[0]);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        for (int i = 0; i < nsubs; i++) printf("%s mtc plot %s\n", i ? "      " : "usage:", subs[i].usage);
        printf("\nDraws PNG charts: training curves, checkpoint size against test metrics,\n"
               "pruning sensitivity, confusion matrices, a data set contact sheet, the pipeline.\n"
               "mtc plot <subcommand> --help for the options; formats in docs/plots.md.\n");
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "mtc plot: missing subcommand: curves, size-accuracy, sensitivity, confusion or "
                        "contact-sheet\n");
        return 2;
    }
    for (int i = 0; i < nsubs; i++)
        if (!strcmp(argv[1], subs[i].name)) return subs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mtc plot: unknown subcommand '%s' (curves, size-accuracy, sensitivity, confusion, "
                    "contact-sheet, pipeline)\n", argv[1]);
    return 2;
}
