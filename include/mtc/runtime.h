/*
 * mtc/runtime.h — the reference inference runtime (runtime/) and int8
 * post-training quantization (quantize/). See docs/quantize.md.
 *
 * Runtime: loads any .mtc checkpoint (fp32, pruned, or int8 written by
 * mtc_quantize), folds batchnorm into the preceding dense/conv, fuses a
 * following relu, and runs batches. No training state, no allocation per
 * batch (buffers are reserved once for the largest batch).
 *
 * Int8 scheme: weights symmetric s8 in [-127,127] per output channel (or per
 * tensor), bias s32 with scale s_in·s_w, activations u8 with a zero point
 * (asymmetric) — "s8 symmetric" activations are stored as u8 with zero
 * point 128. Requantization: gemmlowp fixed point (int32 multiplier in
 * [2^30, 2^31) and a shift), no float in the int8 inner loop.
 */
#ifndef MTC_RUNTIME_H
#define MTC_RUNTIME_H

/* ---- register-blocked fp32 GEMM (runtime/gemm.c, gemm_avx2.c) --------- *
 * Y (M, N; row stride ldy) = X (M, K; row stride ldx) · W (K, N), then
 * + bias (N) when bias is not NULL, then relu when relu is set. W is
 * either row-major (K, N) (packed = 0: the Winograd planes) or packed by
 * mtc_gemm_pack from a dense layer's (N, K) weights into panels of 16
 * columns, each (K, 16), the last one zero-padded (packed = 1: one
 * contiguous stream per column block). Only rows [0, M) of X are read.
 * The AVX2 kernel holds 6 rows × 16 columns in 12 registers; it equals
 * the scalar twin to rounding (one FMA rounding against two). */
typedef struct mtc_gemm_w {
    const float *p;
    int K, N, packed;
} mtc_gemm_w;
typedef void (*mtc_gemm_fn)(float *Y, int64_t ldy, const float *X, int64_t ldx, int M, const mtc_gemm_w *W,
                            const float *bias, int relu);
/* Column n of W starts at the returned pointer, its rows *ld floats apart;
 * the columns after it up to the next multiple of 16 follow it. */
static inline const float *mtc_gemm_col(const mtc_gemm_w *W, int n, int64_t *ld)
{
    if (!W->packed) return *ld = W->N, W->p + n;
    return *ld = 16, W->p + (int64_t)(n & ~15) * W->K + (n & 15);
}
int64_t mtc_gemm_pack_floats(int N, int K); /* K · N rounded up to 16 */
void mtc_gemm_pack(float *P, const float *W, int N, int K);
void mtc_gemm_scalar(float *Y, int64_t ldy, const float *X, int64_t ldx, int M, const mtc_gemm_w *W,
                     const float *bias, int relu);
void mtc_gemm_avx2(float *Y, int64_t ldy, const float *X, int64_t ldx, int M, const mtc_gemm_w *W,
                   const float *bias, int relu);
/* AVX-512 (gemm_avx512.c): packed W, the AVX2 kernel's bits; row-major W
 * goes to mtc_gemm_avx2. */
void mtc_gemm_avx512(float *Y, int64_t ldy, const float *X, int64_t ldx, int M, const mtc_gemm_w *W,
                   const float *bias, int relu);
/* The fp32 kernel of an ISA (MTC_ISA_*, as mtc_qgemm_get): the caller checks the CPU. */
mtc_gemm_fn mtc_gemm_get(int isa);

/* ---- Winograd F(2×2, 3×3) convolution (runtime/wino.c, wino_avx2.c) -- *
 * For a conv with mtc_wino_eligible (3×3, stride 1, pad ≤ 2, C ≥ 8):
 * U (mtc_wino_u_floats) = the weights transformed once by mtc_wino_weights;
 * mtc_wino_forward then writes what mtc_conv2d_forward (+ relu when relu is
 * set) writes, equal to rounding, with a workspace of
 * mtc_wino_work_floats(s) floats (independent of B). avx2: 1 the AVX2
 * kernels, 2 the AVX2 transforms and the AVX-512 GEMM (the same bits), 0
 * the scalar twins (the caller checks the CPU). Tiles go MTC_WINO_TB at a
 * time: V (16, MTC_WINO_TB, C), M (16, MTC_WINO_TB, OC) per block; each of
 * the 16 planes is one mtc_gemm (U packed in 16-column panels). */
#define MTC_WINO_TB 24
int mtc_wino_eligible(const mtc_conv_shape *s);
int64_t mtc_wino_u_floats(const mtc_conv_shape *s);
int64_t mtc_wino_work_floats(const mtc_conv_shape *s);
void mtc_wino_weights(float *U, const float *W, const mtc_conv_shape *s);
/* The input transform of tile t (origin th, tw in the padded channels-last
 * plane P, Wp columns) for channels [0, C & ~7); returns C & ~7. */
int mtc_wino_input_avx2(float *V, int t, const float *P, int th, int tw, int C, int Wp);
/* The output transform of tile t (M rows t, MTC_WINO_TB per plane) into
 * Y (4, OC), + bias, relu, for channels [0, OC & ~7); returns OC & ~7. */
int mtc_wino_output_avx2(float *Y, const float *M, int t, int OC, const float *b, int relu);
/* pool: a 2×2 stride-2 max pool follows and is fused: out is the pooled
 * (B, OC, OH/2, OW/2) map, the same bits as mtc_maxpool_forward on the
 * unpooled output (each 2×2 output tile is one pooling window). */
void mtc_wino_forward(float *out, const float *in, const float *U, const float *b, int relu, int pool,
                      float *work, const mtc_conv_shape *s, int B, int avx2);

/* ---- direct convolution (runtime/conv_direct.c, _avx2.c, _avx512.c) ---- *
 * For a conv with few input channels (mtc_conv_direct_eligible: stride 1,
 * groups 1, C·K·K ≤ MTC_DIRECT_MAX_CKK, pad < K; a network's first conv):
 * writes what mtc_conv2d_forward (+ bias, relu when set) writes, equal to
 * rounding, vectorised over the positions of an output row, with a
 * workspace of mtc_conv_direct_work_floats(s) floats (the zero-padded
 * input of one sample, rows mtc_conv_direct_wp(s) floats wide).
 * pool: a 2×2/2 max pool follows and is fused; out is the pooled
 * (B, OC, OH/2, OW/2) map, the same bits as mtc_maxpool_forward on the
 * kernel's unpooled output. isa: MTC_ISA_* (the caller checks the CPU);
 * the AVX2 and AVX-512 kernels give the same bits. */
#define MTC_DIRECT_MAX_CKK 32
int mtc_conv_direct_eligible(const mtc_conv_shape *s);
int mtc_conv_direct_wp(const mtc_conv_shape *s);
int64_t mtc_conv_direct_work_floats(const mtc_conv_shape *s);
void mtc_conv_direct_pad(float *P, const float *in, const mtc_conv_shape *s);
void mtc_conv_direct_forward(float *out, const float *in, const float *W, const float *b, int relu, int pool,
                             float *work, const mtc_conv_shape *s, int B, int isa);
void mtc_conv_direct_scalar(float *out, const float *in, const float *W, const float *b, int relu, int pool,
                            float *work, const mtc_conv_shape *s, int B);
void mtc_conv_direct_avx2(float *out, const float *in, const float *W, const float *b, int relu, int pool,
                          float *work, const mtc_conv_shape *s, int B);
void mtc_conv_direct_avx512(float *out, const float *in, const float *W, const float *b, int relu, int pool,
                            float *work, const mtc_conv_shape *s, int B);

/* ---- int8 primitives (runtime/qmath.c) --------------------------------- */
/* real multiplier r > 0 -> m0 in [2^30, 2^31) and shift so that
 * r ≈ m0·2^-31·2^-shift (shift < 0 means a left shift). */
void mtc_quant_multiplier(double r, int32_t *m0, int *shift);
/* gemmlowp SaturatingRoundingDoublingHighMul: round(a·b / 2^31), saturating
 * for a == b == INT32_MIN; ties of positive products round up. */
int32_t mtc_srdhm(int32_t a, int32_t b);
/* gemmlowp RoundingDivideByPOT: x / 2^e rounded half away from zero. */
int32_t mtc_rdivpot(int32_t x, int e);
/* x·m0·2^-31·2^-shift with the two roundings above (left shift saturates). */
int32_t mtc_requantize(int32_t x, int32_t m0, int shift);

/* Affine u8 activation quantization: q = clamp(round(x/scale) + zp, 0, 255). */
typedef struct mtc_qparams {
    float scale;
    int32_t zp;
} mtc_qparams;
/* Parameters covering [lo, hi] (widened to contain 0). symmetric: zp = 128,
 * scale = max(|lo|,|hi|)/127. */
mtc_qparams mtc_qparams_from_range(float lo, float hi, int symmetric);
void mtc_quantize_u8(uint8_t *q, const float *x, int64_t n, mtc_qparams p);
void mtc_dequantize_u8(float *x, const uint8_t *q, int64_t n, mtc_qparams p);
/* Same bytes as mtc_quantize_u8, vectorized (runtime/qmath_avx*.c). */
void mtc_quantize_u8_avx2(uint8_t *q, const float *x, int64_t n, mtc_qparams p);
void mtc_quantize_u8_avx512(uint8_t *q, const float *x, int64_t n, mtc_qparams p);
/* Symmetric s8 weights, rows of `cols` values: scale[r] = max|W[r]|/127
 * (per_tensor: one max over all rows, copied to every scale[r]). */
void mtc_quantize_weights_s8(int8_t *q, float *scale, const float *W, int rows,
                             int64_t cols, int per_tensor);

/* ---- calibration (quantize/calib.c) ------------------------------------ */
enum { MTC_CALIB_MINMAX = 0, MTC_CALIB_PERCENTILE, MTC_CALIB_ENTROPY };
int mtc_calib_method_parse(const char *s); /* -1 if unknown */
const char *mtc_calib_method_name(int m);
#define MTC_CALIB_BINS 2048
/* Statistics of one activation tensor over the calibration set: two passes
 * (mtc_calib_range, then mtc_calib_hist) over the same data. */
typedef struct mtc_calib {
    double lo, hi, amax;          /* min, max, max |x| */
    int pass;                     /* 0 = range, 1 = histogram */
    double hist[MTC_CALIB_BINS];  /* x over [lo, hi] */
    double ahist[MTC_CALIB_BINS]; /* |x| over [0, amax] */
    int64_t n;
} mtc_calib;
void mtc_calib_init(mtc_calib *c);
void mtc_calib_observe(mtc_calib *c, const float *x, int64_t n);
void mtc_calib_next_pass(mtc_calib *c);
/* Range to quantize with. entropy: TensorRT-style KL threshold search over
 * |x| (or x when lo >= 0) with `levels` quantization levels (128 for s8,
 * 255 for u8 over a non-negative tensor). */
void mtc_calib_result(const mtc_calib *c, int method, double percentile,
                      int symmetric, float *lo, float *hi);
/* KL threshold search on a histogram of |x| with bins of width `width`:
 * returns the threshold. Exposed for tests. */
double mtc_calib_entropy_threshold(const double *hist, int nbins, double width,
                                   int levels);

/* ---- int8 GEMM (runtime/qgemm*.c; dispatch runtime/isa.c) ------------- */
/* Weights packed once: N output channels × K inputs, padded to Np (multiple
 * of 16) × Kp (multiple of 4), layout [N/16][K/4][16][4] — 4 k-values of 16
 * channels interleaved, one 64-byte row per vpdpbusd. Pad values are 0. */
typedef struct mtc_qweight {
    int N, K, Np, Kp;
    int8_t *data;
} mtc_qweight;
int mtc_qweight_pack(mtc_qweight *w, const int8_t *W, int N, int K, mtc_err *e);
void mtc_qweight_free(mtc_qweight *w);
/* C (M,N) s32, row stride ldc = Σ_k A[m,k]·W[n,k]; A (M,K) u8 with row
 * stride lda. Kernels may read A up to 3 bytes past row m's K values (and
 * past the last row): callers keep MTC_QGEMM_SLACK bytes readable after A. */
#define MTC_QGEMM_SLACK 64
typedef void (*mtc_qgemm_fn)(const uint8_t *A, int lda, const mtc_qweight *w,
                             int M, int32_t *C, int ldc);
void mtc_qgemm_scalar(const uint8_t *A, int lda, const mtc_qweight *w, int M,
                      int32_t *C, int ldc);
void mtc_qgemm_avx2(const uint8_t *A, int lda, const mtc_qweight *w, int M,
                    int32_t *C, int ldc);
void mtc_qgemm_avx512(const uint8_t *A, int lda, const mtc_qweight *w, int M,
                      int32_t *C, int ldc);
enum { MTC_ISA_SCALAR = 0, MTC_ISA_AVX2, MTC_ISA_AVX512 };
/* Best kernel the CPU supports, or MTC_ISA=scalar|avx2|avx512 when set
 * (an ISA the CPU lacks falls back to the best available). */
int mtc_qgemm_isa(void);
int mtc_qgemm_isa_supported(int isa);
const char *mtc_isa_name(int isa);
mtc_qgemm_fn mtc_qgemm_get(int isa);
/* int8 grouped / depthwise conv of one sample x (C, H, W) u8 with zero
 * point zp, weights wq (OC, C/G, K, K): C (OH·OW, OC) int32 sums, padding
 * reading zp (runtime/qconv_group.c). _ref is the tap-by-tap scalar twin;
 * both give the same values. */
void mtc_qconv_group(const int8_t *wq, const uint8_t *x, int32_t zp, const mtc_conv_shape *s, int32_t *C);
void mtc_qconv_group_ref(const int8_t *wq, const uint8_t *x, int32_t zp, const mtc_conv_shape *s, int32_t *C);
/* The depthwise case (C/G == 1: each output channel reads one input
 * channel) on a channels-last sample x (H, W, C): the same C as
 * mtc_qconv_group, from weights wt (K·K, OC) that mtc_qconv_dw_weights
 * transposes once from wq. */
void mtc_qconv_dw_weights(const int8_t *wq, const mtc_conv_shape *s, int8_t *wt);
void mtc_qconv_dw_nhwc(const int8_t *wt, const uint8_t *x, int32_t zp, const mtc_conv_shape *s, int32_t *C);

/* ---- dense int8 epilogue (runtime/epilogue*.c) ------------------------- */
/* C (M, N) int32 -> u8: clamp(requantize(C + bias) + zo, lo, 255) into
 * out rows of stride ld. The AVX-512 twin (ld = N) is bit-identical when
 * mtc_epilogue_vectorizable (m0 > 0, 0 <= shift <= 30). */
void mtc_epilogue_dense_u8_scalar(const int32_t *C, int M, int N, const int32_t *bias, const int32_t *m0,
                                  const int *shift, int32_t zo, int32_t lo, uint8_t *out, int ld);
void mtc_epilogue_dense_u8_avx512(const int32_t *C, int M, int N, const int32_t *bias, const int32_t *m0,
                                  const int *shift, int32_t zo, int32_t lo, uint8_t *out);
/* C + bias -> float (· deq[n]), relu optional. */
void mtc_epilogue_dense_f32_avx512(const int32_t *C, int M, int N, const int32_t *bias, const float *deq,
                                   int relu, float *out);
int mtc_epilogue_vectorizable(const int32_t *m0, const int *shift, int N);

/* ---- sparse fp32 dense layers (runtime/sparse*.c) ---------------------- */
/* W (N, K) row-major in CSR: row n's nonzeros are val[rowptr[n] ..
 * rowptr[n+1]) at columns col16 (when K < 65536) or col32 (the other is
 * NULL), ascending. The columns are also cut into P panels of KP: row n's
 * nonzeros in panel p start at split[n·(P+1) + p] (so the batch kernel
 * walks one panel of the input at a time, cache-sized). Built once when a
 * pruned checkpoint is loaded. */
typedef struct mtc_csr {
    int N, K, KP, P;
    int32_t nnz;
    int32_t *rowptr, *split;
    uint16_t *col16;
    int32_t *col32;
    float *val;
} mtc_csr;
/* Fraction of W's n values that are exactly 0. */
double mtc_sparsity(const float *W, int64_t n);
int mtc_csr_from_dense(mtc_csr *s, const float *W, int N, int K, mtc_err *e);
void mtc_csr_free(mtc_csr *s);
/* Y (B, N) = X (B, K)·Wᵀ + bias, then relu (y > 0 ? y : 0, as
 * mtc_act_forward) when relu != 0. scratch holds mtc_spmm_scratch_floats(W)
 * floats (a tile of the batch, transposed, and its sums); the kernels never
 * allocate. */
#define MTC_SPMM_TILE 32 /* most batch rows any kernel handles at once */
int64_t mtc_spmm_scratch_floats(const mtc_csr *W);
typedef void (*mtc_spmm_fn)(const float *X, int B, const mtc_csr *W, const float *bias, int relu,
                            float *Y, float *scratch);
void mtc_spmm_scalar(const float *X, int B, const mtc_csr *W, const float *bias, int relu, float *Y,
                     float *scratch);
void mtc_spmm_avx2(const float *X, int B, const mtc_csr *W, const float *bias, int relu, float *Y,
                   float *scratch);
void mtc_spmm_avx512(const float *X, int B, const mtc_csr *W, const float *bias, int relu, float *Y,
                     float *scratch);
mtc_spmm_fn mtc_spmm_get(int isa); /* MTC_ISA_*, as mtc_qgemm_get */
/* The sparsity from which the sparse kernel beats sgemv/sgemm at batch B
 * (rows per call and thread) on the machine it was measured on
 * (bench_infer sparse, docs/prune.md); lowest for large B. The runtime
 * uses it unless MTC_SPARSE_MIN=<fraction> is set; MTC_SPARSE=0 turns the
 * sparse path off. */
double mtc_sparse_crossover(int B);

/* ---- runtime (runtime/) ------------------------------------------------ */
typedef struct mtc_rt mtc_rt; /* opaque */
int mtc_rt_load(const char *path, mtc_rt **rt, mtc_err *e);
/* From a checkpoint already in memory (path is for messages). */
int mtc_rt_from_ckpt(const mtc_ckpt *c, const char *path, mtc_rt **rt,
                     mtc_err *e);
/* From a model in memory (a teacher being labelled, an imported model):
 * its parameters as a checkpoint would hold them; name is for messages. */
int mtc_rt_from_model(const mtc_model *m, const char *name, mtc_rt **rt, mtc_err *e);
void mtc_rt_free(mtc_rt *rt);
/* Worker threads over the batch (default 1), split by the runtime's own
 * pool (its kernels never call OpenBLAS). */
void mtc_rt_set_threads(mtc_rt *rt, int threads);
/* Forces an int8 kernel (MTC_ISA_*); default mtc_qgemm_isa(). */
void mtc_rt_set_isa(mtc_rt *rt, int isa);
/* Outputs are the same bytes at every batch size and thread count for a
 * given ISA: each row runs through the same kernels whatever B is. The
 * sparse kernel is the exception (chosen by rows per call; its sums run in
 * another order): mtc_rt_set_sparse(rt, 0) keeps pruned layers dense. */
void mtc_rt_set_sparse(mtc_rt *rt, int on);
/* int8 conv maps between int8 ops stay channels-last (the GEMM's rows as
 * they come: no transposes), default on; off keeps every map (c, h, w).
 * Either way the same bytes. */
void mtc_rt_set_channels_last(mtc_rt *rt, int on);
/* Reserves buffers for batches up to max_batch (mtc_rt_run calls it). */
int mtc_rt_reserve(mtc_rt *rt, int max_batch, mtc_err *e);
/* x (B, c·h·w) -> outs[t] (B, dim) caller-provided: cls/bin logits, reg in
 * label units, exactly as mtc_model_predict. */
int mtc_rt_run(mtc_rt *rt, const float *x, int B, float *const *outs,
               mtc_err *e);
/* mtc_rt_run, and trunk (B, mtc_rt_model(rt)->trunk_out) gets the trunk's
 * output (expert 0's with MMoE): the hints of `mtc label --hints`. */
int mtc_rt_run_trunk(mtc_rt *rt, const float *x, int B, float *const *outs,
                     float *trunk, mtc_err *e);
/* Whole split (idx NULL = all samples): outs[t] (n, dim) malloc'd. */
int mtc_rt_predict(mtc_rt *rt, const mtc_dataset *d, const int64_t *idx,
                   int64_t n, int batch, float **outs, mtc_err *e);
/* The model skeleton: spec, tasks, target standardisation (usable with
 * mtc_evaluate_outputs / mtc_model_bind_task; parameters of int8 layers are
 * not filled). */
const mtc_model *mtc_rt_model(const mtc_rt *rt);
int64_t mtc_rt_weight_bytes(const mtc_rt *rt); /* stored parameter bytes */
int64_t mtc_rt_file_bytes(const mtc_rt *rt);   /* 0 when not from a file */
/* The size of the file a runtime built in memory came from (an import). */
void mtc_rt_set_file_bytes(mtc_rt *rt, int64_t bytes);
int mtc_rt_nlayers(const mtc_rt *rt);          /* dense/conv layers */
int mtc_rt_nquantized(const mtc_rt *rt);       /* of those, int8 */
/* The straight-through model of rt: a training-engine model (mtc_model_free
 * it) computing rt's function without activation quantization: int8
 * weights dequantized (wq * scale, bias_q * s_in * s_w), batchnorms folded
 * into them made identities, every fp32 parameter as loaded. Its input
 * gradient is the straight-through estimate of the int8 model's. */
int mtc_rt_ste_model(const mtc_rt *rt, mtc_model *out, mtc_err *e);
/* fp32 dense layers that run the sparse kernel at `batch` rows per call
 * (and thread): W sparse enough (mtc_sparse_crossover or MTC_SPARSE_MIN,
 * read at load; none with MTC_SPARSE=0). */
int mtc_rt_nsparse(const mtc_rt *rt, int batch);

/* ---- post-training quantization (quantize/quantize.c) ----------------- */
typedef struct mtc_quant_cfg {
    int calib_n;            /* calibration samples from the train split (1000) */
    int calib_method;       /* MTC_CALIB_* (default percentile) */
    double percentile;      /* 99.99 */
    int per_tensor;         /* weights: one scale per tensor */
    int act_symmetric;      /* activations s8 symmetric instead of u8 */
    int val_n;              /* fallback: validation samples (2000) */
    int has_budget;         /* fallback on */
    double max_drop[MTC_MAX_TASKS]; /* per model task, points (or %);
                                       default MTC_MAX_DROP_DEFAULT */
    int relative;           /* drops relative to the fp32 metric, in % */
    uint64_t seed;
    int threads;
} mtc_quant_cfg;
/* The defaults above; `mtc quantize` starts from them and prints them in
 * --help. */
void mtc_quant_cfg_default(mtc_quant_cfg *c);

#define MTC_QUANT_MAX_LAYERS 128
typedef struct mtc_quant_layer {
    char name[96];
    int quantized;
    double solo_drop[MTC_MAX_TASKS]; /* drop when only this layer is int8 */
} mtc_quant_layer;
typedef struct mtc_quant_report {
    int nlayers;
    mtc_quant_layer layers[MTC_QUANT_MAX_LAYERS];
    int ntasks;
    double val_fp32[MTC_MAX_TASKS], val_int8[MTC_MAX_TASKS]; /* primary metric */
    double val_drop[MTC_MAX_TASKS];
    int within_budget;      /* 1 when every budget was met (or no budget) */
    char problem[512];      /* when not: tasks and layers at fault */
    int64_t calib_used;
} mtc_quant_report;
/* Quantizes model m (fp32, possibly pruned: masks stay) on calibration and
 * validation samples drawn (seeded, disjoint) from train, and writes `out`.
 * src is the source checkpoint (tensors not quantized are copied). Returns
 * MTC_EFAIL, after writing the best model found, when a budget cannot be met. */
int mtc_quantize(const mtc_ckpt *src, const char *src_path,
                 const mtc_dataset *train, const mtc_quant_cfg *cfg,
                 const char *out, mtc_quant_report *rep, mtc_err *e);

#endif
