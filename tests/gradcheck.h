/*
 * gradcheck.h — finite-difference helpers for the layer and loss tests
 * (header-only, static). The objective is a double-precision reference of
 * the forward pass, so central differences with h = 1e-6 are accurate to
 * ~1e-9 and the comparison measures the float kernel, not the FD noise.
 */
#ifndef MTC_GRADCHECK_H
#define MTC_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtc.h"

/* Objective evaluated in double from the arrays reachable through ctx. */
typedef double (*gc_fn)(void *ctx);

#define GC_H 1e-6

/* g[i] = (f(x + h·e_i) − f(x − h·e_i)) / 2h, x perturbed in place. */
static inline void gc_fd(gc_fn f, void *ctx, double *x, int64_t n, double *g)
{
    for (int64_t i = 0; i < n; i++) {
        double save = x[i];
        x[i] = save + GC_H;
        double fp = f(ctx);
        x[i] = save - GC_H;
        double fm = f(ctx);
        x[i] = save;
        g[i] = (fp - fm) / (2 * GC_H);
    }
}

/* max_i |a_i − ref_i| / max(max_i |ref_i|, 1e-6): the error relative to the
 * gradient's own scale, so near-zero entries do not blow it up. */
static inline double gc_err(const float *a, const double *ref, int64_t n)
{
    double md = 0.0, mr = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - ref[i]));
        mr = fmax(mr, fabs(ref[i]));
    }
    return md / mr;
}

static inline int gc_ok(const char *what, const float *a, const double *ref,
                        int64_t n, double tol)
{
    double err = gc_err(a, ref, n);
    if (getenv("GC_VERBOSE")) fprintf(stderr, "gradcheck %-28s %.2e (tol %.0e)\n", what, err, tol);
    if (!(err <= tol)) {
        fprintf(stderr, "gradcheck %s: relative error %.3g > %.1g\n", what, err, tol);
        for (int64_t i = 0; i < n && i < 8; i++)
            fprintf(stderr, "  [%lld] analytic %.8g  numeric %.8g\n", (long long)i,
                    (double)a[i], ref[i]);
        return 0;
    }
    return 1;
}

/* After a second identical backward call, g2 must be 2·g1 (accumulation). */
static inline int gc_doubled(const char *what, const float *g1, const float *g2,
                             int64_t n)
{
    double md = 0.0, mr = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)g2[i] - 2.0 * g1[i]));
        mr = fmax(mr, fabs(2.0 * g1[i]));
    }
    if (md / mr > 1e-6) {
        fprintf(stderr, "accumulate %s: second call gave %.3g relative off 2x\n", what, md / mr);
        return 0;
    }
    return 1;
}

static inline float *gc_rand(mtc_rng *r, int64_t n, float lo, float hi)
{
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * mtc_rng_uniform(r);
    return x;
}

static inline float *gc_zeros(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(float));
}

static inline double *gc_dup(const float *x, int64_t n)
{
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static inline double *gc_dzeros(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(double));
}

static inline float *gc_copy(const float *x, int64_t n)
{
    float *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
    memcpy(c, x, (size_t)n * sizeof *c);
    return c;
}

#endif
