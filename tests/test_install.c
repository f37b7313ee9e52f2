/*
 * test_install.c — `make install` gives a usable library: installed into a
 * scratch DESTDIR, examples/run_q8.c compiles against it through pkg-config
 * (shared and static), runs an int8 checkpoint made here on a tiny CSV and
 * prints a prediction per task; `make uninstall` then leaves no file behind.
 *
 * Runs from the repository root (as `make test` does). The build folder is
 * the one holding $MTC_BIN (default build/). Skipped without pkg-config.
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* A cls task (which of a, b is larger) and a reg task (y = a + 2b). */
#define TINY_SPEC                                                                          \
    "[input] shape = 3 columns = a,b,c\n[dense] units = 8 act = relu\n"                    \
    "[task bigger] kind = cls classes = 2\n[task y] kind = reg outputs = 1\n"

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int exists(const char *dir, const char *rel)
{
    char p[8400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* CSV with 40 rows; rows r % 5 == 4 form the test split. */
static void write_csv(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "a,b,c,bigger,y\n");
    mtc_rng r;
    mtc_rng_seed(&r, 7);
    for (int i = 0; i < 40; i++) {
        float a = mtc_rng_uniform(&r), b = mtc_rng_uniform(&r), c = mtc_rng_uniform(&r);
        fprintf(f, "%.4f,%.4f,%.4f,%d,%.4f\n", a, b, c, a > b, a + 2 * b);
    }
    assert_int_equal(fclose(f), 0);
}

/* Tiny fp32 model saved through the library, then int8 through mtc_quantize. */
static void make_models(const char *fp32, const char *q8, const char *csv)
{
    mtc_err e = {0};
    mtc_spec s;
    mtc_model m;
    assert_int_equal(mtc_spec_parse(TINY_SPEC, "tiny", &s, &e), 0);
    assert_int_equal(mtc_model_build(&s, TINY_SPEC, &m, &e), 0);
    mtc_model_init_params(&m, 3);
    assert_int_equal(mtc_model_save(&m, fp32, "{\"producer\":\"test_install\"}", &e), 0);
    mtc_model_free(&m);

    mtc_data_opts o;
    memset(&o, 0, sizeof o);
    o.inputs = "a,b,c";
    assert_int_equal(mtc_data_parse_csv_tasks("bigger:cls,y:reg", &o, &e), 0);
    char name[4200];
    snprintf(name, sizeof name, "csv:%s", csv);
    mtc_dataset d;
    assert_int_equal(mtc_data_open(name, "train", &o, &d, &e), 0);
    mtc_ckpt c;
    assert_int_equal(mtc_ckpt_load(fp32, &c, &e), 0);
    mtc_quant_cfg q;
    mtc_quant_cfg_default(&q);
    q.calib_n = 16;
    mtc_quant_report rep;
    int rc = mtc_quantize(&c, fp32, &d, &q, q8, &rep, &e);
    if (rc) fprintf(stderr, "mtc_quantize: %s\n", e.msg);
    assert_int_equal(rc, 0);
    mtc_ckpt_free(&c);
    mtc_data_free(&d);
}

static void test_install_pkgconfig_example_uninstall(void **state)
{
    (void)state;
    if (sh("pkg-config --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_install: pkg-config not found, skipped\n");
        skip();
    }
    const char *bin = getenv("MTC_BIN");
    char binbuf[4096];
    snprintf(binbuf, sizeof binbuf, "%s", bin ? bin : "build/mtc");
    const char *build = dirname(binbuf);
    char *tmp = tu_mkdtemp();
    assert_non_null(tmp);
    char cmd[32768], root[4200], pc[8800];
    snprintf(root, sizeof root, "%s/usr", tmp);
    /* the parent make's flags (jobserver, sanitizer OPT) are not ours */
    const char *make = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s";

    snprintf(cmd, sizeof cmd, "%s install DESTDIR='%s' PREFIX=/usr BUILD='%s' >'%s/install.log' 2>&1",
             make, tmp, build, tmp);
    if (sh(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/install.log' >&2", tmp);
        sh(cmd);
        fail_msg("make install failed");
    }
    const char *files[] = {"bin/mtc", "lib/libmtc.a", "lib/libmtc.so", "lib/libmtcrt.a", "include/mtc.h",
                           "include/mtc/runtime.h", "include/mtc/model.h",
                           "lib/pkgconfig/mtc.pc", "share/man/man1/mtc.1"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (!exists(root, files[i])) fail_msg("not installed: %s", files[i]);

    /* pkg-config on the installed .pc, relocated into DESTDIR */
    snprintf(pc, sizeof pc, "PKG_CONFIG_PATH='%s/lib/pkgconfig' pkg-config --define-variable=prefix='%s'",
             root, root);
    snprintf(cmd, sizeof cmd, "cc -std=c11 -O1 -o '%s/run_q8' examples/run_q8.c $(%s --cflags --libs mtc) "
             ">'%s/cc.log' 2>&1", tmp, pc, tmp);
    if (sh(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/cc.log' >&2", tmp);
        sh(cmd);
        fail_msg("examples/run_q8.c does not build against the installed libmtc.so");
    }
    /* static: libmtc.a plus Libs.private must be enough (a sanitizer build's
     * archive needs the sanitizer runtime, so only for the plain build) */
    int static_ok = !strcmp(build, "build");
    if (static_ok) {
        snprintf(cmd, sizeof cmd, "cc -std=c11 -O1 -o '%s/run_q8_static' examples/run_q8.c "
                 "$(%s --cflags mtc) '%s/lib/libmtc.a' $(%s --static --libs-only-l mtc | sed 's/-lmtc//') "
                 ">'%s/cc-static.log' 2>&1", tmp, pc, root, pc, tmp);
        if (sh(cmd) != 0) {
            snprintf(cmd, sizeof cmd, "cat '%s/cc-static.log' >&2", tmp);
            sh(cmd);
            fail_msg("examples/run_q8.c does not link statically with Libs.private");
        }
    }

    char *csv = tu_path(tmp, "tiny.csv"), *fp32 = tu_path(tmp, "tiny.mtc"),
         *q8 = tu_path(tmp, "tiny.q8.mtc");
    write_csv(csv);
    make_models(fp32, q8, csv);
    for (int variant = 0; variant < 1 + static_ok; variant++) {
        /* under `make sanitize` the installed library carries ASan while the
         * example is built plainly: let the runtime load late */
        snprintf(cmd, sizeof cmd,
                 "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0 LD_LIBRARY_PATH='%s/lib' '%s/%s' '%s' "
                 "'csv:%s' 3 >'%s/run.txt' 2>&1",
                 root, tmp, variant ? "run_q8_static" : "run_q8", q8, csv, tmp);
        int rc = sh(cmd);
        char *p = tu_path(tmp, "run.txt");
        char *out = (char *)tu_read(p, NULL);
        free(p);
        if (rc != 0 || !out || !strstr(out, "sample 0 task bigger: class ") ||
            !strstr(out, "sample 2 task y: ") || !strstr(out, "3 of 3 layers int8"))
            fail_msg("run_q8 (%s) exit %d, output:\n%s", variant ? "static" : "shared", rc,
                     out ? out : "(none)");
        free(out);
    }

    snprintf(cmd, sizeof cmd, "%s uninstall DESTDIR='%s' PREFIX=/usr BUILD='%s' >'%s/uninstall.log' 2>&1",
             make, tmp, build, tmp);
    assert_int_equal(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' ! -type d)\" && test ! -e '%s/include/mtc'",
             root, root);
    if (sh(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "find '%s' ! -type d >&2", root);
        sh(cmd);
        fail_msg("make uninstall left files behind");
    }
    free(csv);
    free(fp32);
    free(q8);
    tu_rmdir(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_pkgconfig_example_uninstall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
