/*
 * schedule.c — one-shot and gradual (AGP) pruning with fine-tuning between
 * steps, and per-task budgets (--protect) measured on the validation split.
 *
 * AGP (Zhu & Gupta 2017): s_t = s_f + (s_i − s_f)(1 − t/n)³, t = 1..n; at
 * each step prune to s_t (the mask only grows: masked weights rank first),
 * then fine-tune E epochs with mtc_train (KD when cfg.train.soft is set — the
 * distillation loss of mtc_train, not a copy). Budgets: one shot bisects the
 * sparsity before fine-tuning; AGP stops at the last step within budget.
 */
#include "mtc.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- budgets ---------------------------------------------------------------- */

int mtc_prune_protect_parse(const mtc_model *m, const char *s, mtc_prune_protect *p, mtc_err *e)
{
    memset(p, 0, sizeof *p);
    if (!s || !*s) return 0;
    char buf[1024];
    if (strlen(s) >= sizeof buf) return mtc_err_set(e, MTC_EINPUT, "--protect: too long");
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return mtc_err_set(e, MTC_EINPUT, "--protect %s: expected TASK=POINTS[,TASK=POINTS]", s);
        *eq = 0;
        int t = mtc_spec_task_index(&m->spec, tok);
        if (t < 0) return mtc_err_set(e, MTC_EINPUT, "--protect: the model has no task '%s'", tok);
        char *end;
        double b = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || !(b >= 0 && b <= 100))
            return mtc_err_set(e, MTC_EINPUT, "--protect %s=%s: budget must be a number of points in [0, 100]", tok, eq + 1);
        for (int i = 0; i < p->n; i++)
            if (p->task[i] == t) return mtc_err_set(e, MTC_EINPUT, "--protect: task '%s' given twice", tok);
        p->task[p->n] = t;
        p->budget[p->n++] = b;
    }
    return 0;
}

int mtc_prune_eval_primary(mtc_model *m, const mtc_dataset *d, const int64_t *idx, int64_t n, double *out,
                           mtc_err *e)
{
    mtc_task_eval ev[MTC_MAX_TASKS];
    int rc = mtc_evaluate(m, d, idx, n, 256, ev, e);
    if (rc) return rc;
    for (int t = 0; t < m->spec.ntasks; t++) out[t] = mtc_task_eval_primary(&ev[t], NULL);
    mtc_task_eval_free(ev, m->spec.ntasks);
    return 0;
}

double mtc_prune_drop(int kind, double before, double after)
{
    return kind == MTC_TASK_REG ? after - before : 100.0 * (before - after);
}

int mtc_prune_within_budget(const mtc_model *m, const mtc_prune_protect *p, const double *base, const double *now)
{
    for (int i = 0; i < p->n; i++) {
        int t = p->task[i];
        /* tiny slack so that "no change" never fails on float noise */
        if (mtc_prune_drop(m->spec.tasks[t].kind, base[t], now[t]) > p->budget[i] + 1e-9) return 0;
    }
    return 1;
}

/* ---- the run ------------------------------------------------------------------ */

void mtc_prune_cfg_default(mtc_prune_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->sparsity = 0.5;
    c->scope = MTC_PRUNE_GLOBAL;
    c->steps = 10;
    c->finetune_epochs = 0;
    mtc_train_cfg_default(&c->train);
    c->train.keep_standardisation = 1;
    c->search_iters = 12;
}

static void say(const mtc_prune_cfg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const mtc_prune_cfg *c, const char *fmt, ...)
{
    if (!c->progress) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->progress(c->progress_ctx, line);
}

/* Saved parameters + mask + BN statistics, to back off a step. */
typedef struct { float *params, *mask, *stats; } snapshot;

static int snap_take(snapshot *s, const mtc_model *m, mtc_err *e)
{
    if (!s->params) {
        s->params = malloc((size_t)m->nparams * sizeof(float) + 4);
        s->mask = malloc((size_t)m->nparams * sizeof(float) + 4);
        s->stats = malloc((size_t)m->nstats * sizeof(float) + 4);
        if (!s->params || !s->mask || !s->stats) return mtc_err_set(e, MTC_ENOMEM, "prune: out of memory");
    }
    memcpy(s->params, m->params, (size_t)m->nparams * sizeof(float));
    memcpy(s->stats, m->stats, (size_t)m->nstats * sizeof(float));
    if (m->mask) memcpy(s->mask, m->mask, (size_t)m->nparams * sizeof(float));
    else for (int64_t i = 0; i < m->nparams; i++) s->mask[i] = 1.0f;
    return 0;
}

static void snap_restore(const snapshot *s, mtc_model *m)
{
    memcpy(m->params, s->params, (size_t)m->nparams * sizeof(float));
    memcpy(m->stats, s->stats, (size_t)m->nstats * sizeof(float));
    if (m->mask) memcpy(m->mask, s->mask, (size_t)m->nparams * sizeof(float));
}

static void snap_free(snapshot *s)
{
    free(s->params); free(s->mask); free(s->stats);
}

static int finetune(mtc_model *m, const mtc_dataset *d, const mtc_prune_cfg *cfg, mtc_err *e)
{
    if (cfg->finetune_epochs <= 0) return 0;
    mtc_train_cfg tc = cfg->train;
    tc.epochs = cfg->finetune_epochs;
    mtc_train_result tr;
    int rc = mtc_train(m, d, &tc, &tr, e);
    free(tr.history_json);
    return rc;
}

/* One shot with a budget: largest s in [0, target] (bisection) within budget. */
static int oneshot_protected(mtc_model *m, const mtc_dataset *d, const mtc_prune_cfg *cfg, const int64_t *vidx,
                             int64_t nv, const double *base, mtc_prune_result *res, mtc_err *e)
{
    snapshot orig = {0};
    double now[MTC_MAX_TASKS];
    int rc = snap_take(&orig, m, e);
    if (!rc) rc = mtc_prune_magnitude(m, cfg->sparsity, cfg->scope, NULL, e);
    if (!rc) rc = mtc_prune_eval_primary(m, d, vidx, nv, now, e);
    if (!rc && !mtc_prune_within_budget(m, &cfg->protect, base, now)) {
        res->limited_by_budget = 1;
        double lo = 0.0, hi = cfg->sparsity;
        for (int it = 0; it < cfg->search_iters && !rc; it++) {
            double mid = 0.5 * (lo + hi);
            snap_restore(&orig, m);
            if ((rc = mtc_prune_magnitude(m, mid, cfg->scope, NULL, e))) break;
            if ((rc = mtc_prune_eval_primary(m, d, vidx, nv, now, e))) break;
            int ok = mtc_prune_within_budget(m, &cfg->protect, base, now);
            say(cfg, "protect: sparsity %.4f %s", mid, ok ? "within budget" : "over budget");
            if (ok) lo = mid;
            else hi = mid;
        }
        if (!rc) {
            snap_restore(&orig, m);
            rc = mtc_prune_magnitude(m, lo, cfg->scope, NULL, e);
        }
    }
    snap_free(&orig);
    return rc;
}

static int run_agp(mtc_model *m, const mtc_dataset *d, const mtc_prune_cfg *cfg, const int64_t *vidx, int64_t nv,
                   const double *base, mtc_prune_result *res, mtc_err *e)
{
    snapshot prev = {0};
    double now[MTC_MAX_TASKS];
    int rc = 0;
    for (int t = 1; t <= cfg->steps && !rc; t++) {
        if (cfg->protect.n && (rc = snap_take(&prev, m, e))) break;
        double s = mtc_agp_sparsity(cfg->initial_sparsity, cfg->sparsity, t, cfg->steps);
        if ((rc = mtc_prune_magnitude(m, s, cfg->scope, NULL, e))) break;
        if ((rc = finetune(m, d, cfg, e))) break;
        if (nv > 0 && (rc = mtc_prune_eval_primary(m, d, vidx, nv, now, e))) break;
        char line[400];
        int k = snprintf(line, sizeof line, "agp step %d/%d: sparsity %.4f  val", t, cfg->steps, s);
        for (int q = 0; q < m->spec.ntasks && nv > 0 && k < 300; q++)
            k += snprintf(line + k, sizeof line - (size_t)k, " %s %.4f", m->spec.tasks[q].name, now[q]);
        say(cfg, "%s", line);
        if (cfg->protect.n && !mtc_prune_within_budget(m, &cfg->protect, base, now)) {
            snap_restore(&prev, m);
            res->limited_by_budget = 1;
            say(cfg, "agp: step %d breaks a --protect budget; keeping step %d", t, t - 1);
            break;
        }
        res->steps_done = t;
    }
    snap_free(&prev);
    return rc;
}

int mtc_prune_run(mtc_model *m, const mtc_dataset *d, const mtc_prune_cfg *cfg, mtc_prune_result *res, mtc_err *e)
{
    memset(res, 0, sizeof *res);
    res->target = cfg->sparsity;
    res->ntasks = m->spec.ntasks;
    if (!(cfg->sparsity >= 0 && cfg->sparsity < 1))
        return mtc_err_set(e, MTC_EINPUT, "--sparsity %g: must be in [0, 1)", cfg->sparsity);
    if (cfg->agp && (cfg->steps < 1 || !(cfg->initial_sparsity >= 0 && cfg->initial_sparsity <= cfg->sparsity)))
        return mtc_err_set(e, MTC_EINPUT, "--schedule agp: need --steps >= 1 and 0 <= --initial-sparsity <= --sparsity");
    if (cfg->protect.n && !(cfg->train.val_frac > 0))
        return mtc_err_set(e, MTC_EINPUT, "--protect needs a validation split (--val > 0)");
    int rc = mtc_model_check_input(m, d, e);
    if (rc) return rc;
    int64_t *tidx = NULL, *vidx = NULL, nt = 0, nv = 0;
    if ((rc = mtc_data_split(d->n, d->group, cfg->train.val_frac, mtc_train_split_seed(&cfg->train), &tidx, &nt, &vidx, &nv, e))) return rc;
    free(tidx);
    if (nv > 0 && (rc = mtc_prune_eval_primary(m, d, vidx, nv, res->val_before, e))) goto out;
    if (cfg->agp) {
        rc = run_agp(m, d, cfg, vidx, nv, res->val_before, res, e);
    } else {
        rc = cfg->protect.n ? oneshot_protected(m, d, cfg, vidx, nv, res->val_before, res, e)
                            : mtc_prune_magnitude(m, cfg->sparsity, cfg->scope, NULL, e);
        if (!rc) rc = finetune(m, d, cfg, e);
        res->steps_done = 1;
    }
    if (!rc && nv > 0) rc = mtc_prune_eval_primary(m, d, vidx, nv, res->val_after, e);
    res->sparsity = mtc_prune_sparsity(m, NULL, NULL);
out:
    free(vidx);
    return rc;
}
