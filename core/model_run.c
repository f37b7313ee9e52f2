/*
 * model_run.c — running the training engine's model: work buffers
 * (mtc_model_reserve), forward and backward over batch slices on mtc's pool
 * (OpenBLAS single-threaded inside), and mtc_model_predict. The model's
 * layout and checkpoints are model.c's.
 *
 * Hard sharing:  x -> trunk -> h -> head_t -> out_t
 * MMoE (Ma 2018): x -> expert_k -> h_k;  g_t = softmax(W_t x + b_t);
 *                mix_t = sum_k g_t,k h_k -> head_t -> out_t
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- work buffers ------------------------------------------------------------ */

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
    int fused = (L->spec.type == MTC_L_DENSE || L->spec.type == MTC_L_CONV || L->spec.type == MTC_L_ADD);
    if (L->spec.type == MTC_L_ADD && !(L->aux = malloc(n * sizeof(float)))) return -1;
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
    mtc_model_free_buffers(m);
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
        mtc_model_free_buffers(m);
        return mtc_err_set(e, MTC_ENOMEM, "model: out of memory for batch %d", B);
    }
    m->max_batch = B;
    return 0;
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

/* A dense layer split over output units: task k computes columns
 * [o0, o0+on) of every row, reading only its rows of W. Its backward
 * (dense_split_backward) owns the same units, and the optimiser's slices
 * follow the weights' order: the weights a thread updates are the ones it
 * reads and differentiates, so they stay in its core's cache (split by
 * batch rows, every thread read all of W each step, half of it just
 * written by the other core: 2 threads trained the 784->128 student only
 * ~1.1x faster than one). */
static void dense_units_fwd_task(void *v, int k)
{
    par_ctx *c = v;
    mtc_model *m = c->m;
    mtc_layer *L = c->L;
    const int I = (int)L->in_size, O = L->spec.units, B = c->B;
    int o0, on;
    span(O, k, c->P, &o0, &on);
    if (on <= 0) return;
    mtc_dense_forward_ld(L->pre + o0, O, c->x, m->params + L->w_off + (int64_t)o0 * I, m->params + L->b_off + o0, B, I, on);
    if (L->spec.act)
        for (int r = 0; r < B; r++)
            mtc_act_forward(L->out + (int64_t)r * O + o0, L->pre + (int64_t)r * O + o0, on, L->spec.act);
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

/* Dense backward, split with no reduction. Phase 1 (units): the
 * pre-activation gradient g of output units [o0, o0+on), every row (the
 * units task k computed forward). Phase 2: task k owns
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
    const par_ctx *c = v;
    const mtc_layer *L = c->L;
    const int O = L->spec.units;
    int o0, on;
    span(O, k, c->P, &o0, &on);
    for (int r = 0; r < c->B && on > 0; r++) {
        int64_t at = (int64_t)r * O + o0;
        float *dpre = c->m->dinput + at;
        memset(dpre, 0, (size_t)on * sizeof(float));
        mtc_act_backward(dpre, L->dout + at, L->pre == L->out ? NULL : L->pre + at, L->out + at, on, L->spec.act);
    }
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

/* No input gradient (the first layer): a task's units need no other
 * task's phase 1, so both phases run in one region. */
static void dense_dpre_grad_task(void *v, int k)
{
    const par_ctx *c = v;
    if (c->L->spec.act) dense_dpre_task(v, k);
    dense_grad_task(v, k);
}

static void dense_split_backward(par_ctx *c)
{
    if (!c->dx) {
        mtc_pool_run(c->m->pool, c->P, dense_dpre_grad_task, c);
        return;
    }
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
    else mtc_pool_run(m->pool, c.P, L->spec.type == MTC_L_DENSE ? dense_units_fwd_task : fwd_task, &c);
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
        if (train == MTC_FWD_TRAIN && s->p > 0) mtc_dropout_forward(L->out, L->drop_mask, x, n, s->p, rng);
        else memcpy(L->out, x, (size_t)n * sizeof(float));
        break;
    case MTC_L_BATCHNORM: {
        float *rm = m->stats + L->stat_off, *rv = rm + L->in_c;
        int S = L->in_h * L->in_w;
        if (train == MTC_FWD_TRAIN)
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
    if (L->spec.type == MTC_L_BATCHNORM && !m->eval_grad) {
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
    case MTC_L_BATCHNORM: /* eval statistics (eval_grad): the input gradient only */
        if (dx) {
            const float *rv = m->stats + L->stat_off + L->in_c;
            const int64_t S = (int64_t)L->in_h * L->in_w;
            for (int b = 0; b < B; b++)
                for (int c = 0; c < L->in_c; c++) {
                    float k = (W ? W[c] : 1.0f) / sqrtf(rv[c] + NORM_EPS);
                    int64_t o = ((int64_t)b * L->in_c + c) * S;
                    for (int64_t j = 0; j < S; j++) dx[o + j] += k * g[o + j];
                }
        }
        break;
    case MTC_L_DROPOUT:
        if (dx) {
            if (s->p > 0 && !m->eval_grad) mtc_dropout_backward(dx, g, L->drop_mask, n, s->p);
            else for (int64_t i = 0; i < n; i++) dx[i] += g[i];
        }
        break;
    case MTC_L_LAYERNORM:
        mtc_layernorm_backward(dx, dW, db, g, x, L->mean, L->rstd, W, B, (int)L->in_size);
        break;
    }
}

/* A residual block: [residual] keeps its input (its output is a copy, the
 * block's first layer reads it); [add] writes act(x + that input). */
static void residual_forward(mtc_chain *ch, int i, const float *x, int B)
{
    mtc_layer *L = &ch->layers[i];
    const int64_t n = (int64_t)B * L->out_size;
    if (L->spec.type == MTC_L_RESIDUAL) {
        memcpy(L->out, x, (size_t)n * sizeof(float));
        return;
    }
    const float *skip = ch->layers[L->partner].out;
    for (int64_t j = 0; j < n; j++) L->pre[j] = x[j] + skip[j];
    if (L->spec.act) mtc_act_forward(L->out, L->pre, n, L->spec.act);
}

/* Backward of residual_forward. [add]: the gradient through act goes to the
 * block's last layer (din) and, kept in aux, to the block's input; the
 * [residual] layer (reached after the block's layers) passes its own
 * gradient plus that kept one on. fresh: see par_ctx. */
static void residual_backward(mtc_chain *ch, int i, float *din, int B, int fresh)
{
    mtc_layer *L = &ch->layers[i];
    const int64_t n = (int64_t)B * L->out_size;
    if (L->spec.type == MTC_L_ADD) {
        const float *g = L->dout;
        if (L->spec.act) {
            memset(L->aux, 0, (size_t)n * sizeof(float));
            mtc_act_backward(L->aux, g, L->pre == L->out ? NULL : L->pre, L->out, n, L->spec.act);
            g = L->aux;
        } else {
            memcpy(L->aux, g, (size_t)n * sizeof(float));
        }
        if (!din) return;
        if (fresh) memcpy(din, g, (size_t)n * sizeof(float));
        else for (int64_t j = 0; j < n; j++) din[j] += g[j];
        return;
    }
    if (!din) return;
    const float *a = L->dout, *b = ch->layers[L->partner].aux;
    if (fresh) for (int64_t j = 0; j < n; j++) din[j] = a[j] + b[j];
    else for (int64_t j = 0; j < n; j++) din[j] += a[j] + b[j];
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
        } else if (train == MTC_FWD_TRAIN && bn_fuses_relu(ch, i)) {
            bn_run(m, &ch->layers[i], &ch->layers[i + 1], x, NULL, B, 0, bn_fwd_task);
            i++;
        } else if (ch->layers[i].spec.type == MTC_L_RESIDUAL || ch->layers[i].spec.type == MTC_L_ADD) {
            residual_forward(ch, i, x, B);
        } else {
            layer_forward(m, &ch->layers[i], x, B, train, rng);
        }
        x = ch->layers[i].out;
    }
    return x;
}

/* Expects the last layer's dout filled; accumulates into dx when non-NULL.
 * pieces (a trunk chain with m->grad_final set): counts each layer whose
 * parameter gradient is now final and reports it (mtc_model_grad_pieces). */
static void chain_backward(mtc_model *m, mtc_chain *ch, const float *x, float *dx, int B, int *pieces)
{
    for (int i = ch->n - 1; i >= 0; i--) {
        mtc_layer *pool = NULL;
        if (i && conv_fuses_pool(ch, i - 1)) /* a max-pool runs inside its conv */
            pool = &ch->layers[i--];
        mtc_layer *relu = NULL;
        if (i && !m->eval_grad && bn_fuses_relu(ch, i - 1)) /* the relu runs inside its batchnorm */
            relu = &ch->layers[i--];
        const float *in = i ? ch->layers[i - 1].out : x;
        float *din = i ? ch->layers[i - 1].dout : dx; /* inside the chain: written only here */
        const int rt = ch->layers[i].spec.type;
        if (pool) sliced_backward(m, &ch->layers[i], pool, in, din, B, i > 0);
        else if (relu) bn_run(m, &ch->layers[i], relu, in, din, B, i > 0, bn_bwd_task);
        else if (rt == MTC_L_RESIDUAL || rt == MTC_L_ADD) residual_backward(ch, i, din, B, i > 0);
        else layer_backward(m, &ch->layers[i], in, din, B, i > 0);
        if (pieces && ch->layers[i].nw + ch->layers[i].nb > 0) m->grad_final(m->grad_final_ctx, ++*pieces);
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
    m->eval_grad = train == MTC_FWD_EVAL_GRAD;
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
        chain_backward(m, ch, head_input(m, t, x), m->dmix[t], B, NULL);
    }
}

/* Where the experts' parameters end and the gates' and heads' begin. */
static int64_t trunk_params_end(const mtc_model *m)
{
    int64_t end = 0;
    for (int k = 0; k < m->nexperts; k++)
        for (int i = 0; i < m->trunk[k].n; i++) {
            const mtc_layer *L = &m->trunk[k].layers[i];
            if (L->nw) end = L->w_off + L->nw > end ? L->w_off + L->nw : end;
            if (L->nb) end = L->b_off + L->nb > end ? L->b_off + L->nb : end;
        }
    return end;
}

int mtc_model_grad_pieces(const mtc_model *m, int64_t *lo, int64_t *hi)
{
    int n = 0;
    const int64_t end = trunk_params_end(m);
    if (m->nparams > end) lo[n] = end, hi[n++] = m->nparams;
    for (int k = 0; k < m->nexperts; k++)
        for (int i = m->trunk[k].n - 1; i >= 0; i--) {
            const mtc_layer *L = &m->trunk[k].layers[i];
            if (L->nw + L->nb == 0) continue;
            lo[n] = L->nw ? L->w_off : L->b_off;
            hi[n] = lo[n] + L->nw + L->nb;
            n++;
        }
    return n;
}

/* dx (B, input size), when not NULL, accumulates the gradient wrt the
 * input x through every expert and gate. */
static void backward_trunk(mtc_model *m, const float *x, int B, float *dx)
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
        layer_backward(m, G, x, dx, B, 0);
    }
    int pieces = 0, *pc = m->grad_final ? &pieces : NULL;
    if (pc && m->nparams > trunk_params_end(m)) m->grad_final(m->grad_final_ctx, ++pieces);
    for (int k = 0; k < E; k++) {
        if (m->trunk[k].n) chain_backward(m, &m->trunk[k], x, dx, B, pc);
        else if (dx) /* no trunk layers: the expert's output is x */
            for (int64_t i = 0; i < (int64_t)B * H; i++) dx[i] += m->dtrunk[k][i];
    }
}

void mtc_model_backward_trunk(mtc_model *m, const float *x, int B)
{
    backward_trunk(m, x, B, NULL);
}

void mtc_model_input_grad(mtc_model *m, const float *x, float *const *dout, int B, float *dx)
{
    memset(dx, 0, (size_t)B * (size_t)m->spec.c * (size_t)m->spec.h * (size_t)m->spec.w * sizeof(float));
    mtc_model_backward_heads(m, x, dout, B);
    backward_trunk(m, x, B, dx);
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
