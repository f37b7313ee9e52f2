/*
 * onnx_export.c — an fp32 mtc model as ONNX (`mtc export`), for ONNX
 * Runtime and any other ONNX consumer: one graph input (float32 NCHW in
 * [0, 1] for images, [N, features] for tabular models, batch axis dynamic),
 * one graph output per task holding what mtc's runtime returns (logits for
 * cls/bin, label units for reg: the target standardisation is folded into
 * the output layer). Layers map one to one:
 *   dense -> Gemm (transB = 1; a Flatten first when the input is 4-D),
 *   conv -> Conv, maxpool/avgpool -> MaxPool/AveragePool, batchnorm ->
 *   BatchNormalization (epsilon 1e-5), act -> Relu/LeakyRelu(0.01)/Tanh/
 *   Sigmoid, flatten -> Flatten, dropout -> nothing.
 * layernorm -> LayerNormalization (opset 17+) or its ReduceMean chain,
 * gelu -> Gelu (opset 20+) or the Erf / Tanh chain PyTorch writes, MMoE ->
 * experts Unsqueezed and Concatenated (N, E, H), each task's gate a Gemm +
 * Softmax, Unsqueezed to (N, 1, E), MatMul with the experts, Flatten.
 * Pruned weights go as dense zeros. int8: mtc_onnx_export_rt below.
 * Node and initializer names are the mtc layer names, so export -> import
 * -> export gives the same bytes. The messages are built on the heap and
 * packed by protobuf-c (generated from libonnx-dev's onnx.proto).
 */
#include "mtc.h"
#include "onnx.pb-c.h"
#include "runtime/rt_internal.h" /* the ops the runtime runs, as quantize/ reads them */

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 1024
#define MAX_INITS 1024

typedef struct xb {
    void **p;                 /* everything allocated, freed at the end */
    int n, cap, oom;
    Onnx__NodeProto *node[MAX_NODES];
    Onnx__TensorProto *init[MAX_INITS];
    int nnode, ninit;
    int opset;                /* what the graph is written for */
    int flat_input;           /* "input.flatten" written (MMoE gates) */
    const char *skip[MTC_MAX_LAYERS]; /* open residual blocks' inputs */
    int nskip;
    mtc_err *e;
} xb;

static void *xa(xb *b, size_t n)
{
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 256;
        void **p = realloc(b->p, (size_t)cap * sizeof *p);
        if (!p) return b->oom = 1, NULL;
        b->p = p, b->cap = cap;
    }
    void *q = calloc(1, n ? n : 1);
    if (!q) return b->oom = 1, NULL;
    return b->p[b->n++] = q;
}

static char *xs(xb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *xs(xb *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    char *s = xa(b, strlen(tmp) + 1);
    if (s) strcpy(s, tmp);
    return s ? s : (char *)"";
}

/* An initializer of the given dims (nd 0: a scalar) over data (copied),
 * elements of esz bytes of ONNX type dtype. */
static const char *init_raw(xb *b, const char *name, const int64_t *dims, int nd, const void *data, int dtype,
                            size_t esz)
{
    Onnx__TensorProto *t = xa(b, sizeof *t);
    int64_t *d = xa(b, (size_t)(nd ? nd : 1) * sizeof *d), n = 1;
    if (!t || !d || b->ninit >= MAX_INITS) return b->oom = 1, name;
    onnx__tensor_proto__init(t);
    for (int i = 0; i < nd; i++) d[i] = dims[i], n *= dims[i];
    void *v = xa(b, (size_t)n * esz);
    if (!v) return name;
    memcpy(v, data, (size_t)n * esz);
    t->n_dims = (size_t)nd, t->dims = d;
    t->has_data_type = 1, t->data_type = dtype;
    t->name = xs(b, "%s", name);
    t->has_raw_data = 1, t->raw_data.len = (size_t)n * esz, t->raw_data.data = v; /* x86: little-endian */
    b->init[b->ninit++] = t;
    return t->name;
}

static const char *init_f32(xb *b, const char *name, const int64_t *dims, int nd, const float *data)
{
    return init_raw(b, name, dims, nd, data, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4);
}

static Onnx__AttributeProto *attr(xb *b, Onnx__NodeProto *nd, const char *name)
{
    Onnx__AttributeProto *a = xa(b, sizeof *a), **all = xa(b, (nd->n_attribute + 1) * sizeof *all);
    if (!a || !all) return NULL;
    onnx__attribute_proto__init(a);
    a->name = xs(b, "%s", name);
    if (nd->n_attribute) memcpy(all, nd->attribute, nd->n_attribute * sizeof *all);
    all[nd->n_attribute++] = a;
    nd->attribute = all;
    return a;
}

static void attr_ints(xb *b, Onnx__NodeProto *nd, const char *name, int64_t v, int n)
{
    Onnx__AttributeProto *a = attr(b, nd, name);
    int64_t *p = xa(b, (size_t)n * sizeof *p);
    if (!a || !p) return;
    for (int i = 0; i < n; i++) p[i] = v;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = (size_t)n, a->ints = p;
}

static void attr_int(xb *b, Onnx__NodeProto *nd, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(b, nd, name);
    if (!a) return;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1, a->i = v;
}

static void attr_str(xb *b, Onnx__NodeProto *nd, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr(b, nd, name);
    char *p = xs(b, "%s", v);
    if (!a) return;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    a->has_s = 1, a->s.len = strlen(p), a->s.data = (uint8_t *)p;
}

static void attr_float(xb *b, Onnx__NodeProto *nd, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(b, nd, name);
    if (!a) return;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1, a->f = v;
}

/* op(inputs) -> out; returns the node (attributes added by the caller). */
static Onnx__NodeProto *node(xb *b, const char *op, const char *name, const char *out, int nin, ...)
{
    Onnx__NodeProto *nd = xa(b, sizeof *nd);
    char **in = xa(b, (size_t)nin * sizeof *in), **o = xa(b, sizeof *o);
    if (!nd || !in || !o || b->nnode >= MAX_NODES) return b->oom = 1, NULL;
    onnx__node_proto__init(nd);
    va_list ap;
    va_start(ap, nin);
    for (int i = 0; i < nin; i++) in[i] = xs(b, "%s", va_arg(ap, const char *));
    va_end(ap);
    o[0] = xs(b, "%s", out);
    nd->n_input = (size_t)nin, nd->input = in;
    nd->n_output = 1, nd->output = o;
    nd->name = xs(b, "%s", name);
    nd->op_type = xs(b, "%s", op);
    b->node[b->nnode++] = nd;
    return nd;
}

/* A float scalar initializer named name. */
static const char *scalar(xb *b, const char *name, float v)
{
    return init_f32(b, name, NULL, 0, &v);
}

/* y = a op c (c a scalar initializer) */
static const char *bin_c(xb *b, const char *op, const char *name, const char *a, float c)
{
    node(b, op, name, name, 2, a, scalar(b, xs(b, "%s.c", name), c));
    return name;
}

/* gelu before opset 20, as PyTorch writes it: erf form x·0.5·(1 + erf(x/√2)),
 * tanh form 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). The last node
 * writes out. */
static void gelu_nodes(xb *b, const char *base, int erf, const char *x, const char *out)
{
    const char *in1;
    if (erf) {
        const char *d = bin_c(b, "Div", xs(b, "%s.div", base), x, 1.41421356f);
        const char *f = xs(b, "%s.erf", base);
        node(b, "Erf", f, f, 1, d);
        in1 = bin_c(b, "Add", xs(b, "%s.add", base), f, 1.0f);
    } else {
        const char *x2 = xs(b, "%s.sq", base), *x3 = xs(b, "%s.cube", base), *s = xs(b, "%s.sum", base);
        node(b, "Mul", x2, x2, 2, x, x);
        node(b, "Mul", x3, x3, 2, x, x2);
        const char *a = bin_c(b, "Mul", xs(b, "%s.a", base), x3, 0.044715f);
        node(b, "Add", s, s, 2, x, a);
        const char *u = bin_c(b, "Mul", xs(b, "%s.u", base), s, 0.7978845608f), *t = xs(b, "%s.tanh", base);
        node(b, "Tanh", t, t, 1, u);
        in1 = bin_c(b, "Add", xs(b, "%s.add", base), t, 1.0f);
    }
    const char *m = xs(b, "%s.mul", base);
    node(b, "Mul", m, m, 2, x, in1);
    node(b, "Mul", out, out, 2, m, scalar(b, xs(b, "%s.half", base), 0.5f));
}

/* The activation after a layer, from tensor *cur; *cur becomes its output. */
static int act(xb *b, const mtc_layer *L, int a, const char **cur)
{
    static const char *const ops[] = {NULL, "Relu", "LeakyRelu", "Tanh", "Sigmoid", "Gelu", "Gelu"};
    if (a == MTC_ACT_NONE) return 0;
    if (a < 0 || a > MTC_ACT_GELU_ERF)
        return mtc_err_set(b->e, MTC_EINPUT, "layer %s: activation %s has no ONNX export", L->name, mtc_act_name(a));
    const char *out = xs(b, "%s.%s", L->name, mtc_act_name(a));
    if ((a == MTC_ACT_GELU || a == MTC_ACT_GELU_ERF) && b->opset < 20) {
        gelu_nodes(b, out, a == MTC_ACT_GELU_ERF, *cur, out);
    } else {
        Onnx__NodeProto *nd = node(b, ops[a], out, out, 1, *cur);
        if (nd && a == MTC_ACT_LEAKY) attr_float(b, nd, "alpha", 0.01f);
        if (nd && a == MTC_ACT_GELU) attr_str(b, nd, "approximate", "tanh");
    }
    *cur = out;
    return 0;
}

static void flatten(xb *b, const char *name, const char **cur, int *rank4)
{
    if (!*rank4) return;
    const char *out = xs(b, "%s.flatten", name);
    Onnx__NodeProto *nd = node(b, "Flatten", out, out, 1, *cur);
    if (nd) attr_int(b, nd, "axis", 1);
    *cur = out;
    *rank4 = 0;
}

/* Gemm (transB = 1) or Conv (L's kernel, stride, pads) of x, w, bias -> out. */
static void linear_node(xb *b, const mtc_layer *L, int conv, const char *x, const char *w, const char *bias,
                        const char *out)
{
    Onnx__NodeProto *nd = node(b, conv ? "Conv" : "Gemm", L->name, out, 3, x, w, bias);
    if (!nd) return;
    if (!conv) {
        attr_int(b, nd, "transB", 1);
        return;
    }
    attr_ints(b, nd, "kernel_shape", L->cs.K, 2);
    attr_ints(b, nd, "strides", L->cs.stride, 2);
    attr_ints(b, nd, "pads", L->cs.pad, 4);
    if (L->cs.G > 1) attr_int(b, nd, "group", L->cs.G);
}

static void pool_node(xb *b, const mtc_layer *L, const char **cur)
{
    Onnx__NodeProto *nd = node(b, L->spec.type == MTC_L_MAXPOOL ? "MaxPool" : "AveragePool", L->name, L->name, 1, *cur);
    if (nd) {
        attr_ints(b, nd, "kernel_shape", L->spec.size, 2);
        attr_ints(b, nd, "strides", L->spec.stride, 2);
    }
    *cur = L->name;
}

/* An unfolded batchnorm with m's parameters and running statistics. */
static void bn_node(xb *b, const mtc_model *m, const mtc_layer *L, const char **cur)
{
    int64_t C = L->nw;
    const float *p = m->params, *st = m->stats + L->stat_off;
    const char *g = init_f32(b, xs(b, "%s.weight", L->name), &C, 1, p + L->w_off);
    const char *bb = init_f32(b, xs(b, "%s.bias", L->name), &C, 1, p + L->b_off);
    const char *mu = init_f32(b, xs(b, "%s.running_mean", L->name), &C, 1, st);
    const char *var = init_f32(b, xs(b, "%s.running_var", L->name), &C, 1, st + C);
    Onnx__NodeProto *nd = node(b, "BatchNormalization", L->name, L->name, 5, *cur, g, bb, mu, var);
    if (nd) attr_float(b, nd, "epsilon", 1e-5f);
    *cur = L->name;
}

/* Layer normalisation over everything but the batch axis, as mtc's: one
 * LayerNormalization (opset 17 and up) or, before it, the ReduceMean /
 * Sub / Mul / Sqrt / Div chain it stands for; γ, β shaped like a sample. */
static void ln_node(xb *b, const mtc_model *m, const mtc_layer *L, const char **cur, int rank4)
{
    int64_t d[3] = {L->in_c, L->in_h, L->in_w}, f = L->in_size;
    int nd = rank4 ? 3 : 1;
    if (!rank4) d[0] = f;
    const char *g = init_f32(b, xs(b, "%s.weight", L->name), d, nd, m->params + L->w_off);
    const char *bb = init_f32(b, xs(b, "%s.bias", L->name), d, nd, m->params + L->b_off);
    if (b->opset >= 17) {
        Onnx__NodeProto *n = node(b, "LayerNormalization", L->name, L->name, 3, *cur, g, bb);
        if (n) attr_int(b, n, "axis", 1), attr_float(b, n, "epsilon", 1e-5f);
        *cur = L->name;
        return;
    }
    const char *mu = xs(b, "%s.mean", L->name), *dv = xs(b, "%s.centered", L->name), *sq = xs(b, "%s.sq", L->name);
    const char *var = xs(b, "%s.var", L->name), *sd = xs(b, "%s.std", L->name), *nr = xs(b, "%s.normed", L->name);
    Onnx__NodeProto *r1 = node(b, "ReduceMean", mu, mu, 1, *cur);
    node(b, "Sub", dv, dv, 2, *cur, mu);
    node(b, "Mul", sq, sq, 2, dv, dv);
    Onnx__NodeProto *r2 = node(b, "ReduceMean", var, var, 1, sq);
    for (int i = 0; i < 2; i++) {
        Onnx__NodeProto *r = i ? r2 : r1;
        Onnx__AttributeProto *a = r ? attr(b, r, "axes") : NULL;
        int64_t *ax = xa(b, 3 * sizeof *ax);
        if (!a || !ax) return;
        for (int k = 0; k < nd; k++) ax[k] = 1 + k;
        a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        a->n_ints = (size_t)nd, a->ints = ax;
    }
    const char *ve = bin_c(b, "Add", xs(b, "%s.var_eps", L->name), var, 1e-5f);
    node(b, "Sqrt", sd, sd, 1, ve);
    node(b, "Div", nr, nr, 2, dv, sd);
    const char *sc = xs(b, "%s.scaled", L->name);
    node(b, "Mul", sc, sc, 2, nr, g);
    node(b, "Add", L->name, L->name, 2, sc, bb);
    *cur = L->name;
}

/* [residual]: the block's input is remembered; [add]: Add(block output,
 * that input), then the add's activation. */
static int residual_node(xb *b, const mtc_layer *L, int act_, const char **cur)
{
    if (L->spec.type == MTC_L_RESIDUAL) {
        if (b->nskip >= MTC_MAX_LAYERS) return mtc_err_set(b->e, MTC_EINPUT, "layer %s: residual blocks nest too deep", L->name);
        b->skip[b->nskip++] = *cur;
        return 0;
    }
    if (!b->nskip) return mtc_err_set(b->e, MTC_EINTERNAL, "layer %s: [add] without its [residual]", L->name);
    node(b, "Add", L->name, L->name, 2, *cur, b->skip[--b->nskip]);
    *cur = L->name;
    return act(b, L, act_, cur);
}

/* One layer of a chain. fold (reg output layer): W, b scaled by std, + mean. */
static int layer(xb *b, const mtc_model *m, const mtc_layer *L, const char **cur, int *rank4, const float *std,
                 const float *mean, const char *out_name)
{
    const float *p = m->params;
    const mtc_layer_spec *s = &L->spec;
    const char *out = out_name ? out_name : L->name;
    switch (s->type) {
    case MTC_L_DENSE: {
        flatten(b, L->name, cur, rank4);
        int64_t N = L->nb, K = L->nw / L->nb, wd[2] = {N, K};
        float *W = xa(b, (size_t)(N * K) * sizeof *W), *bias = xa(b, (size_t)N * sizeof *bias);
        if (!W || !bias) return 0;
        memcpy(W, p + L->w_off, (size_t)(N * K) * sizeof *W);
        memcpy(bias, p + L->b_off, (size_t)N * sizeof *bias);
        for (int64_t r = 0; r < N && std; r++) { /* y·std + mean, folded */
            for (int64_t k = 0; k < K; k++) W[r * K + k] *= std[r];
            bias[r] = bias[r] * std[r] + mean[r];
        }
        const char *w = init_f32(b, xs(b, "%s.weight", L->name), wd, 2, W);
        const char *bb = init_f32(b, xs(b, "%s.bias", L->name), &N, 1, bias);
        linear_node(b, L, 0, *cur, w, bb, s->act ? L->name : out);
        *cur = s->act ? L->name : out;
        return act(b, L, s->act, cur);
    }
    case MTC_L_CONV: {
        const mtc_conv_shape *cs = &L->cs;
        int64_t wd[4] = {cs->OC, cs->C / cs->G, cs->K, cs->K}, oc = cs->OC;
        const char *w = init_f32(b, xs(b, "%s.weight", L->name), wd, 4, p + L->w_off);
        const char *bb = init_f32(b, xs(b, "%s.bias", L->name), &oc, 1, p + L->b_off);
        linear_node(b, L, 1, *cur, w, bb, L->name);
        *cur = L->name;
        return act(b, L, s->act, cur);
    }
    case MTC_L_MAXPOOL: case MTC_L_AVGPOOL:
        pool_node(b, L, cur);
        return 0;
    case MTC_L_BATCHNORM:
        bn_node(b, m, L, cur);
        return 0;
    case MTC_L_LAYERNORM:
        ln_node(b, m, L, cur, *rank4);
        return 0;
    case MTC_L_FLATTEN:
        flatten(b, L->name, cur, rank4);
        return 0;
    case MTC_L_ACT:
        return act(b, L, s->act, cur);
    case MTC_L_DROPOUT:
        return 0;
    case MTC_L_RESIDUAL: case MTC_L_ADD:
        return residual_node(b, L, s->act, cur);
    default:
        return mtc_err_set(b->e, MTC_EINPUT, "layer %s (%s) has no ONNX export yet", L->name,
                           mtc_layer_type_name(s->type));
    }
}

static Onnx__ValueInfoProto *value(xb *b, const char *name, const int64_t *dims, int nd)
{
    Onnx__ValueInfoProto *v = xa(b, sizeof *v);
    Onnx__TypeProto *tp = xa(b, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = xa(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = xa(b, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dm = xa(b, (size_t)nd * sizeof *dm);
    if (!v || !tp || !tt || !sh || !dm) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < nd; i++) {
        if (!(dm[i] = xa(b, sizeof **dm))) return NULL;
        onnx__tensor_shape_proto__dimension__init(dm[i]);
        if (dims[i] < 0) {
            dm[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm[i]->dim_param = xs(b, "batch");
        } else {
            dm[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm[i]->dim_value = dims[i];
        }
    }
    sh->n_dim = (size_t)nd, sh->dim = dm;
    tt->has_elem_type = 1, tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
    v->name = xs(b, "%s", name), v->type = tp;
    return v;
}

static Onnx__StringStringEntryProto *meta(xb *b, const char *key, const char *val)
{
    Onnx__StringStringEntryProto *p = xa(b, sizeof *p);
    if (!p) return NULL;
    onnx__string_string_entry_proto__init(p);
    p->key = xs(b, "%s", key);
    char *v = xa(b, strlen(val) + 1);
    if (v) strcpy(v, val);
    p->value = v ? v : (char *)"";
    return p;
}

/* ---- MMoE: experts stacked, each task's softmax gate mixes them ------------ */

/* int64 initializer [v] named name (Unsqueeze's axes) */
static const char *axes1(xb *b, const char *name, int64_t v)
{
    int64_t one = 1;
    return init_raw(b, name, &one, 1, &v, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 8);
}

/* outs[k] (N, H) -> "experts" (N, E, H) */
static const char *stack_experts(xb *b, const char *const *outs, int E)
{
    const char *ax = axes1(b, "experts.axes", 1);
    char **in = xa(b, (size_t)E * sizeof *in);
    if (!in) return "experts";
    for (int k = 0; k < E; k++) {
        const char *u = xs(b, "expert%d.unsqueeze", k);
        node(b, "Unsqueeze", u, u, 2, outs[k], ax);
        in[k] = (char *)u;
    }
    Onnx__NodeProto *c = node(b, "Concat", "experts", "experts", 0);
    if (!c) return "experts";
    c->n_input = (size_t)E, c->input = in;
    attr_int(b, c, "axis", 1);
    return "experts";
}

/* The graph input as (N, features): the gates read it */
static const char *flat_input(xb *b, int image)
{
    if (!image) return "input";
    if (!b->flat_input) {
        Onnx__NodeProto *nd = node(b, "Flatten", "input.flatten", "input.flatten", 1, "input");
        if (nd) attr_int(b, nd, "axis", 1);
        b->flat_input = 1;
    }
    return "input.flatten";
}

/* Task t's mix: softmax(gate(x)) (N, 1, E) times the experts (N, E, H) */
static const char *mix(xb *b, const mtc_model *m, int t, const char *xin, const char *experts)
{
    const mtc_layer *G = &m->gate[t];
    int64_t N = G->nb, wd[2] = {N, G->nw / G->nb};
    const char *w = init_f32(b, xs(b, "%s.weight", G->name), wd, 2, m->params + G->w_off);
    const char *bb = init_f32(b, xs(b, "%s.bias", G->name), &N, 1, m->params + G->b_off);
    linear_node(b, G, 0, xin, w, bb, G->name);
    const char *sm = xs(b, "%s.softmax", G->name), *u = xs(b, "%s.unsqueeze", G->name);
    const char *mm = xs(b, "mix.%s.matmul", m->spec.tasks[t].name), *out = xs(b, "mix.%s", m->spec.tasks[t].name);
    Onnx__NodeProto *n1 = node(b, "Softmax", sm, sm, 1, G->name);
    if (n1) attr_int(b, n1, "axis", 1);
    node(b, "Unsqueeze", u, u, 2, sm, axes1(b, xs(b, "%s.axes", G->name), 1));
    node(b, "MatMul", mm, mm, 2, u, experts);
    Onnx__NodeProto *n2 = node(b, "Flatten", out, out, 1, mm);
    if (n2) attr_int(b, n2, "axis", 1);
    return out;
}

static int assemble(xb *b, const mtc_model *m, int image, Onnx__ValueInfoProto **outs, int opset,
                    Onnx__ModelProto *mp, Onnx__GraphProto *g);

static int build(xb *b, const mtc_model *m, int opset, Onnx__ModelProto *mp, Onnx__GraphProto *g)
{
    const mtc_spec *s = &m->spec;
    const int image = !(s->c == 1 && s->h == 1), E = m->nexperts;
    const char *ex[MTC_MAX_EXPERTS], *cur;
    int rc = 0;
    for (int k = 0; k < E && !rc && !b->oom; k++) {
        int rank4 = image;
        cur = "input";
        for (int i = 0; i < m->trunk[k].n && !rc && !b->oom; i++)
            rc = layer(b, m, &m->trunk[k].layers[i], &cur, &rank4, NULL, NULL, NULL);
        flatten(b, E > 1 ? xs(b, "expert%d", k) : "trunk", &cur, &rank4);
        ex[k] = cur;
    }
    const char *experts = !rc && E > 1 ? stack_experts(b, ex, E) : NULL;
    Onnx__ValueInfoProto **outs = xa(b, (size_t)s->ntasks * sizeof *outs);
    if (!outs) return 0;
    for (int t = 0; t < s->ntasks && !rc && !b->oom; t++) {
        const mtc_chain *h = &m->head[t];
        cur = E > 1 ? mix(b, m, t, flat_input(b, image), experts) : ex[0];
        int r4 = 0;
        int reg = s->tasks[t].kind == MTC_TASK_REG;
        for (int i = 0; i < h->n && !rc; i++)
            rc = layer(b, m, &h->layers[i], &cur, &r4, reg && i == h->n - 1 ? m->reg_std[t] : NULL,
                       reg && i == h->n - 1 ? m->reg_mean[t] : NULL, i == h->n - 1 ? s->tasks[t].name : NULL);
        int64_t od[2] = {-1, s->tasks[t].dim};
        outs[t] = value(b, s->tasks[t].name, od, 2);
    }
    if (rc || b->oom) return rc;
    return assemble(b, m, image, outs, opset, mp, g);
}

/* The graph around the nodes: its input, the task outputs, metadata. */
static int assemble(xb *b, const mtc_model *m, int image, Onnx__ValueInfoProto **outs, int opset,
                    Onnx__ModelProto *mp, Onnx__GraphProto *g)
{
    const mtc_spec *s = &m->spec;
    int64_t in[4] = {-1, s->c, s->h, s->w}, in2[2] = {-1, s->w};
    Onnx__ValueInfoProto **ins = xa(b, sizeof *ins);
    if (!ins) return 0;
    ins[0] = image ? value(b, "input", in, 4) : value(b, "input", in2, 2);
    onnx__graph_proto__init(g);
    g->name = xs(b, "mtc");
    g->n_node = (size_t)b->nnode, g->node = b->node;
    g->n_initializer = (size_t)b->ninit, g->initializer = b->init;
    g->n_input = 1, g->input = ins;
    g->n_output = (size_t)s->ntasks, g->output = outs;
    /* metadata: the input convention, the tasks, class names */
    Onnx__StringStringEntryProto **md = xa(b, (size_t)(2 + s->ntasks) * sizeof *md);
    Onnx__OperatorSetIdProto *os = xa(b, sizeof *os), **osl = xa(b, sizeof *osl);
    char *tasks = xa(b, 64 * (size_t)(MTC_MAX_TASKS + 1));
    if (!md || !os || !osl || !tasks) return 0;
    int nmd = 0;
    md[nmd++] = meta(b, "mtc.input", image ? "float32 NCHW, pixels / 255 in [0, 1]"
                                                                 : "float32 [N, features] as the CSV holds them");
    for (int t = 0; t < s->ntasks; t++) {
        size_t k = strlen(tasks);
        snprintf(tasks + k, 64, "%s%s:%s:%d", t ? "," : "", s->tasks[t].name, mtc_task_kind_name(s->tasks[t].kind),
                 s->tasks[t].dim);
        if (m->nclass_names[t]) {
            size_t len = 1;
            for (int c = 0; c < m->nclass_names[t]; c++) len += strlen(m->class_names[t][c]) + 1;
            char *names = xa(b, len);
            if (!names) return 0;
            for (int c = 0; c < m->nclass_names[t]; c++) strcat(strcat(names, c ? "," : ""), m->class_names[t][c]);
            md[nmd++] = meta(b, xs(b, "mtc.classes.%s", s->tasks[t].name), names);
        }
    }
    md[nmd++] = meta(b, "mtc.tasks", tasks);
    onnx__operator_set_id_proto__init(os);
    os->domain = xs(b, "%s", ""), os->has_version = 1, os->version = opset;
    osl[0] = os;
    onnx__model_proto__init(mp);
    mp->has_ir_version = 1, mp->ir_version = ONNX__VERSION__IR_VERSION;
    mp->n_opset_import = 1, mp->opset_import = osl;
    mp->producer_name = xs(b, "mtc"), mp->producer_version = xs(b, "%s", MTC_VERSION);
    mp->graph = g;
    mp->n_metadata_props = (size_t)nmd, mp->metadata_props = md;
    return 0;
}

/* ---- int8: what the runtime runs, as QDQ ---------------------------------- */

/* x -> QuantizeLinear -> DequantizeLinear with u8 parameters p */
static const char *qdq(xb *b, const char *base, const char *x, mtc_qparams p)
{
    uint8_t zp = (uint8_t)p.zp;
    const char *sc = init_raw(b, xs(b, "%s.scale", base), NULL, 0, &p.scale, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4);
    const char *z = init_raw(b, xs(b, "%s.zero_point", base), NULL, 0, &zp, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 1);
    const char *q = xs(b, "%s.q", base), *dq = xs(b, "%s.dq", base);
    node(b, "QuantizeLinear", q, q, 3, x, sc, z);
    node(b, "DequantizeLinear", dq, dq, 3, q, sc, z);
    return dq;
}

/* One op of a chain as the runtime runs it: int8 dense/conv as QDQ around
 * a float Gemm/Conv over dequantized s8 weights (per channel) and s32 bias,
 * fp32 ones with batchnorm folded, relu fused. */
static int rt_op_node(xb *b, const mtc_rt *rt, const rt_op *op, const char **cur, int *rank4)
{
    const mtc_layer *L = op->L;
    const char *name = L->name;
    switch (op->kind) {
    case OP_DENSE: case OP_CONV: {
        if (op->kind == OP_DENSE) flatten(b, name, cur, rank4);
        const mtc_conv_shape *cs = &L->cs;
        int64_t N = op->N, wd[4] = {N, op->K, 0, 0};
        int nd = 2;
        if (op->kind == OP_CONV) wd[1] = cs->C / cs->G, wd[2] = wd[3] = cs->K, nd = 4;
        const char *x = *cur, *w, *bias;
        if (op->quant) {
            x = qdq(b, xs(b, "%s.input", name), *cur, op->in_p);
            int8_t *wz = xa(b, (size_t)N);
            int32_t *bz = xa(b, (size_t)N * 4);
            float *bs = xa(b, (size_t)N * 4);
            if (!wz || !bz || !bs) return 0;
            for (int64_t n = 0; n < N; n++) bs[n] = (float)((double)op->in_p.scale * op->wscale[n]);
            const char *wq = init_raw(b, xs(b, "%s.weight_q", name), wd, nd, op->wq, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 1);
            const char *ws = init_f32(b, xs(b, "%s.weight_scale", name), &N, 1, op->wscale);
            const char *wzn = init_raw(b, xs(b, "%s.weight_zero_point", name), &N, 1, wz, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 1);
            const char *bq = init_raw(b, xs(b, "%s.bias_q", name), &N, 1, op->bias_q, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 4);
            const char *bsn = init_f32(b, xs(b, "%s.bias_scale", name), &N, 1, bs);
            const char *bzn = init_raw(b, xs(b, "%s.bias_zero_point", name), &N, 1, bz, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 4);
            w = xs(b, "%s.weight", name), bias = xs(b, "%s.bias", name);
            Onnx__NodeProto *d1 = node(b, "DequantizeLinear", w, w, 3, wq, ws, wzn);
            Onnx__NodeProto *d2 = node(b, "DequantizeLinear", bias, bias, 3, bq, bsn, bzn);
            if (d1) attr_int(b, d1, "axis", 0);
            if (d2) attr_int(b, d2, "axis", 0);
        } else {
            if (!op->W) return mtc_err_set(b->e, MTC_EINPUT, "layer %s has no fp32 weights", name);
            w = init_f32(b, xs(b, "%s.weight", name), wd, nd, op->W);
            bias = init_f32(b, xs(b, "%s.bias", name), &N, 1, op->b);
        }
        linear_node(b, L, op->kind == OP_CONV, x, w, bias, name);
        *cur = name;
        int rc = act(b, L, op->act, cur);
        if (!rc && op->quant && op->out_u8) *cur = qdq(b, xs(b, "%s.output", name), *cur, op->out_p);
        return rc;
    }
    case OP_MAXPOOL: case OP_AVGPOOL:
        pool_node(b, L, cur);
        return 0;
    case OP_ACT:
        return act(b, L, op->act, cur);
    case OP_BN:
        bn_node(b, &rt->m, L, cur);
        return 0;
    case OP_LN:
        ln_node(b, &rt->m, L, cur, *rank4);
        return 0;
    case OP_RESID: case OP_ADD:
        return residual_node(b, L, op->act, cur);
    default:
        return mtc_err_set(b->e, MTC_EINPUT, "layer %s (%s) has no ONNX export yet", name,
                           mtc_layer_type_name(L->spec.type));
    }
}

static int build_rt(xb *b, const mtc_rt *rt, int opset, Onnx__ModelProto *mp, Onnx__GraphProto *g)
{
    const mtc_model *m = &rt->m;
    const mtc_spec *s = &m->spec;
    const int image = !(s->c == 1 && s->h == 1), E = m->nexperts;
    const char *ex[MTC_MAX_EXPERTS], *cur;
    int rc = 0;
    for (int k = 0; k < E && !rc && !b->oom; k++) {
        int rank4 = image;
        cur = "input";
        for (int i = 0; i < rt->trunk[k].n && !rc && !b->oom; i++) rc = rt_op_node(b, rt, &rt->trunk[k].ops[i], &cur, &rank4);
        flatten(b, E > 1 ? xs(b, "expert%d", k) : "trunk", &cur, &rank4);
        ex[k] = cur;
    }
    const char *experts = !rc && E > 1 ? stack_experts(b, ex, E) : NULL;
    Onnx__ValueInfoProto **outs = xa(b, (size_t)s->ntasks * sizeof *outs);
    if (!outs) return 0;
    for (int t = 0; t < s->ntasks && !rc && !b->oom; t++) {
        const rt_chain *h = &rt->head[t];
        int r4 = 0;
        cur = E > 1 ? mix(b, m, t, flat_input(b, image), experts) : ex[0];
        for (int i = 0; i < h->n && !rc; i++) rc = rt_op_node(b, rt, &h->ops[i], &cur, &r4);
        const char *name = s->tasks[t].name;
        int64_t D = s->tasks[t].dim;
        int scaled = 0;
        for (int d = 0; d < D; d++) scaled |= m->reg_std[t][d] != 1.0f || m->reg_mean[t][d] != 0.0f;
        if (s->tasks[t].kind == MTC_TASK_REG && scaled) { /* label units: y·std + mean */
            const char *sd = init_f32(b, xs(b, "task.%s.target_std", name), &D, 1, m->reg_std[t]);
            const char *mn = init_f32(b, xs(b, "task.%s.target_mean", name), &D, 1, m->reg_mean[t]);
            const char *y1 = xs(b, "%s.scaled", name);
            node(b, "Mul", y1, y1, 2, cur, sd);
            node(b, "Add", name, name, 2, y1, mn);
        } else {
            node(b, "Identity", name, name, 1, cur);
        }
        int64_t od[2] = {-1, D};
        outs[t] = value(b, name, od, 2);
    }
    if (rc || b->oom) return rc;
    return assemble(b, m, image, outs, opset, mp, g);
}

static int write_model(xb *b, Onnx__ModelProto *mp, const char *path, mtc_err *e)
{
    (void)b;
    size_t n = onnx__model_proto__get_packed_size(mp);
    uint8_t *buf = malloc(n ? n : 1);
    mtc_outfile o;
    int rc = 0;
    if (!buf) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    onnx__model_proto__pack(mp, buf);
    if (!(rc = mtc_outfile_open(&o, path, e))) {
        if (fwrite(buf, 1, n, o.f) != n) {
            mtc_outfile_abort(&o);
            rc = mtc_err_set(e, MTC_EIO, "%s: write failed", path);
        } else {
            rc = mtc_outfile_commit(&o, e);
        }
    }
    free(buf);
    return rc;
}

/* Builds with fn (over a model or a runtime), then writes path. */
static int export_with(int (*fn)(xb *, const void *, int, Onnx__ModelProto *, Onnx__GraphProto *), const void *src,
                       int opset, const char *path, mtc_err *e)
{
    if (opset < 13 || opset > 21) return mtc_err_set(e, MTC_EINPUT, "--opset %d: mtc writes opsets 13 to 21", opset);
    xb *b = calloc(1, sizeof *b);
    if (!b) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    b->e = e;
    b->opset = opset;
    Onnx__ModelProto mp;
    Onnx__GraphProto g;
    int rc = fn(b, src, opset, &mp, &g);
    if (!rc && b->oom) rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory (or more than %d nodes)", path, MAX_NODES);
    if (!rc) rc = write_model(b, &mp, path, e);
    for (int i = 0; i < b->n; i++) free(b->p[i]);
    free(b->p);
    free(b);
    return rc;
}

static int build_model_v(xb *b, const void *m, int opset, Onnx__ModelProto *mp, Onnx__GraphProto *g)
{
    return build(b, m, opset, mp, g);
}

static int build_rt_v(xb *b, const void *rt, int opset, Onnx__ModelProto *mp, Onnx__GraphProto *g)
{
    return build_rt(b, rt, opset, mp, g);
}

int mtc_onnx_export_rt(const mtc_rt *rt, int opset, const char *path, mtc_err *e)
{
    return export_with(build_rt_v, rt, opset, path, e);
}

int mtc_onnx_export(const mtc_model *m, int opset, const char *path, mtc_err *e)
{
    return export_with(build_model_v, m, opset, path, e);
}
