/*
 * report.c — numbers for the end-of-run distillation report: how closely a
 * student follows its teacher on the same samples, and the share of the
 * teacher-student gap that KD closed. Printing is the CLI's job.
 */
#include "mtc.h"

#include <math.h>

/* log sigmoid(x), stable for large |x| */
static double log_sigmoid(double x)
{
    return x < 0 ? x - log1p(exp(x)) : -log1p(exp(-x));
}

/* Row log-softmax normaliser: max + log sum exp(x - max). */
static double row_logz(const float *x, int K)
{
    double mx = x[0], s = 0;
    for (int k = 1; k < K; k++) mx = x[k] > mx ? x[k] : mx;
    for (int k = 0; k < K; k++) s += exp(x[k] - mx);
    return mx + log(s);
}

static int row_argmax(const float *x, int K)
{
    int best = 0;
    for (int k = 1; k < K; k++)
        if (x[k] > x[best]) best = k;
    return best;
}

void mtc_distill_agreement(int kind, int dim, const float *t, const float *s, int64_t n, mtc_agreement *a)
{
    a->agree = a->kl = a->mean_abs_diff = NAN;
    if (n < 1 || dim < 1) return;
    double agree = 0, kl = 0, mad = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *ti = t + i * dim, *si = s + i * dim;
        if (kind == MTC_TASK_CLS) {
            /* KL(p_t || p_s) = sum_k p_t,k (log p_t,k - log p_s,k), T = 1 */
            double zt = row_logz(ti, dim), zs = row_logz(si, dim), r = 0;
            for (int k = 0; k < dim; k++) {
                double lpt = ti[k] - zt, lps = si[k] - zs;
                r += exp(lpt) * (lpt - lps);
            }
            kl += r;
            agree += row_argmax(ti, dim) == row_argmax(si, dim);
        } else if (kind == MTC_TASK_BIN) {
            for (int k = 0; k < dim; k++) {
                /* Bernoulli KL: p log(p/q) + (1-p) log((1-p)/(1-q)) */
                double p = 1.0 / (1.0 + exp(-(double)ti[k]));
                kl += p * (log_sigmoid(ti[k]) - log_sigmoid(si[k])) +
                      (1 - p) * (log_sigmoid(-(double)ti[k]) - log_sigmoid(-(double)si[k]));
                agree += (ti[k] > 0) == (si[k] > 0);
            }
        } else {
            for (int k = 0; k < dim; k++) mad += fabs((double)ti[k] - si[k]);
        }
    }
    if (kind == MTC_TASK_CLS) {
        a->agree = agree / n;
        a->kl = kl / n;
    } else if (kind == MTC_TASK_BIN) {
        a->agree = agree / ((double)n * dim);
        a->kl = kl / ((double)n * dim);
    } else {
        a->mean_abs_diff = mad / ((double)n * dim);
    }
}

/* One labelled sample's score (see mtc_distill_paired); NAN: unlabelled. */
static double sample_score(int kind, int dim, const float *o, const int32_t *labels, const float *targets,
                           int64_t i)
{
    if (kind == MTC_TASK_CLS) {
        if (labels[i] == MTC_LABEL_MISSING) return NAN;
        return row_argmax(o, dim) == labels[i];
    }
    const float *tg = targets + i * dim;
    if (!mtc_row_labelled(tg, dim)) return NAN;
    double s = 0;
    for (int k = 0; k < dim; k++)
        s += kind == MTC_TASK_BIN ? (double)(mtc_bin_pred(o[k]) == mtc_bin_pos(tg[k])) : fabs((double)o[k] - tg[k]);
    return s / dim;
}

void mtc_distill_paired(int kind, int dim, const float *a, const float *b, const int32_t *labels,
                        const float *targets, int64_t n, mtc_paired *p)
{
    p->diff = p->se = p->ci95 = NAN;
    p->n_used = 0;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n && dim > 0; i++) {
        double sa = sample_score(kind, dim, a + i * dim, labels, targets, i);
        if (isnan(sa)) continue;
        double v = sa - sample_score(kind, dim, b + i * dim, labels, targets, i);
        sum += v;
        sq += v * v;
        p->n_used++;
    }
    const int64_t m = p->n_used;
    if (m < 1) return;
    p->diff = sum / m;
    if (m < 2) return;
    double var = (sq - sum * sum / m) / (m - 1); /* sample variance of the differences */
    p->se = sqrt(var > 0 ? var / m : 0);
    p->ci95 = 1.96 * p->se;
}

double mtc_distill_gap_closed(double teacher, double kd, double scratch, int higher_is_better)
{
    double gap = teacher - scratch;
    if (!higher_is_better) gap = -gap;
    /* a teacher no better than the scratch student leaves no gap to close */
    if (!isfinite(gap) || !isfinite(kd) || gap < 1e-12) return NAN;
    return (higher_is_better ? kd - scratch : scratch - kd) / gap;
}

int mtc_distill_tune_worse(const double *v, const double *v0, const int *lower_better, int ntasks)
{
    for (int t = 0; t < ntasks; t++)
        if (lower_better[t] ? v[t] > v0[t] : v[t] < v0[t]) return t;
    return -1;
}

int mtc_distill_tune_fallback(const double (*val)[MTC_MAX_TASKS], int n, const int *lower_better, int ntasks)
{
    int best = 0;
    double best_gain = 0;
    for (int g = 1; g < n; g++) {
        if (mtc_distill_tune_worse(val[g], val[0], lower_better, ntasks) >= 0) continue;
        double gain = 0;
        for (int t = 0; t < ntasks; t++) {
            const double v0 = val[0][t], v = val[g][t];
            if (!(fabs(v0) > 0) || !isfinite(v)) continue;
            gain += (lower_better[t] ? v0 - v : v - v0) / fabs(v0);
        }
        if (gain > best_gain) best = g, best_gain = gain;
    }
    return best;
}
