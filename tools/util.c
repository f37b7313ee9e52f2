/*
 * util.c — shared CLI pieces: data for a model, training options, per-task
 * tables and JSON.
 */
#include "tools/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

int util_open_data(const mtc_model *m, const char *name, const char *split, mtc_dataset *d,
                   mtc_err *e)
{
    mtc_data_opts o;
    memset(&o, 0, sizeof o);
    o.inputs = m->spec.columns[0] ? m->spec.columns : NULL;
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        if (ts->from[0]) continue; /* derived: labels come from its source */
        mtc_csv_task *ct = &o.tasks[o.ntasks++];
        snprintf(ct->name, sizeof ct->name, "%s", ts->name);
        snprintf(ct->column, sizeof ct->column, "%s", ts->column[0] ? ts->column : ts->name);
        ct->kind = ts->kind;
        /* string classes keep the ids they had when the model was trained */
        ct->nclass_names = m->nclass_names[t];
        ct->class_names = m->class_names[t];
    }
    if (m->spec.h == m->spec.w && m->spec.c == 1) o.png_size = m->spec.h;
    o.missing = cli_missing_marker;
    o.impute_mean = cli_impute_mean;
    o.join = cli_join_column;
    o.allow_absent = util_unlabelled_ok;
    if (util_shard_data && !strcmp(split, "train") && mtc_comm_size() > 1)
        o.shard_count = mtc_comm_size(), o.shard_index = mtc_comm_rank();
    int rc = mtc_data_open(name, split, &o, d, e);
    if (rc) return rc;
    mtc_data_hash_shards(d); /* sharded: the whole split's hash on every rank */
    if ((rc = mtc_model_check_input(m, d, e))) mtc_data_free(d);
    return rc;
}

int util_unlabelled_ok;
int util_shard_data;

int64_t util_labelled(const mtc_model *m, const mtc_dataset *d, const int64_t *idx, int64_t n, int t)
{
    int32_t *lab = NULL;
    const float *tg = NULL;
    mtc_err e = {0};
    if (mtc_model_bind_task(m, t, d, &lab, &tg, &e)) return -1;
    int D = m->spec.tasks[t].dim;
    int64_t c = 0;
    if (!idx) n = d->n;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = idx ? idx[j] : j;
        c += lab ? lab[i] != MTC_LABEL_MISSING : mtc_row_labelled(tg + i * D, D);
    }
    free(lab);
    return c;
}

int util_rt_predict_all(mtc_rt *rt, const mtc_dataset *d, int batch, float **outs, mtc_err *e)
{
    const int np = mtc_comm_size(), r = mtc_comm_rank();
    if (np == 1) return mtc_rt_predict(rt, d, NULL, 0, batch, outs, e);
    const mtc_spec *s = &mtc_rt_model(rt)->spec;
    int64_t lo = d->n * r / np, hi = d->n * (r + 1) / np, *idx = malloc((size_t)(hi - lo + 1) * sizeof *idx);
    float *mine[MTC_MAX_TASKS] = {0};
    if (!idx) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    for (int64_t i = lo; i < hi; i++) idx[i - lo] = i;
    int rc = mtc_rt_predict(rt, d, idx, hi - lo, batch, mine, e);
    free(idx);
    enum { TAG = 23 };
    for (int t = 0; t < s->ntasks && !rc; t++) {
        size_t row = (size_t)s->tasks[t].dim * sizeof(float);
        if (r) { /* rank 0 gathers the rows in sample order */
            rc = mtc_comm_send(mine[t], (size_t)(hi - lo) * row, 0, TAG, e);
            continue;
        }
        if (!(outs[t] = malloc((size_t)(d->n ? d->n : 1) * row))) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); break; }
        memcpy(outs[t], mine[t], (size_t)(hi - lo) * row);
        for (int k = 1; k < np && !rc; k++) {
            int64_t a = d->n * k / np, b = d->n * (k + 1) / np;
            rc = mtc_comm_recv((char *)outs[t] + (size_t)a * row, (size_t)(b - a) * row, k, TAG, e);
        }
    }
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(mine[t]);
    return rc;
}

void util_report_data(const cli_common *c, const mtc_dataset *d)
{
    char line[1024];
    int k = snprintf(line, sizeof line, "data %s: %lld samples", d->split, (long long)d->n);
    if (mtc_data_sharded(d) && k < (int)sizeof line) /* --shard-data */
        k += snprintf(line + k, sizeof line - k, " (rank %d's shard: samples %lld..%lld of %lld)", mtc_comm_rank(),
                      (long long)d->shard_lo, (long long)(d->shard_lo + d->n - 1), (long long)d->split_n);
    for (int i = 0; i < d->nparts && k < (int)sizeof line; i++)
        k += snprintf(line + k, sizeof line - k, "%s%lld", i ? " + " : " = ", (long long)d->part_n[i]);
    for (int t = 0; t < d->ntasks && k < (int)sizeof line; t++)
        k += snprintf(line + k, sizeof line - k, "%s%s %lld", t ? ", " : "; labelled: ", d->tasks[t].name,
                      (long long)mtc_data_labelled(&d->tasks[t], NULL, d->n));
    cli_progress(c, "%s", line);
}

/* Every value from the library's defaults: the CLI has none of its own. */
void util_train_opts_default(util_train_opts *o)
{
    mtc_train_cfg d;
    mtc_optim_cfg sgd; /* --momentum and --nesterov are SGD's */
    mtc_train_cfg_default(&d);
    mtc_optim_cfg_default(&sgd, MTC_OPT_SGD);
    memset(o, 0, sizeof *o);
    o->optimizer = mtc_optim_kind_name(d.opt.kind);
    o->schedule = mtc_sched_kind_name(d.sched.kind);
    o->weighting = mtc_weighting_name(d.weighting);
    o->task_sampling = mtc_task_sampling_name(d.task_sampling);
    o->conflict_every = d.conflict_every;
    o->augment = util_augment_name(d.aug);
    o->checkpoint_every = d.checkpoint_every;
    o->lr = d.sched.lr;
    o->momentum = sgd.momentum;
    o->nesterov = sgd.nesterov;
    /* not given: the chosen optimizer's own default (AdamW decays, the others
     * do not), so --optimizer adamw alone is AdamW, not Adam */
    mtc_optim_cfg adam, adamw;
    mtc_optim_cfg_default(&adam, MTC_OPT_ADAM);
    mtc_optim_cfg_default(&adamw, MTC_OPT_ADAMW);
    o->weight_decay = -1.0f;
    snprintf(o->wd_help, sizeof o->wd_help,
             "AdamW decoupled decay / L2 for sgd,adam (default the optimizer's: adamw %g, adam and sgd %g)",
             adamw.weight_decay, adam.weight_decay);
    o->l1 = d.opt.l1;
    o->l2 = d.opt.l2;
    o->clip = d.opt.clip_norm;
    o->gamma = d.sched.gamma;
    o->min_lr = d.sched.min_lr;
    o->gradnorm_alpha = d.gradnorm_alpha;
    o->val = (float)d.val_frac;
    o->val_seed = d.val_seed;
    o->epochs = d.epochs;
    o->batch = d.batch;
    o->warmup = (int)d.sched.warmup;
    o->step_size = (int)d.sched.step_size;
    o->patience = d.patience;
}

int util_train_opts_spec(util_train_opts *o, const mtc_spec *s, const char *path, const char *cmd)
{
    const cli_opt opts[] = {UTIL_TRAIN_OPTS(o), CLI_END};
    for (int i = 0; i < s->ntrain; i++) {
        const char *k = s->train[i].key, *v = s->train[i].val;
        const cli_opt *op = opts;
        while (op->name && strcmp(op->name, k)) op++;
        if (!op->name || !strcmp(k, "resume")) {
            fprintf(stderr, "mtc %s: %s:%d: [train]: unknown key '%s' (expected an option of "
                            "mtc train without the dashes: epochs, lr, schedule, augment, ...)\n",
                    cmd, path, s->train[i].line, k);
            return 2;
        }
        char where[600], flag[40];
        snprintf(where, sizeof where, "%s: %s:%d: [train]", cmd, path, s->train[i].line);
        snprintf(flag, sizeof flag, "--%s", k);
        char *argv[3] = {(char *)cmd, flag, (char *)v};
        int argc = 3, npos;
        if (op->type == OPT_FLAG) {
            if (strcmp(v, "true") && strcmp(v, "false")) {
                fprintf(stderr, "mtc %s: %s = %s: expected true or false\n", where, k, v);
                return 2;
            }
            *(int *)op->ptr = 0;
            if (!strcmp(v, "false")) continue;
            argc = 2;
        }
        if (cli_parse(where, "", "", opts, argc, argv, NULL, 0, &npos)) return 2;
    }
    return 0;
}

int util_train_cfg(util_train_opts *o, const cli_common *c, const char *out, mtc_train_cfg *cfg, mtc_err *e)
{
    mtc_train_cfg_default(cfg);
    if (o->checkpoint_every > 0 && out) {
        snprintf(o->state_path, sizeof o->state_path, "%s.state", out);
        cfg->checkpoint_path = o->state_path;
        cfg->checkpoint_every = o->checkpoint_every;
    }
    cfg->resume_path = o->resume;
    cfg->overlap = o->overlap;
    util_shard_data = o->shard_data;
    cfg->step_progress = util_step_progress;
    int kind = mtc_optim_kind_parse(o->optimizer);
    if (kind < 0) return mtc_err_set(e, MTC_EINPUT, "--optimizer %s: expected adam, adamw or sgd", o->optimizer);
    mtc_optim_cfg_default(&cfg->opt, kind);
    cfg->opt.momentum = o->momentum;
    cfg->opt.nesterov = o->nesterov;
    if (o->weight_decay >= 0) cfg->opt.weight_decay = o->weight_decay;
    cfg->opt.l1 = o->l1;
    cfg->opt.l2 = o->l2;
    cfg->opt.clip_norm = o->clip;
    int sk = mtc_sched_kind_parse(o->schedule);
    if (sk < 0) return mtc_err_set(e, MTC_EINPUT, "--schedule %s: expected const, step or cosine", o->schedule);
    cfg->sched.kind = sk;
    cfg->sched.lr = o->lr;
    cfg->sched.warmup = o->warmup;
    cfg->sched.step_size = o->step_size;
    cfg->sched.gamma = o->gamma;
    cfg->sched.min_lr = o->min_lr;
    cfg->weighting = mtc_weighting_parse(o->weighting);
    if (cfg->weighting < 0)
        return mtc_err_set(e, MTC_EINPUT, "--weighting %s: expected fixed, uncertainty, gradnorm or dwa", o->weighting);
    char ts[64];
    snprintf(ts, sizeof ts, "%s", o->task_sampling);
    char *colon = strchr(ts, ':');
    if (colon) *colon = 0;
    cfg->task_sampling = mtc_task_sampling_parse(ts);
    if (cfg->task_sampling < 0 || (colon && cfg->task_sampling != MTC_SAMPLE_TEMPERATURE))
        return mtc_err_set(e, MTC_EINPUT, "--task-sampling %s: expected proportional, round-robin or temperature[:T]",
                           o->task_sampling);
    if (colon) {
        char *end;
        double T = strtod(colon + 1, &end);
        if (*end || !(T > 0 && T <= 1000))
            return mtc_err_set(e, MTC_EINPUT, "--task-sampling %s: T must be a number in (0, 1000]", o->task_sampling);
        cfg->sampling_temp = (float)T;
    }
    cfg->conflict_every = o->conflict_every;
    cfg->gradnorm_alpha = o->gradnorm_alpha;
    cfg->val_frac = o->val;
    cfg->val_seed = o->val_seed;
    cfg->patience = o->patience;
    cfg->epochs = o->epochs;
    cfg->batch = o->batch;
    cfg->seed = c->seed;
    return util_parse_augment(o->augment, &cfg->aug, e);
}

const char *util_augment_name(int aug)
{
    aug &= MTC_AUG_SHIFT | MTC_AUG_FLIP;
    return aug == (MTC_AUG_SHIFT | MTC_AUG_FLIP) ? "shift,flip" : aug == MTC_AUG_SHIFT ? "shift"
         : aug == MTC_AUG_FLIP ? "flip" : "none";
}

int util_parse_augment(const char *s, int *aug, mtc_err *e)
{
    *aug = 0;
    if (!strcmp(s, "none")) return 0;
    char buf[64];
    if (strlen(s) >= sizeof buf) return mtc_err_set(e, MTC_EINPUT, "--augment: too long");
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "shift")) *aug |= MTC_AUG_SHIFT;
        else if (!strcmp(tok, "flip")) *aug |= MTC_AUG_FLIP;
        else return mtc_err_set(e, MTC_EINPUT, "--augment %s: expected none, shift, flip or shift,flip", s);
    }
    if (!*aug) return mtc_err_set(e, MTC_EINPUT, "--augment %s: expected none, shift, flip or shift,flip", s);
    return 0;
}

void util_json_training(mtc_jw *w, const mtc_model *m, const util_train_opts *o, const cli_common *c,
                        const mtc_train_cfg *cfg, const mtc_train_result *res)
{
    mtc_jw_key(w, "train");
    mtc_jw_obj(w);
    mtc_jw_kint(w, "epochs", cfg->epochs);
    mtc_jw_kint(w, "epochs_run", res->epochs_run);
    mtc_jw_kint(w, "best_epoch", res->best_epoch);
    mtc_jw_kint(w, "batch", cfg->batch);
    mtc_jw_knum(w, "lr", cfg->sched.lr);
    mtc_jw_kstr(w, "optimizer", o->optimizer);
    mtc_jw_kstr(w, "schedule", o->schedule);
    mtc_jw_kstr(w, "weighting", o->weighting);
    mtc_jw_kstr(w, "task_sampling", mtc_task_sampling_name(cfg->task_sampling));
    if (cfg->task_sampling == MTC_SAMPLE_TEMPERATURE) mtc_jw_knum(w, "sampling_temp", cfg->sampling_temp);
    mtc_jw_kint(w, "seed", (int64_t)c->seed);
    mtc_jw_knum(w, "val", cfg->val_frac);
    mtc_jw_kint(w, "val_seed", (int64_t)mtc_train_split_seed(cfg));
    mtc_jw_kint(w, "threads", c->threads);
    mtc_jw_obj_end(w);
    mtc_jw_key(w, "task_weights");
    mtc_jw_obj(w);
    for (int t = 0; t < m->spec.ntasks; t++) mtc_jw_knum(w, m->spec.tasks[t].name, res->weight[t]);
    mtc_jw_obj_end(w);
    mtc_jw_key(w, "history");
    mtc_jw_raw(w, res->history_json ? res->history_json : "[]");
}

void util_step_progress(void *ctx, int epoch, int epochs, int64_t done, int64_t n, double seconds)
{
    const cli_common *c = ctx;
    if ((c && c->quiet) || !isatty(2) || seconds <= 0 || mtc_comm_rank() > 0) return;
    double sps = done / seconds, left = (n - done) / (sps > 0 ? sps : 1);
    fprintf(stderr, "\r\033[Kepoch %d/%d  %3.0f%%  %.0f samples/s  epoch ETA %.0fs", epoch, epochs,
            100.0 * done / n, sps, left);
}

void util_progress(void *ctx, const mtc_epoch_stats *s)
{
    const cli_common *c = ctx;
    if ((c && c->quiet) || mtc_comm_rank() > 0) return; /* rank 0 reports */
    if (isatty(2)) fprintf(stderr, "\r\033[K"); /* replace the in-epoch line */
    char line[1024];
    int n = snprintf(line, sizeof line, "epoch %d/%d  loss", s->epoch, s->epochs);
    for (int t = 0; t < s->ntasks && n < 900; t++)
        n += snprintf(line + n, sizeof line - n, " %s %.4f", s->task_names[t], s->loss[t]);
    n += snprintf(line + n, sizeof line - n, "  w");
    for (int t = 0; t < s->ntasks && n < 900; t++)
        n += snprintf(line + n, sizeof line - n, "%s%.3f", t ? "/" : " ", s->weight[t]);
    n += snprintf(line + n, sizeof line - n, "  val");
    for (int t = 0; t < s->ntasks && n < 900; t++) {
        if (!isfinite(s->val_metric[t])) { n += snprintf(line + n, sizeof line - n, " -"); continue; }
        int acc = strcmp(s->val_metric_name[t], "accuracy") == 0;
        n += snprintf(line + n, sizeof line - n, acc ? " %s %.2f%%" : " %s mae %.4f", s->task_names[t],
                      acc ? 100 * s->val_metric[t] : s->val_metric[t]);
    }
    n += snprintf(line + n, sizeof line - n, "  %.0f samples/s  ETA %.0fs", s->samples_per_s, s->eta_s);
    if (mtc_comm_size() > 1 && n < (int)sizeof line) /* checked equal on every rank */
        snprintf(line + n, sizeof line - n, "  params %016llx on all %d ranks", (unsigned long long)s->param_hash,
                 mtc_comm_size());
    fprintf(stderr, "%s\n", line);
}

void util_print_eval(FILE *f, const mtc_model *m, const mtc_task_eval *ev)
{
    fprintf(f, "%-12s %-4s %9s %9s %9s %9s %9s %9s\n", "task", "kind", "accuracy", "f1", "auc", "mae", "mse",
            "labelled");
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_eval *x = &ev[t];
        const char *name = m->spec.tasks[t].name, *kind = mtc_task_kind_name(x->kind);
        if (x->kind == MTC_TASK_CLS)
            fprintf(f, "%-12s %-4s %8.2f%% %9.4f %9.4f %9s %9s", name, kind, 100 * x->cls.accuracy, x->cls.f1,
                    x->cls.auc, "-", "-");
        else if (x->kind == MTC_TASK_BIN)
            fprintf(f, "%-12s %-4s %8.2f%% %9.4f %9.4f %9s %9s", name, kind, 100 * x->bin.accuracy, x->bin.f1,
                    x->bin.auc, "-", "-");
        else
            fprintf(f, "%-12s %-4s %9s %9s %9s %9.4f %9.4f", name, kind, "-", "-", "-", x->reg.mae, x->reg.mse);
        fprintf(f, " %9lld\n", (long long)x->n);
    }
}

void util_json_eval(mtc_jw *w, const mtc_model *m, const mtc_task_eval *ev)
{
    mtc_jw_obj(w);
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_eval *x = &ev[t];
        mtc_jw_key(w, m->spec.tasks[t].name);
        mtc_jw_obj(w);
        mtc_jw_kstr(w, "kind", mtc_task_kind_name(x->kind));
        mtc_jw_kint(w, "labelled", x->n);
        if (x->kind == MTC_TASK_CLS) {
            mtc_jw_knum(w, "accuracy", x->cls.accuracy);
            mtc_jw_knum(w, "precision", x->cls.precision);
            mtc_jw_knum(w, "recall", x->cls.recall);
            mtc_jw_knum(w, "f1", x->cls.f1);
            mtc_jw_knum(w, "auc", x->cls.auc);
            mtc_jw_knum(w, "loss", x->cls.loss);
            mtc_jw_key(w, "confusion");
            mtc_jw_arr(w);
            for (int i = 0; i < x->cls.K; i++) {
                mtc_jw_arr(w);
                for (int j = 0; j < x->cls.K; j++) mtc_jw_int(w, x->cls.confusion[i * x->cls.K + j]);
                mtc_jw_arr_end(w);
            }
            mtc_jw_arr_end(w);
        } else if (x->kind == MTC_TASK_BIN) {
            mtc_jw_knum(w, "accuracy", x->bin.accuracy);
            mtc_jw_knum(w, "f1", x->bin.f1);
            mtc_jw_knum(w, "auc", x->bin.auc);
            mtc_jw_knum(w, "loss", x->bin.loss);
        } else {
            mtc_jw_knum(w, "mae", x->reg.mae);
            mtc_jw_knum(w, "mse", x->reg.mse);
            mtc_jw_knum(w, "r2", x->reg.r2);
        }
        mtc_jw_obj_end(w);
    }
    mtc_jw_obj_end(w);
}

void util_json_data(mtc_jw *w, const char *key, const mtc_dataset *d)
{
    char h[17];
    snprintf(h, sizeof h, "%016llx", (unsigned long long)d->hash);
    mtc_jw_key(w, key);
    mtc_jw_obj(w);
    mtc_jw_kstr(w, "name", d->name);
    mtc_jw_kstr(w, "split", d->split);
    mtc_jw_kint(w, "n", mtc_data_sharded(d) ? d->split_n : d->n); /* sharded: the whole split's */
    mtc_jw_kstr(w, "hash", h);
    mtc_jw_obj_end(w);
}

void util_file_hash(const char *path, char out[17])
{
    uint64_t h;
    out[0] = 0;
    if (mtc_file_hash(path, &h, NULL) == 0) snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static int is_onnx(const char *path)
{
    size_t n = strlen(path);
    return n > 5 && !strcasecmp(path + n - 5, ".onnx");
}

int util_model_load(const char *path, mtc_model *m, mtc_err *e)
{
    if (!is_onnx(path)) return mtc_model_load(path, m, NULL, e);
    return mtc_onnx_import(path, NULL, m, NULL, 0, e);
}

int util_rt_load(const char *path, mtc_rt **rt, mtc_err *e)
{
    *rt = NULL;
    if (!is_onnx(path)) return mtc_rt_load(path, rt, e);
    mtc_model m;
    int rc = mtc_onnx_import(path, NULL, &m, NULL, 0, e);
    if (rc) return rc;
    rc = mtc_rt_from_model(&m, path, rt, e);
    mtc_model_free(&m);
    struct stat st;
    if (!rc && stat(path, &st) == 0) mtc_rt_set_file_bytes(*rt, st.st_size);
    return rc;
}

double util_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void util_report_comm(const cli_common *c, double train_s)
{
    if (mtc_comm_size() < 2) return;
    double cs, waited;
    int64_t bytes;
    mtc_comm_sum_stats(&cs, &bytes, &waited);
    cli_progress(c, "MPI: %d ranks; rank 0 spent %.2f s of %.2f s training in the gradient sums (%.1f%%), sent %.1f MB",
                 mtc_comm_size(), cs, train_s, train_s > 0 ? 100.0 * cs / train_s : 0.0, (double)bytes / 1e6);
    if (waited > 0)
        cli_progress(c, "MPI: --overlap: the sums ran beside the backward pass; training waited %.2f s for them "
                        "after it (%.1f%%)", waited, train_s > 0 ? 100.0 * waited / train_s : 0.0);
}
