/*
 * model.c — the multi-task model: shared trunk (or MMoE experts + per-task
 * softmax gates) feeding one head per task; forward, backward, init,
 * checkpoint conversion.
 *
 * All parameters live in one float array (m->params) with a twin gradient
 * array, so optimizers, clipping, L1/L2 and pruning masks see one vector.
 * Work buffers are allocated once by mtc_model_reserve for the largest batch;
 * forward/backward never allocate.
 *
 * Hard sharing:  x -> trunk -> h -> head_t -> out_t
 * MMoE (Ma 2018): x -> expert_k -> h_k;  g_t = softmax(W_t x + b_t);
 *                mix_t = sum_k g_t,k h_k -> head_t -> out_t
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- building -------------------------------------------------------------- */

static int shape_err(mtc_err *e, const mtc_layer_spec *ls, const char *what, int c, int h, int w)
{
    return mtc_err_set(e, MTC_EINPUT, "spec:%d: [%s] %s (input is %dx%dx%d)", ls->line,
                       mtc_layer_type_name(ls->type), what, c, h, w);
}

/* Resolves one layer's shapes and claims its parameters. */
static int layer_setup(mtc_layer *L, const mtc_layer_spec *ls, const char *name, int c, int h,
                       int w, int64_t *poff, int64_t *soff, mtc_err *e)
{
    memset(L, 0, sizeof *L);
    L->spec = *ls;
    snprintf(L->name, sizeof L->name, "%s", name);
    L->in_c = c; L->in_h = h; L->in_w = w;
    L->in_size = (int64_t)c * h * w;
    L->w_off = L->b_off = L->stat_off = -1;
    int oc = c, oh = h, ow = w;
    switch (ls->type) {
    case MTC_L_DENSE:
        oc = ls->units; oh = ow = 1;
        L->nw = (int64_t)ls->units * L->in_size;
        L->nb = ls->units;
        break;
    case MTC_L_CONV: {
        int stride = ls->stride ? ls->stride : 1, pad = ls->pad >= 0 ? ls->pad : ls->size / 2;
        L->spec.stride = stride; L->spec.pad = pad;
        if (h == 1 && w == 1 && c > 1) return shape_err(e, ls, "needs a CxHxW input, not a flat vector", c, h, w);
        if (mtc_conv_shape_init(&L->cs, c, h, w, ls->filters, ls->size, stride, pad) != 0)
            return shape_err(e, ls, "kernel does not fit", c, h, w);
        oc = ls->filters; oh = L->cs.OH; ow = L->cs.OW;
        L->nw = (int64_t)ls->filters * c * ls->size * ls->size;
        L->nb = ls->filters;
        break;
    }
    case MTC_L_MAXPOOL: case MTC_L_AVGPOOL: {
        int stride = ls->stride ? ls->stride : ls->size;
        L->spec.stride = stride;
        if (h < ls->size || w < ls->size) return shape_err(e, ls, "window larger than the input", c, h, w);
        oh = (h - ls->size) / stride + 1; ow = (w - ls->size) / stride + 1;
        break;
    }
    case MTC_L_FLATTEN: oc = c * h * w; oh = ow = 1; break;
    case MTC_L_ACT: case MTC_L_DROPOUT: break;
    case MTC_L_BATCHNORM:
        L->nw = L->nb = c;
        L->stat_off = *soff;
        *soff += 2 * (int64_t)c;
        break;
    case MTC_L_LAYERNORM:
        L->nw = L->nb = L->in_size;
        break;
    default:
        return mtc_err_set(e, MTC_EINPUT, "spec:%d: unknown layer type", ls->line);
    }
    if (L->nw) { L->w_off = *poff; *poff += L->nw; }
    if (L->nb) { L->b_off = *poff; *poff += L->nb; }
    L->out_c = oc; L->out_h = oh; L->out_w = ow;
    L->out_size = (int64_t)oc * oh * ow;
    if (L->out_size <= 0 || L->out_size > (1 << 26))
        return shape_err(e, ls, "gives an empty or absurd output", c, h, w);
    return 0;
}

static int chain_setup(mtc_chain *ch, const mtc_layer_spec *specs, int n, const char *prefix,
                       int c, int h, int w, int64_t *poff, int64_t *soff, mtc_err *e)
{
    ch->n = n;
    for (int i = 0; i < n; i++) {
        char name[192]; /* longer than mtc_layer.name: the compiler cannot bound the parts */
        snprintf(name, sizeof name, "%s.%d.%s", prefix, i, mtc_layer_type_name(specs[i].type));
        int rc = layer_setup(&ch->layers[i], &specs[i], name, c, h, w, poff, soff, e);
        if (rc) return rc;
        c = ch->layers[i].out_c; h = ch->layers[i].out_h; w = ch->layers[i].out_w;
    }
    return 0;
}

static int64_t chain_out_size(const mtc_chain *ch, int64_t in_size)
{
    return ch->n ? ch->layers[ch->n - 1].out_size : in_size;
}

/* Layer shapes and parameter offsets of s (m->nparams, m->nstats); nothing
 * large is allocated yet, so a loader can bound the sizes first. */
int mtc_model_layout(const mtc_spec *s, const char *spec_text, mtc_model *m, mtc_err *e)
{
    memset(m, 0, sizeof *m);
    m->spec = *s;
    if (spec_text && !(m->spec_text = strdup(spec_text)))
        return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    m->nexperts = s->experts >= 2 ? s->experts : 1;
    int64_t poff = 0, soff = 0, in_size = (int64_t)s->c * s->h * s->w;
    int rc = 0;
    for (int k = 0; k < m->nexperts && !rc; k++) {
        char prefix[32];
        if (m->nexperts == 1) snprintf(prefix, sizeof prefix, "trunk");
        else snprintf(prefix, sizeof prefix, "expert%d", k);
        rc = chain_setup(&m->trunk[k], s->trunk, s->ntrunk, prefix, s->c, s->h, s->w, &poff, &soff, e);
    }
    if (rc) goto fail;
    m->trunk_out = chain_out_size(&m->trunk[0], in_size);
    for (int t = 0; t < s->ntasks && !rc; t++) {
        const mtc_task_spec *ts = &s->tasks[t];
        if (m->nexperts > 1) {
            mtc_layer_spec g = {.type = MTC_L_DENSE, .units = m->nexperts, .line = ts->line};
            char name[96];
            snprintf(name, sizeof name, "gate.%s", ts->name);
            rc = layer_setup(&m->gate[t], &g, name, s->c, s->h, s->w, &poff, &soff, e);
            if (rc) break;
        }
        mtc_layer_spec specs[MTC_MAX_LAYERS];
        memcpy(specs, ts->head, sizeof(mtc_layer_spec) * (size_t)ts->nhead);
        specs[ts->nhead] = (mtc_layer_spec){.type = MTC_L_DENSE, .units = ts->dim, .line = ts->line};
        char prefix[96];
        snprintf(prefix, sizeof prefix, "head.%s", ts->name);
        rc = chain_setup(&m->head[t], specs, ts->nhead + 1, prefix, (int)m->trunk_out, 1, 1, &poff, &soff, e);
        if (!rc) snprintf(m->head[t].layers[ts->nhead].name, sizeof m->head[t].layers[0].name, "head.%s.out", ts->name);
        for (int d = 0; d < 64; d++) m->reg_std[t][d] = 1.0f;
    }
    if (rc) goto fail;
    m->nparams = poff;
    m->nstats = soff;
    return 0;
fail:
    mtc_model_free(m);
    return rc;
}

/* Parameter, gradient and statistics buffers of a laid-out model. */
static int model_alloc(mtc_model *m, mtc_err *e)
{
    const mtc_spec *s = &m->spec;
    int64_t poff = m->nparams, soff = m->nstats;
    int rc;
    m->params = calloc((size_t)poff + 1, sizeof(float));
    m->grads = calloc((size_t)poff + 1, sizeof(float));
    m->decay_mask = calloc((size_t)poff + 1, 1);
    m->stats = calloc((size_t)soff + 1, sizeof(float));
    if (!m->params || !m->grads || !m->decay_mask || !m->stats) {
        rc = mtc_err_set(e, MTC_ENOMEM, "model: out of memory (%lld parameters)", (long long)poff);
        goto fail;
    }
    /* weight decay / L1 / L2 apply to dense and conv weights only */
    for (int k = 0; k < m->nexperts; k++)
        for (int i = 0; i < m->trunk[k].n; i++) {
            mtc_layer *L = &m->trunk[k].layers[i];
            if (L->spec.type == MTC_L_DENSE || L->spec.type == MTC_L_CONV)
                memset(m->decay_mask + L->w_off, 1, (size_t)L->nw);
        }
    for (int t = 0; t < s->ntasks; t++) {
        for (int i = 0; i < m->head[t].n; i++) {
            mtc_layer *L = &m->head[t].layers[i];
            if (L->spec.type == MTC_L_DENSE || L->spec.type == MTC_L_CONV)
                memset(m->decay_mask + L->w_off, 1, (size_t)L->nw);
        }
        if (m->nexperts > 1) memset(m->decay_mask + m->gate[t].w_off, 1, (size_t)m->gate[t].nw);
    }
    return 0;
fail:
    mtc_model_free(m);
    return rc;
}

int mtc_model_build(const mtc_spec *s, const char *spec_text, mtc_model *m, mtc_err *e)
{
    int rc = mtc_model_layout(s, spec_text, m, e);
    return rc ? rc : model_alloc(m, e);
}

/* ---- init ------------------------------------------------------------------ */

/* PyTorch's defaults, so mtc and the peer start from the same distribution:
 * dense/conv weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)); norms 1/0. */
static void layer_init(mtc_model *m, mtc_layer *L, mtc_rng *r)
{
    float *W = L->w_off >= 0 ? m->params + L->w_off : NULL;
    float *b = L->b_off >= 0 ? m->params + L->b_off : NULL;
    if (L->spec.type == MTC_L_DENSE || L->spec.type == MTC_L_CONV) {
        int64_t fan_in = L->nw / L->nb;
        float bound = 1.0f / sqrtf((float)fan_in);
        for (int64_t i = 0; i < L->nw; i++) W[i] = (2.0f * mtc_rng_uniform(r) - 1.0f) * bound;
        for (int64_t i = 0; i < L->nb; i++) b[i] = (2.0f * mtc_rng_uniform(r) - 1.0f) * bound;
    } else if (L->spec.type == MTC_L_BATCHNORM || L->spec.type == MTC_L_LAYERNORM) {
        for (int64_t i = 0; i < L->nw; i++) { W[i] = 1.0f; b[i] = 0.0f; }
        if (L->stat_off >= 0)
            for (int64_t i = 0; i < L->nw; i++) {
                m->stats[L->stat_off + i] = 0.0f;
                m->stats[L->stat_off + L->nw + i] = 1.0f;
            }
    }
}

void mtc_model_apply_mask(mtc_model *m)
{
    if (!m->mask) return;
    /* assignment, not p *= 0: a pruned weight is +0.0, never -0.0, so it
     * survives the bitmask + values form of a checkpoint bit for bit */
    for (int64_t i = 0; i < m->nparams; i++)
        if (m->mask[i] == 0.0f) m->params[i] = 0.0f;
}

void mtc_model_init_params(mtc_model *m, uint64_t seed)
{
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    for (int k = 0; k < m->nexperts; k++)
        for (int i = 0; i < m->trunk[k].n; i++) layer_init(m, &m->trunk[k].layers[i], &r);
    for (int t = 0; t < m->spec.ntasks; t++) {
        if (m->nexperts > 1) layer_init(m, &m->gate[t], &r);
        for (int i = 0; i < m->head[t].n; i++) layer_init(m, &m->head[t].layers[i], &r);
    }
}

/* ---- work buffers ------------------------------------------------------------ */

static void layer_free_buffers(mtc_layer *L)
{
    if (L->pre != L->out) free(L->pre);
    free(L->out); free(L->dout); free(L->mean); free(L->rstd); free(L->argmax); free(L->drop_mask);
    L->pre = L->out = L->dout = L->mean = L->rstd = NULL;
    L->argmax = NULL;
    L->drop_mask = NULL;
}

static void model_free_buffers(mtc_model *m)
{
    for (int k = 0; k < MTC_MAX_EXPERTS; k++) {
        for (int i = 0; i < m->trunk[k].n; i++) layer_free_buffers(&m->trunk[k].layers[i]);
        if (m->trunk[k].n == 0) free(m->dtrunk[k]);
        m->dtrunk[k] = NULL;
    }
    for (int t = 0; t < MTC_MAX_TASKS; t++) {
        for (int i = 0; i < m->head[t].n; i++) layer_free_buffers(&m->head[t].layers[i]);
        layer_free_buffers(&m->gate[t]);
        free(m->mix[t]); free(m->dmix[t]); free(m->gate_p[t]);
        m->mix[t] = m->dmix[t] = m->gate_p[t] = NULL;
        m->outputs[t] = NULL;
    }
    free(m->col); free(m->dcol); free(m->fuse); free(m->dinput); free(m->pgrad);
    m->col = m->dcol = m->fuse = m->dinput = m->pgrad = NULL;
    m->col_stride = m->fuse_stride = 0;
    mtc_pool_free(m->pool);
    m->pool = NULL;
    m->max_batch = 0;
}

static int act_in_place(int act)
{
    return act == MTC_ACT_RELU || act == MTC_ACT_LEAKY;
}

/* A conv whose output feeds a max-pool runs fused with it (conv_pool_*):
 * chunk by chunk, so its whole-batch output and output gradient (the
 * largest tensors of a conv net) never exist, only the pooled ones. The
 * activation's derivative must follow from the pooled value, which is the
 * activated conv output at the argmax: none, relu or leaky. */
static int conv_fuses_pool(const mtc_chain *ch, int i)
{
    const mtc_layer *L = &ch->layers[i];
    int act = L->spec.act;
    return L->spec.type == MTC_L_CONV && i + 1 < ch->n && ch->layers[i + 1].spec.type == MTC_L_MAXPOOL &&
           (act == MTC_ACT_NONE || act_in_place(act));
}

/* Floats of a fused conv + max-pool's per-thread scratch: one conv chunk's
 * output (or its gradient) and the pooled gradient of that chunk. */
static int64_t conv_pool_floats(const mtc_layer *L, const mtc_layer *P, int B)
{
    return (int64_t)mtc_conv_chunk(&L->cs, B) * (L->out_size + P->out_size);
}

static int layer_alloc(mtc_layer *L, int B, int64_t *scratch)
{
    size_t n = (size_t)B * (size_t)L->out_size;
    L->out = malloc(n * sizeof(float));
    L->dout = malloc(n * sizeof(float));
    if (!L->out || !L->dout) return -1;
    int fused = (L->spec.type == MTC_L_DENSE || L->spec.type == MTC_L_CONV);
    /* relu/leaky run in place: sign(out) == sign(pre), so backward needs no
     * pre-activation copy (one buffer and one memory pass less) */
    if (fused && L->spec.act != MTC_ACT_NONE && !act_in_place(L->spec.act)) {
        if (!(L->pre = malloc(n * sizeof(float)))) return -1;
    } else {
        L->pre = L->out;
    }
    if (fused && L->spec.act != MTC_ACT_NONE && (int64_t)n > *scratch) *scratch = (int64_t)n; /* dpre */
    if (L->spec.type == MTC_L_MAXPOOL && !(L->argmax = malloc(n * sizeof(int32_t)))) return -1;
    if (L->spec.type == MTC_L_DROPOUT && !(L->drop_mask = malloc(n))) return -1;
    if (L->spec.type == MTC_L_BATCHNORM || L->spec.type == MTC_L_LAYERNORM) {
        size_t k = L->spec.type == MTC_L_BATCHNORM ? (size_t)L->in_c : (size_t)B;
        L->mean = malloc(k * sizeof(float));
        L->rstd = malloc(k * sizeof(float));
        if (!L->mean || !L->rstd) return -1;
    }
    return 0;
}

/* Work sizes a chain needs beyond its layers' own buffers (maxima). */
typedef struct chain_sizes {
    int64_t scratch, col, convp /* largest conv weights+bias: private grads */, fuse;
} chain_sizes;

/* Buffers of every layer of ch (a conv fused with its max-pool has none:
 * its output lives in the per-thread scratch, chunk by chunk). */
static int chain_alloc(mtc_chain *ch, int B, chain_sizes *z)
{
    int bad = 0;
    for (int i = 0; i < ch->n; i++) {
        mtc_layer *L = &ch->layers[i];
        if (L->spec.type == MTC_L_CONV) {
            int64_t c = mtc_conv_col_floats(&L->cs, B);
            if (c > z->col) z->col = c;
        }
        if (L->spec.type == MTC_L_CONV && L->nw + L->nb > z->convp) z->convp = L->nw + L->nb;
        if (conv_fuses_pool(ch, i)) {
            int64_t f = conv_pool_floats(L, &ch->layers[i + 1], B);
            if (f > z->fuse) z->fuse = f;
            continue;
        }
        bad |= layer_alloc(L, B, &z->scratch);
    }
    return bad;
}

/* Per-thread conv workspaces: im2col (col, dcol) and fused conv + max-pool
 * scratch, `stride` floats each per thread. */
static int thread_buffers(mtc_model *m, const chain_sizes *z)
{
    int64_t P = m->pool ? mtc_pool_size(m->pool) : 1;
    m->col_stride = z->col;
    m->fuse_stride = z->fuse;
    if (z->col) {
        m->col = malloc((size_t)(P * z->col) * sizeof(float));
        m->dcol = malloc((size_t)(P * z->col) * sizeof(float));
        if (!m->col || !m->dcol) return 1;
    }
    if (z->fuse && !(m->fuse = malloc((size_t)(P * z->fuse) * sizeof(float)))) return 1;
    return 0;
}

int mtc_model_reserve(mtc_model *m, int B, mtc_err *e)
{
    if (B <= m->max_batch) return 0;
    model_free_buffers(m);
    chain_sizes z = {0, 0, 0, 0};
    int bad = 0;
    int64_t in_size = (int64_t)m->spec.c * m->spec.h * m->spec.w;
    for (int k = 0; k < m->nexperts; k++) {
        mtc_chain *ch = &m->trunk[k];
        bad |= chain_alloc(ch, B, &z);
        m->dtrunk[k] = ch->n ? ch->layers[ch->n - 1].dout : malloc((size_t)B * (size_t)m->trunk_out * sizeof(float));
        bad |= !m->dtrunk[k];
    }
    for (int t = 0; t < m->spec.ntasks; t++) {
        bad |= chain_alloc(&m->head[t], B, &z);
        m->outputs[t] = m->head[t].layers[m->head[t].n - 1].out;
        m->dmix[t] = malloc((size_t)B * (size_t)m->trunk_out * sizeof(float));
        bad |= !m->dmix[t];
        if (m->nexperts > 1) {
            bad |= layer_alloc(&m->gate[t], B, &z.scratch);
            m->mix[t] = malloc((size_t)B * (size_t)m->trunk_out * sizeof(float));
            m->gate_p[t] = malloc((size_t)B * (size_t)m->nexperts * sizeof(float));
            bad |= !m->mix[t] || !m->gate_p[t];
        }
    }
    /* dinput doubles as the activation-gradient scratch */
    if (in_size * B > z.scratch) z.scratch = in_size * B;
    m->dinput = malloc((size_t)z.scratch * sizeof(float));
    bad |= !m->dinput;
    int P = mtc_get_threads();
    if (P > 1 && !bad) {
        m->pool = mtc_pool_create(P);
        bad |= !m->pool;
        P = mtc_pool_size(m->pool);
        m->pgrad_stride = z.convp;
        if (z.convp && P > 1) bad |= !(m->pgrad = malloc((size_t)((P - 1) * z.convp) * sizeof(float)));
    }
    if (!bad) bad |= thread_buffers(m, &z);
    if (bad) {
        model_free_buffers(m);
        return mtc_err_set(e, MTC_ENOMEM, "model: out of memory for batch %d", B);
    }
    m->max_batch = B;
    return 0;
}

void mtc_model_free(mtc_model *m)
{
    model_free_buffers(m);
    free(m->params); free(m->grads); free(m->decay_mask); free(m->mask); free(m->stats);
    free(m->spec_text);
    for (int t = 0; t < MTC_MAX_TASKS; t++) {
        for (int i = 0; i < m->nclass_names[t]; i++) free(m->class_names[t][i]);
        free(m->class_names[t]);
    }
    memset(m, 0, sizeof *m);
}

/* ---- forward / backward ------------------------------------------------------- */

#define BN_MOMENTUM 0.1f
#define NORM_EPS 1e-5f

/* ---- batch-sliced parallel layers -------------------------------------------
 * Dense, conv, pooling and activation layers run over batch slices, one per
 * pool thread (static split). Weight gradients of slices > 0 go to private
 * buffers summed afterwards in a fixed order: same threads, same bytes. */

typedef struct par_ctx {
    mtc_model *m;
    mtc_layer *L;
    mtc_layer *pool; /* the max-pool a conv L runs fused with (the relu a BN
                      * L runs fused with), or NULL */
    const float *x;
    float *dx;
    int B, P;
    int train; /* forward: keep what backward needs (max-pool argmax) */
    int fresh; /* backward: dx holds garbage (a layer's own input gradient,
                * written by this layer alone): each task clears or
                * overwrites its part instead of adding to it */
} par_ctx;

/* Part k of P of [0, n): [*lo, *lo + *len). */
static void span(int n, int k, int P, int *lo, int *len)
{
    int a = (int)((int64_t)n * k / P), b = (int)((int64_t)n * (k + 1) / P);
    *lo = a;
    *len = b - a;
}

static void slice(const par_ctx *c, int k, int *lo, int *n)
{
    span(c->B, k, c->P, lo, n);
}

/* Conv L -> act -> max-pool P over samples [lo, lo+b) (x, the slice's
 * input), one conv chunk at a time in thread k's scratch: the same values
 * as the three layers run whole. */
static void conv_pool_forward(mtc_model *m, const mtc_layer *L, mtc_layer *P, const float *x, int lo,
                              int b, int k, int train)
{
    const int bc = mtc_conv_chunk(&L->cs, b);
    float *y = m->fuse + k * m->fuse_stride, *col = m->col + k * m->col_stride;
    const float *W = m->params + L->w_off, *bias = m->params + L->b_off;
    for (int s = 0; s < b; s += bc) {
        int n = b - s < bc ? b - s : bc;
        int64_t at = (int64_t)(lo + s) * P->out_size;
        mtc_conv2d_forward(y, x + s * L->in_size, W, bias, col, &L->cs, n);
        if (L->spec.act) mtc_act_forward(y, y, n * L->out_size, L->spec.act);
        mtc_maxpool_forward(P->out + at, train ? P->argmax + at : NULL, y, n, P->in_c, P->in_h, P->in_w,
                            P->spec.size, P->spec.stride);
    }
}

/* Backward of conv_pool_forward, chunk by chunk: the pooled gradient times
 * act'(pooled output) — the activated conv output at the argmax, whose sign
 * is the pre-activation's — routed to the argmax, then the conv's backward
 * on that chunk (same chunks as the conv kernel's own: same dW bytes). */
static void conv_pool_backward(mtc_model *m, const mtc_layer *L, const mtc_layer *P, const float *x,
                               float *dx, float *dW, float *db, int lo, int b, int k)
{
    const int bc = mtc_conv_chunk(&L->cs, b);
    float *dy = m->fuse + k * m->fuse_stride, *dp = dy + bc * L->out_size;
    float *col = m->col + k * m->col_stride, *dcol = m->dcol + k * m->col_stride;
    for (int s = 0; s < b; s += bc) {
        int n = b - s < bc ? b - s : bc;
        int64_t at = (int64_t)(lo + s) * P->out_size, np = n * P->out_size;
        const float *g = P->dout + at;
        if (L->spec.act) {
            memset(dp, 0, (size_t)np * sizeof(float));
            mtc_act_backward(dp, g, NULL, P->out + at, np, L->spec.act);
            g = dp;
        }
        memset(dy, 0, (size_t)(n * L->out_size) * sizeof(float));
        mtc_maxpool_backward(dy, g, P->argmax + at, n, P->in_c, P->out_h, P->out_w, P->in_h, P->in_w);
        mtc_conv2d_backward(dx ? dx + s * L->in_size : NULL, dW, db, dy, x + s * L->in_size,
                            m->params + L->w_off, col, dcol, &L->cs, n);
    }
}

static void fwd_task(void *v, int k)
{
    par_ctx *c = v;
    mtc_model *m = c->m;
    mtc_layer *L = c->L;
    int lo, b;
    slice(c, k, &lo, &b);
    if (b <= 0) return;
    const mtc_layer_spec *s = &L->spec;
    int64_t is = L->in_size, os = L->out_size;
    const float *x = c->x + lo * is;
    switch (s->type) {
    case MTC_L_DENSE:
        mtc_dense_forward(L->pre + lo * os, x, m->params + L->w_off, m->params + L->b_off, b, (int)is, s->units);
        if (s->act) mtc_act_forward(L->out + lo * os, L->pre + lo * os, b * os, s->act);
        break;
    case MTC_L_CONV:
        if (c->pool) {
            conv_pool_forward(m, L, c->pool, x, lo, b, k, c->train);
            break;
        }
        mtc_conv2d_forward(L->pre + lo * os, x, m->params + L->w_off, m->params + L->b_off,
                           m->col + k * m->col_stride, &L->cs, b);
        if (s->act) mtc_act_forward(L->out + lo * os, L->pre + lo * os, b * os, s->act);
        break;
    case MTC_L_MAXPOOL:
        mtc_maxpool_forward(L->out + lo * os, c->train ? L->argmax + lo * os : NULL, x, b, L->in_c, L->in_h, L->in_w,
                            s->size, s->stride);
        break;
    case MTC_L_AVGPOOL:
        mtc_avgpool_forward(L->out + lo * os, x, b, L->in_c, L->in_h, L->in_w, s->size, s->stride);
        break;
    case MTC_L_ACT:
        mtc_act_forward(L->out + lo * os, x, b * os, s->act);
        break;
    }
}

static void bwd_task(void *v, int k)
{
    par_ctx *c = v;
    mtc_model *m = c->m;
    mtc_layer *L = c->L;
    int lo, b;
    slice(c, k, &lo, &b);
    if (b <= 0) return;
    const mtc_layer_spec *s = &L->spec;
    int64_t is = L->in_size, os = L->out_size, n = (int64_t)b * os;
    const float *x = c->x + lo * is;
    float *dx = c->dx ? c->dx + lo * is : NULL;
    const float *g = L->dout ? L->dout + lo * os : NULL;
    if (dx && c->fresh) memset(dx, 0, (size_t)(b * is) * sizeof(float));
    switch (s->type) {
    case MTC_L_DENSE:
    case MTC_L_CONV: {
        float *dW = k ? m->pgrad + (k - 1) * m->pgrad_stride : m->grads + L->w_off;
        float *db = k ? dW + L->nw : m->grads + L->b_off;
        if (c->pool) {
            conv_pool_backward(m, L, c->pool, x, dx, dW, db, lo, b, k);
            break;
        }
        if (s->act) {
            float *dpre = m->dinput + lo * os;
            memset(dpre, 0, (size_t)n * sizeof(float));
            mtc_act_backward(dpre, g, L->pre == L->out ? NULL : L->pre + lo * os, L->out + lo * os, n, s->act);
            g = dpre;
        }
        if (s->type == MTC_L_DENSE) {
            mtc_dense_backward(dx, dW, db, g, x, m->params + L->w_off, b, (int)is, s->units);
        } else {
            int64_t co = k * m->col_stride;
            mtc_conv2d_backward(dx, dW, db, g, x, m->params + L->w_off, m->col + co, m->dcol + co, &L->cs, b);
        }
        break;
    }
    case MTC_L_MAXPOOL:
        if (dx) mtc_maxpool_backward(dx, g, L->argmax + lo * os, b, L->in_c, L->out_h, L->out_w, L->in_h, L->in_w);
        break;
    case MTC_L_AVGPOOL:
        if (dx) mtc_avgpool_backward(dx, g, b, L->in_c, L->in_h, L->in_w, s->size, s->stride);
        break;
    case MTC_L_ACT:
        if (dx) mtc_act_backward(dx, g, x, L->out + lo * os, n, s->act);
        break;
    }
}

/* Dense backward, split with no reduction. Phase 1 (rows): the
 * pre-activation gradient g of batch rows [lo, lo+b). Phase 2: task k owns
 * output units [o0, o0+on) of dW and db (all rows of g) and batch rows
 * [lo, lo+b) of dx (all units): every element has one writer, so there are
 * no private gradient copies to clear and sum (which made the batch split
 * 40% slower than one thread on the 784->128 student). */
static const float *dense_grad_in(const par_ctx *c)
{
    const mtc_layer *L = c->L;
    return L->spec.act ? c->m->dinput : L->dout;
}

static void dense_dpre_task(void *v, int k)
{
    par_ctx *c = v;
    const mtc_layer *L = c->L;
    int lo, b;
    slice(c, k, &lo, &b);
    int64_t os = L->out_size, n = (int64_t)b * os;
    if (b <= 0) return;
    float *dpre = c->m->dinput + lo * os;
    memset(dpre, 0, (size_t)n * sizeof(float));
    mtc_act_backward(dpre, L->dout + lo * os, L->pre == L->out ? NULL : L->pre + lo * os, L->out + lo * os, n,
                     L->spec.act);
}

static void dense_grad_task(void *v, int k)
{
    par_ctx *c = v;
    const mtc_layer *L = c->L;
    const mtc_model *m = c->m;
    const int I = (int)L->in_size, O = L->spec.units;
    const float *g = dense_grad_in(c), *W = m->params + L->w_off;
    int o0, on, lo, b;
    span(O, k, c->P, &o0, &on);
    if (on > 0)
        mtc_dense_backward_ld(NULL, m->grads + L->w_off + (int64_t)o0 * I, m->grads + L->b_off + o0, g + o0, O, c->x,
                              W, c->B, I, on);
    slice(c, k, &lo, &b);
    if (c->dx && b > 0) {
        if (c->fresh) memset(c->dx + (int64_t)lo * I, 0, (size_t)b * (size_t)I * sizeof(float));
        mtc_dense_backward(c->dx + (int64_t)lo * I, NULL, NULL, g + (int64_t)lo * O, NULL, W, b, I, O);
    }
}

static void dense_split_backward(par_ctx *c)
{
    if (c->L->spec.act) mtc_pool_run(c->m->pool, c->P, dense_dpre_task, c);
    mtc_pool_run(c->m->pool, c->P, dense_grad_task, c);
}

/* Splitting pays only when each slice has real work. Measured here (2
 * vCPUs): conv slices of 4M multiply-adds gain (their backward sums private
 * gradient copies); dense layers split with no reduction either way, so a
 * slice needs only enough work for an efficient GEMM (784->128 at batch
 * 128: 6.4M per thread). Pooling/activations: 1M elements. */
#define PAR_MIN_MACS_CONV (1 << 22)
#define PAR_MIN_MACS_DENSE (1 << 22)
#define PAR_MIN_ELEMS (1 << 20)

/* Dense, conv, pooling and activation layers run as batch slices (one slice
 * when the layer is too small to split or there is no pool). */
static int sliced(const mtc_layer *L)
{
    int t = L->spec.type;
    return t == MTC_L_DENSE || t == MTC_L_CONV || t == MTC_L_MAXPOOL || t == MTC_L_AVGPOOL || t == MTC_L_ACT;
}

static int nslices(const mtc_model *m, const mtc_layer *L, int B)
{
    int t = L->spec.type;
    int64_t P = mtc_pool_size(m->pool);
    if (!m->pool || B < 2) return 1;
    if (m->par_always) return (int)P;
    if (t == MTC_L_DENSE || t == MTC_L_CONV) {
        int64_t per_out = t == MTC_L_CONV ? (int64_t)L->cs.OH * L->cs.OW : 1;
        int64_t min = t == MTC_L_CONV ? PAR_MIN_MACS_CONV : PAR_MIN_MACS_DENSE;
        return (int64_t)B * L->nw * per_out / P >= min ? (int)P : 1;
    }
    return (int64_t)B * L->in_size / P >= PAR_MIN_ELEMS ? (int)P : 1;
}

static void sliced_forward(mtc_model *m, mtc_layer *L, mtc_layer *pool, const float *x, int B, int train)
{
    par_ctx c = {m, L, pool, x, NULL, B, nslices(m, L, B), train, 0};
    if (c.P == 1) fwd_task(&c, 0);
    else mtc_pool_run(m->pool, c.P, fwd_task, &c);
}

static void sliced_backward(mtc_model *m, mtc_layer *L, mtc_layer *pool, const float *x, float *dx, int B,
                            int fresh)
{
    par_ctx c = {m, L, pool, x, dx, B, nslices(m, L, B), 1, fresh};
    if (c.P == 1) {
        bwd_task(&c, 0);
        return;
    }
    if (L->spec.type == MTC_L_DENSE) {
        dense_split_backward(&c);
        return;
    }
    int params = L->spec.type == MTC_L_CONV;
    int64_t nwb = L->nw + L->nb;
    if (params)
        for (int k = 1; k < c.P; k++) memset(m->pgrad + (k - 1) * m->pgrad_stride, 0, (size_t)nwb * sizeof(float));
    mtc_pool_run(m->pool, c.P, bwd_task, &c);
    if (params) /* w_off and b_off are adjacent: weights then bias */
        for (int k = 1; k < c.P; k++) {
            const float *src = m->pgrad + (k - 1) * m->pgrad_stride;
            float *dst = m->grads + L->w_off;
            for (int64_t i = 0; i < nwb; i++) dst[i] += src[i];
        }
}

/* Batchnorm in training, channels split over the pool: a channel's
 * statistics are its own, so any split gives the serial bytes. */
#define PAR_MIN_ELEMS_BN (1 << 18)

static int bn_parts(const mtc_model *m, const mtc_layer *L, int B)
{
    int P = mtc_pool_size(m->pool);
    if (!m->pool || P < 2 || L->in_c < 2) return 1;
    return m->par_always || (int64_t)B * L->in_size / P >= PAR_MIN_ELEMS_BN ? P : 1;
}

static void bn_fwd_task(void *v, int k)
{
    par_ctx *c = v;
    mtc_layer *L = c->L;
    mtc_model *m = c->m;
    int c0, nc;
    span(L->in_c, k, c->P, &c0, &nc);
    float *rm = m->stats + L->stat_off, *rv = rm + L->in_c;
    const float *W = L->w_off >= 0 ? m->params + L->w_off : NULL, *b = L->b_off >= 0 ? m->params + L->b_off : NULL;
    const mtc_layer *R = c->pool; /* a relu run fused: BN writes its output */
    mtc_batchnorm_forward_train_ch(R ? R->out : L->out, L->mean, L->rstd, c->x, W, b, rm, rv, BN_MOMENTUM, NORM_EPS,
                                   c->B, L->in_c, L->in_h * L->in_w, c0, c0 + nc, R != NULL);
}

static void bn_bwd_task(void *v, int k)
{
    par_ctx *c = v;
    mtc_layer *L = c->L;
    mtc_model *m = c->m;
    int c0, nc;
    span(L->in_c, k, c->P, &c0, &nc);
    const int has_w = L->w_off >= 0, has_b = L->b_off >= 0;
    const mtc_layer *R = c->pool; /* fused relu: its gradient and output */
    mtc_batchnorm_backward_ch(c->dx, has_w ? m->grads + L->w_off : NULL, has_b ? m->grads + L->b_off : NULL,
                              R ? R->dout : L->dout, c->x, L->mean, L->rstd, has_w ? m->params + L->w_off : NULL, c->B,
                              L->in_c, L->in_h * L->in_w, c0, c0 + nc, R ? R->out : NULL, !c->fresh);
}

static void bn_run(mtc_model *m, mtc_layer *L, mtc_layer *relu, const float *x, float *dx, int B, int fresh,
                   void (*task)(void *, int))
{
    par_ctx c = {m, L, relu, x, dx, B, bn_parts(m, L, B), 1, fresh};
    if (c.P == 1) task(&c, 0);
    else mtc_pool_run(m->pool, c.P, task, &c);
}

static void layer_forward(mtc_model *m, mtc_layer *L, const float *x, int B, int train, mtc_rng *rng)
{
    if (sliced(L)) {
        sliced_forward(m, L, NULL, x, B, train);
        return;
    }
    const mtc_layer_spec *s = &L->spec;
    float *W = L->w_off >= 0 ? m->params + L->w_off : NULL;
    float *b = L->b_off >= 0 ? m->params + L->b_off : NULL;
    int64_t n = (int64_t)B * L->out_size;
    switch (s->type) {
    case MTC_L_FLATTEN:
        memcpy(L->out, x, (size_t)n * sizeof(float));
        break;
    case MTC_L_DROPOUT:
        if (train && s->p > 0) mtc_dropout_forward(L->out, L->drop_mask, x, n, s->p, rng);
        else memcpy(L->out, x, (size_t)n * sizeof(float));
        break;
    case MTC_L_BATCHNORM: {
        float *rm = m->stats + L->stat_off, *rv = rm + L->in_c;
        int S = L->in_h * L->in_w;
        if (train)
            bn_run(m, L, NULL, x, NULL, B, 0, bn_fwd_task);
        else
            mtc_batchnorm_forward_eval(L->out, x, W, b, rm, rv, NORM_EPS, B, L->in_c, S);
        break;
    }
    case MTC_L_LAYERNORM:
        mtc_layernorm_forward(L->out, L->mean, L->rstd, x, W, b, B, (int)L->in_size, NORM_EPS);
        break;
    }
}

/* dx may be NULL (input gradient not needed); fresh: see par_ctx. */
static void layer_backward(mtc_model *m, mtc_layer *L, const float *x, float *dx, int B, int fresh)
{
    if (sliced(L)) {
        sliced_backward(m, L, NULL, x, dx, B, fresh);
        return;
    }
    if (L->spec.type == MTC_L_BATCHNORM) {
        bn_run(m, L, NULL, x, dx, B, fresh, bn_bwd_task);
        return;
    }
    if (dx && fresh) memset(dx, 0, (size_t)B * (size_t)L->in_size * sizeof(float));
    const mtc_layer_spec *s = &L->spec;
    float *W = L->w_off >= 0 ? m->params + L->w_off : NULL;
    float *dW = L->w_off >= 0 ? m->grads + L->w_off : NULL;
    float *db = L->b_off >= 0 ? m->grads + L->b_off : NULL;
    int64_t n = (int64_t)B * L->out_size;
    const float *g = L->dout;
    switch (s->type) {
    case MTC_L_FLATTEN:
        if (dx) for (int64_t i = 0; i < n; i++) dx[i] += g[i];
        break;
    case MTC_L_DROPOUT:
        if (dx) {
            if (s->p > 0) mtc_dropout_backward(dx, g, L->drop_mask, n, s->p);
            else for (int64_t i = 0; i < n; i++) dx[i] += g[i];
        }
        break;
    case MTC_L_LAYERNORM:
        mtc_layernorm_backward(dx, dW, db, g, x, L->mean, L->rstd, W, B, (int)L->in_size);
        break;
    }
}

/* In training a batchnorm followed by a relu runs as one layer: BN writes
 * relu(y) into the relu's output and takes the relu's gradient through its
 * mask (two memory passes fewer each way; same values as apart). */
static int bn_fuses_relu(const mtc_chain *ch, int i)
{
    return ch->layers[i].spec.type == MTC_L_BATCHNORM && i + 1 < ch->n &&
           ch->layers[i + 1].spec.type == MTC_L_ACT && ch->layers[i + 1].spec.act == MTC_ACT_RELU;
}

static const float *chain_forward(mtc_model *m, mtc_chain *ch, const float *x, int B, int train,
                                  mtc_rng *rng)
{
    for (int i = 0; i < ch->n; i++) {
        if (conv_fuses_pool(ch, i)) { /* fills the max-pool's output: skip that layer */
            sliced_forward(m, &ch->layers[i], &ch->layers[i + 1], x, B, train);
            i++;
        } else if (train && bn_fuses_relu(ch, i)) {
            bn_run(m, &ch->layers[i], &ch->layers[i + 1], x, NULL, B, 0, bn_fwd_task);
            i++;
        } else {
            layer_forward(m, &ch->layers[i], x, B, train, rng);
        }
        x = ch->layers[i].out;
    }
    return x;
}

/* Expects the last layer's dout filled; accumulates into dx when non-NULL. */
static void chain_backward(mtc_model *m, mtc_chain *ch, const float *x, float *dx, int B)
{
    for (int i = ch->n - 1; i >= 0; i--) {
        mtc_layer *pool = NULL;
        if (i && conv_fuses_pool(ch, i - 1)) /* a max-pool runs inside its conv */
            pool = &ch->layers[i--];
        mtc_layer *relu = NULL;
        if (i && bn_fuses_relu(ch, i - 1)) /* the relu runs inside its batchnorm */
            relu = &ch->layers[i--];
        const float *in = i ? ch->layers[i - 1].out : x;
        float *din = i ? ch->layers[i - 1].dout : dx; /* inside the chain: written only here */
        if (pool) sliced_backward(m, &ch->layers[i], pool, in, din, B, i > 0);
        else if (relu) bn_run(m, &ch->layers[i], relu, in, din, B, i > 0, bn_bwd_task);
        else layer_backward(m, &ch->layers[i], in, din, B, i > 0);
    }
}

static const float *trunk_out(const mtc_model *m, int k, const float *x)
{
    const mtc_chain *ch = &m->trunk[k];
    return ch->n ? ch->layers[ch->n - 1].out : x;
}

static const float *head_input(const mtc_model *m, int t, const float *x)
{
    return m->nexperts > 1 ? m->mix[t] : trunk_out(m, 0, x);
}

void mtc_model_forward(mtc_model *m, const float *x, int B, int train, mtc_rng *rng)
{
    for (int k = 0; k < m->nexperts; k++) chain_forward(m, &m->trunk[k], x, B, train, rng);
    int64_t H = m->trunk_out;
    for (int t = 0; t < m->spec.ntasks; t++) {
        if (m->nexperts > 1) {
            mtc_layer *G = &m->gate[t];
            layer_forward(m, G, x, B, train, rng);
            mtc_softmax_rows(m->gate_p[t], G->out, B, m->nexperts, 1.0f);
            float *mix = m->mix[t];
            memset(mix, 0, (size_t)B * (size_t)H * sizeof(float));
            for (int k = 0; k < m->nexperts; k++) {
                const float *h = trunk_out(m, k, x);
                for (int b = 0; b < B; b++) {
                    float g = m->gate_p[t][b * m->nexperts + k];
                    for (int64_t j = 0; j < H; j++) mix[b * H + j] += g * h[b * H + j];
                }
            }
        }
        chain_forward(m, &m->head[t], head_input(m, t, x), B, train, rng);
    }
}

void mtc_model_backward_heads(mtc_model *m, const float *x, float *const *dout, int B)
{
    int64_t H = m->trunk_out;
    for (int t = 0; t < m->spec.ntasks; t++) {
        mtc_chain *ch = &m->head[t];
        memset(m->dmix[t], 0, (size_t)B * (size_t)H * sizeof(float));
        if (!dout[t]) continue;
        mtc_layer *last = &ch->layers[ch->n - 1];
        memcpy(last->dout, dout[t], (size_t)B * (size_t)last->out_size * sizeof(float));
        chain_backward(m, ch, head_input(m, t, x), m->dmix[t], B);
    }
}

void mtc_model_backward_trunk(mtc_model *m, const float *x, int B)
{
    int64_t H = m->trunk_out;
    int E = m->nexperts;
    for (int k = 0; k < E; k++) {
        memset(m->dtrunk[k], 0, (size_t)B * (size_t)H * sizeof(float));
    }
    for (int t = 0; t < m->spec.ntasks; t++) {
        const float *dm = m->dmix[t];
        if (E == 1) {
            for (int64_t i = 0; i < (int64_t)B * H; i++) m->dtrunk[0][i] += dm[i];
            continue;
        }
        /* MMoE: d h_k += g_k dmix;  d g_k = <dmix, h_k>;
         * d logit_k = g_k (d g_k - sum_j g_j d g_j) */
        mtc_layer *G = &m->gate[t];
        const float *p = m->gate_p[t];
        float dg[MTC_MAX_EXPERTS];
        for (int b = 0; b < B; b++) {
            float dot = 0;
            for (int k = 0; k < E; k++) {
                const float *h = trunk_out(m, k, x) + b * H;
                float g = p[b * E + k], s = 0;
                for (int64_t j = 0; j < H; j++) {
                    m->dtrunk[k][b * H + j] += g * dm[b * H + j];
                    s += dm[b * H + j] * h[j];
                }
                dg[k] = s;
                dot += g * s;
            }
            for (int k = 0; k < E; k++) G->dout[b * E + k] = p[b * E + k] * (dg[k] - dot);
        }
        layer_backward(m, G, x, NULL, B, 0);
    }
    for (int k = 0; k < E; k++) chain_backward(m, &m->trunk[k], x, NULL, B);
}

void mtc_model_backward(mtc_model *m, const float *x, float *const *dout, int B)
{
    mtc_model_backward_heads(m, x, dout, B);
    mtc_model_backward_trunk(m, x, B);
}

const float *mtc_model_trunk_output(const mtc_model *m)
{
    const mtc_chain *ch = &m->trunk[0];
    return ch->n ? ch->layers[ch->n - 1].out : NULL;
}

void mtc_model_unstandardise(const mtc_model *m, int t, float *y, int B)
{
    int D = m->spec.tasks[t].dim;
    if (m->spec.tasks[t].kind != MTC_TASK_REG) return;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) y[b * D + d] = y[b * D + d] * m->reg_std[t][d] + m->reg_mean[t][d];
}

/* ---- checkpoint conversion --------------------------------------------------- */

typedef int (*layer_fn)(mtc_model *m, mtc_layer *L, void *ctx);

static int for_each_layer(mtc_model *m, layer_fn fn, void *ctx)
{
    int rc;
    for (int k = 0; k < m->nexperts; k++)
        for (int i = 0; i < m->trunk[k].n; i++)
            if ((rc = fn(m, &m->trunk[k].layers[i], ctx))) return rc;
    for (int t = 0; t < m->spec.ntasks; t++) {
        if (m->nexperts > 1 && (rc = fn(m, &m->gate[t], ctx))) return rc;
        for (int i = 0; i < m->head[t].n; i++)
            if ((rc = fn(m, &m->head[t].layers[i], ctx))) return rc;
    }
    return 0;
}

int mtc_model_for_each_layer(mtc_model *m, int (*fn)(mtc_model *, mtc_layer *, void *), void *ctx)
{
    return for_each_layer(m, fn, ctx);
}

static int weight_dims(const mtc_layer *L, int64_t *dims)
{
    if (L->spec.type == MTC_L_CONV) {
        dims[0] = L->cs.OC; dims[1] = L->cs.C; dims[2] = L->cs.K; dims[3] = L->cs.K;
        return 4;
    }
    if (L->spec.type == MTC_L_DENSE) { dims[0] = L->spec.units; dims[1] = L->in_size; return 2; }
    dims[0] = L->nw;
    return 1;
}

typedef struct { mtc_ckpt *c; mtc_err *e; } save_ctx;

/* A masked layer's weights as a bitmask plus the kept values: bit i (LSB
 * first in byte i/8) = mask[i] != 0, then w[i] of every set bit in order.
 * A pruned weight is 0 by the mask's contract, so nothing is lost. */
static int save_weight_bits(mtc_ckpt *c, const mtc_layer *L, const float *w, const float *mask, mtc_err *e)
{
    int64_t nbytes = (L->nw + 7) / 8, nnz = 0;
    uint8_t *bits = calloc((size_t)nbytes + 1, 1);
    float *nz = malloc((size_t)L->nw * sizeof(float) + 1);
    if (!bits || !nz) { free(bits); free(nz); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
    for (int64_t i = 0; i < L->nw; i++)
        if (mask[i] != 0.0f) {
            bits[i >> 3] |= (uint8_t)(1u << (i & 7));
            nz[nnz++] = w[i];
        }
    char name[160];
    snprintf(name, sizeof name, "%s.weight_bits", L->name);
    int rc = mtc_ckpt_add(c, name, MTC_U8, 1, &nbytes, bits, e);
    snprintf(name, sizeof name, "%s.weight_nz", L->name);
    if (!rc) rc = mtc_ckpt_add(c, name, MTC_F32, 1, &nnz, nz, e);
    free(bits);
    free(nz);
    return rc;
}

static int save_layer(mtc_model *m, mtc_layer *L, void *vctx)
{
    save_ctx *s = vctx;
    char name[160];
    int64_t dims[4];
    int rc = 0;
    if (L->w_off >= 0) {
        int nd = weight_dims(L, dims);
        if (m->mask) {
            if ((rc = save_weight_bits(s->c, L, m->params + L->w_off, m->mask + L->w_off, s->e))) return rc;
        } else {
            snprintf(name, sizeof name, "%s.weight", L->name);
            if ((rc = mtc_ckpt_add(s->c, name, MTC_F32, nd, dims, m->params + L->w_off, s->e))) return rc;
        }
    }
    if (L->b_off >= 0) {
        dims[0] = L->nb;
        snprintf(name, sizeof name, "%s.bias", L->name);
        if ((rc = mtc_ckpt_add(s->c, name, MTC_F32, 1, dims, m->params + L->b_off, s->e))) return rc;
    }
    if (L->stat_off >= 0) {
        dims[0] = L->in_c;
        snprintf(name, sizeof name, "%s.running_mean", L->name);
        if ((rc = mtc_ckpt_add(s->c, name, MTC_F32, 1, dims, m->stats + L->stat_off, s->e))) return rc;
        snprintf(name, sizeof name, "%s.running_var", L->name);
        if ((rc = mtc_ckpt_add(s->c, name, MTC_F32, 1, dims, m->stats + L->stat_off + L->in_c, s->e)))
            return rc;
    }
    return 0;
}

int mtc_model_to_ckpt(const mtc_model *mc, const char *meta_json, mtc_ckpt *c, mtc_err *e)
{
    mtc_model *m = (mtc_model *)mc; /* traversal only reads */
    memset(c, 0, sizeof *c);
    if (mtc_ckpt_set_text(&c->spec, m->spec_text ? m->spec_text : "") ||
        mtc_ckpt_set_text(&c->meta, meta_json ? meta_json : "{}"))
        return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    save_ctx s = {c, e};
    int rc = for_each_layer(m, save_layer, &s);
    for (int t = 0; t < m->spec.ntasks && !rc; t++) {
        if (m->nclass_names[t] > 0) { /* names joined by '\n' */
            size_t len = 0;
            for (int i = 0; i < m->nclass_names[t]; i++) len += strlen(m->class_names[t][i]) + 1;
            char *blob = malloc(len), *p = blob;
            if (!blob) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); break; }
            for (int i = 0; i < m->nclass_names[t]; i++) p += sprintf(p, "%s%s", i ? "\n" : "", m->class_names[t][i]);
            char name[160];
            int64_t n = (int64_t)(p - blob);
            snprintf(name, sizeof name, "task.%s.classes", m->spec.tasks[t].name);
            rc = mtc_ckpt_add(c, name, MTC_U8, 1, &n, blob, e);
            free(blob);
            if (rc) break;
        }
        if (m->spec.tasks[t].kind != MTC_TASK_REG) continue;
        char name[160];
        int64_t d = m->spec.tasks[t].dim;
        snprintf(name, sizeof name, "task.%s.target_mean", m->spec.tasks[t].name);
        rc = mtc_ckpt_add(c, name, MTC_F32, 1, &d, m->reg_mean[t], e);
        snprintf(name, sizeof name, "task.%s.target_std", m->spec.tasks[t].name);
        if (!rc) rc = mtc_ckpt_add(c, name, MTC_F32, 1, &d, m->reg_std[t], e);
    }
    if (rc) mtc_ckpt_free(c);
    return rc;
}

/* ---- a layer's weights in a checkpoint --------------------------------------- */

/* t is f32 with exactly the nd dims given. */
static int check_f32(const char *path, const mtc_tensor *t, const int64_t *dims, int nd, mtc_err *e)
{
    if (t->dtype != MTC_F32 || t->ndim != nd)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' has dtype %s and %d dims, expected f32 with %d", path,
                           t->name, mtc_dtype_name(t->dtype), t->ndim, nd);
    for (int i = 0; i < nd; i++)
        if (t->dims[i] != dims[i])
            return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' dim %d is %lld, spec says %lld", path, t->name, i,
                               (long long)t->dims[i], (long long)dims[i]);
    return 0;
}

static int check_finite(const char *path, const mtc_tensor *t, int64_t n, mtc_err *e)
{
    const float *v = t->data;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' value %lld is not finite", path, t->name,
                               (long long)i);
    return 0;
}

/* The tensors that may hold layer L's weights, NULL when absent. */
typedef struct {
    const mtc_tensor *w, *mask, *bits, *nz;
    char wn[128], mn[128], bn[128], zn[128];
} weight_tensors;

static void find_weight(const mtc_ckpt *c, const mtc_layer *L, weight_tensors *t)
{
    snprintf(t->wn, sizeof t->wn, "%s.weight", L->name);
    snprintf(t->mn, sizeof t->mn, "%s.mask", L->name);
    snprintf(t->bn, sizeof t->bn, "%s.weight_bits", L->name);
    snprintf(t->zn, sizeof t->zn, "%s.weight_nz", L->name);
    t->w = mtc_ckpt_find(c, t->wn);
    t->mask = mtc_ckpt_find(c, t->mn);
    t->bits = mtc_ckpt_find(c, t->bn);
    t->nz = mtc_ckpt_find(c, t->zn);
}

int mtc_layer_weight_form(const mtc_ckpt *c, const mtc_layer *L)
{
    weight_tensors t;
    find_weight(c, L, &t);
    if (t.bits || t.nz) return MTC_WEIGHT_BITS;
    if (t.w) return t.mask ? MTC_WEIGHT_DENSE_MASK : MTC_WEIGHT_DENSE;
    return MTC_WEIGHT_NONE;
}

/* ".weight" shaped as the spec says, optionally ".mask" (u8, one byte per
 * weight, 0 = pruned). */
static int read_dense(const char *path, const mtc_layer *L, const weight_tensors *t, float *w, float *mask,
                      mtc_err *e)
{
    int64_t dims[4];
    int nd = weight_dims(L, dims), rc;
    if ((rc = check_f32(path, t->w, dims, nd, e)) || (rc = check_finite(path, t->w, L->nw, e))) return rc;
    if (t->mask && (t->mask->dtype != MTC_U8 || mtc_tensor_numel(t->mask) != L->nw))
        return mtc_err_set(e, MTC_EINPUT, "%s: mask '%s' does not match its weight", path, t->mn);
    const float *src = t->w->data;
    const uint8_t *keep = t->mask ? t->mask->data : NULL;
    for (int64_t i = 0; i < L->nw; i++) {
        int k = !keep || keep[i];
        w[i] = k || src[i] == 0.0f ? src[i] : 0.0f; /* pruned stays zero (a stored -0.0 as it was) */
        if (mask) mask[i] = (float)k;
    }
    return 0;
}

/* ".weight_bits" (u8, ceil(nw/8) bytes, padding bits 0) and ".weight_nz"
 * (f32, one value per set bit). */
static int read_bits(const char *path, const mtc_layer *L, const weight_tensors *t, float *w, float *mask,
                     mtc_err *e)
{
    const mtc_tensor *b = t->bits, *z = t->nz;
    int64_t nw = L->nw, nbytes = (nw + 7) / 8, kept = 0;
    if (b->dtype != MTC_U8 || b->ndim != 1 || b->dims[0] != nbytes)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' is %s with %lld values, expected u8 with %lld (a bit per weight)",
                           path, b->name, mtc_dtype_name(b->dtype), (long long)mtc_tensor_numel(b), (long long)nbytes);
    const uint8_t *bits = b->data;
    if (nw % 8 && bits[nbytes - 1] >> (nw % 8))
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' has padding bits set past its %lld weights", path, b->name,
                           (long long)nw);
    for (int64_t i = 0; i < nbytes; i++)
        for (unsigned v = bits[i]; v; v &= v - 1) kept++;
    if (z->dtype != MTC_F32 || z->ndim != 1 || z->dims[0] != kept)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' is %s with %lld values, expected f32 with %lld (the bits set in '%s')",
                           path, z->name, mtc_dtype_name(z->dtype), (long long)mtc_tensor_numel(z), (long long)kept,
                           b->name);
    int rc = check_finite(path, z, kept, e);
    if (rc) return rc;
    const float *nz = z->data;
    for (int64_t i = 0, j = 0; i < nw; i++) {
        int k = bits[i >> 3] >> (i & 7) & 1;
        w[i] = k ? nz[j++] : 0.0f;
        if (mask) mask[i] = (float)k;
    }
    return 0;
}

int mtc_layer_read_weight(const mtc_ckpt *c, const char *path, const mtc_layer *L, float *w, float *mask, int *form,
                          mtc_err *e)
{
    weight_tensors t;
    find_weight(c, L, &t);
    *form = MTC_WEIGHT_NONE;
    int rc;
    if (t.bits || t.nz) {
        if (t.w || t.mask)
            return mtc_err_set(e, MTC_EINPUT, "%s: tensors '%s' and '%s' both hold the weights of %s", path,
                               t.w ? t.wn : t.mn, t.bits ? t.bn : t.zn, L->name);
        if (!t.bits || !t.nz)
            return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' missing (it goes with '%s')", path,
                               t.bits ? t.zn : t.bn, t.bits ? t.bn : t.zn);
        if ((rc = read_bits(path, L, &t, w, mask, e))) return rc;
        *form = MTC_WEIGHT_BITS;
        return 0;
    }
    if (!t.w) return 0; /* an int8 layer (a stray old ".mask" says nothing then) */
    if ((rc = read_dense(path, L, &t, w, mask, e))) return rc;
    *form = t.mask ? MTC_WEIGHT_DENSE_MASK : MTC_WEIGHT_DENSE;
    return 0;
}

/* ---- checkpoint -> model -------------------------------------------------------- */

typedef struct {
    const mtc_ckpt *c;
    mtc_err *e;
    const char *path;
    int masked; /* some layer's weights came with a mask */
} load_ctx;

static int load_tensor(load_ctx *l, const char *name, const int64_t *dims, int nd, float *dst)
{
    const mtc_tensor *t = mtc_ckpt_find(l->c, name);
    if (!t) return mtc_err_set(l->e, MTC_EINPUT, "%s: tensor '%s' missing", l->path, name);
    int rc = check_f32(l->path, t, dims, nd, l->e);
    if (!rc) memcpy(dst, t->data, (size_t)mtc_tensor_numel(t) * sizeof(float));
    return rc;
}

static int load_layer(mtc_model *m, mtc_layer *L, void *vctx)
{
    load_ctx *l = vctx;
    char name[160];
    int64_t dims[4];
    int rc, form;
    if (L->w_off >= 0) {
        rc = mtc_layer_read_weight(l->c, l->path, L, m->params + L->w_off, m->mask + L->w_off, &form, l->e);
        if (rc) return rc;
        if (form == MTC_WEIGHT_NONE)
            return mtc_err_set(l->e, MTC_EINPUT, "%s: tensor '%s.weight' missing", l->path, L->name);
        l->masked |= form != MTC_WEIGHT_DENSE;
    }
    if (L->b_off >= 0) {
        dims[0] = L->nb;
        snprintf(name, sizeof name, "%s.bias", L->name);
        if ((rc = load_tensor(l, name, dims, 1, m->params + L->b_off))) return rc;
    }
    if (L->stat_off >= 0) {
        dims[0] = L->in_c;
        snprintf(name, sizeof name, "%s.running_mean", L->name);
        if ((rc = load_tensor(l, name, dims, 1, m->stats + L->stat_off))) return rc;
        snprintf(name, sizeof name, "%s.running_var", L->name);
        if ((rc = load_tensor(l, name, dims, 1, m->stats + L->stat_off + L->in_c))) return rc;
    }
    return 0;
}

int mtc_model_from_ckpt_path(const mtc_ckpt *c, const char *path, mtc_model *m, mtc_err *e)
{
    if (!c->spec || !c->spec[0])
        return mtc_err_set(e, MTC_EINPUT, "%s: checkpoint has no model spec", path);
    mtc_spec s;
    char where[300];
    snprintf(where, sizeof where, "%s(spec)", path);
    int rc = mtc_spec_parse(c->spec, where, &s, e);
    if (rc) return rc;
    /* Every parameter and statistic comes from an f32 tensor of the file
     * or a bit of a weight bitmask: a spec asking for more than the file
     * holds is refused before the model's buffers are allocated. */
    if ((rc = mtc_model_layout(&s, c->spec, m, e))) return rc;
    int64_t have = 0;
    for (int i = 0; i < c->ntensors; i++) {
        const mtc_tensor *t = &c->tensors[i];
        size_t n = strlen(t->name);
        if (t->dtype == MTC_F32) have += mtc_tensor_numel(t);
        else if (n > 12 && !strcmp(t->name + n - 12, ".weight_bits")) /* a weight per bit; */
            have += 8 * mtc_tensor_numel(t) * (int64_t)mtc_dtype_size(t->dtype); /* a wrong dtype is named later */
    }
    if (m->nparams + m->nstats > have) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: the spec needs %lld values but the file holds %lld",
                         path, (long long)(m->nparams + m->nstats), (long long)have);
        mtc_model_free(m);
        return rc;
    }
    if ((rc = model_alloc(m, e))) return rc;
    /* every layer reads its mask; the model keeps one only if the file had one */
    if (!(m->mask = malloc((size_t)m->nparams * sizeof(float) + 1))) {
        mtc_model_free(m);
        return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < m->nparams; i++) m->mask[i] = 1.0f;
    load_ctx l = {c, e, path, 0};
    rc = for_each_layer(m, load_layer, &l);
    if (!l.masked) {
        free(m->mask);
        m->mask = NULL;
    }
    for (int t = 0; t < s.ntasks && !rc; t++) {
        if (s.tasks[t].kind != MTC_TASK_REG) continue;
        char name[160];
        int64_t d = s.tasks[t].dim;
        snprintf(name, sizeof name, "task.%s.target_mean", s.tasks[t].name);
        rc = load_tensor(&l, name, &d, 1, m->reg_mean[t]);
        snprintf(name, sizeof name, "task.%s.target_std", s.tasks[t].name);
        if (!rc) rc = load_tensor(&l, name, &d, 1, m->reg_std[t]);
    }
    if (!rc) rc = mtc_model_load_class_names(m, c, path, e);
    for (int64_t i = 0; i < m->nparams && !rc; i++)
        if (!isfinite(m->params[i]))
            rc = mtc_err_set(e, MTC_EINPUT, "%s: parameter %lld is not finite", path, (long long)i);
    if (rc) mtc_model_free(m);
    return rc;
}

static int set_names(mtc_model *m, int t, char **names, int n, mtc_err *e)
{
    if (n != m->spec.tasks[t].dim)
        return mtc_err_set(e, MTC_EINPUT, "task '%s': %d class names for %d classes", m->spec.tasks[t].name, n,
                           m->spec.tasks[t].dim);
    char **dst = calloc((size_t)n, sizeof *dst);
    if (!dst) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        if (!(dst[i] = strdup(names[i]))) {
            for (int j = 0; j < i; j++) free(dst[j]);
            free(dst);
            return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        }
    for (int i = 0; i < m->nclass_names[t]; i++) free(m->class_names[t][i]);
    free(m->class_names[t]);
    m->class_names[t] = dst;
    m->nclass_names[t] = n;
    return 0;
}

int mtc_model_set_class_names(mtc_model *m, const mtc_dataset *d, mtc_err *e)
{
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        if (ts->kind != MTC_TASK_CLS || ts->from[0]) continue;
        int di = mtc_data_task_index(d, ts->column[0] ? ts->column : ts->name);
        if (di < 0) di = mtc_data_task_index(d, ts->name);
        if (di < 0 || d->tasks[di].nclass_names <= 0) continue;
        int rc = set_names(m, t, d->tasks[di].class_names, d->tasks[di].nclass_names, e);
        if (rc) return rc;
    }
    return 0;
}

int mtc_model_load_class_names(mtc_model *m, const mtc_ckpt *c, const char *path, mtc_err *e)
{
    for (int t = 0; t < m->spec.ntasks; t++) {
        char name[160];
        snprintf(name, sizeof name, "task.%s.classes", m->spec.tasks[t].name);
        const mtc_tensor *tn = mtc_ckpt_find(c, name);
        if (!tn) continue;
        int64_t len = mtc_tensor_numel(tn);
        if (tn->dtype != MTC_U8 || tn->ndim != 1 || len < 1 || len > (1 << 24))
            return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' is not a class-name list", path, name);
        char *blob = malloc((size_t)len + 1);
        char **names = calloc((size_t)len + 1, sizeof *names);
        if (!blob || !names) { free(blob); free(names); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
        memcpy(blob, tn->data, (size_t)len);
        blob[len] = 0;
        int n = 0;
        for (char *p = blob, *q; p; p = q) {
            q = strchr(p, '\n');
            if (q) *q++ = 0;
            names[n++] = p;
        }
        mtc_err e2 = {0};
        int rc = set_names(m, t, names, n, &e2);
        free(names);
        free(blob);
        if (rc) return mtc_err_set(e, rc, "%s: %s", path, e2.msg);
    }
    return 0;
}

int mtc_model_from_ckpt(const mtc_ckpt *c, mtc_model *m, mtc_err *e)
{
    return mtc_model_from_ckpt_path(c, "checkpoint", m, e);
}

int mtc_model_save(const mtc_model *m, const char *path, const char *meta_json, mtc_err *e)
{
    mtc_ckpt c;
    int rc = mtc_model_to_ckpt(m, meta_json, &c, e);
    if (rc) return rc;
    rc = mtc_ckpt_save(path, &c, e);
    mtc_ckpt_free(&c);
    return rc;
}

int mtc_model_load(const char *path, mtc_model *m, char **meta_json, mtc_err *e)
{
    mtc_ckpt c;
    int rc = mtc_ckpt_load(path, &c, e);
    if (rc) return rc;
    rc = mtc_model_from_ckpt_path(&c, path, m, e);
    if (!rc && meta_json) {
        *meta_json = c.meta;
        c.meta = NULL;
    }
    mtc_ckpt_free(&c);
    return rc;
}

/* ---- data binding and prediction ------------------------------------------- */

int mtc_model_bind_task(const mtc_model *m, int t, const mtc_dataset *d, int32_t **labels,
                        const float **targets, mtc_err *e)
{
    const mtc_task_spec *ts = &m->spec.tasks[t];
    *labels = NULL;
    *targets = NULL;
    const char *src = ts->from[0] ? ts->from : (ts->column[0] ? ts->column : ts->name);
    int di = mtc_data_task_index(d, src);
    if (di < 0 && ts->from[0] == 0) di = mtc_data_task_index(d, ts->name);
    if (di < 0)
        return mtc_err_set(e, MTC_EINPUT, "%s: no task or column '%s' for model task '%s'", d->name, src,
                           ts->name);
    const mtc_data_task *dt = &d->tasks[di];
    if (ts->kind == MTC_TASK_CLS) {
        if (dt->kind != MTC_TASK_CLS || !dt->labels)
            return mtc_err_set(e, MTC_EINPUT, "%s: task '%s' is not a classification label", d->name, src);
        int32_t *lab = malloc((size_t)(d->n ? d->n : 1) * sizeof(int32_t));
        if (!lab) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        for (int64_t i = 0; i < d->n; i++) {
            int32_t y = dt->labels[i];
            if (ts->from[0]) {
                if (y < 0 || y >= ts->nmap) {
                    free(lab);
                    return mtc_err_set(e, MTC_EINPUT, "%s: sample %lld: label %d of '%s' outside the map of '%s'",
                                       d->name, (long long)i, y, src, ts->name);
                }
                y = ts->map[y];
            }
            if (y < 0 || y >= ts->dim) {
                free(lab);
                return mtc_err_set(e, MTC_EINPUT, "%s: sample %lld: label %d out of range for task '%s' (%d classes)",
                                   d->name, (long long)i, y, ts->name, ts->dim);
            }
            lab[i] = y;
        }
        *labels = lab;
    } else {
        if (!dt->targets || dt->dim != ts->dim)
            return mtc_err_set(e, MTC_EINPUT, "%s: task '%s' needs %d float targets per sample", d->name,
                               ts->name, ts->dim);
        *targets = dt->targets;
    }
    return 0;
}

int mtc_model_check_input(const mtc_model *m, const mtc_dataset *d, mtc_err *e)
{
    if (d->c != m->spec.c || d->h != m->spec.h || d->w != m->spec.w)
        return mtc_err_set(e, MTC_EINPUT, "%s: samples are %dx%dx%d but the model expects %dx%dx%d", d->name,
                           d->c, d->h, d->w, m->spec.c, m->spec.h, m->spec.w);
    if (d->n <= 0) return mtc_err_set(e, MTC_EINPUT, "%s: empty data set", d->name);
    return 0;
}

int mtc_model_predict(mtc_model *m, const mtc_dataset *d, const int64_t *idx, int64_t n, int batch,
                      float **outs, mtc_err *e)
{
    int rc = mtc_model_check_input(m, d, e);
    if (rc) return rc;
    if (!idx) n = d->n;
    /* work buffers already sized (e.g. by training) are reused rather than
     * grown: a bigger evaluation batch would only raise the peak memory */
    if (m->max_batch > 0 && batch > m->max_batch) batch = m->max_batch;
    if ((rc = mtc_model_reserve(m, batch, e))) return rc;
    int T = m->spec.ntasks;
    for (int t = 0; t < T; t++) {
        outs[t] = malloc((size_t)n * (size_t)m->spec.tasks[t].dim * sizeof(float));
        if (!outs[t]) {
            for (int j = 0; j <= t; j++) { free(outs[j]); outs[j] = NULL; }
            return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        }
    }
    int64_t S = mtc_data_sample_size(d);
    float *x = malloc((size_t)batch * (size_t)S * sizeof(float));
    int64_t *bi = malloc((size_t)batch * sizeof(int64_t));
    if (!x || !bi) {
        free(x); free(bi);
        for (int t = 0; t < T; t++) { free(outs[t]); outs[t] = NULL; }
        return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    }
    for (int64_t s = 0; s < n; s += batch) {
        int B = (int)(n - s < batch ? n - s : batch);
        for (int b = 0; b < B; b++) bi[b] = idx ? idx[s + b] : s + b;
        mtc_data_batch_x(d, bi, B, 0, NULL, x);
        mtc_model_forward(m, x, B, 0, NULL);
        for (int t = 0; t < T; t++) {
            int D = m->spec.tasks[t].dim;
            float *dst = outs[t] + s * D;
            memcpy(dst, m->outputs[t], (size_t)B * (size_t)D * sizeof(float));
            mtc_model_unstandardise(m, t, dst, B);
        }
    }
    free(x);
    free(bi);
    return 0;
}
