/*
 * sensitivity.c — per-layer, per-task pruning sensitivity: each prunable
 * layer alone is magnitude-pruned to each grid sparsity (no fine-tune), and
 * the headline metric of EVERY task is measured on the given samples, so a
 * layer that only one task depends on shows up in that task's column.
 */
#include "mtc.h"

#include <stdlib.h>
#include <string.h>

void mtc_prune_sensitivity_free(mtc_prune_sensitivity *s)
{
    free(s->layer);
    free(s->layer_weights);
    free(s->grid);
    free(s->metric);
    memset(s, 0, sizeof *s);
}

int mtc_prune_sensitivity_scan(mtc_model *m, const mtc_dataset *d, const int64_t *idx, int64_t n,
                               const double *grid, int ngrid, mtc_prune_sensitivity *out, mtc_err *e)
{
    memset(out, 0, sizeof *out);
    for (int g = 0; g < ngrid; g++)
        if (!(grid[g] >= 0 && grid[g] < 1))
            return mtc_err_set(e, MTC_EINPUT, "--grid: sparsity %g must be in [0, 1)", grid[g]);
    mtc_layer **ls;
    int nl;
    int rc = mtc_prune_layers(m, &ls, &nl, e);
    if (rc) return rc;
    int T = m->spec.ntasks;
    out->nlayers = nl;
    out->ngrid = ngrid;
    out->ntasks = T;
    out->layer = calloc((size_t)(nl ? nl : 1), sizeof *out->layer);
    out->layer_weights = calloc((size_t)(nl ? nl : 1), sizeof *out->layer_weights);
    out->grid = malloc((size_t)(ngrid ? ngrid : 1) * sizeof(double));
    out->metric = malloc((size_t)(nl * ngrid * T + 1) * sizeof(double));
    float *save_p = malloc((size_t)m->nparams * sizeof(float) + 4);
    float *save_m = m->mask ? malloc((size_t)m->nparams * sizeof(float) + 4) : NULL;
    int had_mask = m->mask != NULL;
    if (!out->layer || !out->layer_weights || !out->grid || !out->metric || !save_p || (had_mask && !save_m)) {
        rc = mtc_err_set(e, MTC_ENOMEM, "sensitivity: out of memory");
        goto done;
    }
    memcpy(out->grid, grid, (size_t)ngrid * sizeof(double));
    memcpy(save_p, m->params, (size_t)m->nparams * sizeof(float));
    if (had_mask) memcpy(save_m, m->mask, (size_t)m->nparams * sizeof(float));
    if ((rc = mtc_prune_eval_primary(m, d, idx, n, out->base, e))) goto done;
    for (int l = 0; l < nl && !rc; l++) {
        snprintf(out->layer[l], sizeof out->layer[l], "%s", ls[l]->name);
        out->layer_weights[l] = ls[l]->nw;
        for (int g = 0; g < ngrid && !rc; g++) {
            rc = mtc_prune_magnitude(m, grid[g], MTC_PRUNE_LAYER, ls[l], e);
            if (!rc) rc = mtc_prune_eval_primary(m, d, idx, n, out->metric + ((size_t)l * ngrid + g) * T, e);
            /* restore params and mask: a trial's zeros must not leak into
             * the next layer's trials */
            memcpy(m->params, save_p, (size_t)m->nparams * sizeof(float));
            if (had_mask) {
                memcpy(m->mask, save_m, (size_t)m->nparams * sizeof(float));
            } else {
                free(m->mask);
                m->mask = NULL;
            }
        }
    }
done:
    if (!had_mask) { free(m->mask); m->mask = NULL; }
    free(save_p);
    free(save_m);
    free(ls);
    if (rc) mtc_prune_sensitivity_free(out);
    return rc;
}
