/*
 * mtc/nn.h — numerical building blocks: layer kernels (core/layers/*.c),
 * losses (core/loss.c), optimizers and schedules (core/optim.c), metrics
 * (core/metrics.c).
 *
 * Kernel conventions (llm.c style): plain float* plus explicit dims, shapes in
 * the comment, row-major. Forward overwrites `out`. Backward ACCUMULATES
 * (+=) into every gradient it produces (din, dW, db, ...), so fan-in needs no
 * special case; callers zero gradient buffers once per step. Any gradient
 * pointer may be NULL when not needed.
 */
#ifndef MTC_NN_H
#define MTC_NN_H

/* ---- activations -------------------------------------------------------- */
typedef enum mtc_act {
    MTC_ACT_NONE = 0, MTC_ACT_RELU, MTC_ACT_LEAKY, /* slope 0.01 */
    MTC_ACT_TANH, MTC_ACT_SIGMOID, MTC_ACT_GELU    /* tanh approximation */
} mtc_act;
int mtc_act_parse(const char *s); /* -1 if unknown */
const char *mtc_act_name(int act);
/* out may alias in. */
void mtc_act_forward(float *out, const float *in, int64_t n, int act);
/* in = pre-activation, out = post-activation (both available). */
void mtc_act_backward(float *din, const float *dout, const float *in,
                      const float *out, int64_t n, int act);

/* ---- dense: in (B,I), W (O,I), b (O), out (B,O); out = in·Wᵀ + b ------- */
void mtc_dense_forward(float *out, const float *in, const float *W,
                       const float *b, int B, int I, int O);
void mtc_dense_backward(float *din, float *dW, float *db, const float *dout,
                        const float *in, const float *W, int B, int I, int O);

/* ---- conv2d: in (B,C,H,W), W (OC,C,K,K), b (OC), out (B,OC,OH,OW) ------ */
typedef struct mtc_conv_shape {
    int C, H, W, OC, K, stride, pad, OH, OW;
} mtc_conv_shape;
/* OH = (H + 2*pad - K)/stride + 1; returns -1 when the shape is impossible. */
int mtc_conv_shape_init(mtc_conv_shape *s, int C, int H, int W, int OC, int K,
                        int stride, int pad);
/* Floats of workspace `col` (and `dcol`) the kernels need for batch B. */
int64_t mtc_conv_col_floats(const mtc_conv_shape *s, int B);
void mtc_conv2d_forward(float *out, const float *in, const float *W,
                        const float *b, float *col, const mtc_conv_shape *s,
                        int B);
void mtc_conv2d_backward(float *din, float *dW, float *db, const float *dout,
                         const float *in, const float *W, float *col,
                         float *dcol, const mtc_conv_shape *s, int B);

/* ---- pooling: in (B,C,H,W) -> out (B,C,OH,OW), OH = (H-K)/stride + 1 --- */
void mtc_maxpool_forward(float *out, int32_t *argmax, const float *in, int B,
                         int C, int H, int W, int K, int stride);
void mtc_maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                          int B, int C, int OH, int OW, int H, int W);
void mtc_avgpool_forward(float *out, const float *in, int B, int C, int H,
                         int W, int K, int stride);
void mtc_avgpool_backward(float *din, const float *dout, int B, int C, int H,
                          int W, int K, int stride);

/* ---- dropout (inverted): keep with prob 1-p, scale 1/(1-p) ------------- */
void mtc_dropout_forward(float *out, uint8_t *mask, const float *in, int64_t n,
                         float p, mtc_rng *rng);
void mtc_dropout_backward(float *din, const float *dout, const uint8_t *mask,
                          int64_t n, float p);

/* ---- batchnorm over (B,C,S), S = spatial size (1 after dense) ---------- */
void mtc_batchnorm_forward_train(float *out, float *mean, float *rstd,
                                 const float *in, const float *gamma,
                                 const float *beta, float *run_mean,
                                 float *run_var, float momentum, float eps,
                                 int B, int C, int S);
void mtc_batchnorm_forward_eval(float *out, const float *in, const float *gamma,
                                const float *beta, const float *run_mean,
                                const float *run_var, float eps, int B, int C,
                                int S);
void mtc_batchnorm_backward(float *din, float *dgamma, float *dbeta,
                            const float *dout, const float *in,
                            const float *mean, const float *rstd,
                            const float *gamma, int B, int C, int S);
/* Folds eval-mode BN into the preceding layer's weights: W (C, fan_in). */
void mtc_batchnorm_fold(float *W, float *b, int C, int fan_in,
                        const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, float eps);

/* ---- layernorm over the last dim F of (N,F) ---------------------------- */
void mtc_layernorm_forward(float *out, float *mean, float *rstd,
                           const float *in, const float *gamma,
                           const float *beta, int N, int F, float eps);
void mtc_layernorm_backward(float *din, float *dgamma, float *dbeta,
                            const float *dout, const float *in,
                            const float *mean, const float *rstd,
                            const float *gamma, int N, int F);

/* ---- losses: mean over the batch; gradient of scale·loss ACCUMULATED into
 * the d* buffer (may be NULL for evaluation). Return the unscaled loss. --- */
typedef enum { MTC_LOSS_MSE = 0, MTC_LOSS_MAE, MTC_LOSS_HUBER } mtc_reg_loss;
/* logits (B,K), labels (B) in [0,K); smoothing in [0,1). */
double mtc_loss_softmax_ce(float *dlogits, const float *logits,
                           const int32_t *labels, int B, int K,
                           float smoothing, float scale);
/* logits (B,K), targets (B,K) in [0,1]. */
double mtc_loss_bce(float *dlogits, const float *logits, const float *targets,
                    int B, int K, float scale);
/* out (B,D), targets (B,D); Huber uses delta. Loss is mean over B of the sum
 * over D. */
double mtc_loss_reg(float *dout, const float *out, const float *targets, int B,
                    int D, int kind, float delta, float scale);
/* Knowledge distillation (Hinton 2015), per sample, mean over B:
 *   alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−alpha)·CE(softmax(s), y)
 * s = student logits (B,K), t = teacher logits (B,K). labels may be NULL only
 * when alpha == 1. */
double mtc_loss_kd(float *dlogits, const float *s, const float *t,
                   const int32_t *labels, int B, int K, float T, float alpha,
                   float scale);
/* Softmax of each row of (N,K) with temperature T, numerically stable. */
void mtc_softmax_rows(float *out, const float *in, int N, int K, float T);

/* ---- optimizers --------------------------------------------------------- */
typedef enum { MTC_OPT_SGD = 0, MTC_OPT_ADAM, MTC_OPT_ADAMW } mtc_opt_kind;
typedef struct mtc_optim_cfg {
    int kind;
    float momentum;      /* SGD */
    int nesterov;        /* SGD */
    float beta1, beta2, eps;  /* Adam/AdamW */
    float weight_decay;  /* AdamW: decoupled; SGD/Adam: added to the grad */
    float l1, l2;        /* penalties added to the gradient (decay_mask'd) */
    float clip_norm;     /* global grad-norm clip, 0 = off */
} mtc_optim_cfg;
void mtc_optim_cfg_default(mtc_optim_cfg *c, int kind);
typedef struct mtc_optim {
    mtc_optim_cfg cfg;
    int64_t n;
    int64_t t;     /* steps taken */
    float *m, *v;  /* state (momentum / Adam moments), NULL if unused */
} mtc_optim;
int mtc_optim_init(mtc_optim *o, const mtc_optim_cfg *cfg, int64_t n,
                   mtc_err *e);
void mtc_optim_free(mtc_optim *o);
/* One step on params[0..n) with grads. decay_mask[i] != 0 marks parameters
 * that L1/L2/weight decay apply to (weights, not biases/norms); NULL = all.
 * Grad clipping (cfg.clip_norm) happens first. Returns the grad norm before
 * clipping. */
float mtc_optim_step(mtc_optim *o, float *params, float *grads,
                     const uint8_t *decay_mask, float lr);

typedef enum { MTC_SCHED_CONST = 0, MTC_SCHED_STEP, MTC_SCHED_COSINE } mtc_sched_kind;
typedef struct mtc_sched {
    int kind;
    float lr;          /* base */
    int64_t warmup;    /* linear warm-up steps */
    int64_t step_size; /* STEP: multiply by gamma every step_size steps */
    float gamma;
    float min_lr;      /* COSINE floor */
} mtc_sched;
float mtc_sched_lr(const mtc_sched *s, int64_t step, int64_t total_steps);

/* ---- metrics ------------------------------------------------------------ */
typedef struct mtc_cls_metrics {
    int K;
    int64_t n;
    double accuracy;        /* fraction 0..1 */
    double precision, recall, f1; /* macro over classes present */
    double auc;             /* one-vs-rest macro (K==2: the positive class) */
    double loss;            /* mean CE */
    int64_t *confusion;     /* K*K, [true*K + pred], malloc'd */
} mtc_cls_metrics;
int mtc_metrics_cls(const float *logits, const int32_t *labels, int64_t n,
                    int K, mtc_cls_metrics *m, mtc_err *e);
void mtc_cls_metrics_free(mtc_cls_metrics *m);
typedef struct mtc_bin_metrics {
    int K;
    double accuracy;  /* mean over outputs, threshold 0.5 */
    double f1, auc;   /* macro over outputs */
    double loss;
} mtc_bin_metrics;
int mtc_metrics_bin(const float *logits, const float *targets, int64_t n,
                    int K, mtc_bin_metrics *m, mtc_err *e);
typedef struct mtc_reg_metrics {
    double mae, mse, r2; /* averaged over outputs */
} mtc_reg_metrics;
void mtc_metrics_reg(const float *pred, const float *targets, int64_t n, int D,
                     mtc_reg_metrics *m);
/* Binary AUC by rank statistic (ties averaged). */
double mtc_auc(const float *score, const uint8_t *positive, int64_t n);

#endif
