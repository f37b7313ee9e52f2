/*
 * test_mpi.c — mtc as an MPI job on this machine (OpenMPI's mpirun,
 * --oversubscribe: more ranks than cores is fine for correctness):
 *   - `mpirun -np 2` and `-np 3` (an uneven share of the chunks) of
 *     `mtc label` write the file the single process writes, byte for byte,
 *     soft labels and hints alike; `mtc eval` under -np 3 and `mtc verify`
 *     under -np 2 report what one process does;
 *   - a bad flag is an error on every rank: a non-zero exit within seconds;
 *   - kill -9 of one rank mid-job ends the job with a non-zero exit within
 *     seconds, and the output file that was there before is left as it was;
 *   - data-parallel `mtc train` (batchnorm, dropout, two tasks): -np 2 and
 *     -np 3 give the same bytes run after run; without batchnorm and
 *     dropout, -np 2 lands where one process does (accuracy within 1 point,
 *     MAE within 2%: the gradients are the same sums in another order);
 *     a rank killed after a checkpoint ends the job non-zero and --resume
 *     under -np 2 writes the uninterrupted run's bytes;
 *   - --overlap (sums on their own thread during the backward pass) writes
 *     the bytes of the sums after it, -np 2 and 3;
 *   - --shard-data: each rank holds only its part of the training split;
 *     the same bytes every run, close to one process on the whole split,
 *     and kill -9 + --resume gives the uninterrupted run's bytes.
 * Skipped, with the reason printed, when mtc was built without MPI or
 * mpirun is missing. Runs from the repository root (as `make test` does).
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *bin(void)
{
    const char *b = getenv("MTC_BIN");
    return b && *b ? b : "build/mtc";
}

/* Under `make sanitize`: OpenMPI's dlopen'ed components leak at exit from
 * modules LeakSanitizer cannot name (so no suppression file matches them);
 * leak checking is off for the ranks only. Single-process runs of the same
 * code (test_distill, test_pipeline) keep it. */
#define MPIRUN "timeout 120 mpirun --allow-run-as-root --oversubscribe --bind-to none -x ASAN_OPTIONS=detect_leaks=0"

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = tu_read(a, &na), *y = tu_read(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* A teacher with a regression and a classification head on a CSV. */
static void make_teacher(const char *dir, char *model, char *csv, size_t n)
{
    snprintf(csv, n, "%s/d.csv", dir);
    snprintf(model, n, "%s/t.mtc", dir);
    tu_write_synth_csv(csv, 3000, 4);
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model("[input] shape=3 columns=x1,x2,x3\n[dense] units=32 act=relu\n"
                                    "[dense] units=16 act=tanh\n[task fine] kind=cls classes=4\n"
                                    "[task lvl] kind=reg outputs=1 column=x0\n", &m, 5, &e), 0);
    assert_int_equal(mtc_model_save(&m, model, "{}", &e), 0);
    mtc_model_free(&m);
}

static void test_label_under_mpirun_writes_the_single_process_file(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), model[600], csv[600], cmd[4096];
    make_teacher(dir, model, csv, sizeof model);
    const char *common = "--rows-per-chunk 256 --batch 100 --hints --quiet";
    snprintf(cmd, sizeof cmd, "%s label %s --data csv:%s %s -o %s/one.mtl >/dev/null", bin(), model, csv, common, dir);
    assert_int_equal(sh(cmd), 0);
    for (int np = 2; np <= 3; np++) {
        snprintf(cmd, sizeof cmd, MPIRUN " -np %d %s label %s --data csv:%s %s -o %s/np%d.mtl >%s/np.out 2>%s/np.err",
                 np, bin(), model, csv, common, dir, np, dir, dir);
        int rc = sh(cmd);
        if (rc) {
            char *p = tu_path(dir, "np.err"), *msg = (char *)tu_read(p, NULL);
            fail_msg("mpirun -np %d exited %d: %.400s", np, rc, msg ? msg : "?");
        }
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/one.mtl", dir);
        snprintf(b, sizeof b, "%s/np%d.mtl", dir, np);
        if (!same_file(a, b)) fail_msg("-np %d wrote another file than one process", np);
        /* one 'wrote' line: rank 0 reports, the others are silent */
        char *o = tu_path(dir, "np.out"), *txt = (char *)tu_read(o, NULL);
        assert_non_null(txt);
        char *w = strstr(txt, "wrote");
        assert_true(w && !strstr(w + 1, "wrote"));
        free(o);
        free(txt);
    }
    /* eval: the ranks share the forward passes, rank 0 reports the same metrics */
    snprintf(cmd, sizeof cmd, "%s eval %s --data csv:%s@all --json > %s/e1.json 2>/dev/null", bin(), model, csv, dir);
    assert_int_equal(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, MPIRUN " -np 3 %s eval %s --data csv:%s@all --json > %s/e3.json 2>/dev/null", bin(),
             model, csv, dir);
    assert_int_equal(sh(cmd), 0);
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/e1.json", dir);
    snprintf(b, sizeof b, "%s/e3.json", dir);
    if (!same_file(a, b)) fail_msg("mpirun -np 3 mtc eval reported other metrics than one process");
    /* verify: the same per-task figures (speed aside) and the same verdict, on a trained model */
    char spec[700], trained[700];
    snprintf(spec, sizeof spec, "%s/v.cfg", dir);
    snprintf(trained, sizeof trained, "%s/v.mtc", dir);
    const char *vs = "[input] shape=4 columns=x0,x1,x2,x3\n[dense] units=16 act=relu\n[task fine] kind=cls classes=4\n";
    assert_int_equal(tu_write(spec, vs, strlen(vs)), 0);
    snprintf(cmd, sizeof cmd, "%s train --spec %s --data csv:%s --epochs 5 --quiet -o %s >/dev/null 2>&1", bin(), spec,
             csv, trained);
    assert_int_equal(sh(cmd), 0);
    for (int np = 1; np <= 2; np++) {
        snprintf(cmd, sizeof cmd, "%s%s verify --reference %s --candidate %s --data csv:%s@all --max-drop fine=1 --json "
                 "--quiet > %s/v%d.json 2>/dev/null", np > 1 ? MPIRUN " -np 2 " : "", bin(), trained, trained, csv, dir, np);
        int vrc = sh(cmd);
        if (vrc != 0) fail_msg("verify (np %d) exited %d", np, vrc);
    }
    snprintf(a, sizeof a, "%s/v1.json", dir);
    snprintf(b, sizeof b, "%s/v2.json", dir);
    char *ja = (char *)tu_read(a, NULL), *jb = (char *)tu_read(b, NULL);
    assert_true(ja && jb);
    mtc_json x, y;
    mtc_err e = {0};
    assert_int_equal(mtc_json_parse(ja, strlen(ja), &x, &e), 0);
    assert_int_equal(mtc_json_parse(jb, strlen(jb), &y, &e), 0);
    const char *keys[3] = {"reference", "candidate", "drop"};
    for (int k = 0; k < 3; k++) {
        double u = mtc_json_num(mtc_json_get(mtc_json_get(&x, "tasks"), "fine"), keys[k], NAN);
        double v = mtc_json_num(mtc_json_get(mtc_json_get(&y, "tasks"), "fine"), keys[k], NAN);
        if (!(u == v)) fail_msg("verify %s: one process %.17g, two ranks %.17g", keys[k], u, v);
    }
    mtc_json_free(&x);
    mtc_json_free(&y);
    free(ja);
    free(jb);
    tu_rmdir(dir);
    free(dir);
}

static void test_bad_flag_and_dead_rank_end_the_job(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), cmd[4096];
    snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s label --no-such-flag >/dev/null 2>&1", bin());
    int rc = sh(cmd);
    assert_true(rc != 0 && rc != 124); /* 124: timeout's, a hang */
    /* a job long enough to be killed in the middle: a wide MLP over 40,000 rows */
    char model[600], csv[700], out[700];
    snprintf(model, sizeof model, "%s/wide.mtc", dir);
    snprintf(csv, sizeof csv, "%s/big.csv", dir);
    snprintf(out, sizeof out, "%s/old.mtl", dir);
    tu_write_synth_csv(csv, 40000, 6);
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model("[input] shape=4 columns=x0,x1,x2,x3\n[dense] units=2048 act=relu\n"
                                    "[dense] units=2048 act=relu\n[dense] units=2048 act=relu\n"
                                    "[task fine] kind=cls classes=4\n", &m, 2, &e), 0);
    assert_int_equal(mtc_model_save(&m, model, "{}", &e), 0);
    mtc_model_free(&m);
    assert_int_equal(tu_write(out, "previous contents", 17), 0);
    /* start, kill -9 the last rank once both run, wait for mpirun */
    snprintf(cmd, sizeof cmd,
             "(" MPIRUN " -np 2 %s label %s --data csv:%s --rows-per-chunk 64 --quiet -o %s >/dev/null 2>&1; "
             "echo $? > %s/rc) & for i in $(seq 100); do [ $(pgrep -fc 'mtc label %s') -ge 2 ] && break; sleep 0.1; done; "
             "sleep 0.5; pgrep -f 'mtc label %s' | tail -1 | xargs -r kill -9; wait",
             bin(), model, csv, out, dir, model, model);
    assert_int_equal(sh(cmd), 0);
    char *rcp = tu_path(dir, "rc"), *rct = (char *)tu_read(rcp, NULL);
    assert_non_null(rct);
    int jrc = atoi(rct);
    if (jrc == 0 || jrc == 124) fail_msg("the job exited %d after a rank was killed", jrc);
    size_t n;
    unsigned char *kept = tu_read(out, &n);
    assert_true(kept && n == 17 && !memcmp(kept, "previous contents", 17));
    free(kept);
    free(rcp);
    free(rct);
    tu_rmdir(dir);
    free(dir);
}


static void write_spec(const char *path, const char *text)
{
    assert_int_equal(tu_write(path, text, strlen(text)), 0);
}

static double eval_num(const char *dir, const char *model, const char *csv, const char *task, const char *key)
{
    char cmd[4096], path[700];
    snprintf(path, sizeof path, "%s/ev.json", dir);
    snprintf(cmd, sizeof cmd, "%s eval %s --data csv:%s --json > %s 2>/dev/null", bin(), model, csv, path);
    if (sh(cmd)) return NAN;
    char *txt = (char *)tu_read(path, NULL);
    mtc_json j;
    mtc_err e = {0};
    double v = NAN;
    if (txt && mtc_json_parse(txt, strlen(txt), &j, &e) == 0) {
        v = mtc_json_num(mtc_json_get(mtc_json_get(&j, "tasks"), task), key, NAN);
        mtc_json_free(&j);
    }
    free(txt);
    return v;
}

static void test_data_parallel_train(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), cmd[4096], csv[700], spec[700], a[700], b[700];
    snprintf(csv, sizeof csv, "%s/d.csv", dir);
    tu_write_synth_csv(csv, 3000, 8);
    snprintf(spec, sizeof spec, "%s/bn.cfg", dir);
    write_spec(spec, "[input] shape=3 columns=x1,x2,x3\n[dense] units=32\n[batchnorm]\n[act] fn=relu\n[dropout] p=0.2\n"
                     "[dense] units=16 act=tanh\n[task fine] kind=cls classes=4\n[task lvl] kind=reg outputs=1 column=x0\n");
    /* the same bytes run after run, for 2 and for 3 (uneven shares) ranks */
    for (int np = 2; np <= 3; np++)
        for (int run = 0; run < 2; run++) {
            snprintf(cmd, sizeof cmd, MPIRUN " -np %d %s train --spec %s --data csv:%s --epochs 3 --batch 64 --threads 1 "
                     "--quiet -o %s/np%d_%d.mtc > %s/out 2> %s/err", np, bin(), spec, csv, dir, np, run, dir, dir);
            int rc = sh(cmd);
            if (rc) {
                char *p = tu_path(dir, "err"), *msg = (char *)tu_read(p, NULL);
                fail_msg("mpirun -np %d train exited %d: %.400s", np, rc, msg ? msg : "?");
            }
            if (run) {
                snprintf(a, sizeof a, "%s/np%d_0.mtc", dir, np);
                snprintf(b, sizeof b, "%s/np%d_1.mtc", dir, np);
                if (!same_file(a, b)) fail_msg("-np %d: two runs wrote different checkpoints", np);
            }
        }
    /* one rank's report: a single 'wrote' line */
    char *o = tu_path(dir, "out"), *txt = (char *)tu_read(o, NULL);
    assert_non_null(txt);
    char *w = strstr(txt, "wrote");
    assert_true(w && !strstr(w + 1, "wrote"));
    free(o);
    free(txt);
    /* no batchnorm, no dropout: two ranks train what one process does, up
     * to the order of the gradient sums */
    snprintf(spec, sizeof spec, "%s/plain.cfg", dir);
    write_spec(spec, "[input] shape=3 columns=x1,x2,x3\n[dense] units=32 act=relu\n[dense] units=16 act=tanh\n"
                     "[task fine] kind=cls classes=4\n[task lvl] kind=reg outputs=1 column=x0\n");
    snprintf(cmd, sizeof cmd, "%s train --spec %s --data csv:%s --epochs 4 --batch 64 --threads 2 --quiet -o %s/p1.mtc "
             ">/dev/null 2>&1", bin(), spec, csv, dir);
    assert_int_equal(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s train --spec %s --data csv:%s --epochs 4 --batch 64 --threads 1 --quiet "
             "-o %s/p2.mtc >/dev/null 2>&1", bin(), spec, csv, dir);
    assert_int_equal(sh(cmd), 0);
    snprintf(a, sizeof a, "%s/p1.mtc", dir);
    snprintf(b, sizeof b, "%s/p2.mtc", dir);
    double acc1 = eval_num(dir, a, csv, "fine", "accuracy"), acc2 = eval_num(dir, b, csv, "fine", "accuracy");
    double mae1 = eval_num(dir, a, csv, "lvl", "mae"), mae2 = eval_num(dir, b, csv, "lvl", "mae");
    print_message("one process: accuracy %.4f MAE %.4f; two ranks: %.4f %.4f\n", acc1, mae1, acc2, mae2);
    if (!(fabs(acc1 - acc2) <= 0.01 && fabs(mae1 - mae2) <= 0.02 * mae1))
        fail_msg("two ranks: accuracy %.4f MAE %.4f, one process %.4f %.4f", acc2, mae2, acc1, mae1);
    /* a few steps (one epoch: 34 of 64 rows): the weights themselves. Per
     * step the summed gradient differs from one process's by rounding
     * (~1e-7 relative: another order of the same sums); Adam's update
     * lr·m/sqrt(v) carries that relative difference, k·lr·1e-7 = 3.4e-9
     * after k = 34 steps at lr 1e-3, far below a weight's own ulp: what
     * differs is the last bit or two of a weight where an update rounds
     * the other way. Bound: 8 ulp of the largest weight (measured: 1). */
    for (int np = 1; np <= 2; np++) {
        snprintf(cmd, sizeof cmd, "%s%s train --spec %s --data csv:%s --epochs 1 --batch 64 --threads %d --quiet "
                 "-o %s/few%d.mtc >/dev/null 2>&1", np > 1 ? MPIRUN " -np 2 " : "", bin(), spec, csv, 3 - np, dir, np);
        assert_int_equal(sh(cmd), 0);
    }
    {
        mtc_model m1, m2;
        mtc_err e = {0};
        snprintf(a, sizeof a, "%s/few1.mtc", dir);
        snprintf(b, sizeof b, "%s/few2.mtc", dir);
        assert_int_equal(mtc_model_load(a, &m1, NULL, &e), 0);
        assert_int_equal(mtc_model_load(b, &m2, NULL, &e), 0);
        assert_int_equal(m1.nparams, m2.nparams);
        double wmax = 0, dmax = 0;
        for (int64_t i = 0; i < m1.nparams; i++) {
            wmax = fmax(wmax, fabs(m1.params[i]));
            dmax = fmax(dmax, fabs((double)m1.params[i] - m2.params[i]));
        }
        print_message("34 steps: largest weight %.4f, largest difference one process vs two ranks %.3g\n", wmax, dmax);
        if (!(dmax <= 8 * ldexp(wmax, -23)))
            fail_msg("34 steps: weights of two ranks differ from one process's by %.3g (largest weight %.4f)", dmax, wmax);
        mtc_model_free(&m1);
        mtc_model_free(&m2);
    }
    tu_rmdir(dir);
    free(dir);
}

/* Every epoch line of an MPI run ends with the parameters' hash, which the
 * ranks checked equal ("params H on all N ranks"): epochs of them. */
static void check_epoch_hashes(const char *log, int epochs, int np)
{
    char want[64];
    snprintf(want, sizeof want, " on all %d ranks", np);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, want)); p++) n++;
    if (n != epochs) fail_msg("-np %d: %d epoch lines with the ranks' parameter hash, expected %d: %.600s", np, n, epochs,
                              log ? log : "?");
}

/* --overlap: the gradient sums run bucket by bucket on their own thread
 * during the backward pass. A model whose gradient falls into three
 * buckets (heads; the 600x512 weights, more than the 1 MiB bucket; the
 * batchnorm and the first layer): the bytes of the sums after the backward
 * pass, for 2 and 3 ranks. */
static void test_overlapped_sums_give_the_same_bytes(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), cmd[4096], csv[700], spec[700], a[700], b[700];
    snprintf(csv, sizeof csv, "%s/d.csv", dir);
    tu_write_synth_csv(csv, 1500, 10);
    snprintf(spec, sizeof spec, "%s/o.cfg", dir);
    write_spec(spec, "[input] shape=3 columns=x1,x2,x3\n[dense] units=600\n[batchnorm]\n[act] fn=relu\n"
                     "[dense] units=512 act=tanh\n[task fine] kind=cls classes=4\n[task lvl] kind=reg outputs=1 column=x0\n");
    for (int np = 2; np <= 3; np++) {
        for (int ov = 0; ov < 2; ov++) {
            snprintf(cmd, sizeof cmd, MPIRUN " -np %d %s train --spec %s --data csv:%s --epochs 2 --batch 64 --threads 1 "
                     "%s -o %s/np%d_%d.mtc > %s/out 2> %s/err", np, bin(), spec, csv, ov ? "--overlap" : "", dir, np, ov,
                     dir, dir);
            int rc = sh(cmd);
            char *p = tu_path(dir, "err"), *msg = (char *)tu_read(p, NULL);
            if (rc) fail_msg("mpirun -np %d train%s exited %d: %.400s", np, ov ? " --overlap" : "", rc, msg ? msg : "?");
            check_epoch_hashes(msg, 2, np);
            /* the report says the sums ran beside the backward pass */
            if (ov && !(msg && strstr(msg, "--overlap: the sums ran beside the backward pass")))
                fail_msg("-np %d --overlap: no overlap reported: %.400s", np, msg ? msg : "?");
            free(p);
            free(msg);
        }
        snprintf(a, sizeof a, "%s/np%d_0.mtc", dir, np);
        snprintf(b, sizeof b, "%s/np%d_1.mtc", dir, np);
        if (!same_file(a, b)) fail_msg("-np %d: --overlap wrote another checkpoint than the sums after the backward pass", np);
    }
    tu_rmdir(dir);
    free(dir);
}

/* --shard-data: each rank loads only its part of the training split (the
 * report names it) and trains on it; the same bytes every run; close to
 * one process on the whole split; --task-sampling other than proportional
 * is an error on every rank. */
static void test_sharded_training(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), cmd[4096], csv[700], spec[700], a[700], b[700];
    snprintf(csv, sizeof csv, "%s/d.csv", dir);
    tu_write_synth_csv(csv, 3000, 11);
    snprintf(spec, sizeof spec, "%s/p.cfg", dir);
    write_spec(spec, "[input] shape=3 columns=x1,x2,x3\n[dense] units=32 act=relu\n[dense] units=16 act=tanh\n"
                     "[task fine] kind=cls classes=4\n[task lvl] kind=reg outputs=1 column=x0\n");
    for (int np = 2; np <= 3; np++)
        for (int run = 0; run < (np == 2 ? 2 : 1); run++) {
            snprintf(cmd, sizeof cmd, MPIRUN " -np %d %s train --spec %s --data csv:%s --epochs 4 --batch 64 --threads 1 "
                     "--shard-data -o %s/s%d_%d.mtc > %s/out 2> %s/err", np, bin(), spec, csv, dir, np, run, dir, dir);
            int rc = sh(cmd);
            char *p = tu_path(dir, "err"), *msg = (char *)tu_read(p, NULL);
            if (rc) fail_msg("mpirun -np %d train --shard-data exited %d: %.400s", np, rc, msg ? msg : "?");
            /* 3000 rows: 2400 in train; rank 0 holds the first 2400/np */
            char want[160];
            snprintf(want, sizeof want, "(rank 0's shard: samples 0..%d of 2400)", 2400 / np - 1);
            if (!msg || !strstr(msg, want)) fail_msg("-np %d: no '%s' in: %.600s", np, want, msg ? msg : "?");
            check_epoch_hashes(msg, 4, np);
            free(p);
            free(msg);
        }
    snprintf(a, sizeof a, "%s/s2_0.mtc", dir);
    snprintf(b, sizeof b, "%s/s2_1.mtc", dir);
    if (!same_file(a, b)) fail_msg("--shard-data -np 2: two runs wrote different checkpoints");
    snprintf(cmd, sizeof cmd, "%s train --spec %s --data csv:%s --epochs 4 --batch 64 --threads 2 --quiet -o %s/one.mtc "
             ">/dev/null 2>&1", bin(), spec, csv, dir);
    assert_int_equal(sh(cmd), 0);
    snprintf(b, sizeof b, "%s/one.mtc", dir);
    for (int np = 2; np <= 3; np++) {
        snprintf(a, sizeof a, "%s/s%d_0.mtc", dir, np);
        double acc1 = eval_num(dir, b, csv, "fine", "accuracy"), acc2 = eval_num(dir, a, csv, "fine", "accuracy");
        double mae1 = eval_num(dir, b, csv, "lvl", "mae"), mae2 = eval_num(dir, a, csv, "lvl", "mae");
        print_message("one process: accuracy %.4f MAE %.4f; %d ranks, sharded: %.4f %.4f\n", acc1, mae1, np, acc2, mae2);
        /* another sample order (each rank shuffles its own shard): the same
         * model up to the noise of a 4-epoch run */
        if (!(fabs(acc1 - acc2) <= 0.03 && fabs(mae1 - mae2) <= 0.1 * mae1))
            fail_msg("%d sharded ranks: accuracy %.4f MAE %.4f, one process %.4f %.4f", np, acc2, mae2, acc1, mae1);
    }
    /* distillation from that model's soft labels and hints (the file covers
     * the whole split; each rank reads its shard's rows) */
    char st_spec[700];
    snprintf(st_spec, sizeof st_spec, "%s/st.cfg", dir);
    write_spec(st_spec, "[input] shape=3 columns=x1,x2,x3\n[dense] units=12 act=relu\n"
                        "[task fine] kind=cls classes=4\n[task lvl] kind=reg outputs=1 column=x0\n");
    snprintf(cmd, sizeof cmd, "%s label %s --data csv:%s --hints --rows-per-chunk 500 --quiet -o %s/soft.mtl >/dev/null 2>&1",
             bin(), b, csv, dir);
    assert_int_equal(sh(cmd), 0);
    const char *kd = "--epochs 3 --batch 64 --hint-weight 0.5 --quiet";
    for (int run = 0; run < 2; run++) {
        snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s distill --spec %s --data csv:%s --soft %s/soft.mtl %s --threads 1 "
                 "--shard-data -o %s/kd%d.mtc > %s/out 2> %s/err", bin(), st_spec, csv, dir, kd, dir, run, dir, dir);
        int rc = sh(cmd);
        if (rc) {
            char *p = tu_path(dir, "err"), *msg = (char *)tu_read(p, NULL);
            fail_msg("mpirun -np 2 distill --shard-data exited %d: %.400s", rc, msg ? msg : "?");
        }
    }
    snprintf(a, sizeof a, "%s/kd0.mtc", dir);
    snprintf(b, sizeof b, "%s/kd1.mtc", dir);
    if (!same_file(a, b)) fail_msg("distill --shard-data -np 2: two runs wrote different checkpoints");
    /* and data parallel without shards (each rank its rows of every global batch) */
    snprintf(cmd, sizeof cmd, MPIRUN " -np 3 %s distill --spec %s --data csv:%s --soft %s/soft.mtl %s --threads 1 "
             "-o %s/kd3.mtc > %s/out 2> %s/err", bin(), st_spec, csv, dir, kd, dir, dir, dir);
    assert_int_equal(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s distill --spec %s --data csv:%s --soft %s/soft.mtl %s --threads 2 -o %s/kd1.mtc "
             ">/dev/null 2>&1", bin(), st_spec, csv, dir, kd, dir);
    assert_int_equal(sh(cmd), 0);
    for (int v = 0; v < 2; v++) {
        if (v) snprintf(a, sizeof a, "%s/kd3.mtc", dir);
        double acc1 = eval_num(dir, b, csv, "fine", "accuracy"), acc2 = eval_num(dir, a, csv, "fine", "accuracy");
        double mae1 = eval_num(dir, b, csv, "lvl", "mae"), mae2 = eval_num(dir, a, csv, "lvl", "mae");
        print_message("distill, one process: accuracy %.4f MAE %.4f; %s: %.4f %.4f\n", acc1, mae1,
                      v ? "3 ranks" : "2 ranks, sharded", acc2, mae2);
        /* not sharded: the same gradients summed in another order (1 point, 2%
         * as for train); sharded: another sample order (3 points, 10%) */
        if (!(fabs(acc1 - acc2) <= (v ? 0.01 : 0.03) && fabs(mae1 - mae2) <= (v ? 0.02 : 0.1) * mae1))
            fail_msg("distill, %s: accuracy %.4f MAE %.4f, one process %.4f %.4f", v ? "3 ranks" : "2 sharded ranks", acc2,
                     mae2, acc1, mae1);
    }
    snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s train --spec %s --data csv:%s --epochs 1 --shard-data --task-sampling "
             "round-robin -o %s/rr.mtc > %s/out 2> %s/err", bin(), spec, csv, dir, dir, dir);
    int rc = sh(cmd);
    char *p = tu_path(dir, "err"), *msg = (char *)tu_read(p, NULL);
    if (rc == 0 || rc == 124 || !msg || !strstr(msg, "--shard-data: --task-sampling round-robin is not supported"))
        fail_msg("--shard-data --task-sampling round-robin: exit %d: %.400s", rc, msg ? msg : "?");
    free(p);
    free(msg);
    tu_rmdir(dir);
    free(dir);
}

/* A rank killed with kill -9 once the first epoch's state is written ends
 * the job; resuming from that state writes the uninterrupted run's bytes:
 * data parallel, and with --shard-data (each rank's epoch order redrawn
 * from the seed, its rank and the epoch). */
static void killed_training_resumes(const char *mode)
{
    char *dir = tu_mkdtemp(), cmd[8192], csv[700], spec[700], full[700], cut[700], args[300];
    snprintf(csv, sizeof csv, "%s/big.csv", dir);
    tu_write_synth_csv(csv, 40000, 9);
    snprintf(spec, sizeof spec, "%s/w.cfg", dir);
    write_spec(spec, "[input] shape=3 columns=x1,x2,x3\n[dense] units=512 act=relu\n[dense] units=512 act=relu\n"
                     "[task fine] kind=cls classes=4\n");
    snprintf(full, sizeof full, "%s/full.mtc", dir);
    snprintf(cut, sizeof cut, "%s/cut.mtc", dir);
    snprintf(args, sizeof args, "--epochs 4 --batch 128 --threads 1 --checkpoint-every 1 --no-test --quiet %s", mode);
    snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s train --spec %s --data csv:%s %s -o %s >/dev/null 2>&1", bin(), spec, csv,
             args, full);
    assert_int_equal(sh(cmd), 0);
    /* the same run, a rank killed once the first epoch's state is written */
    snprintf(cmd, sizeof cmd,
             "(" MPIRUN " -np 2 %s train --spec %s --data csv:%s %s -o %s >/dev/null 2>&1; echo $? > %s/rc) & "
             "for i in $(seq 600); do [ -f %s.state ] && break; sleep 0.05; done; "
             "pgrep -f 'train --spec %s' | tail -1 | xargs -r kill -9; wait",
             bin(), spec, csv, args, cut, dir, cut, spec);
    assert_int_equal(sh(cmd), 0);
    char *rcp = tu_path(dir, "rc"), *rct = (char *)tu_read(rcp, NULL);
    assert_non_null(rct);
    int jrc = atoi(rct);
    if (jrc == 0 || jrc == 124) fail_msg("%s: the training job exited %d after a rank was killed", mode, jrc);
    struct stat sb;
    char state[720];
    snprintf(state, sizeof state, "%s.state", cut);
    assert_int_equal(stat(state, &sb), 0);
    snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s train --spec %s --data csv:%s %s --resume %s -o %s > %s/rout 2>&1", bin(),
             spec, csv, args, state, cut, dir);
    int rrc = sh(cmd);
    if (rrc) {
        char *p = tu_path(dir, "rout"), *msg = (char *)tu_read(p, NULL);
        fail_msg("%s: resume exited %d: %.400s", mode, rrc, msg ? msg : "?");
    }
    if (!same_file(full, cut)) fail_msg("%s: killed and resumed under -np 2: not the uninterrupted run's bytes", mode);
    free(rcp);
    free(rct);
    tu_rmdir(dir);
    free(dir);
}

static void test_killed_training_resumes_to_the_same_bytes(void **st)
{
    (void)st;
    killed_training_resumes("");
    killed_training_resumes("--shard-data");
}

int main(void)
{
    if (!mtc_comm_built_with_mpi()) {
        printf("test_mpi: skipped: mtc was built without MPI (make deps installs OpenMPI; then make)\n");
        return 0;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("test_mpi: skipped: mpirun not found (make deps installs openmpi-bin)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_under_mpirun_writes_the_single_process_file),
        cmocka_unit_test(test_bad_flag_and_dead_rank_end_the_job),
        cmocka_unit_test(test_data_parallel_train),
        cmocka_unit_test(test_overlapped_sums_give_the_same_bytes),
        cmocka_unit_test(test_sharded_training),
        cmocka_unit_test(test_killed_training_resumes_to_the_same_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
