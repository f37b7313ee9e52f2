/*
 * magnitude.c — unstructured magnitude pruning (global or per layer), the
 * prunable-layer list, sparsity counts and the AGP schedule formula.
 *
 * Pruning = choose the k smallest |w| among the candidate weights, set their
 * mask entries to 0 and the weights to 0. mtc_train multiplies params by the
 * mask after every step, so they stay 0 through fine-tuning. Not here: the
 * schedule loop and budgets (schedule.c), structured removal (structured.c).
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- which layers ------------------------------------------------------------ */

int mtc_prune_is_output(const mtc_model *m, const mtc_layer *L)
{
    for (int t = 0; t < m->spec.ntasks; t++)
        if (m->head[t].n && L == &m->head[t].layers[m->head[t].n - 1]) return 1;
    return 0;
}

static int is_gate(const mtc_model *m, const mtc_layer *L)
{
    for (int t = 0; t < m->spec.ntasks; t++)
        if (L == &m->gate[t]) return 1;
    return 0;
}

typedef struct { mtc_layer **v; int n, cap; } layer_list;

static int collect(mtc_model *m, mtc_layer *L, void *ctx)
{
    layer_list *l = ctx;
    if (is_gate(m, L) || L->w_off < 0) return 0;
    if (L->spec.type != MTC_L_DENSE && L->spec.type != MTC_L_CONV) return 0;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        mtc_layer **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return MTC_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = L;
    return 0;
}

int mtc_prune_layers(mtc_model *m, mtc_layer ***layers, int *n, mtc_err *e)
{
    layer_list l = {0};
    if (mtc_model_for_each_layer(m, collect, &l)) {
        free(l.v);
        return mtc_err_set(e, MTC_ENOMEM, "prune: out of memory");
    }
    *layers = l.v;
    *n = l.n;
    return 0;
}

/* ---- counting ----------------------------------------------------------------- */

double mtc_prune_layer_sparsity(const mtc_model *m, const mtc_layer *L, int64_t *zeros)
{
    int64_t z = 0;
    for (int64_t i = 0; i < L->nw; i++) z += m->params[L->w_off + i] == 0.0f;
    if (zeros) *zeros = z;
    return L->nw ? (double)z / (double)L->nw : 0.0;
}

double mtc_prune_sparsity(mtc_model *m, int64_t *zeros, int64_t *total)
{
    mtc_layer **ls = NULL;
    int n = 0;
    int64_t z = 0, tot = 0;
    if (mtc_prune_layers(m, &ls, &n, NULL) == 0) {
        for (int i = 0; i < n; i++) {
            int64_t lz;
            mtc_prune_layer_sparsity(m, ls[i], &lz);
            z += lz;
            tot += ls[i]->nw;
        }
        free(ls);
    }
    if (zeros) *zeros = z;
    if (total) *total = tot;
    return tot ? (double)z / (double)tot : 0.0;
}

double mtc_agp_sparsity(double s_i, double s_f, int t, int n)
{
    if (n <= 0) return s_f;
    if (t < 0) t = 0;
    if (t > n) t = n;
    double r = 1.0 - (double)t / n;
    return s_f + (s_i - s_f) * r * r * r;
}

/* ---- magnitude pruning ---------------------------------------------------------- */

/* A candidate weight: key = |w|, or -1 when already masked (ranks first). */
typedef struct { float key; int64_t idx; } cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Output-row guard: alive counts per row of every head output layer. */
typedef struct {
    const mtc_layer *L;
    int64_t *alive; /* units rows */
} row_guard;

static row_guard *guard_find(row_guard *g, int ng, int64_t idx)
{
    for (int i = 0; i < ng; i++)
        if (idx >= g[i].L->w_off && idx < g[i].L->w_off + g[i].L->nw) return &g[i];
    return NULL;
}

/* Prunes the k smallest among layers ls[0..n); the mask entries of these
 * layers are recomputed from scratch. */
static int prune_set(mtc_model *m, mtc_layer **ls, int n, int64_t k, mtc_err *e)
{
    int64_t N = 0;
    int ng = 0;
    for (int i = 0; i < n; i++) {
        N += ls[i]->nw;
        ng += mtc_prune_is_output(m, ls[i]);
    }
    cand *c = malloc((size_t)(N ? N : 1) * sizeof *c);
    row_guard *g = calloc((size_t)(ng ? ng : 1), sizeof *g);
    int bad = !c || !g;
    int gi = 0;
    int64_t j = 0;
    for (int i = 0; i < n && !bad; i++) {
        const mtc_layer *L = ls[i];
        for (int64_t q = 0; q < L->nw; q++, j++) {
            int64_t p = L->w_off + q;
            c[j].idx = p;
            c[j].key = m->mask[p] == 0.0f ? -1.0f : fabsf(m->params[p]);
        }
        if (mtc_prune_is_output(m, L)) {
            g[gi].L = L;
            g[gi].alive = malloc((size_t)L->spec.units * sizeof(int64_t));
            if (!g[gi].alive) { bad = 1; break; }
            for (int r = 0; r < L->spec.units; r++) g[gi].alive[r] = L->in_size;
            gi++;
        }
    }
    if (bad) {
        for (int i = 0; i < gi; i++) free(g[i].alive);
        free(c);
        free(g);
        return mtc_err_set(e, MTC_ENOMEM, "prune: out of memory for %lld weights", (long long)N);
    }
    qsort(c, (size_t)N, sizeof *c, cand_cmp);
    for (int i = 0; i < n; i++)
        for (int64_t q = 0; q < ls[i]->nw; q++) m->mask[ls[i]->w_off + q] = 1.0f;
    int64_t pruned = 0;
    for (j = 0; j < N && pruned < k; j++) {
        row_guard *rg = ng ? guard_find(g, ng, c[j].idx) : NULL;
        if (rg) {
            int64_t row = (c[j].idx - rg->L->w_off) / rg->L->in_size;
            if (rg->alive[row] <= 1) continue; /* keep the row's last weight */
            rg->alive[row]--;
        }
        m->mask[c[j].idx] = 0.0f;
        pruned++;
    }
    mtc_model_apply_mask(m);
    for (int i = 0; i < ng; i++) free(g[i].alive);
    free(g);
    free(c);
    return 0;
}

static int ensure_mask(mtc_model *m, mtc_err *e)
{
    if (m->mask) return 0;
    m->mask = malloc((size_t)(m->nparams ? m->nparams : 1) * sizeof(float));
    if (!m->mask) return mtc_err_set(e, MTC_ENOMEM, "prune: out of memory for the mask");
    for (int64_t i = 0; i < m->nparams; i++) m->mask[i] = 1.0f;
    return 0;
}

int mtc_prune_magnitude(mtc_model *m, double sparsity, int scope, const mtc_layer *only, mtc_err *e)
{
    if (!(sparsity >= 0.0 && sparsity < 1.0))
        return mtc_err_set(e, MTC_EINPUT, "--sparsity %g: must be in [0, 1)", sparsity);
    if (scope != MTC_PRUNE_GLOBAL && scope != MTC_PRUNE_LAYER)
        return mtc_err_set(e, MTC_EINPUT, "--scope: expected global or layer");
    int rc = ensure_mask(m, e);
    if (rc) return rc;
    if (only) {
        mtc_layer *L = (mtc_layer *)only;
        return prune_set(m, &L, 1, llround(sparsity * (double)L->nw), e);
    }
    mtc_layer **ls = NULL;
    int n = 0;
    if ((rc = mtc_prune_layers(m, &ls, &n, e))) return rc;
    if (n == 0) {
        free(ls);
        return mtc_err_set(e, MTC_EINPUT, "prune: the model has no dense or conv weights");
    }
    if (scope == MTC_PRUNE_GLOBAL) {
        int64_t N = 0;
        for (int i = 0; i < n; i++) N += ls[i]->nw;
        rc = prune_set(m, ls, n, llround(sparsity * (double)N), e);
    } else {
        for (int i = 0; i < n && !rc; i++) rc = prune_set(m, &ls[i], 1, llround(sparsity * (double)ls[i]->nw), e);
    }
    free(ls);
    return rc;
}
