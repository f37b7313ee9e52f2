/*
 * mtc/prune.h — pruning (the prune/ folder): unstructured magnitude pruning
 * (global or per layer), the gradual AGP schedule with (KD) fine-tuning,
 * per-task budgets, per-layer per-task sensitivity, and structured removal of
 * neurons / conv channels that writes a genuinely smaller model.
 *
 * Prunable weights: the weight tensors of dense and conv layers of the trunk
 * (every MMoE expert) and of every head, including each head's output layer.
 * Never biases, norms or MMoE gates. A head's output layer keeps at least one
 * weight per output row, so no output becomes a constant.
 *
 * Unstructured pruning sets m->mask (created when NULL) and zeros the pruned
 * weights; mtc_train re-applies the mask after every optimizer step, and a
 * pruned model is saved as "<layer>.weight_bits" + "<layer>.weight_nz"
 * (mtc/model.h), so pruned weights stay exactly 0.
 *
 * Budgets and sensitivities are measured on the validation split that
 * mtc_train holds out (mtc_data_split(n, val_frac, seed)), never on test.
 * A drop is in "points": 100·(before − after) of the accuracy for cls/bin
 * tasks, the increase of the MAE (label units) for reg tasks.
 */
#ifndef MTC_PRUNE_H
#define MTC_PRUNE_H

typedef enum { MTC_PRUNE_GLOBAL = 0, MTC_PRUNE_LAYER } mtc_prune_scope;

/* Prunable layers of m in mtc_model_for_each_layer order (gates skipped).
 * *layers is malloc'd (caller frees); *n may be 0. */
int mtc_prune_layers(mtc_model *m, mtc_layer ***layers, int *n, mtc_err *e);
/* 1 when L is the output dense layer of a head. */
int mtc_prune_is_output(const mtc_model *m, const mtc_layer *L);

/* Magnitude pruning to `sparsity` in [0, 1) of the prunable weights, counted
 * over all of them (GLOBAL) or in each layer (LAYER): the round(s·N)
 * smallest |w| are masked and zeroed. Weights already masked rank first
 * (so a schedule only grows the mask); ties are broken by parameter index
 * (lower index pruned first). Output rows keep their largest weight; the
 * count is made up by the next-smallest weights elsewhere. `only` != NULL
 * restricts pruning to that one layer (sensitivity scans). */
int mtc_prune_magnitude(mtc_model *m, double sparsity, int scope,
                        const mtc_layer *only, mtc_err *e);

/* Zero weights / total over the prunable weights (m->params == 0.0f). */
double mtc_prune_sparsity(mtc_model *m, int64_t *zeros, int64_t *total);
/* Same for one layer's weight tensor. */
double mtc_prune_layer_sparsity(const mtc_model *m, const mtc_layer *L,
                                int64_t *zeros);

/* AGP (Zhu & Gupta 2017), step t of n (t = 0..n, clamped):
 *   s_t = s_f + (s_i − s_f)·(1 − t/n)³ */
double mtc_agp_sparsity(double s_i, double s_f, int t, int n);

/* ---- per-task budgets -------------------------------------------------- */
typedef struct mtc_prune_protect {
    int n;
    int task[MTC_MAX_TASKS];      /* model task index */
    double budget[MTC_MAX_TASKS]; /* allowed drop in points (see above) */
} mtc_prune_protect;
/* "fashion=0.5,super=1" -> tasks by name; errors name --protect. */
int mtc_prune_protect_parse(const mtc_model *m, const char *s,
                            mtc_prune_protect *p, mtc_err *e);
/* Headline metric per task on samples idx: accuracy (cls/bin, 0..1) or MAE. */
int mtc_prune_eval_primary(mtc_model *m, const mtc_dataset *d,
                           const int64_t *idx, int64_t n, double *out,
                           mtc_err *e);
/* Drop in points of task kind `kind` going from before to after. */
double mtc_prune_drop(int kind, double before, double after);
/* 1 when every protected task's drop from base to now is within budget. */
int mtc_prune_within_budget(const mtc_model *m, const mtc_prune_protect *p,
                            const double *base, const double *now);

/* ---- one-shot and gradual pruning -------------------------------------- */
typedef struct mtc_prune_cfg {
    double sparsity;          /* final target s_f in [0, 1) */
    int scope;                /* mtc_prune_scope */
    int agp;                  /* 0: one shot; 1: AGP schedule */
    int steps;                /* AGP steps n (>= 1) */
    double initial_sparsity;  /* AGP s_i */
    int finetune_epochs;      /* per AGP step; one shot: once after pruning */
    mtc_train_cfg train;      /* fine-tune settings (epochs is overwritten;
                                 val_frac/seed also define the val split) */
    mtc_prune_protect protect;
    int search_iters;         /* one shot + protect: bisection steps (12) */
    /* One line per step ("agp step 3/10: sparsity 0.7037 ..."). */
    void (*progress)(void *ctx, const char *line);
    void *progress_ctx;
} mtc_prune_cfg;
/* sparsity 0.5, global, one shot (AGP: 10 steps from 0), no fine-tune,
 * train = mtc_train_cfg_default keeping the standardisation; `mtc prune`
 * starts from these and prints them in --help (it requires --sparsity). */
void mtc_prune_cfg_default(mtc_prune_cfg *c);

typedef struct mtc_prune_result {
    double sparsity;              /* reached, over the prunable weights */
    double target;                /* cfg->sparsity */
    int steps_done;               /* AGP steps kept */
    int limited_by_budget;        /* --protect stopped / backed off */
    int ntasks;
    double val_before[MTC_MAX_TASKS], val_after[MTC_MAX_TASKS];
} mtc_prune_result;
/* Prunes m in place on data d (train split). With protect, one shot
 * bisects the sparsity in [0, target] (before any fine-tune) so that no
 * protected task drops past its budget; AGP keeps the last step (after its
 * fine-tune) that is within budget and stops. */
int mtc_prune_run(mtc_model *m, const mtc_dataset *d, const mtc_prune_cfg *cfg,
                  mtc_prune_result *res, mtc_err *e);

/* ---- sensitivity ---------------------------------------------------------- */
typedef struct mtc_prune_sensitivity {
    int nlayers, ngrid, ntasks;
    char (*layer)[96];        /* nlayers names */
    int64_t *layer_weights;   /* nlayers weight counts */
    double *grid;             /* ngrid sparsities */
    double base[MTC_MAX_TASKS];
    double *metric;           /* [(l·ngrid + g)·ntasks + t] primary metric */
} mtc_prune_sensitivity;
/* Each prunable layer alone at each grid sparsity (layer scope), the other
 * layers untouched; metric per task on samples idx. m is restored. */
int mtc_prune_sensitivity_scan(mtc_model *m, const mtc_dataset *d,
                               const int64_t *idx, int64_t n,
                               const double *grid, int ngrid,
                               mtc_prune_sensitivity *out, mtc_err *e);
void mtc_prune_sensitivity_free(mtc_prune_sensitivity *s);

/* ---- structured removal -------------------------------------------------- */
typedef enum { MTC_STRUCT_NEURONS = 0, MTC_STRUCT_CHANNELS } mtc_struct_kind;
typedef enum { MTC_RANK_L1 = 0, MTC_RANK_L2, MTC_RANK_TAYLOR } mtc_rank_kind;
typedef struct mtc_struct_cfg {
    int kind;           /* neurons: hidden dense layers; channels: convs */
    double keep;        /* fraction of units kept per layer, (0, 1] */
    int rank;           /* mtc_rank_kind */
    /* taylor: |w·∂L/∂w| summed per unit over `batches` batches of `batch`
     * samples idx[0..n) of d (hard-label task losses, spec weights) */
    const mtc_dataset *d;
    const int64_t *idx;
    int64_t n;
    int batches, batch;
} mtc_struct_cfg;
/* neurons, keep 0.5, rank l1, taylor over 8 batches of 128; `mtc prune`
 * starts from these and prints them in --help. */
void mtc_struct_cfg_default(mtc_struct_cfg *c);
/* Builds *out, a new dense model without the lowest-ranked units of every
 * cuttable layer (ties: higher index removed first), their rows of W and b,
 * the matching input columns / channels of the consumers (next dense or
 * conv, batchnorm slices, every head's first layer when the trunk's last
 * layer is cut) and, when m has a mask, the matching mask entries. Head
 * output layers are never cut. out->spec_text is m's spec text with the
 * units / filters rewritten. MMoE models are refused (MTC_EINPUT). Layers
 * followed by a layernorm before their consumer are left whole.
 * removed[] (may be NULL) receives the number of units cut. */
int mtc_prune_structured(mtc_model *m, const mtc_struct_cfg *cfg,
                         mtc_model *out, int64_t *removed, mtc_err *e);

#endif
