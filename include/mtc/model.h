/*
 * mtc/model.h — model spec, multi-task model (trunk + heads, optional MMoE),
 * and the training loop (core/spec.c, core/model.c, core/train.c).
 *
 * Spec file (INI-like): a section header, then key = value pairs on the same
 * line or the following lines. `#` starts a comment.
 *   [input]   shape = 1x28x28          (CSV: columns = a,b,c or all)
 *   [mmoe]    experts = 4              (optional: soft sharing)
 *   [conv]    filters = 32 size = 3 stride = 1 pad = 1 act = relu
 *             (groups = G: grouped; groups = C, filters = C·m: depthwise)
 *   [residual] ... [add] act = relu: a residual block, the layers between
 *             adding their output to the block's input (same shape)
 *   [maxpool] size = 2                 [avgpool] size = 2
 *   [dense]   units = 256 act = relu   [flatten]
 *   [act]     fn = gelu                [dropout] p = 0.2
 *   [batchnorm]                        [layernorm]
 *   [task fashion] kind = cls classes = 10 weight = 1.0 smoothing = 0.0
 *   [task super]   kind = cls classes = 4 from = fashion:0,1,0,0,0,2,0,2,3,2
 *   [task ink]     kind = reg outputs = 1 loss = mse|mae|huber column = ink
 *   [head fashion] then layers: hidden layers of that task's head
 * Layers before the first [task]/[head] form the trunk. Each task's head is
 * its [head NAME] layers followed by a dense layer to the task's outputs.
 */
#ifndef MTC_MODEL_H
#define MTC_MODEL_H

#define MTC_MAX_LAYERS 64
#define MTC_MAX_EXPERTS 16

typedef enum mtc_layer_type {
    MTC_L_DENSE = 0, MTC_L_CONV, MTC_L_MAXPOOL, MTC_L_AVGPOOL, MTC_L_FLATTEN,
    MTC_L_ACT, MTC_L_DROPOUT, MTC_L_BATCHNORM, MTC_L_LAYERNORM,
    MTC_L_RESIDUAL, /* opens a residual block: remembers its input */
    MTC_L_ADD       /* closes it: output = act(block output + block input) */
} mtc_layer_type;
const char *mtc_layer_type_name(int type);

typedef struct mtc_layer_spec {
    int type;
    int units;                  /* dense */
    int filters, size, stride, pad; /* conv / pool */
    int groups;                 /* conv: 0/1 = dense, G = grouped, C = depthwise */
    int act;                    /* dense/conv fused activation, act layer fn */
    float p;                    /* dropout */
    int line;                   /* spec line, for messages */
} mtc_layer_spec;

typedef struct mtc_task_spec {
    char name[MTC_NAME_MAX];
    int kind;             /* mtc_task_kind */
    int dim;              /* classes / outputs */
    float weight;         /* fixed loss weight (default 1) */
    int loss;             /* reg: mtc_reg_loss */
    float smoothing;      /* cls label smoothing */
    float huber_delta;
    char from[MTC_NAME_MAX]; /* derived: source task, "" if none */
    int nmap;
    int32_t map[256];     /* source class -> this task's class */
    char column[MTC_NAME_MAX]; /* CSV column, "" = name */
    int nhead;
    mtc_layer_spec head[MTC_MAX_LAYERS];
    int line;
} mtc_task_spec;

#define MTC_SPEC_TRAIN_MAX 24
typedef struct mtc_spec {
    int c, h, w;          /* input shape */
    char columns[1024];   /* CSV input columns ("" = all non-label) */
    int experts;          /* 0 = hard sharing; N >= 2 = MMoE */
    int ntrunk;
    mtc_layer_spec trunk[MTC_MAX_LAYERS];
    int ntasks;
    mtc_task_spec tasks[MTC_MAX_TASKS];
    /* [train]: the recipe the spec is meant to be trained with, as `key =
     * value` pairs named after `mtc train` options (schedule = cosine). The
     * library only stores them; `mtc train` applies them as defaults that
     * its flags override (`mtc distill` does not, and says so). */
    int ntrain;
    struct { char key[32], val[64]; int line; } train[MTC_SPEC_TRAIN_MAX];
} mtc_spec;

int mtc_spec_parse(const char *text, const char *filename, mtc_spec *s,
                   mtc_err *e);
int mtc_spec_load(const char *path, mtc_spec *s, char **text, mtc_err *e);
int mtc_spec_task_index(const mtc_spec *s, const char *name);

/* A layer instance inside a model. Parameter offsets index model->params. */
typedef struct mtc_layer {
    mtc_layer_spec spec;
    char name[96];          /* "trunk.0.conv", "expert2.1.dense",
                               "head.fashion.out", "gate.fashion" */
    int in_c, in_h, in_w, out_c, out_h, out_w;
    int64_t in_size, out_size;  /* per sample */
    int64_t w_off, nw, b_off, nb; /* -1/0 when none (BN/LN: gamma, beta) */
    int64_t stat_off;       /* BN running mean at stat_off, var at +C */
    mtc_conv_shape cs;
    /* per-batch buffers (model_reserve): pre-activation and output; all
     * NULL for a conv fused with the max-pool after it (core/model.c) */
    float *pre, *out, *dout;
    float *mean, *rstd;     /* BN/LN saved statistics */
    int32_t *argmax;        /* maxpool */
    uint8_t *drop_mask;     /* dropout */
    int partner;            /* residual <-> its add: the other's index in the chain */
    float *aux;             /* add: the gradient for the block's input (skip path) */
} mtc_layer;

typedef struct mtc_chain {
    int n;
    mtc_layer layers[MTC_MAX_LAYERS];
} mtc_chain;

typedef struct mtc_model {
    mtc_spec spec;
    char *spec_text;
    int nexperts;           /* 1 for hard sharing */
    mtc_chain trunk[MTC_MAX_EXPERTS];
    mtc_layer gate[MTC_MAX_TASKS];   /* MMoE: dense input -> nexperts */
    mtc_chain head[MTC_MAX_TASKS];   /* last layer = output dense */
    int64_t trunk_out;      /* per-sample trunk output size */
    int64_t nparams;
    float *params, *grads;
    uint8_t *decay_mask;    /* 1 for weights, 0 for biases / norms */
    float *mask;            /* pruning mask over params, NULL = dense */
    int64_t nstats;
    float *stats;           /* BN running statistics */
    int nclass_names[MTC_MAX_TASKS]; /* cls tasks with string labels (CSV/PNG):  */
    char **class_names[MTC_MAX_TASKS]; /* id -> name, saved as task.<t>.classes */
    float reg_mean[MTC_MAX_TASKS][64], reg_std[MTC_MAX_TASKS][64]; /* target
                               standardisation for reg tasks (dim <= 64) */
    /* workspace (mtc_model_reserve) */
    int max_batch;
    float *col, *dcol;      /* conv im2col, col_stride floats per thread */
    int64_t col_stride;
    float *fuse;            /* conv fused with its max-pool: one chunk's
                               output / gradient, fuse_stride per thread */
    int64_t fuse_stride;
    float *mix[MTC_MAX_TASKS];   /* MMoE: per-task mixed trunk output */
    float *dmix[MTC_MAX_TASKS];
    float *gate_p[MTC_MAX_TASKS]; /* MMoE gate softmax (B, nexperts) */
    float *dtrunk[MTC_MAX_EXPERTS]; /* grad wrt each expert's output */
    float *dinput;          /* scratch for unused input grads */
    float *outputs[MTC_MAX_TASKS]; /* = head[t] last layer out */
    /* threads (mtc_get_threads at reserve): conv, pooling and activations
     * run over batch slices in the pool; dense GEMMs use OpenBLAS threads */
    mtc_pool *pool;
    int par_always;         /* split every layer, however small (tests) */
    int eval_grad;          /* last forward was MTC_FWD_EVAL_GRAD */
    float *pgrad;           /* per extra thread: private conv dW/db */
    int64_t pgrad_stride;
    /* optional: called by mtc_model_backward_trunk each time a piece of
     * the gradient is final, with the count of pieces final so far (the
     * order of mtc_model_grad_pieces); MPI overlaps its sums with that */
    void (*grad_final)(void *ctx, int pieces);
    void *grad_final_ctx;
} mtc_model;

int mtc_model_build(const mtc_spec *s, const char *spec_text, mtc_model *m,
                    mtc_err *e);
void mtc_model_free(mtc_model *m);
void mtc_model_init_params(mtc_model *m, uint64_t seed); /* He/Xavier */
/* Pruned weights (mask 0) set to +0.0; no-op without a mask. */
void mtc_model_apply_mask(mtc_model *m);
int mtc_model_reserve(mtc_model *m, int max_batch, mtc_err *e);
/* Frees what mtc_model_reserve allocated (mtc_model_free calls it). */
void mtc_model_free_buffers(mtc_model *m);
/* x (B, c*h*w). train: MTC_FWD_TRAIN dropout on, BN batch statistics;
 * MTC_FWD_EVAL inference; MTC_FWD_EVAL_GRAD inference numerics keeping what
 * mtc_model_input_grad needs. Outputs are in m->outputs[t] as (B, dim)
 * logits (cls/bin) or standardised values (reg). */
enum { MTC_FWD_EVAL = 0, MTC_FWD_TRAIN = 1, MTC_FWD_EVAL_GRAD = 2 };
void mtc_model_forward(mtc_model *m, const float *x, int B, int train,
                       mtc_rng *rng);
/* dout[t] (B, dim): gradient wrt each task output (NULL = task unused).
 * Accumulates into m->grads. */
void mtc_model_backward(mtc_model *m, const float *x, float *const *dout,
                        int B);
/* Trunk output (B, trunk_out) of the last forward (expert 0 / hard sharing). */
const float *mtc_model_trunk_output(const mtc_model *m);
/* Map reg outputs back to label units: y = z*std + mean. */
void mtc_model_unstandardise(const mtc_model *m, int task, float *y, int B);

/* Checkpoint <-> model. Tensor names: "<layer name>.weight", ".bias",
 * ".running_mean", ".running_var". A pruned model (m->mask set) stores each
 * weighted layer's weights as a bitmask plus the kept values instead of
 * ".weight": "<layer>.weight_bits" u8 (ceil(nw/8) bytes; bit i, LSB first
 * in byte i/8, = weight i kept; padding bits 0) and "<layer>.weight_nz"
 * f32 (the kept weights in row-major order). Older files hold ".weight"
 * with the pruned weights 0 and a u8 "<layer>.mask"; they still load. */
int mtc_model_to_ckpt(const mtc_model *m, const char *meta_json, mtc_ckpt *c,
                      mtc_err *e);
int mtc_model_from_ckpt(const mtc_ckpt *c, mtc_model *m, mtc_err *e);
int mtc_model_save(const mtc_model *m, const char *path, const char *meta_json,
                   mtc_err *e);
int mtc_model_load(const char *path, mtc_model *m, char **meta_json,
                   mtc_err *e);

/* Labels of model task t for dataset d: derived through `from` maps when
 * needed, range-checked. cls: *labels malloc'd (caller frees); bin/reg:
 * *targets points into the dataset. */
int mtc_model_bind_task(const mtc_model *m, int t, const mtc_dataset *d,
                        int32_t **labels, const float **targets, mtc_err *e);
/* Checks that d's sample shape matches the model input and d is not empty. */
int mtc_model_check_input(const mtc_model *m, const mtc_dataset *d,
                          mtc_err *e);
/* Backward split in two so task weighting (GradNorm) can look between:
 * heads fill m->dmix[t] (gradient wrt each task's head input), trunk sums
 * them (through the MMoE gates) and backpropagates the trunk. */
void mtc_model_backward_heads(mtc_model *m, const float *x,
                              float *const *dout, int B);
void mtc_model_backward_trunk(mtc_model *m, const float *x, int B);
/* The pieces of m->grads in the order mtc_model_backward_trunk finishes
 * them: [lo[i], hi[i]). Piece 0 is every head and gate (all final once the
 * gates' backward ran), then each expert's layers with parameters, last
 * layer first; together they cover [0, nparams) once. lo/hi hold at least
 * 1 + MTC_MAX_EXPERTS * MTC_MAX_LAYERS entries. Returns the count. */
int mtc_model_grad_pieces(const mtc_model *m, int64_t *lo, int64_t *hi);
/* After mtc_model_forward(m, x, B, MTC_FWD_EVAL_GRAD): the gradient of the
 * eval-mode function sum_t <dout[t], output_t> wrt the input into dx
 * (B, c*h*w; overwritten). Also accumulates weight gradients into
 * m->grads (unused). */
void mtc_model_input_grad(mtc_model *m, const float *x, float *const *dout,
                          int B, float *dx);
/* Calls fn on every layer (trunk/experts, then per task gate and head). */
int mtc_model_for_each_layer(mtc_model *m,
                             int (*fn)(mtc_model *, mtc_layer *, void *),
                             void *ctx);
int mtc_model_from_ckpt_path(const mtc_ckpt *c, const char *path,
                             mtc_model *m, mtc_err *e);
/* How a layer's weights are stored in c (above). */
enum {
    MTC_WEIGHT_NONE = 0,   /* no weight tensor (an int8 layer: ".weight_q") */
    MTC_WEIGHT_DENSE,      /* ".weight" */
    MTC_WEIGHT_DENSE_MASK, /* ".weight" + ".mask" (files before bitmasks) */
    MTC_WEIGHT_BITS        /* ".weight_bits" + ".weight_nz" */
};
int mtc_layer_weight_form(const mtc_ckpt *c, const mtc_layer *L);
/* The one reader of a layer's weights (the model loader and the runtime):
 * fills w[L->nw] from whichever form c holds, pruned weights 0, and, when
 * mask is not NULL, mask[L->nw] with 1 kept / 0 pruned (all 1 without a
 * mask). Checks names, dtypes, shapes, that the bitmask has exactly
 * ceil(nw/8) bytes with zero padding bits and as many set bits as values,
 * and that every value is finite; errors name path and the tensor. *form
 * gets the form; MTC_WEIGHT_NONE touches nothing and is not an error. */
int mtc_layer_read_weight(const mtc_ckpt *c, const char *path,
                          const mtc_layer *L, float *w, float *mask,
                          int *form, mtc_err *e);
/* Layers and parameter offsets of a spec without allocating parameters
 * (for reports on a file's tensors); mtc_model_free releases it. */
int mtc_model_layout(const mtc_spec *s, const char *spec_text, mtc_model *m,
                     mtc_err *e);
/* Class names of string-labelled tasks: copy from a data set (after
 * training data is opened) / read from a checkpoint's task.<t>.classes. */
int mtc_model_set_class_names(mtc_model *m, const mtc_dataset *d, mtc_err *e);
int mtc_model_load_class_names(mtc_model *m, const mtc_ckpt *c, const char *path,
                               mtc_err *e);

/* Runs the model over samples idx (all when idx NULL) and fills, per task,
 * outputs (n, dim) in label units (cls: logits). outs[t] malloc'd. */
int mtc_model_predict(mtc_model *m, const mtc_dataset *d, const int64_t *idx,
                      int64_t n, int batch, float **outs, mtc_err *e);

/* ---- saliency (core/saliency.c) ------------------------------------------- */
/* Gradient x input of task t for n samples x (n, c*h*w) into out (n, c*h*w),
 * of the eval-mode model: cls — the logit of class cls[i] (cls NULL or a
 * class < 0: the model's prediction), bin — the logit, reg — the sum of the
 * standardised outputs. smooth > 0: SmoothGrad, the gradient averaged over
 * `smooth` copies with Gaussian noise of std `noise` (input units, seeded),
 * times the clean input. Reserves m's buffers for 64 rows. */
int mtc_saliency(mtc_model *m, const float *x, int n, int t, const int32_t *cls,
                 int smooth, float noise, uint64_t seed, float *out, mtc_err *e);
/* Spearman rank correlation of a and b (of |a|, |b| when absolute), ties
 * given average ranks; NaN when n < 2 or either is constant. */
double mtc_spearman(const float *a, const float *b, int64_t n, int absolute);

/* ---- drops and budgets (core/metrics.c) -------------------------------- */
/* Primary metric per task on a data set and "drop" arithmetic shared by
 * quantize and verify. metric: accuracy (cls/bin), MAE (reg). drop > 0 is
 * worse: cls/bin 100·(ref − cand) points, reg cand − ref; relative:
 * 100·drop_abs/|ref| with drop_abs = ref − cand (cand − ref for reg). */
double mtc_metric_drop(int kind, double ref, double cand, int relative);
/* The budget of a task that --max-drop does not name: 1 point (or 1% of the
 * reference with relative drops), for quantize's fallback and verify's gate
 * alike. */
#define MTC_MAX_DROP_DEFAULT 1.0
/* "--max-drop fashion=0.3,super=0.5" for model m: budget[t] per task, dflt
 * (MTC_MAX_DROP_DEFAULT for the CLI) for tasks not named (given[t] = 0).
 * Unknown tasks, repeats, negative or non-numeric values, more than 100
 * points for cls/bin: MTC_EINPUT. */
int mtc_budget_parse(const mtc_model *m, const char *s, double dflt, double *budget, int *given,
                     mtc_err *e);

#endif
