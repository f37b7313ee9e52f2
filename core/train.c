/*
 * train.c — the multi-task training loop and per-task evaluation.
 *
 * One loop serves plain training, distillation (cfg->soft: per-task KD loss
 * against stored teacher outputs) and pruning fine-tunes (m->mask re-applied
 * after every step so pruned weights stay exactly zero). Buffers are
 * allocated once per call; the step itself does not allocate.
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *weighting_names[] = {"fixed", "uncertainty", "gradnorm", "dwa"};

int mtc_weighting_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, weighting_names[i])) return i;
    return -1;
}

const char *mtc_weighting_name(int w)
{
    return (unsigned)w < 4 ? weighting_names[w] : "?";
}

static const char *const sampling_names[] = {"proportional", "round-robin", "temperature"};

int mtc_task_sampling_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, sampling_names[i])) return i;
    return -1;
}

const char *mtc_task_sampling_name(int k)
{
    return (unsigned)k < 3 ? sampling_names[k] : "?";
}

/* Every default of a training run, the CLI's included: `mtc train`,
 * `mtc distill` and `mtc prune` start from these values and print them in
 * --help (tools/util.c util_train_opts_default). */
void mtc_train_cfg_default(mtc_train_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->epochs = 5;
    c->batch = 128;
    mtc_optim_cfg_default(&c->opt, MTC_OPT_ADAM);
    c->sched.kind = MTC_SCHED_CONST;
    c->sched.lr = 1e-3f;
    c->sched.step_size = 1000;
    c->sched.gamma = 0.1f;
    c->gradnorm_alpha = 1.5f;
    c->weight_lr = 0.025f;
    c->dwa_temp = 2.0f;
    c->task_sampling = MTC_SAMPLE_PROPORTIONAL;
    c->conflict_every = 50;
    c->sampling_temp = 2.0f;
    c->val_frac = 0.1;
    c->seed = 1;
    /* KD T = 2, alpha = 0.5: chosen by a sweep on the validation split,
     * where T = 4, alpha = 0.9 lost to scratch training (docs/distill.md) */
    for (int t = 0; t < MTC_MAX_TASKS; t++) { c->kd_T[t] = 2.0f; c->kd_alpha[t] = 0.5f; }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- evaluation -------------------------------------------------------------- */

double mtc_task_eval_primary(const mtc_task_eval *ev, const char **name)
{
    if (ev->kind == MTC_TASK_REG) {
        if (name) *name = "mae";
        return ev->reg.mae;
    }
    if (name) *name = "accuracy";
    return ev->kind == MTC_TASK_CLS ? ev->cls.accuracy : ev->bin.accuracy;
}

void mtc_task_eval_free(mtc_task_eval *ev, int ntasks)
{
    for (int t = 0; t < ntasks; t++)
        if (ev[t].kind == MTC_TASK_CLS) mtc_cls_metrics_free(&ev[t].cls);
}

int mtc_evaluate_outputs(const mtc_model *m, const mtc_dataset *d, const int64_t *idx, int64_t n,
                         float *const *outs, mtc_task_eval *out, mtc_err *e)
{
    int rc = 0;
    if (!idx) n = d->n;
    memset(out, 0, sizeof(mtc_task_eval) * (size_t)m->spec.ntasks);
    for (int t = 0; t < m->spec.ntasks && !rc; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        int32_t *lab_all = NULL;
        const float *targ_all = NULL;
        if ((rc = mtc_model_bind_task(m, t, d, &lab_all, &targ_all, e))) break;
        out[t].kind = ts->kind;
        out[t].dim = ts->dim;
        int D = ts->dim;
        /* the metrics are over the samples labelled for the task */
        int64_t nl = 0;
        const float **rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
        int32_t *lab = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
        float *tg = malloc((size_t)(n ? n : 1) * (size_t)D * sizeof(float));
        if (!rows || !lab || !tg) {
            free(rows); free(lab); free(tg); free(lab_all);
            return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t s = idx ? idx[i] : i;
            if (lab_all) {
                if (lab_all[s] == MTC_LABEL_MISSING) continue;
                lab[nl] = lab_all[s];
            } else {
                if (!mtc_row_labelled(targ_all + s * D, D)) continue;
                memcpy(tg + nl * D, targ_all + s * D, (size_t)D * sizeof(float));
            }
            rows[nl++] = outs[t] + i * D;
        }
        float *o = (float *)outs[t];
        if (nl < n) { /* compacted copy of the outputs */
            if (!(o = malloc((size_t)(nl ? nl : 1) * (size_t)D * sizeof(float)))) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
            for (int64_t i = 0; o && i < nl; i++) memcpy(o + i * D, rows[i], (size_t)D * sizeof(float));
        }
        out[t].n = nl;
        if (!rc && nl && ts->kind == MTC_TASK_CLS) {
            rc = mtc_metrics_cls(o, lab, nl, D, &out[t].cls, e);
            out[t].loss = out[t].cls.loss;
        } else if (!rc && nl && ts->kind == MTC_TASK_BIN) {
            rc = mtc_metrics_bin(o, tg, nl, D, &out[t].bin, e);
            out[t].loss = out[t].bin.loss;
        } else if (!rc && nl) {
            mtc_metrics_reg(o, tg, nl, D, &out[t].reg);
            double var = 0;
            for (int dd = 0; dd < D; dd++) var += (double)m->reg_std[t][dd] * m->reg_std[t][dd];
            out[t].loss = out[t].reg.mse / (var / D > 0 ? var / D : 1.0);
        }
        if (o != outs[t]) free(o);
        free(rows); free(lab); free(tg);
        free(lab_all);
    }
    return rc;
}

int mtc_task_calibration(const mtc_model *m, const mtc_dataset *d, int t, const float *out, int nbins,
                         mtc_reliability *c, mtc_err *e)
{
    const mtc_task_spec *ts = &m->spec.tasks[t];
    if (ts->kind == MTC_TASK_REG)
        return mtc_err_set(e, MTC_EINPUT, "task '%s' is a regression: calibration needs probabilities", ts->name);
    int32_t *lab = NULL;
    const float *tg = NULL;
    int rc = mtc_model_bind_task(m, t, d, &lab, &tg, e);
    if (rc) return rc;
    int D = ts->dim;
    int64_t cap = ts->kind == MTC_TASK_CLS ? d->n : d->n * D, k = 0;
    float *conf = malloc((size_t)(cap ? cap : 1) * sizeof *conf), *p = malloc((size_t)D * sizeof *p);
    uint8_t *ok = malloc((size_t)(cap ? cap : 1));
    if (!conf || !p || !ok) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    for (int64_t i = 0; !rc && i < d->n; i++) {
        const float *o = out + i * D;
        if (ts->kind == MTC_TASK_CLS) {
            if (lab[i] == MTC_LABEL_MISSING) continue;
            mtc_softmax_rows(p, o, 1, D, 1.0f);
            int a = 0;
            for (int j = 1; j < D; j++) a = p[j] > p[a] ? j : a;
            conf[k] = p[a];
            ok[k++] = a == lab[i];
        } else {
            if (!mtc_row_labelled(tg + i * D, D)) continue;
            for (int j = 0; j < D; j++) {
                float q = 1.0f / (1.0f + expf(-o[j]));
                int pred = mtc_bin_pred(o[j]);
                conf[k] = pred ? q : 1.0f - q;
                ok[k++] = pred == mtc_bin_pos(tg[i * D + j]);
            }
        }
    }
    if (!rc) rc = mtc_calibration(conf, ok, k, nbins, c, e);
    free(conf); free(p); free(ok); free(lab);
    return rc;
}

int mtc_evaluate(mtc_model *m, const mtc_dataset *d, const int64_t *idx, int64_t n, int batch,
                 mtc_task_eval *out, mtc_err *e)
{
    float *outs[MTC_MAX_TASKS] = {0};
    if (!idx) n = d->n;
    int rc = mtc_model_predict(m, d, idx, n, batch, outs, e);
    if (!rc) rc = mtc_evaluate_outputs(m, d, idx, n, outs, out, e);
    for (int t = 0; t < m->spec.ntasks; t++) free(outs[t]);
    return rc;
}

/* ---- task sampling ------------------------------------------------------------ */

/* Per-task pools of the training samples labelled for each task, in the
 * epoch's shuffled order; batches are cut from one pool at a time. */
typedef struct pools {
    int T;
    int64_t *idx[MTC_MAX_TASKS], n[MTC_MAX_TASKS], pos[MTC_MAX_TASKS];
    int64_t *batch;
} pools;

static void pools_free(pools *p)
{
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(p->idx[t]);
    free(p->batch);
    memset(p, 0, sizeof *p);
}

/* The next B samples of task t's pool (reshuffled from rng when used up). */
static const int64_t *pool_batch(pools *p, int t, int B, mtc_rng *rng)
{
    for (int b = 0; b < B; b++) {
        if (p->pos[t] == p->n[t]) {
            mtc_shuffle_i64(rng, p->idx[t], p->n[t]);
            p->pos[t] = 0;
        }
        p->batch[b] = p->idx[t][p->pos[t]++];
    }
    return p->batch;
}

/* Batch k's task: round-robin over the tasks with samples, or drawn with
 * p_t ∝ n_t^(1/T). */
static int pool_task(const pools *p, int64_t k, int mode, float temp, mtc_rng *rng)
{
    int live[MTC_MAX_TASKS], nl = 0;
    for (int t = 0; t < p->T; t++)
        if (p->n[t]) live[nl++] = t;
    if (mode == MTC_SAMPLE_ROUND_ROBIN) return live[k % nl];
    double w[MTC_MAX_TASKS], z = 0;
    for (int i = 0; i < nl; i++) z += w[i] = pow((double)p->n[live[i]], 1.0 / temp);
    double u = mtc_rng_uniform(rng) * z;
    for (int i = 0; i < nl - 1; i++) {
        if (u < w[i]) return live[i];
        u -= w[i];
    }
    return live[nl - 1];
}

/* ---- training state ---------------------------------------------------------- */

typedef struct trainer {
    mtc_model *m;
    const mtc_dataset *d;
    const mtc_train_cfg *cfg;
    int T, B;
    int32_t *labels[MTC_MAX_TASKS];   /* per dataset sample */
    const float *targets[MTC_MAX_TASKS];
    float *tstd[MTC_MAX_TASKS];       /* reg targets standardised, per sample */
    float *x;                         /* batch inputs */
    int *bview;                       /* stored view of each batch sample */
    int64_t *brow;                    /* its soft-label row: view * n + sample */
    int32_t *blab[MTC_MAX_TASKS];     /* batch labels */
    float *btarg[MTC_MAX_TASKS];      /* batch targets / soft rows */
    float *bsoft[MTC_MAX_TASKS];
    float *dout[MTC_MAX_TASKS];
    double w[MTC_MAX_TASKS];          /* current task weights */
    /* uncertainty: s_t = log sigma^2 */
    float s[MTC_MAX_TASKS], ds[MTC_MAX_TASKS];
    mtc_optim s_opt;
    /* gradnorm */
    double L0[MTC_MAX_TASKS];
    int have_L0;
    float *gn_dW, *gn_dpre;
    /* task conflict: per-task shared gradients (T x cf_len), epoch sums */
    float *cf_dW;
    int64_t cf_len, steps_done; /* steps_done: the global step of the current train_step */
    double cf_sum[MTC_MAX_TASKS * (MTC_MAX_TASKS - 1) / 2];
    int64_t cf_n[MTC_MAX_TASKS * (MTC_MAX_TASKS - 1) / 2];
    /* dwa: epoch-mean losses of the last two epochs */
    double prev_loss[2][MTC_MAX_TASKS];
    /* hint loss: projection P (Dt, H), its gradient and optimizer */
    float *hP, *hdP, *hproj, *hdtr;
    mtc_optim h_opt;
    double hint_loss;
    float *best;                      /* params at the best epoch */
    float *best_stats;
    mtc_comm_bg *bg;                  /* MPI: gradient sums overlapping the backward */
    int sharded;                      /* MPI, --shard-data: each rank's own samples */
    int step_global;                  /* sharded: this step's rows over all ranks */
} trainer;

static int soft_kind_ok(const mtc_train_cfg *cfg, int t)
{
    return cfg->soft && cfg->soft->v[t];
}

/* rows of D targets with no NaN among B */
static int labelled_rows_f(const float *y, int B, int D)
{
    int n = 0;
    for (int b = 0; b < B; b++) n += mtc_row_labelled(y + (int64_t)b * D, D);
    return n;
}

/* Task t's loss on the current batch; gradient (times scale) into dout[t]. */
static double task_loss(trainer *tr, int t, int B, const int64_t *bi, float scale)
{
    mtc_model *m = tr->m;
    const mtc_task_spec *ts = &m->spec.tasks[t];
    const mtc_train_cfg *cfg = tr->cfg;
    int D = ts->dim;
    const float *out = m->outputs[t];
    float *g = tr->dout[t];
    memset(g, 0, (size_t)B * (size_t)D * sizeof(float));
    int kd = soft_kind_ok(cfg, t);
    if (kd)
        for (int b = 0; b < B; b++)
            memcpy(tr->bsoft[t] + (size_t)b * D, cfg->soft->v[t] + tr->brow[b] * D, (size_t)D * sizeof(float));
    float alpha = kd ? cfg->kd_alpha[t] : 0.0f, T = cfg->kd_T[t];
    if (ts->kind == MTC_TASK_CLS) {
        for (int b = 0; b < B; b++) tr->blab[t][b] = tr->labels[t][bi[b]];
        if (kd && cfg->kd_correct) mtc_kd_correct_cls(tr->bsoft[t], tr->blab[t], B, D);
        if (kd) return mtc_loss_kd(g, out, tr->bsoft[t], tr->blab[t], B, D, T, alpha, scale);
        return mtc_loss_softmax_ce(g, out, tr->blab[t], B, D, ts->smoothing, scale);
    }
    if (ts->kind == MTC_TASK_BIN) {
        for (int b = 0; b < B; b++)
            memcpy(tr->btarg[t] + (size_t)b * D, tr->targets[t] + bi[b] * D, (size_t)D * sizeof(float));
        /* KD mixes per sample: the hard term's mean over all B rows (as
         * mtc_loss_kd), the loss's own mean over the labelled ones */
        const float f = kd ? (float)labelled_rows_f(tr->btarg[t], B, D) / (float)B : 1.0f;
        if (kd && cfg->kd_correct) mtc_kd_correct_bin(tr->bsoft[t], tr->btarg[t], B * D);
        double l = 0;
        if (alpha < 1.0f) l += (1 - alpha) * f * mtc_loss_bce(g, out, tr->btarg[t], B, D, scale * (1 - alpha) * f);
        if (kd) {
            /* soft targets sigmoid(t/T) against the student's own logits (the
             * student is not divided by T, so no T^2 rescaling is needed) */
            float *p = tr->bsoft[t];
            for (int i = 0; i < B * D; i++) p[i] = 1.0f / (1.0f + expf(-p[i] / T));
            l += alpha * mtc_loss_bce(g, out, p, B, D, scale * alpha);
        }
        return l;
    }
    /* reg: standardised targets; KD mixes MSE to the teacher's output */
    for (int b = 0; b < B; b++)
        memcpy(tr->btarg[t] + (size_t)b * D, tr->tstd[t] + bi[b] * D, (size_t)D * sizeof(float));
    const float f = kd ? (float)labelled_rows_f(tr->btarg[t], B, D) / (float)B : 1.0f; /* as bin's */
    double l = 0;
    if (alpha < 1.0f)
        l += (1 - alpha) * f * mtc_loss_reg(g, out, tr->btarg[t], B, D, ts->loss, ts->huber_delta, scale * (1 - alpha) * f);
    if (kd) {
        float *p = tr->bsoft[t];
        for (int b = 0; b < B; b++)
            for (int dd = 0; dd < D; dd++)
                p[b * D + dd] = (p[b * D + dd] - m->reg_mean[t][dd]) / m->reg_std[t][dd];
        l += alpha * mtc_loss_reg(g, out, p, B, D, MTC_LOSS_MSE, 1.0f, scale * alpha);
    }
    return l;
}

/* Last parametric shared layer of expert k (GradNorm's W). */
static mtc_layer *shared_layer(mtc_model *m, int k)
{
    mtc_chain *ch = &m->trunk[k];
    return ch->n ? &ch->layers[ch->n - 1] : NULL;
}

/* ||d(w_t L_t)/dW|| over every expert's last layer, from m->dmix[t]. */
/* d(w_t L_t)/dW of expert k's last shared layer into dW (L->nw values),
 * from m->dmix[t]; m->dinput and tr->gn_dpre are scratch. */
static void task_shared_grad(trainer *tr, const float *x, int t, int B, int k, float *dW)
{
    mtc_model *m = tr->m;
    int E = m->nexperts;
    int64_t H = m->trunk_out;
    mtc_layer *L = shared_layer(m, k);
    mtc_chain *ch = &m->trunk[k];
    const float *in = ch->n > 1 ? ch->layers[ch->n - 2].out : x;
    int64_t n = (int64_t)B * H;
    float *g = tr->gn_dpre;
    /* gradient wrt this expert's output: dmix (hard sharing) or g_k dmix */
    for (int b = 0; b < B; b++) {
        float gk = E > 1 ? m->gate_p[t][b * E + k] : 1.0f;
        for (int64_t j = 0; j < H; j++) g[b * H + j] = gk * m->dmix[t][b * H + j];
    }
    if (L->spec.act) {
        float *dpre = m->dinput;
        memset(dpre, 0, (size_t)n * sizeof(float));
        mtc_act_backward(dpre, g, L->pre == L->out ? NULL : L->pre, L->out, n, L->spec.act);
        memcpy(g, dpre, (size_t)n * sizeof(float));
    }
    memset(dW, 0, (size_t)L->nw * sizeof(float));
    const float *W = m->params + L->w_off;
    if (L->spec.type == MTC_L_DENSE)
        mtc_dense_backward(NULL, dW, NULL, g, in, W, B, (int)L->in_size, L->spec.units);
    else
        mtc_conv2d_backward(NULL, dW, NULL, g, in, W, m->col, m->dcol, &L->cs, B);
}

/* ||d(w_t L_t)/dW|| over every expert's last layer, from m->dmix[t]. */
static double shared_grad_norm(trainer *tr, const float *x, int t, int B)
{
    mtc_model *m = tr->m;
    double sq = 0;
    for (int k = 0; k < m->nexperts; k++) {
        task_shared_grad(tr, x, t, B, k, tr->gn_dW);
        const mtc_layer *L = shared_layer(m, k);
        mtc_comm_sum_f32(tr->gn_dW, L->nw); /* MPI: the global batch's gradient */
        for (int64_t i = 0; i < L->nw; i++) sq += (double)tr->gn_dW[i] * tr->gn_dW[i];
    }
    return sqrt(sq);
}

/* Task conflict (every cfg->conflict_every steps): each task's gradient on
 * the shared parameters (every expert's last layer), and the cosine of each
 * pair, summed into tr->cf_sum for the epoch mean. A task without labelled
 * samples in the batch (a zero gradient) gives no cosine. */
static void conflict_sample(trainer *tr, const float *x, int B)
{
    mtc_model *m = tr->m;
    const int T = tr->T;
    for (int t = 0; t < T; t++)
        for (int k = 0, off = 0; k < m->nexperts; off += (int)shared_layer(m, k)->nw, k++)
            task_shared_grad(tr, x, t, B, k, tr->cf_dW + (int64_t)t * tr->cf_len + off);
    mtc_comm_sum_f32(tr->cf_dW, (int64_t)T * tr->cf_len); /* MPI: the global batch's */
    for (int a = 0, p = 0; a < T; a++)
        for (int b = a + 1; b < T; b++, p++) {
            const float *u = tr->cf_dW + (int64_t)a * tr->cf_len, *v = tr->cf_dW + (int64_t)b * tr->cf_len;
            double uv = 0, uu = 0, vv = 0;
            for (int64_t i = 0; i < tr->cf_len; i++) uv += (double)u[i] * v[i], uu += (double)u[i] * u[i], vv += (double)v[i] * v[i];
            if (uu > 0 && vv > 0) tr->cf_sum[p] += uv / sqrt(uu * vv), tr->cf_n[p]++;
        }
}

/* GradNorm update of the task weights from this step's losses and grads. */
static void gradnorm_update(trainer *tr, const float *x, const double *loss, int B)
{
    int T = tr->T;
    double G[MTC_MAX_TASKS], Gm = 0, r[MTC_MAX_TASKS], rm = 0;
    if (!tr->have_L0) {
        for (int t = 0; t < T; t++) tr->L0[t] = loss[t] > 1e-12 ? loss[t] : 1e-12;
        tr->have_L0 = 1;
    }
    for (int t = 0; t < T; t++) {
        G[t] = shared_grad_norm(tr, x, t, B);
        Gm += G[t] / T;
        r[t] = loss[t] / tr->L0[t];
        rm += r[t] / T;
    }
    double sum = 0;
    for (int t = 0; t < T; t++) {
        double target = Gm * pow(r[t] / (rm > 0 ? rm : 1), tr->cfg->gradnorm_alpha);
        /* d|G_t - target|/dw_t = sign(G_t - target) * G_t / w_t (target held constant) */
        double grad = (G[t] > target ? 1.0 : G[t] < target ? -1.0 : 0.0) * G[t] / tr->w[t];
        tr->w[t] -= tr->cfg->weight_lr * grad;
        if (tr->w[t] < 1e-3) tr->w[t] = 1e-3;
        sum += tr->w[t];
    }
    for (int t = 0; t < T; t++) tr->w[t] *= T / sum;
}

static void dwa_update(trainer *tr, int epoch)
{
    if (epoch < 2) return; /* needs two finished epochs */
    double z = 0, ex[MTC_MAX_TASKS];
    for (int t = 0; t < tr->T; t++) {
        double r = tr->prev_loss[0][t] / (tr->prev_loss[1][t] > 1e-12 ? tr->prev_loss[1][t] : 1e-12);
        ex[t] = exp(r / tr->cfg->dwa_temp);
        z += ex[t];
    }
    for (int t = 0; t < tr->T; t++) tr->w[t] = tr->T * ex[t] / z;
}

static void trainer_free(trainer *tr)
{
    for (int t = 0; t < MTC_MAX_TASKS; t++) {
        free(tr->labels[t]); free(tr->tstd[t]); free(tr->blab[t]); free(tr->btarg[t]);
        free(tr->bsoft[t]); free(tr->dout[t]);
    }
    free(tr->x); free(tr->bview); free(tr->brow); free(tr->gn_dW); free(tr->gn_dpre); free(tr->best); free(tr->best_stats);
    free(tr->cf_dW);
    free(tr->hP); free(tr->hdP); free(tr->hproj); free(tr->hdtr);
    mtc_optim_free(&tr->s_opt);
    mtc_optim_free(&tr->h_opt);
    mtc_comm_bg_free(tr->bg);
}

/* Buckets of about OVERLAP_BUCKET gradient floats for the overlapped sum:
 * consecutive pieces (mtc_model_grad_pieces) merged while they are
 * adjacent; bucket j may start once need[j] pieces are final. The same on
 * every rank: it depends on the model only. */
#define OVERLAP_BUCKET ((int64_t)1 << 18) /* 1 MiB */

static void grad_final_cb(void *ctx, int pieces) { mtc_comm_bg_ready(ctx, pieces); }

static int overlap_init(trainer *tr, mtc_err *e)
{
    mtc_model *m = tr->m;
    enum { CAP = 1 + MTC_MAX_EXPERTS * MTC_MAX_LAYERS };
    int64_t plo[CAP], phi[CAP], lo[CAP], hi[CAP];
    int need[CAP], nb = 0;
    int np = mtc_model_grad_pieces(m, plo, phi);
    for (int i = 0; i < np; i++) {
        if (nb && plo[i] < phi[i] && phi[i] == lo[nb - 1] && hi[nb - 1] - plo[i] <= OVERLAP_BUCKET) {
            lo[nb - 1] = plo[i];
            need[nb - 1] = i + 1;
        } else {
            lo[nb] = plo[i], hi[nb] = phi[i], need[nb] = i + 1;
            nb++;
        }
    }
    mtc_err why = {0};
    tr->bg = mtc_comm_bg_new(m->grads, m->nparams, nb, lo, hi, need, &why);
    if (!tr->bg && why.code) return mtc_err_set(e, why.code, "--overlap: %s", why.msg);
    return 0;
}

static int check_cfg(const mtc_model *m, const mtc_dataset *d, const mtc_train_cfg *c, mtc_err *e)
{
    if (c->epochs < 1 || c->epochs > 100000) return mtc_err_set(e, MTC_EINPUT, "--epochs %d: must be in [1, 100000]", c->epochs);
    if (c->batch < 1 || c->batch > 65536) return mtc_err_set(e, MTC_EINPUT, "--batch %d: must be in [1, 65536]", c->batch);
    if (!(c->sched.lr > 0 && c->sched.lr < 10)) return mtc_err_set(e, MTC_EINPUT, "--lr %g: must be in (0, 10)", c->sched.lr);
    if (!(c->val_frac >= 0 && c->val_frac < 0.9)) return mtc_err_set(e, MTC_EINPUT, "--val %g: must be in [0, 0.9)", c->val_frac);
    if (c->weighting < 0 || c->weighting > MTC_WEIGHT_DWA) return mtc_err_set(e, MTC_EINPUT, "unknown task weighting");
    if (c->weighting == MTC_WEIGHT_GRADNORM) {
        for (int k = 0; k < m->nexperts; k++) {
            const mtc_chain *ch = &m->trunk[k];
            if (!ch->n || (ch->layers[ch->n - 1].spec.type != MTC_L_DENSE && ch->layers[ch->n - 1].spec.type != MTC_L_CONV))
                return mtc_err_set(e, MTC_EINPUT, "--weighting gradnorm: the trunk must end with a dense or conv layer");
        }
    }
    if (c->hints && c->hint_weight > 0) {
        if (m->nexperts > 1 || !m->trunk[0].n)
            return mtc_err_set(e, MTC_EINPUT, "hint loss needs a hard-sharing student with a trunk (not MMoE)");
        if (c->hint_dim < 1 || c->hint_dim > (1 << 20))
            return mtc_err_set(e, MTC_EINPUT, "hint loss: bad teacher feature size %d", c->hint_dim);
    }
    if (c->soft) {
        if (c->soft->copies > 1 && c->aug)
            return mtc_err_set(e, MTC_EINPUT, "soft labels with stored views bring their own augmentation: "
                                              "drop --augment");
        if (c->soft->n != d->n)
            return mtc_err_set(e, MTC_EINPUT, "soft labels cover %lld samples, data set %s has %lld",
                               (long long)c->soft->n, d->name, (long long)d->n);
        for (int t = 0; t < m->spec.ntasks; t++) {
            if (!c->soft->v[t]) continue;
            if (c->soft->dim[t] != m->spec.tasks[t].dim)
                return mtc_err_set(e, MTC_EINPUT, "soft labels for task '%s' have %d outputs, the model has %d",
                                   m->spec.tasks[t].name, c->soft->dim[t], m->spec.tasks[t].dim);
            if (!(c->kd_T[t] > 0 && c->kd_T[t] <= 100))
                return mtc_err_set(e, MTC_EINPUT, "temperature %g for task '%s': must be in (0, 100]", c->kd_T[t], m->spec.tasks[t].name);
            if (!(c->kd_alpha[t] >= 0 && c->kd_alpha[t] <= 1))
                return mtc_err_set(e, MTC_EINPUT, "alpha %g for task '%s': must be in [0, 1]", c->kd_alpha[t], m->spec.tasks[t].name);
        }
    }
    return 0;
}

static int trainer_init(trainer *tr, mtc_model *m, const mtc_dataset *d, const mtc_train_cfg *cfg, mtc_err *e)
{
    memset(tr, 0, sizeof *tr);
    tr->m = m; tr->d = d; tr->cfg = cfg; tr->T = m->spec.ntasks; tr->B = cfg->batch;
    tr->sharded = mtc_comm_size() > 1 && mtc_data_sharded(d);
    int rc = mtc_model_check_input(m, d, e);
    if (!rc) rc = check_cfg(m, d, cfg, e);
    if (!rc) rc = mtc_model_reserve(m, cfg->batch, e);
    if (rc) return rc;
    int B = cfg->batch;
    int64_t S = mtc_data_sample_size(d);
    int bad = !(tr->x = malloc((size_t)B * (size_t)S * sizeof(float)));
    bad |= !(tr->bview = malloc((size_t)B * sizeof(int))) || !(tr->brow = malloc((size_t)B * sizeof(int64_t)));
    for (int t = 0; t < tr->T && !rc; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        int D = ts->dim;
        if ((rc = mtc_model_bind_task(m, t, d, &tr->labels[t], &tr->targets[t], e))) break;
        double lab = 0;
        for (int64_t i = 0; i < d->n; i++)
            lab += tr->labels[t] ? tr->labels[t][i] != MTC_LABEL_MISSING : mtc_row_labelled(tr->targets[t] + i * D, D);
        if (tr->sharded) mtc_comm_sum_f64(&lab, 1); /* over every rank's shard */
        if (!lab && !soft_kind_ok(cfg, t)) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s: task '%s' has no labelled sample in the training split", d->name,
                             ts->name);
            break;
        }
        tr->blab[t] = malloc((size_t)B * sizeof(int32_t));
        tr->btarg[t] = malloc((size_t)B * (size_t)D * sizeof(float));
        tr->bsoft[t] = malloc((size_t)B * (size_t)D * sizeof(float));
        tr->dout[t] = malloc((size_t)B * (size_t)D * sizeof(float));
        bad |= !tr->blab[t] || !tr->btarg[t] || !tr->bsoft[t] || !tr->dout[t];
        tr->w[t] = cfg->weighting == MTC_WEIGHT_FIXED ? ts->weight : 1.0;
        if (ts->kind == MTC_TASK_REG && !bad) {
            /* target standardisation, stored in the checkpoint */
            const float *y = tr->targets[t];
            if (!cfg->keep_standardisation)
                for (int dd = 0; dd < D; dd++) { /* over the labelled rows (of every shard) */
                    double sum[3] = {0, 0, 0}; /* x, x^2, count */
                    for (int64_t i = 0; i < d->n; i++) {
                        if (!mtc_row_labelled(y + i * D, D)) continue;
                        sum[0] += y[i * D + dd];
                        sum[1] += (double)y[i * D + dd] * y[i * D + dd];
                        sum[2] += 1;
                    }
                    if (tr->sharded) mtc_comm_sum_f64(sum, 3);
                    if (!sum[2]) { /* soft labels alone teach it */
                        m->reg_mean[t][dd] = 0.0f, m->reg_std[t][dd] = 1.0f;
                        continue;
                    }
                    double mu = sum[0] / sum[2], var = sum[1] / sum[2] - mu * mu;
                    m->reg_mean[t][dd] = (float)mu;
                    m->reg_std[t][dd] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
                }
            tr->tstd[t] = malloc((size_t)d->n * (size_t)D * sizeof(float));
            bad |= !tr->tstd[t];
            if (tr->tstd[t])
                for (int64_t i = 0; i < d->n; i++)
                    for (int dd = 0; dd < D; dd++)
                        tr->tstd[t][i * D + dd] = (y[i * D + dd] - m->reg_mean[t][dd]) / m->reg_std[t][dd];
        }
    }
    if (rc) return rc;
    if (cfg->weighting == MTC_WEIGHT_UNCERTAINTY) {
        mtc_optim_cfg oc;
        mtc_optim_cfg_default(&oc, MTC_OPT_ADAM);
        if ((rc = mtc_optim_init(&tr->s_opt, &oc, tr->T, e))) return rc;
    }
    /* task conflict: when there are tasks to compare and the trunk ends in a dense or conv layer */
    int shared_ok = tr->T >= 2 && cfg->conflict_every > 0;
    for (int k = 0; k < m->nexperts && shared_ok; k++) {
        const mtc_layer *L = shared_layer(m, k);
        shared_ok = L && (L->spec.type == MTC_L_DENSE || L->spec.type == MTC_L_CONV);
        if (shared_ok) tr->cf_len += L->nw;
    }
    if (shared_ok) {
        tr->cf_dW = malloc((size_t)tr->T * (size_t)tr->cf_len * sizeof(float));
        if (!tr->gn_dpre) tr->gn_dpre = malloc((size_t)B * (size_t)m->trunk_out * sizeof(float));
        bad |= !tr->cf_dW || !tr->gn_dpre;
    }
    if (cfg->weighting == MTC_WEIGHT_GRADNORM) {
        int64_t nw = 0, n = (int64_t)B * m->trunk_out;
        for (int k = 0; k < m->nexperts; k++) nw = shared_layer(m, k)->nw > nw ? shared_layer(m, k)->nw : nw;
        tr->gn_dW = malloc((size_t)nw * sizeof(float));
        if (!tr->gn_dpre) tr->gn_dpre = malloc((size_t)n * sizeof(float));
        bad |= !tr->gn_dW || !tr->gn_dpre;
    }
    if (cfg->hints && cfg->hint_weight > 0) {
        int64_t Dt = cfg->hint_dim, H = m->trunk_out;
        tr->hP = malloc((size_t)(Dt * H) * sizeof(float));
        tr->hdP = malloc((size_t)(Dt * H) * sizeof(float));
        tr->hproj = malloc((size_t)((int64_t)B * Dt) * sizeof(float));
        tr->hdtr = malloc((size_t)((int64_t)B * H) * sizeof(float));
        if (!tr->hP || !tr->hdP || !tr->hproj || !tr->hdtr) return mtc_err_set(e, MTC_ENOMEM, "training: out of memory");
        mtc_rng hr;
        mtc_rng_seed(&hr, cfg->seed ^ 0x68696e74ULL);
        float bound = 1.0f / sqrtf((float)H);
        for (int64_t i = 0; i < Dt * H; i++) tr->hP[i] = (2.0f * mtc_rng_uniform(&hr) - 1.0f) * bound;
        mtc_optim_cfg oc;
        mtc_optim_cfg_default(&oc, MTC_OPT_ADAM);
        if ((rc = mtc_optim_init(&tr->h_opt, &oc, Dt * H, e))) return rc;
    }
    tr->best = malloc((size_t)m->nparams * sizeof(float) + 4);
    tr->best_stats = malloc((size_t)m->nstats * sizeof(float) + 4);
    bad |= !tr->best || !tr->best_stats;
    if (bad) return mtc_err_set(e, MTC_ENOMEM, "training: out of memory");
    if (cfg->overlap && mtc_comm_size() > 1) return overlap_init(tr, e);
    return 0;
}

/* Hint loss on the trunk output h (B,H): proj = h·Pᵀ (B,Dt),
 * L = beta/(B·Dt) · sum (proj - h_t)^2. Its gradient wrt h joins the heads'
 * gradient (m->dmix[0] is summed into the trunk under hard sharing); P takes
 * its own Adam step. Under MPI the ranks' projections' gradients are summed. */
static void hint_step(trainer *tr, int B, int Bg, float lr)
{
    mtc_model *m = tr->m;
    const mtc_train_cfg *cfg = tr->cfg;
    int Dt = cfg->hint_dim, H = (int)m->trunk_out;
    const float *h = mtc_model_trunk_output(m);
    mtc_dense_forward(tr->hproj, h, tr->hP, NULL, B, H, Dt);
    double L = 0;
    float c = 2.0f * cfg->hint_weight / ((float)Bg * Dt); /* Bg: the global batch (MPI) */
    for (int b = 0; b < B; b++) {
        const float *t = cfg->hints + tr->brow[b] * Dt;
        float *p = tr->hproj + (int64_t)b * Dt;
        for (int j = 0; j < Dt; j++) {
            float d = p[j] - t[j];
            L += (double)d * d;
            p[j] = c * d; /* becomes d L / d proj */
        }
    }
    mtc_comm_sum_f64(&L, 1);
    tr->hint_loss += cfg->hint_weight * L / ((double)Bg * Dt);
    memset(tr->hdP, 0, (size_t)Dt * H * sizeof(float));
    memset(tr->hdtr, 0, (size_t)B * H * sizeof(float));
    mtc_dense_backward(tr->hdtr, tr->hdP, NULL, tr->hproj, h, tr->hP, B, H, Dt);
    for (int64_t i = 0; i < (int64_t)B * H; i++) m->dmix[0][i] += tr->hdtr[i];
    mtc_comm_sum_f32(tr->hdP, (int64_t)Dt * H);
    mtc_optim_step(&tr->h_opt, tr->hP, tr->hdP, NULL, lr);
}

/* One optimisation step on samples bi[0..B). Fills loss[t]. Returns 0, or
 * the 1-based task index whose loss went non-finite. */
/* Task t's loss normaliser on rows bi[0..B): every row with soft labels
 * (KD mixes per sample), else the labelled rows. */
static double task_norm(const trainer *tr, int t, const int64_t *bi, int B)
{
    if (soft_kind_ok(tr->cfg, t)) return B;
    const int D = tr->m->spec.tasks[t].dim;
    double n = 0;
    for (int b = 0; b < B; b++)
        n += tr->labels[t] ? tr->labels[t][bi[b]] != MTC_LABEL_MISSING : mtc_row_labelled(tr->targets[t] + bi[b] * D, D);
    return n;
}

/* One optimisation step on samples bi[0..B). Fills loss[t]. Returns 0, or
 * the 1-based task index whose loss went non-finite.
 *
 * Data parallel (an MPI job of N ranks): rank r takes rows [B r/N,
 * B (r+1)/N) of the global batch, each task's loss gradient is scaled by
 * its share of the global normaliser (so the summed gradients are the
 * global batch's mean), the gradients and the losses are summed in a fixed
 * order (mtc_comm_sum_*), and every rank takes the same optimiser step.
 * Dropout and augmentation draw from a per-step stream seeded by (seed,
 * step, rank); the shared stream, and with it the sample order, is the
 * same on every rank (and, for a model without dropout or augmentation,
 * the same as one process's). Batchnorm normalises with each rank's own
 * rows; the running statistics are averaged over the ranks each step. */
static int train_step(trainer *tr, mtc_optim *opt, const int64_t *bi, int B, float lr, mtc_rng *rng,
                      double *loss)
{
    mtc_model *m = tr->m;
    const mtc_train_cfg *cfg = tr->cfg;
    const mtc_soft *so = cfg->soft;
    const int N = mtc_comm_size(), Bg = tr->sharded ? tr->step_global : B;
    mtc_rng own;
    if (N > 1) {
        const int r = mtc_comm_rank(), lo = tr->sharded ? 0 : (int)((int64_t)B * r / N);
        /* from (seed, step, rank), not from the shared stream: that one then
         * advances only by the shuffles, the same on every rank */
        mtc_rng_seed(&own, cfg->seed ^ 0x64702d72616e6bULL ^ ((uint64_t)tr->steps_done * 0xbf58476d1ce4e5b9ULL) ^
                               (0x9e3779b97f4a7c15ULL * (uint64_t)(r + 1)));
        rng = &own;
        if (!tr->sharded) { /* rank r's rows of the global batch; sharded: bi is already this rank's */
            bi += lo;
            B = (int)((int64_t)Bg * (r + 1) / N) - lo;
        }
    }
    if (so && so->copies > 1) {
        /* stored views: one of the K per sample, the image rebuilt as the
         * labeller made it, its own soft row */
        for (int b = 0; b < B; b++) {
            tr->bview[b] = (int)mtc_rng_below(rng, (uint64_t)so->copies);
            tr->brow[b] = tr->bview[b] * so->n + bi[b];
        }
        if (B > 0) mtc_data_batch_x_views_pool(tr->d, bi, tr->bview, B, so->aug, so->aug_seed, tr->x, m->pool);
    } else {
        for (int b = 0; b < B; b++) tr->brow[b] = bi[b];
        if (B > 0) mtc_data_batch_x_pool(tr->d, bi, B, cfg->aug, rng, tr->x, m->pool);
    }
    double norm[MTC_MAX_TASKS], gnorm[MTC_MAX_TASKS];
    if (N > 1) {
        for (int t = 0; t < tr->T; t++) gnorm[t] = norm[t] = task_norm(tr, t, bi, B);
        mtc_comm_sum_f64(gnorm, tr->T);
    }
    if (B > 0) mtc_model_forward(m, tr->x, B, 1, rng);
    for (int t = 0; t < tr->T; t++) {
        float scale = (float)tr->w[t];
        if (cfg->weighting == MTC_WEIGHT_UNCERTAINTY) scale = expf(-tr->s[t]);
        if (N > 1) scale *= gnorm[t] > 0 ? (float)(norm[t] / gnorm[t]) : 0.0f;
        loss[t] = B > 0 ? task_loss(tr, t, B, bi, scale) : 0.0;
    }
    if (N > 1) { /* the global batch's mean loss per task */
        for (int t = 0; t < tr->T; t++) loss[t] = isfinite(loss[t]) ? loss[t] * norm[t] : INFINITY;
        mtc_comm_sum_f64(loss, tr->T);
        for (int t = 0; t < tr->T; t++) loss[t] = gnorm[t] > 0 ? loss[t] / gnorm[t] : 0.0;
    }
    for (int t = 0; t < tr->T; t++)
        if (!isfinite(loss[t])) return t + 1;
    memset(m->grads, 0, (size_t)m->nparams * sizeof(float));
    if (B > 0) mtc_model_backward_heads(m, tr->x, tr->dout, B);
    if (tr->hP) hint_step(tr, B, Bg, lr);
    if (cfg->weighting == MTC_WEIGHT_GRADNORM) gradnorm_update(tr, tr->x, loss, B);
    if (tr->cf_dW && tr->steps_done % cfg->conflict_every == 0) conflict_sample(tr, tr->x, B);
    if (tr->bg) { /* the sums run on their own thread as pieces of the gradient become final */
        mtc_comm_bg_begin(tr->bg);
        m->grad_final = grad_final_cb, m->grad_final_ctx = tr->bg;
        if (B > 0) mtc_model_backward_trunk(m, tr->x, B);
        m->grad_final = NULL, m->grad_final_ctx = NULL;
        mtc_comm_bg_finish(tr->bg);
    } else if (B > 0) {
        mtc_model_backward_trunk(m, tr->x, B);
    }
    if (N > 1) {
        if (!tr->bg) mtc_comm_sum_f32(m->grads, m->nparams);
        if (m->nstats) { /* running statistics: the ranks' mean */
            mtc_comm_sum_f32(m->stats, m->nstats);
            for (int64_t i = 0; i < m->nstats; i++) m->stats[i] /= (float)N;
        }
    }
    mtc_optim_step_pool(opt, m->pool, m->params, m->grads, m->decay_mask, lr);
    mtc_model_apply_mask(m);
    if (cfg->weighting == MTC_WEIGHT_UNCERTAINTY) {
        /* d/ds [exp(-s) L + s] = 1 - exp(-s) L */
        for (int t = 0; t < tr->T; t++) tr->ds[t] = 1.0f - expf(-tr->s[t]) * (float)loss[t];
        mtc_optim_step(&tr->s_opt, tr->s, tr->ds, NULL, lr);
        for (int t = 0; t < tr->T; t++) tr->w[t] = exp(-tr->s[t]);
    }
    return 0;
}

static void history_epoch(mtc_jw *h, const mtc_epoch_stats *s)
{
    mtc_jw_obj(h);
    mtc_jw_kint(h, "epoch", s->epoch);
    mtc_jw_knum(h, "lr", s->lr);
    mtc_jw_knum(h, "val_loss", s->val_loss);
    if (s->hint_loss > 0) mtc_jw_knum(h, "hint_loss", s->hint_loss);
    const char *keys[] = {"loss", "weight", "val"};
    for (int k = 0; k < 3; k++) {
        mtc_jw_key(h, keys[k]);
        mtc_jw_obj(h);
        for (int t = 0; t < s->ntasks; t++)
            mtc_jw_knum(h, s->task_names[t], k == 0 ? s->loss[t] : k == 1 ? s->weight[t] : s->val_metric[t]);
        mtc_jw_obj_end(h);
    }
    if (s->nconflict) { /* mean gradient cosine per task pair, "a/b" */
        mtc_jw_key(h, "conflict");
        mtc_jw_obj(h);
        for (int a = 0, p = 0; a < s->ntasks; a++)
            for (int b = a + 1; b < s->ntasks; b++, p++) {
                char key[2 * MTC_NAME_MAX + 2];
                snprintf(key, sizeof key, "%s/%s", s->task_names[a], s->task_names[b]);
                mtc_jw_knum(h, key, s->conflict[p]);
            }
        mtc_jw_obj_end(h);
    }
    mtc_jw_key(h, "val_metric");
    mtc_jw_obj(h);
    for (int t = 0; t < s->ntasks; t++) mtc_jw_kstr(h, s->task_names[t], s->val_metric_name[t]);
    mtc_jw_obj_end(h);
    mtc_jw_obj_end(h);
}

/* ---- resumable state ---------------------------------------------------------- */

typedef struct loop_state {
    int ep;            /* next epoch to run (0-based) */
    int64_t step;
    double best_val;
    int since_best;
} loop_state;

/* Identifies the settings a state file belongs to: resuming under other
 * settings could never reproduce the uninterrupted run, so it is refused. */
static uint64_t cfg_fingerprint(const trainer *tr, const mtc_dataset *d)
{
    const mtc_train_cfg *c = tr->cfg;
    const mtc_model *m = tr->m;
    double f[64 + 2 * MTC_MAX_TASKS];
    int n = 0;
    f[n++] = c->epochs; f[n++] = c->batch; f[n++] = c->opt.kind; f[n++] = c->opt.momentum;
    f[n++] = c->opt.nesterov; f[n++] = c->opt.beta1; f[n++] = c->opt.beta2; f[n++] = c->opt.eps;
    f[n++] = c->opt.weight_decay; f[n++] = c->opt.l1; f[n++] = c->opt.l2; f[n++] = c->opt.clip_norm;
    f[n++] = c->sched.kind; f[n++] = c->sched.lr; f[n++] = (double)c->sched.warmup;
    f[n++] = (double)c->sched.step_size; f[n++] = c->sched.gamma; f[n++] = c->sched.min_lr;
    f[n++] = c->weighting; f[n++] = c->gradnorm_alpha; f[n++] = c->weight_lr; f[n++] = c->dwa_temp;
    f[n++] = c->val_frac; f[n++] = c->patience; f[n++] = c->aug; f[n++] = (double)c->seed;
    f[n++] = (double)mtc_train_split_seed(c);
    f[n++] = c->soft != NULL; f[n++] = c->hint_weight; f[n++] = c->hint_dim; f[n++] = (double)m->nparams;
    f[n++] = (double)d->split_n; /* = n unless sharded: the same on every rank */
    for (int t = 0; t < tr->T; t++) { f[n++] = c->kd_T[t]; f[n++] = c->kd_alpha[t]; }
    if (c->kd_correct) f[n++] = 1.0; /* appended only when on: older state files keep their fingerprint */
    uint64_t h = mtc_fnv1a64(f, sizeof(double) * (size_t)n, 0);
    return mtc_fnv1a64(&d->hash, sizeof d->hash, h);
}

static int add_bytes(mtc_ckpt *c, const char *name, const void *p, int64_t nbytes, mtc_err *e)
{
    return mtc_ckpt_add(c, name, MTC_U8, 1, &nbytes, p, e);
}

static int add_f32(mtc_ckpt *c, const char *name, const float *p, int64_t n, mtc_err *e)
{
    return p ? mtc_ckpt_add(c, name, MTC_F32, 1, &n, p, e) : 0;
}

/* Packs every scalar of the loop and the trainer as doubles (exact for the
 * floats and the integer counters involved). */
static int pack_scalars(const trainer *tr, const mtc_optim *opt, const loop_state *ls,
                        const mtc_train_result *res, double *v)
{
    int n = 0;
    v[n++] = ls->ep; v[n++] = (double)ls->step; v[n++] = ls->best_val; v[n++] = ls->since_best;
    v[n++] = res->best_epoch; v[n++] = (double)opt->t; v[n++] = (double)tr->s_opt.t;
    v[n++] = (double)tr->h_opt.t; v[n++] = tr->have_L0;
    for (int t = 0; t < tr->T; t++) {
        v[n++] = tr->w[t]; v[n++] = tr->s[t]; v[n++] = tr->L0[t];
        v[n++] = tr->prev_loss[0][t]; v[n++] = tr->prev_loss[1][t]; v[n++] = res->val_metric[t];
    }
    return n;
}

static void unpack_scalars(trainer *tr, mtc_optim *opt, loop_state *ls, mtc_train_result *res, const double *v)
{
    int n = 0;
    ls->ep = (int)v[n++]; ls->step = (int64_t)v[n++]; ls->best_val = v[n++]; ls->since_best = (int)v[n++];
    res->best_epoch = (int)v[n++]; opt->t = (int64_t)v[n++]; tr->s_opt.t = (int64_t)v[n++];
    tr->h_opt.t = (int64_t)v[n++]; tr->have_L0 = (int)v[n++];
    for (int t = 0; t < tr->T; t++) {
        tr->w[t] = v[n++]; tr->s[t] = (float)v[n++]; tr->L0[t] = v[n++];
        tr->prev_loss[0][t] = v[n++]; tr->prev_loss[1][t] = v[n++]; res->val_metric[t] = v[n++];
    }
}

static int state_save(const char *path, trainer *tr, const mtc_dataset *d, const mtc_optim *opt,
                      const mtc_rng *rng, const int64_t *tidx, int64_t nt, const loop_state *ls,
                      const mtc_train_result *res, const mtc_jw *hist, mtc_err *e)
{
    mtc_model *m = tr->m;
    mtc_jw meta;
    mtc_jw_init(&meta);
    mtc_jw_obj(&meta);
    mtc_jw_kstr(&meta, "producer", "mtc training state");
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)cfg_fingerprint(tr, d));
    mtc_jw_kstr(&meta, "fingerprint", fp);
    mtc_jw_kint(&meta, "next_epoch", ls->ep + 1);
    mtc_jw_key(&meta, "history");
    /* the history writer is mid-array: close a copy of its text */
    size_t hl = hist->len;
    char *ht = malloc(hl + 2);
    if (!ht) { mtc_jw_free(&meta); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
    memcpy(ht, hist->buf, hl);
    ht[hl] = ']';
    ht[hl + 1] = 0;
    mtc_jw_raw(&meta, ht);
    free(ht);
    mtc_jw_obj_end(&meta);
    mtc_ckpt c;
    int rc = meta.oom ? mtc_err_set(e, MTC_ENOMEM, "out of memory") : mtc_model_to_ckpt(m, meta.buf, &c, e);
    mtc_jw_free(&meta);
    if (rc) return rc;
    double sc[16 + 6 * MTC_MAX_TASKS];
    int nsc = pack_scalars(tr, opt, ls, res, sc);
    rc = add_bytes(&c, "state.scalars", sc, (int64_t)sizeof(double) * nsc, e);
    if (!rc) rc = add_bytes(&c, "state.rng", rng->s, sizeof rng->s, e);
    if (!rc) rc = add_bytes(&c, "state.order", tidx, (int64_t)sizeof(int64_t) * nt, e);
    if (!rc) rc = add_f32(&c, "state.opt.m", opt->m, opt->n, e);
    if (!rc) rc = add_f32(&c, "state.opt.v", opt->v, opt->n, e);
    if (!rc) rc = add_f32(&c, "state.best.params", tr->best, m->nparams, e);
    if (!rc && m->nstats) rc = add_f32(&c, "state.best.stats", tr->best_stats, m->nstats, e);
    if (!rc) rc = add_f32(&c, "state.uncertainty.m", tr->s_opt.m, tr->s_opt.n, e);
    if (!rc) rc = add_f32(&c, "state.uncertainty.v", tr->s_opt.v, tr->s_opt.n, e);
    if (!rc && tr->hP) {
        rc = add_f32(&c, "state.hint.P", tr->hP, tr->h_opt.n, e);
        if (!rc) rc = add_f32(&c, "state.hint.m", tr->h_opt.m, tr->h_opt.n, e);
        if (!rc) rc = add_f32(&c, "state.hint.v", tr->h_opt.v, tr->h_opt.n, e);
    }
    if (!rc) rc = mtc_ckpt_save(path, &c, e);
    mtc_ckpt_free(&c);
    return rc;
}

static int get_bytes(const mtc_ckpt *c, const char *path, const char *name, void *dst, int64_t nbytes,
                     int f32, mtc_err *e)
{
    const mtc_tensor *t = mtc_ckpt_find(c, name);
    int64_t have = t ? mtc_tensor_numel(t) * (int64_t)mtc_dtype_size(t->dtype) : -1;
    if (!t || have != nbytes || t->dtype != (f32 ? MTC_F32 : MTC_U8))
        return mtc_err_set(e, MTC_EINPUT, "%s: training state '%s' missing or of the wrong size", path, name);
    memcpy(dst, t->data, (size_t)nbytes);
    return 0;
}

static int state_load(const char *path, trainer *tr, const mtc_dataset *d, mtc_optim *opt, mtc_rng *rng,
                      int64_t *tidx, int64_t nt, loop_state *ls, mtc_train_result *res, mtc_jw *hist,
                      mtc_err *e)
{
    mtc_model *m = tr->m;
    mtc_ckpt c;
    int rc = mtc_ckpt_load(path, &c, e);
    if (rc) return rc;
    mtc_json meta = {0};
    mtc_model tmp;
    int have_tmp = 0;
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)cfg_fingerprint(tr, d));
    if ((rc = mtc_json_parse(c.meta ? c.meta : "", c.meta ? strlen(c.meta) : 0, &meta, e))) goto out;
    const char *sfp = mtc_json_str(&meta, "fingerprint");
    if (!sfp) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: not a training state (write one with --checkpoint-every)", path);
        goto out;
    }
    if (strcmp(sfp, fp)) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: made with other settings, data or model; resume needs the same ones", path);
        goto out;
    }
    if ((rc = mtc_model_from_ckpt_path(&c, path, &tmp, e))) goto out;
    have_tmp = 1;
    if (tmp.nparams != m->nparams || tmp.nstats != m->nstats) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: its model does not match the spec being trained", path);
        goto out;
    }
    memcpy(m->params, tmp.params, sizeof(float) * (size_t)m->nparams);
    memcpy(m->stats, tmp.stats, sizeof(float) * (size_t)m->nstats);
    if (tmp.mask) {
        if (!m->mask) { m->mask = tmp.mask; tmp.mask = NULL; }
        else memcpy(m->mask, tmp.mask, sizeof(float) * (size_t)m->nparams);
    }
    double sc[16 + 6 * MTC_MAX_TASKS];
    mtc_optim zero = {0};
    mtc_train_result r0;
    memset(&r0, 0, sizeof r0);
    loop_state l0 = {0};
    int nsc = pack_scalars(tr, &zero, &l0, &r0, sc); /* just the count */
    rc = get_bytes(&c, path, "state.scalars", sc, (int64_t)sizeof(double) * nsc, 0, e);
    if (!rc) rc = get_bytes(&c, path, "state.rng", rng->s, sizeof rng->s, 0, e);
    if (!rc) rc = get_bytes(&c, path, "state.order", tidx, (int64_t)sizeof(int64_t) * nt, 0, e);
    if (!rc && opt->m) rc = get_bytes(&c, path, "state.opt.m", opt->m, (int64_t)sizeof(float) * opt->n, 1, e);
    if (!rc && opt->v) rc = get_bytes(&c, path, "state.opt.v", opt->v, (int64_t)sizeof(float) * opt->n, 1, e);
    if (!rc) rc = get_bytes(&c, path, "state.best.params", tr->best, (int64_t)sizeof(float) * m->nparams, 1, e);
    if (!rc && m->nstats)
        rc = get_bytes(&c, path, "state.best.stats", tr->best_stats, (int64_t)sizeof(float) * m->nstats, 1, e);
    if (!rc && tr->s_opt.m)
        rc = get_bytes(&c, path, "state.uncertainty.m", tr->s_opt.m, (int64_t)sizeof(float) * tr->s_opt.n, 1, e);
    if (!rc && tr->s_opt.v)
        rc = get_bytes(&c, path, "state.uncertainty.v", tr->s_opt.v, (int64_t)sizeof(float) * tr->s_opt.n, 1, e);
    if (!rc && tr->hP) {
        int64_t nb = (int64_t)sizeof(float) * tr->h_opt.n;
        rc = get_bytes(&c, path, "state.hint.P", tr->hP, nb, 1, e);
        if (!rc) rc = get_bytes(&c, path, "state.hint.m", tr->h_opt.m, nb, 1, e);
        if (!rc) rc = get_bytes(&c, path, "state.hint.v", tr->h_opt.v, nb, 1, e);
    }
    if (rc) goto out;
    unpack_scalars(tr, opt, ls, res, sc);
    for (int64_t i = 0; i < nt; i++)
        if (tidx[i] < 0 || tidx[i] >= d->n) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s: corrupt sample order", path);
            goto out;
        }
    const mtc_json *h = mtc_json_get(&meta, "history");
    if (!h || h->type != MTC_JARR || h->n != ls->ep) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: history does not match the epoch count", path);
        goto out;
    }
    for (int i = 0; i < h->n; i++) mtc_jw_value(hist, &h->items[i]);
    res->epochs_run = ls->ep;
out:
    if (have_tmp) mtc_model_free(&tmp);
    mtc_json_free(&meta);
    mtc_ckpt_free(&c);
    return rc;
}

/* ---- --shard-data: every rank trains on its own samples ------------------------
 * Rank r holds its shard of the split and its own train/validation split of
 * it; each step it takes b_r = B(r+1)/N - B r/N rows of its own epoch order
 * (a shuffle drawn from (seed, rank, epoch): a resumed run redraws it), so
 * the global batch is still B. An epoch is the steps the smallest share
 * fills: min over ranks of ceil(n_r / b_r); a larger shard's tail waits for
 * a later epoch's order. Validation metrics are the ranks' labelled-sample
 * weighted means (exact for accuracy, MAE and the losses). */
typedef struct shard_plan {
    int64_t *nt;     /* every rank's training samples */
    int64_t steps, nv_all;
} shard_plan;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int shard_b(int B, int k, int N) { return (int)((int64_t)B * (k + 1) / N - (int64_t)B * k / N); }

static int shard_plan_init(shard_plan *sp, const mtc_train_cfg *cfg, int64_t nt, int64_t nv, mtc_err *e)
{
    const int N = mtc_comm_size(), r = mtc_comm_rank();
    if (cfg->task_sampling != MTC_SAMPLE_PROPORTIONAL)
        return mtc_err_set(e, MTC_EINPUT, "--shard-data: --task-sampling %s is not supported (proportional is)",
                           mtc_task_sampling_name(cfg->task_sampling));
    if (cfg->batch < N) return mtc_err_set(e, MTC_EINPUT, "--shard-data: --batch %d is smaller than the %d ranks", cfg->batch, N);
    double *v = calloc((size_t)N + 1, sizeof(double));
    if (!v || !(sp->nt = malloc(sizeof(int64_t) * (size_t)N))) {
        free(v);
        return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    }
    v[r] = (double)nt, v[N] = (double)nv;
    mtc_comm_sum_f64(v, N + 1);
    sp->steps = INT64_MAX;
    for (int k = 0; k < N; k++) {
        sp->nt[k] = (int64_t)v[k];
        int64_t b = shard_b(cfg->batch, k, N), st = (sp->nt[k] + b - 1) / b;
        sp->steps = st < sp->steps ? st : sp->steps;
    }
    sp->nv_all = (int64_t)v[N];
    free(v);
    return 0;
}

static int shard_epoch(trainer *tr, const shard_plan *sp, mtc_optim *opt, int64_t *tidx, int64_t nt, int ep,
                       int64_t *step, int64_t total, double *lsum, float *lr, mtc_rng *rng, int64_t *ep_samples,
                       double t0, mtc_err *e)
{
    const mtc_train_cfg *cfg = tr->cfg;
    const int N = mtc_comm_size(), r = mtc_comm_rank(), b = shard_b(cfg->batch, r, N);
    qsort(tidx, (size_t)nt, sizeof *tidx, cmp_i64);
    mtc_rng er;
    mtc_rng_seed(&er, cfg->seed ^ 0x7368617264ULL ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(r + 1)) ^
                          ((uint64_t)(ep + 1) * 0xbf58476d1ce4e5b9ULL));
    mtc_shuffle_i64(&er, tidx, nt);
    *ep_samples = 0;
    for (int64_t k = 0; k < sp->steps; k++, (*step)++) {
        int64_t off = k * b, bb = nt - off < b ? nt - off : b, g = 0;
        for (int q = 0; q < N; q++) { /* this step's rows over the ranks */
            int64_t bq = shard_b(cfg->batch, q, N), left = sp->nt[q] - k * bq;
            g += left < bq ? left : bq;
        }
        tr->step_global = (int)g;
        *lr = mtc_sched_lr(&cfg->sched, *step, total);
        tr->steps_done = *step;
        double loss[MTC_MAX_TASKS];
        int bad = train_step(tr, opt, tidx + off, (int)bb, *lr, rng, loss);
        if (bad)
            return mtc_err_set(e, MTC_EINPUT, "loss of task '%s' became non-finite at epoch %d step %lld (lower --lr?)",
                               tr->m->spec.tasks[bad - 1].name, ep + 1, (long long)k);
        for (int t = 0; t < tr->T; t++) lsum[t] += loss[t] * (double)g;
        *ep_samples += g;
        if (cfg->step_progress && (*step % 16 == 0))
            cfg->step_progress(cfg->progress_ctx, ep + 1, cfg->epochs, *ep_samples, sp->steps * cfg->batch, now_s() - t0);
    }
    return 0;
}

static int shard_validate(trainer *tr, const mtc_dataset *d, const int64_t *vidx, int64_t nv, int B,
                          mtc_epoch_stats *st, double *vloss, mtc_err *e)
{
    double v[3 * MTC_MAX_TASKS] = {0}; /* per task: loss x n, metric x n, n */
    mtc_task_eval ev[MTC_MAX_TASKS];
    if (nv > 0) {
        int rc = mtc_evaluate(tr->m, d, vidx, nv, B, ev, e);
        if (rc) return rc;
    }
    for (int t = 0; t < tr->T; t++) {
        st->val_metric_name[t] = tr->m->spec.tasks[t].kind == MTC_TASK_REG ? "mae" : "accuracy";
        if (nv > 0 && ev[t].n > 0) {
            double n = (double)ev[t].n;
            v[3 * t] = ev[t].loss * n;
            v[3 * t + 1] = mtc_task_eval_primary(&ev[t], &st->val_metric_name[t]) * n;
            v[3 * t + 2] = n;
        }
    }
    if (nv > 0) mtc_task_eval_free(ev, tr->T);
    mtc_comm_sum_f64(v, 3 * tr->T);
    *vloss = 0;
    for (int t = 0; t < tr->T; t++) {
        double n = v[3 * t + 2];
        st->val_metric[t] = n > 0 ? v[3 * t + 1] / n : NAN;
        *vloss += n > 0 ? tr->m->spec.tasks[t].weight * v[3 * t] / n : 0.0;
    }
    return 0;
}

/* MPI: every rank's parameters (and batchnorm statistics) hash to rank 0's
 * after an epoch, or the job stops naming the first rank that differs. */
static int ranks_agree(const mtc_model *m, int ep, uint64_t *hash, mtc_err *e)
{
    const int N = mtc_comm_size(), r = mtc_comm_rank();
    uint64_t h = mtc_fnv1a64(m->params, sizeof(float) * (size_t)m->nparams, 0);
    h = mtc_fnv1a64(m->stats, sizeof(float) * (size_t)m->nstats, h);
    double *v = calloc(2 * (size_t)N, sizeof *v); /* each rank's hash as two exact 32-bit halves */
    if (!v) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    v[2 * r] = (double)(h >> 32), v[2 * r + 1] = (double)(h & 0xffffffffu);
    mtc_comm_sum_f64(v, 2 * N);
    int rc = 0;
    for (int k = 1; k < N && !rc; k++)
        if (v[2 * k] != v[0] || v[2 * k + 1] != v[1])
            rc = mtc_err_set(e, MTC_EINTERNAL, "after epoch %d the parameters of rank %d (hash %08llx%08llx) differ from "
                             "rank 0's (%08llx%08llx)", ep + 1, k, (unsigned long long)v[2 * k],
                             (unsigned long long)v[2 * k + 1], (unsigned long long)v[0], (unsigned long long)v[1]);
    free(v);
    *hash = h;
    return rc;
}

uint64_t mtc_train_split_seed(const mtc_train_cfg *cfg)
{
    return cfg->val_seed ? cfg->val_seed : cfg->seed;
}

int mtc_train(mtc_model *m, const mtc_dataset *d, const mtc_train_cfg *cfg, mtc_train_result *res, mtc_err *e)
{
    memset(res, 0, sizeof *res);
    trainer tr;
    int rc = trainer_init(&tr, m, d, cfg, e);
    int64_t *tidx = NULL, *vidx = NULL, nt = 0, nv = 0;
    mtc_optim opt = {0};
    mtc_jw hist;
    mtc_jw_init(&hist);
    mtc_jw_arr(&hist);
    if (!rc) rc = mtc_data_split(d->n, d->group, cfg->val_frac, mtc_train_split_seed(cfg), &tidx, &nt, &vidx, &nv, e);
    int any_soft = 0;
    for (int t = 0; t < tr.T; t++) any_soft |= soft_kind_ok(cfg, t);
    if (!rc && !any_soft) { /* without soft labels a sample with no label teaches nothing: skip it */
        int64_t k = 0;
        for (int64_t j = 0; j < nt; j++) {
            int64_t i = tidx[j];
            int lab = 0;
            for (int t = 0; t < tr.T && !lab; t++)
                lab = tr.labels[t] ? tr.labels[t][i] != MTC_LABEL_MISSING
                                   : mtc_row_labelled(tr.targets[t] + i * m->spec.tasks[t].dim, m->spec.tasks[t].dim);
            if (lab) tidx[k++] = i;
        }
        nt = k;
    }
    if (!rc && nt < 1) rc = mtc_err_set(e, MTC_EINPUT, "%s: no training samples left after the validation split", d->name);
    shard_plan sp = {0};
    if (!rc && tr.sharded) rc = shard_plan_init(&sp, cfg, nt, nv, e);
    pools pl = {.T = tr.T};
    for (int t = 0; !rc && cfg->task_sampling != MTC_SAMPLE_PROPORTIONAL && t < tr.T; t++)
        if (!(pl.idx[t] = malloc((size_t)nt * sizeof(int64_t))) || (!t && !(pl.batch = malloc((size_t)cfg->batch * sizeof(int64_t)))))
            rc = mtc_err_set(e, MTC_ENOMEM, "training: out of memory");
    if (!rc) rc = mtc_optim_init(&opt, &cfg->opt, m->nparams, e);
    if (rc) goto done;
    mtc_rng rng;
    mtc_rng_seed(&rng, cfg->seed ^ 0x7261696eULL);
    int B = cfg->batch;
    int64_t steps_per_epoch = tr.sharded ? sp.steps : (nt + B - 1) / B, total = steps_per_epoch * cfg->epochs;
    double t_start = now_s();
    loop_state ls = {0, 0, INFINITY, 0};
    if (cfg->resume_path) {
        if ((rc = state_load(cfg->resume_path, &tr, d, &opt, &rng, tidx, tr.sharded ? 0 : nt, &ls, res, &hist, e)))
            goto done;
    }
    int64_t step = ls.step;
    double best_val = ls.best_val;
    double rate_sum = 0; /* per-epoch samples/s of this process (not of a resumed part) */
    int rate_n = 0;
    int since_best = ls.since_best;
    double last_val[MTC_MAX_TASKS];
    for (int t = 0; t < MTC_MAX_TASKS; t++) last_val[t] = res->val_metric[t];
    mtc_model_apply_mask(m);
    for (int ep = ls.ep; ep < cfg->epochs; ep++) {
        if (cfg->patience > 0 && since_best >= cfg->patience) break;
        double t0 = now_s(), lsum[MTC_MAX_TASKS] = {0};
        tr.hint_loss = 0;
        float lr = 0;
        if (cfg->weighting == MTC_WEIGHT_DWA) dwa_update(&tr, ep);
        int64_t ep_samples = nt; /* over every rank */
        if (tr.sharded) {
            if ((rc = shard_epoch(&tr, &sp, &opt, tidx, nt, ep, &step, total, lsum, &lr, &rng, &ep_samples, t0, e))) goto done;
        } else {
            mtc_shuffle_i64(&rng, tidx, nt);
        }
        if (cfg->task_sampling != MTC_SAMPLE_PROPORTIONAL) {
            /* each task's labelled samples, in this epoch's order; a batch from one of them */
            for (int t = 0; t < tr.T; t++) {
                pl.n[t] = pl.pos[t] = 0;
                for (int64_t j = 0; j < nt; j++) {
                    int64_t i = tidx[j];
                    int D = m->spec.tasks[t].dim;
                    if (tr.labels[t] ? tr.labels[t][i] != MTC_LABEL_MISSING : mtc_row_labelled(tr.targets[t] + i * D, D))
                        pl.idx[t][pl.n[t]++] = i;
                }
            }
            for (int64_t k = 0; k < steps_per_epoch; k++, step++) {
                double loss[MTC_MAX_TASKS];
                int t = pool_task(&pl, k, cfg->task_sampling, cfg->sampling_temp, &rng);
                const int64_t *bi = pool_batch(&pl, t, B, &rng);
                lr = mtc_sched_lr(&cfg->sched, step, total);
                tr.steps_done = step; /* the global step: a resumed run samples the same steps */
                int bad = train_step(&tr, &opt, bi, B, lr, &rng, loss);
                if (bad) {
                    rc = mtc_err_set(e, MTC_EINPUT, "loss of task '%s' became non-finite at epoch %d step %lld (lower --lr?)",
                                     m->spec.tasks[bad - 1].name, ep + 1, (long long)k);
                    goto done;
                }
                for (int u = 0; u < tr.T; u++) lsum[u] += loss[u] * B * ((double)nt / ((double)steps_per_epoch * B));
                if (cfg->step_progress && (step % 16 == 0))
                    cfg->step_progress(cfg->progress_ctx, ep + 1, cfg->epochs, (k + 1) * B < nt ? (k + 1) * B : nt, nt,
                                       now_s() - t0);
            }
        }
        for (int64_t s = 0; s < nt && !tr.sharded && cfg->task_sampling == MTC_SAMPLE_PROPORTIONAL; s += B, step++) {
            int bb = (int)(nt - s < B ? nt - s : B);
            double loss[MTC_MAX_TASKS];
            lr = mtc_sched_lr(&cfg->sched, step, total);
            tr.steps_done = step;
            int bad = train_step(&tr, &opt, tidx + s, bb, lr, &rng, loss);
            if (bad) {
                rc = mtc_err_set(e, MTC_EINPUT, "loss of task '%s' became non-finite at epoch %d step %lld (lower --lr?)",
                                 m->spec.tasks[bad - 1].name, ep + 1, (long long)(step - ep * steps_per_epoch));
                goto done;
            }
            for (int t = 0; t < tr.T; t++) lsum[t] += loss[t] * bb;
            if (cfg->step_progress && (step % 16 == 0))
                cfg->step_progress(cfg->progress_ctx, ep + 1, cfg->epochs, s + bb, nt, now_s() - t0);
        }
        double dt = now_s() - t0;
        mtc_epoch_stats st;
        memset(&st, 0, sizeof st);
        st.epoch = ep + 1;
        st.epochs = cfg->epochs;
        st.ntasks = tr.T;
        st.lr = lr;
        st.hint_loss = tr.hint_loss / steps_per_epoch;
        st.samples_per_s = ep_samples / (dt > 1e-9 ? dt : 1e-9);
        for (int t = 0; t < tr.T; t++) {
            st.task_names[t] = m->spec.tasks[t].name;
            st.loss[t] = lsum[t] / ep_samples;
            st.weight[t] = tr.w[t];
            tr.prev_loss[1][t] = tr.prev_loss[0][t];
            tr.prev_loss[0][t] = st.loss[t];
        }
        /* validation (or training loss when there is no validation split) */
        double vloss = 0;
        if (tr.sharded && sp.nv_all > 0) {
            if ((rc = shard_validate(&tr, d, vidx, nv, B, &st, &vloss, e))) goto done;
        } else if (nv > 0) {
            mtc_task_eval ev[MTC_MAX_TASKS];
            if ((rc = mtc_evaluate(m, d, vidx, nv, B, ev, e))) goto done;
            for (int t = 0; t < tr.T; t++) {
                st.val_metric[t] = mtc_task_eval_primary(&ev[t], &st.val_metric_name[t]);
                vloss += m->spec.tasks[t].weight * ev[t].loss;
            }
            mtc_task_eval_free(ev, tr.T);
        } else {
            for (int t = 0; t < tr.T; t++) {
                vloss += m->spec.tasks[t].weight * st.loss[t];
                st.val_metric[t] = NAN;
                st.val_metric_name[t] = "none";
            }
        }
        st.val_loss = vloss;
        for (int t = 0; t < tr.T; t++) last_val[t] = st.val_metric[t];
        st.elapsed_s = now_s() - t_start;
        st.eta_s = st.elapsed_s / (ep + 1) * (cfg->epochs - ep - 1);
        if (tr.cf_dW) { /* the epoch's mean cosine per pair (NaN when no sample had both) */
            st.nconflict = tr.T * (tr.T - 1) / 2;
            for (int p = 0; p < st.nconflict; p++) {
                st.conflict[p] = tr.cf_n[p] ? tr.cf_sum[p] / (double)tr.cf_n[p] : NAN;
                tr.cf_sum[p] = 0, tr.cf_n[p] = 0;
            }
        }
        if (mtc_comm_size() > 1 && (rc = ranks_agree(m, ep, &st.param_hash, e))) goto done;
        history_epoch(&hist, &st);
        res->epochs_run = ep + 1;
        res->samples_per_s = st.samples_per_s;
        rate_sum += st.samples_per_s;
        res->samples_per_s_mean = rate_sum / ++rate_n;
        if (vloss < best_val || !isfinite(best_val)) {
            best_val = vloss;
            res->best_epoch = ep + 1;
            memcpy(tr.best, m->params, (size_t)m->nparams * sizeof(float));
            memcpy(tr.best_stats, m->stats, (size_t)m->nstats * sizeof(float));
            for (int t = 0; t < tr.T; t++) res->val_metric[t] = st.val_metric[t];
            since_best = 0;
        } else {
            since_best++;
        }
        for (int t = 0; t < tr.T; t++) res->weight[t] = tr.w[t];
        if (cfg->progress) cfg->progress(cfg->progress_ctx, &st);
        if (cfg->checkpoint_path && cfg->checkpoint_every > 0 &&
            ((ep + 1) % cfg->checkpoint_every == 0 || ep + 1 == cfg->epochs)) {
            loop_state now = {ep + 1, step, best_val, since_best};
            /* sharded: each epoch's order comes from (seed, rank, epoch); none is stored */
            if ((rc = state_save(cfg->checkpoint_path, &tr, d, &opt, &rng, tidx, tr.sharded ? 0 : nt, &now, res, &hist,
                                 e)))
                goto done;
        }
    }
    for (int t = 0; t < tr.T; t++) res->weight[t] = tr.w[t];
    /* With early stopping the best epoch's parameters are kept; otherwise the
     * last epoch's, as every other trainer does (validation loss often
     * bottoms out epochs before accuracy stops improving). */
    if (cfg->patience > 0) {
        memcpy(m->params, tr.best, (size_t)m->nparams * sizeof(float));
        memcpy(m->stats, tr.best_stats, (size_t)m->nstats * sizeof(float));
    } else {
        res->best_epoch = res->epochs_run;
        for (int t = 0; t < tr.T; t++) res->val_metric[t] = last_val[t];
    }
    mtc_jw_arr_end(&hist);
    res->history_json = hist.buf;
    hist.buf = NULL;
done:
    free(sp.nt);
    pools_free(&pl);
    mtc_jw_free(&hist);
    mtc_optim_free(&opt);
    free(tidx);
    free(vidx);
    trainer_free(&tr);
    return rc;
}
