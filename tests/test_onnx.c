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
    /* an MMoE model: exit 2, nothing written */
    const char *mmoe = "[input] shape=4\n[mmoe] experts=2\n[dense] units=4\n[task y] kind=reg outputs=1\n";
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model(mmoe, &m, 1, &e), 0);
    char *mp = tu_path(dir, "mmoe.mtc");
    assert_int_equal(mtc_model_save(&m, mp, "{}", &e), 0);
    mtc_model_free(&m);
    snprintf(args, sizeof args, "export %s -o %s/m.onnx", mp, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "MMoE"));
    free(out); free(err);
    struct stat sb;
    char *mo = tu_path(dir, "m.onnx");
    assert_true(stat(mo, &sb) != 0);
    free(mo); free(mp); free(p1); free(p2); free(b1); free(b2); free(ortp); free(a); free(x);
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
        cmocka_unit_test(test_cli_import_writes_a_checkpoint_the_other_commands_use),
        cmocka_unit_test(test_cli_import_bad_input_exits_2_and_writes_nothing),
        cmocka_unit_test(test_export_runs_in_onnx_runtime_and_round_trips),
        cmocka_unit_test(test_int8_export_runs_in_onnx_runtime),
        cmocka_unit_test(test_safetensors_round_trip_and_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
