/*
 * optim.c — first-order optimizers over one flat parameter vector, and
 * learning-rate schedules.
 * Per step, in this order:
 *   1. global grad norm ‖g‖ (double); if clip_norm > 0 and ‖g‖ > clip_norm,
 *      g ← g·clip_norm/‖g‖ (applied on the fly; `grads` is not modified)
 *   2. where decay_mask (NULL = everywhere):
 *        g += l2·p + l1·sign(p)  (+ weight_decay·p for SGD/Adam, coupled)
 *   3. SGD:   m = μ·m + g;  d = nesterov ? g + μ·m : m  (d = g if μ == 0);
 *             p −= lr·d
 *      Adam:  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
 *             p −= lr·m̂/(√v̂ + eps),  m̂ = m/(1−β1^t), v̂ = v/(1−β2^t)
 *      AdamW: p −= lr·wd·p where decay_mask (decoupled), then the Adam step.
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* indexed by mtc_opt_kind / mtc_sched_kind: the CLI's spellings */
static const char *const optim_names[] = {"sgd", "adam", "adamw"};
static const char *const sched_names[] = {"const", "step", "cosine"};

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

int mtc_optim_kind_parse(const char *s)
{
    return name_index(optim_names, 3, s);
}

const char *mtc_optim_kind_name(int kind)
{
    return (unsigned)kind < 3 ? optim_names[kind] : "?";
}

int mtc_sched_kind_parse(const char *s)
{
    return name_index(sched_names, 3, s);
}

const char *mtc_sched_kind_name(int kind)
{
    return (unsigned)kind < 3 ? sched_names[kind] : "?";
}

void mtc_optim_cfg_default(mtc_optim_cfg *c, int kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->momentum = kind == MTC_OPT_SGD ? 0.9f : 0.0f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->weight_decay = kind == MTC_OPT_ADAMW ? 0.01f : 0.0f; /* PyTorch AdamW default */
}

int mtc_optim_init(mtc_optim *o, const mtc_optim_cfg *cfg, int64_t n, mtc_err *e)
{
    memset(o, 0, sizeof *o);
    if (cfg->kind < MTC_OPT_SGD || cfg->kind > MTC_OPT_ADAMW)
        return mtc_err_set(e, MTC_EINPUT, "optimizer: unknown kind %d", cfg->kind);
    if (n < 0) return mtc_err_set(e, MTC_EINPUT, "optimizer: negative size %lld", (long long)n);
    if (cfg->kind != MTC_OPT_SGD &&
        (cfg->beta1 < 0 || cfg->beta1 >= 1 || cfg->beta2 < 0 || cfg->beta2 >= 1))
        return mtc_err_set(e, MTC_EINPUT, "optimizer: betas must be in [0,1)");
    o->cfg = *cfg;
    o->n = n;
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    int need_m = cfg->kind != MTC_OPT_SGD || cfg->momentum != 0.0f;
    int need_v = cfg->kind != MTC_OPT_SGD;
    if (need_m && !(o->m = calloc(1, bytes))) goto oom;
    if (need_v && !(o->v = calloc(1, bytes))) goto oom;
    return MTC_OK;
oom:
    mtc_optim_free(o);
    return mtc_err_set(e, MTC_ENOMEM, "optimizer: out of memory for %lld parameters",
                       (long long)n);
}

void mtc_optim_free(mtc_optim *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

static double grad_norm(const float *g, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

/* One step's constants; the element loop needs nothing else, so any
 * range of elements can be updated independently (bit for bit the same
 * whatever the split). */
typedef struct step_ctx {
    mtc_optim *o;
    float *params;
    const float *grads;
    const uint8_t *decay_mask;
    float lr, cs, l1, l2, b1, b2, eps, step, ibc2, wd;
    int penal;
    int64_t n, chunk;
} step_ctx;

static void step_prepare(step_ctx *k, mtc_optim *o, float *params, const float *grads, const uint8_t *decay_mask,
                         float lr, double norm)
{
    const mtc_optim_cfg *c = &o->cfg;
    memset(k, 0, sizeof *k);
    k->o = o, k->params = params, k->grads = grads, k->decay_mask = decay_mask, k->lr = lr, k->n = o->n;
    k->cs = (c->clip_norm > 0.0f && norm > c->clip_norm) ? (float)(c->clip_norm / norm) : 1.0f;
    k->l1 = c->l1;
    k->l2 = c->l2 + (c->kind == MTC_OPT_ADAMW ? 0.0f : c->weight_decay);
    k->penal = k->l1 != 0.0f || k->l2 != 0.0f;
    o->t++;
    if (c->kind == MTC_OPT_SGD) return;
    k->b1 = c->beta1, k->b2 = c->beta2, k->eps = c->eps;
    const float bc1 = (float)(1.0 - pow(k->b1, (double)o->t));
    const float bc2 = (float)(1.0 - pow(k->b2, (double)o->t));
    k->step = lr / bc1, k->ibc2 = 1.0f / bc2;
    k->wd = c->kind == MTC_OPT_ADAMW ? lr * c->weight_decay : 0.0f;
}

static void step_range(const step_ctx *k, int64_t i0, int64_t i1)
{
    const mtc_optim *o = k->o;
    const mtc_optim_cfg *c = &o->cfg;
    float *params = k->params;
    const float *grads = k->grads;
    const uint8_t *decay_mask = k->decay_mask;
    const float cs = k->cs, l1 = k->l1, l2 = k->l2, lr = k->lr;
    const int penal = k->penal;
    if (c->kind == MTC_OPT_SGD) {
        const float mu = c->momentum;
        for (int64_t i = i0; i < i1; i++) {
            float p = params[i], g = grads[i] * cs;
            if (penal && (!decay_mask || decay_mask[i]))
                g += l2 * p + (p > 0.0f ? l1 : (p < 0.0f ? -l1 : 0.0f));
            if (o->m) {
                float m = o->m[i] = mu * o->m[i] + g;
                g = c->nesterov ? g + mu * m : m;
            }
            params[i] = p - lr * g;
        }
        return;
    }
    const float b1 = k->b1, b2 = k->b2, eps = k->eps, step = k->step, ibc2 = k->ibc2, wd = k->wd;
    float *restrict P = params, *restrict M = o->m, *restrict V = o->v;
    const float *restrict G = grads;
    /* restrict locals and -fno-math-errno let these loops vectorise (SIMD
     * sqrt and divide round exactly as scalar: same bits). Plain Adam (no
     * penalty, no decoupled decay) needs no mask: a loop with no branch. */
    if (!penal && wd == 0.0f) {
        for (int64_t i = i0; i < i1; i++) {
            const float g = G[i] * cs;
            const float m = M[i] = b1 * M[i] + (1.0f - b1) * g;
            const float v = V[i] = b2 * V[i] + (1.0f - b2) * g * g;
            P[i] -= step * m / (sqrtf(v * ibc2) + eps);
        }
        return;
    }
    for (int64_t i = i0; i < i1; i++) {
        float p = P[i], g = G[i] * cs;
        const int dec = !decay_mask || decay_mask[i];
        if (penal && dec) g += l2 * p + (p > 0.0f ? l1 : (p < 0.0f ? -l1 : 0.0f));
        if (dec) p -= wd * p;
        const float m = M[i] = b1 * M[i] + (1.0f - b1) * g;
        const float v = V[i] = b2 * V[i] + (1.0f - b2) * g * g;
        P[i] = p - step * m / (sqrtf(v * ibc2) + eps);
    }
}

float mtc_optim_step(mtc_optim *o, float *params, float *grads,
                     const uint8_t *decay_mask, float lr)
{
    const double norm = grad_norm(grads, o->n);
    step_ctx k;
    step_prepare(&k, o, params, grads, decay_mask, lr, norm);
    step_range(&k, 0, o->n);
    return (float)norm;
}

static void step_task(void *ctx, int t)
{
    const step_ctx *k = ctx;
    int64_t i0 = (int64_t)t * k->chunk, i1 = i0 + k->chunk < k->n ? i0 + k->chunk : k->n;
    if (i0 < i1) step_range(k, i0, i1);
}

/* Below this many parameters one thread is faster than waking the pool. */
#define OPTIM_PAR_MIN (1 << 16)

float mtc_optim_step_pool(mtc_optim *o, mtc_pool *pool, float *params, float *grads,
                          const uint8_t *decay_mask, float lr)
{
    int P = pool ? mtc_pool_size(pool) : 1;
    /* the norm only when clipping needs it: it is a whole extra pass (a
     * chain of dependent double adds: at one thread it cost as much as the
     * Adam update itself on the 784->128 student) */
    const double norm = o->cfg.clip_norm > 0.0f ? grad_norm(grads, o->n) : 0.0;
    step_ctx k;
    step_prepare(&k, o, params, grads, decay_mask, lr, norm);
    if (P < 2 || o->n < OPTIM_PAR_MIN) {
        step_range(&k, 0, o->n);
        return (float)norm;
    }
    k.chunk = ((o->n + P - 1) / P + 15) / 16 * 16; /* 64-byte aligned slices */
    mtc_pool_run(pool, P, step_task, &k);
    return (float)norm;
}

/* Warm-up (any kind): lr·(step+1)/warmup while step < warmup. After it, with
 * k = step − warmup steps since warm-up and K = total_steps − warmup:
 *   CONST  lr;  STEP  lr·gamma^⌊k/step_size⌋;
 *   COSINE min_lr + (lr − min_lr)·(1 + cos(π·min(k/K, 1)))/2. */
float mtc_sched_lr(const mtc_sched *s, int64_t step, int64_t total_steps)
{
    if (step < 0) step = 0;
    if (s->warmup > 0 && step < s->warmup)
        return (float)((double)s->lr * (double)(step + 1) / (double)s->warmup);
    const int64_t k = step - (s->warmup > 0 ? s->warmup : 0);
    switch (s->kind) {
    case MTC_SCHED_STEP:
        if (s->step_size <= 0) return s->lr;
        return (float)(s->lr * pow(s->gamma, (double)(k / s->step_size)));
    case MTC_SCHED_COSINE: {
        const int64_t span = total_steps - (s->warmup > 0 ? s->warmup : 0);
        double prog = span > 0 ? (double)k / (double)span : 1.0;
        if (prog > 1.0) prog = 1.0;
        return (float)(s->min_lr + (s->lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * prog)));
    }
    default:
        return s->lr;
    }
}
