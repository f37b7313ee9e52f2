/*
 * test_verify.c — `mtc quantize` and `mtc verify` end to end on a tiny CSV
 * data set: exit 0 within budget, 1 over budget (a candidate whose `b` head
 * is zeroed fails only `b`), 2 on bad input (missing or corrupt file,
 * differing tasks, unknown task or absurd value in --max-drop, a reference
 * at chance level); JSON and JUnit reports.
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    char *dir;
    char csv[4200], spec[4200], ref[4200];
} fixture;

static fixture F;

static int mtc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *last_out, *last_err;
static int mtc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tu_run_mtcv(F.dir, &last_out, &last_err, fmt, ap);
    va_end(ap);
    return rc;
}

static int setup(void **st)
{
    (void)st;
    F.dir = tu_mkdtemp();
    snprintf(F.csv, sizeof F.csv, "%s/d.csv", F.dir);
    snprintf(F.spec, sizeof F.spec, "%s/s.cfg", F.dir);
    snprintf(F.ref, sizeof F.ref, "%s/ref.mtc", F.dir);
    tu_write_ab_csv(F.csv);
    const char *spec = "[input] shape = 4 columns = x0,x1,x2,x3\n[dense] units = 32 act = relu\n"
                       "[task a] kind = cls classes = 3\n[task b] kind = cls classes = 2\n";
    if (tu_write(F.spec, spec, strlen(spec))) return -1;
    int rc = mtc("train --spec %s --data csv:%s --epochs 30 --lr 0.01 --batch 32 -o %s --quiet", F.spec, F.csv, F.ref);
    if (rc) fprintf(stderr, "train failed: %s\n", last_err ? last_err : "");
    return rc;
}

static int teardown(void **st)
{
    (void)st;
    free(last_out);
    free(last_err);
    last_out = last_err = NULL;
    tu_rmdir(F.dir);
    free(F.dir);
    return 0;
}

/* Copy of the reference with one task's head (weights and bias) zeroed. */
static void write_broken(const char *src, const char *dst, const char *task)
{
    mtc_ckpt c;
    mtc_err e = {0};
    assert_int_equal(mtc_ckpt_load(src, &c, &e), 0);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "head.%s.", task);
    int hit = 0;
    for (int i = 0; i < c.ntensors; i++) {
        mtc_tensor *t = &c.tensors[i];
        if (strncmp(t->name, prefix, strlen(prefix)) || strstr(t->name, "mask")) continue;
        memset(t->data, 0, (size_t)mtc_tensor_numel(t) * mtc_dtype_size(t->dtype));
        hit++;
    }
    assert_true(hit >= 2);
    assert_int_equal(mtc_ckpt_save(dst, &c, &e), 0);
    mtc_ckpt_free(&c);
}

static void test_verify_int8_candidate_passes_with_reports(void **st)
{
    (void)st;
    char q8[4200], rj[4200], ju[4200];
    snprintf(q8, sizeof q8, "%s/ref.q8.mtc", F.dir);
    snprintf(rj, sizeof rj, "%s/r.json", F.dir);
    snprintf(ju, sizeof ju, "%s/r.xml", F.dir);
    int rc = mtc("quantize %s --data csv:%s -o %s --calib 50 --calib-method entropy --json", F.ref, F.csv, q8);
    if (rc) fail_msg("quantize exit %d: %s", rc, last_err);
    assert_non_null(strstr(last_err, "WARNING")); /* fewer than 100 calibration samples */
    assert_non_null(strstr(last_out, "\"weight_ratio\""));
    rc = mtc("verify --reference %s --candidate %s --data csv:%s --max-drop a=5,b=5 --report-json %s --junit %s", F.ref,
             q8, F.csv, rj, ju);
    if (rc) fail_msg("verify exit %d: %s %s", rc, last_out, last_err);
    assert_non_null(strstr(last_out, "PASS"));
    char *j = (char *)tu_read(rj, NULL), *x = (char *)tu_read(ju, NULL);
    assert_non_null(j);
    assert_non_null(x);
    mtc_json doc;
    mtc_err e = {0};
    assert_int_equal(mtc_json_parse(j, strlen(j), &doc, &e), 0);
    const mtc_json *tasks = mtc_json_get(&doc, "tasks");
    assert_non_null(tasks);
    assert_non_null(mtc_json_get(tasks, "a"));
    assert_true(mtc_json_num(&doc, "candidate_weight_bytes", 1e9) < 0.6 * mtc_json_num(&doc, "reference_weight_bytes", 0));
    assert_true(mtc_json_num(mtc_json_get(tasks, "a"), "top1_agreement", 0) > 0.9);
    mtc_json_free(&doc);
    assert_non_null(strstr(x, "tests=\"2\" failures=\"0\""));
    free(j);
    free(x);
}

static void test_verify_broken_head_fails_only_that_task(void **st)
{
    (void)st;
    char bad[4200], rj[4200], ju[4200];
    snprintf(bad, sizeof bad, "%s/broken.mtc", F.dir);
    snprintf(rj, sizeof rj, "%s/b.json", F.dir);
    snprintf(ju, sizeof ju, "%s/b.xml", F.dir);
    write_broken(F.ref, bad, "b");
    int rc = mtc("verify --reference %s --candidate %s --data csv:%s --max-drop a=0.5,b=0.5 --report-json %s --junit %s",
                 F.ref, bad, F.csv, rj, ju);
    assert_int_equal(rc, 1);
    char *j = (char *)tu_read(rj, NULL), *x = (char *)tu_read(ju, NULL);
    mtc_json doc;
    mtc_err e = {0};
    assert_int_equal(mtc_json_parse(j, strlen(j), &doc, &e), 0);
    const mtc_json *tasks = mtc_json_get(&doc, "tasks");
    assert_true(mtc_json_get(mtc_json_get(tasks, "a"), "pass")->num == 1);
    assert_true(mtc_json_get(mtc_json_get(tasks, "b"), "pass")->num == 0);
    assert_true(mtc_json_num(mtc_json_get(tasks, "a"), "drop", 1) == 0);
    mtc_json_free(&doc);
    assert_non_null(strstr(x, "failures=\"1\""));
    assert_int_equal(strstr(x, "<failure") - strstr(x, "name=\"b\"") > 0, 1);
    free(j);
    free(x);
}

/* --report-only: the broken head that fails the gate above is reported
 * (its drop in the table and the JSON), with no budget, verdict or failing
 * exit; it refuses budgets and JUnit, which only a gate has. */
static void test_verify_report_only_reports_without_verdict(void **st)
{
    (void)st;
    char bad[4200], rj[4200];
    snprintf(bad, sizeof bad, "%s/broken2.mtc", F.dir);
    snprintf(rj, sizeof rj, "%s/ro.json", F.dir);
    write_broken(F.ref, bad, "b");
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s", F.ref, bad, F.csv), 1);
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s --report-only --report-json %s", F.ref,
                         bad, F.csv, rj),
                     0);
    assert_null(strstr(last_out, "PASS"));
    assert_null(strstr(last_out, "FAIL"));
    assert_non_null(strstr(last_out, "accuracy"));
    char *j = (char *)tu_read(rj, NULL);
    assert_non_null(j);
    mtc_json doc;
    mtc_err e = {0};
    assert_int_equal(mtc_json_parse(j, strlen(j), &doc, &e), 0);
    const mtc_json *b = mtc_json_get(mtc_json_get(&doc, "tasks"), "b");
    assert_non_null(b);
    assert_true(mtc_json_num(b, "drop", 0) > 10); /* a zeroed head: points lost */
    assert_null(mtc_json_get(b, "pass"));
    assert_null(mtc_json_get(b, "budget"));
    assert_null(mtc_json_get(&doc, "pass"));
    mtc_json_free(&doc);
    free(j);
    /* several candidates: the pipeline table, still no verdicts */
    assert_int_equal(mtc("verify --reference %s --candidate %s,%s --data csv:%s --report-only", F.ref, F.ref, bad,
                         F.csv),
                     0);
    assert_null(strstr(last_out, "FAIL"));
    assert_non_null(strstr(last_out, "broken2.mtc"));
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s --report-only --max-drop a=1", F.ref, bad,
                         F.csv),
                     2);
    assert_non_null(strstr(last_err, "--max-drop"));
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s --report-only --junit %s/x.xml", F.ref,
                         bad, F.csv, F.dir),
                     2);
}

static void test_verify_bad_input_exits_2(void **st)
{
    (void)st;
    char other[4200], ospec[4200], corrupt[4200], chance[4200];
    snprintf(other, sizeof other, "%s/other.mtc", F.dir);
    snprintf(ospec, sizeof ospec, "%s/o.cfg", F.dir);
    snprintf(corrupt, sizeof corrupt, "%s/corrupt.mtc", F.dir);
    snprintf(chance, sizeof chance, "%s/chance.mtc", F.dir);
    /* missing file */
    assert_int_equal(mtc("verify --reference %s/nope.mtc --candidate %s --data csv:%s", F.dir, F.ref, F.csv), 2);
    /* corrupt file: truncated copy */
    size_t n;
    unsigned char *b = tu_read(F.ref, &n);
    assert_int_equal(tu_write(corrupt, b, n / 2), 0);
    free(b);
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s", F.ref, corrupt, F.csv), 2);
    /* task lists differ */
    const char *spec = "[input] shape = 4 columns = x0,x1,x2,x3\n[dense] units = 8 act = relu\n"
                       "[task a] kind = cls classes = 3\n";
    assert_int_equal(tu_write(ospec, spec, strlen(spec)), 0);
    assert_int_equal(mtc("train --spec %s --data csv:%s --epochs 1 -o %s --quiet", ospec, F.csv, other), 0);
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s", F.ref, other, F.csv), 2);
    assert_non_null(strstr(last_err, "tasks"));
    /* unknown task, absurd and malformed budgets */
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s --max-drop c=1", F.ref, F.ref, F.csv), 2);
    assert_non_null(strstr(last_err, "'c'"));
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s --max-drop a=-1", F.ref, F.ref, F.csv), 2);
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s --max-drop a=500", F.ref, F.ref, F.csv), 2);
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s --max-drop a", F.ref, F.ref, F.csv), 2);
    /* a reference at chance level is an error, not a pass */
    write_broken(F.ref, chance, "a");
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s", chance, F.ref, F.csv), 2);
    assert_non_null(strstr(last_err, "chance"));
    /* identical models pass with the default budget */
    assert_int_equal(mtc("verify --reference %s --candidate %s --data csv:%s", F.ref, F.ref, F.csv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_int8_candidate_passes_with_reports),
        cmocka_unit_test(test_verify_broken_head_fails_only_that_task),
        cmocka_unit_test(test_verify_report_only_reports_without_verdict),
        cmocka_unit_test(test_verify_bad_input_exits_2),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
