/*
 * onnx_import.c — an ONNX model (a teacher trained in PyTorch or anything
 * that exports ONNX) becomes an mtc model: `mtc import`.
 *
 * The file is parsed by protobuf-c with the onnx.proto that libonnx-dev
 * ships (code generated at build time into build/gen/; never by hand). The
 * graph must have mtc's shape: one input, a trunk that branches into one
 * chain per graph output (or a single chain and one output). Nodes are
 * taken in graph order (ONNX keeps them topologically sorted):
 *   Gemm, MatMul (+ Add of a bias)  -> [dense]     Conv      -> [conv]
 *   MaxPool, AveragePool            -> [maxpool] / [avgpool]
 *   GlobalAveragePool, ReduceMean(2, 3) -> [avgpool] as large as the map
 *   BatchNormalization              -> [batchnorm] (kept; the runtime folds it)
 *   LayerNormalization              -> [layernorm]
 *   Relu, LeakyRelu (0.01), Tanh, Sigmoid, Gelu -> the act of the layer before, or [act]
 *   elementwise chains over one tensor (gelu before opset 20) -> evaluated,
 *                                      folded to the activation they equal
 *   Flatten, Reshape to (batch, -1) -> [flatten]   Identity, Dropout -> nothing
 *   Softmax / LogSoftmax / Sigmoid ending an output -> stripped: the task
 *   holds logits (cls / bin), as every mtc checkpoint does
 *   Pad (zeros)                     -> nothing, or the next Conv's pad
 *   Constant                        -> a value for the nodes after it
 * The last dense layer of each output's chain is the task's output layer;
 * the layers between the branch point and it are the task's [head]. Anything
 * else is MTC_EINPUT naming the node, its op and why; nothing is written.
 *   Shape -> Gather(0) -> Unsqueeze -> Concat(.., [-1]) as a Reshape target
 *                                   -> folded (PyTorch's x.view(x.size(0), -1))
 * MMoE as mtc export writes it: see mmoe_find. Not yet: depthwise and
 * grouped convolutions (the engine has none); external data is refused.
 */
#include "mtc.h"
#include "onnx.pb-c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ONNX_MAX_BYTES ((size_t)2 << 30)
#define MAX_CHAINS (MTC_MAX_TASKS + 1)
#define MAX_TENSORS 4096
#define EX_PTS 321 /* expr_group: x in [-8, 8] step 0.05 */
#define EX_NODES 32

enum { STRIP_NONE = 0, STRIP_SOFTMAX, STRIP_LOGSOFTMAX, STRIP_SIGMOID };

typedef struct ilayer {
    int type;                 /* MTC_L_* */
    int units, filters, size, stride, pad, act;
    int groups;               /* conv: the ONNX group attribute (0/1: dense) */
    const float *W, *b;       /* b NULL: zero bias */
    int wtrans;               /* W stored (K, N): transpose into (N, K) */
    int64_t wk, wn;           /* dense: fan-in, units; conv: C·K·K, filters */
    const float *bn[4];       /* gamma, beta, mean, var */
    const char *out;          /* tensor it writes */
    const char *node;         /* the node it came from (its name) */
} ilayer;

typedef struct ichain {
    int n;
    ilayer l[MTC_MAX_LAYERS];
    int strip;                /* STRIP_*: the output's final op, removed */
    int pending_pad;          /* a Pad's spatial zeros, for the Conv that follows */
    int sc, sh, sw;           /* the shape of what the chain computes so far */
    const char *strip_op;
    const char *output;       /* graph output name (heads) */
} ichain;

typedef struct tensor {
    const char *name;
    int chain, consumers;
    int res_src;              /* the skip input of a residual Add (that use not counted) */
    int res_open;             /* its [residual] pushed */
    const char *res_main;     /* that Add's other input: the block's output */
} tensor;

/* Values exporters compute from a tensor's shape for a Reshape target
 * (PyTorch's x.view(x.size(0), -1)): Shape -> Gather(0) -> Unsqueeze ->
 * Concat with [-1]. Folded symbolically; nothing runs. */
enum { SYM_SHAPE = 1, SYM_BATCH, SYM_BATCHVEC, SYM_FLAT };
typedef struct sym { const char *name; int kind; } sym;

typedef struct ictx {
    const char *path;
    mtc_err *e;
    Onnx__GraphProto *g;
    ichain ch[MAX_CHAINS];
    int nch;
    const char *branch;       /* the trunk tensor the heads start from */
    tensor t[MAX_TENSORS];
    int nt;
    sym syms[64];
    int nsym;
    Onnx__TensorProto *consts[MAX_TENSORS];
    const char *const_name[MAX_TENSORS]; /* a Constant's output name */
    int nconst;
    int ndim, c, h, w;        /* input: (batch, w) or (batch, c, h, w) */
    int opset;
    unsigned char *done;      /* nodes folded into an earlier one, or not this phase's */
    /* MMoE (mtc_onnx_import's phases): the experts' chains, each task head's gate */
    int E;
    ichain *experts;          /* E chains */
    struct { const float *W, *b; int trans; int64_t K; const char *mix; } gate[MAX_CHAINS];
    double exval[EX_NODES + 1][EX_PTS]; /* expr_group's values */
    /* residual Adds (residual_add), found once per walk */
    int nres;
    struct { size_t node; const char *skip, *main; } res[MTC_MAX_LAYERS * 4];
} ictx;

/* ---- small lookups ------------------------------------------------------ */

/* protobuf-c leaves an absent optional string NULL */
static const char *S(const char *s) { return s ? s : ""; }

static const char *node_name(const Onnx__NodeProto *n)
{
    return n->name && *n->name ? n->name : (n->n_output ? n->output[0] : "?");
}

static int node_err(ictx *x, const Onnx__NodeProto *n, const char *why)
{
    return mtc_err_set(x->e, MTC_EINPUT, "%s: node '%s' (%s): %s", x->path, node_name(n), S(n->op_type), why);
}

static Onnx__TensorProto *find_init(ictx *x, const char *name)
{
    for (size_t i = 0; i < x->g->n_initializer; i++)
        if (!strcmp(S(x->g->initializer[i]->name), name)) return x->g->initializer[i];
    for (int i = 0; i < x->nconst; i++)
        if (!strcmp(x->const_name[i], name)) return x->consts[i];
    return NULL;
}

static tensor *find_tensor(ictx *x, const char *name)
{
    for (int i = x->nt - 1; i >= 0; i--)
        if (!strcmp(x->t[i].name, name)) return &x->t[i];
    return NULL;
}

static int producer(ictx *x, const char *name);

/* Walks back from tensor t through the producers (each node once: vis,
 * n_node bytes) until stop. mode 0: 1 when a Conv, Gemm or MatMul lies on
 * the way (an elementwise expression such as gelu's x + c·x³ has none: not
 * a residual block); mode 1: 1 when tensor stop is reached (an ancestor of
 * t, or t itself). */
static int walk_back(ictx *x, const char *t, const char *stop, int mode, unsigned char *vis)
{
    if (!strcmp(t, stop)) return mode == 1;
    int p = producer(x, t);
    if (p < 0 || vis[p]) return 0;
    vis[p] = 1;
    const Onnx__NodeProto *nd = x->g->node[p];
    const char *op = S(nd->op_type);
    if (mode == 0 && (!strcmp(op, "Conv") || !strcmp(op, "Gemm") || !strcmp(op, "MatMul"))) return 1;
    for (size_t k = 0; k < nd->n_input; k++)
        if (*nd->input[k] && !find_init(x, nd->input[k]) && walk_back(x, nd->input[k], stop, mode, vis)) return 1;
    return 0;
}

static int walk_back_from(ictx *x, const char *t, const char *stop, int mode)
{
    unsigned char *vis = calloc(x->g->n_node + 1, 1);
    int r = vis ? walk_back(x, t, stop, mode, vis) : 0; /* out of memory: not a residual block */
    free(vis);
    return r;
}

/* An Add of two computed tensors with a layer between them is a residual
 * block's sum: its skip input is the one computed first (the graph's
 * input, or the earlier node's output); 1 when node i is such an Add, with
 * *skip and *main set. */
static int residual_add(ictx *x, size_t i, const char **skip, const char **mainin)
{
    const Onnx__NodeProto *nd = x->g->node[i];
    if (strcmp(S(nd->op_type), "Add") || nd->n_input != 2 || find_init(x, nd->input[0]) || find_init(x, nd->input[1]))
        return 0;
    int p0 = producer(x, nd->input[0]), p1 = producer(x, nd->input[1]);
    if ((p0 >= 0 && !strcmp(S(x->g->node[p0]->op_type), "Constant")) ||
        (p1 >= 0 && !strcmp(S(x->g->node[p1]->op_type), "Constant")))
        return 0; /* a Constant node's value: not computed (find_init knows it only once translated) */
    int k = p0 < p1 ? 0 : 1;
    if (!walk_back_from(x, nd->input[1 - k], nd->input[k], 0)) return 0;
    *skip = nd->input[k], *mainin = nd->input[1 - k];
    return 1;
}

static int add_tensor(ictx *x, const char *name, int chain)
{
    if (x->nt >= MAX_TENSORS) return mtc_err_set(x->e, MTC_EINPUT, "%s: more than %d tensors", x->path, MAX_TENSORS);
    int consumers = 0;
    for (size_t i = 0; i < x->g->n_node; i++) {
        if (!strcmp(S(x->g->node[i]->op_type), "Shape")) continue; /* reads the shape only */
        if (x->done && x->done[i]) continue;                       /* folded, or another phase's */
        for (size_t k = 0; k < x->g->node[i]->n_input; k++) consumers += !strcmp(x->g->node[i]->input[k], name);
    }
    for (size_t i = 0; i < x->g->n_output; i++) consumers += !strcmp(S(x->g->output[i]->name), name);
    int res = 0;
    const char *rm = NULL;
    for (int i = 0; i < x->nres; i++)
        if (!(x->done && x->done[x->res[i].node]) && !strcmp(x->res[i].skip, name))
            res = 1, consumers--, rm = x->res[i].main;
    x->t[x->nt++] = (tensor){name, chain, consumers, res, 0, rm};
    return 0;
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (!strcmp(S(n->attribute[i]->name), name)) return n->attribute[i];
    return NULL;
}

static int64_t attr_i(const Onnx__NodeProto *n, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

static float attr_f(const Onnx__NodeProto *n, const char *name, float dflt)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_f ? a->f : dflt;
}

/* An ints attribute whose values are all v (absent: dflt_ok). */
static int attr_all(const Onnx__NodeProto *n, const char *name, int64_t v, int64_t *first, int dflt_ok)
{
    const Onnx__AttributeProto *a = attr(n, name);
    if (!a || !a->n_ints) { *first = v; return dflt_ok; }
    *first = a->ints[0];
    for (size_t i = 1; i < a->n_ints; i++)
        if (a->ints[i] != a->ints[0]) return 0;
    return 1;
}

static int64_t numel(const Onnx__TensorProto *t)
{
    int64_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > ((int64_t)1 << 31)) return -1;
        n *= t->dims[i];
        if (n > ((int64_t)1 << 31)) return -1;
    }
    return n;
}

/* The float values of an initializer with n values (dims checked by the
 * caller), or NULL with the error set. */
static const float *floats(ictx *x, const Onnx__NodeProto *nd, const Onnx__TensorProto *t, int64_t n)
{
    char why[400];
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        snprintf(why, sizeof why, "tensor '%s' is stored in an external file (re-export with the weights inline)",
                 S(t->name));
        return node_err(x, nd, why), NULL;
    }
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || numel(t) != n) {
        snprintf(why, sizeof why, "tensor '%s': want %lld float32 values", S(t->name), (long long)n);
        return node_err(x, nd, why), NULL;
    }
    if (t->has_raw_data && t->raw_data.len == (size_t)n * 4) return (const float *)t->raw_data.data; /* x86: LE */
    if (!t->has_raw_data && t->n_float_data == (size_t)n) return t->float_data;
    snprintf(why, sizeof why, "tensor '%s': its data holds the wrong number of values", S(t->name));
    return node_err(x, nd, why), NULL;
}

/* Initializer input k of node nd with the given dims (-1: any). */
static const float *weight(ictx *x, const Onnx__NodeProto *nd, size_t k, int nd_want, int64_t *dims)
{
    char why[400];
    Onnx__TensorProto *t = k < nd->n_input ? find_init(x, nd->input[k]) : NULL;
    if (!t) {
        snprintf(why, sizeof why, "input %zu must be a constant weight (an initializer)", k + 1);
        return node_err(x, nd, why), NULL;
    }
    if ((int)t->n_dims != nd_want) {
        snprintf(why, sizeof why, "weight '%s' has %zu dimensions, want %d", S(t->name), t->n_dims, nd_want);
        return node_err(x, nd, why), NULL;
    }
    int64_t n = 1;
    for (int i = 0; i < nd_want; i++) {
        if (dims[i] >= 0 && t->dims[i] != dims[i]) {
            snprintf(why, sizeof why, "weight '%s' dimension %d is %lld, want %lld", S(t->name), i,
                     (long long)t->dims[i], (long long)dims[i]);
            return node_err(x, nd, why), NULL;
        }
        dims[i] = t->dims[i];
        n *= dims[i];
    }
    return floats(x, nd, t, n);
}

/* ---- translating nodes -------------------------------------------------- */

static ilayer *push(ictx *x, ichain *c, const Onnx__NodeProto *nd, int type)
{
    if (c->n >= MTC_MAX_LAYERS) return node_err(x, nd, "too many layers in one chain"), NULL;
    ilayer *l = &c->l[c->n++];
    memset(l, 0, sizeof *l);
    l->type = type;
    l->out = nd->output[0];
    l->node = nd->name;
    return l;
}

static int act_of(const Onnx__NodeProto *nd)
{
    if (!strcmp(S(nd->op_type), "Relu")) return MTC_ACT_RELU;
    if (!strcmp(S(nd->op_type), "Tanh")) return MTC_ACT_TANH;
    if (!strcmp(S(nd->op_type), "Sigmoid")) return MTC_ACT_SIGMOID;
    if (!strcmp(S(nd->op_type), "LeakyRelu")) return MTC_ACT_LEAKY;
    if (!strcmp(S(nd->op_type), "Gelu")) { /* opset 20 */
        const Onnx__AttributeProto *a = attr(nd, "approximate");
        return a && a->has_s && a->s.len == 4 && !memcmp(a->s.data, "tanh", 4) ? MTC_ACT_GELU : MTC_ACT_GELU_ERF;
    }
    return -1;
}

static int dense(ictx *x, ichain *c, const Onnx__NodeProto *nd, int gemm)
{
    int64_t dims[2] = {-1, -1};
    int trans = 1; /* MatMul: W (K, N) */
    if (gemm) {
        if (attr_f(nd, "alpha", 1.0f) != 1.0f || attr_f(nd, "beta", 1.0f) != 1.0f || attr_i(nd, "transA", 0))
            return node_err(x, nd, "only alpha = beta = 1 and transA = 0 are supported");
        trans = !attr_i(nd, "transB", 0);
    }
    const float *W = weight(x, nd, 1, 2, dims);
    if (!W) return x->e->code;
    ilayer *l = push(x, c, nd, MTC_L_DENSE);
    if (!l) return x->e->code;
    l->W = W;
    l->wtrans = trans;
    l->wk = trans ? dims[0] : dims[1];
    l->wn = trans ? dims[1] : dims[0];
    l->units = (int)l->wn;
    if (gemm && nd->n_input > 2 && *nd->input[2]) {
        Onnx__TensorProto *bt = find_init(x, nd->input[2]);
        if (!bt || numel(bt) != l->wn) return node_err(x, nd, "the bias C must be a constant of N values");
        if (!(l->b = floats(x, nd, bt, l->wn))) return x->e->code;
    }
    return 0;
}

static int conv(ictx *x, ichain *c, const Onnx__NodeProto *nd)
{
    int64_t k, s, p, d;
    const Onnx__AttributeProto *ap = attr(nd, "auto_pad");
    if (ap && ap->has_s && ap->s.len && strncmp((const char *)ap->s.data, "NOTSET", ap->s.len))
        return node_err(x, nd, "auto_pad is not supported (export with explicit pads)");
    int64_t g = attr_i(nd, "group", 1);
    if (g < 1 || g > (1 << 16)) return node_err(x, nd, "group out of range");
    if (!attr_all(nd, "dilations", 1, &d, 1) || d != 1) return node_err(x, nd, "dilations other than 1");
    if (!attr_all(nd, "strides", 1, &s, 1)) return node_err(x, nd, "strides differ between the axes");
    if (!attr_all(nd, "pads", 0, &p, 1)) return node_err(x, nd, "pads differ between sides or axes");
    int64_t dims[4] = {-1, -1, -1, -1};
    const float *W = weight(x, nd, 1, 4, dims);
    if (!W) return x->e->code;
    if (!attr_all(nd, "kernel_shape", dims[2], &k, 1) || k != dims[2] || dims[2] != dims[3])
        return node_err(x, nd, "only square kernels are supported");
    if (k > 64 || s > 64 || p > 64 || dims[0] > (1 << 16)) return node_err(x, nd, "kernel, stride or pad out of range");
    ilayer *l = push(x, c, nd, MTC_L_CONV);
    if (!l) return x->e->code;
    l->W = W;
    l->filters = (int)dims[0];
    l->groups = (int)g; /* C / group input channels per filter: dims[1] (the model build checks C) */
    l->wn = dims[0];
    l->wk = dims[1] * dims[2] * dims[3];
    l->size = (int)k;
    l->stride = (int)s;
    l->pad = (int)p;
    if (nd->n_input > 2 && *nd->input[2]) {
        Onnx__TensorProto *bt = find_init(x, nd->input[2]);
        if (!bt || numel(bt) != dims[0]) return node_err(x, nd, "the bias must be a constant of one value per filter");
        if (!(l->b = floats(x, nd, bt, dims[0]))) return x->e->code;
    }
    return 0;
}

static int pool(ictx *x, ichain *c, const Onnx__NodeProto *nd, int type)
{
    int64_t k, s, p, d;
    if (!attr_all(nd, "kernel_shape", 0, &k, 0) || k < 1 || k > 64) return node_err(x, nd, "kernel_shape must be square");
    if (!attr_all(nd, "strides", 1, &s, 1) || s < 1 || s > 64) return node_err(x, nd, "strides differ between the axes");
    if (!attr_all(nd, "pads", 0, &p, 1) || p != 0) return node_err(x, nd, "padded pooling is not supported");
    if (!attr_all(nd, "dilations", 1, &d, 1) || d != 1) return node_err(x, nd, "dilations other than 1");
    if (attr_i(nd, "ceil_mode", 0)) return node_err(x, nd, "ceil_mode is not supported");
    ilayer *l = push(x, c, nd, type);
    if (!l) return x->e->code;
    l->size = (int)k;
    l->stride = (int)s;
    return 0;
}

static int batchnorm(ictx *x, ichain *c, const Onnx__NodeProto *nd)
{
    float eps = attr_f(nd, "epsilon", 1e-5f);
    if (fabsf(eps - 1e-5f) > 1e-9f) return node_err(x, nd, "epsilon must be 1e-5 (mtc's batchnorm)");
    if (attr_i(nd, "training_mode", 0)) return node_err(x, nd, "training_mode is set");
    ilayer *l = push(x, c, nd, MTC_L_BATCHNORM);
    if (!l) return x->e->code;
    int64_t C = -1;
    for (int i = 0; i < 4; i++) {
        int64_t dims[1] = {C};
        if (!(l->bn[i] = weight(x, nd, 1 + i, 1, dims))) return x->e->code;
        C = dims[0];
    }
    l->wn = C;
    return 0;
}

static int ints_of(ictx *x, const char *name, int64_t *v, int max);

static int sym_of(const ictx *x, const char *name)
{
    for (int i = 0; i < x->nsym; i++)
        if (!strcmp(x->syms[i].name, name)) return x->syms[i].kind;
    return 0;
}

/* Shape, Gather, Unsqueeze, Concat over shape values: 1 when nd was one
 * (folded, or an error set), 0 when it is not a shape computation. */
static int shape_node(ictx *x, const Onnx__NodeProto *nd, int *rc)
{
    const char *op = S(nd->op_type);
    int k = 0;
    int64_t v[2];
    *rc = 0;
    if (!strcmp(op, "Shape")) {
        if (!nd->n_input || !find_tensor(x, nd->input[0])) return 0;
        k = SYM_SHAPE;
    } else if (!strcmp(op, "Gather") && nd->n_input == 2 && sym_of(x, nd->input[0]) == SYM_SHAPE) {
        if (attr_i(nd, "axis", 0) != 0 || ints_of(x, nd->input[1], v, 1) != 1 || v[0] != 0)
            return *rc = node_err(x, nd, "only the batch size (index 0) of a shape is folded"), 1;
        k = SYM_BATCH;
    } else if (!strcmp(op, "Unsqueeze") && nd->n_input >= 1 && sym_of(x, nd->input[0]) == SYM_BATCH) {
        k = SYM_BATCHVEC;
    } else if (!strcmp(op, "Concat") && nd->n_input == 2 && sym_of(x, nd->input[0]) == SYM_BATCHVEC) {
        if (ints_of(x, nd->input[1], v, 1) != 1 || v[0] != -1)
            return *rc = node_err(x, nd, "only (batch, -1) is folded as a Reshape target"), 1;
        k = SYM_FLAT;
    } else {
        return 0;
    }
    if (x->nsym >= 64) return *rc = node_err(x, nd, "too many shape computations"), 1;
    x->syms[x->nsym++] = (sym){nd->output[0], k};
    return 1;
}

/* Reshape to (batch, everything else): the target a constant [0 | -1 | 1, -1 | F]. */
static int reshape_is_flatten(ictx *x, const Onnx__NodeProto *nd)
{
    int64_t v[2];
    if (nd->n_input >= 2 && sym_of(x, nd->input[1]) == SYM_FLAT) return 1;
    if (nd->n_input < 2 || ints_of(x, nd->input[1], v, 2) != 2) return 0;
    return (v[0] == 0 || v[0] == -1 || v[0] == 1) && (v[1] == -1 || v[1] > 0);
}

/* Integer values of a constant tensor (int64 or int32), at most max; -1 if
 * not a constant of that kind. */
static int ints_of(ictx *x, const char *name, int64_t *v, int max)
{
    Onnx__TensorProto *t = find_init(x, name);
    int64_t n = t ? numel(t) : -1;
    if (n < 0 || n > max) return -1;
    if (n == 0) /* empty: nothing to copy (memcpy from a NULL array is undefined even for 0 bytes) */
        return t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32
                   ? 0 : -1;
    if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
        if (t->has_raw_data && t->raw_data.len == (size_t)n * 8) memcpy(v, t->raw_data.data, (size_t)n * 8);
        else if (!t->has_raw_data && t->n_int64_data == (size_t)n) memcpy(v, t->int64_data, (size_t)n * 8);
        else return -1;
        return (int)n;
    }
    return -1;
}

/* Pad (constant mode, zeros): all-zero pads vanish; zeros around the two
 * spatial axes, the same on every side, join the next Conv's pad. */
static int pad(ictx *x, ichain *c, const Onnx__NodeProto *nd, int *alias)
{
    const Onnx__AttributeProto *m = attr(nd, "mode");
    if (m && m->has_s && m->s.len && strncmp((const char *)m->s.data, "constant", m->s.len))
        return node_err(x, nd, "only constant padding");
    int64_t v[8];
    float fill = 0.0f;
    if (nd->n_input > 2 && *nd->input[2]) {
        Onnx__TensorProto *t = find_init(x, nd->input[2]);
        const float *f = t && numel(t) == 1 ? floats(x, nd, t, 1) : NULL;
        if (!f) return node_err(x, nd, "the padding value must be a constant");
        fill = f[0];
    }
    int n = nd->n_input > 1 ? ints_of(x, nd->input[1], v, 8) : -1;
    if (n < 0) return node_err(x, nd, "the pads must be a constant of int64 values");
    int all0 = 1;
    for (int i = 0; i < n; i++) all0 &= v[i] == 0;
    *alias = all0;
    if (all0) return 0;
    if (fill != 0.0f || n != 8 || v[0] || v[1] || v[4] || v[5] || v[2] != v[3] || v[2] != v[6] || v[2] != v[7])
        return node_err(x, nd, "only the same zeros around both spatial axes (before a Conv)");
    c->pending_pad = (int)v[2];
    return 0;
}

/* The chain node nd appends to: the one its data input belongs to, or a
 * new head when that input is the trunk's branch point. */
static int chain_of(ictx *x, const Onnx__NodeProto *nd, const char *in, int *ci)
{
    tensor *t = find_tensor(x, in);
    if (!t) return node_err(x, nd, "its input is not computed from the graph's input");
    int branch = t->chain == 0 && t->consumers > 1;
    if (x->branch && t->chain == 0 && strcmp(x->branch, in))
        return node_err(x, nd, "reads the shared trunk at a second point (mtc models branch once)");
    if (t->chain > 0 && t->consumers > 1) return node_err(x, nd, "a task's head branches again (mtc heads are chains)");
    if (!branch) { *ci = t->chain; return 0; }
    if (x->nch >= MAX_CHAINS) return node_err(x, nd, "more task heads than mtc supports");
    x->branch = in;
    x->ch[x->nch].sc = x->ch[0].sc, x->ch[x->nch].sh = x->ch[0].sh, x->ch[x->nch].sw = x->ch[0].sw;
    *ci = x->nch++;
    return 0;
}

/* The chain's shape after its last layer l (conv, pool, dense, flatten). */
static int track(ictx *x, const Onnx__NodeProto *nd, ichain *c, const ilayer *l)
{
    int k = l->size, s = l->stride, p = l->pad;
    switch (l->type) {
    case MTC_L_CONV: case MTC_L_MAXPOOL: case MTC_L_AVGPOOL:
        if (c->sh + 2 * p < k || c->sw + 2 * p < k) return node_err(x, nd, "its kernel is larger than its input");
        c->sh = (c->sh + 2 * p - k) / s + 1, c->sw = (c->sw + 2 * p - k) / s + 1;
        if (l->type == MTC_L_CONV) c->sc = l->filters;
        break;
    case MTC_L_DENSE: c->sc = l->units, c->sh = c->sw = 1; break;
    case MTC_L_FLATTEN: c->sc *= c->sh * c->sw, c->sh = c->sw = 1; break;
    }
    return 0;
}

/* GlobalAveragePool, and ReduceMean over the two spatial axes: an average
 * pool as large as the feature map. */
static int global_pool(ictx *x, ichain *c, const Onnx__NodeProto *nd)
{
    if (!strcmp(S(nd->op_type), "ReduceMean")) {
        int64_t ax[4];
        const Onnx__AttributeProto *a = attr(nd, "axes");
        int n = -1;
        if (a && a->n_ints <= 4) { n = (int)a->n_ints; memcpy(ax, a->ints, (size_t)n * sizeof *ax); }
        else if (!a && nd->n_input > 1) n = ints_of(x, nd->input[1], ax, 4); /* opset 18: axes an input */
        if (n != 2 || !((ax[0] == 2 && ax[1] == 3) || (ax[0] == -2 && ax[1] == -1)))
            return node_err(x, nd, "only a mean over the two spatial axes (2, 3) of an NCHW tensor");
    }
    if (c->sh != c->sw || c->sh < 1 || c->sh > 64)
        return node_err(x, nd, "global pooling of a feature map that is not square (or larger than 64)");
    ilayer *l = push(x, c, nd, MTC_L_AVGPOOL);
    if (!l) return x->e->code;
    l->size = l->stride = c->sh;
    return 0;
}

/* LayerNormalization over everything but the batch axis (mtc's layernorm):
 * axis 1 (or -1 on a flat tensor), epsilon 1e-5, scale and bias a sample's
 * size. */
static int layernorm(ictx *x, ichain *c, const Onnx__NodeProto *nd)
{
    int64_t axis = attr_i(nd, "axis", -1), F = (int64_t)c->sc * c->sh * c->sw;
    int flat = c->sh == 1 && c->sw == 1;
    if (!(axis == 1 || (flat && axis == -1))) return node_err(x, nd, "only over all axes but the batch axis (axis 1)");
    if (fabsf(attr_f(nd, "epsilon", 1e-5f) - 1e-5f) > 1e-9f) return node_err(x, nd, "epsilon must be 1e-5 (mtc's layernorm)");
    if (nd->n_output > 1) return node_err(x, nd, "its mean and inverse-deviation outputs are used");
    ilayer *l = push(x, c, nd, MTC_L_LAYERNORM);
    if (!l) return x->e->code;
    for (size_t i = 1; i < 3; i++) {
        Onnx__TensorProto *t = i < nd->n_input && *nd->input[i] ? find_init(x, nd->input[i]) : NULL;
        if (!t && i == 1) return node_err(x, nd, "the scale must be a constant");
        if (t && numel(t) != F) return node_err(x, nd, "scale or bias does not hold one value per feature");
        if (t && !(l->bn[i - 1] = floats(x, nd, t, F))) return x->e->code;
    }
    l->wn = F;
    return 0;
}

/* ---- elementwise expressions: activations exporters write as op chains -- */

/* Exporters write gelu (and others) as small elementwise graphs over one
 * tensor with scalar constants: PyTorch's nn.GELU() before opset 20 is
 * x·0.5·(1 + erf(x/√2)) in Div/Erf/Add/Mul/Mul, its tanh form eight nodes.
 * Rather than match node patterns (each exporter orders and associates them
 * its own way), the group of nodes computed from x alone is evaluated on a
 * grid of x values and compared with mtc's activations: the expression is
 * folded to the one it equals (to 1e-5), or refused. */

static int ex_op(const char *op)
{
    static const char *const ops[] = {"Mul", "Div", "Add", "Sub", "Pow", "Erf", "Tanh", "Sigmoid", "Sqrt", "Neg",
                                      "Exp", "Relu"};
    for (int i = 0; i < (int)(sizeof ops / sizeof *ops); i++)
        if (!strcmp(op, ops[i])) return i;
    return -1;
}

static int scalar_of(ictx *x, const char *name, double *v)
{
    Onnx__TensorProto *t = find_init(x, name);
    if (!t || numel(t) != 1 || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) return 0;
    float f;
    if (t->has_raw_data && t->raw_data.len == 4) memcpy(&f, t->raw_data.data, 4);
    else if (!t->has_raw_data && t->n_float_data == 1) f = t->float_data[0];
    else return 0;
    *v = f;
    return 1;
}

static double act_ref(double v, int a)
{
    switch (a) {
    case MTC_ACT_RELU: return v > 0 ? v : 0;
    case MTC_ACT_LEAKY: return v > 0 ? v : 0.01 * v;
    case MTC_ACT_TANH: return tanh(v);
    case MTC_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case MTC_ACT_GELU: return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    case MTC_ACT_GELU_ERF: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    default: return v;
    }
}

/* Node i (reading chain tensor in) starts an elementwise group: 1 with *act
 * and *out (the group's result) when it folds to an activation, the group's
 * nodes marked done and in's consumers counted once; 0 when node i is not
 * such a group's start; -1 with the error set. */
static int expr_group(ictx *x, size_t i, const char *in, int *act, const char **out)
{
    const Onnx__NodeProto *n0 = x->g->node[i];
    if (ex_op(S(n0->op_type)) < 0 || act_of(n0) >= 0) return 0; /* Relu, Tanh, Sigmoid alone: acts */
    double c;
    for (size_t k = 0; k < n0->n_input; k++) /* every other input a scalar constant */
        if (strcmp(n0->input[k], in) && !scalar_of(x, n0->input[k], &c)) return 0;
    double (*val)[EX_PTS] = x->exval;
    const char *name[EX_NODES + 1] = {in};
    size_t idx[EX_NODES];
    int nv = 1, uses_in = 0;
    for (int p = 0; p < EX_PTS; p++) val[0][p] = -8.0 + 0.05 * p;
    for (size_t j = i; j < x->g->n_node && j < i + 4 * EX_NODES; j++) {
        const Onnx__NodeProto *nd = x->g->node[j];
        int op = ex_op(S(nd->op_type)), src[2] = {-1, -1}, touches = 0, ok = op >= 0 && nd->n_output == 1 &&
                 nd->n_input >= 1 && nd->n_input <= 2;
        double k[2] = {0, 0};
        for (size_t a = 0; ok && a < nd->n_input; a++) {
            for (int v = 0; v < nv; v++)
                if (!strcmp(nd->input[a], name[v])) src[a] = v;
            if (src[a] >= 0) touches = 1;
            else if (!scalar_of(x, nd->input[a], &k[a])) ok = 0;
        }
        if (!ok || !touches) continue;
        if (nv > EX_NODES) return node_err(x, n0, "an elementwise expression of more than 32 nodes"), -1;
        for (size_t a = 0; a < nd->n_input; a++) uses_in += src[a] == 0;
        double *r = val[nv];
        for (int p = 0; p < EX_PTS; p++) {
            double a = src[0] >= 0 ? val[src[0]][p] : k[0];
            double b = nd->n_input > 1 ? (src[1] >= 0 ? val[src[1]][p] : k[1]) : 0;
            switch (op) {
            case 0: r[p] = a * b; break;
            case 1: r[p] = a / b; break;
            case 2: r[p] = a + b; break;
            case 3: r[p] = a - b; break;
            case 4: r[p] = pow(a, b); break;
            case 5: r[p] = erf(a); break;
            case 6: r[p] = tanh(a); break;
            case 7: r[p] = 1.0 / (1.0 + exp(-a)); break;
            case 8: r[p] = sqrt(a); break;
            case 9: r[p] = -a; break;
            case 10: r[p] = exp(a); break;
            default: r[p] = a > 0 ? a : 0; break;
            }
        }
        idx[nv - 1] = j;
        name[nv++] = nd->output[0];
    }
    /* one result leaves the group; in is read by the group alone */
    int res = -1;
    for (int v = 1; v < nv; v++) {
        int inside = 0, total = 0;
        for (size_t j = 0; j < x->g->n_node; j++)
            for (size_t a = 0; a < x->g->node[j]->n_input; a++)
                if (!strcmp(x->g->node[j]->input[a], name[v])) {
                    total++;
                    for (int q = 0; q < nv - 1; q++) inside += idx[q] == j;
                }
        for (size_t o = 0; o < x->g->n_output; o++) total += !strcmp(S(x->g->output[o]->name), name[v]);
        if (total > inside) {
            if (res >= 0) return node_err(x, n0, "an elementwise expression with two results"), -1;
            res = v;
        }
    }
    tensor *tin = find_tensor(x, in);
    if (res < 0 || !tin || tin->consumers != uses_in)
        return node_err(x, n0, "an elementwise expression mtc cannot follow (its input or result is used elsewhere)"), -1;
    static const int cand[] = {MTC_ACT_GELU_ERF, MTC_ACT_GELU, MTC_ACT_RELU, MTC_ACT_LEAKY, MTC_ACT_TANH,
                               MTC_ACT_SIGMOID};
    for (int q = 0; q < (int)(sizeof cand / sizeof *cand); q++) {
        int ok = 1;
        for (int p = 0; p < EX_PTS && ok; p++) {
            double want = act_ref(val[0][p], cand[q]);
            ok = fabs(val[res][p] - want) <= 1e-5 * fmax(1.0, fabs(want));
        }
        if (!ok) continue;
        for (int v = 0; v < nv - 1; v++) x->done[idx[v]] = 1;
        tin->consumers = 1;
        *act = cand[q];
        *out = name[res];
        return 1;
    }
    return node_err(x, n0, "an elementwise expression that is none of mtc's activations (relu, leaky, tanh, "
                           "sigmoid, gelu, gelu_erf)"), -1;
}

/* A Constant node: a value for the nodes that read it (registered before
 * any node is translated, so expression groups see constants that follow). */
static int constant(ictx *x, const Onnx__NodeProto *nd)
{
    const Onnx__AttributeProto *a = attr(nd, "value");
    if (!a || !a->t || nd->n_output != 1) return node_err(x, nd, "only a tensor 'value' is supported");
    if (x->nconst >= MAX_TENSORS) return node_err(x, nd, "too many constants");
    x->const_name[x->nconst] = nd->output[0];
    x->consts[x->nconst++] = a->t;
    return 0;
}

static int translate(ictx *x, size_t ni)
{
    const Onnx__NodeProto *nd = x->g->node[ni];
    const char *op = S(nd->op_type);
    if (!strcmp(op, "Constant") || x->done[ni]) return 0;
    if (!nd->n_input || !nd->n_output) return node_err(x, nd, "has no input or no output");
    int src;
    if (shape_node(x, nd, &src)) return src;
    /* the data input: the one that is not a constant (Add, Mul take either side) */
    const char *in = nd->input[0], *res_skip = NULL, *res_main = NULL;
    if ((!strcmp(op, "Add") || !strcmp(op, "Mul")) && nd->n_input == 2 && find_init(x, in)) in = nd->input[1];
    for (int i = 0; i < x->nres; i++)
        if (x->res[i].node == ni) res_skip = x->res[i].skip, res_main = x->res[i].main, in = res_main;
    int ea = 0, ci = 0, rc;
    const char *eout = NULL;
    int grp = find_tensor(x, in) ? expr_group(x, ni, in, &ea, &eout) : 0;
    if (grp < 0) return x->e->code;
    if ((rc = chain_of(x, nd, in, &ci))) return rc;
    ichain *c = &x->ch[ci];
    if (c->strip) return node_err(x, nd, "follows the Softmax/Sigmoid that ends an output");
    tensor *tin = find_tensor(x, in);
    if (tin && tin->res_src && !tin->res_open && nd->n_output && walk_back_from(x, tin->res_main, nd->output[0], 1)) {
        /* a residual block starts at in: nd is its first node (on the way to the sum) */
        ilayer *r = push(x, c, nd, MTC_L_RESIDUAL);
        if (!r) return x->e->code;
        r->out = in;
        tin->res_open = 1;
    }
    ilayer *last = c->n ? &c->l[c->n - 1] : NULL;
    if (c->pending_pad && strcmp(op, "Conv")) return node_err(x, nd, "follows a Pad that only a Conv can take");
    int fusable = last && !strcmp(last->out, in) && find_tensor(x, in)->consumers == 1;
    int a = act_of(nd);
    if (grp) { /* an activation written as an expression: like one act node */
        if (fusable && (last->type == MTC_L_DENSE || last->type == MTC_L_CONV || last->type == MTC_L_ADD) && !last->act) {
            last->act = ea;
        } else {
            ilayer *l = push(x, c, nd, MTC_L_ACT);
            if (!l) return x->e->code;
            l->act = ea;
            last = l;
        }
        last->out = eout;
        return add_tensor(x, eout, ci);
    }
    const int pushed = c->n;
    if (!strcmp(op, "Gemm") || !strcmp(op, "MatMul")) {
        rc = dense(x, c, nd, op[0] == 'G');
    } else if (res_skip) { /* the sum closing the residual block opened at res_skip, in this chain */
        int depth = 0, open = -1;
        for (int k = c->n - 1; k >= 0 && open < 0; k--) {
            if (c->l[k].type == MTC_L_ADD) depth++;
            else if (c->l[k].type == MTC_L_RESIDUAL && depth-- == 0) open = k;
        }
        if (open < 0 || strcmp(c->l[open].out, res_skip))
            return node_err(x, nd, "adds two computed tensors that are not a residual block of one chain (its skip "
                                   "input must be the block's input; projection shortcuts are not supported)");
        if (!push(x, c, nd, MTC_L_ADD)) return x->e->code;
    } else if (!strcmp(op, "Add")) {
        if (nd->n_input != 2) return node_err(x, nd, "Add takes two inputs");
        const char *bname = nd->input[nd->input[0] == in ? 1 : 0];
        Onnx__TensorProto *bt = find_init(x, bname);
        if (!fusable || last->type != MTC_L_DENSE || last->b || last->act || !bt || numel(bt) != last->wn)
            return node_err(x, nd, "only the bias of the MatMul before it can be added");
        if (!(last->b = floats(x, nd, bt, last->wn))) return x->e->code;
        last->out = nd->output[0];
    } else if (!strcmp(op, "Conv")) {
        rc = conv(x, c, nd);
        if (!rc && c->pending_pad) {
            c->l[c->n - 1].pad += c->pending_pad;
            c->pending_pad = 0;
        }
    } else if (!strcmp(op, "Pad")) {
        int alias = 0;
        if ((rc = pad(x, c, nd, &alias))) return rc;
        if (last && !strcmp(last->out, in)) last->out = nd->output[0];
        return add_tensor(x, nd->output[0], ci);
    } else if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) {
        if (nd->n_output > 1 && *nd->output[1]) return node_err(x, nd, "the indices output is not supported");
        rc = pool(x, c, nd, op[0] == 'M' ? MTC_L_MAXPOOL : MTC_L_AVGPOOL);
    } else if (!strcmp(op, "BatchNormalization")) {
        if (nd->n_output > 1) return node_err(x, nd, "training outputs (running statistics) are not supported");
        rc = batchnorm(x, c, nd);
    } else if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "ReduceMean")) {
        rc = global_pool(x, c, nd);
    } else if (!strcmp(op, "LayerNormalization")) {
        rc = layernorm(x, c, nd);
    } else if (a >= 0) {
        if (a == MTC_ACT_LEAKY && fabsf(attr_f(nd, "alpha", 0.01f) - 0.01f) > 1e-7f)
            return node_err(x, nd, "alpha must be 0.01 (mtc's leaky relu)");
        if (fusable && (last->type == MTC_L_DENSE || last->type == MTC_L_CONV || last->type == MTC_L_ADD) && !last->act) {
            last->act = a;
            last->out = nd->output[0];
        } else {
            ilayer *l = push(x, c, nd, MTC_L_ACT);
            if (!l) return x->e->code;
            l->act = a;
        }
    } else if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax")) {
        int64_t axis = attr_i(nd, "axis", x->opset >= 13 ? -1 : 1);
        if (axis != -1 && axis != 1) return node_err(x, nd, "only over the class axis (axis 1 or -1)");
        c->strip = op[0] == 'S' ? STRIP_SOFTMAX : STRIP_LOGSOFTMAX;
        c->strip_op = op;
        if (!fusable && !(last && !strcmp(last->out, in))) return node_err(x, nd, "must follow a layer");
        last->out = nd->output[0];
    } else if (!strcmp(op, "Flatten") || !strcmp(op, "Reshape")) {
        if (op[0] == 'F' ? attr_i(nd, "axis", 1) != 1 : !reshape_is_flatten(x, nd))
            return node_err(x, nd, op[0] == 'F' ? "only axis 1 (keep the batch axis)"
                                                : "only a target of (batch, -1): a constant, or Shape -> Gather(0) "
                                                  "-> Unsqueeze -> Concat with [-1]");
        if (ci == 0) {
            ilayer *l = push(x, c, nd, MTC_L_FLATTEN);
            if (!l) return x->e->code;
        } else if (last) {
            last->out = nd->output[0]; /* a head's input is flat already */
        } else {
            return add_tensor(x, nd->output[0], ci);
        }
    } else if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
        if (nd->n_output > 1 && *nd->output[1]) return node_err(x, nd, "its mask output is used");
        if (last && !strcmp(last->out, in)) last->out = nd->output[0];
        return add_tensor(x, nd->output[0], ci);
    } else {
        return node_err(x, nd, "not an operator mtc import supports (Gemm, MatMul, Add, Conv, MaxPool, AveragePool, "
                               "GlobalAveragePool, ReduceMean, BatchNormalization, LayerNormalization, Relu, "
                               "LeakyRelu, Tanh, Sigmoid, Gelu, Softmax, LogSoftmax, Flatten, Reshape, Pad, Identity, "
                               "Dropout, Constant; Erf/Tanh/Mul chains that compute gelu)");
    }
    if (rc) return rc;
    if (c->n > pushed && (rc = track(x, nd, c, &c->l[c->n - 1]))) return rc;
    return add_tensor(x, nd->output[0], ci);
}

/* ---- MMoE: experts stacked, mixed per task by a softmax gate ------------- */

/* mtc export's MMoE form (and PyTorch's torch.stack(experts, 1) mixed by
 * softmax(gate(x)).unsqueeze(1) @ stack, then flattened):
 *   expert_k(x) -> Unsqueeze(1) -> Concat(axis 1)                (N, E, H)
 *   x [-> Flatten] -> Gemm -> Softmax -> Unsqueeze(1) -> MatMul(., stack)
 *   -> Flatten | Squeeze(1) | Reshape(batch, -1) -> task head
 * Imported in phases: each expert's nodes alone as a trunk, then the heads
 * from the mixes; the MMoE nodes themselves are marked and never translated. */

static int producer(ictx *x, const char *name)
{
    for (size_t i = 0; i < x->g->n_node; i++)
        for (size_t k = 0; k < x->g->node[i]->n_output; k++)
            if (!strcmp(x->g->node[i]->output[k], name)) return (int)i;
    return -1;
}

static int is_op(const Onnx__NodeProto *n, const char *op) { return !strcmp(S(n->op_type), op); }

/* an Unsqueeze (or Squeeze) over axis 1 alone: attribute or constant input */
static int axis1(ictx *x, const Onnx__NodeProto *n, const char *op)
{
    if (!is_op(n, op) || n->n_input < 1 || n->n_output != 1) return 0;
    const Onnx__AttributeProto *a = attr(n, "axes");
    if (a && a->n_ints) return a->n_ints == 1 && a->ints[0] == 1;
    int64_t v[2];
    return n->n_input > 1 && ints_of(x, n->input[1], v, 2) == 1 && v[0] == 1;
}

/* the single node reading name (-1: none or several) */
static int only_consumer(ictx *x, const char *name)
{
    int c = -1;
    for (size_t i = 0; i < x->g->n_node; i++)
        for (size_t k = 0; k < x->g->node[i]->n_input; k++)
            if (!strcmp(x->g->node[i]->input[k], name)) {
                if (c >= 0) return -1;
                c = (int)i;
            }
    return c;
}

/* mark[i] = 1 for every node name is computed from (a stack, no recursion:
 * a fuzzed graph may be deep, or cyclic) */
static int ancestors(ictx *x, const char *name, unsigned char *mark)
{
    int *st = malloc((x->g->n_node + 1) * sizeof *st), n = 0;
    if (!st) return mtc_err_set(x->e, MTC_ENOMEM, "out of memory");
    int p = producer(x, name);
    if (p >= 0 && !mark[p]) mark[p] = 1, st[n++] = p;
    while (n) {
        const Onnx__NodeProto *nd = x->g->node[st[--n]];
        for (size_t k = 0; k < nd->n_input; k++) {
            int q = producer(x, nd->input[k]);
            if (q >= 0 && !mark[q]) mark[q] = 1, st[n++] = q;
        }
    }
    free(st);
    return 0;
}

/* Finds the MMoE nodes (marked in mm), the experts' outputs and each
 * mix's gate (x->gate[1..T], mix names set). Returns E (0: no MMoE) or -1. */
static int mmoe_find(ictx *x, unsigned char *mm, const char **eout, int *T)
{
    const Onnx__NodeProto *cat = NULL;
    int E = 0;
    *T = 0;
    for (size_t i = 0; i < x->g->n_node; i++) {
        const Onnx__NodeProto *nd = x->g->node[i];
        if (!is_op(nd, "Concat") || nd->n_input < 2 || nd->n_output != 1) continue;
        int ok = 1;
        for (size_t k = 0; k < nd->n_input && ok; k++) {
            int p = producer(x, nd->input[k]);
            ok = p >= 0 && axis1(x, x->g->node[p], "Unsqueeze");
        }
        if (!ok) continue;
        if (cat) return node_err(x, nd, "a second stack of experts (mtc models have one MMoE)"), -1;
        if (attr_i(nd, "axis", 0) != 1) return node_err(x, nd, "experts must be stacked on axis 1"), -1;
        if (nd->n_input > MTC_MAX_EXPERTS) return node_err(x, nd, "more experts than mtc supports (16)"), -1;
        cat = nd;
        mm[i] = 1;
        E = (int)nd->n_input;
        for (int k = 0; k < E; k++) {
            int p = producer(x, nd->input[k]);
            mm[p] = 1;
            eout[k] = x->g->node[p]->input[0];
        }
    }
    if (!cat) return 0;
    const char *in = x->t[0].name;
    for (size_t j = 0; j < x->g->n_node; j++) {
        const Onnx__NodeProto *mmn = x->g->node[j];
        int uses = 0;
        for (size_t k = 0; k < mmn->n_input; k++) uses += !strcmp(mmn->input[k], cat->output[0]);
        if (!uses) continue;
        if (!is_op(mmn, "MatMul") || mmn->n_input != 2 || mmn->n_output != 1 || strcmp(mmn->input[1], cat->output[0]))
            return node_err(x, mmn, "reads the stacked experts; only a MatMul with a gate may (MMoE)"), -1;
        int pu = producer(x, mmn->input[0]), ps = -1, pg = -1, pf = -1;
        if (pu >= 0 && axis1(x, x->g->node[pu], "Unsqueeze")) ps = producer(x, x->g->node[pu]->input[0]);
        if (ps >= 0 && is_op(x->g->node[ps], "Softmax") && x->g->node[ps]->n_input == 1 && (attr_i(x->g->node[ps], "axis", -1) == 1 ||
                                                            attr_i(x->g->node[ps], "axis", -1) == -1))
            pg = producer(x, x->g->node[ps]->input[0]);
        if (pg < 0 || !is_op(x->g->node[pg], "Gemm") || x->g->node[pg]->n_input < 2)
            return node_err(x, mmn, "an MMoE mix must be MatMul(Unsqueeze(Softmax(Gemm(input))), experts)"), -1;
        const Onnx__NodeProto *gn = x->g->node[pg];
        if (strcmp(gn->input[0], in)) {
            pf = producer(x, gn->input[0]);
            if (pf < 0 || !is_op(x->g->node[pf], "Flatten") || x->g->node[pf]->n_input != 1 ||
                strcmp(x->g->node[pf]->input[0], in) ||
                attr_i(x->g->node[pf], "axis", 1) != 1)
                return node_err(x, gn, "an MMoE gate must read the graph's input (flattened)"), -1;
        }
        int pm = only_consumer(x, mmn->output[0]);
        const Onnx__NodeProto *fl = pm >= 0 ? x->g->node[pm] : NULL;
        if (!fl || fl->n_output != 1 || fl->n_input < 1 || !((is_op(fl, "Flatten") && attr_i(fl, "axis", 1) == 1) || axis1(x, fl, "Squeeze") ||
                     (is_op(fl, "Reshape") && reshape_is_flatten(x, fl))))
            return node_err(x, mmn, "an MMoE mix must be flattened (Flatten, Squeeze(1) or Reshape) alone"), -1;
        if (*T + 1 >= MAX_CHAINS) return node_err(x, mmn, "more MMoE tasks than mtc supports"), -1;
        /* the gate's weights: (E, K) with transB, (K, E) without (trans: transpose them) */
        if (attr_f(gn, "alpha", 1.0f) != 1.0f || attr_f(gn, "beta", 1.0f) != 1.0f || attr_i(gn, "transA", 0))
            return node_err(x, gn, "only alpha = beta = 1 and transA = 0 are supported"), -1;
        int trans = !attr_i(gn, "transB", 0);
        int64_t dims[2] = {trans ? -1 : E, trans ? E : -1};
        const float *W = weight(x, gn, 1, 2, dims);
        if (!W) return -1;
        int g = ++*T;
        x->gate[g].W = W;
        x->gate[g].trans = trans;
        x->gate[g].K = trans ? dims[0] : dims[1];
        x->gate[g].b = NULL;
        x->gate[g].mix = fl->output[0];
        if (gn->n_input > 2 && *gn->input[2]) {
            Onnx__TensorProto *bt = find_init(x, gn->input[2]);
            if (!bt || numel(bt) != E) return node_err(x, gn, "the gate's bias must be a constant of E values"), -1;
            if (!(x->gate[g].b = floats(x, gn, bt, E))) return -1;
        }
        mm[j] = mm[pu] = mm[ps] = mm[pg] = mm[pm] = 1;
        if (pf >= 0) mm[pf] = 1;
    }
    if (!*T) return node_err(x, cat, "stacked experts that no task mixes"), -1;
    return E;
}

static void drop_flattens(ichain *t);
static int read_input(ictx *x);

/* Resets the walk and translates the nodes not done. */
static int find_residuals(ictx *x)
{
    x->nres = 0;
    for (size_t i = 0; i < x->g->n_node; i++) {
        const char *sk, *mi;
        if (!residual_add(x, i, &sk, &mi)) continue;
        if (x->nres >= (int)(sizeof x->res / sizeof *x->res))
            return mtc_err_set(x->e, MTC_EINPUT, "%s: more residual blocks than mtc supports", x->path);
        x->res[x->nres].node = i, x->res[x->nres].skip = sk, x->res[x->nres].main = mi;
        x->nres++;
    }
    return 0;
}

static int walk(ictx *x)
{
    x->nt = 0, x->nch = 0, x->nsym = 0, x->branch = NULL;
    memset(x->ch, 0, sizeof x->ch);
    int rc = find_residuals(x);
    if (!rc) rc = read_input(x);
    for (size_t i = 0; i < x->g->n_node && !rc; i++) rc = translate(x, i);
    return rc;
}

static int same_layers(const ichain *a, const ichain *b)
{
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) {
        const ilayer *p = &a->l[i], *q = &b->l[i];
        if (p->type != q->type || p->units != q->units || p->filters != q->filters || p->size != q->size ||
            p->stride != q->stride || p->pad != q->pad || p->act != q->act || p->wn != q->wn || p->wk != q->wk ||
            p->groups != q->groups)
            return 0;
    }
    return 1;
}

/* The MMoE phases: each expert alone, then the heads from the mixes. */
static int mmoe_walk(ictx *x, unsigned char *mm, const char **eout, int E, int T)
{
    size_t n = x->g->n_node;
    unsigned char *any = calloc(n + 1, 1);
    if (!any || !(x->experts = calloc((size_t)E, sizeof *x->experts))) {
        free(any);
        return mtc_err_set(x->e, MTC_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (int k = 0; k < E && !rc; k++) {
        memset(x->done, 0, n);
        if ((rc = ancestors(x, eout[k], x->done))) break;
        for (size_t i = 0; i < n; i++) any[i] |= x->done[i], x->done[i] = !x->done[i] || mm[i];
        if ((rc = walk(x))) break;
        if (x->nch != 1) {
            rc = mtc_err_set(x->e, MTC_EINPUT, "%s: expert %d branches (an MMoE expert is a chain)", x->path, k);
            break;
        }
        drop_flattens(&x->ch[0]);
        x->experts[k] = x->ch[0];
        if (!same_layers(&x->experts[0], &x->experts[k]))
            rc = mtc_err_set(x->e, MTC_EINPUT, "%s: expert %d differs from expert 0 (mtc's experts share one "
                             "architecture)", x->path, k);
    }
    if (!rc) { /* the heads: everything that is neither an expert nor the MMoE */
        for (size_t i = 0; i < n; i++) x->done[i] = any[i] || mm[i];
        x->nt = 0, x->nch = 0, x->nsym = 0, x->branch = NULL;
        memset(x->ch, 0, sizeof x->ch);
        rc = read_input(x);
        x->ch[0] = x->experts[0];
        for (int t = 1; t <= T && !rc; t++) {
            x->ch[t].sc = 1, x->ch[t].sh = x->ch[t].sw = 1;
            rc = add_tensor(x, x->gate[t].mix, t);
        }
        x->nch = 1 + T;
        x->branch = x->t[0].name;
        for (size_t i = 0; i < n && !rc; i++) rc = translate(x, i);
    }
    free(any);
    return rc;
}

/* ---- the graph's input and outputs --------------------------------------- */

static int read_input(ictx *x)
{
    const Onnx__ValueInfoProto *in = NULL;
    int n = 0;
    for (size_t i = 0; i < x->g->n_input; i++)
        if (!find_init(x, S(x->g->input[i]->name))) in = x->g->input[i], n++;
    if (n != 1) return mtc_err_set(x->e, MTC_EINPUT, "%s: the graph has %d inputs; mtc models take one", x->path, n);
    const Onnx__TypeProto *tp = in->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type || !tp->tensor_type->shape ||
        tp->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return mtc_err_set(x->e, MTC_EINPUT, "%s: input '%s' is not a float32 tensor of known shape", x->path, S(in->name));
    const Onnx__TensorShapeProto *s = tp->tensor_type->shape;
    int64_t d[4] = {1, 1, 1, 1};
    if (s->n_dim != 2 && s->n_dim != 4)
        return mtc_err_set(x->e, MTC_EINPUT, "%s: input '%s' has %zu dimensions; mtc takes (batch, features) or "
                           "(batch, channels, height, width)", x->path, S(in->name), s->n_dim);
    for (size_t i = 1; i < s->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *dm = s->dim[i];
        if (dm->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || dm->dim_value < 1 ||
            dm->dim_value > (1 << 20))
            return mtc_err_set(x->e, MTC_EINPUT, "%s: input '%s' dimension %zu is dynamic or out of range (only "
                               "the batch axis may be)", x->path, S(in->name), i);
        d[4 - s->n_dim + i] = dm->dim_value;
    }
    x->ndim = (int)s->n_dim;
    x->c = (int)d[1];
    x->h = (int)d[2];
    x->w = (int)d[3];
    x->nch = 1;
    x->ch[0].sc = x->ndim == 4 ? x->c : x->w, x->ch[0].sh = x->h, x->ch[0].sw = x->ndim == 4 ? x->w : 1;
    return add_tensor(x, S(in->name), 0);
}

static int task_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n >= MTC_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

/* --tasks "a:cls,b:reg", parsed once; used marks the entries an output took. */
typedef struct itask { char name[MTC_NAME_MAX]; int kind, used; } itask;

static int parse_tasks(const char *tasks, itask *t, int *n, mtc_err *e)
{
    char tmp[1024], *save = NULL;
    *n = 0;
    if (!tasks || !*tasks) return 0;
    if (strlen(tasks) >= sizeof tmp) return mtc_err_set(e, MTC_EINPUT, "--tasks: longer than %zu bytes", sizeof tmp - 1);
    memcpy(tmp, tasks, strlen(tasks) + 1);
    for (char *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon) return mtc_err_set(e, MTC_EINPUT, "--tasks %s: want NAME:KIND", tok);
        *colon = 0;
        const char *k = colon + 1;
        int kind = !strcmp(k, "cls") ? MTC_TASK_CLS : !strcmp(k, "bin") ? MTC_TASK_BIN
                 : !strcmp(k, "reg") ? MTC_TASK_REG : -1;
        if (kind < 0) return mtc_err_set(e, MTC_EINPUT, "--tasks %s: kind '%.15s' (want cls, bin or reg)", tok, k);
        if (*n >= MTC_MAX_TASKS || strlen(tok) >= MTC_NAME_MAX)
            return mtc_err_set(e, MTC_EINPUT, "--tasks: more than %d tasks or a name too long", MTC_MAX_TASKS);
        memcpy(t[*n].name, tok, strlen(tok) + 1);
        t[*n].kind = kind;
        t[(*n)++].used = 0;
    }
    return 0;
}

/* The Flatten mtc export writes where the model has none (before a dense
 * layer that reads a 4-D tensor, "<dense>.flatten", and at the end of a
 * trunk, "trunk.flatten" / "expertK.flatten") is implicit in mtc: dropped,
 * so that export -> import -> export keeps the layer names. Any other
 * Flatten (PyTorch's, or a [flatten] layer's) stays a [flatten] layer. */
static void drop_flattens(ichain *t)
{
    for (int i = t->n - 1; i >= 0; i--) {
        const ilayer *l = &t->l[i];
        if (l->type != MTC_L_FLATTEN || !l->node) continue;
        size_t n = strlen(l->node);
        int implicit;
        if (i + 1 < t->n) {
            const char *d = t->l[i + 1].node;
            implicit = t->l[i + 1].type == MTC_L_DENSE && d && n == strlen(d) + 8 && !strncmp(l->node, d, strlen(d)) &&
                       !strcmp(l->node + strlen(d), ".flatten");
        } else {
            size_t d = 6;
            while (!strncmp(l->node, "expert", 6) && l->node[d] >= '0' && l->node[d] <= '9') d++;
            implicit = !strcmp(l->node, "trunk.flatten") || (d > 6 && !strcmp(l->node + d, ".flatten"));
        }
        if (!implicit) continue;
        memmove(&t->l[i], &t->l[i + 1], (size_t)(t->n - i - 1) * sizeof *t->l);
        t->n--;
    }
}

/* mtc export's metadata "name:kind:dim,...": the kinds, when they parse
 * (else nothing: the kinds are inferred). Not checked against the outputs. */
static void meta_tasks(const char *v, itask *t, int *n)
{
    char in[1024], out[1024] = "", *save = NULL;
    if (strlen(v) >= sizeof in) return;
    memcpy(in, v, strlen(v) + 1);
    for (char *tok = strtok_r(in, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *c2 = strchr(tok, ':');
        if (c2) c2 = strchr(c2 + 1, ':');
        if (c2) *c2 = 0;
        size_t k = strlen(out);
        snprintf(out + k, sizeof out - k, "%s%s", k ? "," : "", tok);
    }
    mtc_err e = {0};
    if (parse_tasks(out, t, n, &e)) *n = 0;
    for (int i = 0; i < *n; i++) t[i].used = 1;
}

/* ---- spec text and weights ---------------------------------------------- */

static void emit_layer(char *s, size_t n, const ilayer *l)
{
    size_t k = strlen(s);
    switch (l->type) {
    case MTC_L_DENSE: snprintf(s + k, n - k, "[dense] units=%d act=%s\n", l->units, mtc_act_name(l->act)); break;
    case MTC_L_CONV:
        snprintf(s + k, n - k, "[conv] filters=%d size=%d stride=%d pad=%d act=%s", l->filters, l->size, l->stride,
                 l->pad, mtc_act_name(l->act));
        k = strlen(s);
        if (l->groups > 1) snprintf(s + k, n - k, " groups=%d", l->groups);
        k = strlen(s);
        snprintf(s + k, n - k, "\n");
        break;
    case MTC_L_MAXPOOL: snprintf(s + k, n - k, "[maxpool] size=%d stride=%d\n", l->size, l->stride); break;
    case MTC_L_RESIDUAL: snprintf(s + k, n - k, "[residual]\n"); break;
    case MTC_L_ADD: snprintf(s + k, n - k, "[add] act=%s\n", mtc_act_name(l->act)); break;
    case MTC_L_AVGPOOL: snprintf(s + k, n - k, "[avgpool] size=%d stride=%d\n", l->size, l->stride); break;
    case MTC_L_BATCHNORM: snprintf(s + k, n - k, "[batchnorm]\n"); break;
    case MTC_L_LAYERNORM: snprintf(s + k, n - k, "[layernorm]\n"); break;
    case MTC_L_FLATTEN: snprintf(s + k, n - k, "[flatten]\n"); break;
    case MTC_L_ACT: snprintf(s + k, n - k, "[act] fn=%s\n", mtc_act_name(l->act)); break;
    }
}

/* Copies il's weights into the model layer L, checking the sizes agree. */
static int fill(ictx *x, mtc_model *m, const mtc_layer *L, const ilayer *il)
{
    float *p = m->params;
    if (il->type == MTC_L_DENSE || il->type == MTC_L_CONV) {
        if (L->nw != il->wn * il->wk || L->nb != il->wn)
            return mtc_err_set(x->e, MTC_EINPUT, "%s: layer %s: the weights hold %lld x %lld values, the layer %lld "
                               "inputs (a shape mtc cannot follow)", x->path, L->name, (long long)il->wn,
                               (long long)il->wk, (long long)(L->nw / (L->nb ? L->nb : 1)));
        for (int64_t r = 0; r < il->wn; r++)
            for (int64_t k = 0; k < il->wk; k++)
                p[L->w_off + r * il->wk + k] = il->wtrans ? il->W[k * il->wn + r] : il->W[r * il->wk + k];
        for (int64_t r = 0; r < il->wn; r++) p[L->b_off + r] = il->b ? il->b[r] : 0.0f;
    } else if (il->type == MTC_L_BATCHNORM) {
        if (L->nw != il->wn)
            return mtc_err_set(x->e, MTC_EINPUT, "%s: layer %s: %lld channels, the batchnorm has %lld", x->path,
                               L->name, (long long)L->nw, (long long)il->wn);
        for (int64_t i = 0; i < il->wn; i++) {
            p[L->w_off + i] = il->bn[0][i];
            p[L->b_off + i] = il->bn[1][i];
            m->stats[L->stat_off + i] = il->bn[2][i];
            m->stats[L->stat_off + il->wn + i] = il->bn[3][i];
        }
    } else if (il->type == MTC_L_LAYERNORM) {
        if (L->nw != il->wn)
            return mtc_err_set(x->e, MTC_EINPUT, "%s: layer %s: %lld features, the layernorm has %lld", x->path,
                               L->name, (long long)L->nw, (long long)il->wn);
        for (int64_t i = 0; i < il->wn; i++) {
            p[L->w_off + i] = il->bn[0][i];
            p[L->b_off + i] = il->bn[1] ? il->bn[1][i] : 0.0f;
        }
    }
    return 0;
}

static int fill_chain(ictx *x, mtc_model *m, const mtc_chain *mc, const ichain *ic, int n)
{
    if (mc->n != n) return mtc_err_set(x->e, MTC_EINPUT, "%s: internal: %d layers built for %d", x->path, mc->n, n);
    for (int i = 0; i < n; i++) {
        int rc = fill(x, m, &mc->layers[i], &ic->l[i]);
        if (rc) return rc;
    }
    return 0;
}

int mtc_onnx_import(const char *path, const char *tasks, mtc_model *m, char *note, size_t note_len, mtc_err *e)
{
    memset(m, 0, sizeof *m);
    if (note && note_len) note[0] = 0;
    itask tt[MTC_MAX_TASKS];
    int ntt;
    int rc = parse_tasks(tasks, tt, &ntt, e);
    if (rc) return rc;
    char *buf = NULL;
    size_t len = 0;
    rc = mtc_read_file(path, &buf, &len, ONNX_MAX_BYTES, e);
    if (rc) return rc;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, (const uint8_t *)buf);
    free(buf);
    if (!mp) return mtc_err_set(e, MTC_EINPUT, "%s: not an ONNX model (the protobuf does not parse)", path);
    if (!ntt) { /* mtc export's "mtc.tasks" (name:kind:dim,...) gives the kinds */
        for (size_t i = 0; i < mp->n_metadata_props; i++) {
            const Onnx__StringStringEntryProto *p = mp->metadata_props[i];
            if (p->key && !strcmp(p->key, "mtc.tasks") && p->value) meta_tasks(p->value, tt, &ntt);
        }
    }
    ictx *x = calloc(1, sizeof *x);
    char *spec = calloc(1, 65536);
    unsigned char *mm = NULL; /* the MMoE's own nodes */
    if (!x || !spec) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); goto out; }
    x->path = path;
    x->e = e;
    x->g = mp->graph;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const char *d = mp->opset_import[i]->domain;
        if (!d || !*d || !strcmp(d, "ai.onnx")) x->opset = (int)mp->opset_import[i]->version;
    }
    if (!x->g) { rc = mtc_err_set(e, MTC_EINPUT, "%s: the model has no graph", path); goto out; }
    if (x->opset < 11 || x->opset > 21) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: opset %d (mtc import reads opsets 11 to 21)", path, x->opset);
        goto out;
    }
    if (!(x->done = calloc(x->g->n_node + 1, 1)) || !(mm = calloc(x->g->n_node + 1, 1))) {
        rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < x->g->n_node && !rc; i++) {
        const Onnx__NodeProto *nd = x->g->node[i];
        if (nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx")) rc = node_err(x, nd, "an operator of another domain");
        else if (!strcmp(S(nd->op_type), "Constant")) rc = constant(x, nd);
    }
    if (!rc) rc = find_residuals(x); /* with the constants known */
    if (!rc) rc = read_input(x);
    if (rc) goto out;
    const char *eout[MTC_MAX_EXPERTS];
    int ntask = 0;
    x->E = mmoe_find(x, mm, eout, &ntask);
    if (x->E < 0) { rc = e->code; goto out; }
    if (x->E) rc = mmoe_walk(x, mm, eout, x->E, ntask);
    for (size_t i = 0; i < x->g->n_node && !rc && !x->E; i++) rc = translate(x, i);
    if (rc) goto out;
    /* a single chain: its last dense layer is the one task's output layer */
    if (x->nch == 1) {
        if (x->g->n_output != 1) { rc = mtc_err_set(e, MTC_EINPUT, "%s: several outputs but no branch point", path); goto out; }
        ichain *t = &x->ch[0], *h = &x->ch[x->nch++];
        int cut = t->n - 1;
        while (cut >= 0 && t->l[cut].type == MTC_L_ACT) cut--;
        if (cut < 0 || t->l[cut].type != MTC_L_DENSE) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s: the output does not come from a dense layer (Gemm/MatMul)", path);
            goto out;
        }
        for (int i = cut; i < t->n; i++) h->l[h->n++] = t->l[i];
        t->n = cut;
        h->strip = t->strip, h->strip_op = t->strip_op;
        t->strip = 0;
        tensor *ot = find_tensor(x, S(x->g->output[0]->name));
        if (ot && ot->chain == 0) ot->chain = 1; /* the output is the head's */
    }
    drop_flattens(&x->ch[0]);
    if ((int)x->g->n_output != x->nch - 1) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: %zu outputs for %d branches from the trunk", path, x->g->n_output, x->nch - 1);
        goto out;
    }
    size_t k;
    if (x->ndim == 4) snprintf(spec, 65536, "[input] shape=%dx%dx%d\n", x->c, x->h, x->w);
    else snprintf(spec, 65536, "[input] shape=%d\n", x->w);
    if (x->E) snprintf(spec + strlen(spec), 65536 - strlen(spec), "[mmoe] experts=%d\n", x->E);
    for (int i = 0; i < x->ch[0].n; i++) emit_layer(spec, 65536, &x->ch[0].l[i]);
    int order[MAX_CHAINS];
    for (size_t o = 0; o < x->g->n_output && !rc; o++) { /* tasks in the order of the graph's outputs */
        const char *name = S(x->g->output[o]->name);
        tensor *t = find_tensor(x, name);
        if (!t || t->chain < 1) { rc = mtc_err_set(e, MTC_EINPUT, "%s: output '%s' is not one head's end", path, name); break; }
        ichain *h = &x->ch[t->chain];
        order[o] = t->chain;
        h->output = name;
        if (!task_name_ok(name)) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s: output name '%s' is not a task name (letters, digits, _)", path, name);
            break;
        }
        /* the output layer: the chain's last dense; only its activation may follow */
        ilayer *out = h->n ? &h->l[h->n - 1] : NULL;
        if (out && out->type == MTC_L_ACT && out->act == MTC_ACT_SIGMOID && !h->strip) {
            h->strip = STRIP_SIGMOID, h->strip_op = "Sigmoid";
            h->n--;
            out = h->n ? &h->l[h->n - 1] : NULL;
        } else if (out && out->type == MTC_L_DENSE && out->act == MTC_ACT_SIGMOID && !h->strip) {
            h->strip = STRIP_SIGMOID, h->strip_op = "Sigmoid";
            out->act = MTC_ACT_NONE;
        }
        if (!out || out->type != MTC_L_DENSE || out->act != MTC_ACT_NONE) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s: output '%s' does not end in a dense layer (optionally followed by "
                             "Softmax, LogSoftmax or Sigmoid)", path, name);
            break;
        }
        for (int i = 0; i < h->n - 1 && !rc; i++)
            if (h->l[i].type != MTC_L_DENSE && h->l[i].type != MTC_L_ACT && h->l[i].type != MTC_L_RESIDUAL &&
                h->l[i].type != MTC_L_ADD)
                rc = mtc_err_set(e, MTC_EINPUT, "%s: output '%s': a head holds dense layers (and residual blocks "
                                 "of them) only", path, name);
        if (rc) break;
        int kind = -1;
        for (int i = 0; i < ntt; i++)
            if (!strcmp(tt[i].name, name)) kind = tt[i].kind, tt[i].used = 1;
        if (kind < 0)
            kind = h->strip == STRIP_SIGMOID ? MTC_TASK_BIN : h->strip || out->units > 1 ? MTC_TASK_CLS : MTC_TASK_REG;
        if (kind == MTC_TASK_CLS && out->units < 2) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s: output '%s' has 1 value; a cls task needs 2 or more", path, name);
            break;
        }
        k = strlen(spec);
        if (kind == MTC_TASK_CLS) snprintf(spec + k, 65536 - k, "[task %s] kind=cls classes=%d\n", name, out->units);
        else snprintf(spec + k, 65536 - k, "[task %s] kind=%s outputs=%d\n", name, mtc_task_kind_name(kind), out->units);
        if (note) {
            size_t nl = strlen(note);
            snprintf(note + nl, note_len - nl, "%s%s: %s, %d output%s%s%s%s", nl ? "; " : "", name,
                     mtc_task_kind_name(kind), out->units, out->units > 1 ? "s" : "", h->strip ? " (" : "",
                     h->strip ? h->strip_op : "", h->strip ? " stripped: logits stored)" : "");
        }
    }
    /* tasks without a given kind were inferred; a --tasks name that is not an output is an error */
    for (int i = 0; i < ntt && !rc; i++)
        if (!tt[i].used) rc = mtc_err_set(e, MTC_EINPUT, "--tasks %s: no output of that name", tt[i].name);
    for (size_t o = 0; o < x->g->n_output && !rc; o++) {
        const ichain *h = &x->ch[order[o]];
        if (h->n < 2) continue;
        k = strlen(spec);
        snprintf(spec + k, 65536 - k, "[head %s]\n", h->output);
        for (int i = 0; i < h->n - 1; i++) emit_layer(spec, 65536, &h->l[i]);
    }
    if (rc) goto out;
    mtc_spec s;
    char where[1100];
    snprintf(where, sizeof where, "%s(imported spec)", path);
    if ((rc = mtc_spec_parse(spec, where, &s, e))) goto out;
    if ((rc = mtc_model_build(&s, spec, m, e))) goto out;
    for (int k = 0; k < (x->E ? x->E : 1) && !rc; k++)
        rc = fill_chain(x, m, &m->trunk[k], x->E ? &x->experts[k] : &x->ch[0], x->ch[0].n);
    for (size_t o = 0; o < x->g->n_output && !rc; o++) rc = fill_chain(x, m, &m->head[o], &x->ch[order[o]], x->ch[order[o]].n);
    for (size_t o = 0; o < x->g->n_output && !rc && x->E; o++) { /* the gates: (E, K) */
        const mtc_layer *G = &m->gate[o];
        int c = order[o];
        int64_t K = x->gate[c].K;
        if (G->nw != (int64_t)x->E * K) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s: gate of '%s' reads %lld values, the input has %lld", path,
                             m->spec.tasks[o].name, (long long)K, (long long)(G->nw / x->E));
            break;
        }
        for (int r = 0; r < x->E; r++) {
            for (int64_t k = 0; k < K; k++)
                m->params[G->w_off + r * K + k] = x->gate[c].trans ? x->gate[c].W[k * x->E + r] : x->gate[c].W[r * K + k];
            m->params[G->b_off + r] = x->gate[c].b ? x->gate[c].b[r] : 0.0f;
        }
    }
    if (rc) mtc_model_free(m);
out:
    onnx__model_proto__free_unpacked(mp, NULL);
    if (x) free(x->done), free(x->experts);
    free(mm);
    free(x);
    free(spec);
    return rc;
}

int mtc_model_input_scale(mtc_model *m, double s, mtc_err *e)
{
    if (!(s > 0) || !(s < 1e6)) return mtc_err_set(e, MTC_EINPUT, "--input-scale %g: want a positive factor", s);
    double k = s * 255.0; /* mtc feeds pixel / 255; the model was trained on pixel · s */
    if (k == 1.0) return 0;
    for (int x = 0; x < m->nexperts; x++) {
        const mtc_layer *L = m->trunk[x].n ? &m->trunk[x].layers[0] : NULL;
        if (!L || (L->spec.type != MTC_L_DENSE && L->spec.type != MTC_L_CONV))
            return mtc_err_set(e, MTC_EINPUT, "--input-scale: the first layer must be dense or conv (it takes the factor)");
        for (int64_t i = 0; i < L->nw; i++) m->params[L->w_off + i] = (float)(m->params[L->w_off + i] * k);
    }
    for (int t = 0; m->nexperts > 1 && t < m->spec.ntasks; t++) /* MMoE gates read the input too */
        for (int64_t i = 0; i < m->gate[t].nw; i++) m->params[m->gate[t].w_off + i] = (float)(m->params[m->gate[t].w_off + i] * k);
    return 0;
}
