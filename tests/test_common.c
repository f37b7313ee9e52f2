/* test_common.c — RNG determinism, hashing, crash-safe writes, CLI basics
 * (every command's --help, subcommands included, ends with a newline). */
#include "tests/testutil.h"
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_rng_same_seed_same_stream(void **st)
{
    (void)st;
    mtc_rng a, b;
    mtc_rng_seed(&a, 42);
    mtc_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) assert_int_equal(mtc_rng_u64(&a), mtc_rng_u64(&b));
    mtc_rng_seed(&b, 43);
    assert_true(mtc_rng_u64(&a) != mtc_rng_u64(&b));
}

static void test_rng_uniform_and_below_in_range(void **st)
{
    (void)st;
    mtc_rng r;
    mtc_rng_seed(&r, 7);
    double sum = 0;
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) {
        float u = mtc_rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
        hist[mtc_rng_below(&r, 7)]++;
    }
    assert_true(sum / 70000 > 0.49 && sum / 70000 < 0.51);
    for (int i = 0; i < 7; i++) assert_true(hist[i] > 9500 && hist[i] < 10500);
}

static void test_shuffle_is_permutation(void **st)
{
    (void)st;
    mtc_rng r;
    mtc_rng_seed(&r, 1);
    int64_t a[100];
    int seen[100] = {0};
    for (int i = 0; i < 100; i++) a[i] = i;
    mtc_shuffle_i64(&r, a, 100);
    int moved = 0;
    for (int i = 0; i < 100; i++) { seen[a[i]]++; moved += a[i] != i; }
    for (int i = 0; i < 100; i++) assert_int_equal(seen[i], 1);
    assert_true(moved > 50);
}

static void test_atomic_write_replaces_and_abort_keeps_old(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    char *p = tu_path(dir, "f.bin");
    mtc_err e = {0};
    assert_int_equal(mtc_write_file_atomic(p, "old", 3, &e), 0);
    mtc_outfile o;
    assert_int_equal(mtc_outfile_open(&o, p, &e), 0);
    fputs("half-written", o.f);
    mtc_outfile_abort(&o);
    size_t n;
    unsigned char *b = tu_read(p, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(b, "old", 3);
    free(b);
    struct stat sb;
    assert_true(stat(o.tmp, &sb) != 0); /* temp removed */
    assert_int_equal(mtc_write_file_atomic(p, "new!", 4, &e), 0);
    b = tu_read(p, &n);
    assert_int_equal(n, 4);
    free(b);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void test_write_to_missing_folder_fails_cleanly(void **st)
{
    (void)st;
    mtc_err e = {0};
    int rc = mtc_write_file_atomic("/nonexistent-mtc-dir/x.bin", "x", 1, &e);
    assert_int_equal(rc, MTC_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent-mtc-dir/x.bin"));
}

static void test_cli_help_unknown_and_version(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out, *err;
    assert_int_equal(tu_run_mtc(dir, "--help", &out, &err), 0);
    assert_non_null(strstr(out, "distill"));
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "frobnicate", &out, &err), 2);
    assert_non_null(strstr(err, "unknown command"));
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "--version", &out, &err), 0);
    assert_non_null(strstr(out, "openblas coretype"));
    assert_non_null(strstr(out, "runtime kernels: int8 "));
    free(out); free(err);
    tu_rmdir(dir);
    free(dir);
}

/* The names listed under "commands:" in `mtc --help` (two-space indent). */
static int listed_commands(const char *help, char names[][32], int cap)
{
    const char *p = strstr(help, "commands:\n");
    int n = 0;
    for (p = p ? strchr(p, '\n') + 1 : NULL; p && !strncmp(p, "  ", 2) && n < cap; p = strchr(p, '\n') + 1) {
        if (sscanf(p, "%31s", names[n]) == 1) n++;
        if (!strchr(p, '\n')) break;
    }
    return n;
}

/* The SUB of each "mtc CMD SUB" usage line of a command with subcommands. */
static int listed_subcommands(const char *help, const char *cmd, char names[][32], int cap)
{
    if (!strstr(help, "<subcommand>")) return 0;
    char pre[64];
    snprintf(pre, sizeof pre, "mtc %.40s ", cmd);
    int n = 0;
    for (const char *p = strstr(help, pre); p && n < cap; p = strstr(p + 1, pre))
        if (p[strlen(pre)] != '<' && sscanf(p + strlen(pre), "%31s", names[n]) == 1) n++;
    return n;
}

/* `mtc CMD --help`: exit 0, text on stdout ending with a newline (else the
 * shell prompt lands on its last line), nothing on stderr. */
static void assert_help_ends_with_newline(const char *dir, const char *cmd, char **out)
{
    char args[128], *err;
    snprintf(args, sizeof args, "%s --help", cmd);
    int rc = tu_run_mtc(dir, args, out, &err);
    if (rc) fail_msg("mtc %s: exit %d", args, rc);
    size_t n = strlen(*out);
    if (n < 20 || (*out)[n - 1] != '\n') fail_msg("mtc %s: output does not end with a newline", args);
    if (err[0]) fail_msg("mtc %s: wrote to stderr: %s", args, err);
    free(err);
}

static void test_cli_every_help_ends_with_newline(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out, names[64][32], subs[16][32];
    assert_help_ends_with_newline(dir, "", &out);
    int n = listed_commands(out, names, 64), nsub_total = 0;
    free(out);
    assert_true(n >= 12); /* train ... pipeline */
    for (int i = 0; i < n; i++) {
        assert_help_ends_with_newline(dir, names[i], &out);
        int ns = listed_subcommands(out, names[i], subs, 16);
        free(out);
        for (int k = 0; k < ns; k++) {
            char cmd[80];
            snprintf(cmd, sizeof cmd, "%.31s %.31s", names[i], subs[k]);
            assert_help_ends_with_newline(dir, cmd, &out);
            free(out);
        }
        nsub_total += ns;
    }
    assert_true(nsub_total >= 9); /* data: 3, plot: 6 */
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_same_seed_same_stream),
        cmocka_unit_test(test_rng_uniform_and_below_in_range),
        cmocka_unit_test(test_shuffle_is_permutation),
        cmocka_unit_test(test_atomic_write_replaces_and_abort_keeps_old),
        cmocka_unit_test(test_write_to_missing_folder_fails_cleanly),
        cmocka_unit_test(test_cli_help_unknown_and_version),
        cmocka_unit_test(test_cli_every_help_ends_with_newline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
