/*
 * model.c — the multi-task model: shared trunk (or MMoE experts + per-task
 * softmax gates) feeding one head per task; its layout, init, checkpoint
 * conversion and data binding. Running it (work buffers, forward, backward,
 * predict) is model_run.c's: this file needs no BLAS, so the runtime's
 * library (libmtcrt.a) can build models from checkpoints without training
 * code.
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
        int G = ls->groups > 1 ? ls->groups : 1;
        if (mtc_conv_shape_groups(&L->cs, G) != 0)
            return shape_err(e, ls, "groups must divide the input channels and the filters", c, h, w);
        oc = ls->filters; oh = L->cs.OH; ow = L->cs.OW;
        L->nw = (int64_t)ls->filters * (c / G) * ls->size * ls->size;
        L->nb = ls->filters;
        break;
    }
    case MTC_L_MAXPOOL: case MTC_L_AVGPOOL: {
        if (ls->size == 0) { /* global average pooling: the whole (square) map */
            if (h != w || h > 64) return shape_err(e, ls, "global pooling needs a square map of at most 64x64", c, h, w);
            L->spec.size = h;
            L->spec.stride = h;
            oh = ow = 1;
            break;
        }
        int stride = ls->stride ? ls->stride : ls->size;
        L->spec.stride = stride;
        if (h < ls->size || w < ls->size) return shape_err(e, ls, "window larger than the input", c, h, w);
        oh = (h - ls->size) / stride + 1; ow = (w - ls->size) / stride + 1;
        break;
    }
    case MTC_L_FLATTEN: oc = c * h * w; oh = ow = 1; break;
    case MTC_L_ACT: case MTC_L_DROPOUT: case MTC_L_RESIDUAL: case MTC_L_ADD: break; /* add: checked by the chain */
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
    int open[MTC_MAX_LAYERS], nopen = 0; /* residual blocks nest */
    for (int i = 0; i < n; i++) {
        char name[192]; /* longer than mtc_layer.name: the compiler cannot bound the parts */
        snprintf(name, sizeof name, "%s.%d.%s", prefix, i, mtc_layer_type_name(specs[i].type));
        mtc_layer *L = &ch->layers[i];
        int rc = layer_setup(L, &specs[i], name, c, h, w, poff, soff, e);
        if (rc) return rc;
        L->partner = -1;
        if (specs[i].type == MTC_L_RESIDUAL) open[nopen++] = i;
        if (specs[i].type == MTC_L_ADD) {
            if (!nopen) return mtc_err_set(e, MTC_EINPUT, "spec:%d: [add] without a [residual] to close", specs[i].line);
            mtc_layer *R = &ch->layers[open[--nopen]];
            if (R->in_c != c || R->in_h != h || R->in_w != w)
                return mtc_err_set(e, MTC_EINPUT, "spec:%d: [add]: the block's output is %dx%dx%d but its input (line %d) was "
                                   "%dx%dx%d; a residual block keeps the shape", specs[i].line, c, h, w, R->spec.line,
                                   R->in_c, R->in_h, R->in_w);
            R->partner = i;
            L->partner = (int)(R - ch->layers);
        }
        c = L->out_c; h = L->out_h; w = L->out_w;
    }
    if (nopen)
        return mtc_err_set(e, MTC_EINPUT, "spec:%d: [residual] never closed by an [add]", ch->layers[open[nopen - 1]].spec.line);
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
    free(L->out); free(L->dout); free(L->mean); free(L->rstd); free(L->argmax); free(L->drop_mask); free(L->aux);
    L->pre = L->out = L->dout = L->mean = L->rstd = L->aux = NULL;
    L->argmax = NULL;
    L->drop_mask = NULL;
}

void mtc_model_free_buffers(mtc_model *m)
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

void mtc_model_free(mtc_model *m)
{
    mtc_model_free_buffers(m);
    free(m->params); free(m->grads); free(m->decay_mask); free(m->mask); free(m->stats);
    free(m->spec_text);
    for (int t = 0; t < MTC_MAX_TASKS; t++) {
        for (int i = 0; i < m->nclass_names[t]; i++) free(m->class_names[t][i]);
        free(m->class_names[t]);
    }
    memset(m, 0, sizeof *m);
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
        dims[0] = L->cs.OC; dims[1] = L->cs.C / L->cs.G; dims[2] = L->cs.K; dims[3] = L->cs.K;
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
            if (y == MTC_LABEL_MISSING) { /* not labelled: a derived task neither */
                lab[i] = y;
                continue;
            }
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

