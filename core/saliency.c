/*
 * saliency.c — per-task input attributions of the training engine's model
 * (`mtc explain`): gradient x input, SmoothGrad, and the rank correlation
 * used to compare two models' maps.
 *
 * The gradient is the eval-mode function's (running batchnorm statistics,
 * dropout off: mtc_model_forward with MTC_FWD_EVAL_GRAD), so it explains the
 * model that is deployed, not a training-mode twin of it.
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAL_BATCH 64

/* dout of task t for B rows: one-hot at the class (cls), 1 per output
 * (bin: the logit; reg: the sum of the standardised outputs). */
static void seed_dout(const mtc_model *m, int t, const int32_t *cls, int B, float *d)
{
    const mtc_task_spec *ts = &m->spec.tasks[t];
    const int D = ts->dim;
    const float *o = m->outputs[t];
    for (int b = 0; b < B; b++) {
        float *r = d + (int64_t)b * D;
        if (ts->kind != MTC_TASK_CLS) {
            for (int j = 0; j < D; j++) r[j] = 1.0f;
            continue;
        }
        memset(r, 0, (size_t)D * sizeof *r);
        int c = cls ? cls[b] : -1;
        if (c < 0 || c >= D) { /* the model's own prediction */
            c = 0;
            for (int j = 1; j < D; j++)
                if (o[(int64_t)b * D + j] > o[(int64_t)b * D + c]) c = j;
        }
        r[c] = 1.0f;
    }
}

int mtc_saliency(mtc_model *m, const float *x, int n, int t, const int32_t *cls, int smooth, float noise,
                 uint64_t seed, float *out, mtc_err *e)
{
    if (t < 0 || t >= m->spec.ntasks) return mtc_err_set(e, MTC_EINPUT, "saliency: task %d out of range", t);
    if (n < 0 || smooth < 0 || !(noise >= 0)) return mtc_err_set(e, MTC_EINPUT, "saliency: bad arguments");
    const int64_t S = (int64_t)m->spec.c * m->spec.h * m->spec.w;
    int rc = mtc_model_reserve(m, SAL_BATCH, e);
    if (rc) return rc;
    float *xb = malloc((size_t)SAL_BATCH * (size_t)S * sizeof *xb);
    float *dx = malloc((size_t)SAL_BATCH * (size_t)S * sizeof *dx);
    float *d = malloc((size_t)SAL_BATCH * (size_t)m->spec.tasks[t].dim * sizeof *d);
    int32_t *cb = malloc(SAL_BATCH * sizeof *cb);
    double *acc = malloc((size_t)S * sizeof *acc);
    float *douts[MTC_MAX_TASKS] = {0};
    douts[t] = d;
    if (!xb || !dx || !d || !cb || !acc) {
        rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
        goto out;
    }
    if (smooth == 0) { /* plain gradient x input, SAL_BATCH samples a pass */
        for (int i0 = 0; i0 < n; i0 += SAL_BATCH) {
            const int B = n - i0 < SAL_BATCH ? n - i0 : SAL_BATCH;
            const float *xs = x + (int64_t)i0 * S;
            mtc_model_forward(m, xs, B, MTC_FWD_EVAL_GRAD, NULL);
            seed_dout(m, t, cls ? cls + i0 : NULL, B, d);
            mtc_model_input_grad(m, xs, douts, B, dx);
            for (int64_t j = 0; j < (int64_t)B * S; j++) out[(int64_t)i0 * S + j] = dx[j] * xs[j];
        }
        goto out;
    }
    /* SmoothGrad: per sample, the gradient averaged over `smooth` noisy
     * copies (noise drawn in sample order: the same bytes whatever the
     * batching), times the clean input; the class is fixed by the clean
     * sample (its label, else the model's prediction on it). */
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (int64_t)i * S;
        int32_t c = cls ? cls[i] : -1;
        if (m->spec.tasks[t].kind == MTC_TASK_CLS && (c < 0 || c >= m->spec.tasks[t].dim)) {
            mtc_model_forward(m, xi, 1, MTC_FWD_EVAL, NULL);
            seed_dout(m, t, NULL, 1, d);
            for (c = 0; d[c] == 0.0f; c++) {}
        }
        memset(acc, 0, (size_t)S * sizeof *acc);
        for (int k0 = 0; k0 < smooth; k0 += SAL_BATCH) {
            const int B = smooth - k0 < SAL_BATCH ? smooth - k0 : SAL_BATCH;
            for (int b = 0; b < B; b++) {
                float *xr = xb + (int64_t)b * S;
                for (int64_t j = 0; j < S; j++) xr[j] = xi[j] + noise * mtc_rng_normal(&r);
                cb[b] = c;
            }
            mtc_model_forward(m, xb, B, MTC_FWD_EVAL_GRAD, NULL);
            seed_dout(m, t, cb, B, d);
            mtc_model_input_grad(m, xb, douts, B, dx);
            for (int b = 0; b < B; b++)
                for (int64_t j = 0; j < S; j++) acc[j] += dx[(int64_t)b * S + j];
        }
        for (int64_t j = 0; j < S; j++) out[(int64_t)i * S + j] = (float)(acc[j] / smooth) * xi[j];
    }
out:
    free(xb); free(dx); free(d); free(cb); free(acc);
    return rc;
}

typedef struct { double v; int64_t i; } vi;

static int cmp_vi(const void *pa, const void *pb)
{
    const vi *a = pa, *b = pb;
    return a->v < b->v ? -1 : a->v > b->v ? 1 : (a->i > b->i) - (a->i < b->i);
}

/* Average ranks (ties share their mean rank) of v[0..n). */
static void ranks(const double *v, int64_t n, vi *s, double *rk)
{
    for (int64_t i = 0; i < n; i++) s[i].v = v[i], s[i].i = i;
    qsort(s, (size_t)n, sizeof *s, cmp_vi);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j + 1 < n && s[j + 1].v == s[i].v) j++;
        double avg = (double)(i + j) / 2.0 + 1.0;
        for (int64_t k = i; k <= j; k++) rk[s[k].i] = avg;
        i = j + 1;
    }
}

double mtc_spearman(const float *a, const float *b, int64_t n, int absolute)
{
    if (n < 2) return NAN;
    double *va = malloc((size_t)n * sizeof *va), *vb = malloc((size_t)n * sizeof *vb);
    double *ra = malloc((size_t)n * sizeof *ra), *rb = malloc((size_t)n * sizeof *rb);
    vi *ord = malloc((size_t)n * sizeof *ord);
    double rho = NAN;
    if (va && vb && ra && rb && ord) {
        for (int64_t i = 0; i < n; i++) {
            va[i] = absolute ? fabs((double)a[i]) : a[i];
            vb[i] = absolute ? fabs((double)b[i]) : b[i];
        }
        ranks(va, n, ord, ra);
        ranks(vb, n, ord, rb);
        double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
        for (int64_t i = 0; i < n; i++) ma += ra[i], mb += rb[i];
        ma /= (double)n, mb /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            double x = ra[i] - ma, y = rb[i] - mb;
            sab += x * y, saa += x * x, sbb += y * y;
        }
        rho = saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN; /* a constant map has no ranking */
    }
    free(va); free(vb); free(ra); free(rb); free(ord);
    return rho;
}
