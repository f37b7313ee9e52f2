/*
 * structured.c — structured pruning: remove whole neurons of hidden dense
 * layers or whole output channels of conv layers, and write a NEW, smaller
 * dense model (spec rewritten, tensors sliced). Not a mask: the matrices
 * really shrink, so inference gets faster and the checkpoint smaller.
 *
 * Ranking per unit u of a layer with W (U, R) (conv: (OC, C·K·K)):
 *   l1     Σ_j |W[u,j]|          l2  sqrt(Σ_j W[u,j]²)
 *   taylor Σ_batches Σ_j |W[u,j] · ∂L/∂W[u,j]|   (Molchanov et al. 2017)
 * The lowest-ranked U − round(keep·U) units go (at least one stays).
 *
 * Which inputs go with them: every layer's output is described by a keep
 * flag per flattened feature (C·H·W). Dense/conv set it from their own cut,
 * pools map it per channel, flatten/act/dropout/batchnorm pass it through.
 * A consumer dense drops the input columns whose flag is 0, a conv its input
 * channels, a batchnorm its channels. The trunk's output flags are the
 * input flags of every head. A layernorm mixes all features, so a layer with
 * a layernorm before its consumer is not cut.
 */
#include "mtc.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void mtc_struct_cfg_default(mtc_struct_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->kind = MTC_STRUCT_NEURONS;
    c->keep = 0.5;
    c->rank = MTC_RANK_L1;
    c->batches = 8;
    c->batch = 128;
}

/* Per chain (trunk = index 0, head t = 1 + t): unit keep of cut layers and
 * feature keep of every layer's output. */
typedef struct {
    uint8_t *unit[MTC_MAX_LAYERS];  /* NULL: layer not cut */
    uint8_t *fout[MTC_MAX_LAYERS];
    double *score[MTC_MAX_LAYERS];
} chain_plan;

typedef struct {
    mtc_model *m;
    int nchains;
    mtc_chain *ch[1 + MTC_MAX_TASKS];
    chain_plan p[1 + MTC_MAX_TASKS];
    uint8_t *input_keep;            /* model input, all ones */
} plan;

static void plan_free(plan *P)
{
    for (int c = 0; c < P->nchains; c++)
        for (int i = 0; i < MTC_MAX_LAYERS; i++) {
            free(P->p[c].unit[i]);
            free(P->p[c].fout[i]);
            free(P->p[c].score[i]);
        }
    free(P->input_keep);
}

static int units_of(const mtc_layer *L)
{
    return L->spec.type == MTC_L_CONV ? L->cs.OC : L->spec.units;
}

/* 1 when a layernorm sits between layer i of chain c and its consumers. */
static int layernorm_downstream(const plan *P, int c, int i)
{
    const mtc_chain *ch = P->ch[c];
    for (int j = i + 1; j < ch->n; j++) {
        int ty = ch->layers[j].spec.type;
        if (ty == MTC_L_LAYERNORM) return 1;
        if (ty == MTC_L_DENSE || ty == MTC_L_CONV) return 0;
    }
    if (c != 0) return 0;
    for (int h = 1; h < P->nchains; h++)
        if (layernorm_downstream(P, h, -1)) return 1;
    return 0;
}

/* 1 when the next weighted layer after layer i of chain c (in any head,
 * for the trunk's last) is a grouped or depthwise conv, or a residual
 * block's start or end comes first: removing one of those channels would
 * have to remove the channels tied to it too (its group; the other side of
 * the add), which this pass does not do yet, so such layers keep theirs. */
static int grouped_downstream(const plan *P, int c, int i)
{
    const mtc_chain *ch = P->ch[c];
    for (int j = i + 1; j < ch->n; j++) {
        const mtc_layer *L = &ch->layers[j];
        if (L->spec.type == MTC_L_CONV) return L->cs.G > 1;
        if (L->spec.type == MTC_L_DENSE) return 0;
        /* a residual block's input or output: its channels are added to
         * another tensor's, so they stay (both sides would have to go) */
        if (L->spec.type == MTC_L_RESIDUAL || L->spec.type == MTC_L_ADD) return 1;
    }
    if (c != 0) return 0;
    for (int h = 1; h < P->nchains; h++)
        if (grouped_downstream(P, h, -1)) return 1;
    return 0;
}

static int cuttable(const plan *P, const mtc_struct_cfg *cfg, int c, int i)
{
    const mtc_layer *L = &P->ch[c]->layers[i];
    int want = cfg->kind == MTC_STRUCT_CHANNELS ? MTC_L_CONV : MTC_L_DENSE;
    if (L->spec.type != want) return 0;
    if (L->spec.type == MTC_L_CONV && L->cs.G > 1) return 0; /* grouped: its channels come in groups */
    if (c > 0 && i == P->ch[c]->n - 1) return 0; /* head output layer */
    return !layernorm_downstream(P, c, i) && !grouped_downstream(P, c, i);
}

/* ---- ranking ----------------------------------------------------------------------- */

static void score_norm(const mtc_model *m, const mtc_layer *L, int l2, double *s)
{
    int U = units_of(L);
    int64_t R = L->nw / U;
    const float *W = m->params + L->w_off;
    for (int u = 0; u < U; u++) {
        double a = 0;
        for (int64_t j = 0; j < R; j++) a += l2 ? (double)W[u * R + j] * W[u * R + j] : fabs(W[u * R + j]);
        s[u] = l2 ? sqrt(a) : a;
    }
}

/* Task losses on one batch into dout[t] (zeroed first), weights from the spec. */
static void batch_losses(const mtc_model *m, const int64_t *bi, int B, int32_t *const *lab,
                         const float *const *targ, float **dout, int32_t *bl, float *bt)
{
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        int D = ts->dim;
        memset(dout[t], 0, (size_t)B * (size_t)D * sizeof(float));
        if (ts->kind == MTC_TASK_CLS) {
            for (int b = 0; b < B; b++) bl[b] = lab[t][bi[b]];
            mtc_loss_softmax_ce(dout[t], m->outputs[t], bl, B, D, 0.0f, ts->weight);
        } else {
            for (int b = 0; b < B; b++)
                for (int k = 0; k < D; k++) {
                    float y = targ[t][bi[b] * D + k];
                    bt[b * D + k] = ts->kind == MTC_TASK_REG ? (y - m->reg_mean[t][k]) / m->reg_std[t][k] : y;
                }
            if (ts->kind == MTC_TASK_BIN) mtc_loss_bce(dout[t], m->outputs[t], bt, B, D, ts->weight);
            else mtc_loss_reg(dout[t], m->outputs[t], bt, B, D, MTC_LOSS_MSE, 1.0f, ts->weight);
        }
    }
}

static int score_taylor(plan *P, const mtc_struct_cfg *cfg, mtc_err *e)
{
    mtc_model *m = P->m;
    const mtc_dataset *d = cfg->d;
    if (!d || cfg->n <= 0 || cfg->batch < 1 || cfg->batches < 1)
        return mtc_err_set(e, MTC_EINPUT, "--rank taylor: needs data (--data) to compute gradients");
    int rc = mtc_model_check_input(m, d, e);
    if (!rc) rc = mtc_model_reserve(m, cfg->batch, e);
    if (rc) return rc;
    int T = m->spec.ntasks, Bm = cfg->batch;
    int32_t *lab[MTC_MAX_TASKS] = {0};
    const float *targ[MTC_MAX_TASKS] = {0};
    float *dout[MTC_MAX_TASKS] = {0};
    int maxD = 1;
    for (int t = 0; t < T; t++) maxD = m->spec.tasks[t].dim > maxD ? m->spec.tasks[t].dim : maxD;
    int64_t S = mtc_data_sample_size(d);
    float *x = malloc((size_t)Bm * (size_t)S * sizeof(float));
    float *bt = malloc((size_t)Bm * (size_t)maxD * sizeof(float));
    int32_t *bl = malloc((size_t)Bm * sizeof(int32_t));
    float *stats = malloc((size_t)m->nstats * sizeof(float) + 4);
    int bad = !x || !bt || !bl || !stats;
    for (int t = 0; t < T && !bad; t++) bad |= !(dout[t] = malloc((size_t)Bm * (size_t)m->spec.tasks[t].dim * sizeof(float)));
    if (bad) rc = mtc_err_set(e, MTC_ENOMEM, "taylor ranking: out of memory");
    for (int t = 0; t < T && !rc; t++) rc = mtc_model_bind_task(m, t, d, &lab[t], &targ[t], e);
    if (!rc) memcpy(stats, m->stats, (size_t)m->nstats * sizeof(float));
    mtc_rng rng;
    mtc_rng_seed(&rng, 0x7461796cULL);
    for (int bno = 0; bno < cfg->batches && !rc; bno++) {
        int64_t s0 = (int64_t)bno * Bm;
        if (s0 >= cfg->n) break;
        int B = (int)(cfg->n - s0 < Bm ? cfg->n - s0 : Bm);
        const int64_t *bi = cfg->idx + s0;
        mtc_data_batch_x(d, bi, B, 0, NULL, x);
        mtc_model_forward(m, x, B, 1, &rng); /* train mode: BN batch stats, as in training */
        batch_losses(m, bi, B, lab, targ, dout, bl, bt);
        memset(m->grads, 0, (size_t)m->nparams * sizeof(float));
        mtc_model_backward(m, x, dout, B);
        for (int c = 0; c < P->nchains; c++)
            for (int i = 0; i < P->ch[c]->n; i++) {
                const mtc_layer *L = &P->ch[c]->layers[i];
                double *sc = P->p[c].score[i];
                if (!sc) continue;
                int U = units_of(L);
                int64_t R = L->nw / U;
                for (int u = 0; u < U; u++)
                    for (int64_t j = 0; j < R; j++) {
                        int64_t q = L->w_off + u * R + j;
                        sc[u] += fabs((double)m->params[q] * m->grads[q]);
                    }
            }
    }
    if (stats && !bad) memcpy(m->stats, stats, (size_t)m->nstats * sizeof(float)); /* undo BN updates */
    memset(m->grads, 0, (size_t)m->nparams * sizeof(float));
    for (int t = 0; t < T; t++) { free(lab[t]); free(dout[t]); }
    free(x); free(bt); free(bl); free(stats);
    return rc;
}

typedef struct { double s; int u; } ranked;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return y->u - x->u; /* ties: higher index removed first */
}

/* Turns scores into unit keep flags; returns units removed or -1 (OOM). */
static int64_t choose_units(const mtc_layer *L, const double *score, double keep, uint8_t *unit)
{
    int U = units_of(L);
    int nkeep = (int)llround(keep * U);
    if (nkeep < 1) nkeep = 1;
    if (nkeep > U) nkeep = U;
    ranked *r = malloc((size_t)U * sizeof *r);
    if (!r) return -1;
    for (int u = 0; u < U; u++) { r[u].s = score[u]; r[u].u = u; unit[u] = 1; }
    qsort(r, (size_t)U, sizeof *r, ranked_cmp);
    for (int k = 0; k < U - nkeep; k++) unit[r[k].u] = 0;
    free(r);
    return U - nkeep;
}

/* ---- propagation ----------------------------------------------------------------- */

static int all_set(const uint8_t *k, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!k[i]) return 0;
    return 1;
}

static int propagate_chain(plan *P, int c, const uint8_t *in, mtc_err *e)
{
    mtc_chain *ch = P->ch[c];
    chain_plan *cp = &P->p[c];
    for (int i = 0; i < ch->n; i++) {
        const mtc_layer *L = &ch->layers[i];
        const uint8_t *fin = i ? cp->fout[i - 1] : in;
        uint8_t *fo = cp->fout[i] = malloc((size_t)L->out_size);
        if (!fo) return mtc_err_set(e, MTC_ENOMEM, "structured pruning: out of memory");
        int64_t inS = (int64_t)L->in_h * L->in_w, outS = (int64_t)L->out_h * L->out_w;
        switch (L->spec.type) {
        case MTC_L_DENSE: case MTC_L_CONV:
            for (int u = 0; u < L->out_c; u++)
                memset(fo + u * outS, cp->unit[i] ? cp->unit[i][u] : 1, (size_t)outS);
            break;
        case MTC_L_MAXPOOL: case MTC_L_AVGPOOL:
            for (int ch2 = 0; ch2 < L->out_c; ch2++) memset(fo + ch2 * outS, fin[ch2 * inS], (size_t)outS);
            break;
        case MTC_L_LAYERNORM:
            if (!all_set(fin, L->in_size))
                return mtc_err_set(e, MTC_EINTERNAL, "structured pruning: %s would lose inputs", L->name);
            /* fall through */
        default: /* flatten, act, dropout, batchnorm: same features */
            memcpy(fo, fin, (size_t)L->out_size);
            break;
        }
    }
    return 0;
}

/* ---- spec rewrite ------------------------------------------------------------------- */

/* Replaces the value of `key` in the section that starts on line `line`. */
static int rewrite_key(char **text, int line, const char *key, int value)
{
    char *s = *text;
    int ln = 1;
    while (*s && ln < line) { if (*s++ == '\n') ln++; }
    if (ln != line) return -1;
    char *p = strchr(s, ']');
    char *eol = strchr(s, '\n');
    if (!p || (eol && p > eol)) return -1;
    p++;
    size_t klen = strlen(key);
    int first = 1;
    while (*p) {
        char *end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        if (!first) {
            char *q = p;
            while (q < end && isspace((unsigned char)*q)) q++;
            if (*q == '[') return -1; /* next section: key not found */
        }
        first = 0;
        char *cm = p;
        while (cm < end && *cm != '#' && *cm != ';') cm++;
        for (char *q = p; q + klen <= cm; q++) {
            if (strncmp(q, key, klen) || (q > p && !isspace((unsigned char)q[-1]) && q[-1] != ']')) continue;
            char *v = q + klen;
            while (v < cm && isspace((unsigned char)*v)) v++;
            if (v >= cm || *v != '=') continue;
            v++;
            while (v < cm && isspace((unsigned char)*v)) v++;
            char *ve = v;
            while (ve < cm && isdigit((unsigned char)*ve)) ve++;
            if (ve == v) return -1;
            char num[32];
            int nl = snprintf(num, sizeof num, "%d", value);
            size_t pre = (size_t)(v - *text), post = strlen(ve);
            char *out = malloc(pre + (size_t)nl + post + 1);
            if (!out) return -2;
            memcpy(out, *text, pre);
            memcpy(out + pre, num, (size_t)nl);
            memcpy(out + pre + nl, ve, post + 1);
            free(*text);
            *text = out;
            return 0;
        }
        if (!*end) break;
        p = end + 1;
    }
    return -1;
}

static int new_spec_text(plan *P, const mtc_struct_cfg *cfg, char **out, mtc_err *e)
{
    const mtc_model *m = P->m;
    char *text = strdup(m->spec_text ? m->spec_text : "");
    if (!text) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    for (int c = 0; c < P->nchains; c++)
        for (int i = 0; i < P->ch[c]->n; i++) {
            const uint8_t *u = P->p[c].unit[i];
            if (!u) continue;
            const mtc_layer *L = &P->ch[c]->layers[i];
            int kept = 0;
            for (int k = 0; k < units_of(L); k++) kept += u[k];
            int rc = rewrite_key(&text, L->spec.line, L->spec.type == MTC_L_CONV ? "filters" : "units", kept);
            if (rc) {
                free(text);
                return rc == -2 ? mtc_err_set(e, MTC_ENOMEM, "out of memory")
                                : mtc_err_set(e, MTC_EINPUT, "structured pruning: cannot find the %s of %s (spec line %d)",
                                              L->spec.type == MTC_L_CONV ? "filters" : "units", L->name, L->spec.line);
            }
        }
    const char *kinds[] = {"neurons", "channels"}, *ranks[] = {"l1", "l2", "taylor"};
    size_t n = strlen(text) + 160;
    char *full = malloc(n);
    if (!full) { free(text); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
    snprintf(full, n, "# mtc prune --structured %s --keep %g --rank %s\n%s", kinds[cfg->kind], cfg->keep,
             ranks[cfg->rank], text);
    free(text);
    *out = full;
    return 0;
}

/* ---- copying ------------------------------------------------------------------------- */

/* Indices i in [0, n) with k[i*stride] set. */
static int64_t kept_list(const uint8_t *k, int64_t n, int64_t stride, int64_t *idx)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        if (!k || k[i * stride]) idx[c++] = i;
    return c;
}

/* dst (rows, cols·inner) from src (R, C·inner) at rows ri, column blocks ci. */
static void slice2(float *dst, const float *src, const int64_t *ri, int64_t rows, const int64_t *ci,
                   int64_t cols, int64_t C, int64_t inner)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            memcpy(dst + (r * cols + c) * inner, src + (ri[r] * C + ci[c]) * inner, (size_t)inner * sizeof(float));
}

static int copy_layer(const mtc_model *m, const mtc_layer *L, const uint8_t *unit, const uint8_t *fin,
                      mtc_model *o, const mtc_layer *N, mtc_err *e)
{
    int64_t inS = (int64_t)L->in_h * L->in_w;
    int64_t *ri = malloc((size_t)(L->out_size + 1) * sizeof(int64_t));
    int64_t *ci = malloc((size_t)(L->in_size + 1) * sizeof(int64_t));
    if (!ri || !ci) { free(ri); free(ci); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
    int rc = 0;
    switch (L->spec.type) {
    case MTC_L_DENSE: case MTC_L_CONV: {
        int conv = L->spec.type == MTC_L_CONV;
        if (conv && L->cs.G > 1) { /* never cut, nor its inputs (cuttable): as it was */
            if (N->nw != L->nw) {
                rc = mtc_err_set(e, MTC_EINTERNAL, "structured pruning: %s: grouped conv changed size", L->name);
                break;
            }
            memcpy(o->params + N->w_off, m->params + L->w_off, (size_t)L->nw * sizeof(float));
            memcpy(o->params + N->b_off, m->params + L->b_off, (size_t)L->nb * sizeof(float));
            if (m->mask && o->mask) memcpy(o->mask + N->w_off, m->mask + L->w_off, (size_t)L->nw * sizeof(float));
            break;
        }
        int64_t rows = kept_list(unit, units_of(L), 1, ri);
        int64_t C = conv ? L->in_c : L->in_size;
        int64_t cols = conv ? kept_list(fin, L->in_c, inS, ci) : kept_list(fin, L->in_size, 1, ci);
        int64_t inner = conv ? (int64_t)L->cs.K * L->cs.K : 1;
        if (rows * cols * inner != N->nw) {
            rc = mtc_err_set(e, MTC_EINTERNAL, "structured pruning: %s: %lld weights, new model has %lld", L->name,
                             (long long)(rows * cols * inner), (long long)N->nw);
            break;
        }
        slice2(o->params + N->w_off, m->params + L->w_off, ri, rows, ci, cols, C, inner);
        if (m->mask && o->mask) slice2(o->mask + N->w_off, m->mask + L->w_off, ri, rows, ci, cols, C, inner);
        for (int64_t r = 0; r < rows && L->b_off >= 0; r++) o->params[N->b_off + r] = m->params[L->b_off + ri[r]];
        break;
    }
    case MTC_L_BATCHNORM: {
        int64_t k = kept_list(fin, L->in_c, inS, ci);
        if (k != N->in_c) { rc = mtc_err_set(e, MTC_EINTERNAL, "structured pruning: %s: channel count", L->name); break; }
        for (int64_t j = 0; j < k; j++) {
            o->params[N->w_off + j] = m->params[L->w_off + ci[j]];
            o->params[N->b_off + j] = m->params[L->b_off + ci[j]];
            o->stats[N->stat_off + j] = m->stats[L->stat_off + ci[j]];
            o->stats[N->stat_off + N->in_c + j] = m->stats[L->stat_off + L->in_c + ci[j]];
        }
        break;
    }
    case MTC_L_LAYERNORM:
        memcpy(o->params + N->w_off, m->params + L->w_off, (size_t)L->nw * sizeof(float));
        memcpy(o->params + N->b_off, m->params + L->b_off, (size_t)L->nb * sizeof(float));
        break;
    default:
        break;
    }
    free(ri);
    free(ci);
    return rc;
}

/* ---- driver ----------------------------------------------------------------------------- */

int mtc_prune_structured(mtc_model *m, const mtc_struct_cfg *cfg, mtc_model *out, int64_t *removed, mtc_err *e)
{
    memset(out, 0, sizeof *out);
    if (removed) *removed = 0;
    if (m->nexperts > 1)
        return mtc_err_set(e, MTC_EINPUT, "--structured: MMoE models (%d experts) are not supported; "
                           "use unstructured pruning (--sparsity)", m->nexperts);
    if (!(cfg->keep > 0 && cfg->keep <= 1))
        return mtc_err_set(e, MTC_EINPUT, "--keep %g: must be in (0, 1]", cfg->keep);
    if (cfg->kind != MTC_STRUCT_NEURONS && cfg->kind != MTC_STRUCT_CHANNELS)
        return mtc_err_set(e, MTC_EINPUT, "--structured: expected neurons or channels");
    if (cfg->rank < MTC_RANK_L1 || cfg->rank > MTC_RANK_TAYLOR)
        return mtc_err_set(e, MTC_EINPUT, "--rank: expected l1, l2 or taylor");
    plan P;
    memset(&P, 0, sizeof P);
    P.m = m;
    P.nchains = 1 + m->spec.ntasks;
    P.ch[0] = &m->trunk[0];
    for (int t = 0; t < m->spec.ntasks; t++) P.ch[1 + t] = &m->head[t];
    int64_t in_size = (int64_t)m->spec.c * m->spec.h * m->spec.w, nrem = 0;
    int rc = 0, ncut = 0;
    P.input_keep = malloc((size_t)in_size);
    if (!P.input_keep) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    memset(P.input_keep, 1, (size_t)in_size);
    /* scores */
    for (int c = 0; c < P.nchains && !rc; c++)
        for (int i = 0; i < P.ch[c]->n && !rc; i++) {
            if (!cuttable(&P, cfg, c, i)) continue;
            const mtc_layer *L = &P.ch[c]->layers[i];
            int U = units_of(L);
            P.p[c].score[i] = calloc((size_t)U, sizeof(double));
            P.p[c].unit[i] = malloc((size_t)U);
            if (!P.p[c].score[i] || !P.p[c].unit[i]) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
            else if (cfg->rank != MTC_RANK_TAYLOR) score_norm(m, L, cfg->rank == MTC_RANK_L2, P.p[c].score[i]);
            ncut++;
        }
    if (!rc && ncut == 0)
        rc = mtc_err_set(e, MTC_EINPUT, "--structured %s: the model has no %s to cut",
                         cfg->kind == MTC_STRUCT_CHANNELS ? "channels" : "neurons",
                         cfg->kind == MTC_STRUCT_CHANNELS ? "conv layers" : "hidden dense layers");
    if (!rc && cfg->rank == MTC_RANK_TAYLOR) rc = score_taylor(&P, cfg, e);
    for (int c = 0; c < P.nchains && !rc; c++)
        for (int i = 0; i < P.ch[c]->n && !rc; i++) {
            if (!P.p[c].unit[i]) continue;
            int64_t r = choose_units(&P.ch[c]->layers[i], P.p[c].score[i], cfg->keep, P.p[c].unit[i]);
            if (r < 0) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
            nrem += r;
        }
    /* feature flags: trunk, then every head from the trunk's output */
    if (!rc) rc = propagate_chain(&P, 0, P.input_keep, e);
    const uint8_t *trunk_keep = P.ch[0]->n ? P.p[0].fout[P.ch[0]->n - 1] : P.input_keep;
    for (int c = 1; c < P.nchains && !rc; c++) rc = propagate_chain(&P, c, trunk_keep, e);
    /* new model from the rewritten spec */
    char *text = NULL;
    mtc_spec s;
    if (!rc) rc = new_spec_text(&P, cfg, &text, e);
    if (!rc) rc = mtc_spec_parse(text, "structured spec", &s, e);
    if (!rc) rc = mtc_model_build(&s, text, out, e);
    free(text);
    if (!rc && m->mask && !(out->mask = malloc((size_t)out->nparams * sizeof(float) + 4)))
        rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    if (!rc && out->mask)
        for (int64_t i = 0; i < out->nparams; i++) out->mask[i] = 1.0f;
    for (int c = 0; c < P.nchains && !rc; c++) {
        mtc_chain *oc = c ? &out->head[c - 1] : &out->trunk[0];
        for (int i = 0; i < P.ch[c]->n && !rc; i++) {
            const uint8_t *fin = i ? P.p[c].fout[i - 1] : c ? trunk_keep : P.input_keep;
            rc = copy_layer(m, &P.ch[c]->layers[i], P.p[c].unit[i], fin, out, &oc->layers[i], e);
        }
    }
    if (!rc) {
        memcpy(out->reg_mean, m->reg_mean, sizeof m->reg_mean);
        memcpy(out->reg_std, m->reg_std, sizeof m->reg_std);
        if (removed) *removed = nrem;
    } else if (out->params) {
        mtc_model_free(out);
    }
    plan_free(&P);
    return rc;
}
