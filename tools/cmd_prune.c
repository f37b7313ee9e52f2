/*
 * cmd_prune.c — `mtc prune`: unstructured magnitude pruning (one shot or AGP
 * with (KD) fine-tuning), structured removal of neurons / channels, per-task
 * budgets, and the per-layer per-task sensitivity scan (--sensitivity).
 * The work is in prune/ (include/mtc/prune.h); this file parses flags,
 * measures before/after, writes the checkpoint with lineage metadata and
 * prints the tables.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct prune_opts {
    const char *out, *scope, *schedule, *soft, *data, *structured, *rank, *protect, *sensitivity, *grid,
        *report_json, *spec_out, *optimizer;
    float sparsity, initial, keep, lr, val, temperature, alpha;
    uint64_t val_seed;
    int steps, finetune_epochs, batch, val_samples, no_test, taylor_batches;
} prune_opts;

/* the flags' spellings, indexed by mtc_prune_scope and mtc_rank_kind */
static const char *const scope_names[] = {"global", "layer"};
static const char *const rank_names[] = {"l1", "l2", "taylor"};

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static void say_line(void *ctx, const char *line)
{
    cli_progress(ctx, "%s", line);
}

static int64_t file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

/* Stored (zlib) bytes of the weight values and of the masks of a
 * checkpoint: ".weight" / ".weight_nz" and ".mask" / ".weight_bits"
 * (include/mtc/model.h). */
static void stored_weight_bytes(const char *path, int64_t *weights, int64_t *masks)
{
    mtc_creader r;
    mtc_err e = {0};
    *weights = *masks = 0;
    if (mtc_creader_open(&r, path, "MTC1", &e)) return;
    for (int i = 0; i < r.nsections; i++) {
        const char *n = r.sections[i].name;
        int64_t stored = (int64_t)r.sections[i].comp_len;
        if (strncmp(n, "tensor:", 7)) continue;
        if (ends_with(n, ".weight") || ends_with(n, ".weight_nz")) *weights += stored;
        if (ends_with(n, ".mask") || ends_with(n, ".weight_bits")) *masks += stored;
    }
    mtc_creader_close(&r);
}

/* Median-free simple timing: best of 3 passes over n samples. */
static double infer_seconds(mtc_model *m, const mtc_dataset *d, int64_t n)
{
    double best = 1e30;
    int64_t *idx = malloc((size_t)n * sizeof(int64_t));
    if (!idx) return -1;
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int k = 0; k < 3; k++) {
        float *outs[MTC_MAX_TASKS] = {0};
        mtc_err e = {0};
        double t0 = cli_now();
        int rc = mtc_model_predict(m, d, idx, n, 256, outs, &e);
        double dt = cli_now() - t0;
        for (int t = 0; t < m->spec.ntasks; t++) free(outs[t]);
        if (rc) { best = -1; break; }
        if (dt < best) best = dt;
    }
    free(idx);
    return best;
}

/* ---- sensitivity --------------------------------------------------------------- */

static int parse_grid(const char *s, double *g, int max, int *n, mtc_err *e)
{
    char buf[512];
    *n = 0;
    if (strlen(s) >= sizeof buf) return mtc_err_set(e, MTC_EINPUT, "--grid: too long");
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        double v = strtod(t, &end);
        if (end == t || *end || !(v >= 0 && v < 1))
            return mtc_err_set(e, MTC_EINPUT, "--grid %s: '%s' is not a sparsity in [0, 1)", s, t);
        if (*n >= max) return mtc_err_set(e, MTC_EINPUT, "--grid: at most %d values", max);
        g[(*n)++] = v;
    }
    if (*n == 0) return mtc_err_set(e, MTC_EINPUT, "--grid: no values");
    return 0;
}

static void sens_json(mtc_jw *w, const mtc_model *m, const mtc_prune_sensitivity *s, const char *model,
                      const mtc_dataset *d, int64_t nval)
{
    int T = s->ntasks;
    mtc_jw_obj(w);
    mtc_jw_kstr(w, "model", model);
    util_json_data(w, "data", d);
    mtc_jw_kint(w, "val_samples", nval);
    mtc_jw_key(w, "grid");
    mtc_jw_arr(w);
    for (int g = 0; g < s->ngrid; g++) mtc_jw_num(w, s->grid[g]);
    mtc_jw_arr_end(w);
    mtc_jw_key(w, "metric");
    mtc_jw_obj(w);
    for (int t = 0; t < T; t++) {
        const char *name;
        mtc_task_eval fake = {.kind = m->spec.tasks[t].kind};
        mtc_task_eval_primary(&fake, &name);
        mtc_jw_kstr(w, m->spec.tasks[t].name, name);
    }
    mtc_jw_obj_end(w);
    mtc_jw_key(w, "base");
    mtc_jw_obj(w);
    for (int t = 0; t < T; t++) mtc_jw_knum(w, m->spec.tasks[t].name, s->base[t]);
    mtc_jw_obj_end(w);
    mtc_jw_key(w, "layers");
    mtc_jw_arr(w);
    for (int l = 0; l < s->nlayers; l++) {
        mtc_jw_obj(w);
        mtc_jw_kstr(w, "name", s->layer[l]);
        mtc_jw_kint(w, "weights", s->layer_weights[l]);
        mtc_jw_key(w, "tasks");
        mtc_jw_obj(w);
        for (int t = 0; t < T; t++) {
            mtc_jw_key(w, m->spec.tasks[t].name);
            mtc_jw_arr(w);
            for (int g = 0; g < s->ngrid; g++) mtc_jw_num(w, s->metric[((size_t)l * s->ngrid + g) * T + t]);
            mtc_jw_arr_end(w);
        }
        mtc_jw_obj_end(w);
        mtc_jw_obj_end(w);
    }
    mtc_jw_arr_end(w);
    mtc_jw_obj_end(w);
}

static void sens_table(const mtc_model *m, const mtc_prune_sensitivity *s)
{
    int T = s->ntasks;
    for (int t = 0; t < T; t++) {
        int reg = m->spec.tasks[t].kind == MTC_TASK_REG;
        printf("\ntask %s: validation %s (unpruned %.2f%s)\n", m->spec.tasks[t].name, reg ? "MAE" : "accuracy %",
               reg ? s->base[t] : 100 * s->base[t], reg ? "" : "%");
        printf("%-28s %9s", "layer", "weights");
        for (int g = 0; g < s->ngrid; g++) printf(" %6.0f%%", 100 * s->grid[g]);
        printf("\n");
        for (int l = 0; l < s->nlayers; l++) {
            printf("%-28s %9lld", s->layer[l], (long long)s->layer_weights[l]);
            for (int g = 0; g < s->ngrid; g++) {
                double v = s->metric[((size_t)l * s->ngrid + g) * T + t];
                printf(reg ? " %7.4f" : " %7.2f", reg ? v : 100 * v);
            }
            printf("\n");
        }
    }
}

static int run_sensitivity(const prune_opts *o, const cli_common *c)
{
    mtc_err e = {0};
    mtc_model m;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    mtc_prune_sensitivity s = {0};
    int64_t *tidx = NULL, *vidx = NULL, nt = 0, nv = 0;
    double grid[64];
    int ngrid, rc;
    if (!o->data) {
        fprintf(stderr, "mtc prune: --sensitivity needs --data NAME\n");
        return 2;
    }
    if ((rc = parse_grid(o->grid, grid, 64, &ngrid, &e))) return cli_fail("prune", &e);
    if ((rc = mtc_model_load(o->sensitivity, &m, NULL, &e))) return cli_fail("prune", &e);
    if ((rc = util_open_data(&m, o->data, "train", &d, &e))) goto out;
    const uint64_t split_seed = mtc_train_split_seed(&(mtc_train_cfg){.seed = c->seed, .val_seed = o->val_seed});
    if ((rc = mtc_data_split(d.n, d.group, o->val, split_seed, &tidx, &nt, &vidx, &nv, &e))) goto out;
    if (nv == 0) { rc = mtc_err_set(&e, MTC_EINPUT, "--val %g: the validation split is empty", o->val); goto out; }
    if (o->val_samples > 0 && nv > o->val_samples) nv = o->val_samples;
    cli_progress(c, "sensitivity: %s on %lld validation samples of %s, %d sparsities", o->sensitivity,
                 (long long)nv, d.name, ngrid);
    if ((rc = mtc_prune_sensitivity_scan(&m, &d, vidx, nv, grid, ngrid, &s, &e))) goto out;
    mtc_jw w;
    mtc_jw_init(&w);
    sens_json(&w, &m, &s, o->sensitivity, &d, nv);
    if (w.oom) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
    else if (o->report_json) {
        size_t len = strlen(w.buf);
        char *txt = malloc(len + 2);
        if (!txt) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
        else {
            memcpy(txt, w.buf, len);
            txt[len] = '\n';
            rc = mtc_write_file_atomic(o->report_json, txt, len + 1, &e);
            free(txt);
        }
    }
    if (!rc) {
        if (c->json) printf("%s\n", w.buf);
        else {
            printf("per-task sensitivity of %s (%lld validation samples of %s; each layer pruned alone)\n",
                   o->sensitivity, (long long)nv, d.name);
            sens_table(&m, &s);
            if (o->report_json) printf("\nwrote %s\n", o->report_json);
        }
    }
    mtc_jw_free(&w);
out:
    mtc_prune_sensitivity_free(&s);
    free(tidx);
    free(vidx);
    mtc_data_free(&d);
    mtc_model_free(&m);
    return rc ? cli_fail("prune", &e) : 0;
}

/* ---- pruning --------------------------------------------------------------------- */

static void json_primary(mtc_jw *w, const char *key, const mtc_model *m, const double *v)
{
    mtc_jw_key(w, key);
    mtc_jw_obj(w);
    for (int t = 0; t < m->spec.ntasks; t++) mtc_jw_knum(w, m->spec.tasks[t].name, v[t]);
    mtc_jw_obj_end(w);
}

static void json_layers(mtc_jw *w, mtc_model *m)
{
    mtc_layer **ls = NULL;
    int n = 0;
    mtc_jw_key(w, "layers");
    mtc_jw_arr(w);
    if (mtc_prune_layers(m, &ls, &n, NULL) == 0)
        for (int i = 0; i < n; i++) {
            int64_t z;
            double sp = mtc_prune_layer_sparsity(m, ls[i], &z);
            mtc_jw_obj(w);
            mtc_jw_kstr(w, "name", ls[i]->name);
            mtc_jw_kint(w, "weights", ls[i]->nw);
            mtc_jw_kint(w, "zeros", z);
            mtc_jw_knum(w, "sparsity", sp);
            mtc_jw_obj_end(w);
        }
    mtc_jw_arr_end(w);
    free(ls);
}

static void print_layers(mtc_model *m)
{
    mtc_layer **ls = NULL;
    int n = 0;
    if (mtc_prune_layers(m, &ls, &n, NULL)) return;
    printf("%-28s %10s %10s %9s\n", "layer", "weights", "nonzero", "sparsity");
    for (int i = 0; i < n; i++) {
        int64_t z;
        double sp = mtc_prune_layer_sparsity(m, ls[i], &z);
        printf("%-28s %10lld %10lld %8.2f%%\n", ls[i]->name, (long long)ls[i]->nw, (long long)(ls[i]->nw - z), 100 * sp);
    }
    free(ls);
}

static void print_before_after(const mtc_model *m, const char *what, const double *b, const double *a,
                               const mtc_dataset *d, const int64_t *idx, int64_t n)
{
    printf("%-12s %10s %10s %8s %9s  (%s)\n", "task", "before", "after", "drop", "labelled", what);
    for (int t = 0; t < m->spec.ntasks; t++) {
        int reg = m->spec.tasks[t].kind == MTC_TASK_REG;
        double drop = mtc_prune_drop(m->spec.tasks[t].kind, b[t], a[t]);
        long long lab = (long long)util_labelled(m, d, idx, n, t);
        if (reg) printf("%-12s %10.4f %10.4f %8.4f %9lld  (MAE)\n", m->spec.tasks[t].name, b[t], a[t], drop, lab);
        else printf("%-12s %9.2f%% %9.2f%% %7.2fpt %9lld\n", m->spec.tasks[t].name, 100 * b[t], 100 * a[t], drop, lab);
    }
}

static int cmd_prune_main(const char *in_path, prune_opts *o, const cli_common *c)
{
    mtc_err e = {0};
    mtc_model m, pm;
    memset(&pm, 0, sizeof pm);
    mtc_dataset d, dt;
    memset(&d, 0, sizeof d);
    memset(&dt, 0, sizeof dt);
    mtc_soft soft;
    memset(&soft, 0, sizeof soft);
    int have_soft = 0, structured = o->structured != NULL, rc;
    double val_b[MTC_MAX_TASKS] = {0}, val_a[MTC_MAX_TASKS] = {0}, test_b[MTC_MAX_TASKS] = {0},
           test_a[MTC_MAX_TASKS] = {0};
    int64_t *tidx = NULL, *vidx = NULL, nt = 0, nv = 0, removed = 0;
    double t_before = -1, t_after = -1;
    mtc_prune_result res;
    memset(&res, 0, sizeof res);
    mtc_prune_cfg pc;
    mtc_prune_cfg_default(&pc);
    mtc_struct_cfg sc;
    mtc_struct_cfg_default(&sc);
    util_train_opts to;
    util_train_opts_default(&to);

    if ((rc = mtc_model_load(in_path, &m, NULL, &e))) return cli_fail("prune", &e);
    mtc_model *outm = &m;
    /* settings */
    if (!structured && o->sparsity < 0) {
        rc = mtc_err_set(&e, MTC_EINPUT, "one of --sparsity S or --structured neurons|channels is required");
        goto out;
    }
    int scope = name_index(scope_names, 2, o->scope);
    if (scope < 0) {
        rc = mtc_err_set(&e, MTC_EINPUT, "--scope %s: expected global or layer", o->scope);
        goto out;
    }
    if (strcmp(o->schedule, "oneshot") && strcmp(o->schedule, "agp")) {
        rc = mtc_err_set(&e, MTC_EINPUT, "--schedule %s: expected oneshot or agp", o->schedule);
        goto out;
    }
    int agp = !strcmp(o->schedule, "agp");
    if (structured) {
        if (!strcmp(o->structured, "neurons")) sc.kind = MTC_STRUCT_NEURONS;
        else if (!strcmp(o->structured, "channels")) sc.kind = MTC_STRUCT_CHANNELS;
        else { rc = mtc_err_set(&e, MTC_EINPUT, "--structured %s: expected neurons or channels", o->structured); goto out; }
        sc.rank = name_index(rank_names, 3, o->rank);
        if (sc.rank < 0) { rc = mtc_err_set(&e, MTC_EINPUT, "--rank %s: expected l1, l2 or taylor", o->rank); goto out; }
        sc.keep = o->keep;
        if (agp || o->sparsity >= 0 || o->protect) {
            rc = mtc_err_set(&e, MTC_EINPUT, "--structured does not combine with --sparsity, --schedule agp or --protect");
            goto out;
        }
    }
    int need_data = agp || o->finetune_epochs > 0 || o->protect || (structured && sc.rank == MTC_RANK_TAYLOR) || o->soft;
    if (need_data && !o->data) {
        rc = mtc_err_set(&e, MTC_EINPUT, "--data NAME is required for fine-tuning, --protect, --soft and --rank taylor");
        goto out;
    }
    to.optimizer = o->optimizer;
    to.lr = o->lr;
    to.batch = o->batch;
    to.val = o->val;
    to.val_seed = o->val_seed;
    to.epochs = o->finetune_epochs > 0 ? o->finetune_epochs : 1;
    if ((rc = util_train_cfg(&to, c, NULL, &pc.train, &e))) goto out;
    if (to.shard_data) { /* the pruning scores need every sample on every rank */
        rc = mtc_err_set(&e, MTC_EINPUT, "--shard-data: not supported by prune (its fine-tuning runs data parallel without it)");
        goto out;
    }
    pc.train.keep_standardisation = 1;
    pc.train.progress = util_progress;
    pc.train.progress_ctx = (void *)c;
    for (int t = 0; t < MTC_MAX_TASKS; t++) { pc.train.kd_T[t] = o->temperature; pc.train.kd_alpha[t] = o->alpha; }
    pc.sparsity = o->sparsity < 0 ? 0 : o->sparsity;
    pc.scope = scope;
    pc.agp = agp;
    pc.steps = o->steps;
    pc.initial_sparsity = o->initial;
    pc.finetune_epochs = o->finetune_epochs;
    pc.progress = say_line;
    pc.progress_ctx = (void *)c;
    if ((rc = mtc_prune_protect_parse(&m, o->protect, &pc.protect, &e))) goto out;

    /* before */
    if (o->data) {
        if ((rc = util_open_data(&m, o->data, "train", &d, &e))) goto out;
        if ((rc = mtc_data_split(d.n, d.group, pc.train.val_frac, mtc_train_split_seed(&pc.train), &tidx, &nt, &vidx,
                                 &nv, &e)))
            goto out;
        if (nv > 0 && (rc = mtc_prune_eval_primary(&m, &d, vidx, nv, val_b, &e))) goto out;
        if (!o->no_test) {
            if ((rc = util_open_data(&m, o->data, "test", &dt, &e))) goto out;
            if ((rc = mtc_prune_eval_primary(&m, &dt, NULL, 0, test_b, &e))) goto out;
        }
        if (o->soft) {
            if ((rc = mtc_soft_read(o->soft, &m, &d, 0, &soft, NULL, NULL, &e))) goto out;
            have_soft = 1;
            pc.train.soft = &soft;
        }
    }
    int64_t params_before = m.nparams, z0, tot0;
    double sp_before = mtc_prune_sparsity(&m, &z0, &tot0);

    /* prune */
    if (structured) {
        if (sc.rank == MTC_RANK_TAYLOR) { sc.d = &d; sc.idx = tidx; sc.n = nt; sc.batches = o->taylor_batches; }
        if (dt.n > 0) t_before = infer_seconds(&m, &dt, dt.n);
        if ((rc = mtc_prune_structured(&m, &sc, &pm, &removed, &e))) goto out;
        outm = &pm;
        cli_progress(c, "structured: removed %lld %s, %lld -> %lld parameters", (long long)removed, o->structured,
                     (long long)m.nparams, (long long)pm.nparams);
        if (o->finetune_epochs > 0) {
            mtc_train_cfg tc = pc.train;
            tc.epochs = o->finetune_epochs;
            mtc_train_result tr;
            if ((rc = mtc_train(&pm, &d, &tc, &tr, &e))) goto out;
            free(tr.history_json);
        }
        if (dt.n > 0) t_after = infer_seconds(&pm, &dt, dt.n);
    } else {
        if (!o->data) rc = mtc_prune_magnitude(&m, pc.sparsity, pc.scope, NULL, &e);
        else rc = mtc_prune_run(&m, &d, &pc, &res, &e);
        if (rc) goto out;
    }
    if (o->data) {
        if (nv > 0 && (rc = mtc_prune_eval_primary(outm, &d, vidx, nv, val_a, &e))) goto out;
        if (dt.n > 0 && (rc = mtc_prune_eval_primary(outm, &dt, NULL, 0, test_a, &e))) goto out;
    }
    int64_t z1, tot1;
    double sp_after = mtc_prune_sparsity(outm, &z1, &tot1);

    /* metadata */
    char phash[17];
    util_file_hash(in_path, phash);
    const char *method = structured ? "structured" : agp ? "agp" : "magnitude";
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "producer", "mtc prune");
    mtc_jw_kstr(&w, "version", MTC_VERSION);
    mtc_jw_key(&w, "parent");
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "path", in_path);
    mtc_jw_kstr(&w, "hash", phash);
    mtc_jw_obj_end(&w); /* lineage by hash; the parent's metadata stays in the parent */
    if (o->data) util_json_data(&w, "data", &d);
    mtc_jw_key(&w, "prune");
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "method", method);
    if (structured) {
        mtc_jw_kstr(&w, "structured", o->structured);
        mtc_jw_kstr(&w, "rank", o->rank);
        mtc_jw_knum(&w, "keep", o->keep);
        mtc_jw_kint(&w, "units_removed", removed);
        mtc_jw_kint(&w, "parameters_before", params_before);
        mtc_jw_kint(&w, "parameters_after", pm.nparams);
    } else {
        mtc_jw_kstr(&w, "scope", o->scope);
        mtc_jw_knum(&w, "target_sparsity", pc.sparsity);
        if (agp) {
            mtc_jw_kint(&w, "steps", pc.steps);
            mtc_jw_kint(&w, "steps_done", res.steps_done);
            mtc_jw_knum(&w, "initial_sparsity", pc.initial_sparsity);
        }
        mtc_jw_kint(&w, "limited_by_budget", res.limited_by_budget);
    }
    mtc_jw_knum(&w, "sparsity_before", sp_before);
    mtc_jw_knum(&w, "sparsity", sp_after);
    mtc_jw_kint(&w, "finetune_epochs", o->finetune_epochs);
    if (o->soft) mtc_jw_kstr(&w, "soft", o->soft);
    if (o->protect) mtc_jw_kstr(&w, "protect", o->protect);
    mtc_jw_kint(&w, "seed", (int64_t)c->seed);
    mtc_jw_obj_end(&w);
    json_layers(&w, outm);
    if (o->data) {
        mtc_jw_key(&w, "results");
        mtc_jw_obj(&w);
        if (nv > 0) { json_primary(&w, "val_before", outm, val_b); json_primary(&w, "val_after", outm, val_a); }
        if (dt.n > 0) { json_primary(&w, "test_before", outm, test_b); json_primary(&w, "test_after", outm, test_a); }
        mtc_jw_obj_end(&w);
        /* headline test metric per task, as `mtc plot size-accuracy` reads it */
        if (dt.n > 0) json_primary(&w, "metrics", outm, test_a);
    }
    mtc_jw_obj_end(&w);
    rc = w.oom ? mtc_err_set(&e, MTC_ENOMEM, "out of memory") : mtc_model_save(outm, o->out, w.buf, &e);
    mtc_jw_free(&w);
    if (!rc && o->spec_out && outm->spec_text)
        rc = mtc_write_file_atomic(o->spec_out, outm->spec_text, strlen(outm->spec_text), &e);
    if (rc) goto out;

    /* report */
    int64_t in_bytes = file_bytes(in_path), out_bytes = file_bytes(o->out), wb0, mb0, wb1, mb1;
    stored_weight_bytes(in_path, &wb0, &mb0);
    stored_weight_bytes(o->out, &wb1, &mb1);
    if (c->json) {
        mtc_jw j;
        mtc_jw_init(&j);
        mtc_jw_obj(&j);
        mtc_jw_kstr(&j, "model", o->out);
        mtc_jw_kstr(&j, "parent", in_path);
        mtc_jw_kstr(&j, "method", method);
        mtc_jw_knum(&j, "sparsity", sp_after);
        mtc_jw_kint(&j, "parameters_before", params_before);
        mtc_jw_kint(&j, "parameters_after", outm->nparams);
        mtc_jw_kint(&j, "nonzero_weights_before", tot0 - z0);
        mtc_jw_kint(&j, "nonzero_weights_after", tot1 - z1);
        mtc_jw_kint(&j, "file_bytes_before", in_bytes);
        mtc_jw_kint(&j, "file_bytes_after", out_bytes);
        mtc_jw_kint(&j, "weight_bytes_stored_before", wb0);
        mtc_jw_kint(&j, "weight_bytes_stored_after", wb1);
        mtc_jw_kint(&j, "mask_bytes_stored_after", mb1);
        if (t_before > 0 && t_after > 0) {
            mtc_jw_knum(&j, "infer_seconds_before", t_before);
            mtc_jw_knum(&j, "infer_seconds_after", t_after);
        }
        if (structured) mtc_jw_kstr(&j, "spec", outm->spec_text);
        json_layers(&j, outm);
        if (nv > 0) { json_primary(&j, "val_before", outm, val_b); json_primary(&j, "val_after", outm, val_a); }
        if (dt.n > 0) { json_primary(&j, "test_before", outm, test_b); json_primary(&j, "test_after", outm, test_a); }
        mtc_jw_obj_end(&j);
        printf("%s\n", j.buf);
        mtc_jw_free(&j);
    } else {
        printf("pruned %s -> %s (%s)\n", in_path, o->out, method);
        if (nv > 0) { printf("\nvalidation: %lld samples of %s\n", (long long)nv, d.name); print_before_after(outm, "validation", val_b, val_a, &d, vidx, nv); }
        if (dt.n > 0) { printf("\ntest: %lld samples of %s\n", (long long)dt.n, dt.name); print_before_after(outm, "test", test_b, test_a, &dt, NULL, dt.n); }
        printf("\n");
        print_layers(outm);
        printf("\nparameters %lld -> %lld; prunable weights nonzero %lld -> %lld (sparsity %.2f%% -> %.2f%%)\n",
               (long long)params_before, (long long)outm->nparams, (long long)(tot0 - z0), (long long)(tot1 - z1),
               100 * sp_before, 100 * sp_after);
        if (!structured && res.limited_by_budget)
            printf("--protect: stopped at sparsity %.2f%% (target %.2f%%) to stay within budget\n", 100 * sp_after,
                   100 * pc.sparsity);
        printf("file bytes %lld -> %lld (%.1f%%); stored weight bytes %lld -> %lld, masks %lld\n", (long long)in_bytes,
               (long long)out_bytes, in_bytes > 0 ? 100.0 * out_bytes / in_bytes : 0.0, (long long)wb0, (long long)wb1,
               (long long)mb1);
        if (t_before > 0 && t_after > 0)
            printf("inference over the test split: %.3f s -> %.3f s (%.2fx)\n", t_before, t_after, t_before / t_after);
        if (structured) printf("\nnew spec:\n%s", outm->spec_text);
    }
out:
    if (have_soft) mtc_soft_free(&soft);
    free(tidx);
    free(vidx);
    mtc_data_free(&d);
    mtc_data_free(&dt);
    if (pm.params) mtc_model_free(&pm);
    mtc_model_free(&m);
    return rc ? cli_fail("prune", &e) : 0;
}

int cmd_prune(int argc, char **argv)
{
    /* every default is the library's (prune, structured and training cfgs),
     * except the sensitivity grid, which only the CLI has */
    mtc_prune_cfg pd;
    mtc_struct_cfg sd;
    mtc_prune_cfg_default(&pd);
    mtc_struct_cfg_default(&sd);
    prune_opts o;
    memset(&o, 0, sizeof o);
    o.scope = scope_names[pd.scope];
    o.schedule = pd.agp ? "agp" : "oneshot";
    o.rank = rank_names[sd.rank];
    o.grid = "0.1,0.3,0.5,0.7,0.8,0.9,0.95";
    o.optimizer = mtc_optim_kind_name(pd.train.opt.kind);
    o.sparsity = -1; /* required unless --structured: no default */
    o.initial = (float)pd.initial_sparsity;
    o.keep = (float)sd.keep;
    o.lr = pd.train.sched.lr;
    o.val = (float)pd.train.val_frac;
    o.val_seed = pd.train.val_seed;
    o.temperature = pd.train.kd_T[0]; /* the same KD as mtc distill */
    o.alpha = pd.train.kd_alpha[0];
    o.steps = pd.steps;
    o.finetune_epochs = pd.finetune_epochs;
    o.batch = pd.train.batch;
    o.taylor_batches = sd.batches;
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"out", OPT_STR, &o.out, "output checkpoint (-o; required unless --sensitivity)", 1, 0},
        {"sparsity", OPT_FLOAT, &o.sparsity, "unstructured: fraction of prunable weights set to zero", 0, 0.999},
        {"scope", OPT_STR, &o.scope, "global | layer: rank weights over all layers or in each (default {default})", 1, 0},
        {"schedule", OPT_STR, &o.schedule, "oneshot | agp (Zhu & Gupta gradual pruning; default {default})", 1, 0},
        {"steps", OPT_INT, &o.steps, "AGP: pruning steps n (default {default})", 1, 1000},
        {"initial-sparsity", OPT_FLOAT, &o.initial, "AGP: s_i (default {default})", 0, 0.999},
        {"finetune-epochs", OPT_INT, &o.finetune_epochs, "fine-tune epochs per AGP step / after one-shot or structured pruning (default {default})", 0, 1000},
        {"soft", OPT_STR, &o.soft, "soft labels (.mtl from mtc label): KD fine-tuning", 1, 0},
        {"data", OPT_STR, &o.data, "data set (train split for fine-tuning/validation, test for the report)", 1, 0},
        {"structured", OPT_STR, &o.structured, "neurons | channels: remove whole units, write a smaller model", 1, 0},
        {"keep", OPT_FLOAT, &o.keep, "structured: fraction of units kept per layer (default {default})", 0.001, 1},
        {"rank", OPT_STR, &o.rank, "structured ranking: l1 | l2 | taylor (default {default})", 1, 0},
        {"taylor-batches", OPT_INT, &o.taylor_batches, "taylor: batches used for |w*grad| (default {default})", 1, 100000},
        {"protect", OPT_STR, &o.protect, "per-task budget in points, e.g. fashion=0.5,super=1", 1, 0},
        {"sensitivity", OPT_STR, &o.sensitivity, "MODEL: per-layer, per-task sensitivity scan instead of pruning", 1, 0},
        {"grid", OPT_STR, &o.grid, "sensitivity sparsities (default {default})", 1, 0},
        {"report-json", OPT_STR, &o.report_json, "sensitivity: write the table as JSON to FILE", 1, 0},
        {"val-samples", OPT_INT, &o.val_samples, "sensitivity: use at most N validation samples (0 = all)", 0, 100000000},
        {"spec-out", OPT_STR, &o.spec_out, "also write the output model's spec text to FILE", 1, 0},
        {"no-test", OPT_FLAG, &o.no_test, "skip the test-split evaluation", 1, 0},
        {"lr", OPT_FLOAT, &o.lr, "fine-tune learning rate (default {default})", 1e-9, 10},
        {"batch", OPT_INT, &o.batch, "fine-tune batch size (default {default})", 1, 65536},
        {"optimizer", OPT_STR, &o.optimizer, "fine-tune optimizer: adam | adamw | sgd (default {default})", 1, 0},
        {"val", OPT_FLOAT, &o.val, "validation fraction of the train split (default {default}; multifashion holds out whole digits)", 0, 0.89},
        {"val-seed", OPT_U64, &o.val_seed, "seed of the validation split (default: --seed)", 1, 0},
        {"temperature", OPT_FLOAT, &o.temperature, "KD temperature (default {default}, as mtc distill)", 0.01, 100},
        {"alpha", OPT_FLOAT, &o.alpha, "KD weight of the soft term (default {default}, as mtc distill)", 0, 1},
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse("prune",
                       "MODEL -o OUT (--sparsity S [--scope global|layer] [--schedule agp --steps N --finetune-epochs E "
                       "--soft soft.mtl --data NAME] | --structured neurons|channels --keep K [--rank l1|l2|taylor]) "
                       "[--protect task=pts]\n       mtc prune --sensitivity MODEL --data NAME [--grid LIST] [--report-json FILE]",
                       "Prune a model: unstructured magnitude (one shot or AGP with KD fine-tuning), structured "
                       "neuron/channel removal, per-task budgets and sensitivity.",
                       opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    cli_apply_common(&c);
    if (o.sensitivity) {
        if (npos) {
            fprintf(stderr, "mtc prune: --sensitivity takes the model as its value; unexpected '%s'\n", pos[0]);
            return 2;
        }
        return run_sensitivity(&o, &c);
    }
    if (npos != 1) {
        fprintf(stderr, "mtc prune: a model checkpoint is required (mtc prune MODEL -o OUT ...; see --help)\n");
        return 2;
    }
    if (!o.out) {
        fprintf(stderr, "mtc prune: -o OUT is required\n");
        return 2;
    }
    return cmd_prune_main(pos[0], &o, &c);
}
