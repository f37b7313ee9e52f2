/*
 * cmd_export.c — `mtc export MODEL.mtc -o model.onnx [--opset N]`: an fp32
 * checkpoint (pruned ones too, as dense zeros) as ONNX for ONNX Runtime.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <string.h>

int cmd_export(int argc, char **argv)
{
    const char *out = NULL, *format = NULL;
    int opset = 13;
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output .onnx file (-o; required)", 1, 0},
        {"opset", OPT_INT, &opset, "ONNX opset to declare (default {default})", 13, 21},
        {"format", OPT_STR, &format, "onnx | safetensors (the checkpoint's tensors and spec; default from the "
                                     "output's extension, else onnx)", 1, 0},
        CLI_COMMON(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("export", "MODEL.mtc -o model.onnx [--opset N]",
                       "Write an fp32 checkpoint as ONNX (for ONNX Runtime): input float32 NCHW in [0, 1] (images) or\n"
                       "[N, features]; one output per task with the logits (cls/bin) or label-unit values (reg) mtc's\n"
                       "runtime gives; pruned weights as zeros. An int8 checkpoint goes as what mtc's runtime runs:\n"
                       "QuantizeLinear/DequantizeLinear around each int8 layer with mtc's scales and zero points (ONNX\n"
                       "Runtime fuses them into its int8 kernels). MMoE models export as experts mixed by their softmax\n"
                       "gates; layernorm and gelu as single ops from opset 17 / 20, as their op chains below that.",
                       opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1 || !out) {
        fprintf(stderr, "mtc export: need MODEL.mtc and -o (see mtc export --help)\n");
        return 2;
    }
    cli_apply_common(&c);
    mtc_err e = {0};
    size_t ol = strlen(out);
    int st = format ? !strcmp(format, "safetensors") : ol > 12 && !strcmp(out + ol - 12, ".safetensors");
    if (format && !st && strcmp(format, "onnx")) {
        fprintf(stderr, "mtc export: --format %s: expected onnx or safetensors\n", format);
        return 2;
    }
    mtc_ckpt ck;
    if (mtc_ckpt_load(pos[0], &ck, &e)) return cli_fail("export", &e);
    if (st) {
        if (!(rc = mtc_safetensors_write(&ck, out, &e)))
            printf("wrote %s: %d tensors of %s and its spec\n", out, ck.ntensors, pos[0]);
        mtc_ckpt_free(&ck);
        return rc ? cli_fail("export", &e) : 0;
    }
    /* the runtime decides what is int8 (a layer with "<layer>.weight_q"): such a
     * model goes as what the runtime runs (QDQ), any other as its layers */
    mtc_rt *rt = NULL;
    mtc_model m;
    int int8 = 0, ntasks = 0;
    if (!(rc = mtc_rt_from_ckpt(&ck, pos[0], &rt, &e))) {
        int8 = mtc_rt_nquantized(rt) > 0;
        ntasks = mtc_rt_model(rt)->spec.ntasks;
        if (int8) {
            rc = mtc_onnx_export_rt(rt, opset, out, &e);
        } else if (!(rc = mtc_model_from_ckpt_path(&ck, pos[0], &m, &e))) {
            rc = mtc_onnx_export(&m, opset, out, &e);
            mtc_model_free(&m);
        }
    }
    mtc_rt_free(rt);
    mtc_ckpt_free(&ck);
    if (!rc) {
        if (c.json) {
            mtc_jw j;
            mtc_jw_init(&j);
            mtc_jw_obj(&j);
            mtc_jw_kstr(&j, "model", pos[0]);
            mtc_jw_kstr(&j, "onnx", out);
            mtc_jw_kint(&j, "opset", opset);
            mtc_jw_kint(&j, "outputs", ntasks);
            mtc_jw_key(&j, "int8");
            mtc_jw_bool(&j, int8);
            mtc_jw_obj_end(&j);
            printf("%s\n", j.buf);
            mtc_jw_free(&j);
        } else {
            printf("wrote %s: %s as ONNX opset %d, %d task output(s)%s\n", out, pos[0], opset, ntasks,
                   int8 ? ", int8 layers as QDQ" : "");
        }
    }
    return rc ? cli_fail("export", &e) : 0;
}
