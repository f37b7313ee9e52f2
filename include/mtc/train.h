/*
 * mtc/train.h — the multi-task training loop (core/train.c), shared by
 * `mtc train`, `mtc distill` (soft targets) and pruning fine-tunes (masks).
 *
 * Per step: total loss = sum_t w_t * L_t where L_t is the task loss (or the
 * KD loss when soft targets are given) and w_t comes from the weighting
 * scheme:
 *   fixed        w_t = spec weight
 *   uncertainty  Kendall et al. 2018: L = sum_t exp(-s_t) L_t + s_t, with
 *                s_t = log sigma_t^2 learned by the same optimizer; w_t = exp(-s_t)
 *   gradnorm     Chen et al. 2018: w_t learned so that the gradient norms
 *                G_t = ||d(w_t L_t)/dW|| on the last shared layer W follow
 *                G_mean * r_t^alpha, r_t = relative inverse training rate;
 *                weights renormalised to sum to the task count
 *   dwa          Liu et al. 2019: w_t = T exp(r_t/temp) / sum_j exp(r_j/temp),
 *                r_t = L_t(e-1) / L_t(e-2), per epoch
 */
#ifndef MTC_TRAIN_H
#define MTC_TRAIN_H

typedef enum {
    MTC_WEIGHT_FIXED = 0, MTC_WEIGHT_UNCERTAINTY, MTC_WEIGHT_GRADNORM, MTC_WEIGHT_DWA
} mtc_weighting;
int mtc_weighting_parse(const char *s); /* -1 if unknown */
const char *mtc_weighting_name(int w);

/* What a batch holds when tasks are labelled on different samples (joined
 * data sets):
 *   proportional  every training sample once per epoch in a shuffled order
 *                 (tasks come as often as they have samples; the default)
 *   round-robin   batch k holds samples labelled for task k mod T
 *   temperature   each batch's task drawn with p_t ∝ n_t^(1/T), T =
 *                 sampling_temp (T = 1 proportional, large T uniform)
 * The non-default modes run as many batches per epoch as proportional, each
 * from its task's labelled samples (reshuffled when used up). */
typedef enum { MTC_SAMPLE_PROPORTIONAL = 0, MTC_SAMPLE_ROUND_ROBIN, MTC_SAMPLE_TEMPERATURE } mtc_task_sampling;
int mtc_task_sampling_parse(const char *s); /* -1 if unknown */
const char *mtc_task_sampling_name(int k);

/* Soft targets for distillation, indexed by dataset sample: v[t] is
 * (n, dim_t) teacher logits (cls/bin) or outputs in label units (reg), for
 * model task t; NULL = this task trains on hard labels only. */
/* Soft labels in memory: v[t] holds copies*n rows of dim[t] values, row
 * k*n + i for view k of sample i (copies 1: the samples themselves; more:
 * `mtc label --augment-copies`, views rebuilt with mtc_data_view(aug,
 * aug_seed, i, k)). */
typedef struct mtc_soft {
    int64_t n;
    float *v[MTC_MAX_TASKS];
    int dim[MTC_MAX_TASKS];
    int copies, aug;
    uint64_t aug_seed;
} mtc_soft;

typedef struct mtc_epoch_stats {
    int epoch, epochs;          /* 1-based */
    int ntasks;
    const char *task_names[MTC_MAX_TASKS];
    double loss[MTC_MAX_TASKS];   /* mean training loss per task */
    double weight[MTC_MAX_TASKS]; /* task weight at the end of the epoch */
    double val_metric[MTC_MAX_TASKS]; /* accuracy (cls/bin) or MAE (reg) */
    const char *val_metric_name[MTC_MAX_TASKS];
    double val_loss;            /* weighted validation loss */
    double hint_loss;           /* mean hint loss per step (0 when off) */
    double lr, samples_per_s, elapsed_s, eta_s;
    /* task conflict: mean cosine between each pair of tasks' gradients on
     * the shared parameters (pairs (0,1), (0,2), ..., (1,2), ...) */
    int nconflict;
    double conflict[MTC_MAX_TASKS * (MTC_MAX_TASKS - 1) / 2];
    /* MPI: FNV-1a of the parameters and batchnorm statistics at the end of
     * the epoch, checked equal on every rank (training stops with an error
     * naming the rank otherwise); 0 in one process */
    uint64_t param_hash;
} mtc_epoch_stats;
typedef void (*mtc_progress_fn)(void *ctx, const mtc_epoch_stats *s);
/* Within an epoch, every few steps: samples done of n, seconds so far. */
typedef void (*mtc_step_fn)(void *ctx, int epoch, int epochs, int64_t done, int64_t n, double seconds);

typedef struct mtc_train_cfg {
    int epochs, batch;
    mtc_optim_cfg opt;
    mtc_sched sched;            /* sched.lr is the base learning rate,
                                   default const 1e-3 (step: step_size 1000,
                                   gamma 0.1) */
    int weighting;              /* mtc_weighting */
    float gradnorm_alpha;       /* default 1.5 */
    float weight_lr;            /* GradNorm weight learning rate, default 0.025 */
    float dwa_temp;             /* default 2 */
    int task_sampling;          /* mtc_task_sampling, default proportional */
    /* task conflict: every this many steps the cosine between each pair of
     * tasks' gradients on the shared parameters (each expert's last trunk
     * layer, when dense or conv) is sampled; the epoch means go to the
     * history ("conflict"). 0 = off; default 50: the FMNIST MLP student
     * trained at 175,206-175,862 samples/s against 170,346-175,939 off,
     * 165,602 every 25 steps. */
    int conflict_every;
    float sampling_temp;        /* temperature sampling's T, default 2 */
    double val_frac;            /* held out of the training split, default 0.1 */
    uint64_t val_seed;          /* seed of that split; 0 = seed (the default) */
    int patience;               /* early stopping on val loss, 0 = off; when on,
                                   the best epoch's parameters are kept, else
                                   the last epoch's */
    int aug;                    /* MTC_AUG_* */
    uint64_t seed;
    int keep_standardisation;   /* reg targets: keep model's mean/std */
    const mtc_soft *soft;       /* KD: NULL = plain training */
    /* KD per task: temperature and the soft term's weight, default T = 2,
     * alpha = 0.5 (chosen on the validation split, docs/distill.md) */
    float kd_T[MTC_MAX_TASKS], kd_alpha[MTC_MAX_TASKS];
    /* KD: correct the teacher where it is wrong on a labelled sample before
     * the soft term sees it ("probability shift", Wen et al. 2019): cls swaps
     * the teacher's top logit with the true class's, bin flips the sign of a
     * logit on the wrong side of 0; reg is left alone. 0 = off (default). */
    int kd_correct;
    /* Hint loss (FitNets-style): beta * mean_b ||P h_s(b) - h_t(b)||^2 / Dt
     * between the student's trunk output h_s (hard sharing only) and the
     * teacher's stored trunk output h_t (n, hint_dim), through a learned
     * linear projection P (hint_dim x trunk_out) that is discarded after
     * training. hints NULL or hint_weight 0 = off. */
    const float *hints;
    int hint_dim;
    float hint_weight;
    mtc_progress_fn progress;
    void *progress_ctx;
    mtc_step_fn step_progress;  /* optional, same ctx as progress */
    /* Resumable state: every `checkpoint_every` epochs (0 = off) the whole
     * training state (parameters, optimizer moments, RNG, sample order, task
     * weights, best epoch, history) is written atomically to
     * `checkpoint_path`. `resume_path` continues from such a file; with the
     * same settings, seed and threads the result is bit-identical to an
     * uninterrupted run. */
    const char *checkpoint_path;
    int checkpoint_every;
    const char *resume_path;
    /* MPI: sum the gradients bucket by bucket (about 1 MiB each) on a
     * thread of their own while the backward pass produces the rest; the
     * same bytes as summing after it (docs/scaling.md). 0 = after it. */
    int overlap;
} mtc_train_cfg;
/* The defaults of every field, and the only place they are written: the CLI
 * reads its defaults (and its --help) from here. Adam, 5 epochs, batch 128,
 * fixed weighting, seed 1. */
void mtc_train_cfg_default(mtc_train_cfg *c);

typedef struct mtc_train_result {
    int epochs_run, best_epoch;
    double val_metric[MTC_MAX_TASKS];
    double weight[MTC_MAX_TASKS];
    double samples_per_s;       /* the last epoch's rate */
    double samples_per_s_mean;  /* mean of the epochs' rates in this run */
    char *history_json;         /* JSON array, one object per epoch; free() */
} mtc_train_result;

/* The seed that draws the validation split: val_seed, or seed when 0. */
uint64_t mtc_train_split_seed(const mtc_train_cfg *cfg);
/* Trains m in place on d (training split; cfg->val_frac of it held out for
 * validation and early stopping). */
int mtc_train(mtc_model *m, const mtc_dataset *d, const mtc_train_cfg *cfg,
              mtc_train_result *res, mtc_err *e);

/* Per-task evaluation of m on samples idx of d (all when idx NULL). */
typedef struct mtc_task_eval {
    int kind, dim;
    mtc_cls_metrics cls;        /* cls */
    mtc_bin_metrics bin;        /* bin */
    mtc_reg_metrics reg;        /* reg */
    double loss;                /* cls CE, bin BCE, reg MSE/var(target) */
    int64_t n;                  /* samples labelled for the task: what the metrics are over */
} mtc_task_eval;
int mtc_evaluate(mtc_model *m, const mtc_dataset *d, const int64_t *idx,
                 int64_t n, int batch, mtc_task_eval *out, mtc_err *e);
/* Same, from outputs already computed (outs[t] (n, dim), label units). */
int mtc_evaluate_outputs(const mtc_model *m, const mtc_dataset *d,
                         const int64_t *idx, int64_t n, float *const *outs,
                         mtc_task_eval *out, mtc_err *e);
void mtc_task_eval_free(mtc_task_eval *ev, int ntasks);
/* Task t's calibration (mtc_calibration) from its outputs out (d->n rows of
 * logits) on the samples labelled for it; cls and bin tasks only. */
int mtc_task_calibration(const mtc_model *m, const mtc_dataset *d, int t, const float *out, int nbins,
                         mtc_reliability *c, mtc_err *e);
/* Headline metric: accuracy for cls/bin, MAE for reg. */
double mtc_task_eval_primary(const mtc_task_eval *ev, const char **name);

#endif
