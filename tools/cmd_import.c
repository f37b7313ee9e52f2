/*
 * cmd_import.c — `mtc import MODEL.onnx -o teacher.mtc [--tasks ...]`: a
 * model trained elsewhere becomes an ordinary checkpoint (spec, weights,
 * lineage naming the .onnx and its hash), so label, distill, prune,
 * quantize, verify, eval, predict and inspect work on it unchanged.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <stdlib.h>
#include <string.h>

/* The checkpoint's metadata: lineage (the source file and its hash) and
 * what the import did (note and input_scale omitted when NULL). */
static void import_meta(mtc_jw *w, const char *path, const char *format, const char *note, const char *scale)
{
    char hash[17];
    util_file_hash(path, hash);
    mtc_jw_init(w);
    mtc_jw_obj(w);
    mtc_jw_kstr(w, "producer", "mtc import");
    mtc_jw_kstr(w, "version", MTC_VERSION);
    mtc_jw_key(w, "parent");
    mtc_jw_obj(w);
    mtc_jw_kstr(w, "path", path);
    mtc_jw_kstr(w, "hash", hash);
    mtc_jw_obj_end(w);
    mtc_jw_key(w, "import");
    mtc_jw_obj(w);
    mtc_jw_kstr(w, "format", format);
    if (note) mtc_jw_kstr(w, "note", note);
    if (scale) mtc_jw_kstr(w, "input_scale", scale);
    mtc_jw_obj_end(w);
    mtc_jw_obj_end(w);
}

/* The weights of a safetensors file with a spec, checked by loading them
 * in the runtime, as a checkpoint naming the file as its parent. */
static int import_safetensors(const char *path, const char *spec, const char *out, const cli_common *c)
{
    mtc_err e = {0};
    mtc_ckpt ck;
    char *text = NULL;
    size_t n;
    int rc = mtc_safetensors_read(path, &ck, &e);
    if (rc) return cli_fail("import", &e);
    if (spec && !(rc = mtc_read_file(spec, &text, &n, 1 << 20, &e))) rc = mtc_ckpt_set_text(&ck.spec, text);
    free(text);
    if (!rc && !ck.spec) rc = mtc_err_set(&e, MTC_EINPUT, "%s: no spec in its metadata: pass --spec S.cfg", path);
    mtc_rt *rt = NULL;
    if (!rc) rc = mtc_rt_from_ckpt(&ck, path, &rt, &e); /* every tensor the model needs, by name and shape */
    mtc_rt_free(rt);
    if (!rc) {
        mtc_jw w;
        import_meta(&w, path, "safetensors", NULL, NULL);
        rc = w.oom ? mtc_err_set(&e, MTC_ENOMEM, "out of memory") : mtc_ckpt_set_text(&ck.meta, w.buf);
        if (!rc) rc = mtc_ckpt_save(out, &ck, &e);
        if (!rc && c->json) {
            mtc_jw j;
            mtc_jw_init(&j);
            mtc_jw_obj(&j);
            mtc_jw_kstr(&j, "model", out);
            mtc_jw_kint(&j, "tensors", ck.ntensors);
            mtc_jw_obj_end(&j);
            printf("%s\n", j.buf);
            mtc_jw_free(&j);
        } else if (!rc) {
            printf("wrote %s: %d tensors from the safetensors file\n", out, ck.ntensors);
        }
        mtc_jw_free(&w);
    }
    mtc_ckpt_free(&ck);
    return rc ? cli_fail("import", &e) : 0;
}

int cmd_import(int argc, char **argv)
{
    const char *out = NULL, *tasks = NULL, *scale = "1/255", *spec = NULL;
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output checkpoint (-o; required)", 1, 0},
        {"tasks", OPT_STR, &tasks, "NAME:KIND,... (cls, bin or reg) for graph outputs whose kind should not be "
                                   "inferred (Softmax/LogSoftmax: cls, Sigmoid: bin, none: cls when 2+ values, else reg)", 1, 0},
        {"spec", OPT_STR, &spec, "safetensors: the model spec the weights are for (default: the file's "
                                 "__metadata__ spec)", 1, 0},
        {"input-scale", OPT_STR, &scale, "the model was trained on inputs pixel * S (default {default}, what mtc feeds; "
                                         "e.g. 1 for raw 0-255 pixels): folded into the first layer", 1, 0},
        CLI_COMMON(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("import", "MODEL.onnx|W.safetensors -o model.mtc [--tasks NAME:KIND,...] [--spec S.cfg]",
                       "Turn an ONNX model (e.g. a PyTorch teacher exported with torch.onnx.export) into an mtc\n"
                       "checkpoint. Each graph output becomes a task named after it; a trailing Softmax, LogSoftmax\n"
                       "or Sigmoid is stripped, so the checkpoint holds logits as every mtc model does. The graph must\n"
                       "be one input, a shared trunk (or MMoE experts, as mtc export writes them) and one chain per\n"
                       "output, of Gemm, MatMul(+Add), Conv, MaxPool, AveragePool, GlobalAveragePool, ReduceMean,\n"
                       "BatchNormalization, LayerNormalization, Relu, LeakyRelu, Tanh, Sigmoid, Gelu (and the Erf /\n"
                       "Tanh chains exporters write for it), Flatten, Reshape to (batch, -1), Pad, Identity, Dropout\n"
                       "and Constant nodes (docs/formats.md has the table); anything else is exit 2 naming the node\n"
                       "and nothing is written. Inputs are fed as the model was trained (mtc feeds images in [0, 1]).\n"
                       "A .safetensors file (mtc export --format safetensors, or another tool's with mtc's tensor\n"
                       "names) is read back by name with the spec from --spec or from its metadata.",
                       opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1 || !out) {
        fprintf(stderr, "mtc import: need MODEL.onnx and -o (see mtc import --help)\n");
        return 2;
    }
    cli_apply_common(&c);
    mtc_err e = {0};
    size_t pl = strlen(pos[0]);
    if (pl > 12 && !strcmp(pos[0] + pl - 12, ".safetensors")) return import_safetensors(pos[0], spec, out, &c);
    mtc_model m;
    char note[2048];
    char *end;
    double num = strtod(scale, &end), den = 1.0;
    if (end != scale && *end == '/') {
        const char *d = end + 1;
        den = strtod(d, &end);
        if (end == d) den = 0;
    }
    if (end == scale || *end || !(den > 0))
        return fprintf(stderr, "mtc import: --input-scale %s: expected a number or a fraction like 1/255\n", scale), 2;
    if ((rc = mtc_onnx_import(pos[0], tasks, &m, note, sizeof note, &e))) return cli_fail("import", &e);
    if ((rc = mtc_model_input_scale(&m, num / den, &e))) {
        mtc_model_free(&m);
        return cli_fail("import", &e);
    }
    mtc_jw w;
    import_meta(&w, pos[0], "onnx", note, scale);
    rc = w.oom ? mtc_err_set(&e, MTC_ENOMEM, "out of memory") : mtc_model_save(&m, out, w.buf, &e);
    if (!rc) {
        if (c.json) {
            mtc_jw j;
            mtc_jw_init(&j);
            mtc_jw_obj(&j);
            mtc_jw_kstr(&j, "model", out);
            mtc_jw_kstr(&j, "source", pos[0]);
            mtc_jw_kint(&j, "parameters", m.nparams);
            mtc_jw_kstr(&j, "tasks", note);
            mtc_jw_kstr(&j, "spec", m.spec_text);
            mtc_jw_obj_end(&j);
            printf("%s\n", j.buf);
            mtc_jw_free(&j);
        } else {
            printf("wrote %s: %lld parameters from %s; %s\n", out, (long long)m.nparams, pos[0], note);
        }
    }
    mtc_jw_free(&w);
    mtc_model_free(&m);
    return rc ? cli_fail("import", &e) : 0;
}
