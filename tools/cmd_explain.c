/*
 * cmd_explain.c — `mtc explain`: what a model does, per task, on a data
 * split, as PNGs and one JSON summary in a folder:
 *   calibration   per cls/bin task: expected calibration error (15 bins),
 *                 its maximum, and a reliability diagram (reliability-T.png)
 *   gate usage    MMoE models: the mean gate weight of each expert for each
 *                 task (gates.png, a task x expert heatmap) and the entropy
 *                 of each task's mean usage and per sample (nats)
 *   saliency      per task, gradient x input (SmoothGrad with --smooth N)
 *                 of chosen samples (saliency.png: a row per sample, a
 *                 column per task; --compare OTHER adds OTHER's map beside
 *                 each and the Spearman rank correlation of the two)
 * Outputs come from the reference runtime (fp32, pruned and int8
 * checkpoints, .onnx alike); the gates from the checkpoint's fp32 gate
 * weights (int8 checkpoints keep them in fp32). Gradients come from the
 * training engine's eval-mode model built from what the runtime loaded
 * (mtc_rt_ste_model): exact for fp32, the straight-through estimate for
 * int8 (--ste), or an fp32 twin's (--twin).
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

static int gates_png(const char *path, const mtc_model *m, const double *use, const char *la, const mtc_model *o,
                     const double *ouse, const char *lb, mtc_err *e)
{
    const mtc_model *ms[2] = {m, o};
    const double *us[2] = {use, ouse};
    const char *rows[2][MTC_MAX_TASKS], *cols[2][MTC_MAX_EXPERTS];
    char names[MTC_MAX_EXPERTS][24], title[2][160];
    mtc_heatmap hm[2];
    int np = o ? 2 : 1, w = 0, h = 0, pw[2], ph[2];
    for (int k = 0; k < MTC_MAX_EXPERTS; k++) snprintf(names[k], sizeof names[k], "expert %d", k);
    for (int p = 0; p < np; p++) {
        for (int t = 0; t < ms[p]->spec.ntasks; t++) rows[p][t] = ms[p]->spec.tasks[t].name;
        for (int k = 0; k < ms[p]->nexperts; k++) cols[p][k] = names[k];
        if (np > 1) snprintf(title[p], sizeof title[p], "MMoE gate usage: %s", p ? lb : la);
        else snprintf(title[p], sizeof title[p], "MMoE gate usage (mean weight per task)");
        hm[p] = (mtc_heatmap){title[p], "expert", "task", ms[p]->spec.ntasks, ms[p]->nexperts, us[p],
                              rows[p], cols[p], 0, 0};
        mtc_heatmap_size(&hm[p], &pw[p], &ph[p]);
        w += pw[p] + (p ? 24 : 0);
        h = ph[p] > h ? ph[p] : h;
    }
    mtc_canvas cv;
    int rc = mtc_canvas_init(&cv, w, h, MTC_WHITE, e);
    if (rc) return rc;
    for (int p = 0, x = 0; p < np && !rc; x += pw[p] + 24, p++) rc = mtc_chart_heatmap(&cv, x, 0, &hm[p], e);
    if (!rc) rc = mtc_canvas_write_png(&cv, path, e);
    mtc_canvas_free(&cv);
    return rc;
}

/* ---- saliency --------------------------------------------------------------- */

#define SAL_MAX_SAMPLES 4096
#define SAL_PNG_ROWS 16

/* "0-7", "3,9,20-24" or "none" (n = 0) into idx (at most cap). */
static int parse_samples(const char *s, int64_t limit, int64_t *idx, int cap, int *n, mtc_err *e)
{
    *n = 0;
    if (!strcmp(s, "none")) return 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long a = strtoll(p, &end, 10), b;
        if (end == p || a < 0 || errno) return mtc_err_set(e, MTC_EINPUT, "--samples %s: expected indices like 0-7,12", s);
        b = a;
        if (*end == '-') {
            p = end + 1;
            b = strtoll(p, &end, 10);
            if (end == p || b < a || errno) return mtc_err_set(e, MTC_EINPUT, "--samples %s: bad range", s);
        }
        if (b >= limit)
            return mtc_err_set(e, MTC_EINPUT, "--samples %s: sample %lld out of range (the split has %lld)", s, b,
                               (long long)limit);
        for (long long i = a; i <= b; i++) {
            if (*n >= cap) return mtc_err_set(e, MTC_EINPUT, "--samples %s: more than %d samples", s, cap);
            idx[(*n)++] = i;
        }
        if (*end == ',') end++;
        else if (*end) return mtc_err_set(e, MTC_EINPUT, "--samples %s: expected indices like 0-7,12", s);
        p = end;
    }
    return 0;
}

/* The model whose input gradient explains `path`: rt's own parameters
 * (fp32: exact; int8: the straight-through estimate, only with ste) or an
 * fp32 twin's checked against rt's tasks and input. *how names it. */
static int grad_model(const char *path, const mtc_rt *rt, int ste, const char *twin, mtc_model *gm, const char **how,
                      mtc_err *e)
{
    const mtc_model *m = mtc_rt_model(rt);
    if (twin) {
        char *meta = NULL;
        int rc = mtc_model_load(twin, gm, &meta, e);
        free(meta);
        if (rc) return rc;
        int ok = gm->spec.c == m->spec.c && gm->spec.h == m->spec.h && gm->spec.w == m->spec.w &&
                 gm->spec.ntasks == m->spec.ntasks;
        for (int t = 0; ok && t < m->spec.ntasks; t++)
            ok = !strcmp(gm->spec.tasks[t].name, m->spec.tasks[t].name) && gm->spec.tasks[t].dim == m->spec.tasks[t].dim;
        if (!ok) {
            mtc_model_free(gm);
            return mtc_err_set(e, MTC_EINPUT, "%s: --twin: input shape or tasks differ from %s", twin, path);
        }
        *how = "fp32 twin";
        return 0;
    }
    if (mtc_rt_nquantized(rt) > 0 && !ste)
        return mtc_err_set(e, MTC_EINPUT,
                           "%s: saliency: int8 layers have no gradient; pass --ste (straight-through: the dequantized "
                           "weights' gradient) or --twin FP32.mtc (the checkpoint it was quantized from), or "
                           "--samples none to skip saliency (calibration%s written)",
                           path, m->nexperts > 1 ? " and gate usage" : "");
    *how = mtc_rt_nquantized(rt) > 0 ? "straight-through (int8 weights dequantized)" : "fp32";
    return mtc_rt_ste_model(rt, gm, e);
}

/* A column label: the file name without folder and extension. */
static void short_name(const char *path, char *buf, size_t n)
{
    const char *b = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(buf, n, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
}

static uint32_t blend(uint32_t a, uint32_t b, double t)
{
    int r = (int)(((a >> 16) & 255) * (1 - t) + ((b >> 16) & 255) * t + 0.5);
    int g = (int)(((a >> 8) & 255) * (1 - t) + ((b >> 8) & 255) * t + 0.5);
    int bl = (int)((a & 255) * (1 - t) + (b & 255) * t + 0.5);
    return (uint32_t)(r << 16 | g << 8 | bl);
}

/* One map (C*H*W values) as an HxW cell at (x0, y0), scx x scy pixels a value:
 * the input in grey (channel mean, lo..hi to black..white) and, when sal is
 * not NULL, the channel-summed saliency over it, red positive and blue
 * negative, opacity |s| / max |s| of the map. */
static void draw_map(mtc_canvas *cv, int x0, int y0, int scx, int scy, int C, int H, int W, const float *x, const float *sal,
                     double lo, double hi)
{
    double mx = 0;
    if (sal)
        for (int j = 0; j < H * W; j++) {
            double v = 0;
            for (int c = 0; c < C; c++) v += sal[(int64_t)c * H * W + j];
            mx = fmax(mx, fabs(v));
        }
    for (int j = 0; j < H * W; j++) {
        double g = 0, v = 0;
        for (int c = 0; c < C; c++) g += x[(int64_t)c * H * W + j], v += sal ? sal[(int64_t)c * H * W + j] : 0;
        g = hi > lo ? (g / C - lo) / (hi - lo) : 0.5;
        g = g < 0 ? 0 : g > 1 ? 1 : g;
        int q = (int)(60 + 140 * g); /* mid greys: the colour reads over both ends */
        uint32_t px = (uint32_t)(q << 16 | q << 8 | q);
        if (!sal) q = (int)(255 * g), px = (uint32_t)(q << 16 | q << 8 | q);
        else if (mx > 0 && v != 0) px = blend(px, v > 0 ? 0xd62728u : 0x1f5fd6u, fmin(1.0, fabs(v) / mx));
        mtc_draw_rect(cv, x0 + (j % W) * scx, y0 + (j / W) * scy, scx, scy, px);
    }
}

/* saliency.png: a row per sample (at most SAL_PNG_ROWS), the input then per
 * task the model's map (and the other's beside it). */
static int saliency_png(const char *path, const mtc_model *m, int C, int H, int W, int n, const int64_t *idx,
                        const float *x, float *const *sal, float *const *osal, const char *label_a,
                        const char *label_b, mtc_err *e)
{
    const int64_t S = (int64_t)C * H * W;
    const int rows = n < SAL_PNG_ROWS ? n : SAL_PNG_ROWS, per = osal ? 2 : 1;
    int ncols = 1;
    for (int t = 0; t < m->spec.ntasks; t++) ncols += sal[t] ? per : 0;
    const int image = H > 1 || W > 1; /* else a feature vector: a strip of cells */
    const int scx = image ? (96 + H - 1) / H : S <= 96 ? 8 : 2, scy = image ? scx : 16;
    const int cw = image ? W * scx : (int)S * scx, ch = image ? H * scy : scy;
    const int gap = 6, left = 64, top = 40;
    const int wpx = left + ncols * (cw + gap) + gap, hpx = top + rows * (ch + gap) + 24;
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < (int64_t)rows * S; i++) lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    mtc_canvas cv;
    int rc = mtc_canvas_init(&cv, wpx < 240 ? 240 : wpx, hpx, MTC_WHITE, e);
    if (rc) return rc;
    mtc_draw_text(&cv, 6, 4, "saliency: gradient x input (red +, blue -)", 1, MTC_BLACK);
    int col = 0;
    mtc_draw_text(&cv, left, top - 14, "input", 1, MTC_BLACK);
    for (int t = 0; t < m->spec.ntasks; t++) {
        if (!sal[t]) continue;
        for (int k = 0; k < per; k++) {
            col++;
            char lab[96];
            snprintf(lab, sizeof lab, "%s%s%s", m->spec.tasks[t].name, per > 1 ? " " : "",
                     per > 1 ? (k ? label_b : label_a) : "");
            mtc_draw_text(&cv, left + col * (cw + gap), top - 14, lab, 1, MTC_BLACK);
        }
    }
    for (int r = 0; r < rows; r++) {
        int y = top + r * (ch + gap);
        char lab[32];
        snprintf(lab, sizeof lab, "#%lld", (long long)idx[r]);
        mtc_draw_text(&cv, 6, y + ch / 2 - 4, lab, 1, MTC_BLACK);
        const float *xi = x + r * S;
        const int Cd = image ? C : 1, Wd = image ? W : (int)S;
        draw_map(&cv, left, y, scx, scy, Cd, image ? H : 1, Wd, xi, NULL, lo, hi);
        col = 0;
        for (int t = 0; t < m->spec.ntasks; t++) {
            if (!sal[t]) continue;
            for (int k = 0; k < per; k++) {
                col++;
                const float *sm = (k ? osal[t] : sal[t]) + r * S;
                draw_map(&cv, left + col * (cw + gap), y, scx, scy, Cd, image ? H : 1, Wd, xi, sm, lo, hi);
            }
        }
    }
    if (n > rows) {
        char more[64];
        snprintf(more, sizeof more, "(first %d of %d samples)", rows, n);
        mtc_draw_text(&cv, 6, hpx - 14, more, 1, MTC_GRAY);
    }
    rc = mtc_canvas_write_png(&cv, path, e);
    mtc_canvas_free(&cv);
    return rc;
}

typedef struct sal_run {
    int ns;
    int64_t idx[SAL_MAX_SAMPLES];
    float *x;                             /* (ns, S) model inputs */
    float *sal[MTC_MAX_TASKS], *osal[MTC_MAX_TASKS]; /* NULL: task skipped */
    double *rho[MTC_MAX_TASKS];           /* per sample (compare), NaN when undefined */
    double rho_mean[MTC_MAX_TASKS];
    int rho_n[MTC_MAX_TASKS];
    const char *how, *ohow;
    double sigma;
} sal_run;

static void sal_free(sal_run *r)
{
    free(r->x);
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(r->sal[t]), free(r->osal[t]), free(r->rho[t]);
}

/* Saliency of every task of rt's model (and of the task of the same name in
 * ort's) on r->idx. The class a cls map explains: the sample's label, else
 * the model's prediction (outs), the same for both models. */
static int run_saliency(const char *path, const mtc_rt *rt, const char *opath, const mtc_rt *ort, const mtc_dataset *d,
                        float *const *outs, int smooth, float noise, uint64_t seed, int ste, const char *twin,
                        sal_run *r, mtc_err *e)
{
    const mtc_model *m = mtc_rt_model(rt);
    const int64_t S = mtc_data_sample_size(d);
    const int n = r->ns;
    mtc_model gm, og;
    int have_g = 0, have_o = 0, rc;
    int32_t *cls = malloc((size_t)n * sizeof *cls);
    float *sa = malloc((size_t)S * sizeof *sa), *sb = malloc((size_t)S * sizeof *sb);
    r->x = malloc((size_t)n * (size_t)S * sizeof *r->x);
    if (!cls || !sa || !sb || !r->x) {
        rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = grad_model(path, rt, ste, twin, &gm, &r->how, e))) goto out;
    have_g = 1;
    if (ort) {
        if ((rc = grad_model(opath, ort, ste, NULL, &og, &r->ohow, e))) goto out;
        have_o = 1;
    }
    mtc_data_batch_x(d, r->idx, n, 0, NULL, r->x);
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < (int64_t)n * S; i++) lo = fmin(lo, r->x[i]), hi = fmax(hi, r->x[i]);
    r->sigma = smooth > 0 ? noise * (hi - lo) : 0;
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        int ot = ort ? mtc_spec_task_index(&mtc_rt_model(ort)->spec, ts->name) : -1;
        if (ot >= 0 && mtc_rt_model(ort)->spec.tasks[ot].dim != ts->dim) ot = -1;
        for (int i = 0; i < n; i++) cls[i] = -1;
        if (ts->kind == MTC_TASK_CLS) {
            int32_t *lab = NULL;
            const float *tg = NULL;
            if (mtc_model_bind_task(m, t, d, &lab, &tg, e) == 0 && lab)
                for (int i = 0; i < n; i++) cls[i] = lab[r->idx[i]];
            free(lab);
            for (int i = 0; i < n; i++) {
                if (cls[i] >= 0) continue;
                const float *o = outs[t] + r->idx[i] * ts->dim;
                cls[i] = 0;
                for (int j = 1; j < ts->dim; j++)
                    if (o[j] > o[cls[i]]) cls[i] = j;
            }
        }
        if (!(r->sal[t] = malloc((size_t)n * (size_t)S * sizeof(float)))) {
            rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = mtc_saliency(&gm, r->x, n, t, cls, smooth, (float)r->sigma, seed, r->sal[t], e))) goto out;
        if (ot < 0) continue;
        r->osal[t] = malloc((size_t)n * (size_t)S * sizeof(float));
        r->rho[t] = malloc((size_t)n * sizeof(double));
        if (!r->osal[t] || !r->rho[t]) {
            rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = mtc_saliency(&og, r->x, n, ot, cls, smooth, (float)r->sigma, seed, r->osal[t], e))) goto out;
        /* rank correlation of |gradient x input| over the sample's non-zero
         * inputs (elsewhere every model's map is 0: ties that would only
         * inflate the agreement) */
        double sum = 0;
        int cnt = 0;
        for (int i = 0; i < n; i++) {
            int64_t k = 0;
            const float *xi = r->x + i * S;
            for (int64_t j = 0; j < S; j++)
                if (xi[j] != 0) sa[k] = r->sal[t][i * S + j], sb[k++] = r->osal[t][i * S + j];
            r->rho[t][i] = mtc_spearman(sa, sb, k, 1);
            if (isfinite(r->rho[t][i])) sum += r->rho[t][i], cnt++;
        }
        r->rho_n[t] = cnt;
        r->rho_mean[t] = cnt ? sum / cnt : NAN;
    }
out:
    if (have_g) mtc_model_free(&gm);
    if (have_o) mtc_model_free(&og);
    free(cls); free(sa); free(sb);
    return rc;
}

int cmd_explain(int argc, char **argv)
{
    const char *data = NULL, *split = "test", *out = NULL, *samples = NULL, *compare = NULL, *twin = NULL;
    int bins = 15, gates = 0, smooth = 0, ste = 0;
    float noise = 0.15f;
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"data", OPT_STR, &data, "data set (required)", 1, 0},
        {"split", OPT_STR, &split, "train | test (default {default})", 1, 0},
        {"out", OPT_STR, &out, "output folder (-o; created): explain.json and the PNGs", 1, 0},
        {"bins", OPT_INT, &bins, "calibration bins (default {default})", 1, MTC_CALIB_MAX_BINS},
        {"gates", OPT_FLAG, &gates, "require MMoE gate usage (exit 2 when the model has no gates)", 1, 0},
        {"samples", OPT_STR, &samples, "saliency samples of the split: 0-7,12 (default: the first 8; none: skip)", 1, 0},
        {"smooth", OPT_INT, &smooth, "SmoothGrad: average the gradient over N noisy copies (--seed; default {default}: plain)", 0, 10000},
        {"noise", OPT_FLOAT, &noise, "SmoothGrad noise std as a fraction of the samples' input range (default {default})", 0, 10},
        {"compare", OPT_STR, &compare, "another model (teacher, fp32 parent): its saliency beside, rank correlation", 1, 0},
        {"ste", OPT_FLAG, &ste, "int8 models: saliency through the dequantized weights (straight-through estimate)", 1, 0},
        {"twin", OPT_STR, &twin, "int8 MODEL: saliency from this fp32 checkpoint it was quantized from", 1, 0},
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("explain", "MODEL --data NAME -o DIR [--split test] [--samples 0-7] [--compare OTHER] [--smooth N]",
                       "What a model does per task on a data split, as PNGs and explain.json in DIR: calibration\n"
                       "(expected calibration error over equal-width confidence bins and a reliability diagram per\n"
                       "cls/bin task), for MMoE models the mean gate weight of each expert per task (a heatmap) with\n"
                       "its entropy, and saliency: per task, gradient x input of the eval-mode model for the chosen\n"
                       "samples (cls: the logit of the label, else of the prediction; bin: the logit; reg: the\n"
                       "output), in saliency.png (red raises the output, blue lowers it). --compare OTHER draws\n"
                       "OTHER's map beside each (teacher vs student, fp32 vs int8) and reports their Spearman rank\n"
                       "correlation of |saliency| over the non-zero inputs, per task. Any checkpoint the runtime runs\n"
                       "(fp32, pruned, int8, .onnx); int8 layers have no gradient: --ste uses the dequantized\n"
                       "weights (straight-through), --twin the fp32 checkpoint it came from; without either,\n"
                       "calibration and gates are written and saliency is exit 2.",
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
    double ouse[MTC_MAX_TASKS * MTC_MAX_EXPERTS], ohm[MTC_MAX_TASKS], ohs[MTC_MAX_TASKS];
    int have_cal[MTC_MAX_TASKS] = {0};
    char path[4400];
    mtc_rt *ort = NULL;
    sal_run *sr = calloc(1, sizeof *sr);
    mtc_err se = {0};
    int sal_rc = 0;
    if (!cal || !sr) {
        free(cal);
        free(sr);
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
    char first[32];
    snprintf(first, sizeof first, "0-%lld", (long long)(d.n < 8 ? d.n - 1 : 7));
    if ((rc = parse_samples(samples ? samples : first, d.n, sr->idx, SAL_MAX_SAMPLES, &sr->ns, &e))) goto done;
    if (twin && !mtc_rt_nquantized(rt)) {
        rc = mtc_err_set(&e, MTC_EINPUT, "%s: --twin is for int8 models; this one is fp32", pos[0]);
        goto done;
    }
    if (compare) {
        if ((rc = util_rt_load(compare, &ort, &e))) goto done;
        const mtc_model *o = mtc_rt_model(ort);
        if (o->spec.c != m->spec.c || o->spec.h != m->spec.h || o->spec.w != m->spec.w) {
            rc = mtc_err_set(&e, MTC_EINPUT, "%s: --compare: input %dx%dx%d, %s takes %dx%dx%d", compare, o->spec.c,
                             o->spec.h, o->spec.w, pos[0], m->spec.c, m->spec.h, m->spec.w);
            goto done;
        }
    }
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
    const mtc_model *om = ort && mtc_rt_model(ort)->nexperts > 1 ? mtc_rt_model(ort) : NULL;
    if (!rc && om) rc = gate_usage(om, &d, ouse, ohm, ohs, &e);
    if (!rc && m->nexperts > 1) {
        rc = gate_usage(m, &d, use, hm, hs, &e);
        snprintf(path, sizeof path, "%s/gates.png", out);
        char la[64], lb[64];
        short_name(pos[0], la, sizeof la);
        short_name(compare ? compare : "", lb, sizeof lb);
        if (!rc) rc = gates_png(path, m, use, la, om, ouse, lb, &e);
    }
    if (rc) goto done;
    if (sr->ns) { /* what cannot be done is said after what can is written */
        sal_rc = run_saliency(pos[0], rt, compare, ort, &d, outs, smooth, noise, c.seed, ste, twin, sr, &se);
        if (!sal_rc) {
            snprintf(path, sizeof path, "%s/saliency.png", out);
            char la[64], lb[64];
            short_name(pos[0], la, sizeof la);
            short_name(compare ? compare : "", lb, sizeof lb);
            if ((rc = saliency_png(path, m, m->spec.c, m->spec.h, m->spec.w, sr->ns, sr->idx, sr->x, sr->sal,
                                   ort ? sr->osal : NULL, la, lb, &e)))
                goto done;
        }
    }
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
        int ot = om ? mtc_spec_task_index(&om->spec, m->spec.tasks[t].name) : -1;
        if (ot >= 0) {
            mtc_jw_key(&w, "compare_gate_usage");
            mtc_jw_arr(&w);
            for (int k = 0; k < om->nexperts; k++) mtc_jw_num(&w, ouse[ot * om->nexperts + k]);
            mtc_jw_arr_end(&w);
            mtc_jw_knum(&w, "compare_gate_entropy", ohm[ot]);
        }
        if (sr->ns && !sal_rc) {
            const int64_t S = mtc_data_sample_size(&d);
            double a = 0;
            for (int64_t i = 0; i < (int64_t)sr->ns * S; i++) a += fabs(sr->sal[t][i]);
            mtc_jw_knum(&w, "saliency_mean_abs", a / ((double)sr->ns * (double)S));
            if (sr->osal[t]) {
                mtc_jw_knum(&w, "rank_correlation", sr->rho_mean[t]);
                mtc_jw_key(&w, "rank_correlation_per_sample");
                mtc_jw_arr(&w);
                for (int i = 0; i < sr->ns; i++) mtc_jw_num(&w, sr->rho[t][i]);
                mtc_jw_arr_end(&w);
            }
        }
        mtc_jw_obj_end(&w);
    }
    mtc_jw_obj_end(&w);
    if (sr->ns) {
        mtc_jw_key(&w, "saliency");
        mtc_jw_obj(&w);
        if (sal_rc) {
            mtc_jw_kstr(&w, "error", se.msg);
        } else {
            mtc_jw_kstr(&w, "method", smooth ? "smoothgrad x input" : "gradient x input");
            mtc_jw_kint(&w, "smooth", smooth);
            mtc_jw_knum(&w, "noise_std", sr->sigma);
            mtc_jw_kstr(&w, "gradient", sr->how);
            if (compare) {
                mtc_jw_kstr(&w, "compare", compare);
                mtc_jw_kstr(&w, "compare_gradient", sr->ohow);
            }
            mtc_jw_key(&w, "samples");
            mtc_jw_arr(&w);
            for (int i = 0; i < sr->ns; i++) mtc_jw_int(&w, sr->idx[i]);
            mtc_jw_arr_end(&w);
        }
        mtc_jw_obj_end(&w);
    }
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
            if (sr->ns && !sal_rc && sr->osal[t])
                printf("  saliency rank corr %.3f", sr->rho_mean[t]);
            printf("\n");
        }
        if (sr->ns && !sal_rc)
            printf("  saliency of %d samples (%s, gradient: %s%s%s) -> %s/saliency.png\n", sr->ns,
                   smooth ? "SmoothGrad x input" : "gradient x input", sr->how, compare ? "; compared with " : "",
                   compare ? compare : "", out);
    }
done:
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(outs[t]);
    free(cal);
    sal_free(sr);
    free(sr);
    if (ort) mtc_rt_free(ort);
    mtc_data_free(&d);
    if (rt) mtc_rt_free(rt);
    if (!rc && mtc_comm_rank() != 0) return 0;
    if (!rc && sal_rc) return cli_fail("explain", &se);
    return rc ? cli_fail("explain", &e) : 0;
}
