/*
 * norm.c — batch normalisation over (B,C,S) (S = spatial size, 1 after a
 * dense layer), layer normalisation over the last dim of (N,F), and folding
 * an eval-mode batchnorm into the preceding layer.
 *   BN:  y = γ·(x − μ_c)·rstd_c + β,  rstd = 1/√(var + eps), var biased.
 *        Running stats: run = (1−m)·run + m·batch, running var unbiased
 *        (n/(n−1)·var, n = B·S).
 *   LN:  y = γ·(x − μ_row)·rstd_row + β.
 * Statistics are accumulated in double. gamma/beta may be NULL (1 and 0);
 * run_mean/run_var may be NULL in train forward (not updated).
 */
#include "mtc.h"

#include <math.h>

/* Sums over one channel's S contiguous values: 16 float lanes over blocks of
 * at most BN_BLOCK values (64 per lane), each block's lanes then added into
 * 16 double lanes, which are combined in a fixed order. Independent float
 * adds vectorise with no conversions in the inner loop (the double lanes
 * converted every value and made BN backward 9% of a BN teacher's
 * training); the blocks keep float rounding to 64 terms per lane. */
#define BN_LANES 16
#define BN_BLOCK 1024 /* a multiple of BN_LANES */

static double fold_lanes(const double *l)
{
    double h[8];
    for (int j = 0; j < 8; j++) h[j] = l[j] + l[j + 8];
    return ((h[0] + h[1]) + (h[2] + h[3])) + ((h[4] + h[5]) + (h[6] + h[7]));
}

/* l += f for the lanes a block of n values used (n < BN_LANES: a short row) */
static void lanes_add(double *l, const float *f, int n)
{
    const int u = n < BN_LANES ? n : BN_LANES;
    for (int j = 0; j < u; j++) l[j] += f[j];
}

/* Σ (x − mu) (square 0) or Σ (x − mu)² (square 1) over one row into the
 * lanes; inlined with constant arguments, so each use is its own loop. The
 * sum passes mu = 0: x − 0 is x, bit for bit. */
static inline void lanes_moment(double *l, const float *x, int S, float mu, int square)
{
    for (int i0 = 0; i0 < S; i0 += BN_BLOCK) {
        const int n = S - i0 < BN_BLOCK ? S - i0 : BN_BLOCK;
        const float *xs = x + i0;
        float f[BN_LANES] = {0};
        int i = 0;
        for (; i + BN_LANES <= n; i += BN_LANES)
            for (int j = 0; j < BN_LANES; j++) {
                const float d = xs[i + j] - mu;
                f[j] += square ? d * d : d;
            }
        for (; i < n; i++) {
            const float d = xs[i] - mu;
            f[i % BN_LANES] += square ? d * d : d;
        }
        lanes_add(l, f, n);
    }
}

void mtc_batchnorm_forward_train_ch(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                                    const float *beta, float *run_mean, float *run_var, float momentum, float eps,
                                    int B, int C, int S, int c0, int c1, int relu)
{
    const int64_t n = (int64_t)B * S;
    for (int c = c0; c < c1; c++) {
        double ls[BN_LANES] = {0}, lq[BN_LANES] = {0};
        for (int b = 0; b < B; b++) lanes_moment(ls, in + ((int64_t)b * C + c) * S, S, 0.0f, 0);
        double mu = n > 0 ? fold_lanes(ls) / (double)n : 0.0;
        /* two-pass variance: no cancellation */
        for (int b = 0; b < B; b++) lanes_moment(lq, in + ((int64_t)b * C + c) * S, S, (float)mu, 1);
        double sq = fold_lanes(lq);
        double var = n > 0 ? sq / (double)n : 0.0;
        float rs = (float)(1.0 / sqrt(var + eps)), m = (float)mu;
        if (mean) mean[c] = m;
        if (rstd) rstd[c] = rs;
        if (run_mean) run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * m;
        if (run_var) {
            double uv = n > 1 ? sq / (double)(n - 1) : var;
            run_var[c] = (1.0f - momentum) * run_var[c] + momentum * (float)uv;
        }
        float g = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
        float a = g * rs, sh = bt - m * a; /* y = a·x + sh */
        for (int b = 0; b < B; b++) {
            const float *x = in + ((int64_t)b * C + c) * S;
            float *y = out + ((int64_t)b * C + c) * S;
            if (relu)
                for (int i = 0; i < S; i++) {
                    const float v = a * x[i] + sh;
                    y[i] = v > 0.0f ? v : 0.0f; /* mtc_act_forward's relu */
                }
            else
                for (int i = 0; i < S; i++) y[i] = a * x[i] + sh;
        }
    }
}

void mtc_batchnorm_forward_train(float *out, float *mean, float *rstd,
                                 const float *in, const float *gamma,
                                 const float *beta, float *run_mean,
                                 float *run_var, float momentum, float eps,
                                 int B, int C, int S)
{
    mtc_batchnorm_forward_train_ch(out, mean, rstd, in, gamma, beta, run_mean, run_var, momentum, eps, B, C, S, 0, C,
                                   0);
}

void mtc_batchnorm_forward_eval(float *out, const float *in, const float *gamma,
                                const float *beta, const float *run_mean,
                                const float *run_var, float eps, int B, int C,
                                int S)
{
    for (int c = 0; c < C; c++) {
        float g = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
        float a = (float)(g / sqrt((double)run_var[c] + eps));
        float sh = bt - run_mean[c] * a;
        for (int b = 0; b < B; b++) {
            const float *x = in + ((int64_t)b * C + c) * S;
            float *y = out + ((int64_t)b * C + c) * S;
            for (int i = 0; i < S; i++) y[i] = a * x[i] + sh;
        }
    }
}

/* x̂ = (x−μ)·rstd;  dβ += Σ dy;  dγ += Σ dy·x̂;
 * dx += γ·rstd/n · (n·dy − Σdy − x̂·Σ(dy·x̂)). */
/* Σdy and Σdy·x̂ of one channel's row of S values into the lanes, in float
 * blocks as lanes_moment; with o (a fused relu's output) dy counts only where
 * o > 0 (a blend in the same loop). */
static void bwd_sums(double *ly, double *lx, const float *x, const float *dy, const float *o, int S, float mu,
                     float rs)
{
    for (int i0 = 0; i0 < S; i0 += BN_BLOCK) {
        const int n = S - i0 < BN_BLOCK ? S - i0 : BN_BLOCK;
        const float *d = dy + i0, *xs = x + i0, *os = o ? o + i0 : NULL;
        float fy[BN_LANES] = {0}, fx[BN_LANES] = {0};
        int i = 0;
        if (os)
            for (; i + BN_LANES <= n; i += BN_LANES)
                for (int j = 0; j < BN_LANES; j++) {
                    const float g = os[i + j] > 0.0f ? d[i + j] : 0.0f;
                    fy[j] += g;
                    fx[j] += g * ((xs[i + j] - mu) * rs);
                }
        else
            for (; i + BN_LANES <= n; i += BN_LANES)
                for (int j = 0; j < BN_LANES; j++) {
                    fy[j] += d[i + j];
                    fx[j] += d[i + j] * ((xs[i + j] - mu) * rs);
                }
        for (; i < n; i++) {
            const float g = !os || os[i] > 0.0f ? d[i] : 0.0f;
            fy[i % BN_LANES] += g;
            fx[i % BN_LANES] += g * ((xs[i] - mu) * rs);
        }
        lanes_add(ly, fy, n);
        lanes_add(lx, fx, n);
    }
}

void mtc_batchnorm_backward_ch(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                               const float *mean, const float *rstd, const float *gamma, int B, int C, int S,
                               int c0, int c1, const float *relu_out, int accumulate)
{
    const int64_t n = (int64_t)B * S;
    if (n <= 0) return;
    for (int c = c0; c < c1; c++) {
        const float mu = mean[c], rs = rstd[c];
        double ly[BN_LANES] = {0}, lx[BN_LANES] = {0};
        for (int b = 0; b < B; b++) {
            const int64_t at = ((int64_t)b * C + c) * S;
            bwd_sums(ly, lx, in + at, dout + at, relu_out ? relu_out + at : NULL, S, mu, rs);
        }
        const double sdy = fold_lanes(ly), sdyx = fold_lanes(lx);
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
        if (!din) continue;
        const float g = gamma ? gamma[c] : 1.0f;
        const float k = g * rs, mdy = (float)(sdy / n), mdyx = (float)(sdyx / n);
        for (int b = 0; b < B; b++) {
            const int64_t at = ((int64_t)b * C + c) * S;
            const float *x = in + at, *dy = dout + at, *o = relu_out ? relu_out + at : NULL;
            float *dx = din + at;
            if (o && accumulate)
                for (int i = 0; i < S; i++)
                    dx[i] += k * ((o[i] > 0.0f ? dy[i] : 0.0f) - mdy - (x[i] - mu) * rs * mdyx);
            else if (o)
                for (int i = 0; i < S; i++)
                    dx[i] = k * ((o[i] > 0.0f ? dy[i] : 0.0f) - mdy - (x[i] - mu) * rs * mdyx);
            else if (accumulate)
                for (int i = 0; i < S; i++) dx[i] += k * (dy[i] - mdy - (x[i] - mu) * rs * mdyx);
            else
                for (int i = 0; i < S; i++) dx[i] = k * (dy[i] - mdy - (x[i] - mu) * rs * mdyx);
        }
    }
}

void mtc_batchnorm_backward(float *din, float *dgamma, float *dbeta,
                            const float *dout, const float *in,
                            const float *mean, const float *rstd,
                            const float *gamma, int B, int C, int S)
{
    mtc_batchnorm_backward_ch(din, dgamma, dbeta, dout, in, mean, rstd, gamma, B, C, S, 0, C, NULL, 1);
}

/* W'[c,:] = W[c,:]·a_c,  b'_c = (b_c − μ_c)·a_c + β_c,  a_c = γ_c/√(var_c+eps).
 * b must be non-NULL (the layer gains a bias if it had none: pass zeros). */
void mtc_batchnorm_fold(float *W, float *b, int C, int fan_in,
                        const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, float eps)
{
    for (int c = 0; c < C; c++) {
        double a = (gamma ? gamma[c] : 1.0) / sqrt((double)run_var[c] + eps);
        float *w = W + (int64_t)c * fan_in;
        for (int i = 0; i < fan_in; i++) w[i] = (float)(w[i] * a);
        b[c] = (float)(((double)b[c] - run_mean[c]) * a + (beta ? beta[c] : 0.0));
    }
}

void mtc_layernorm_forward(float *out, float *mean, float *rstd,
                           const float *in, const float *gamma,
                           const float *beta, int N, int F, float eps)
{
    for (int r = 0; r < N; r++) {
        const float *x = in + (int64_t)r * F;
        float *y = out + (int64_t)r * F;
        double sum = 0.0, sq = 0.0;
        for (int i = 0; i < F; i++) sum += x[i];
        double mu = F > 0 ? sum / F : 0.0;
        for (int i = 0; i < F; i++) {
            double d = x[i] - mu;
            sq += d * d;
        }
        float m = (float)mu, rs = (float)(1.0 / sqrt((F > 0 ? sq / F : 0.0) + eps));
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
        for (int i = 0; i < F; i++) {
            float v = (x[i] - m) * rs;
            y[i] = (gamma ? gamma[i] : 1.0f) * v + (beta ? beta[i] : 0.0f);
        }
    }
}

/* ĝ = dy·γ;  dx += rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂));  dγ += dy·x̂;  dβ += dy. */
void mtc_layernorm_backward(float *din, float *dgamma, float *dbeta,
                            const float *dout, const float *in,
                            const float *mean, const float *rstd,
                            const float *gamma, int N, int F)
{
    if (F <= 0) return;
    for (int r = 0; r < N; r++) {
        const float *x = in + (int64_t)r * F, *dy = dout + (int64_t)r * F;
        const float mu = mean[r], rs = rstd[r];
        double sg = 0.0, sgx = 0.0;
        for (int i = 0; i < F; i++) {
            float xh = (x[i] - mu) * rs, g = dy[i] * (gamma ? gamma[i] : 1.0f);
            sg += g;
            sgx += g * xh;
            if (dgamma) dgamma[i] += dy[i] * xh;
            if (dbeta) dbeta[i] += dy[i];
        }
        if (!din) continue;
        float *dx = din + (int64_t)r * F;
        const float mg = (float)(sg / F), mgx = (float)(sgx / F);
        for (int i = 0; i < F; i++) {
            float xh = (x[i] - mu) * rs, g = dy[i] * (gamma ? gamma[i] : 1.0f);
            dx[i] += rs * (g - mg - xh * mgx);
        }
    }
}
