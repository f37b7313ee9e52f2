/*
 * mtc/interop.h — models from other frameworks (interop/). See
 * docs/interop.md.
 */
#ifndef MTC_INTEROP_H
#define MTC_INTEROP_H

/* An ONNX file (opsets 11-21; one input, a trunk branching into one chain
 * per output; the operators listed in interop/onnx_import.c) as an mtc
 * model, weights filled, ready for mtc_model_save. tasks (may be NULL):
 * "NAME:KIND,..." (KIND cls, bin or reg) for outputs whose kind should not
 * be inferred (Softmax/LogSoftmax -> cls, Sigmoid -> bin, none -> cls when
 * the output has 2+ values, else reg). note (note_len bytes) receives what
 * was inferred and stripped, per task. MTC_EINPUT naming the node, its op
 * and why for anything mtc cannot represent. */
int mtc_onnx_import(const char *path, const char *tasks, mtc_model *m, char *note, size_t note_len, mtc_err *e);

/* A model trained on inputs pixel · s (s = 1/255 is what mtc feeds: no
 * change) made to take mtc's pixel / 255: the first layer's weights (each
 * expert's, and MMoE gates') times s·255. Exact for dense and conv layers
 * (zero padding stays zero); MTC_EINPUT when the first layer is neither. */
int mtc_model_input_scale(mtc_model *m, double s, mtc_err *e);

/* An fp32 model as ONNX at path (written crash-safe): one input (float32
 * NCHW in [0, 1], or [N, features]), one output per task with what mtc's
 * runtime returns (logits; reg in label units). opset 13..21. MMoE,
 * layernorm and gelu have no export yet (MTC_EINPUT). */
int mtc_onnx_export(const mtc_model *m, int opset, const char *path, mtc_err *e);
/* What a runtime runs, int8 checkpoints included, as ONNX: int8 dense/conv
 * layers as QuantizeLinear/DequantizeLinear around a float Gemm/Conv over
 * dequantized s8 weights (per channel) and s32 biases, with mtc's own
 * scales and zero points; fp32 layers with batchnorm folded. */
int mtc_onnx_export_rt(const mtc_rt *rt, int opset, const char *path, mtc_err *e);

/* A checkpoint's tensors (any dtype) and spec (in __metadata__) as a
 * safetensors file, written crash-safe; and back into a checkpoint in
 * memory (spec NULL when the file has none). Offsets, sizes and dtypes are
 * checked against the file; MTC_EINPUT names the file and the tensor. */
int mtc_safetensors_write(const mtc_ckpt *c, const char *path, mtc_err *e);
int mtc_safetensors_read(const char *path, mtc_ckpt *c, mtc_err *e);

#endif
