/*
 * rt_internal.h — the runtime's structures, shared by runtime/ and
 * quantize/ (which calibrates and quantizes a loaded fp32 runtime in place).
 * Not part of the public API.
 */
#ifndef MTC_RT_INTERNAL_H
#define MTC_RT_INTERNAL_H

#include "mtc.h"

enum { OP_DENSE = 0, OP_CONV, OP_MAXPOOL, OP_AVGPOOL, OP_ACT, OP_LN, OP_BN, OP_RESID, OP_ADD };

/* One executable step: a dense/conv layer with a following batchnorm folded
 * and a following relu fused, or a layer run as is. Flatten and dropout are
 * no-ops at inference and have no op. */
typedef struct rt_op {
    int kind, id;
    const mtc_layer *L;     /* main layer: name, shapes, spec */
    const mtc_layer *bn;    /* folded batchnorm layer, or NULL */
    int act;                /* activation applied after (fused or ACT op) */
    int64_t in_size, out_size;
    int N, K;               /* dense/conv: output channels, fan-in */
    float *W, *b;           /* dense/conv fp32 (folded, owned); may be NULL in
                               an int8 checkpoint */
    int has_fp32;
    int depth;              /* resid/add: the skip buffer (nesting level) */
    /* int8 */
    int quant;              /* runs int8 */
    int out_u8;             /* plan: int8 op writes u8 (else f32) */
    mtc_qweight qw;
    int8_t *wq;             /* (N, K) as stored */
    int8_t *wq_dw;          /* depthwise conv (C/G == 1): (K·K, N) for mtc_qconv_dw_nhwc, else NULL */
    float *wscale;          /* (N) */
    int32_t *bias_q;        /* (N), scale s_in·s_w */
    int32_t *bias_eff;      /* bias_q − zp_in·Σ_k wq */
    int32_t *m0;
    int *shift;
    float *deq;             /* s_in·s_w, for f32 output */
    mtc_qparams in_p, out_p;
    int vec_epilogue;       /* the AVX-512 epilogue is exact for this op */
    /* sparse fp32 dense: CSR copy of the folded W (csr.val NULL when the
     * layer is not sparse enough for any batch size) */
    double sparsity;        /* fraction of exact zeros in W */
    mtc_csr csr;
    /* fp32 conv with mtc_wino_eligible: the Winograd-transformed W (owned),
     * or NULL (im2col; MTC_WINOGRAD=0 at load keeps every conv there) */
    float *wino;
    int direct;             /* fp32 conv with mtc_conv_direct_eligible (and
                               no Winograd): the direct kernel on W */
    int pool_fuse;          /* wino or direct op followed by a 2×2/2 max pool: run as
                               one (fp32, no calibration tap), pool op skipped */
    /* fp32 dense, and conv without Winograd: W packed for mtc_gemm (owned),
     * the kernel at every batch size */
    float *wp;
} rt_op;

typedef struct rt_chain {
    int n;
    rt_op ops[MTC_MAX_LAYERS];
} rt_chain;

typedef struct rt_ws rt_ws;

/* Calibration hook: called with the float input (which = 0) and output
 * (which = 1) of every op, single-threaded, while no op is int8. */
typedef void (*rt_tap_fn)(void *ctx, const rt_op *op, int which, const float *x, int64_t n);

struct mtc_rt {
    mtc_model m;            /* skeleton + fp32 parameters */
    rt_chain trunk[MTC_MAX_EXPERTS], head[MTC_MAX_TASKS];
    rt_op gate[MTC_MAX_TASKS];
    int nops;
    int skip_depth;         /* skip buffers residual blocks need (deepest nesting) */
    rt_op *ops[MTC_MAX_LAYERS * (MTC_MAX_EXPERTS + MTC_MAX_TASKS)];
    int threads, isa;
    mtc_pool *pool;         /* created by the first multi-threaded run */
    mtc_qgemm_fn gemm;
    mtc_spmm_fn spmm;
    mtc_gemm_fn fgemm;      /* fp32: mtc_gemm_avx2 or its scalar twin */
    int no_sparse;          /* mtc_rt_set_sparse(rt, 0) */
    int nchw;               /* mtc_rt_set_channels_last(rt, 0) */
    double sparse_min;      /* MTC_SPARSE_MIN at load, or < 0: the crossover */
    int winograd;           /* 0 when MTC_WINOGRAD=0 at load */
    void (*quantize)(uint8_t *q, const float *x, int64_t n, mtc_qparams p);
    int max_batch, nws;
    rt_ws **ws;
    int64_t file_bytes;
    rt_tap_fn tap;
    void *tap_ctx;
};

/* The requantization of mtc_requantize, inlined for the epilogues. */
static inline int32_t rt_requant(int32_t x, int32_t m0, int shift)
{
    if (shift < 0) {
        int64_t v = (int64_t)x * ((int64_t)1 << -shift);
        x = v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
        shift = 0;
    }
    /* SaturatingRoundingDoublingHighMul */
    int32_t h;
    if (x == m0 && x == INT32_MIN) {
        h = INT32_MAX;
    } else {
        int64_t ab = (int64_t)x * (int64_t)m0;
        int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
        h = (int32_t)((ab + nudge) / ((int64_t)1 << 31));
    }
    if (shift == 0) return h;
    /* RoundingDivideByPOT */
    int32_t mask = (int32_t)(((int64_t)1 << shift) - 1);
    int32_t rem = h & mask, thr = (mask >> 1) + (h < 0 ? 1 : 0);
    return (h >> shift) + (rem > thr ? 1 : 0);
}

/* dense/conv with act none or relu: can run int8. */
int rt_op_quantizable(const rt_op *op);
/* Installs int8 parameters (copied) on op and marks it int8; call rt_plan
 * after changing which ops are int8. */
int rt_op_set_quant(rt_op *op, const int8_t *wq, const float *wscale, const int32_t *bias_q,
                    mtc_qparams in_p, mtc_qparams out_p, mtc_err *e);
/* Decides each int8 op's output format (u8 when the next op can consume u8). */
void rt_plan(mtc_rt *rt);
/* op runs the sparse kernel at B rows per call (fp32 dense with a CSR,
 * sparse enough at this batch size). */
int rt_op_sparse(const mtc_rt *rt, const rt_op *op, int B);
/* Bytes of the stored parameters of op (int8 or fp32 as it runs now). */
int64_t rt_op_bytes(const rt_op *op);
/* Columns [0, kw) of rows ≤ T rows of X (row stride ldx) -> xt (kw, T),
 * rows past `rows` zero; T a multiple of 8. Fills the sparse kernels'
 * tile (runtime/sparse_avx2.c, also used by the AVX-512 twin). */
void rt_spmm_transpose_avx2(float *xt, const float *X, int64_t ldx, int rows, int kw, int T);
/* Y rows = X rows·Wᵀ + bias (relu), one row at a time with 8-wide gathers:
 * the AVX2 and AVX-512 kernels' path for 1-2 rows. */
void rt_spmm_rows_avx2(const float *X, int rows, const mtc_csr *W, const float *bias, int relu, float *Y);
/* Column of CSR nonzero j (16- or 32-bit indices). */
static inline int rt_csr_col(const mtc_csr *W, int32_t j) { return W->col16 ? W->col16[j] : W->col32[j]; }
static inline float rt_relu_if(float y, int relu) { return relu && !(y > 0.0f) ? 0.0f : y; }
/* Y rows [0, rows) from a tile's sums acc (N, T) (column i = row i), relu
 * applied: the last step of every sparse kernel's tile. */
void rt_spmm_tile_store(const float *acc, int T, int rows, int N, int relu, float *Y);
/* One tile of up to T rows of X -> Y (the SIMD kernels' tile16 / tile32). */
typedef void (*rt_spmm_tile_fn)(const float *X, int rows, const mtc_csr *W, const float *bias, int relu,
                                float *Y, float *scratch);
/* The SIMD kernels' driver: 32-row tiles (t32); what is left, one
 * 16-row tile (t16), or row by row for 1-2 rows (rt_spmm_rows_avx2),
 * where the padded tile costs more than the gathers. */
void rt_spmm_tiled_avx2(const float *X, int B, const mtc_csr *W, const float *bias, int relu, float *Y,
                        float *scratch, rt_spmm_tile_fn t32, rt_spmm_tile_fn t16);
/* The sparse kernels' scratch rounded up to 64 bytes: their tile rows are
 * 64-byte multiples, and a vector load across two cache lines costs two. */
static inline float *rt_align64(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

#endif
