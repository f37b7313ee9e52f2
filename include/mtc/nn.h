/*
 * mtc/nn.h — numerical building blocks: layer kernels (core/layers/),
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
    MTC_ACT_TANH, MTC_ACT_SIGMOID, MTC_ACT_GELU,   /* tanh approximation */
    MTC_ACT_GELU_ERF                              /* exact: x·Φ(x), erf form */
} mtc_act;
int mtc_act_parse(const char *s); /* -1 if unknown */
const char *mtc_act_name(int act);
/* out may alias in. */
void mtc_act_forward(float *out, const float *in, int64_t n, int act);
/* in = pre-activation, out = post-activation. relu/leaky/gelu read `in`,
 * tanh/sigmoid read `out`; after an in-place forward pass NULL for the lost
 * one: relu/leaky then use `out`, tanh/sigmoid recompute from `in` (gelu
 * always needs `in`). */
void mtc_act_backward(float *din, const float *dout, const float *in,
                      const float *out, int64_t n, int act);

/* ---- dense: in (B,I), W (O,I), b (O), out (B,O); out = in·Wᵀ + b ------- *
 * b may be NULL (no bias). One sgemm (sgemv for B == 1) each way; the
 * activation is a separate mtc_act_* call. */
void mtc_dense_forward(float *out, const float *in, const float *W,
                       const float *b, int B, int I, int O);
/* The same with out rows ld apart (a block of output units of a wider layer). */
void mtc_dense_forward_ld(float *out, int ld, const float *in, const float *W, const float *b, int B, int I,
                          int O);
void mtc_dense_backward(float *din, float *dW, float *db, const float *dout,
                        const float *in, const float *W, int B, int I, int O);
/* The same with dout rows ld floats apart (ld >= O): the gradient of a block
 * of O output units inside a wider layer (dW, db then point at that block). */
void mtc_dense_backward_ld(float *din, float *dW, float *db, const float *dout, int ld,
                           const float *in, const float *W, int B, int I, int O);

/* ---- conv2d: in (B,C,H,W), W (OC,C,K,K), b (OC), out (B,OC,OH,OW) ------ */
typedef struct mtc_conv_shape {
    int C, H, W, OC, K, stride, pad, OH, OW;
    int G; /* groups (1: every output reads every input channel) */
} mtc_conv_shape;
/* OH = (H + 2*pad - K)/stride + 1; returns -1 when the shape is impossible.
 * G = 1. */
int mtc_conv_shape_init(mtc_conv_shape *s, int C, int H, int W, int OC, int K,
                        int stride, int pad);
/* Grouped convolution: G groups of C/G input channels, each feeding OC/G
 * outputs; W (OC, C/G, K, K). -1 unless G divides C and OC. G = C = OC is
 * depthwise. mtc_conv2d_forward/backward run such a shape through the
 * direct kernels below (core/layers/conv_group.c, no BLAS, no workspace). */
int mtc_conv_shape_groups(mtc_conv_shape *s, int G);
/* Output columns [lo, hi) whose input column ow·stride − pad + kw lies in
 * [0, W) (the others read padding). */
void mtc_conv_valid_cols(const mtc_conv_shape *s, int kw, int *lo, int *hi);
void mtc_conv2d_group_forward(float *out, const float *in, const float *W, const float *b,
                              const mtc_conv_shape *s, int B);
void mtc_conv2d_group_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                               const float *W, const mtc_conv_shape *s, int B);
/* The kernels work through the batch in chunks of
 * Bc = mtc_conv_chunk(s, B) = min(B, ceil(512 / (OH·OW))) samples,
 * one im2col + GEMM each, so the workspace does not grow with the batch.
 * A caller that splits the batch itself at chunk boundaries gets the same
 * bytes. */
int mtc_conv_chunk(const mtc_conv_shape *s, int B);
/* Floats of workspace `col` (and `dcol`) the kernels need for batch B:
 * (C·K·K + OC)·N with N = Bc·OH·OW. Layout of `col` per chunk:
 *   col[0, CKK·N)            im2col matrix (C·K·K, N), column b·OH·OW+oh·OW+ow
 *   col[CKK·N, (CKK+OC)·N)   out_tmp (OC, N) in forward / dout regathered as
 *                            (OC, N) in backward
 * `dcol` uses only its first CKK·N floats. col and dcol must not overlap;
 * neither has to survive between calls (backward recomputes im2col). dW's
 * sum over the batch runs chunk by chunk. */
int64_t mtc_conv_col_floats(const mtc_conv_shape *s, int B);
void mtc_conv2d_forward(float *out, const float *in, const float *W,
                        const float *b, float *col, const mtc_conv_shape *s,
                        int B);
void mtc_conv2d_backward(float *din, float *dW, float *db, const float *dout,
                         const float *in, const float *W, float *col,
                         float *dcol, const mtc_conv_shape *s, int B);

/* ---- pooling: in (B,C,H,W) -> out (B,C,OH,OW), OH = (H-K)/stride + 1 --- *
 * argmax (B,C,OH,OW) = index ih·W+iw inside the input plane (first max on
 * ties); may be NULL in forward when no backward follows. No padding. */
void mtc_maxpool_forward(float *out, int32_t *argmax, const float *in, int B,
                         int C, int H, int W, int K, int stride);
void mtc_maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                          int B, int C, int OH, int OW, int H, int W);
void mtc_avgpool_forward(float *out, const float *in, int B, int C, int H,
                         int W, int K, int stride);
void mtc_avgpool_backward(float *din, const float *dout, int B, int C, int H,
                          int W, int K, int stride);

/* ---- dropout (inverted): keep with prob 1-p, scale 1/(1-p) ------------- *
 * mask[i] = 1 if kept (mask may be NULL in forward); one mtc_rng_uniform
 * draw per element, kept when u >= p. Eval: don't call it (identity). */
void mtc_dropout_forward(float *out, uint8_t *mask, const float *in, int64_t n,
                         float p, mtc_rng *rng);
void mtc_dropout_backward(float *din, const float *dout, const uint8_t *mask,
                          int64_t n, float p);

/* ---- batchnorm over (B,C,S), S = spatial size (1 after dense) ---------- *
 * train: normalises with the biased batch variance; mean/rstd (C) are saved
 * for backward (rstd = 1/sqrt(var+eps)); run = (1-momentum)·run +
 * momentum·batch with the unbiased variance for run_var (run_* may be NULL).
 * gamma/beta may be NULL (1 and 0). */
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
/* The same for channels [c0, c1) only (each channel is independent: a
 * thread per channel range gives the serial bytes), fused with a following
 * relu: forward with relu != 0 writes relu(y); backward with relu_out (that
 * relu's output) takes dout as the gradient after the relu. Same bytes as
 * the two layers run apart. Backward with accumulate 0 writes din (its old
 * contents ignored) instead of adding to it. */
void mtc_batchnorm_forward_train_ch(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                                    const float *beta, float *run_mean, float *run_var, float momentum, float eps,
                                    int B, int C, int S, int c0, int c1, int relu);
void mtc_batchnorm_backward_ch(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                               const float *mean, const float *rstd, const float *gamma, int B, int C, int S,
                               int c0, int c1, const float *relu_out, int accumulate);
/* Folds eval-mode BN into the preceding layer's weights: W (C, fan_in)
 * (conv: fan_in = Cin·K·K), b (C) required (pass zeros if the layer had no
 * bias): W' = W·γ/sqrt(var+eps), b' = (b - mean)·γ/sqrt(var+eps) + β. */
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
/* logits (B,K), labels (B) in [0,K); smoothing in [0,1): target
 * (1-ε)·onehot + ε/K. Rows whose label is outside [0,K) add no loss and no
 * gradient (the mean is still over B). */
double mtc_loss_softmax_ce(float *dlogits, const float *logits,
                           const int32_t *labels, int B, int K,
                           float smoothing, float scale);
/* logits (B,K), targets (B,K) in [0,1]. Loss is mean over B of the sum over
 * K of max(x,0) - x·y + log(1+exp(-|x|)). */
double mtc_loss_bce(float *dlogits, const float *logits, const float *targets,
                    int B, int K, float scale);
/* out (B,D), targets (B,D); Huber uses delta. Loss is mean over B of the sum
 * over D of r² (MSE), |r| (MAE), r²/2 if |r|<=delta else delta·(|r|-delta/2)
 * (Huber), r = out - target. */
double mtc_loss_reg(float *dout, const float *out, const float *targets, int B,
                    int D, int kind, float delta, float scale);
/* Knowledge distillation (Hinton 2015), per sample, mean over B:
 *   alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−alpha)·CE(softmax(s), y)
 * s = student logits (B,K), t = teacher logits (B,K). labels may be NULL only
 * when alpha == 1 (otherwise the CE term is dropped). Gradient wrt s:
 *   alpha·T·(softmax(s/T) - softmax(t/T)) + (1-alpha)·(softmax(s) - onehot)
 * With alpha == 0 this IS mtc_loss_softmax_ce(smoothing 0): bit-identical
 * loss and gradient. */
double mtc_loss_kd(float *dlogits, const float *s, const float *t,
                   const int32_t *labels, int B, int K, float T, float alpha,
                   float scale);
/* Probability shift (Wen et al. 2019): where the teacher is wrong on a
 * labelled sample, correct its logits in place before the KD term sees them.
 * cls: rows of K teacher logits t (B,K); where the top logit's class (the
 * first maximum) is not labels[b] (a valid label), the two logits swap, so
 * the true class gets the teacher's top score and the teacher's ranking of
 * the others is kept. Rows with label < 0 or >= K are left alone.
 * bin: n teacher logits against targets y (NaN = missing): a logit on the
 * wrong side of 0 (y >= 0.5 and t < 0, or y < 0.5 and t > 0) changes sign;
 * a logit of 0 is a tie, left alone as a tied cls row is.
 * Both return the number of rows (cls) or values (bin) changed. */
int mtc_kd_correct_cls(float *t, const int32_t *labels, int B, int K);
int mtc_kd_correct_bin(float *t, const float *y, int n);
/* Softmax of each row of (N,K) with temperature T, numerically stable.
 * out may alias in. */
void mtc_softmax_rows(float *out, const float *in, int N, int K, float T);

/* ---- optimizers --------------------------------------------------------- */
typedef enum { MTC_OPT_SGD = 0, MTC_OPT_ADAM, MTC_OPT_ADAMW } mtc_opt_kind;
int mtc_optim_kind_parse(const char *s); /* sgd | adam | adamw; -1 if unknown */
const char *mtc_optim_kind_name(int kind);
typedef struct mtc_optim_cfg {
    int kind;
    float momentum;      /* SGD */
    int nesterov;        /* SGD */
    float beta1, beta2, eps;  /* Adam/AdamW */
    float weight_decay;  /* AdamW: decoupled; SGD/Adam: added to the grad */
    float l1, l2;        /* penalties added to the gradient (decay_mask'd) */
    float clip_norm;     /* global grad-norm clip, 0 = off */
} mtc_optim_cfg;
/* Adam/AdamW: beta1 .9, beta2 .999, eps 1e-8; SGD: momentum .9, no
 * Nesterov; AdamW weight_decay .01 (PyTorch's default); everything else 0. */
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
 * Grad clipping (cfg.clip_norm) happens first: g·clip_norm/‖g‖ when ‖g‖ >
 * clip_norm (norm in double). Then g += l2·p + l1·sign(p) (+ weight_decay·p
 * for SGD/Adam); AdamW applies p -= lr·wd·p instead. SGD momentum as PyTorch
 * (m = μm + g; Nesterov d = g + μm). Adam with bias correction. grads is read
 * only (clipping is applied on the fly). Returns the grad norm before
 * clipping. */
float mtc_optim_step(mtc_optim *o, float *params, float *grads,
                     const uint8_t *decay_mask, float lr);
/* The same step with the element loop split over a thread pool (identical
 * results: elements are independent). Returns the grad norm only when
 * clipping is on (computing it is a whole extra pass), else 0. */
float mtc_optim_step_pool(mtc_optim *o, mtc_pool *pool, float *params, float *grads,
                          const uint8_t *decay_mask, float lr);

typedef enum { MTC_SCHED_CONST = 0, MTC_SCHED_STEP, MTC_SCHED_COSINE } mtc_sched_kind;
int mtc_sched_kind_parse(const char *s); /* const | step | cosine; -1 if unknown */
const char *mtc_sched_kind_name(int kind);
typedef struct mtc_sched {
    int kind;
    float lr;          /* base */
    int64_t warmup;    /* linear warm-up steps */
    int64_t step_size; /* STEP: multiply by gamma every step_size steps */
    float gamma;
    float min_lr;      /* COSINE floor */
} mtc_sched;
/* step counts from 0. Warm-up (any kind): lr·(step+1)/warmup while step <
 * warmup. After it, k = step - warmup: CONST lr; STEP lr·gamma^floor(k /
 * step_size); COSINE min_lr + (lr-min_lr)·(1+cos(π·k/(total_steps-warmup)))/2,
 * held at min_lr past the end. */
float mtc_sched_lr(const mtc_sched *s, int64_t step, int64_t total_steps);

/* ---- metrics ------------------------------------------------------------ */
typedef struct mtc_cls_metrics {
    int K;
    int64_t n;
    double accuracy;        /* fraction 0..1 */
    /* Macro over classes present in labels OR predictions (sklearn
     * labels = union, zero_division = 0): precision_c = TP/predicted_c (0 if
     * never predicted), recall_c = TP/true_c (0 if absent from labels),
     * f1_c = 2PR/(P+R) (0 if P+R == 0). */
    double precision, recall, f1;
    /* one-vs-rest on softmax probabilities, macro over classes with both
     * positives and negatives in labels (K==2: class 1 only); 0.5 if none. */
    double auc;
    double loss;            /* mean CE */
    int64_t *confusion;     /* K*K, [true*K + pred], malloc'd */
} mtc_cls_metrics;
int mtc_metrics_cls(const float *logits, const int32_t *labels, int64_t n,
                    int K, mtc_cls_metrics *m, mtc_err *e);
void mtc_cls_metrics_free(mtc_cls_metrics *m);
typedef struct mtc_bin_metrics {
    int K;
    double accuracy;  /* mean over outputs, threshold 0.5 (target >= 0.5) */
    /* f1: macro over outputs with a positive label or prediction (0 if
     * none); auc: macro over outputs with both classes, 0.5 if none. */
    double f1, auc;
    /* mean over n of the BCE summed over K, as mtc_loss_bce */
    double loss;
} mtc_bin_metrics;
int mtc_metrics_bin(const float *logits, const float *targets, int64_t n,
                    int K, mtc_bin_metrics *m, mtc_err *e);
typedef struct mtc_reg_metrics {
    /* per output, then averaged over outputs; R² = 1 - SSres/SStot per
     * output, 0 when SStot == 0 */
    double mae, mse, r2;
} mtc_reg_metrics;
void mtc_metrics_reg(const float *pred, const float *targets, int64_t n, int D,
                     mtc_reg_metrics *m);
/* Calibration (Guo et al. 2017): predictions in nbins equal-width bins of
 * confidence (bin k holds (k/B, (k+1)/B], the first also 0); per bin the
 * mean confidence and the accuracy; ECE = sum_k n_k/n |acc_k - conf_k|,
 * MCE = max_k |acc_k - conf_k| over non-empty bins. cls: the top class's
 * softmax probability and whether it is the label; bin: each output's
 * probability of the class it predicts. */
#define MTC_CALIB_MAX_BINS 100
typedef struct mtc_reliability {
    int nbins;
    int64_t n;
    double ece, mce;
    int64_t bin_n[MTC_CALIB_MAX_BINS];
    double bin_conf[MTC_CALIB_MAX_BINS], bin_acc[MTC_CALIB_MAX_BINS];
} mtc_reliability;
int mtc_calibration(const float *conf, const uint8_t *correct, int64_t n, int nbins, mtc_reliability *c, mtc_err *e);

/* Binary AUC by rank statistic (Mann–Whitney, ties get the average rank).
 * 0.5 when either class is empty, NaN if out of memory. */
double mtc_auc(const float *score, const uint8_t *positive, int64_t n);

#endif
