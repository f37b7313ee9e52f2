/*
 * metrics.c — evaluation metrics for the three task kinds.
 *
 * Classification (K classes), prediction = argmax of the logits (first on
 * ties). With TP_c = confusion[c][c], P_c = column sum (predicted c),
 * T_c = row sum (true c), a class is "present" when T_c + P_c > 0 and
 *   precision_c = TP_c/P_c (0 when P_c = 0), recall_c = TP_c/T_c (0 when
 *   T_c = 0), f1_c = 2·prec·rec/(prec+rec) (0 when both are 0);
 * precision/recall/f1 are the means over present classes (sklearn's macro
 * average with labels = union of y_true and y_pred, zero_division = 0).
 * AUC: one-vs-rest on softmax probabilities, averaged over classes whose
 * label column has both positives and negatives; K == 2 uses class 1 only.
 * When no class qualifies, auc = 0.5. loss = mean softmax CE.
 *
 * Binary (K independent outputs): target ≥ 0.5 is positive, prediction is
 * logit > 0 (σ > 0.5). accuracy = mean over all n·K decisions; f1 = macro over
 * outputs where it is defined (some positive label or prediction), 0 if none;
 * auc = macro over outputs with both classes (scores = logits), 0.5 if none;
 * loss = mtc_loss_bce (mean over n of the sum over K).
 *
 * Regression: per output d, MAE_d, MSE_d, R²_d = 1 − SS_res/SS_tot
 * (R²_d = 0 when SS_tot = 0); each averaged over the D outputs.
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct scored {
    float s;
    int32_t pos;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

/* Mann–Whitney: AUC = (Σ rank(positives) − P(P+1)/2) / (P·N), ranks
 * 1-based with ties given their average rank. 0.5 if a class is empty,
 * NaN if out of memory. */
static double auc_sorted(scored *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    double rank_sum = 0.0;
    int64_t P = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i, pos = 0;
        while (j < n && v[j].s == v[i].s) pos += v[j++].pos;
        /* ranks i+1 .. j share the average (i + 1 + j)/2 */
        rank_sum += (double)pos * 0.5 * (double)(i + 1 + j);
        P += pos;
        i = j;
    }
    const int64_t N = n - P;
    if (P == 0 || N == 0) return 0.5;
    return (rank_sum - 0.5 * (double)P * (double)(P + 1)) / ((double)P * (double)N);
}

double mtc_auc(const float *score, const uint8_t *positive, int64_t n)
{
    if (n <= 0) return 0.5;
    scored *v = malloc((size_t)n * sizeof *v);
    if (!v) return NAN;
    for (int64_t i = 0; i < n; i++) {
        v[i].s = score[i];
        v[i].pos = positive[i] != 0;
    }
    double a = auc_sorted(v, n);
    free(v);
    return a;
}

/* Stable per-row log-sum-exp and softmax into p (K). Returns logz. */
static double row_softmax(float *p, const float *x, int K)
{
    float mx = x[0];
    for (int k = 1; k < K; k++) mx = x[k] > mx ? x[k] : mx;
    double z = 0.0;
    for (int k = 0; k < K; k++) z += exp((double)x[k] - mx);
    for (int k = 0; k < K; k++) p[k] = (float)(exp((double)x[k] - mx) / z);
    return mx + log(z);
}

void mtc_cls_metrics_free(mtc_cls_metrics *m)
{
    free(m->confusion);
    m->confusion = NULL;
}

int mtc_metrics_cls(const float *logits, const int32_t *labels, int64_t n,
                    int K, mtc_cls_metrics *m, mtc_err *e)
{
    memset(m, 0, sizeof *m);
    m->K = K;
    m->n = n;
    if (K <= 0 || n < 0) return mtc_err_set(e, MTC_EINPUT, "metrics: bad shape n=%lld K=%d", (long long)n, K);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return mtc_err_set(e, MTC_EINPUT, "metrics: label %d at row %lld outside [0,%d)",
                               labels[i], (long long)i, K);
    m->confusion = calloc((size_t)K * K, sizeof *m->confusion);
    float *prob = malloc((size_t)(n > 0 ? n : 1) * K * sizeof *prob);
    scored *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!m->confusion || !prob || !v) {
        free(prob);
        free(v);
        mtc_cls_metrics_free(m);
        return mtc_err_set(e, MTC_ENOMEM, "metrics: out of memory for %lld rows", (long long)n);
    }
    double loss = 0.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *x = logits + i * K;
        int pred = 0;
        for (int k = 1; k < K; k++)
            if (x[k] > x[pred]) pred = k;
        correct += pred == labels[i];
        m->confusion[(int64_t)labels[i] * K + pred]++;
        loss += row_softmax(prob + i * K, x, K) - x[labels[i]];
    }
    m->accuracy = n > 0 ? (double)correct / n : 0.0;
    m->loss = n > 0 ? loss / n : 0.0;

    double sp = 0.0, sr = 0.0, sf = 0.0, sauc = 0.0;
    int present = 0, auc_classes = 0;
    for (int c = 0; c < K; c++) {
        int64_t tp = m->confusion[(int64_t)c * K + c], tr = 0, pr = 0;
        for (int j = 0; j < K; j++) {
            tr += m->confusion[(int64_t)c * K + j];
            pr += m->confusion[(int64_t)j * K + c];
        }
        if (tr + pr > 0) {
            double p = pr > 0 ? (double)tp / pr : 0.0, r = tr > 0 ? (double)tp / tr : 0.0;
            sp += p;
            sr += r;
            sf += p + r > 0 ? 2 * p * r / (p + r) : 0.0;
            present++;
        }
        if (tr == 0 || tr == n || (K == 2 && c == 0)) continue;
        for (int64_t i = 0; i < n; i++) {
            v[i].s = prob[i * K + c];
            v[i].pos = labels[i] == c;
        }
        sauc += auc_sorted(v, n);
        auc_classes++;
    }
    if (present) {
        m->precision = sp / present;
        m->recall = sr / present;
        m->f1 = sf / present;
    }
    m->auc = auc_classes ? sauc / auc_classes : 0.5;
    free(prob);
    free(v);
    return MTC_OK;
}

int mtc_metrics_bin(const float *logits, const float *targets, int64_t n,
                    int K, mtc_bin_metrics *m, mtc_err *e)
{
    memset(m, 0, sizeof *m);
    m->K = K;
    if (K <= 0 || n < 0) return mtc_err_set(e, MTC_EINPUT, "metrics: bad shape n=%lld K=%d", (long long)n, K);
    scored *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v) return mtc_err_set(e, MTC_ENOMEM, "metrics: out of memory for %lld rows", (long long)n);
    int64_t correct = 0;
    double loss = 0.0, sf = 0.0, sauc = 0.0;
    int nf = 0, na = 0;
    for (int k = 0; k < K; k++) {
        int64_t tp = 0, fp = 0, fn = 0, P = 0;
        for (int64_t i = 0; i < n; i++) {
            const float x = logits[i * K + k], y = targets[i * K + k];
            const int pos = mtc_bin_pos(y), pred = mtc_bin_pred(x);
            correct += pos == pred;
            tp += pos && pred;
            fp += !pos && pred;
            fn += pos && !pred;
            P += pos;
            loss += (x > 0.0f ? x : 0.0f) - (double)x * y + log1p(exp(-fabs((double)x)));
            v[i].s = x;
            v[i].pos = pos;
        }
        if (tp + fp + fn > 0) {
            sf += 2.0 * tp / (double)(2 * tp + fp + fn);
            nf++;
        }
        if (P > 0 && P < n) {
            sauc += auc_sorted(v, n);
            na++;
        }
    }
    m->accuracy = n > 0 ? (double)correct / ((double)n * K) : 0.0;
    m->loss = n > 0 ? loss / n : 0.0;
    m->f1 = nf ? sf / nf : 0.0;
    m->auc = na ? sauc / na : 0.5;
    free(v);
    return MTC_OK;
}

void mtc_metrics_reg(const float *pred, const float *targets, int64_t n, int D,
                     mtc_reg_metrics *m)
{
    memset(m, 0, sizeof *m);
    if (n <= 0 || D <= 0) return;
    for (int d = 0; d < D; d++) {
        double mean = 0.0, ae = 0.0, se = 0.0, tot = 0.0;
        for (int64_t i = 0; i < n; i++) mean += targets[i * D + d];
        mean /= n;
        for (int64_t i = 0; i < n; i++) {
            double r = (double)pred[i * D + d] - targets[i * D + d];
            double c = (double)targets[i * D + d] - mean;
            ae += fabs(r);
            se += r * r;
            tot += c * c;
        }
        m->mae += ae / n;
        m->mse += se / n;
        m->r2 += tot > 0.0 ? 1.0 - se / tot : 0.0;
    }
    m->mae /= D;
    m->mse /= D;
    m->r2 /= D;
}

/* ---- drops and budgets (quantize and verify) ------------------------------ */

double mtc_metric_drop(int kind, double ref, double cand, int relative)
{
    double d = kind == MTC_TASK_REG ? cand - ref : ref - cand;
    if (relative) return fabs(ref) > 0 ? 100.0 * d / fabs(ref) : (d > 0 ? INFINITY : 0);
    return kind == MTC_TASK_REG ? d : 100.0 * d;
}

int mtc_budget_parse(const mtc_model *m, const char *s, double dflt, double *budget, int *given,
                     mtc_err *e)
{
    int T = m->spec.ntasks;
    for (int t = 0; t < T; t++) { budget[t] = dflt; given[t] = 0; }
    if (!s || !*s) return 0;
    char buf[2048];
    if (strlen(s) >= sizeof buf) return mtc_err_set(e, MTC_EINPUT, "--max-drop: too long");
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return mtc_err_set(e, MTC_EINPUT, "--max-drop %s: expected TASK=POINTS", tok);
        *eq = 0;
        int t = mtc_spec_task_index(&m->spec, tok);
        if (t < 0) return mtc_err_set(e, MTC_EINPUT, "--max-drop: the model has no task '%s'", tok);
        char *end;
        double v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || !isfinite(v) || v < 0 ||
            (m->spec.tasks[t].kind != MTC_TASK_REG && v > 100))
            return mtc_err_set(e, MTC_EINPUT, "--max-drop %s=%s: expected a number of points in [0, 100]", tok,
                               eq + 1);
        if (given[t]) return mtc_err_set(e, MTC_EINPUT, "--max-drop: task '%s' given twice", tok);
        budget[t] = v;
        given[t] = 1;
    }
    return 0;
}

/* ---- calibration --------------------------------------------------------- */

int mtc_calibration(const float *conf, const uint8_t *correct, int64_t n, int nbins, mtc_reliability *c, mtc_err *e)
{
    memset(c, 0, sizeof *c);
    if (nbins < 1 || nbins > MTC_CALIB_MAX_BINS)
        return mtc_err_set(e, MTC_EINPUT, "calibration: %d bins (want 1..%d)", nbins, MTC_CALIB_MAX_BINS);
    c->nbins = nbins;
    c->n = n;
    double sc[MTC_CALIB_MAX_BINS] = {0}, sa[MTC_CALIB_MAX_BINS] = {0};
    for (int64_t i = 0; i < n; i++) {
        double p = conf[i];
        if (!(p >= 0.0 && p <= 1.0)) return mtc_err_set(e, MTC_EINPUT, "calibration: confidence %g of sample %lld "
                                                        "is not in [0, 1]", p, (long long)i);
        int b = (int)(p * nbins); /* bins (k/B, (k+1)/B], the first [0, 1/B] */
        if (b > 0 && p * nbins == (double)b) b--;
        if (b >= nbins) b = nbins - 1;
        c->bin_n[b]++;
        sc[b] += p;
        sa[b] += correct[i] ? 1.0 : 0.0;
    }
    for (int b = 0; b < nbins; b++) {
        if (!c->bin_n[b]) continue;
        c->bin_conf[b] = sc[b] / (double)c->bin_n[b];
        c->bin_acc[b] = sa[b] / (double)c->bin_n[b];
        double gap = fabs(c->bin_acc[b] - c->bin_conf[b]);
        c->ece += (double)c->bin_n[b] / (double)n * gap;
        if (gap > c->mce) c->mce = gap;
    }
    return 0;
}
