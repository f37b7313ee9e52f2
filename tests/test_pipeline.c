/* test_pipeline.c — `mtc pipeline recipe.ini` end to end on a tiny CSV
 * data set, and its errors for bad recipes. */
#include "tests/testutil.h"
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *teacher_cfg =
    "[input] shape = 8 columns = area,rooms,age,distance,f5,f6,f7,f8\n[dense] units = 32 act = relu\n"
    "[task segment] kind = cls classes = 3\n[task price] kind = reg outputs = 1\n";
static const char *student_cfg =
    "[input] shape = 8 columns = area,rooms,age,distance,f5,f6,f7,f8\n[dense] units = 16 act = relu\n"
    "[task segment] kind = cls classes = 3\n[task price] kind = reg outputs = 1\n";

static int exists(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    struct stat st;
    int ok = stat(p, &st) == 0 && st.st_size > 0;
    free(p);
    return ok;
}

static void test_pipeline_runs_every_stage_and_prints_the_table(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out, *err, args[8192], recipe[8192];
    snprintf(args, sizeof args, "data tabular -o '%s/t.csv' --rows 1500 --quiet", dir);
    assert_int_equal(tu_run_mtc(dir, args, NULL, NULL), 0);
    char *tc = tu_path(dir, "teacher.cfg"), *sc = tu_path(dir, "student.cfg"), *rp = tu_path(dir, "r.ini");
    assert_int_equal(tu_write(tc, teacher_cfg, strlen(teacher_cfg)), 0);
    assert_int_equal(tu_write(sc, student_cfg, strlen(student_cfg)), 0);
    snprintf(recipe, sizeof recipe,
             "# tiny\ndata = csv:%s/t.csv\nout = %s/run\n\n[teacher] spec = %s epochs = 15 lr = 0.01\n"
             "[student] spec = %s epochs = 15 lr = 0.01\n[distill] temperature = 2 alpha = 0.5\n"
             "[prune] sparsity = 0.5 schedule = agp steps = 2 finetune-epochs = 2\n"
             "[quantize] calib-method = percentile\n[verify] max-drop = segment=100,price=1000\n"
             "[summary] max-drop = segment=100,price=1000\n",
             dir, dir, tc, sc);
    assert_int_equal(tu_write(rp, recipe, strlen(recipe)), 0);
    snprintf(args, sizeof args, "pipeline '%s' --quiet", rp);
    int rc = tu_run_mtc(dir, args, &out, &err);
    if (rc != 0) fail_msg("pipeline exited %d:\n%s\n%s", rc, out, err);
    char *run = tu_path(dir, "run");
    const char *files[] = {"teacher.mtc", "student-scratch.mtc", "soft.mtl", "student.mtc", "pruned.mtc",
                           "student.q8.mtc", "verify.json", "verify.xml", "summary.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (!exists(run, files[i])) fail_msg("missing %s", files[i]);
    /* the closing table names every stage and ends in a verdict */
    assert_non_null(strstr(out, "student-scratch.mtc"));
    assert_non_null(strstr(out, "student.q8.mtc"));
    assert_non_null(strstr(out, "PASS: every candidate within its budgets"));
    free(out);
    free(err);
    /* [summary] without budgets: the same table as a report, no verdicts */
    char *end = strstr(recipe, "[summary] max-drop");
    assert_non_null(end);
    snprintf(end, sizeof recipe - (size_t)(end - recipe), "[summary]\n");
    char *o = strstr(recipe, "/run\n");
    assert_non_null(o);
    memmove(o + 5, o + 4, strlen(o + 4) + 1); /* out = DIR/run2 */
    memcpy(o, "/run2", 5);
    assert_int_equal(tu_write(rp, recipe, strlen(recipe)), 0);
    rc = tu_run_mtc(dir, args, &out, &err);
    if (rc != 0) fail_msg("pipeline (report summary) exited %d:\n%s\n%s", rc, out, err);
    assert_non_null(strstr(out, "student.q8.mtc"));
    assert_null(strstr(out, "every candidate within its budgets"));
    assert_null(strstr(out, "over its budget"));
    char *sj = tu_path(dir, "run2/summary.json"), *js = (char *)tu_read(sj, NULL);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"drop\""));
    assert_null(strstr(js, "\"pass\""));
    free(js); free(sj);
    free(out);
    free(err);
    /* [summary] asking for JUnit only: a gate with the default budgets; the
     * recipe has no threads key, so the stages get the pipeline's --threads */
    end = strstr(recipe, "[summary]");
    snprintf(end, sizeof recipe - (size_t)(end - recipe), "[summary] junit = %s/s.xml\n", dir);
    assert_int_equal(tu_write(rp, recipe, strlen(recipe)), 0);
    snprintf(args, sizeof args, "pipeline '%s' --threads 2", rp);
    rc = tu_run_mtc(dir, args, &out, &err);
    if (rc != 0) fail_msg("pipeline (summary junit) exited %d:\n%s\n%s", rc, out, err);
    assert_non_null(strstr(err, "== pipeline: teacher: train"));
    assert_non_null(strstr(err, "--seed 1 --threads 2"));
    char *sx = tu_path(dir, "s.xml"), *xml = (char *)tu_read(sx, NULL);
    assert_non_null(xml);
    assert_non_null(strstr(xml, "<testsuite"));
    free(xml); free(sx);
    free(out);
    free(err);
    free(run); free(tc); free(sc); free(rp);
    tu_rmdir(dir);
    free(dir);
}

static void test_pipeline_bad_recipes_exit_2_with_file_and_line(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out, *err, args[4400];
    char *rp = tu_path(dir, "bad.ini");
    const char *bad = "data = fashion-mnist\nout = x\n[teacher] spec = a.cfg\n[students] spec = b.cfg\n";
    assert_int_equal(tu_write(rp, bad, strlen(bad)), 0);
    snprintf(args, sizeof args, "pipeline '%s'", rp);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "bad.ini:4: unknown section [students]"));
    free(out); free(err);
    const char *nodata = "out = x\n[teacher] spec = a.cfg\n[student] spec = b.cfg\n";
    assert_int_equal(tu_write(rp, nodata, strlen(nodata)), 0);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "needs data = NAME"));
    free(out); free(err);
    snprintf(args, sizeof args, "pipeline '%s/missing.ini'", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "missing.ini"));
    free(out); free(err);
    free(rp);
    tu_rmdir(dir);
    free(dir);
}

/* String class labels keep the ids they were trained with: a test file that
 * lacks class "a" must not shift "b" and "c" to ids 0 and 1. */
static void test_string_classes_are_stored_and_reused(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out, *err, args[8192];
    char *tr = tu_path(dir, "train.csv"), *te = tu_path(dir, "test.csv"), *sp = tu_path(dir, "s.cfg");
    FILE *f = fopen(tr, "w"), *g = fopen(te, "w");
    fprintf(f, "x1,x2,label\n");
    fprintf(g, "x1,x2,label\n");
    mtc_rng r;
    mtc_rng_seed(&r, 3);
    for (int i = 0; i < 600; i++) {
        float x = 3 * mtc_rng_uniform(&r), y = mtc_rng_uniform(&r);
        const char *lab = x < 1 ? "a" : x < 2 ? "b" : "c";
        fprintf(f, "%.4f,%.4f,%s\n", x, y, lab);
        if (x >= 1.1f && (x < 1.9f || x > 2.1f)) fprintf(g, "%.4f,%.4f,%s\n", x, y, lab);
    }
    fclose(f);
    fclose(g);
    const char *spec = "[input] shape = 2 columns = x1,x2\n[dense] units = 16 act = relu\n"
                       "[task label] kind = cls classes = 3\n";
    assert_int_equal(tu_write(sp, spec, strlen(spec)), 0);
    snprintf(args, sizeof args, "train --spec '%s' --data 'csv:%s@all' --epochs 40 --lr 0.01 --val 0 --no-test "
             "--quiet -o '%s/m.mtc'", sp, tr, dir);
    assert_int_equal(tu_run_mtc(dir, args, NULL, NULL), 0);
    snprintf(args, sizeof args, "eval '%s/m.mtc' --data 'csv:%s@all' --json", dir, te);
    int rc = tu_run_mtc(dir, args, &out, &err);
    if (rc) fail_msg("eval exited %d: %s", rc, err);
    mtc_json j;
    mtc_err e = {0};
    assert_int_equal(mtc_json_parse(out, strlen(out), &j, &e), 0);
    const mtc_json *tasks = mtc_json_get(&j, "tasks");
    double acc = mtc_json_num(mtc_json_get(tasks, "label"), "accuracy", 0);
    if (!(acc > 0.9)) fail_msg("accuracy %.3f on a file without class 'a'", acc);
    mtc_json_free(&j);
    free(out);
    free(err);
    free(tr); free(te); free(sp);
    tu_rmdir(dir);
    free(dir);
}

/* Labels with gaps through the CLI: a CSV whose segment column misses a
 * label on every third row and whose level column on every other (empty,
 * NA, and the --missing marker '-') trains and evaluates; eval's JSON
 * gives the labelled counts of the test split, as counted here. A task
 * labelled only on test rows (every fifth) is exit 2 naming it; a label
 * column with no label at all is exit 2 naming the column. */
static void test_missing_labels_train_and_report_counts(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[8192];
    char *csv = tu_path(dir, "gaps.csv"), *sp = tu_path(dir, "s.cfg"), *bad = tu_path(dir, "bad.csv");
    FILE *f = fopen(csv, "w"), *g = fopen(bad, "w");
    fprintf(f, "x1,x2,segment,level\n");
    fprintf(g, "x1,x2,segment,level\n");
    mtc_rng r;
    mtc_rng_seed(&r, 5);
    int64_t want_seg = 0, want_lev = 0;
    for (int i = 0; i < 500; i++) {
        float x = 2 * mtc_rng_uniform(&r) - 1, y = 2 * mtc_rng_uniform(&r) - 1;
        int seg = i % 3 != 1, lev = i % 2 == 0;
        if (i % 5 == 4) want_seg += seg, want_lev += lev; /* the test split */
        fprintf(f, "%.4f,%.4f,%s,", x, y, seg ? (x > 0 ? "hi" : "lo") : (i % 2 ? "" : "NA"));
        if (lev) fprintf(f, "%.4f\n", 2 * x + y);
        else fprintf(f, "%s\n", i % 4 == 1 ? "-" : "");
        fprintf(g, "%.4f,%.4f,%s,%s\n", x, y, x > 0 ? "hi" : "lo", i % 5 == 4 ? "1.5" : "");
    }
    fclose(f);
    fclose(g);
    const char *spec = "[input] shape = 2 columns = x1,x2\n[dense] units = 16 act = relu\n"
                       "[task segment] kind = cls classes = 2\n[task level] kind = reg outputs = 1\n";
    assert_int_equal(tu_write(sp, spec, strlen(spec)), 0);
    snprintf(args, sizeof args, "train --spec '%s' --data 'csv:%s' --missing - --epochs 3 --quiet -o '%s/m.mtc'",
             sp, csv, dir);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("train: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "eval '%s/m.mtc' --data 'csv:%s' --missing - --json", dir, csv);
    if (tu_run_mtc(dir, args, &out, &err)) fail_msg("eval: %s", err);
    mtc_json j;
    mtc_err e = {0};
    assert_int_equal(mtc_json_parse(out, strlen(out), &j, &e), 0);
    const mtc_json *tasks = mtc_json_get(&j, "tasks");
    assert_int_equal((int64_t)mtc_json_num(mtc_json_get(tasks, "segment"), "labelled", -1), want_seg);
    assert_int_equal((int64_t)mtc_json_num(mtc_json_get(tasks, "level"), "labelled", -1), want_lev);
    mtc_json_free(&j);
    free(out); free(err);
    /* without --missing, '-' is not a number */
    snprintf(args, sizeof args, "eval '%s/m.mtc' --data 'csv:%s'", dir, csv);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "not a number"));
    free(out); free(err);
    /* a transfer set without the model's inputs: exit 2 naming it */
    char *odd = tu_path(dir, "odd.csv");
    assert_int_equal(tu_write(odd, "x1,z\n1,2\n3,4\n", 14), 0);
    snprintf(args, sizeof args, "label '%s/m.mtc' --data 'csv:%s' --missing - --transfer 'csv:%s' -o '%s/s.mtl'", dir,
             csv, odd, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    if (!strstr(err, "odd.csv") || strchr(err, '\n') != err + strlen(err) - 1) fail_msg("message: %s", err);
    free(out); free(err); free(odd);
    /* level labelled only on test rows: nothing to train it on */
    snprintf(args, sizeof args, "train --spec '%s' --data 'csv:%s' --epochs 1 --quiet -o '%s/b.mtc'", sp, bad, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    if (!strstr(err, "level") || !strstr(err, "no labelled sample")) fail_msg("message: %s", err);
    free(out); free(err);
    /* a label column with no label at all */
    f = fopen(bad, "w");
    fprintf(f, "x1,x2,segment,level\n1,2,hi,\n3,4,lo,NA\n");
    fclose(f);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    if (!strstr(err, "'level'") || !strstr(err, "every cell is missing")) fail_msg("message: %s", err);
    free(out); free(err);
    free(csv); free(sp); free(bad);
    tu_rmdir(dir);
    free(dir);
}

/* Disjoint tasks from two files (a.csv labels p, b.csv labels q, same
 * inputs): --data A+B trains one model with two heads under each
 * --task-sampling mode; each task learns (accuracy well above chance on
 * its own test rows), the mode is recorded in the checkpoint, the same seed
 * gives the same bytes, and a bad mode is exit 2. */
static void test_task_sampling_modes_on_disjoint_tasks(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[8192];
    char *a = tu_path(dir, "a.csv"), *b = tu_path(dir, "b.csv"), *sp = tu_path(dir, "s.cfg");
    FILE *f = fopen(a, "w"), *g = fopen(b, "w");
    fprintf(f, "x1,x2,p\n");
    fprintf(g, "x1,x2,q\n");
    mtc_rng r;
    mtc_rng_seed(&r, 9);
    for (int i = 0; i < 400; i++) {
        float x = 2 * mtc_rng_uniform(&r) - 1, y = 2 * mtc_rng_uniform(&r) - 1;
        if (i % 4) fprintf(f, "%.4f,%.4f,%d\n", x, y, x > 0); /* 3x as many p as q */
        else fprintf(g, "%.4f,%.4f,%d\n", x, y, y > 0);
    }
    fclose(f);
    fclose(g);
    const char *spec = "[input] shape = 2 columns = x1,x2\n[dense] units = 16 act = relu\n"
                       "[task p] kind = cls classes = 2\n[task q] kind = cls classes = 2\n";
    assert_int_equal(tu_write(sp, spec, strlen(spec)), 0);
    static const char *const modes[] = {"proportional", "round-robin", "temperature:3"};
    for (int k = 0; k < 3; k++) {
        for (int rep = 0; rep < 2; rep++) {
            snprintf(args, sizeof args, "train --spec '%s' --data 'csv:%s+csv:%s' --task-sampling %s --epochs 20 "
                     "--lr 0.01 --quiet --json -o '%s/m%d.mtc'", sp, a, b, modes[k], dir, rep);
            if (tu_run_mtc(dir, args, &out, &err)) fail_msg("train %s: %s", modes[k], err);
            mtc_json j;
            mtc_err e = {0};
            assert_int_equal(mtc_json_parse(out, strlen(out), &j, &e), 0);
            const mtc_json *t = mtc_json_get(&j, "tasks");
            double ap = mtc_json_num(mtc_json_get(t, "p"), "accuracy", 0), aq = mtc_json_num(mtc_json_get(t, "q"), "accuracy", 0);
            if (!(ap > 0.85 && aq > 0.85)) fail_msg("%s: accuracy p %.3f q %.3f", modes[k], ap, aq);
            mtc_json_free(&j);
            free(out); free(err);
        }
        char *m0 = tu_path(dir, "m0.mtc"), *m1 = tu_path(dir, "m1.mtc");
        size_t n0, n1;
        unsigned char *b0 = tu_read(m0, &n0), *b1 = tu_read(m1, &n1);
        assert_true(b0 && b1 && n0 == n1 && !memcmp(b0, b1, n0));
        char want[64];
        snprintf(want, sizeof want, "\"task_sampling\":\"%.*s\"", (int)strcspn(modes[k], ":"), modes[k]);
        snprintf(args, sizeof args, "inspect '%s' --json", m0);
        assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
        if (!strstr(out, want)) fail_msg("%s not in the checkpoint's metadata", want);
        free(out); free(err); free(b0); free(b1); free(m0); free(m1);
    }
    snprintf(args, sizeof args, "train --spec '%s' --data 'csv:%s+csv:%s' --task-sampling sometimes -o '%s/x.mtc'",
             sp, a, b, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "--task-sampling"));
    free(out); free(err);
    free(a); free(b); free(sp);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_runs_every_stage_and_prints_the_table),
        cmocka_unit_test(test_pipeline_bad_recipes_exit_2_with_file_and_line),
        cmocka_unit_test(test_string_classes_are_stored_and_reused),
        cmocka_unit_test(test_missing_labels_train_and_report_counts),
        cmocka_unit_test(test_task_sampling_modes_on_disjoint_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
