/*
 * calib.c — activation calibration: the range of each activation tensor
 * over the calibration samples, by min/max, percentile, or entropy.
 *
 * Two passes over the same samples: pass 0 finds min, max and max|x|; pass 1
 * fills two 2048-bin histograms, of x over [min, max] and of |x| over
 * [0, max|x|]. Percentile reads the histograms' cumulative counts.
 *
 * Entropy is TensorRT's calibrator (Migacz 2017, "8-bit inference with
 * TensorRT"): for each candidate threshold i (bins kept, from `levels` to
 * 2048) P = hist[0:i] with the clipped outliers added to bin i-1; Q = the
 * kept bins merged into `levels` buckets and spread back evenly over the
 * non-empty bins; pick the i with the smallest KL(P‖Q).
 */
#include "mtc.h"

#include <math.h>
#include <string.h>

int mtc_calib_method_parse(const char *s)
{
    if (!strcmp(s, "minmax")) return MTC_CALIB_MINMAX;
    if (!strcmp(s, "percentile")) return MTC_CALIB_PERCENTILE;
    if (!strcmp(s, "entropy")) return MTC_CALIB_ENTROPY;
    return -1;
}

const char *mtc_calib_method_name(int m)
{
    return m == MTC_CALIB_MINMAX ? "minmax" : m == MTC_CALIB_PERCENTILE ? "percentile"
         : m == MTC_CALIB_ENTROPY ? "entropy" : "?";
}

void mtc_calib_init(mtc_calib *c)
{
    memset(c, 0, sizeof *c);
    c->lo = INFINITY;
    c->hi = -INFINITY;
}

void mtc_calib_next_pass(mtc_calib *c)
{
    c->pass = 1;
    if (!(c->lo <= c->hi)) c->lo = c->hi = 0;
}

static int bin_of(double v, double lo, double width)
{
    if (!(width > 0)) return 0;
    int b = (int)((v - lo) / width);
    return b < 0 ? 0 : b >= MTC_CALIB_BINS ? MTC_CALIB_BINS - 1 : b;
}

void mtc_calib_observe(mtc_calib *c, const float *x, int64_t n)
{
    if (c->pass == 0) {
        double lo = c->lo, hi = c->hi;
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(x[i])) continue;
            if (x[i] < lo) lo = x[i];
            if (x[i] > hi) hi = x[i];
        }
        c->lo = lo; c->hi = hi;
        c->amax = fmax(fabs(lo), fabs(hi));
        if (!isfinite(c->amax)) c->amax = 0;
        return;
    }
    double w = (c->hi - c->lo) / MTC_CALIB_BINS, aw = c->amax / MTC_CALIB_BINS;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        c->hist[bin_of(x[i], c->lo, w)] += 1;
        c->ahist[bin_of(fabs(x[i]), 0, aw)] += 1;
    }
    c->n += n;
}

/* Value below which `pct` percent of the histogram's mass lies. */
static double hist_percentile(const double *h, double lo, double width, double pct)
{
    double total = 0;
    for (int i = 0; i < MTC_CALIB_BINS; i++) total += h[i];
    if (total <= 0) return lo;
    double target = total * pct / 100.0, acc = 0;
    for (int i = 0; i < MTC_CALIB_BINS; i++) {
        acc += h[i];
        if (acc >= target) return lo + (i + 1) * width;
    }
    return lo + MTC_CALIB_BINS * width;
}

/* KL(p‖q) of two unnormalised histograms, with the smoothing of the
 * TensorRT/MXNet implementation: empty bins get eps, taken from the others. */
static double kl_smoothed(double *p, double *q, int n)
{
    const double eps = 1e-4;
    double *v[2] = {p, q};
    for (int k = 0; k < 2; k++) {
        double s = 0;
        int zeros = 0;
        for (int i = 0; i < n; i++) { s += v[k][i]; zeros += v[k][i] == 0; }
        if (s <= 0 || zeros == n) return INFINITY;
        double take = eps * zeros / (n - zeros);
        for (int i = 0; i < n; i++) {
            double x = v[k][i] / s;
            v[k][i] = x == 0 ? eps : x - take;
            if (v[k][i] <= 0) v[k][i] = eps; /* too few non-zeros to pay for eps */
        }
    }
    double kl = 0;
    for (int i = 0; i < n; i++) kl += p[i] * log(p[i] / q[i]);
    return kl;
}

double mtc_calib_entropy_threshold(const double *hist, int nbins, double width, int levels)
{
    if (nbins <= levels) return nbins * width;
    double p[MTC_CALIB_BINS], q[MTC_CALIB_BINS], tail[MTC_CALIB_BINS + 1];
    tail[nbins] = 0;
    for (int i = nbins - 1; i >= 0; i--) tail[i] = tail[i + 1] + hist[i];
    double best = INFINITY;
    int best_i = nbins;
    for (int i = levels; i <= nbins; i++) {
        memcpy(p, hist, sizeof(double) * (size_t)i);
        p[i - 1] += tail[i];
        /* merge hist[0:i] into `levels` buckets, spread over non-empty bins */
        int merged = i / levels;
        for (int j = 0; j < levels; j++) {
            int start = j * merged, stop = j == levels - 1 ? i : start + merged;
            double s = 0;
            int nz = 0;
            for (int k = start; k < stop; k++) { s += hist[k]; nz += p[k] != 0; }
            for (int k = start; k < stop; k++) q[k] = (p[k] != 0 && nz) ? s / nz : 0;
        }
        double kl = kl_smoothed(p, q, i);
        if (kl < best) { best = kl; best_i = i; }
    }
    return best_i * width;
}

void mtc_calib_result(const mtc_calib *c, int method, double percentile, int symmetric, float *lo,
                      float *hi)
{
    double l = c->lo, h = c->hi;
    if (c->n == 0 || !(l <= h)) { *lo = 0; *hi = 0; return; }
    double w = (h - l) / MTC_CALIB_BINS, aw = c->amax / MTC_CALIB_BINS;
    int nonneg = l >= 0;
    if (method == MTC_CALIB_PERCENTILE) {
        if (symmetric || nonneg) {
            double t = hist_percentile(c->ahist, 0, aw, percentile);
            if (nonneg) { h = fmin(h, t); }
            else { l = fmax(l, -t); h = fmin(h, t); }
        } else {
            double a = hist_percentile(c->hist, l, w, 100.0 - percentile);
            double b = hist_percentile(c->hist, l, w, percentile);
            l = fmax(l, a - w); /* the lower bin's left edge */
            h = fmin(h, b);
        }
    } else if (method == MTC_CALIB_ENTROPY) {
        int levels = (nonneg && !symmetric) ? 255 : 128;
        double t = mtc_calib_entropy_threshold(c->ahist, MTC_CALIB_BINS, aw, levels);
        l = fmax(l, -t);
        h = fmin(h, t);
    }
    *lo = (float)l;
    *hi = (float)h;
}
