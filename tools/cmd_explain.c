/*
 * cmd_explain.c — `mtc explain`: what a model does, per task, on a data
 * split, as PNGs and one JSON summary in a folder:
 *   calibration   per cls/bin task: expected calibration error (15 bins),
 *                 its maximum, and a reliability diagram (reliability-T.png)
 *   gate usage    MMoE models: the mean gate weight of each expert for each
 *                 task (gates.png, a task x expert heatmap) and the entropy
 *                 of each task's mean usage and per sample (nats)
 * Outputs come from the reference runtime (fp32, pruned and int8
 * checkpoints, .onnx alike); the gates from the checkpoint's fp32 gate
 * weights (int8 checkpoints keep them in fp32). Saliency is not built yet.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The reliability diagram of task t: accuracy against confidence per
 * non-empty bin, with the diagonal a calibrated model follows. */
static int reliability_png(const char *path, const char *task, const mtc_reliability *c, mtc_err *e)
{
    double x[MTC_CALIB_MAX_BINS], y[MTC_CALIB_MAX_BINS], dx[2] = {0, 1}, dy[2] = {0, 1};
    int n = 0;
    for (int b = 0; b < c->nbins; b++)
        if (c->bin_n[b]) x[n] = c->bin_conf[b], y[n++] = c->bin_acc[b];
    char title[160];
    snprintf(title, sizeof title, "reliability: %s (ECE %.4f, %d bins)", task, c->ece, c->nbins);
    mtc_series s[2] = {{"model", n, x, y, NULL, NULL}, {"calibrated", 2, dx, dy, NULL, NULL}};
    mtc_chart ch = {title, "confidence", "accuracy", 0, 0, 0.0, 1.0, 1};
    mtc_canvas cv;
    int rc = mtc_canvas_init(&cv, 640, 480, MTC_WHITE, e);
    if (rc) return rc;
    rc = mtc_chart_lines(&cv, 0, 0, 640, 480, &ch, s, 2, e);
    if (!rc) rc = mtc_canvas_write_png(&cv, path, e);
    mtc_canvas_free(&cv);
    return rc;
}

/* Mean softmax gate weight per task and expert over the samples of d, the
 * entropy of that mean, and the mean per-sample entropy (nats). */
static int gate_usage(const mtc_model *m, const mtc_dataset *d, double *use, double *h_mean, double *h_sample,
                      mtc_err *e)
{
    const int T = m->spec.ntasks, E = m->nexperts, B = 256;
    const int64_t S = mtc_data_sample_size(d);
    float *x = malloc((size_t)B * (size_t)S * sizeof *x);
    int64_t *bi = malloc((size_t)B * sizeof *bi);
    double *g = malloc((size_t)E * sizeof *g);
    if (!x || !bi || !g) {
        free(x); free(bi); free(g);
        return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    }
    memset(use, 0, (size_t)T * (size_t)E * sizeof *use);
    for (int t = 0; t < T; t++) h_sample[t] = 0;
    for (int64_t s0 = 0; s0 < d->n; s0 += B) {
        int nb = (int)(d->n - s0 < B ? d->n - s0 : B);
        for (int b = 0; b < nb; b++) bi[b] = s0 + b;
        mtc_data_batch_x(d, bi, nb, 0, NULL, x);
        for (int t = 0; t < T; t++) {
            const mtc_layer *G = &m->gate[t];
            const float *W = m->params + G->w_off, *bias = m->params + G->b_off;
            for (int b = 0; b < nb; b++) {
                const float *xi = x + (int64_t)b * S;
                double mx = -INFINITY, z = 0, h = 0;
                for (int k = 0; k < E; k++) {
                    double a = bias[k];
                    for (int64_t j = 0; j < S; j++) a += (double)W[k * S + j] * xi[j];
                    g[k] = a;
                    mx = a > mx ? a : mx;
                }
                for (int k = 0; k < E; k++) z += g[k] = exp(g[k] - mx);
                for (int k = 0; k < E; k++) {
                    g[k] /= z;
                    use[t * E + k] += g[k];
                    if (g[k] > 0) h -= g[k] * log(g[k]);
                }
                h_sample[t] += h;
            }
        }
    }
    for (int t = 0; t < T; t++) {
        h_mean[t] = 0;
        for (int k = 0; k < E; k++) {
            double u = use[t * E + k] /= (double)d->n;
            if (u > 0) h_mean[t] -= u * log(u);
        }
        h_sample[t] /= (double)d->n;
    }
    free(x); free(bi); free(g);
    return 0;
}

static int gates_png(const char *path, const mtc_model *m, const double *use, mtc_err *e)
{
    const int T = m->spec.ntasks, E = m->nexperts;
    const char *rows[MTC_MAX_TASKS], *cols[MTC_MAX_EXPERTS];
    char names[MTC_MAX_EXPERTS][24];
    for (int t = 0; t < T; t++) rows[t] = m->spec.tasks[t].name;
    for (int k = 0; k < E; k++) snprintf(names[k], sizeof names[k], "expert %d", k), cols[k] = names[k];
    mtc_heatmap hm = {"MMoE gate usage (mean weight per task)", "expert", "task", T, E, use, rows, cols, 0, 0};
    int w, h;
    mtc_heatmap_size(&hm, &w, &h);
    mtc_canvas cv;
    int rc = mtc_canvas_init(&cv, w, h, MTC_WHITE, e);
    if (rc) return rc;
    rc = mtc_chart_heatmap(&cv, 0, 0, &hm, e);
    if (!rc) rc = mtc_canvas_write_png(&cv, path, e);
    mtc_canvas_free(&cv);
    return rc;
}

int cmd_explain(int argc, char **argv)
{
    const char *data = NULL, *split = "test", *out = NULL;
    int bins = 15, gates = 0;
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"data", OPT_STR, &data, "data set (required)", 1, 0},
        {"split", OPT_STR, &split, "train | test (default {default})", 1, 0},
        {"out", OPT_STR, &out, "output folder (-o; created): explain.json and the PNGs", 1, 0},
        {"bins", OPT_INT, &bins, "calibration bins (default {default})", 1, MTC_CALIB_MAX_BINS},
        {"gates", OPT_FLAG, &gates, "require MMoE gate usage (exit 2 when the model has no gates)", 1, 0},
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("explain", "MODEL --data NAME -o DIR [--split test] [--bins 15] [--gates]",
                       "What a model does per task on a data split, as PNGs and explain.json in DIR: calibration\n"
                       "(expected calibration error over equal-width confidence bins and a reliability diagram per\n"
                       "cls/bin task) and, for MMoE models, the mean gate weight of each expert per task (a heatmap)\n"
                       "with its entropy. Any checkpoint the runtime runs (fp32, pruned, int8, .onnx).",
                       opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1 || !data || !out) {
        fprintf(stderr, "mtc explain: need MODEL, --data and -o DIR (see mtc explain --help)\n");
        return 2;
    }
    if (strcmp(split, "train") && strcmp(split, "test")) {
        fprintf(stderr, "mtc explain: --split %s: expected train or test\n", split);
        return 2;
    }
    cli_apply_common(&c);
    mtc_err e = {0};
    mtc_rt *rt = NULL;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    float *outs[MTC_MAX_TASKS] = {0};
    mtc_reliability *cal = calloc(MTC_MAX_TASKS, sizeof *cal);
    double use[MTC_MAX_TASKS * MTC_MAX_EXPERTS], hm[MTC_MAX_TASKS], hs[MTC_MAX_TASKS];
    int have_cal[MTC_MAX_TASKS] = {0};
    char path[4400];
    if (!cal) {
        fprintf(stderr, "mtc explain: out of memory\n");
        return 2;
    }
    if ((rc = util_rt_load(pos[0], &rt, &e))) goto done;
    mtc_rt_set_threads(rt, c.threads);
    const mtc_model *m = mtc_rt_model(rt);
    if (gates && m->nexperts < 2) {
        rc = mtc_err_set(&e, MTC_EINPUT, "%s: --gates: the model has no MMoE gates (hard sharing)", pos[0]);
        goto done;
    }
    if ((rc = util_open_data(m, data, split, &d, &e))) goto done;
    if (mkdir(out, 0755) && errno != EEXIST) {
        rc = mtc_err_set(&e, MTC_EIO, "%s: cannot create (%s)", out, strerror(errno));
        goto done;
    }
    if ((rc = util_rt_predict_all(rt, &d, 256, outs, &e))) goto done;
    if (mtc_comm_rank() != 0) goto done; /* an MPI job: rank 0 explains */
    for (int t = 0; t < m->spec.ntasks && !rc; t++) {
        if (m->spec.tasks[t].kind == MTC_TASK_REG) continue;
        if ((rc = mtc_task_calibration(m, &d, t, outs[t], bins, &cal[t], &e))) break;
        have_cal[t] = 1;
        snprintf(path, sizeof path, "%s/reliability-%s.png", out, m->spec.tasks[t].name);
        if (cal[t].n) rc = reliability_png(path, m->spec.tasks[t].name, &cal[t], &e);
    }
    if (!rc && m->nexperts > 1) {
        rc = gate_usage(m, &d, use, hm, hs, &e);
        snprintf(path, sizeof path, "%s/gates.png", out);
        if (!rc) rc = gates_png(path, m, use, &e);
    }
    if (rc) goto done;
    /* explain.json */
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "model", pos[0]);
    util_json_data(&w, "data", &d);
    mtc_jw_key(&w, "tasks");
    mtc_jw_obj(&w);
    for (int t = 0; t < m->spec.ntasks; t++) {
        mtc_jw_key(&w, m->spec.tasks[t].name);
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "kind", mtc_task_kind_name(m->spec.tasks[t].kind));
        if (have_cal[t]) {
            mtc_jw_kint(&w, "calibration_samples", cal[t].n);
            mtc_jw_knum(&w, "ece", cal[t].ece);
            mtc_jw_knum(&w, "mce", cal[t].mce);
            mtc_jw_key(&w, "bins");
            mtc_jw_arr(&w);
            for (int b = 0; b < cal[t].nbins; b++) {
                mtc_jw_obj(&w);
                mtc_jw_kint(&w, "n", cal[t].bin_n[b]);
                mtc_jw_knum(&w, "confidence", cal[t].bin_conf[b]);
                mtc_jw_knum(&w, "accuracy", cal[t].bin_acc[b]);
                mtc_jw_obj_end(&w);
            }
            mtc_jw_arr_end(&w);
        }
        if (m->nexperts > 1) {
            mtc_jw_key(&w, "gate_usage");
            mtc_jw_arr(&w);
            for (int k = 0; k < m->nexperts; k++) mtc_jw_num(&w, use[t * m->nexperts + k]);
            mtc_jw_arr_end(&w);
            mtc_jw_knum(&w, "gate_entropy", hm[t]);
            mtc_jw_knum(&w, "gate_entropy_per_sample", hs[t]);
        }
        mtc_jw_obj_end(&w);
    }
    mtc_jw_obj_end(&w);
    mtc_jw_obj_end(&w);
    snprintf(path, sizeof path, "%s/explain.json", out);
    if (w.oom) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
    else rc = mtc_write_file_atomic(path, w.buf, w.len, &e);
    if (!rc && c.json) printf("%s\n", w.buf);
    mtc_jw_free(&w);
    if (!rc && !c.json) {
        printf("%s on %s/%s (%lld samples) -> %s\n", pos[0], d.name, split, (long long)d.n, out);
        for (int t = 0; t < m->spec.ntasks; t++) {
            printf("  %-12s", m->spec.tasks[t].name);
            if (have_cal[t]) printf(" ECE %.4f  MCE %.4f over %lld predictions", cal[t].ece, cal[t].mce, (long long)cal[t].n);
            else printf(" (reg: no calibration)");
            if (m->nexperts > 1) {
                printf("  gates");
                for (int k = 0; k < m->nexperts; k++) printf(" %.3f", use[t * m->nexperts + k]);
                printf("  entropy %.3f", hm[t]);
            }
            printf("\n");
        }
    }
done:
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(outs[t]);
    free(cal);
    mtc_data_free(&d);
    if (rt) mtc_rt_free(rt);
    if (!rc && mtc_comm_rank() != 0) return 0;
    return rc ? cli_fail("explain", &e) : 0;
}
