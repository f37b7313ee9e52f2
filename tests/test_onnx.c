/*
 * test_onnx.c — mtc import: a multi-task CNN exported by PyTorch
 * (tests/fixtures/make_onnx.py; conv-BN folded by the exporter, relu,
 * max and average pools with the exporter's Pad, flatten, dense trunk;
 * three heads, one ending in Softmax) gives, through mtc's runtime, the
 * outputs PyTorch computed; the checkpoint names its source and is usable
 * by the other commands; what mtc cannot represent is exit 2 naming the
 * node, and nothing is written. mtc export writes it back: ONNX Runtime
 * (tests/ort_run.js, npm onnxruntime-node) gives mtc's outputs on it, and
 * export -> import -> export gives the same bytes.
 *
 * Runs from the repository root (as `make test` does).
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FIX "tests/fixtures/"

/* rows of n floats from a CSV with a header line */
static int read_csv(const char *path, float *v, int rows, int n)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int c;
    while ((c = fgetc(f)) != '\n' && c != EOF) {}
    for (int i = 0; i < rows * n; i++)
        if (fscanf(f, " %f ,", &v[i]) != 1) { fclose(f); return -1; }
    fclose(f);
    return 0;
}

static void test_import_matches_pytorch_outputs(void **st)
{
    (void)st;
    mtc_model m;
    mtc_err e = {0};
    char note[1024];
    if (mtc_onnx_import(FIX "mt_cnn.onnx", NULL, &m, note, sizeof note, &e)) fail_msg("import: %s", e.msg);
    assert_int_equal(m.spec.ntasks, 3);
    assert_string_equal(m.spec.tasks[0].name, "fashion");
    assert_int_equal(m.spec.tasks[0].kind, MTC_TASK_CLS);
    assert_int_equal(m.spec.tasks[0].dim, 10);
    assert_int_equal(m.spec.tasks[1].kind, MTC_TASK_CLS); /* 4 logits, no softmax: cls */
    assert_int_equal(m.spec.tasks[2].kind, MTC_TASK_REG); /* 1 value */
    assert_non_null(strstr(note, "Softmax stripped"));
    float *x = malloc(5 * 784 * sizeof(float)), want[5 * 15];
    assert_int_equal(read_csv(FIX "mt_cnn_in.csv", x, 5, 784), 0);
    assert_int_equal(read_csv(FIX "mt_cnn_out.csv", want, 5, 15), 0);
    mtc_rt *rt;
    assert_int_equal(mtc_rt_from_model(&m, "imported", &rt, &e), 0);
    float f[50], s[20], l[5];
    assert_int_equal(mtc_rt_run(rt, x, 5, (float *[]){f, s, l}, &e), 0);
    /* float32 sums of up to 392 products of terms ~1 in another order than
     * PyTorch's: within 2e-5 of the larger of 1 and the value */
    for (int r = 0; r < 5; r++)
        for (int k = 0; k < 15; k++) {
            float got = k < 10 ? f[r * 10 + k] : k < 14 ? s[r * 4 + k - 10] : l[r];
            if (tu_relerr(got, want[r * 15 + k], 1.0) > 2e-5)
                fail_msg("sample %d output %d: mtc %.9g, PyTorch %.9g", r, k, got, want[r * 15 + k]);
        }
    mtc_rt_free(rt);
    mtc_model_free(&m);
    free(x);
}

/* Fixture NAME.onnx imported (with --tasks tasks) gives, through mtc's
 * runtime, NAME_out.csv's values on NAME_in.csv's rows (every task's
 * outputs side by side) within 2e-5 of max(1, |v|). */
static void check_fixture(const char *name, const char *tasks, int rows, int nin, int nout)
{
    char path[256], in[256], outp[256];
    snprintf(path, sizeof path, FIX "%s.onnx", name);
    snprintf(in, sizeof in, FIX "%s_in.csv", name);
    snprintf(outp, sizeof outp, FIX "%s_out.csv", name);
    mtc_model m;
    mtc_err e = {0};
    if (mtc_onnx_import(path, tasks, &m, NULL, 0, &e)) fail_msg("import %s: %s", name, e.msg);
    float *x = malloc((size_t)rows * nin * sizeof *x), *want = malloc((size_t)rows * nout * sizeof *want);
    float *got = malloc((size_t)rows * nout * sizeof *got), *outs[MTC_MAX_TASKS];
    assert_int_equal(read_csv(in, x, rows, nin), 0);
    assert_int_equal(read_csv(outp, want, rows, nout), 0);
    int off = 0;
    for (int t = 0; t < m.spec.ntasks; t++) outs[t] = got + (size_t)rows * off, off += m.spec.tasks[t].dim;
    assert_int_equal(off, nout);
    mtc_rt *rt;
    assert_int_equal(mtc_rt_from_model(&m, name, &rt, &e), 0);
    assert_int_equal(mtc_rt_run(rt, x, rows, outs, &e), 0);
    for (int r = 0; r < rows; r++)
        for (int t = 0, k = 0; t < m.spec.ntasks; t++)
            for (int d = 0; d < m.spec.tasks[t].dim; d++, k++) {
                float v = outs[t][r * m.spec.tasks[t].dim + d];
                if (tu_relerr(v, want[r * nout + k], 1.0) > 2e-5)
                    fail_msg("%s sample %d output %d: mtc %.9g, PyTorch %.9g", name, r, k, v, want[r * nout + k]);
            }
    mtc_rt_free(rt);
    mtc_model_free(&m);
    free(x); free(want); free(got);
}

/* A PyTorch ResNet basic block (x + y, convs without bias, batchnorm) and a
 * depthwise conv (groups = channels) import as [residual] ... [add] and
 * [conv] groups, with PyTorch's outputs. */
static void test_import_resnet_block_and_depthwise(void **st)
{
    (void)st;
    check_fixture("resnet_dw", NULL, 3, 64, 4);
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(mtc_onnx_import(FIX "resnet_dw.onnx", NULL, &m, NULL, 0, &e), 0);
    int res = 0, add = 0, dw = 0;
    for (int i = 0; i < m.trunk[0].n; i++) {
        const mtc_layer *L = &m.trunk[0].layers[i];
        res += L->spec.type == MTC_L_RESIDUAL;
        add += L->spec.type == MTC_L_ADD && L->spec.act == MTC_ACT_RELU;
        dw += L->spec.type == MTC_L_CONV && L->cs.G == 8;
    }
    assert_true(res == 1 && add == 1 && dw == 1);
    mtc_model_free(&m);
}

/* PyTorch's nn.GELU() in both forms (opset 13: the Erf chain and the tanh
 * chain, folded by evaluating them), GlobalAveragePool, x.mean((2, 3))
 * (ReduceMean) and LayerNormalization (opset 17) import as gelu_erf, gelu,
 * a map-sized avgpool and layernorm, with PyTorch's outputs. */
static void test_import_gelu_global_pool_layernorm(void **st)
{
    (void)st;
    check_fixture("gelu_gap", NULL, 4, 100, 3);
    check_fixture("ln_mean", "b:reg", 3, 72, 5);
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(mtc_onnx_import(FIX "gelu_gap.onnx", NULL, &m, NULL, 0, &e), 0);
    assert_int_equal(m.trunk[0].n, 4); /* conv gelu_erf, conv gelu, avgpool, flatten */
    assert_int_equal(m.trunk[0].layers[0].spec.act, MTC_ACT_GELU_ERF);
    assert_int_equal(m.trunk[0].layers[1].spec.act, MTC_ACT_GELU);
    assert_int_equal(m.trunk[0].layers[2].spec.type, MTC_L_AVGPOOL);
    assert_int_equal(m.trunk[0].layers[2].spec.size, 8);
    mtc_model_free(&m);
    assert_int_equal(mtc_onnx_import(FIX "ln_mean.onnx", "b:reg", &m, NULL, 0, &e), 0);
    int ln = 0;
    for (int i = 0; i < m.trunk[0].n; i++) ln += m.trunk[0].layers[i].spec.type == MTC_L_LAYERNORM;
    assert_int_equal(ln, 1);
    mtc_model_free(&m);
}

/* An MLP whose input is flattened by x.view(x.size(0), -1): the exporter's
 * Shape -> Gather -> Unsqueeze -> Concat chain is folded; LogSoftmax and
 * Sigmoid heads stripped (cls, bin), a tanh hidden layer in a head, and a
 * 2-output head made reg by --tasks. */
static void test_import_folds_the_view_chain_and_kinds(void **st)
{
    (void)st;
    mtc_model m;
    mtc_err e = {0};
    char note[1024];
    if (mtc_onnx_import(FIX "mlp.onnx", "size:reg", &m, note, sizeof note, &e)) fail_msg("import: %s", e.msg);
    assert_int_equal(m.spec.ntasks, 3);
    assert_int_equal(m.spec.tasks[0].kind, MTC_TASK_CLS);
    assert_int_equal(m.spec.tasks[1].kind, MTC_TASK_BIN);
    assert_int_equal(m.spec.tasks[2].kind, MTC_TASK_REG);
    assert_non_null(strstr(note, "LogSoftmax stripped"));
    assert_non_null(strstr(note, "Sigmoid stripped"));
    float x[4 * 64], want[4 * 6], k[12], fl[4], sz[8];
    assert_int_equal(read_csv(FIX "mlp_in.csv", x, 4, 64), 0);
    assert_int_equal(read_csv(FIX "mlp_out.csv", want, 4, 6), 0);
    mtc_rt *rt;
    assert_int_equal(mtc_rt_from_model(&m, "mlp", &rt, &e), 0);
    assert_int_equal(mtc_rt_run(rt, x, 4, (float *[]){k, fl, sz}, &e), 0);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 6; c++) {
            float got = c < 3 ? k[r * 3 + c] : c == 3 ? fl[r] : sz[r * 2 + c - 4];
            if (tu_relerr(got, want[r * 6 + c], 1.0) > 2e-5)
                fail_msg("sample %d output %d: mtc %.9g, PyTorch %.9g", r, c, got, want[r * 6 + c]);
        }
    mtc_rt_free(rt);
    mtc_model_free(&m);
}

static void test_cli_import_writes_a_checkpoint_the_other_commands_use(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[4096];
    snprintf(args, sizeof args, "import " FIX "mt_cnn.onnx -o %s/t.mtc --json", dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("import: %s", err);
    assert_non_null(strstr(out, "\"parameters\":"));
    free(out); free(err);
    snprintf(args, sizeof args, "inspect %s/t.mtc --json", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    uint64_t h;
    mtc_err e = {0};
    assert_int_equal(mtc_file_hash(FIX "mt_cnn.onnx", &h, &e), 0);
    char hash[40];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)h);
    assert_non_null(strstr(out, "mtc import"));
    assert_non_null(strstr(out, hash)); /* lineage: the .onnx's hash */
    free(out); free(err);
    snprintf(args, sizeof args, "predict %s/t.mtc --input " FIX "mt_cnn_in.csv", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    assert_non_null(strstr(out, "4:  fashion="));
    free(err);
    /* the .onnx itself, imported on the fly, predicts the same */
    char *direct = NULL;
    snprintf(args, sizeof args, "predict " FIX "mt_cnn.onnx --input " FIX "mt_cnn_in.csv");
    assert_int_equal(tu_run_mtc(dir, args, &direct, &err), 0);
    assert_string_equal(direct, out);
    free(direct);
    free(out); free(err);
    /* --tasks overrides an inferred kind; a cls task needs 2+ outputs */
    snprintf(args, sizeof args, "import " FIX "mt_cnn.onnx -o %s/r.mtc --tasks super:reg --json", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    assert_non_null(strstr(out, "super: reg, 4 outputs"));
    free(out); free(err);
    snprintf(args, sizeof args, "import " FIX "mt_cnn.onnx -o %s/r.mtc --tasks level:cls", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "'level' has 1 value"));
    free(out); free(err);
    /* --input-scale: the default (1/255, what mtc feeds) changes nothing; 1
     * (a model trained on raw pixels) scales the first conv's weights by 255 */
    snprintf(args, sizeof args, "import " FIX "mt_cnn.onnx -o %s/s1.mtc --input-scale 1/255", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    free(out); free(err);
    snprintf(args, sizeof args, "import " FIX "mt_cnn.onnx -o %s/s255.mtc --input-scale 1", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    free(out); free(err);
    mtc_model a, b;
    char *pa = tu_path(dir, "t.mtc"), *pb = tu_path(dir, "s1.mtc"), *pc = tu_path(dir, "s255.mtc");
    assert_int_equal(mtc_model_load(pb, &a, NULL, &e), 0);
    assert_int_equal(mtc_model_load(pc, &b, NULL, &e), 0);
    const mtc_layer *L = &a.trunk[0].layers[0];
    for (int64_t i = 0; i < a.nparams; i++) {
        int first = i >= L->w_off && i < L->w_off + L->nw;
        float want = first ? (float)(a.params[i] * 255.0) : a.params[i];
        if (b.params[i] != want) fail_msg("parameter %lld: %g, want %g", (long long)i, b.params[i], want);
    }
    mtc_model_free(&a);
    mtc_model_free(&b);
    free(pa); free(pb); free(pc);
    snprintf(args, sizeof args, "import " FIX "mt_cnn.onnx -o %s/r.mtc --input-scale 1/0", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "--input-scale"));
    free(out); free(err);
    snprintf(args, sizeof args, "import " FIX "mt_cnn.onnx -o %s/r.mtc --tasks nope:cls", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "nope"));
    free(out); free(err);
    tu_rmdir(dir);
    free(dir);
}

static void test_cli_import_bad_input_exits_2_and_writes_nothing(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[4096];
    char *keep = tu_path(dir, "keep.mtc");
    assert_int_equal(tu_write(keep, "old bytes", 9), 0);
    /* an operator mtc has not: the node and its op named, the old file kept */
    snprintf(args, sizeof args, "import " FIX "unsupported.onnx -o %s", keep);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "unsupported.onnx"));
    assert_non_null(strstr(err, "(Cos)"));
    assert_non_null(strchr(err, '\n') == err + strlen(err) - 1 ? err : NULL); /* one line */
    free(out); free(err);
    size_t n;
    unsigned char *b = tu_read(keep, &n);
    assert_true(b && n == 9 && !memcmp(b, "old bytes", 9));
    free(b);
    /* a truncated model, bytes that are not protobuf, a missing file */
    unsigned char *onnx = tu_read(FIX "mt_cnn.onnx", &n);
    assert_non_null(onnx);
    char *cut = tu_path(dir, "cut.onnx"), *junk = tu_path(dir, "junk.onnx");
    assert_int_equal(tu_write(cut, onnx, n / 3), 0);
    assert_int_equal(tu_write(junk, "\xff\xff\xff\xff not protobuf", 18), 0);
    /* ... and fuzz finds: an Add with one input (read past its inputs) */
    const char *bad[4] = {cut, junk, "/nonexistent/m.onnx", FIX "fuzz_add_one_input.onnx"};
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "import %s -o %s/x.mtc", bad[i], dir);
        assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
        if (!strstr(err, bad[i])) fail_msg("the error does not name %s: %s", bad[i], err);
        free(out); free(err);
        struct stat sb;
        char *x = tu_path(dir, "x.mtc");
        assert_true(stat(x, &sb) != 0);
        free(x);
    }
    free(onnx); free(cut); free(junk); free(keep);
    tu_rmdir(dir);
    free(dir);
}

/* mtc's runtime outputs of checkpoint path on the fixture's 5 inputs:
 * out[r·15 + k] in the fixture's column order. */
static void mtc_outputs(const char *path, const float *x, float *out)
{
    mtc_rt *rt;
    mtc_err e = {0};
    if (mtc_rt_load(path, &rt, &e)) fail_msg("%s", e.msg);
    float f[50], s[20], l[5];
    assert_int_equal(mtc_rt_run(rt, x, 5, (float *[]){f, s, l}, &e), 0);
    for (int r = 0; r < 5; r++)
        for (int k = 0; k < 15; k++) out[r * 15 + k] = k < 10 ? f[r * 10 + k] : k < 14 ? s[r * 4 + k - 10] : l[r];
    mtc_rt_free(rt);
}

static void test_export_runs_in_onnx_runtime_and_round_trips(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[4096];
    snprintf(args, sizeof args, "import " FIX "mt_cnn.onnx -o %s/a.mtc", dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("import: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "export %s/a.mtc -o %s/a.onnx", dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("export: %s", err);
    free(out); free(err);
    /* ONNX Runtime on the export against mtc's runtime on the checkpoint:
     * the same sums in other orders, within 1e-5 of max(|v|, 0.01) */
    float *x = malloc(5 * 784 * sizeof(float)), want[75], got[75];
    assert_int_equal(read_csv(FIX "mt_cnn_in.csv", x, 5, 784), 0);
    char *a = tu_path(dir, "a.mtc");
    mtc_outputs(a, x, want);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "node tests/ort_run.js %s/a.onnx " FIX "mt_cnn_in.csv 1x28x28 > %s/ort.csv 2>%s/ort.err",
             dir, dir, dir);
    if (system(cmd) != 0) {
        char *p = tu_path(dir, "ort.err"), *msg = (char *)tu_read(p, NULL);
        fail_msg("ONNX Runtime did not run the export: %s", msg ? msg : "?");
    }
    char *ortp = tu_path(dir, "ort.csv");
    FILE *f = fopen(ortp, "r");
    assert_non_null(f);
    for (int i = 0; i < 75; i++) assert_int_equal(fscanf(f, " %f ,", &got[i]), 1);
    fclose(f);
    for (int i = 0; i < 75; i++)
        if (tu_relerr(got[i], want[i], 0.01) > 1e-5) fail_msg("value %d: ORT %.9g, mtc %.9g", i, got[i], want[i]);
    /* export -> import -> export: the same bytes */
    snprintf(args, sizeof args, "import %s/a.onnx -o %s/b.mtc", dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("re-import: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "export %s/b.mtc -o %s/b.onnx", dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("re-export: %s", err);
    free(out); free(err);
    size_t n1, n2;
    char *p1 = tu_path(dir, "a.onnx"), *p2 = tu_path(dir, "b.onnx");
    unsigned char *b1 = tu_read(p1, &n1), *b2 = tu_read(p2, &n2);
    assert_true(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1));
    free(p1); free(p2); free(b1); free(b2); free(ortp); free(a); free(x);
    tu_rmdir(dir);
    free(dir);
}

/* ---- export of every layer kind, through ONNX Runtime --------------------- */

/* The runtime's outputs of checkpoint mp on rows x (tasks side by side per
 * row) against ONNX Runtime's on the export op (tests/ort_run.js, inputs
 * from csv): the same sums in other orders, and ORT's own erf / tanh /
 * exp, within 1e-5 of max(|v|, 0.01). */
static void ort_agrees(const char *dir, const char *mp, const char *op, const char *csv, const char *shape,
                       const float *x, int rows)
{
    mtc_rt *rt;
    mtc_err e = {0};
    if (mtc_rt_load(mp, &rt, &e)) fail_msg("%s", e.msg);
    mtc_rt_set_sparse(rt, 0);
    const mtc_spec *s = &mtc_rt_model(rt)->spec;
    int nout = 0;
    for (int t = 0; t < s->ntasks; t++) nout += s->tasks[t].dim;
    float *want = malloc((size_t)rows * nout * sizeof *want), *outs[MTC_MAX_TASKS];
    for (int t = 0, off = 0; t < s->ntasks; off += s->tasks[t].dim, t++) outs[t] = want + (size_t)rows * off;
    assert_int_equal(mtc_rt_run(rt, x, rows, outs, &e), 0);
    char cmd[4096], *res = tu_path(dir, "ort.csv");
    snprintf(cmd, sizeof cmd, "node tests/ort_run.js %s %s %s > %s 2>%s/ort.err", op, csv, shape, res, dir);
    if (system(cmd) != 0) {
        char *ep = tu_path(dir, "ort.err"), *msg = (char *)tu_read(ep, NULL);
        fail_msg("ONNX Runtime did not run %s: %s", op, msg ? msg : "?");
    }
    FILE *f = fopen(res, "r");
    assert_non_null(f);
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < s->ntasks; t++)
            for (int d = 0; d < s->tasks[t].dim; d++) {
                float got, w = outs[t][r * s->tasks[t].dim + d];
                assert_int_equal(fscanf(f, " %f ,", &got), 1);
                if (tu_relerr(got, w, 0.01) > 1e-5)
                    fail_msg("%s: row %d task %s[%d]: ORT %.9g, mtc %.9g", op, r, s->tasks[t].name, d, got, w);
            }
    fclose(f);
    mtc_rt_free(rt);
    free(want); free(res);
}

/* export -> import -> export at the same opset: the same bytes */
static void same_bytes_after_import(const char *dir, const char *op, int opset)
{
    char *out = NULL, *err = NULL, args[2048];
    snprintf(args, sizeof args, "import %s -o %s/rt.mtc", op, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("import of %s: %s", op, err);
    free(out); free(err);
    snprintf(args, sizeof args, "export %s/rt.mtc --opset %d -o %s/rt.onnx", dir, opset, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("re-export: %s", err);
    free(out); free(err);
    char *p2 = tu_path(dir, "rt.onnx");
    size_t n1, n2;
    unsigned char *b1 = tu_read(op, &n1), *b2 = tu_read(p2, &n2);
    if (!b1 || !b2 || n1 != n2 || memcmp(b1, b2, n1)) fail_msg("%s: export -> import -> export changed the bytes (%zu, %zu)", op, n1, n2);
    free(b1); free(b2); free(p2);
}

/* Rows of uniform values in [lo, hi) as a CSV with a header; x gets what
 * the CSV holds (printed with 9 digits and parsed back). */
static void write_rows(const char *path, float *x, int rows, int n, uint64_t seed, float lo, float hi)
{
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int k = 0; k < n; k++) fprintf(f, "%sx%d", k ? "," : "", k);
    fprintf(f, "\n");
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < n; k++) fprintf(f, "%.9g%s", lo + (hi - lo) * mtc_rng_uniform(&r), k + 1 < n ? "," : "\n");
    fclose(f);
    assert_int_equal(read_csv(path, x, rows, n), 0);
}

/* Every layer kind mtc exports, at opsets 13, 17 and 20 (layernorm and gelu
 * as op chains below 17 / 20, single ops from there): a CNN with gelu,
 * gelu_erf, layernorm, a map-sized avgpool and a reg head whose target
 * standardisation is folded; an MMoE on tabular inputs (experts with
 * layernorm and gelu, a reg task) and one on images (the gates read the
 * flattened image); depthwise-separable and grouped convs (the group
 * attribute). ONNX Runtime gives mtc's outputs on each; what mtc
 * import reads back (all but the pre-17 layernorm chain) re-exports to the
 * same bytes, MMoE included. */
static void test_export_every_layer_kind_at_three_opsets(void **st)
{
    (void)st;
    static const struct { const char *name, *spec, *shape; int n; float lo, hi; } M[] = {
        {"cnn",
         "[input] shape=1x8x8\n[conv] filters=4 size=3 pad=1 act=gelu_erf\n[layernorm]\n"
         "[conv] filters=6 size=3 act=gelu\n[avgpool] size=6 stride=6\n[dense] units=8 act=gelu_erf\n"
         "[task a] kind=cls classes=3\n[task r] kind=reg outputs=2\n[head r]\n[dense] units=4 act=tanh\n",
         "1x8x8", 64, 0.0f, 1.0f},
        {"mmoe",
         "[input] shape=6\n[mmoe] experts=3\n[dense] units=8 act=relu\n[layernorm]\n[dense] units=5 act=gelu\n"
         "[task c] kind=cls classes=3\n[task y] kind=reg outputs=1\n[head y]\n[dense] units=4 act=relu\n",
         "", 6, -2.0f, 2.0f},
        {"mmoe_img",
         "[input] shape=1x6x6\n[mmoe] experts=2\n[conv] filters=3 size=3 act=relu\n[flatten]\n"
         "[dense] units=6 act=sigmoid\n[task p] kind=bin outputs=1\n[task q] kind=cls classes=4\n",
         "1x6x6", 36, 0.0f, 1.0f},
        {"depthwise", /* depthwise-separable blocks, a grouped conv, batchnorm after the depthwise, [gap] */
         "[input] shape=2x8x8\n[conv] filters=8 size=3 pad=1 act=relu\n[conv] filters=8 size=3 pad=1 groups=8\n"
         "[batchnorm]\n[act] fn=relu\n[conv] filters=12 size=1 act=relu\n[conv] filters=12 size=3 stride=2 groups=4 "
         "act=relu\n[gap]\n[dense] units=6 act=relu\n[task a] kind=cls classes=3\n",
         "2x8x8", 128, 0.0f, 1.0f},
        {"residual", /* basic blocks, nested, one in a head, a gelu after an add */
         "[input] shape=2x6x6\n[conv] filters=4 size=3 pad=1\n[batchnorm]\n[act] fn=relu\n[residual]\n"
         "[conv] filters=4 size=3 pad=1 act=relu\n[residual]\n[conv] filters=4 size=1\n[batchnorm]\n[add] act=gelu\n"
         "[add] act=relu\n[gap]\n[dense] units=6 act=relu\n[task a] kind=cls classes=3\n[task r] kind=reg outputs=1\n"
         "[head r]\n[residual]\n[dense] units=6 act=tanh\n[add]\n",
         "2x6x6", 72, 0.0f, 1.0f},
    };
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[2048];
    for (size_t i = 0; i < sizeof M / sizeof *M; i++) {
        mtc_model m;
        mtc_err e = {0};
        if (tu_build_model(M[i].spec, &m, 3 + i, &e)) fail_msg("%s: %s", M[i].name, e.msg);
        for (int t = 0; t < m.spec.ntasks; t++) /* a standardised reg target: folded into the output layer */
            for (int d = 0; d < m.spec.tasks[t].dim && m.spec.tasks[t].kind == MTC_TASK_REG; d++)
                m.reg_std[t][d] = 2.5f + d, m.reg_mean[t][d] = -0.75f;
        char mp[600], csv[600], op[600];
        snprintf(mp, sizeof mp, "%s/%s.mtc", dir, M[i].name);
        snprintf(csv, sizeof csv, "%s/%s.csv", dir, M[i].name);
        assert_int_equal(mtc_model_save(&m, mp, "{}", &e), 0);
        mtc_model_free(&m);
        float *x = malloc(16 * (size_t)M[i].n * sizeof *x);
        write_rows(csv, x, 16, M[i].n, 11 + i, M[i].lo, M[i].hi);
        static const int opsets[] = {13, 17, 20};
        for (int k = 0; k < 3; k++) {
            snprintf(op, sizeof op, "%s/%s.%d.onnx", dir, M[i].name, opsets[k]);
            snprintf(args, sizeof args, "export %s --opset %d -o %s", mp, opsets[k], op);
            if (tu_run_mtc(dir, args, &out, &err)) fail_msg("export %s: %s", op, err);
            free(out); free(err);
            ort_agrees(dir, mp, op, csv, M[i].shape, x, 16);
            if (opsets[k] >= 17 || !strstr(M[i].spec, "layernorm")) same_bytes_after_import(dir, op, opsets[k]);
        }
        free(x);
    }
    tu_rmdir(dir);
    free(dir);
}

/* Pruned students: unstructured (zeros in dense weights, the runtime's
 * sparse kernels off for the comparison) and structured (a smaller model)
 * from `mtc prune`, a reg task among the heads: ONNX Runtime gives mtc's
 * outputs, and export -> import -> export keeps the bytes. */
static void test_pruned_models_export_and_round_trip(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[4096];
    char *csv = tu_path(dir, "d.csv"), *sp = tu_path(dir, "m.cfg"), *in = tu_path(dir, "in.csv");
    FILE *f = fopen(csv, "w"); /* fine = argmax x, level = 3 + mean x */
    assert_non_null(f);
    fprintf(f, "x0,x1,x2,x3,fine,level\n");
    mtc_rng r;
    mtc_rng_seed(&r, 5);
    for (int i = 0; i < 600; i++) {
        float v[4], sum = 0;
        int a = 0;
        for (int k = 0; k < 4; k++) v[k] = 2.0f * mtc_rng_uniform(&r) - 1.0f, sum += v[k], a = v[k] > v[a] ? k : a;
        fprintf(f, "%.6f,%.6f,%.6f,%.6f,%d,%.6f\n", v[0], v[1], v[2], v[3], a, 3.0f + sum / 4);
    }
    fclose(f);
    const char *spec = "[input] shape=4 columns=x0,x1,x2,x3\n[dense] units=32 act=relu\n[dense] units=16 act=relu\n"
                       "[task fine] kind=cls classes=4\n[task level] kind=reg outputs=1\n[head level]\n"
                       "[dense] units=8 act=tanh\n";
    assert_int_equal(tu_write(sp, spec, strlen(spec)), 0);
    snprintf(args, sizeof args, "train --spec %s --data csv:%s --epochs 3 --quiet -o %s/m.mtc", sp, csv, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("train: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "prune %s/m.mtc --sparsity 0.7 --no-test --quiet -o %s/u.mtc", dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("prune: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "prune %s/m.mtc --structured neurons --keep 0.5 --no-test --quiet -o %s/s.mtc", dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("prune --structured: %s", err);
    free(out); free(err);
    float x[24 * 4];
    write_rows(in, x, 24, 4, 9, -2.0f, 2.0f);
    const char *name[2] = {"u", "s"};
    for (int i = 0; i < 2; i++) {
        char mp[600], op[600];
        snprintf(mp, sizeof mp, "%s/%s.mtc", dir, name[i]);
        snprintf(op, sizeof op, "%s/%s.onnx", dir, name[i]);
        snprintf(args, sizeof args, "export %s -o %s", mp, op);
        if (tu_run_mtc(dir, args, &out, &err)) fail_msg("export %s: %s", mp, err);
        free(out); free(err);
        ort_agrees(dir, mp, op, in, "", x, 24);
        same_bytes_after_import(dir, op, 13);
    }
    /* the structured student is smaller: its first layer has 16 units */
    mtc_model m;
    mtc_err e = {0};
    char *s2 = tu_path(dir, "s.mtc");
    assert_int_equal(mtc_model_load(s2, &m, NULL, &e), 0);
    assert_int_equal(m.trunk[0].layers[0].spec.units, 16);
    mtc_model_free(&m);
    free(s2); free(csv); free(sp); free(in);
    tu_rmdir(dir);
    free(dir);
}

/* An int8 checkpoint exports as QDQ with mtc's own scales and zero points:
 * ONNX Runtime's outputs follow mtc's int8 runtime (both requantize; where
 * their roundings of an activation differ by one step the logit moves by
 * about a weight times the scale: within 2% of the largest logit), and the
 * predicted classes agree on at least 99% of the rows. */
static void test_int8_export_runs_in_onnx_runtime(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[4096];
    char *csv = tu_path(dir, "d.csv"), *fp = tu_path(dir, "m.mtc"), *in = tu_path(dir, "in.csv");
    tu_write_synth_csv(csv, 400, 3);
    const char *spec = "[input] shape=4 columns=x0,x1,x2,x3\n[dense] units=16 act=relu\n[task fine] kind=cls classes=4\n";
    char *sp = tu_path(dir, "m.cfg");
    assert_int_equal(tu_write(sp, spec, strlen(spec)), 0);
    snprintf(args, sizeof args, "train --spec %s --data csv:%s --epochs 5 --quiet -o %s", sp, csv, fp);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("train: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "quantize %s --data csv:%s --calib 200 --quiet -o %s/q.mtc", fp, csv, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("quantize: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "export %s/q.mtc -o %s/q.onnx", dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("export: %s", err);
    assert_non_null(strstr(out, "QDQ"));
    free(out); free(err);
    /* inputs: the CSV's feature columns */
    mtc_dataset d;
    tu_synth_data(&d, 400, 3);
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    fprintf(f, "x0,x1,x2,x3\n");
    for (int64_t i = 0; i < d.n; i++)
        fprintf(f, "%g,%g,%g,%g\n", d.x_f32[i * 4], d.x_f32[i * 4 + 1], d.x_f32[i * 4 + 2], d.x_f32[i * 4 + 3]);
    fclose(f);
    /* mtc's int8 runtime on the same (printed-and-parsed) values */
    float *x = malloc(400 * 4 * sizeof(float)), *want = malloc(400 * 4 * sizeof(float)), got[4];
    assert_int_equal(read_csv(in, x, 400, 4), 0);
    mtc_rt *rt;
    mtc_err e = {0};
    char *q = tu_path(dir, "q.mtc");
    if (mtc_rt_load(q, &rt, &e)) fail_msg("%s", e.msg);
    assert_int_equal(mtc_rt_nquantized(rt), 2);
    assert_int_equal(mtc_rt_run(rt, x, 400, (float *[]){want}, &e), 0);
    mtc_rt_free(rt);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "node tests/ort_run.js %s/q.onnx %s > %s/ort.csv 2>%s/ort.err", dir, in, dir, dir);
    if (system(cmd) != 0) fail_msg("ONNX Runtime did not run the int8 export");
    char *op = tu_path(dir, "ort.csv");
    f = fopen(op, "r");
    assert_non_null(f);
    float vmax = 0;
    for (int i = 0; i < 1600; i++) vmax = fabsf(want[i]) > vmax ? fabsf(want[i]) : vmax;
    int agree = 0;
    for (int r = 0; r < 400; r++) {
        int a = 0, b = 0;
        for (int k = 0; k < 4; k++) {
            assert_int_equal(fscanf(f, " %f ,", &got[k]), 1);
            if (fabsf(got[k] - want[r * 4 + k]) > 0.02f * vmax)
                fail_msg("row %d logit %d: ORT %.6g, mtc %.6g (largest %.3g)", r, k, got[k], want[r * 4 + k], vmax);
            if (got[k] > got[a]) a = k;
            if (want[r * 4 + k] > want[r * 4 + b]) b = k;
        }
        agree += a == b;
    }
    fclose(f);
    assert_true(agree >= 396);
    mtc_data_free(&d);
    free(x); free(want); free(q); free(op); free(csv); free(fp); free(in); free(sp);
    tu_rmdir(dir);
    free(dir);
}

/* safetensors: a checkpoint's tensors and spec out and back, the same
 * predictions; damaged files exit 2 naming the file. */
static void test_safetensors_round_trip_and_bad_files(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[4096];
    snprintf(args, sizeof args, "import " FIX "mt_cnn.onnx -o %s/a.mtc", dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("import: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "export %s/a.mtc -o %s/a.safetensors", dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("export: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "import %s/a.safetensors -o %s/b.mtc", dir, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("import safetensors: %s", err);
    free(out); free(err);
    char *pa = NULL, *pb = NULL;
    snprintf(args, sizeof args, "predict %s/a.mtc --input " FIX "mt_cnn_in.csv", dir);
    assert_int_equal(tu_run_mtc(dir, args, &pa, &err), 0);
    free(err);
    snprintf(args, sizeof args, "predict %s/b.mtc --input " FIX "mt_cnn_in.csv", dir);
    assert_int_equal(tu_run_mtc(dir, args, &pb, &err), 0);
    free(err);
    assert_string_equal(pa, pb);
    free(pa); free(pb);
    /* the library reads every tensor back with its bytes */
    mtc_ckpt c1, c2;
    mtc_err e = {0};
    char *a = tu_path(dir, "a.mtc"), *sf = tu_path(dir, "a.safetensors");
    assert_int_equal(mtc_ckpt_load(a, &c1, &e), 0);
    assert_int_equal(mtc_safetensors_read(sf, &c2, &e), 0);
    assert_int_equal(c1.ntensors, c2.ntensors);
    assert_string_equal(c1.spec, c2.spec);
    for (int i = 0; i < c1.ntensors; i++) {
        const mtc_tensor *t = mtc_ckpt_find(&c2, c1.tensors[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, c1.tensors[i].dtype);
        assert_memory_equal(t->data, c1.tensors[i].data,
                            (size_t)mtc_tensor_numel(t) * mtc_dtype_size(t->dtype));
    }
    mtc_ckpt_free(&c1);
    mtc_ckpt_free(&c2);
    /* damaged: truncated data, a header length past the end, junk */
    size_t n;
    unsigned char *b = tu_read(sf, &n);
    assert_non_null(b);
    char *cut = tu_path(dir, "cut.safetensors"), *lie = tu_path(dir, "lie.safetensors");
    assert_int_equal(tu_write(cut, b, n - 100), 0);
    b[0] = 0xff, b[1] = 0xff, b[2] = 0xff;
    assert_int_equal(tu_write(lie, b, n), 0);
    const char *bad[2] = {cut, lie};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "import %s -o %s/x.mtc", bad[i], dir);
        assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
        if (!strstr(err, bad[i])) fail_msg("the error does not name %s: %s", bad[i], err);
        free(out); free(err);
    }
    free(b); free(cut); free(lie); free(a); free(sf);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_matches_pytorch_outputs),
        cmocka_unit_test(test_import_folds_the_view_chain_and_kinds),
        cmocka_unit_test(test_import_gelu_global_pool_layernorm),
        cmocka_unit_test(test_import_resnet_block_and_depthwise),
        cmocka_unit_test(test_cli_import_writes_a_checkpoint_the_other_commands_use),
        cmocka_unit_test(test_cli_import_bad_input_exits_2_and_writes_nothing),
        cmocka_unit_test(test_export_runs_in_onnx_runtime_and_round_trips),
        cmocka_unit_test(test_export_every_layer_kind_at_three_opsets),
        cmocka_unit_test(test_pruned_models_export_and_round_trip),
        cmocka_unit_test(test_int8_export_runs_in_onnx_runtime),
        cmocka_unit_test(test_safetensors_round_trip_and_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
