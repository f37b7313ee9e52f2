/*
 * rt.c — the reference inference runtime: loads fp32, pruned and int8
 * checkpoints and runs batches. It is what `mtc verify` and `mtc quantize`
 * measure with; it never trains.
 *
 * Loading turns each chain of layers into ops: dense/conv absorb a following
 * eval-mode batchnorm (mtc_batchnorm_fold) and a following relu; flatten and
 * dropout vanish. An op is int8 when the checkpoint holds "<layer>.weight_q".
 *
 * Activations move between ops as f32 or as u8 with (scale, zero point);
 * an int8 op quantizes a float input, an fp32 op dequantizes a u8 one.
 * Int8 dense: C = A·Wᵀ (mtc_qgemm_*), then per channel
 *   y = clamp(zp_out + requant(C + bias_q − zp_in·Σw, m0, shift), lo, 255)
 * (lo = zp_out with a fused relu), or y = (C + bias_eff)·s_in·s_w in float
 * for the last layer of a head. Int8 conv: im2col on u8 (padding = zp_in),
 * one GEMM per sample. Max pooling runs on u8 directly.
 *
 * Threads split the batch; each has its own workspace, reserved once.
 */
#include "runtime/rt_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


#define NORM_EPS 1e-5f

/* ---- workspace ------------------------------------------------------------- */

typedef struct rt_set { float *f[2]; uint8_t *u[2]; } rt_set;

struct rt_ws {
    int cap;                /* batch rows */
    rt_set set[2];          /* 0: trunk, 1: heads */
    int32_t *acc;
    void *tmp;              /* an int8 conv's outputs in (position, channel) order */
    uint8_t *nhwc;          /* an int8 conv's input sample, padded, channels last */
    uint8_t *ucol;
    float *col, *mean, *rstd;
    float *sparse;          /* the sparse kernels' scratch */
    float *experts, *mix, *gate;  /* MMoE */
    float *skip[MTC_MAX_LAYERS];  /* residual blocks: each open block's input */
};

static void ws_free(rt_ws *w)
{
    if (!w) return;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 2; i++) { free(w->set[s].f[i]); free(w->set[s].u[i]); }
    free(w->acc); free(w->tmp); free(w->nhwc); free(w->ucol); free(w->col); free(w->mean); free(w->rstd); free(w->sparse);
    free(w->experts); free(w->mix); free(w->gate);
    for (int d = 0; d < MTC_MAX_LAYERS; d++) free(w->skip[d]);
    free(w);
}

static rt_ws *ws_alloc(const mtc_rt *rt, int cap)
{
    rt_ws *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->cap = cap;
    int64_t act = (int64_t)rt->m.spec.c * rt->m.spec.h * rt->m.spec.w, acc = 1, ucol = 1, col = 1, sp = 1, nhwc = 1;
    for (int i = 0; i < rt->nops; i++) {
        const rt_op *op = rt->ops[i];
        if (op->csr.val && mtc_spmm_scratch_floats(&op->csr) > sp) sp = mtc_spmm_scratch_floats(&op->csr);
        if (op->in_size > act) act = op->in_size;
        if (op->out_size > act) act = op->out_size;
        if (op->kind == OP_CONV) {
            const mtc_conv_shape *cs = &op->L->cs;
            int64_t P = (int64_t)cs->OH * cs->OW;
            if (P * op->K > ucol) ucol = P * op->K;
            int64_t pl = (int64_t)(cs->H + 2 * cs->pad) * (cs->W + 2 * cs->pad) * cs->C;
            if (pl > nhwc) nhwc = pl;
            if (P * op->N > acc) acc = P * op->N;
            int64_t c = op->wino     ? mtc_wino_work_floats(cs)
                        : op->direct ? mtc_conv_direct_work_floats(cs)
                                     : ((P + 15) & ~15) * op->K + cs->OW; /* per sample */
            if (c > col) col = c;
        } else if (op->kind == OP_DENSE && (int64_t)cap * op->N > acc) {
            acc = (int64_t)cap * op->N;
        }
    }
    int bad = 0;
    size_t fa = (size_t)cap * (size_t)act;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 2; i++) {
            w->set[s].f[i] = malloc(fa * sizeof(float));
            w->set[s].u[i] = calloc(1, fa + MTC_QGEMM_SLACK); /* kernels read the slack */
            bad |= !w->set[s].f[i] || !w->set[s].u[i];
        }
    w->acc = malloc((size_t)acc * sizeof(int32_t));
    w->tmp = malloc((size_t)acc * sizeof(float));
    w->nhwc = malloc((size_t)nhwc);
    bad |= !w->tmp || !w->nhwc;
    w->ucol = calloc(1, (size_t)ucol + MTC_QGEMM_SLACK);
    w->col = malloc((size_t)col * sizeof(float));
    w->mean = malloc((size_t)cap * sizeof(float) + 64);
    w->rstd = malloc((size_t)cap * sizeof(float) + 64);
    w->sparse = malloc((size_t)sp * sizeof(float));
    bad |= !w->acc || !w->ucol || !w->col || !w->mean || !w->rstd || !w->sparse;
    for (int d = 0; d < rt->skip_depth; d++) bad |= !(w->skip[d] = malloc(fa * sizeof(float)));
    if (rt->m.nexperts > 1) {
        size_t H = (size_t)rt->m.trunk_out;
        w->experts = malloc((size_t)rt->m.nexperts * (size_t)cap * H * sizeof(float));
        w->mix = malloc((size_t)cap * H * sizeof(float));
        w->gate = malloc((size_t)cap * (size_t)rt->m.nexperts * sizeof(float));
        bad |= !w->experts || !w->mix || !w->gate;
    }
    if (bad) { ws_free(w); return NULL; }
    return w;
}

static void rt_free_ws(mtc_rt *rt)
{
    for (int i = 0; i < rt->nws; i++) ws_free(rt->ws[i]);
    free(rt->ws);
    rt->ws = NULL;
    rt->nws = 0;
    rt->max_batch = 0;
}

int mtc_rt_reserve(mtc_rt *rt, int max_batch, mtc_err *e)
{
    if (max_batch <= rt->max_batch) return 0;
    rt_free_ws(rt);
    int nt = rt->threads > 1 ? rt->threads : 1;
    int cap = (max_batch + nt - 1) / nt;
    rt->ws = calloc((size_t)nt, sizeof(rt_ws *));
    if (!rt->ws) return mtc_err_set(e, MTC_ENOMEM, "runtime: out of memory");
    rt->nws = nt;
    for (int i = 0; i < nt; i++)
        if (!(rt->ws[i] = ws_alloc(rt, cap))) {
            rt_free_ws(rt);
            return mtc_err_set(e, MTC_ENOMEM, "runtime: out of memory for batch %d", max_batch);
        }
    rt->max_batch = max_batch;
    return 0;
}

/* ---- ops -------------------------------------------------------------------- */

int rt_op_quantizable(const rt_op *op)
{
    return (op->kind == OP_DENSE || op->kind == OP_CONV) &&
           (op->act == MTC_ACT_NONE || op->act == MTC_ACT_RELU);
}

static void op_free(rt_op *op)
{
    free(op->W); free(op->b);
    mtc_qweight_free(&op->qw);
    free(op->wq); free(op->wq_dw); free(op->wscale); free(op->bias_q); free(op->bias_eff);
    free(op->m0); free(op->shift); free(op->deq);
    mtc_csr_free(&op->csr);
    free(op->wino);
    free(op->wp);
}

int rt_op_set_quant(rt_op *op, const int8_t *wq, const float *wscale, const int32_t *bias_q,
                    mtc_qparams in_p, mtc_qparams out_p, mtc_err *e)
{
    int N = op->N, K = op->K;
    if (!op->wq) {
        op->wq = malloc((size_t)N * (size_t)K);
        op->wscale = malloc((size_t)N * sizeof(float));
        op->bias_q = malloc((size_t)N * sizeof(int32_t));
        op->bias_eff = malloc((size_t)N * sizeof(int32_t));
        op->m0 = malloc((size_t)N * sizeof(int32_t));
        op->shift = malloc((size_t)N * sizeof(int));
        op->deq = malloc((size_t)N * sizeof(float));
        if (!op->wq || !op->wscale || !op->bias_q || !op->bias_eff || !op->m0 || !op->shift || !op->deq)
            return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    }
    if (op->wq != wq) memcpy(op->wq, wq, (size_t)N * (size_t)K);
    if (op->wscale != wscale) memcpy(op->wscale, wscale, (size_t)N * sizeof(float));
    if (op->bias_q != bias_q) memcpy(op->bias_q, bias_q, (size_t)N * sizeof(int32_t));
    if (!(in_p.scale > 0) || !(out_p.scale > 0) || in_p.zp < 0 || in_p.zp > 255 || out_p.zp < 0 ||
        out_p.zp > 255)
        return mtc_err_set(e, MTC_EINPUT, "%s: bad activation scale or zero point", op->L->name);
    mtc_qweight_free(&op->qw);
    int rc;
    if (op->kind == OP_CONV && op->L->cs.G <= 1) {
        /* the GEMM's columns in (ky, kx, c) order, as the channels-last
         * im2col lays them out (im2col_nhwc); integer sums: the same result */
        const mtc_conv_shape *cs = &op->L->cs;
        const int C = cs->C, KK = cs->K * cs->K;
        int8_t *perm = malloc((size_t)N * (size_t)K);
        if (!perm) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                for (int t = 0; t < KK; t++) perm[(int64_t)n * K + (int64_t)t * C + c] = op->wq[(int64_t)n * K + c * KK + t];
        rc = mtc_qweight_pack(&op->qw, perm, N, K, e);
        free(perm);
    } else {
        rc = mtc_qweight_pack(&op->qw, op->wq, N, K, e);
        const mtc_conv_shape *cs = op->kind == OP_CONV ? &op->L->cs : NULL;
        if (!rc && cs && cs->C == cs->G) { /* depthwise: channels-last taps (mtc_qconv_dw_nhwc) */
            if (!op->wq_dw && !(op->wq_dw = malloc((size_t)N * (size_t)K)))
                return mtc_err_set(e, MTC_ENOMEM, "out of memory");
            mtc_qconv_dw_weights(op->wq, cs, op->wq_dw);
        }
    }
    if (rc) return rc;
    for (int n = 0; n < N; n++) {
        if (!(op->wscale[n] > 0) || !isfinite(op->wscale[n]))
            return mtc_err_set(e, MTC_EINPUT, "%s: bad weight scale for channel %d", op->L->name, n);
        int64_t s = 0;
        for (int k = 0; k < K; k++) s += op->wq[(int64_t)n * K + k];
        int64_t be = (int64_t)op->bias_q[n] - (int64_t)in_p.zp * s;
        op->bias_eff[n] = be > INT32_MAX ? INT32_MAX : be < INT32_MIN ? INT32_MIN : (int32_t)be;
        double sw = (double)in_p.scale * op->wscale[n];
        mtc_quant_multiplier(sw / out_p.scale, &op->m0[n], &op->shift[n]);
        op->deq[n] = (float)sw;
    }
    op->in_p = in_p;
    op->out_p = out_p;
    op->vec_epilogue = mtc_epilogue_vectorizable(op->m0, op->shift, N);
    op->quant = 1;
    return 0;
}

/* MTC_SPARSE=0: 2, above any sparsity (never sparse); MTC_SPARSE_MIN=<f>:
 * f at every batch size; otherwise -1: the measured crossover per batch. */
static int sparse_env(double *min, mtc_err *e)
{
    const char *off = getenv("MTC_SPARSE"), *env = getenv("MTC_SPARSE_MIN");
    *min = -1.0;
    if (off && !strcmp(off, "0")) *min = 2.0;
    else if (env && *env) {
        char *end;
        *min = strtod(env, &end);
        if (end == env || *end || !(*min >= 0.0 && *min <= 1.0))
            return mtc_err_set(e, MTC_EINPUT, "MTC_SPARSE_MIN='%s': want a fraction in [0, 1]", env);
    }
    return 0;
}

int rt_op_sparse(const mtc_rt *rt, const rt_op *op, int B)
{
    if (!op->csr.val || op->quant || rt->no_sparse) return 0;
    return op->sparsity >= (rt->sparse_min >= 0.0 ? rt->sparse_min : mtc_sparse_crossover(B));
}

/* The CSR copy of a dense op's folded W, when some batch size runs it
 * sparse (the crossover only falls with the batch size). */
static int sparse_prepare(const mtc_rt *rt, rt_op *op, mtc_err *e)
{
    op->sparsity = mtc_sparsity(op->W, (int64_t)op->N * op->K);
    double lowest = rt->sparse_min >= 0.0 ? rt->sparse_min : mtc_sparse_crossover(INT_MAX);
    if (op->sparsity < lowest) return 0;
    return mtc_csr_from_dense(&op->csr, op->W, op->N, op->K, e);
}

int64_t rt_op_bytes(const rt_op *op)
{
    int64_t bn = op->bn ? 4 * (int64_t)op->bn->in_c * 4 : 0;
    if (op->quant) return (int64_t)op->N * op->K + 8 * (int64_t)op->N + 16;
    if (op->kind == OP_DENSE || op->kind == OP_CONV) return 4 * ((int64_t)op->N * op->K + op->N) + bn;
    if (op->kind == OP_LN) return 8 * op->in_size;
    if (op->kind == OP_BN) return 16 * (int64_t)op->L->in_c;
    return 0;
}

/* An op that reads u8 when its input is u8. */
static int consumes_u8(const rt_op *op)
{
    return op->quant || op->kind == OP_MAXPOOL || (op->kind == OP_ACT && op->act == MTC_ACT_RELU);
}

static void plan_chain(rt_chain *ch, int is_head, int mmoe_trunk)
{
    for (int i = 0; i < ch->n; i++) {
        rt_op *op = &ch->ops[i];
        if (!op->quant) { op->out_u8 = 0; continue; }
        if (i == ch->n - 1) op->out_u8 = !is_head && !mmoe_trunk;
        else op->out_u8 = consumes_u8(&ch->ops[i + 1]);
    }
}

void rt_plan(mtc_rt *rt)
{
    for (int k = 0; k < rt->m.nexperts; k++) plan_chain(&rt->trunk[k], 0, rt->m.nexperts > 1);
    for (int t = 0; t < rt->m.spec.ntasks; t++) plan_chain(&rt->head[t], 1, 0);
}

/* ---- loading ------------------------------------------------------------- */

typedef struct { const mtc_ckpt *c; const char *path; mtc_err *e; } load_ctx;

/* Copies f32 tensor `name` (numel n) into dst; 1 if absent, <0 never. */
static int get_f32(load_ctx *l, const char *name, int64_t n, float *dst, int *rc)
{
    const mtc_tensor *t = mtc_ckpt_find(l->c, name);
    if (!t) return 1;
    if (t->dtype != MTC_F32 || mtc_tensor_numel(t) != n) {
        *rc = mtc_err_set(l->e, MTC_EINPUT, "%s: tensor '%s' is not f32 with %lld values", l->path, name,
                          (long long)n);
        return 0;
    }
    memcpy(dst, t->data, (size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) {
            *rc = mtc_err_set(l->e, MTC_EINPUT, "%s: tensor '%s' has a non-finite value", l->path, name);
            return 0;
        }
    return 0;
}

static int load_layer(mtc_model *m, mtc_layer *L, void *vctx)
{
    load_ctx *l = vctx;
    char name[160];
    int rc = 0;
    if (L->w_off >= 0) { /* dense or bitmask + values; pruned weights 0; absent for int8 layers */
        int form;
        rc = mtc_layer_read_weight(l->c, l->path, L, m->params + L->w_off, NULL, &form, l->e);
    }
    if (!rc && L->b_off >= 0) {
        snprintf(name, sizeof name, "%s.bias", L->name);
        get_f32(l, name, L->nb, m->params + L->b_off, &rc);
    }
    if (!rc && L->stat_off >= 0) {
        snprintf(name, sizeof name, "%s.running_mean", L->name);
        get_f32(l, name, L->in_c, m->stats + L->stat_off, &rc);
        snprintf(name, sizeof name, "%s.running_var", L->name);
        if (!rc) get_f32(l, name, L->in_c, m->stats + L->stat_off + L->in_c, &rc);
    }
    return rc;
}

/* Tensor "<L>.<suffix>"; "weight" in either stored form (dense or bitmask). */
static int need(load_ctx *l, const mtc_layer *L, const char *suffix)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", L->name, suffix);
    int have = !strcmp(suffix, "weight") ? mtc_layer_weight_form(l->c, L) != MTC_WEIGHT_NONE
                                         : mtc_ckpt_find(l->c, name) != NULL;
    return have ? 0 : mtc_err_set(l->e, MTC_EINPUT, "%s: tensor '%s' missing", l->path, name);
}

static const mtc_tensor *find_typed(load_ctx *l, const mtc_layer *L, const char *suffix, mtc_dtype dt,
                                    int64_t n, int *rc)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", L->name, suffix);
    const mtc_tensor *t = mtc_ckpt_find(l->c, name);
    if (!t || t->dtype != dt || mtc_tensor_numel(t) != n) {
        *rc = mtc_err_set(l->e, MTC_EINPUT, "%s: tensor '%s' missing or not %s with %lld values", l->path, name,
                          mtc_dtype_name(dt), (long long)n);
        return NULL;
    }
    return t;
}

static int load_quant(load_ctx *l, rt_op *op)
{
    int rc = 0;
    const mtc_tensor *wq = find_typed(l, op->L, "weight_q", MTC_S8, (int64_t)op->N * op->K, &rc);
    const mtc_tensor *ws = rc ? NULL : find_typed(l, op->L, "weight_scale", MTC_F32, op->N, &rc);
    const mtc_tensor *bq = rc ? NULL : find_typed(l, op->L, "bias_q", MTC_S32, op->N, &rc);
    const mtc_tensor *is = rc ? NULL : find_typed(l, op->L, "input_scale", MTC_F32, 1, &rc);
    const mtc_tensor *iz = rc ? NULL : find_typed(l, op->L, "input_zero_point", MTC_S32, 1, &rc);
    const mtc_tensor *os = rc ? NULL : find_typed(l, op->L, "output_scale", MTC_F32, 1, &rc);
    const mtc_tensor *oz = rc ? NULL : find_typed(l, op->L, "output_zero_point", MTC_S32, 1, &rc);
    if (rc) return rc;
    mtc_qparams in_p = {*(const float *)is->data, *(const int32_t *)iz->data};
    mtc_qparams out_p = {*(const float *)os->data, *(const int32_t *)oz->data};
    return rt_op_set_quant(op, wq->data, ws->data, bq->data, in_p, out_p, l->e);
}

/* The fp32 weights (N, K) of a dense op or an im2col conv packed once for
 * mtc_gemm: the runtime's own kernel at every batch size. */
static int pack_gemm(rt_op *op, mtc_err *e)
{
    if (!(op->wp = malloc((size_t)mtc_gemm_pack_floats(op->N, op->K) * sizeof(float))))
        return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    mtc_gemm_pack(op->wp, op->W, op->N, op->K);
    return 0;
}

/* Builds the ops of one chain from its layers. */
static int build_chain(mtc_rt *rt, load_ctx *l, const mtc_chain *ch, rt_chain *rc_out)
{
    mtc_model *m = &rt->m;
    rc_out->n = 0;
    int depth = 0; /* open residual blocks (the spec checked they close) */
    for (int i = 0; i < ch->n; i++) {
        const mtc_layer *L = &ch->layers[i];
        int type = L->spec.type;
        if (type == MTC_L_FLATTEN || type == MTC_L_DROPOUT) continue;
        rt_op *op = &rc_out->ops[rc_out->n++];
        memset(op, 0, sizeof *op);
        op->L = L;
        op->in_size = L->in_size;
        op->out_size = L->out_size;
        op->act = L->spec.act;
        op->id = rt->nops;
        rt->ops[rt->nops++] = op;
        int rc = 0;
        switch (type) {
        case MTC_L_DENSE: case MTC_L_CONV: {
            op->kind = type == MTC_L_DENSE ? OP_DENSE : OP_CONV;
            op->N = (int)L->nb;
            op->K = (int)(L->nw / L->nb);
            /* fold a following eval batchnorm (only when nothing sits between) */
            if (op->act == MTC_ACT_NONE && i + 1 < ch->n && ch->layers[i + 1].spec.type == MTC_L_BATCHNORM) {
                op->bn = &ch->layers[++i];
                op->out_size = op->bn->out_size;
            }
            /* fuse a following relu */
            if (op->act == MTC_ACT_NONE && i + 1 < ch->n && ch->layers[i + 1].spec.type == MTC_L_ACT &&
                ch->layers[i + 1].spec.act == MTC_ACT_RELU) {
                op->act = MTC_ACT_RELU;
                i++;
            }
            char name[160];
            snprintf(name, sizeof name, "%s.weight_q", L->name);
            if (mtc_ckpt_find(l->c, name)) {
                if ((rc = load_quant(l, op))) return rc;
                break;
            }
            if ((rc = need(l, L, "weight")) || (rc = need(l, L, "bias"))) return rc;
            if (op->bn && ((rc = need(l, op->bn, "weight")) || (rc = need(l, op->bn, "bias")) ||
                           (rc = need(l, op->bn, "running_mean")) || (rc = need(l, op->bn, "running_var"))))
                return rc;
            op->W = malloc((size_t)L->nw * sizeof(float));
            op->b = malloc((size_t)L->nb * sizeof(float));
            if (!op->W || !op->b) return mtc_err_set(l->e, MTC_ENOMEM, "out of memory");
            memcpy(op->W, m->params + L->w_off, (size_t)L->nw * sizeof(float));
            memcpy(op->b, m->params + L->b_off, (size_t)L->nb * sizeof(float));
            if (op->bn) {
                const mtc_layer *B = op->bn;
                const float *st = m->stats + B->stat_off;
                mtc_batchnorm_fold(op->W, op->b, op->N, op->K, m->params + B->w_off, m->params + B->b_off, st,
                                   st + B->in_c, NORM_EPS);
            }
            op->has_fp32 = 1;
            if (op->kind == OP_DENSE && (rc = sparse_prepare(rt, op, l->e))) return rc;
            if (op->kind == OP_CONV && rt->winograd && mtc_wino_eligible(&L->cs)) {
                if (!(op->wino = malloc((size_t)mtc_wino_u_floats(&L->cs) * sizeof(float))))
                    return mtc_err_set(l->e, MTC_ENOMEM, "out of memory");
                mtc_wino_weights(op->wino, op->W, &L->cs);
            } else if (op->kind == OP_CONV && rt->winograd && mtc_conv_direct_eligible(&L->cs)) {
                op->direct = 1;
            } else if (op->kind == OP_DENSE && (rc = pack_gemm(op, l->e))) {
                return rc;
            }
            break;
        }
        case MTC_L_MAXPOOL: op->kind = OP_MAXPOOL; break;
        case MTC_L_AVGPOOL: op->kind = OP_AVGPOOL; break;
        case MTC_L_RESIDUAL:
            op->kind = OP_RESID;
            op->depth = depth++;
            if (depth > rt->skip_depth) rt->skip_depth = depth;
            break;
        case MTC_L_ADD:
            op->kind = OP_ADD;
            op->depth = --depth;
            break;
        case MTC_L_ACT: op->kind = OP_ACT; break;
        case MTC_L_LAYERNORM:
            op->kind = OP_LN;
            if ((rc = need(l, L, "weight")) || (rc = need(l, L, "bias"))) return rc;
            break;
        case MTC_L_BATCHNORM:
            op->kind = OP_BN;
            if ((rc = need(l, L, "weight")) || (rc = need(l, L, "bias")) || (rc = need(l, L, "running_mean")) ||
                (rc = need(l, L, "running_var")))
                return rc;
            break;
        default:
            return mtc_err_set(l->e, MTC_EINPUT, "%s: layer %s not supported by the runtime", l->path, L->name);
        }
    }
    /* a Winograd or direct conv whose output feeds a 2×2/2 max pool pools
     * inside its output transform / row loop; its act must commute with max
     * (none, relu) */
    for (int i = 0; i + 1 < rc_out->n; i++) {
        rt_op *op = &rc_out->ops[i];
        const mtc_layer *P = rc_out->ops[i + 1].L;
        op->pool_fuse = (op->wino || op->direct) && (op->act == MTC_ACT_NONE || op->act == MTC_ACT_RELU) &&
                        rc_out->ops[i + 1].kind == OP_MAXPOOL && P->spec.size == 2 && P->spec.stride == 2;
    }
    return 0;
}

int mtc_rt_from_ckpt(const mtc_ckpt *c, const char *path, mtc_rt **out, mtc_err *e)
{
    *out = NULL;
    if (!c->spec || !c->spec[0]) return mtc_err_set(e, MTC_EINPUT, "%s: checkpoint has no model spec", path);
    mtc_spec s;
    char where[300];
    snprintf(where, sizeof where, "%s(spec)", path);
    int rc = mtc_spec_parse(c->spec, where, &s, e);
    if (rc) return rc;
    mtc_rt *rt = calloc(1, sizeof *rt);
    if (!rt) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    rt->threads = 1;
    mtc_rt_set_isa(rt, mtc_qgemm_isa());
    if ((rc = sparse_env(&rt->sparse_min, e))) { free(rt); return rc; }
    const char *wino = getenv("MTC_WINOGRAD");
    rt->winograd = !(wino && !strcmp(wino, "0"));
    if ((rc = mtc_model_build(&s, c->spec, &rt->m, e))) { free(rt); return rc; }
    mtc_model *m = &rt->m;
    load_ctx l = {c, path, e};
    rc = mtc_model_for_each_layer(m, load_layer, &l);
    for (int t = 0; t < s.ntasks && !rc; t++) {
        if (s.tasks[t].kind != MTC_TASK_REG) continue;
        char name[160];
        snprintf(name, sizeof name, "task.%s.target_mean", s.tasks[t].name);
        if (get_f32(&l, name, s.tasks[t].dim, m->reg_mean[t], &rc) && !rc)
            rc = mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' missing", path, name);
        snprintf(name, sizeof name, "task.%s.target_std", s.tasks[t].name);
        if (!rc && get_f32(&l, name, s.tasks[t].dim, m->reg_std[t], &rc) && !rc)
            rc = mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' missing", path, name);
    }
    if (!rc) rc = mtc_model_load_class_names(m, c, path, e);
    for (int k = 0; k < m->nexperts && !rc; k++) rc = build_chain(rt, &l, &m->trunk[k], &rt->trunk[k]);
    for (int t = 0; t < s.ntasks && !rc; t++) {
        if (m->nexperts > 1) {
            rt_op *g = &rt->gate[t];
            memset(g, 0, sizeof *g);
            g->kind = OP_DENSE;
            g->L = &m->gate[t];
            g->N = (int)g->L->nb;
            g->K = (int)(g->L->nw / g->L->nb);
            g->in_size = g->L->in_size;
            g->out_size = g->L->out_size;
            if ((rc = need(&l, g->L, "weight")) || (rc = need(&l, g->L, "bias"))) break;
            g->W = m->params + g->L->w_off; /* not owned */
            g->b = m->params + g->L->b_off;
            g->has_fp32 = 1;
            if ((rc = pack_gemm(g, e))) break;
        }
        rc = build_chain(rt, &l, &m->head[t], &rt->head[t]);
    }
    if (rc) { mtc_rt_free(rt); return rc; }
    rt_plan(rt);
    *out = rt;
    return 0;
}

int mtc_rt_from_model(const mtc_model *m, const char *name, mtc_rt **rt, mtc_err *e)
{
    mtc_ckpt c;
    *rt = NULL;
    int rc = mtc_model_to_ckpt(m, NULL, &c, e);
    if (!rc) rc = mtc_rt_from_ckpt(&c, name, rt, e);
    mtc_ckpt_free(&c);
    return rc;
}

int mtc_rt_load(const char *path, mtc_rt **rt, mtc_err *e)
{
    mtc_ckpt c;
    *rt = NULL;
    int rc = mtc_ckpt_load(path, &c, e);
    if (rc) return rc;
    rc = mtc_rt_from_ckpt(&c, path, rt, e);
    mtc_ckpt_free(&c);
    struct stat st;
    if (!rc && stat(path, &st) == 0) (*rt)->file_bytes = st.st_size;
    return rc;
}

void mtc_rt_free(mtc_rt *rt)
{
    if (!rt) return;
    rt_free_ws(rt);
    mtc_pool_free(rt->pool);
    for (int k = 0; k < MTC_MAX_EXPERTS; k++)
        for (int i = 0; i < rt->trunk[k].n; i++) op_free(&rt->trunk[k].ops[i]);
    for (int t = 0; t < MTC_MAX_TASKS; t++) {
        for (int i = 0; i < rt->head[t].n; i++) op_free(&rt->head[t].ops[i]);
        free(rt->gate[t].wp); /* a gate owns its packed copy only (W, b are the model's) */
    }
    mtc_model_free(&rt->m);
    free(rt);
}

void mtc_rt_set_threads(mtc_rt *rt, int threads)
{
    if (threads < 1) threads = 1;
    if (threads == rt->threads) return;
    rt->threads = threads;
    rt_free_ws(rt);
}

void mtc_rt_set_sparse(mtc_rt *rt, int on) { rt->no_sparse = !on; }
void mtc_rt_set_channels_last(mtc_rt *rt, int on) { rt->nchw = !on; }

void mtc_rt_set_isa(mtc_rt *rt, int isa)
{
    rt->isa = mtc_qgemm_isa_supported(isa) ? isa : mtc_qgemm_isa();
    rt->gemm = mtc_qgemm_get(rt->isa);
    rt->fgemm = mtc_gemm_get(rt->isa);
    rt->spmm = mtc_spmm_get(rt->isa);
    rt->quantize = rt->isa == MTC_ISA_AVX512 ? mtc_quantize_u8_avx512
                 : rt->isa == MTC_ISA_AVX2 ? mtc_quantize_u8_avx2 : mtc_quantize_u8;
}

const mtc_model *mtc_rt_model(const mtc_rt *rt) { return &rt->m; }
void mtc_rt_set_file_bytes(mtc_rt *rt, int64_t bytes) { rt->file_bytes = bytes; }
int64_t mtc_rt_file_bytes(const mtc_rt *rt) { return rt->file_bytes; }

int64_t mtc_rt_weight_bytes(const mtc_rt *rt)
{
    int64_t s = 0;
    for (int i = 0; i < rt->nops; i++) s += rt_op_bytes(rt->ops[i]);
    if (rt->m.nexperts > 1)
        for (int t = 0; t < rt->m.spec.ntasks; t++) s += 4 * (rt->gate[t].L->nw + rt->gate[t].L->nb);
    return s;
}

int mtc_rt_nlayers(const mtc_rt *rt)
{
    int n = 0;
    for (int i = 0; i < rt->nops; i++) n += rt->ops[i]->kind == OP_DENSE || rt->ops[i]->kind == OP_CONV;
    return n;
}

int mtc_rt_nquantized(const mtc_rt *rt)
{
    int n = 0;
    for (int i = 0; i < rt->nops; i++) n += rt->ops[i]->quant;
    return n;
}

int mtc_rt_ste_model(const mtc_rt *rt, mtc_model *out, mtc_err *e)
{
    const mtc_model *m = &rt->m;
    int rc = mtc_model_build(&m->spec, m->spec_text, out, e);
    if (rc) return rc;
    memcpy(out->params, m->params, (size_t)m->nparams * sizeof(float));
    if (m->nstats) memcpy(out->stats, m->stats, (size_t)m->nstats * sizeof(float));
    memcpy(out->reg_mean, m->reg_mean, sizeof m->reg_mean);
    memcpy(out->reg_std, m->reg_std, sizeof m->reg_std);
    /* the same spec: a layer's offsets are the same in both models */
    for (int i = 0; i < rt->nops; i++) {
        const rt_op *op = rt->ops[i];
        if (!op->quant) continue;
        const mtc_layer *L = op->L;
        float *W = out->params + L->w_off, *b = out->params + L->b_off;
        for (int n = 0; n < op->N; n++) {
            for (int k = 0; k < op->K; k++) W[(int64_t)n * op->K + k] = (float)op->wq[(int64_t)n * op->K + k] * op->wscale[n];
            b[n] = (float)op->bias_q[n] * op->in_p.scale * op->wscale[n];
        }
        if (op->bn) { /* folded into the int8 weights: an identity here */
            const mtc_layer *B = op->bn;
            float *g = out->params + B->w_off, *beta = out->params + B->b_off, *st = out->stats + B->stat_off;
            for (int c = 0; c < B->in_c; c++) g[c] = 1.0f, beta[c] = 0.0f, st[c] = 0.0f, st[B->in_c + c] = 1.0f - NORM_EPS;
        }
    }
    return 0;
}

int mtc_rt_nsparse(const mtc_rt *rt, int batch)
{
    int n = 0;
    for (int i = 0; i < rt->nops; i++) n += rt_op_sparse(rt, rt->ops[i], batch);
    return n;
}

/* ---- execution ------------------------------------------------------------ */

/* An activation: f32 or u8 (params p); slot = buffer index in the set that
 * holds it, -1 when it lives elsewhere. */
typedef struct act {
    const float *f;
    const uint8_t *u;
    mtc_qparams p;
    int slot;
    int nhwc, c, h, w; /* u8 conv maps kept channels-last: B x (h, w, c), not (c, h, w) */
} act;

/* Per sample of B: the R x Cc u8 matrix x transposed into y (Cc x R). */
static void transpose_u8(uint8_t *y, const uint8_t *x, int B, int64_t R, int64_t Cc)
{
    for (int64_t b = 0, n = R * Cc; b < B; b++)
        for (int64_t c = 0; c < Cc; c++)
            for (int64_t r = 0; r < R; r++) y[b * n + c * R + r] = x[b * n + r * Cc + c];
}

/* A channels-last u8 activation as (c, h, w) maps, into the set's other
 * slot (the one the next op would write: it is free). */
static act to_nchw(act a, rt_set *s, int B)
{
    if (!a.nhwc) return a;
    int o = a.slot >= 0 ? 1 - a.slot : 0;
    transpose_u8(s->u[o], a.u, B, (int64_t)a.h * a.w, a.c);
    return (act){NULL, s->u[o], a.p, o, 0, 0, 0, 0};
}

/* (c, h, w) u8 maps as channels-last, into the set's other slot. */
static act to_nhwc(act a, rt_set *s, int B, int C, int H, int W)
{
    if (a.nhwc) return a;
    int o = a.slot >= 0 ? 1 - a.slot : 0;
    transpose_u8(s->u[o], a.u, B, C, (int64_t)H * W);
    return (act){NULL, s->u[o], a.p, o, 1, C, H, W};
}

static inline uint8_t clamp_u8(int32_t v, int32_t lo)
{
    return (uint8_t)(v < lo ? lo : v > 255 ? 255 : v);
}

/* Requantize C (M, N) rows into u8 or float out with layout: row m of
 * out = base + (m / P)·N·P + ..., i.e. dense (P == 1): out[m·N + n];
 * conv (P = OH·OW, rows are positions of one sample): out[n·P + m].
 * tmp (M·N floats' room): on AVX-512 a conv's rows go through the dense
 * vector twin into tmp, then are transposed into out: the same bits as the
 * scalar loop below, without its scalar requantization. */
static void epilogue(const rt_op *op, int isa, const int32_t *C, int M, int P, uint8_t *ou, float *of, void *tmp)
{
    int N = op->N;
    int relu = op->act == MTC_ACT_RELU;
    if (P > 1 && tmp && isa == MTC_ISA_AVX512 && (!op->out_u8 || op->vec_epilogue)) {
        if (!op->out_u8) {
            float *t = tmp;
            mtc_epilogue_dense_f32_avx512(C, M, N, op->bias_eff, op->deq, relu, t);
            for (int n = 0; n < N; n++)
                for (int m = 0; m < M; m++) of[(int64_t)n * P + m] = t[(int64_t)m * N + n];
        } else {
            uint8_t *t = tmp;
            int32_t zo = op->out_p.zp;
            mtc_epilogue_dense_u8_avx512(C, M, N, op->bias_eff, op->m0, op->shift, zo, relu ? (zo > 0 ? zo : 0) : 0, t);
            for (int n = 0; n < N; n++)
                for (int m = 0; m < M; m++) ou[(int64_t)n * P + m] = t[(int64_t)m * N + n];
        }
        return;
    }
    if (P == 1 && isa == MTC_ISA_AVX512) { /* dense: the vector twin, bit-identical */
        if (!op->out_u8) {
            mtc_epilogue_dense_f32_avx512(C, M, N, op->bias_eff, op->deq, relu, of);
            return;
        }
        if (op->vec_epilogue) {
            int32_t zo = op->out_p.zp;
            mtc_epilogue_dense_u8_avx512(C, M, N, op->bias_eff, op->m0, op->shift, zo,
                                         relu ? (zo > 0 ? zo : 0) : 0, ou);
            return;
        }
    }
    if (op->out_u8) {
        int32_t zo = op->out_p.zp, lo = relu ? (zo > 0 ? zo : 0) : 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                int32_t acc = C[(int64_t)m * N + n] + op->bias_eff[n];
                int32_t v = rt_requant(acc, op->m0[n], op->shift[n]) + zo;
                ou[P == 1 ? (int64_t)m * N + n : (int64_t)n * P + m] = clamp_u8(v, lo);
            }
    } else {
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                float v = (float)(C[(int64_t)m * N + n] + op->bias_eff[n]) * op->deq[n];
                if (relu && v < 0) v = 0;
                of[P == 1 ? (int64_t)m * N + n : (int64_t)n * P + m] = v;
            }
    }
}

/* One u8 sample ((c, h, w) maps, or channels-last when in_nhwc) as
 * channels-last rows padded by s->pad on every side with zp (P: (H + 2 pad)
 * · (W + 2 pad) · C), then im2col from it: a row is K runs of K·C
 * contiguous bytes, columns in (ky, kx, c) order (the weights were packed
 * so: rt_op_set_quant). */
static void im2col_nhwc(uint8_t *col, uint8_t *P, const uint8_t *in, int in_nhwc, const mtc_conv_shape *s, uint8_t zp)
{
    const int C = s->C, K = s->K, p = s->pad, Wp = s->W + 2 * p, Hp = s->H + 2 * p;
    const int64_t KC = (int64_t)K * C, CKK = KC * K, rowb = (int64_t)Wp * C;
    memset(P, zp, (size_t)(Hp * rowb));
    if (in_nhwc)
        for (int y = 0; y < s->H; y++)
            memcpy(P + (y + p) * rowb + (int64_t)p * C, in + (int64_t)y * s->W * C, (size_t)s->W * C);
    else
        for (int c = 0; c < C; c++)
            for (int y = 0; y < s->H; y++) {
                const uint8_t *src = in + ((int64_t)c * s->H + y) * s->W;
                uint8_t *dst = P + (y + p) * rowb + (int64_t)p * C + c;
                for (int x = 0; x < s->W; x++) dst[(int64_t)x * C] = src[x];
            }
    for (int oh = 0; oh < s->OH; oh++)
        for (int ow = 0; ow < s->OW; ow++) {
            uint8_t *row = col + (int64_t)(oh * s->OW + ow) * CKK;
            const uint8_t *src = P + (int64_t)oh * s->stride * rowb + (int64_t)ow * s->stride * C;
            for (int ky = 0; ky < K; ky++) memcpy(row + ky * KC, src + ky * rowb, (size_t)KC);
        }
}

static void maxpool_u8(uint8_t *out, const uint8_t *in, int B, int C, int H, int W, int K, int stride)
{
    int OH = (H - K) / stride + 1, OW = (W - K) / stride + 1;
    if (K == 2 && stride == 2) { /* the common 2x2/2: straight loops the compiler vectorises */
        for (int64_t p = 0; p < (int64_t)B * C; p++) {
            const uint8_t *x = in + p * H * W;
            uint8_t *y = out + p * OH * OW;
            for (int oh = 0; oh < OH; oh++, y += OW) {
                const uint8_t *r0 = x + (int64_t)2 * oh * W, *r1 = r0 + W;
                for (int ow = 0; ow < OW; ow++) {
                    uint8_t a = r0[2 * ow] > r0[2 * ow + 1] ? r0[2 * ow] : r0[2 * ow + 1];
                    uint8_t b = r1[2 * ow] > r1[2 * ow + 1] ? r1[2 * ow] : r1[2 * ow + 1];
                    y[ow] = a > b ? a : b;
                }
            }
        }
        return;
    }
    for (int64_t p = 0; p < (int64_t)B * C; p++) {
        const uint8_t *x = in + p * H * W;
        uint8_t *y = out + p * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                uint8_t mx = 0;
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        uint8_t v = x[(oh * stride + ky) * W + ow * stride + kx];
                        if (v > mx) mx = v;
                    }
                y[oh * OW + ow] = mx;
            }
    }
}

/* maxpool_u8 on channels-last maps: the same maxima, vectorised over c. */
static void maxpool_u8_nhwc(uint8_t *out, const uint8_t *in, int B, int C, int H, int W, int K, int stride)
{
    int OH = (H - K) / stride + 1, OW = (W - K) / stride + 1;
    if (K == 2 && stride == 2) { /* the common 2x2/2: four rows, one store */
        for (int b = 0; b < B; b++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    uint8_t *y = out + (((int64_t)b * OH + oh) * OW + ow) * C;
                    const uint8_t *x0 = in + (((int64_t)b * H + 2 * oh) * W + 2 * ow) * C, *x1 = x0 + C;
                    const uint8_t *x2 = x0 + (int64_t)W * C, *x3 = x2 + C;
                    for (int c = 0; c < C; c++) {
                        uint8_t a = x0[c] > x1[c] ? x0[c] : x1[c], d = x2[c] > x3[c] ? x2[c] : x3[c];
                        y[c] = a > d ? a : d;
                    }
                }
        return;
    }
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                uint8_t *y = out + (((int64_t)b * OH + oh) * OW + ow) * C;
                memset(y, 0, (size_t)C);
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        const uint8_t *x = in + (((int64_t)b * H + oh * stride + ky) * W + ow * stride + kx) * C;
                        for (int c = 0; c < C; c++) y[c] = x[c] > y[c] ? x[c] : y[c];
                    }
            }
}

/* Makes `a` float / u8 (p) in place of its slot's other representation. */
static act as_float(act a, rt_set *s, int64_t n, int B)
{
    if (a.f) return a;
    a = to_nchw(a, s, B);
    float *dst = s->f[a.slot >= 0 ? a.slot : 0];
    mtc_dequantize_u8(dst, a.u, n, a.p);
    return (act){dst, NULL, {0, 0}, a.slot >= 0 ? a.slot : 0, 0, 0, 0, 0};
}

static act as_u8(const mtc_rt *rt, act a, rt_set *s, int64_t n, int B, mtc_qparams p)
{
    if (a.u && a.p.scale == p.scale && a.p.zp == p.zp) return a;
    if (a.u) a = as_float(a, s, n, B); /* other parameters: through float */
    int slot = a.slot >= 0 ? a.slot : 0;
    uint8_t *dst = s->u[slot];
    rt->quantize(dst, a.f, n, p);
    return (act){NULL, dst, p, slot, 0, 0, 0, 0};
}

/* One sample's receptive fields as mtc_gemm's packed operand: position p
 * (oh·OW + ow) is column p of panel p/16, P[p/16][k][p%16] with k =
 * (c·K + kh)·K + kw, zero outside the input and past the last position.
 * Walked by output row: for one k the row's values (zero where the window
 * leaves the input) go to tmp (OW floats), then in runs of up to 16
 * positions to their panels. */
static void im2col_panels(float *col, float *tmp, const float *in, const mtc_conv_shape *s)
{
    const int K = s->K, st = s->stride, CKK = s->C * K * K, OW = s->OW, P = s->OH * OW, Pp = (P + 15) & ~15;
    memset(col + (int64_t)(Pp - 16) * CKK, 0, (size_t)16 * CKK * sizeof(float)); /* the last panel's padding */
    for (int c = 0, k = 0; c < s->C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++, k++) {
                /* ow in [lo, hi) reads inside the row: 0 <= ow·st − pad + kw < W */
                int lo = 0, hi = OW;
                while (lo < OW && lo * st - s->pad + kw < 0) lo++;
                while (hi > lo && (hi - 1) * st - s->pad + kw >= s->W) hi--;
                for (int oh = 0; oh < s->OH; oh++) {
                    int ih = oh * st - s->pad + kh;
                    if (ih < 0 || ih >= s->H) {
                        memset(tmp, 0, (size_t)OW * sizeof *tmp);
                    } else {
                        const float *row = in + ((int64_t)c * s->H + ih) * s->W;
                        for (int ow = 0; ow < lo; ow++) tmp[ow] = 0.0f;
                        for (int ow = lo; ow < hi; ow++) tmp[ow] = row[ow * st - s->pad + kw];
                        for (int ow = hi; ow < OW; ow++) tmp[ow] = 0.0f;
                    }
                    for (int p = oh * OW, e = p + OW; p < e;) {
                        int n = 16 - (p & 15) < e - p ? 16 - (p & 15) : e - p;
                        float *d = col + (int64_t)(p >> 4) * CKK * 16 + k * 16 + (p & 15);
                        const float *t = tmp + (p - oh * OW);
                        for (int i = 0; i < n; i++) d[i] = t[i];
                        p += n;
                    }
                }
            }
}

/* y = the linear part of a dense or conv op, bias and a relu included, on
 * the runtime's own kernels at every batch size: Winograd, or per sample
 * W (OC, CKK) · im2col panels = the (OC, P) output for a conv; the sparse
 * kernel or the packed GEMM for a dense op. Each output row is computed the same
 * way whatever B is, so outputs do not depend on the batch (the sparse
 * kernel's choice excepted: it depends on B). pool: see run_op. */
static void linear(const mtc_rt *rt, rt_ws *w, const rt_op *op, const float *x, float *y, int B, int pool)
{
    const int relu = op->act == MTC_ACT_RELU;
    if (op->kind == OP_CONV && op->wino) {
        mtc_wino_forward(y, x, op->wino, op->b, relu, pool, w->col, &op->L->cs, B,
                         rt->isa == MTC_ISA_AVX512 ? 2 : rt->isa == MTC_ISA_AVX2);
    } else if (op->kind == OP_CONV && op->direct) {
        mtc_conv_direct_forward(y, x, op->W, op->b, relu, pool, w->col, &op->L->cs, B, rt->isa);
    } else if (op->kind == OP_CONV && op->L->cs.G > 1) { /* grouped / depthwise: direct loops */
        mtc_conv2d_group_forward(y, x, op->W, op->b, &op->L->cs, B);
        if (relu)
            for (int64_t i = 0; i < (int64_t)B * op->out_size; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    } else if (op->kind == OP_CONV) {
        const mtc_conv_shape *cs = &op->L->cs;
        const int P = cs->OH * cs->OW;
        for (int b = 0; b < B; b++) {
            float *out = y + b * op->out_size;
            im2col_panels(w->col, w->col + (int64_t)((P + 15) & ~15) * op->K, x + b * op->in_size, cs);
            rt->fgemm(out, P, op->W, op->K, op->N, &(mtc_gemm_w){w->col, op->K, P, 1}, NULL, 0);
            for (int n = 0; n < op->N; n++) { /* the kernel's epilogue, per row: the same bits */
                float *o = out + (int64_t)n * P, bn = op->b[n];
                if (relu)
                    for (int p = 0; p < P; p++) o[p] = o[p] + bn > 0.0f ? o[p] + bn : 0.0f;
                else
                    for (int p = 0; p < P; p++) o[p] += bn;
            }
        }
    } else if (rt_op_sparse(rt, op, B)) {
        rt->spmm(x, B, &op->csr, op->b, relu, y, w->sparse);
    } else {
        rt->fgemm(y, op->N, x, op->K, B, &(mtc_gemm_w){op->wp, op->K, op->N, 1}, op->b, relu);
    }
}

/* pool: op->pool_fuse in effect, the op writes the pooled map (run_chain
 * then skips the pool op) */
static act run_op(mtc_rt *rt, rt_ws *w, rt_set *s, const rt_op *op, act a, int B, int pool)
{
    const mtc_layer *L = op->L;
    int64_t nin = (int64_t)B * op->in_size, nout = (int64_t)B * op->out_size;
    if (op->quant) {
        a = as_u8(rt, a, s, nin, B, op->in_p);
        if (a.nhwc && (op->kind == OP_DENSE || (L->cs.G > 1 && !op->wq_dw))) /* they read (c, h, w) */
            a = to_nchw(a, s, B);
        else if (op->wq_dw && !a.nhwc && !rt->nchw) /* depthwise: channels-last is ~8x faster than by rows */
            a = to_nhwc(a, s, B, L->in_c, L->in_h, L->in_w);
        /* slot -1: the input lives outside this set (the trunk's output as
         * a head's input), so either slot of the set is free */
        int o = a.slot >= 0 ? 1 - a.slot : 0;
        uint8_t *ou = s->u[o];
        float *of = s->f[o];
        if (op->kind == OP_DENSE) {
            rt->gemm(a.u, op->K, &op->qw, B, w->acc, op->N);
            epilogue(op, rt->isa, w->acc, B, 1, ou, of, NULL);
        } else {
            const mtc_conv_shape *cs = &L->cs;
            const int P = cs->OH * cs->OW;
            /* u8 out: the sums' rows are positions, so written as they are
             * the maps are channels-last (no transpose); the next int8 conv
             * or pool reads them so, anything else after to_nchw */
            const int cl = op->out_u8 && !rt->nchw;
            for (int b = 0; b < B; b++) {
                if (op->wq_dw && a.nhwc) mtc_qconv_dw_nhwc(op->wq_dw, a.u + b * op->in_size, op->in_p.zp, cs, w->acc);
                else if (cs->G > 1) mtc_qconv_group(op->wq, a.u + b * op->in_size, op->in_p.zp, cs, w->acc);
                else {
                    im2col_nhwc(w->ucol, w->nhwc, a.u + b * op->in_size, a.nhwc, cs, (uint8_t)op->in_p.zp);
                    rt->gemm(w->ucol, op->K, &op->qw, P, w->acc, op->N);
                }
                if (cl) epilogue(op, rt->isa, w->acc, P, 1, ou + b * op->out_size, NULL, NULL);
                else epilogue(op, rt->isa, w->acc, P, P, ou + b * op->out_size, of + b * op->out_size, w->tmp);
            }
            if (cl) return (act){NULL, ou, op->out_p, o, 1, op->N, cs->OH, cs->OW};
        }
        if (op->out_u8) return (act){NULL, ou, op->out_p, o, 0, 0, 0, 0};
        return (act){of, NULL, {0, 0}, o, 0, 0, 0, 0};
    }
    if (a.u && op->kind == OP_MAXPOOL) {
        int o = a.slot >= 0 ? 1 - a.slot : 0, K = L->spec.size, st = L->spec.stride;
        if (a.nhwc) {
            maxpool_u8_nhwc(s->u[o], a.u, B, L->in_c, L->in_h, L->in_w, K, st);
            return (act){NULL, s->u[o], a.p, o, 1, a.c, (L->in_h - K) / st + 1, (L->in_w - K) / st + 1};
        }
        maxpool_u8(s->u[o], a.u, B, L->in_c, L->in_h, L->in_w, K, st);
        return (act){NULL, s->u[o], a.p, o, 0, 0, 0, 0};
    }
    if (a.u && op->kind == OP_ACT && op->act == MTC_ACT_RELU) { /* elementwise: any layout */
        int o = a.slot >= 0 ? 1 - a.slot : 0;
        uint8_t z = (uint8_t)a.p.zp;
        for (int64_t i = 0; i < nin; i++) s->u[o][i] = a.u[i] > z ? a.u[i] : z;
        return (act){NULL, s->u[o], a.p, o, a.nhwc, a.c, a.h, a.w};
    }
    a = as_float(a, s, nin, B);
    if (op->kind == OP_RESID) { /* keep the block's input; pass it on as it is */
        memcpy(w->skip[op->depth], a.f, (size_t)nin * sizeof(float));
        if (rt->tap) {
            rt->tap(rt->tap_ctx, op, 0, a.f, nin);
            rt->tap(rt->tap_ctx, op, 1, a.f, nin);
        }
        return a;
    }
    int o = a.slot >= 0 ? 1 - a.slot : 0;
    float *y = s->f[o];
    const float *x = a.f;
    const mtc_model *m = &rt->m;
    switch (op->kind) {
    case OP_ADD: {
        const float *k = w->skip[op->depth];
        for (int64_t j = 0; j < nout; j++) y[j] = x[j] + k[j];
        if (op->act) mtc_act_forward(y, y, nout, op->act);
        break;
    }
    case OP_DENSE:
    case OP_CONV: {
        /* every kernel fuses a relu; any other activation runs after */
        linear(rt, w, op, x, y, B, pool);
        if (op->act && op->act != MTC_ACT_RELU) mtc_act_forward(y, y, nout, op->act);
        break;
    }
    case OP_MAXPOOL:
        mtc_maxpool_forward(y, NULL, x, B, L->in_c, L->in_h, L->in_w, L->spec.size, L->spec.stride);
        break;
    case OP_AVGPOOL:
        mtc_avgpool_forward(y, x, B, L->in_c, L->in_h, L->in_w, L->spec.size, L->spec.stride);
        break;
    case OP_ACT:
        mtc_act_forward(y, x, nout, op->act);
        break;
    case OP_LN:
        mtc_layernorm_forward(y, w->mean, w->rstd, x, m->params + L->w_off, m->params + L->b_off, B,
                              (int)L->in_size, NORM_EPS);
        break;
    case OP_BN: {
        const float *st = m->stats + L->stat_off;
        mtc_batchnorm_forward_eval(y, x, m->params + L->w_off, m->params + L->b_off, st, st + L->in_c, NORM_EPS,
                                   B, L->in_c, L->in_h * L->in_w);
        break;
    }
    }
    if (rt->tap) {
        rt->tap(rt->tap_ctx, op, 0, x, nin);
        rt->tap(rt->tap_ctx, op, 1, y, nout);
    }
    return (act){y, NULL, {0, 0}, o, 0, 0, 0, 0};
}

static act run_chain(mtc_rt *rt, rt_ws *w, rt_set *s, const rt_chain *ch, act a, int B)
{
    for (int i = 0; i < ch->n; i++) {
        const rt_op *op = &ch->ops[i];
        int pool = op->pool_fuse && !op->quant && !rt->tap; /* the tap sees every op */
        a = run_op(rt, w, s, op, a, B, pool);
        i += pool;
    }
    return to_nchw(a, s, B); /* what leaves a chain is (c, h, w) */
}

/* A (B, n)-per-row activation as floats into dst. */
static void act_to_f32(float *dst, act a, int64_t n)
{
    if (a.f) memcpy(dst, a.f, (size_t)n * sizeof(float));
    else mtc_dequantize_u8(dst, a.u, n, a.p);
}

/* Runs B ≤ w->cap samples; outs[t] rows for these samples; trunk (may be
 * NULL) the rows of the trunk's output (expert 0's with MMoE). */
static void run_model(mtc_rt *rt, rt_ws *w, const float *x, int B, float *const *outs, float *trunk)
{
    mtc_model *m = &rt->m;
    int64_t H = m->trunk_out;
    act in = {x, NULL, {0, 0}, -1, 0, 0, 0, 0};
    act h = in;
    if (m->nexperts == 1) {
        h = run_chain(rt, w, &w->set[0], &rt->trunk[0], in, B);
        h.slot = -1; /* lives in set 0: heads use set 1 */
        if (trunk) act_to_f32(trunk, h, (int64_t)B * H);
    } else {
        int E = m->nexperts;
        for (int k = 0; k < E; k++)
            act_to_f32(w->experts + (int64_t)k * B * H, run_chain(rt, w, &w->set[0], &rt->trunk[k], in, B),
                       (int64_t)B * H);
        if (trunk) memcpy(trunk, w->experts, (size_t)B * (size_t)H * sizeof(float));
    }
    for (int t = 0; t < m->spec.ntasks; t++) {
        act hi = h;
        if (m->nexperts > 1) {
            int E = m->nexperts;
            const rt_op *g = &rt->gate[t];
            rt->fgemm(w->gate, g->N, x, g->K, B, &(mtc_gemm_w){g->wp, g->K, g->N, 1}, g->b, 0);
            mtc_softmax_rows(w->gate, w->gate, B, E, 1.0f);
            memset(w->mix, 0, (size_t)B * (size_t)H * sizeof(float));
            for (int k = 0; k < E; k++)
                for (int b = 0; b < B; b++) {
                    float gk = w->gate[b * E + k];
                    const float *e = w->experts + ((int64_t)k * B + b) * H;
                    for (int64_t j = 0; j < H; j++) w->mix[b * H + j] += gk * e[j];
                }
            hi = (act){w->mix, NULL, {0, 0}, -1, 0, 0, 0, 0};
        }
        act r = run_chain(rt, w, &w->set[1], &rt->head[t], hi, B);
        act_to_f32(outs[t], r, (int64_t)B * m->spec.tasks[t].dim);
        mtc_model_unstandardise(m, t, outs[t], B);
    }
}

typedef struct job {
    mtc_rt *rt;
    rt_ws *w;
    const float *x;
    int B;
    float *outs[MTC_MAX_TASKS];
    float *trunk;
} job;

static void job_task(void *v, int i)
{
    job *j = (job *)v + i;
    if (j->B > 0) run_model(j->rt, j->w, j->x, j->B, j->outs, j->trunk);
}

int mtc_rt_run(mtc_rt *rt, const float *x, int B, float *const *outs, mtc_err *e)
{
    return mtc_rt_run_trunk(rt, x, B, outs, NULL, e);
}

int mtc_rt_run_trunk(mtc_rt *rt, const float *x, int B, float *const *outs, float *trunk, mtc_err *e)
{
    if (B <= 0) return 0;
    int rc = mtc_rt_reserve(rt, B, e);
    if (rc) return rc;
    int T = rt->m.spec.ntasks;
    int64_t S = (int64_t)rt->m.spec.c * rt->m.spec.h * rt->m.spec.w, H = rt->m.trunk_out;
    int nt = rt->nws;
    if (rt->tap || B < 2 * nt) nt = 1;
    if (nt == 1) {
        /* a single workspace may be smaller than B when threads > 1 */
        int cap = rt->ws[0]->cap;
        for (int s = 0; s < B; s += cap) {
            int b = B - s < cap ? B - s : cap;
            float *o[MTC_MAX_TASKS];
            for (int t = 0; t < T; t++) o[t] = outs[t] + (int64_t)s * rt->m.spec.tasks[t].dim;
            run_model(rt, rt->ws[0], x + (int64_t)s * S, b, o, trunk ? trunk + (int64_t)s * H : NULL);
        }
        return 0;
    }
    /* one pool (core/pool.c), kept across calls */
    if (!rt->pool || mtc_pool_size(rt->pool) != nt) {
        mtc_pool_free(rt->pool);
        if (!(rt->pool = mtc_pool_create(nt))) return mtc_err_set(e, MTC_ENOMEM, "runtime: no thread pool");
    }
    job jobs[256];
    int chunk = (B + nt - 1) / nt;
    for (int i = 0; i < nt; i++) {
        int s = i * chunk;
        jobs[i] = (job){rt, rt->ws[i], x + (int64_t)s * S, s >= B ? 0 : B - s < chunk ? B - s : chunk, {0},
                        trunk && s < B ? trunk + (int64_t)s * H : NULL};
        for (int t = 0; t < T && s < B; t++) jobs[i].outs[t] = outs[t] + (int64_t)s * rt->m.spec.tasks[t].dim;
    }
    mtc_pool_run(rt->pool, nt, job_task, jobs);
    return 0;
}

int mtc_rt_predict(mtc_rt *rt, const mtc_dataset *d, const int64_t *idx, int64_t n, int batch, float **outs,
                   mtc_err *e)
{
    const mtc_model *m = &rt->m;
    int rc = mtc_model_check_input(m, d, e);
    if (rc) return rc;
    if (!idx) n = d->n;
    if (batch < 1) batch = 256;
    int T = m->spec.ntasks;
    for (int t = 0; t < T; t++) outs[t] = NULL;
    int64_t S = mtc_data_sample_size(d);
    float *x = malloc((size_t)batch * (size_t)S * sizeof(float));
    int64_t *bi = malloc((size_t)batch * sizeof(int64_t));
    rc = (!x || !bi) ? mtc_err_set(e, MTC_ENOMEM, "out of memory") : 0;
    for (int t = 0; t < T && !rc; t++)
        if (!(outs[t] = malloc((size_t)(n ? n : 1) * (size_t)m->spec.tasks[t].dim * sizeof(float))))
            rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    if (!rc) rc = mtc_rt_reserve(rt, batch, e);
    for (int64_t s = 0; s < n && !rc; s += batch) {
        int B = (int)(n - s < batch ? n - s : batch);
        for (int b = 0; b < B; b++) bi[b] = idx ? idx[s + b] : s + b;
        mtc_data_batch_x(d, bi, B, 0, NULL, x);
        float *o[MTC_MAX_TASKS];
        for (int t = 0; t < T; t++) o[t] = outs[t] + s * m->spec.tasks[t].dim;
        rc = mtc_rt_run(rt, x, B, o, e);
    }
    free(x);
    free(bi);
    if (rc)
        for (int t = 0; t < T; t++) { free(outs[t]); outs[t] = NULL; }
    return rc;
}
