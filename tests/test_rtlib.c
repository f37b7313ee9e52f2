/*
 * test_rtlib.c — the runtime a user can ship: build/libmtcrt.a references
 * no OpenBLAS, libgfortran or libpng symbol (nm -u), and
 * examples/rt_predict.c, linked against it alone (-lz -lm -lpthread), prints
 * exactly what `mtc predict --input FILE.csv` prints for the fp32 and the
 * int8 fashion-mnist student.
 *
 * Runs from the repository root (as `make test` does), with the archive in
 * the folder of $MTC_BIN and the compiler flags of that build in $MTC_OPT
 * (so a sanitizer build links its sanitizer runtime).
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char *build_dir(char *buf, size_t n)
{
    const char *bin = getenv("MTC_BIN");
    snprintf(buf, n, "%s", bin ? bin : "build/mtc");
    return dirname(buf);
}

static void test_rtlib_references_no_blas_or_png(void **st)
{
    (void)st;
    char b[4096], cmd[8400], line[512];
    snprintf(cmd, sizeof cmd, "nm -u '%s/libmtcrt.a'", build_dir(b, sizeof b));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int undefined = 0;
    while (fgets(line, sizeof line, p)) {
        char kind[8], sym[400];
        if (sscanf(line, " %7s %399s", kind, sym) != 2 || strcmp(kind, "U")) continue;
        undefined++;
        if (strstr(sym, "cblas") || strstr(sym, "openblas") || strstr(sym, "gfortran") || !strncmp(sym, "png_", 4) ||
            strstr(sym, "sgemm"))
            fail_msg("libmtcrt.a references %s", sym);
    }
    assert_int_equal(pclose(p), 0);
    assert_true(undefined > 50); /* nm did read the archive */
}

/* The first n test images of fashion-mnist as rt_predict and mtc predict
 * read them: a header, then 784 values px/255 per row ("%.9g" gives the
 * float back exactly). */
static void write_images_csv(const char *path, int n)
{
    mtc_dataset d;
    mtc_err e = {0};
    if (mtc_data_open("fashion-mnist", "test", NULL, &d, &e)) fail_msg("fashion-mnist: %s", e.msg);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 784; i++) fprintf(f, "%sp%d", i ? "," : "", i);
    fprintf(f, "\n");
    for (int r = 0; r < n; r++)
        for (int i = 0; i < 784; i++) fprintf(f, "%.9g%s", d.x_u8[r * 784 + i] / 255.0f, i == 783 ? "\n" : ",");
    assert_int_equal(fclose(f), 0);
    mtc_data_free(&d);
}

static char *run(const char *dir, const char *cmd, int *rc)
{
    char full[34000];
    snprintf(full, sizeof full, "%s >'%s/out.txt' 2>'%s/err.txt'", cmd, dir, dir);
    *rc = sh(full);
    char *p = tu_path(dir, *rc ? "err.txt" : "out.txt");
    char *s = (char *)tu_read(p, NULL);
    free(p);
    return s ? s : strdup("");
}

static void test_rt_predict_example_prints_what_mtc_predict_prints(void **st)
{
    (void)st;
    char b[4096], cmd[16800];
    const char *build = build_dir(b, sizeof b), *opt = getenv("MTC_OPT");
    char *dir = tu_mkdtemp(), *exe = tu_path(dir, "rt_predict"), *csv = tu_path(dir, "x.csv");
    /* no -lopenblas, no -lpng: the link itself proves nothing else is needed */
    snprintf(cmd, sizeof cmd, "cc -std=c11 %s -Iinclude -o '%s' examples/rt_predict.c '%s/libmtcrt.a' -lz -lm -lpthread "
             ">'%s/cc.log' 2>&1", opt ? opt : "-O2", exe, build, dir);
    if (sh(cmd)) {
        snprintf(cmd, sizeof cmd, "cat '%s/cc.log' >&2", dir);
        sh(cmd);
        fail_msg("examples/rt_predict.c does not link against libmtcrt.a alone");
    }
    /* the student of the demo (untrained: any weights give outputs to compare) */
    mtc_model m;
    mtc_err e = {0};
    size_t n;
    char *text = (char *)tu_read("examples/fmnist-student.cfg", &n);
    assert_non_null(text);
    assert_int_equal(tu_build_model(text, &m, 3, &e), 0);
    free(text);
    char *fp32 = tu_path(dir, "s.mtc"), *q8 = tu_path(dir, "s.q8.mtc");
    assert_int_equal(mtc_model_save(&m, fp32, "{}", &e), 0);
    mtc_model_free(&m);
    int rc;
    snprintf(cmd, sizeof cmd, "'%s/mtc' quantize '%s' --data fashion-mnist --calib 200 --quiet -o '%s'", build, fp32, q8);
    char *out = run(dir, cmd, &rc);
    if (rc) fail_msg("quantize: %s", out);
    free(out);
    write_images_csv(csv, 25);
    const char *models[2] = {fp32, q8};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "'%s/mtc' predict '%s' --input '%s'", build, models[k], csv);
        char *want = run(dir, cmd, &rc);
        if (rc) fail_msg("mtc predict: %s", want);
        snprintf(cmd, sizeof cmd, "ASAN_OPTIONS=detect_leaks=0 '%s' '%s' '%s'", exe, models[k], csv);
        char *got = run(dir, cmd, &rc);
        if (rc) fail_msg("rt_predict: %s", got);
        int lines = 0;
        for (const char *c = want; *c; c++) lines += *c == '\n';
        assert_int_equal(lines, 25);
        assert_non_null(strstr(want, "24:  fashion="));
        if (strcmp(want, got)) fail_msg("%s: rt_predict printed\n%s\nmtc predict printed\n%s", models[k], got, want);
        free(want);
        free(got);
    }
    /* bad input: exit 2, the file named */
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s/none.csv'", exe, fp32, dir);
    out = run(dir, cmd, &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "none.csv"));
    free(out);
    tu_rmdir(dir);
    free(dir); free(exe); free(csv); free(fp32); free(q8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtlib_references_no_blas_or_png),
        cmocka_unit_test(test_rt_predict_example_prints_what_mtc_predict_prints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
