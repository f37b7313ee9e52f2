/*
 * test_reliability.c — crash-safe writes and clear errors for bad input.
 *
 * Kill test: a forked child overwrites a good checkpoint (mtc_model_save) or
 * soft-label file (mtc_soft_write) and is SIGKILLed after a seeded random
 * delay; the file at the path must then be the old one or the complete new
 * one, both loadable, and leftover "<path>.tmp.<pid>" files are never what
 * the loader of <path> reads. Disk full (RLIMIT_FSIZE in a child, a 64 KiB
 * tmpfs when mounting works), a read-only folder and a missing folder must
 * fail with a message naming the path and leave the old file untouched.
 * Bad input through the CLI: each gets exit 2 and one stderr line naming the
 * file or flag.
 */
#include "tests/testutil.h"

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A model of about units*(units2+5) parameters on 4 inputs. */
static void make_model2(mtc_model *m, int units, int units2, uint64_t seed)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             "[input] shape = 4\n[dense] units = %d act = relu\n[dense] units = %d act = relu\n"
             "[task y] kind = cls classes = 3\n[task z] kind = reg outputs = 1\n", units, units2);
    mtc_spec s;
    mtc_err e = {0};
    assert_int_equal(mtc_spec_parse(spec, "kill.cfg", &s, &e), 0);
    assert_int_equal(mtc_model_build(&s, spec, m, &e), 0);
    mtc_model_init_params(m, seed);
}

static void make_model(mtc_model *m, int units, uint64_t seed)
{
    make_model2(m, units, 256, seed);
}

/* n rows of 4 features, cls task y (3 classes) and reg task z, in memory. */
static void make_data(mtc_dataset *d, int64_t n)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "kill-test");
    snprintf(d->split, sizeof d->split, "train");
    d->n = n;
    d->c = d->h = 1;
    d->w = 4;
    d->x_f32 = malloc(sizeof(float) * (size_t)n * 4);
    mtc_rng r;
    mtc_rng_seed(&r, 5);
    for (int64_t i = 0; i < n * 4; i++) d->x_f32[i] = mtc_rng_normal(&r);
    d->ntasks = 2;
    snprintf(d->tasks[0].name, MTC_NAME_MAX, "y");
    d->tasks[0].kind = MTC_TASK_CLS;
    d->tasks[0].dim = 3;
    d->tasks[0].labels = malloc(sizeof(int32_t) * (size_t)n);
    snprintf(d->tasks[1].name, MTC_NAME_MAX, "z");
    d->tasks[1].kind = MTC_TASK_REG;
    d->tasks[1].dim = 1;
    d->tasks[1].targets = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        d->tasks[0].labels[i] = (int32_t)(i % 3);
        d->tasks[1].targets[i] = (float)i;
    }
    mtc_data_rehash(d);
}

static int same_file(const char *path, const unsigned char *b, size_t n)
{
    size_t got;
    unsigned char *f = tu_read(path, &got);
    int same = f && got == n && (n == 0 || !memcmp(f, b, n));
    free(f);
    return same;
}

/* Removes <path>.tmp.* leftovers; returns how many there were. Before
 * removing, each must be refused by the loader or be the complete new file. */
static int sweep_temps(const char *dir, const char *base, const unsigned char *newb, size_t newn)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp))) {
        if (strncmp(de->d_name, prefix, strlen(prefix))) continue;
        char *p = tu_path(dir, de->d_name);
        if (!same_file(p, newb, newn)) {
            mtc_creader r;
            mtc_err e = {0};
            const char *magic = strstr(base, ".mtl") ? "MTL1" : "MTC1";
            if (mtc_creader_open(&r, p, magic, &e) == 0) {
                mtc_creader_close(&r);
                fail_msg("%s: a partial temp file passes as a container", p);
            }
        }
        unlink(p);
        free(p);
        n++;
    }
    closedir(dp);
    return n;
}

typedef struct kill_stats {
    int trials, old_kept, new_done, temps;
} kill_stats;

/* Runs `trials` kill trials of write(path) (which must be old or new bytes
 * afterwards); restores the old bytes whenever the new file landed. */
static void kill_trials(const char *dir, const char *base, int trials, uint64_t seed,
                        int (*write)(const char *path, void *ctx), void *ctx,
                        int (*load_ok)(const char *path, void *ctx), kill_stats *st)
{
    char *path = tu_path(dir, base), *tmpnew = tu_path(dir, "new.bin");
    size_t oldn, newn;
    unsigned char *oldb = tu_read(path, &oldn), *newb;
    assert_non_null(oldb);
    /* the complete new file and how long writing it takes */
    double t0 = now_s();
    assert_int_equal(write(tmpnew, ctx), 0);
    double dur = now_s() - t0;
    newb = tu_read(tmpnew, &newn);
    unlink(tmpnew);
    assert_true(newn != oldn || memcmp(oldb, newb, newn));
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    uint64_t max_us = (uint64_t)(dur * 1.3e6) + 500;
    print_message("%s: one write takes %.1f ms\n", base, dur * 1e3);
    for (int i = 0; i < trials; i++) {
        uint64_t delay = mtc_rng_below(&r, max_us);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) _exit(write(path, ctx) ? 3 : 0);
        usleep((useconds_t)delay);
        kill(pid, SIGKILL);
        int ws;
        assert_int_equal(waitpid(pid, &ws, 0), pid);
        if (WIFEXITED(ws)) assert_int_equal(WEXITSTATUS(ws), 0);
        int is_old = same_file(path, oldb, oldn), is_new = same_file(path, newb, newn);
        if (!is_old && !is_new) fail_msg("trial %d (delay %llu us): %s is neither the old nor the new file",
                                         i, (unsigned long long)delay, path);
        if (!load_ok(path, ctx)) fail_msg("trial %d: %s does not load", i, path);
        st->temps += sweep_temps(dir, base, newb, newn);
        if (is_new) {
            st->new_done++;
            mtc_err e = {0};
            assert_int_equal(mtc_write_file_atomic(path, oldb, oldn, &e), 0);
        } else {
            st->old_kept++;
        }
        st->trials++;
    }
    free(oldb);
    free(newb);
    free(path);
    free(tmpnew);
}

typedef struct kill_ctx {
    mtc_model m, m2;  /* old and new checkpoint */
    mtc_model t, t2;  /* small teachers of the old and new soft labels */
    mtc_dataset d;
} kill_ctx;

static int write_ckpt(const char *path, void *vc)
{
    kill_ctx *k = vc;
    mtc_err e = {0};
    return mtc_model_save(&k->m2, path, "{\"producer\":\"kill test\"}", &e);
}

static int load_ckpt(const char *path, void *vc)
{
    (void)vc;
    mtc_model m;
    mtc_err e = {0};
    if (mtc_model_load(path, &m, NULL, &e)) return 0;
    mtc_model_free(&m);
    return 1;
}

static int write_soft(const char *path, void *vc)
{
    kill_ctx *k = vc;
    mtc_label_cfg c;
    mtc_label_cfg_default(&c);
    c.nteachers = 1;
    c.teachers[0] = &k->t2;
    c.rows_per_chunk = 8192;
    mtc_err e = {0};
    return mtc_soft_write(path, &c, &k->d, &e);
}

static int load_soft(const char *path, void *vc)
{
    kill_ctx *k = vc;
    mtc_soft s;
    mtc_err e = {0};
    if (mtc_soft_read(path, &k->t, &k->d, 0, &s, NULL, NULL, &e)) return 0;
    mtc_soft_free(&s);
    return 1;
}

/* A scratch folder on tmpfs when there is one: the writer's fsyncs then cost
 * nothing and the kill delays stay in the milliseconds (SIGKILL tests the
 * rename protocol, not the disk). Named like tu_mkdtemp's, for tu_rmdir. */
static char *fast_mkdtemp(void)
{
    if (access("/dev/shm", W_OK) != 0) return tu_mkdtemp();
    char *p = malloc(4096);
    snprintf(p, 4096, "/dev/shm/mtc-test-XXXXXX");
    if (!mkdtemp(p)) { free(p); return tu_mkdtemp(); }
    return p;
}

static void test_sigkill_during_writes_never_loses_the_old_file(void **state)
{
    (void)state;
    char *dir = fast_mkdtemp();
    kill_ctx k;
    make_model(&k.m, 512, 1);   /* ~135k parameters: a 0.5 MB checkpoint */
    make_model(&k.m2, 512, 2);
    make_model2(&k.t, 8, 8, 3);
    make_model2(&k.t2, 8, 8, 4);
    make_data(&k.d, 100000);    /* soft labels: 100000 x 4 floats, 1.6 MB */
    mtc_err e = {0};
    char *ck = tu_path(dir, "model.mtc"), *sl = tu_path(dir, "soft.mtl");
    assert_int_equal(mtc_model_save(&k.m, ck, "{\"producer\":\"old\"}", &e), 0);
    mtc_label_cfg c;
    mtc_label_cfg_default(&c);
    c.nteachers = 1;
    c.teachers[0] = &k.t;
    c.rows_per_chunk = 8192;
    assert_int_equal(mtc_soft_write(sl, &c, &k.d, &e), 0);
    kill_stats a = {0}, b = {0};
    double t0 = now_s();
    kill_trials(dir, "model.mtc", 140, 11, write_ckpt, &k, load_ckpt, &a);
    kill_trials(dir, "soft.mtl", 70, 12, write_soft, &k, load_soft, &b);
    print_message("kill test: checkpoint %d trials (%d old kept, %d new complete, %d temp files left), "
                  "soft labels %d trials (%d old, %d new, %d temps), %.1f s\n",
                  a.trials, a.old_kept, a.new_done, a.temps, b.trials, b.old_kept, b.new_done, b.temps,
                  now_s() - t0);
    assert_true(a.trials + b.trials >= 200);
    assert_true(a.old_kept > 0 && b.old_kept > 0); /* the kills did land mid-write */
    mtc_model_free(&k.m);
    mtc_model_free(&k.m2);
    mtc_model_free(&k.t);
    mtc_model_free(&k.t2);
    mtc_data_free(&k.d);
    free(ck);
    free(sl);
    tu_rmdir(dir);
    free(dir);
}

/* ---- disk full, read-only, missing folder -------------------------------------------- */

/* In a child with a file size limit: saving over path fails with MTC_EIO and
 * a message naming path; the old bytes stay. */
static void test_disk_full_fails_cleanly_and_keeps_the_old_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "m.mtc"), *q = tu_path(dir, "s.mtl");
    kill_ctx k;
    make_model(&k.m, 16, 1);
    make_model(&k.m2, 512, 2);
    make_data(&k.d, 60000);
    mtc_err e = {0};
    assert_int_equal(mtc_model_save(&k.m, p, "{}", &e), 0);
    assert_int_equal(mtc_write_file_atomic(q, "keep", 4, &e), 0);
    size_t oldn;
    unsigned char *oldb = tu_read(p, &oldn);
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64 << 10, 64 << 10};
        setrlimit(RLIMIT_FSIZE, &rl);
        mtc_err ce = {0}, se = {0};
        int rc = mtc_model_save(&k.m2, p, "{}", &ce);
        mtc_label_cfg lc;
        mtc_label_cfg_default(&lc);
        lc.nteachers = 1;
        lc.teachers[0] = &k.m2;
        int rs = mtc_soft_write(q, &lc, &k.d, &se);
        dprintf(fd[1], "%d\n%s\n%d\n%s\n", rc, ce.msg, rs, se.msg);
        _exit(0);
    }
    close(fd[1]);
    char out[2048] = "";
    ssize_t got = 0, r;
    while ((r = read(fd[0], out + got, sizeof out - 1 - (size_t)got)) > 0) got += r;
    close(fd[0]);
    int ws;
    waitpid(pid, &ws, 0);
    assert_true(WIFEXITED(ws));
    int rc = -1, rs = -1;
    char m1[600] = "", m2[600] = "";
    assert_int_equal(sscanf(out, "%d\n%599[^\n]\n%d\n%599[^\n]", &rc, m1, &rs, m2), 4);
    print_message("disk full: '%s' / '%s'\n", m1, m2);
    assert_int_equal(rc, MTC_EIO);
    assert_int_equal(mtc_exit_code(rc), 2);
    assert_non_null(strstr(m1, p));
    assert_int_equal(rs, MTC_EIO);
    assert_non_null(strstr(m2, q));
    assert_true(same_file(p, oldb, oldn));
    assert_true(same_file(q, (const unsigned char *)"keep", 4));
    assert_int_equal(sweep_temps(dir, "m.mtc", NULL, 0) + sweep_temps(dir, "s.mtl", NULL, 0), 0);
    free(oldb);
    mtc_model_free(&k.m);
    mtc_model_free(&k.m2);
    mtc_data_free(&k.d);
    free(p);
    free(q);
    tu_rmdir(dir);
    free(dir);
}

/* A 64 KiB tmpfs in a private mount namespace (needs CAP_SYS_ADMIN): full,
 * then remounted read-only. The child reports 0 pass, 77 skip, 1 fail. */
static int tmpfs_child(const char *mnt)
{
    if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
        mount("tmpfs", mnt, "tmpfs", 0, "size=64k")) {
        fprintf(stderr, "tmpfs: cannot mount (%s)\n", strerror(errno));
        return 77;
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/m.mtc", mnt);
    mtc_model small, big;
    make_model(&small, 8, 1);
    make_model(&big, 512, 2);
    mtc_err e = {0};
    if (mtc_model_save(&small, p, "{}", &e)) { fprintf(stderr, "small save: %s\n", e.msg); return 1; }
    size_t n;
    unsigned char *old = tu_read(p, &n);
    int rc = mtc_model_save(&big, p, "{}", &e);
    if (rc != MTC_EIO || !strstr(e.msg, p) || !same_file(p, old, n)) {
        fprintf(stderr, "full tmpfs: rc %d '%s'\n", rc, e.msg);
        return 1;
    }
    printf("full tmpfs: %s\n", e.msg);
    if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL)) {
        fprintf(stderr, "remount ro: %s\n", strerror(errno));
        return 1;
    }
    rc = mtc_model_save(&small, p, "{}", &e);
    if (rc != MTC_EIO || !strstr(e.msg, p) || !strstr(e.msg, "Read-only") || !same_file(p, old, n)) {
        fprintf(stderr, "read-only tmpfs: rc %d '%s'\n", rc, e.msg);
        return 1;
    }
    printf("read-only tmpfs: %s\n", e.msg);
    free(old);
    mtc_model_free(&small);
    mtc_model_free(&big);
    return 0;
}

static void test_full_and_read_only_tmpfs_keep_the_old_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(tmpfs_child(dir));
    int ws;
    waitpid(pid, &ws, 0);
    tu_rmdir(dir);
    free(dir);
    assert_true(WIFEXITED(ws));
    if (WEXITSTATUS(ws) == 77) skip();
    assert_int_equal(WEXITSTATUS(ws), 0);
}

static void test_read_only_folder_fails_cleanly(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "m.mtc");
    mtc_model m;
    make_model(&m, 8, 1);
    mtc_err e = {0};
    assert_int_equal(mtc_model_save(&m, p, "{}", &e), 0);
    size_t n;
    unsigned char *old = tu_read(p, &n);
    chmod(dir, 0555);
    int root = access(dir, W_OK) == 0; /* root ignores the mode */
    int rc = root ? 0 : mtc_model_save(&m, p, "{}", &e);
    chmod(dir, 0700);
    mtc_model_free(&m);
    if (!root) {
        assert_int_equal(rc, MTC_EIO);
        assert_non_null(strstr(e.msg, p));
        assert_true(same_file(p, old, n));
    }
    free(old);
    free(p);
    tu_rmdir(dir);
    free(dir);
    if (root) {
        print_message("running as root: a 0555 folder is writable; see the read-only tmpfs test\n");
        skip();
    }
}

/* ---- CLI: bad input gets exit 2 and one line naming the file or flag ---------------- */

typedef struct cli_env {
    char *dir;
} cli_env;

static int cli_setup(void **state)
{
    cli_env *c = calloc(1, sizeof *c);
    c->dir = tu_mkdtemp();
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "data tabular -o '%s/t.csv' --rows 200 --quiet", c->dir);
    if (tu_run_mtc(c->dir, cmd, NULL, NULL) != 0) return -1;
    snprintf(cmd, sizeof cmd, "data tabular -o '%s/t2.csv' --rows 200 --seed 2 --quiet", c->dir);
    if (tu_run_mtc(c->dir, cmd, NULL, NULL) != 0) return -1;
    char *p = tu_path(c->dir, "s.cfg");
    const char *spec = "[input] shape = 8\n[dense] units = 8 act = relu\n"
                       "[task segment] kind = cls classes = 3\n[task price] kind = reg outputs = 1\n";
    tu_write(p, spec, strlen(spec));
    free(p);
    snprintf(cmd, sizeof cmd, "train --spec '%s/s.cfg' --data 'csv:%s/t.csv' --epochs 1 --quiet -o '%s/a.mtc'",
             c->dir, c->dir, c->dir);
    if (tu_run_mtc(c->dir, cmd, NULL, NULL) != 0) return -1;
    *state = c;
    return 0;
}

static int cli_teardown(void **state)
{
    cli_env *c = *state;
    tu_rmdir(c->dir);
    free(c->dir);
    free(c);
    return 0;
}

static void put(const cli_env *c, const char *name, const char *text)
{
    char *p = tu_path(c->dir, name);
    assert_int_equal(tu_write(p, text, strlen(text)), 0);
    free(p);
}

/* Runs `mtc ARGS` (%D in args becomes the scratch folder) and checks exit 2
 * and one stderr line containing every `want` (NULL-terminated). */
static void expect_bad(const cli_env *c, const char *args, ...)
{
    char cmd[8192], *o = cmd;
    for (const char *a = args; *a && o < cmd + sizeof cmd - 4200; a++) {
        if (a[0] == '%' && a[1] == 'D') { o += sprintf(o, "%s", c->dir); a++; }
        else *o++ = *a;
    }
    *o = 0;
    strcat(cmd, " --quiet");
    char *out = NULL, *err = NULL;
    int rc = tu_run_mtc(c->dir, cmd, &out, &err);
    int lines = 0;
    for (const char *q = err ? err : ""; *q; q++) lines += *q == '\n';
    if (rc != 2 || lines != 1) fail_msg("mtc %s: exit %d, stderr (%d lines): %s", cmd, rc, lines, err ? err : "");
    va_list ap;
    va_start(ap, args);
    for (const char *w; (w = va_arg(ap, const char *));) {
        char want[4400];
        snprintf(want, sizeof want, "%s", w);
        if (!strncmp(w, "%D", 2)) snprintf(want, sizeof want, "%s%s", c->dir, w + 2);
        if (!strstr(err, want)) fail_msg("mtc %s: stderr lacks '%s': %s", cmd, want, err);
    }
    va_end(ap);
    free(out);
    free(err);
}

static void test_cli_wrong_specs_name_file_and_line(void **state)
{
    cli_env *c = *state;
    put(c, "unknown.cfg", "[input] shape = 8\n[dense2] units = 4\n[task segment] kind = cls classes = 3\n");
    expect_bad(c, "train --spec %D/unknown.cfg --data csv:%D/t.csv -o %D/x.mtc", "unknown.cfg:2:",
               "unknown section [dense2]", NULL);
    put(c, "shape.cfg", "[input] shape = 1x4x4\n[conv] filters = 2 size = 5 pad = 0\n"
                        "[task segment] kind = cls classes = 3\n");
    expect_bad(c, "train --spec %D/shape.cfg --data csv:%D/t.csv -o %D/x.mtc", "shape.cfg:2:",
               "does not fit", NULL);
    put(c, "head.cfg", "[input] shape = 8\n[head foo]\n[dense] units = 3\n[task segment] kind = cls classes = 3\n");
    expect_bad(c, "train --spec %D/head.cfg --data csv:%D/t.csv -o %D/x.mtc", "head.cfg:2:",
               "no matching [task foo]", NULL);
    put(c, "dup.cfg", "[input] shape = 8\n[task segment] kind = cls classes = 3\n"
                      "[task segment] kind = cls classes = 3\n");
    expect_bad(c, "train --spec %D/dup.cfg --data csv:%D/t.csv -o %D/x.mtc", "dup.cfg:3:",
               "duplicate task 'segment'", NULL);
}

/* `mtc train --spec rec.cfg FLAGS -o NAME`, then NAME's `mtc inspect --json`
 * (the caller frees it). */
static char *train_rec_and_inspect(const cli_env *c, const char *flags, const char *name)
{
    char cmd[8400], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "train --spec '%s/rec.cfg' --data 'csv:%s/t.csv' %s --quiet -o '%s/%s'",
             c->dir, c->dir, flags, c->dir, name);
    assert_int_equal(tu_run_mtc(c->dir, cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "inspect '%s/%s' --json", c->dir, name);
    assert_int_equal(tu_run_mtc(c->dir, cmd, &out, &err), 0);
    free(err);
    return out;
}

/* A spec's [train] section sets mtc train's defaults; flags override them;
 * the checkpoint's metadata records what ran. */
static void test_cli_spec_train_section_sets_defaults(void **state)
{
    cli_env *c = *state;
    put(c, "rec.cfg", "[input] shape = 8\n[dense] units = 8 act = relu\n[task segment] kind = cls classes = 3\n[task price] kind = reg outputs = 1\n"
                      "[train] epochs = 2 lr = 0.005\nschedule = cosine nesterov = false\n");
    char *out = train_rec_and_inspect(c, "", "r.mtc");
    assert_non_null(strstr(out, "\"epochs\":2,"));
    assert_non_null(strstr(out, "\"lr\":0.004999999")); /* 0.005f as a double */
    assert_non_null(strstr(out, "\"schedule\":\"cosine\""));
    free(out);
    out = train_rec_and_inspect(c, "--epochs 1", "r1.mtc");
    assert_non_null(strstr(out, "\"epochs\":1,"));
    assert_non_null(strstr(out, "\"schedule\":\"cosine\""));
    free(out);
    /* bad keys and values name the spec file and line */
    put(c, "tk.cfg", "[input] shape = 8\n[task segment] kind = cls classes = 3\n[train]\nepochs = 1\ncolour = red\n");
    expect_bad(c, "train --spec %D/tk.cfg --data csv:%D/t.csv -o %D/x.mtc", "tk.cfg:5:", "unknown key 'colour'", NULL);
    put(c, "tv.cfg", "[input] shape = 8\n[task segment] kind = cls classes = 3\n[train] lr = 50\n");
    expect_bad(c, "train --spec %D/tv.cfg --data csv:%D/t.csv -o %D/x.mtc", "tv.cfg:3:", "--lr 50", NULL);
    put(c, "tf.cfg", "[input] shape = 8\n[task segment] kind = cls classes = 3\n[train] nesterov = 1\n");
    expect_bad(c, "train --spec %D/tf.cfg --data csv:%D/t.csv -o %D/x.mtc", "tf.cfg:3:", "true or false", NULL);
    put(c, "tr.cfg", "[input] shape = 8\n[task segment] kind = cls classes = 3\n[train] resume = x\n");
    expect_bad(c, "train --spec %D/tr.cfg --data csv:%D/t.csv -o %D/x.mtc", "tr.cfg:3:", "unknown key 'resume'", NULL);
    put(c, "t2.cfg", "[input] shape = 8\n[train] epochs = 1\n[task segment] kind = cls classes = 3\n[train] lr = 1\n");
    expect_bad(c, "train --spec %D/t2.cfg --data csv:%D/t.csv -o %D/x.mtc", "t2.cfg:4:", "second [train]", NULL);
    put(c, "td.cfg", "[input] shape = 8\n[task segment] kind = cls classes = 3\n[train] lr = 1 lr = 2\n");
    expect_bad(c, "train --spec %D/td.cfg --data csv:%D/t.csv -o %D/x.mtc", "td.cfg:3:", "'lr' given twice", NULL);
}

static void test_cli_bad_data_names_file(void **state)
{
    cli_env *c = *state;
    /* data shape: 5 inputs in the spec, 9 columns of inputs in the CSV */
    put(c, "five.cfg", "[input] shape = 5\n[task segment] kind = cls classes = 3\n");
    expect_bad(c, "train --spec %D/five.cfg --data csv:%D/t.csv -o %D/x.mtc", "t.csv", "1x1x9",
               "1x1x5", NULL);
    /* label out of range */
    put(c, "lab.cfg", "[input] shape = 2\n[task y] kind = cls classes = 3\n");
    put(c, "lab.csv", "a,b,y\n1,2,0\n3,4,5\n5,6,1\n7,8,2\n1,1,1\n");
    expect_bad(c, "train --spec %D/lab.cfg --data csv:%D/lab.csv -o %D/x.mtc", "lab.csv",
               "label 5 out of range for task 'y'", NULL);
    /* NaN / Inf in CSV: file:line:column */
    put(c, "nan.csv", "a,b,y\n1,2,0\n3,nan,1\n");
    expect_bad(c, "train --spec %D/lab.cfg --data csv:%D/nan.csv -o %D/x.mtc", "nan.csv:3:2:",
               "not finite", NULL);
    put(c, "inf.csv", "a,b,y\n1,2,0\n3,4,1\n-inf,1,1\n");
    expect_bad(c, "train --spec %D/lab.cfg --data csv:%D/inf.csv -o %D/x.mtc", "inf.csv:4:1:",
               "not finite", NULL);
    /* empty data set */
    put(c, "empty.csv", "a,b,y\n");
    expect_bad(c, "train --spec %D/lab.cfg --data csv:%D/empty.csv -o %D/x.mtc", "empty.csv",
               "no data rows", NULL);
}

static void test_cli_nan_weight_is_refused_on_load(void **state)
{
    cli_env *c = *state;
    char *a = tu_path(c->dir, "a.mtc"), *b = tu_path(c->dir, "nan.mtc");
    mtc_ckpt k;
    mtc_err e = {0};
    assert_int_equal(mtc_ckpt_load(a, &k, &e), 0);
    int hit = 0;
    for (int i = 0; i < k.ntensors && !hit; i++)
        if (k.tensors[i].dtype == MTC_F32 && strstr(k.tensors[i].name, ".weight")) {
            ((float *)k.tensors[i].data)[1] = NAN;
            hit = 1;
        }
    assert_true(hit);
    assert_int_equal(mtc_ckpt_save(b, &k, &e), 0);
    mtc_ckpt_free(&k);
    mtc_model m;
    assert_int_equal(mtc_model_load(b, &m, NULL, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, b));
    assert_non_null(strstr(e.msg, "not finite"));
    expect_bad(c, "eval %D/nan.mtc --data csv:%D/t.csv", "%D/nan.mtc", "finite", NULL);
    free(a);
    free(b);
}

static void test_cli_training_that_goes_non_finite_names_task_and_step(void **state)
{
    cli_env *c = *state;
    char text[16384];
    size_t k = (size_t)sprintf(text, "a,b,z\n");
    mtc_rng r;
    mtc_rng_seed(&r, 1);
    static const char *big[] = {"1e37", "-1e37", "3e38", "0"};
    for (int i = 0; i < 200; i++)
        k += (size_t)sprintf(text + k, "%.1f,%.3f,%s\n", mtc_rng_uniform(&r) * 1e6,
                             mtc_rng_uniform(&r), big[mtc_rng_below(&r, 4)]);
    put(c, "huge.csv", text);
    put(c, "reg.cfg", "[input] shape = 2\n[dense] units = 8 act = relu\n[task z] kind = reg outputs = 1\n");
    expect_bad(c, "train --spec %D/reg.cfg --data csv:%D/huge.csv --lr 9 --optimizer sgd --epochs 3 -o %D/h.mtc",
               "task 'z'", "non-finite", "step", NULL);
    char *h = tu_path(c->dir, "h.mtc");
    assert_int_not_equal(access(h, F_OK), 0); /* nothing written */
    free(h);
}

static void test_cli_soft_labels_from_another_data_set(void **state)
{
    cli_env *c = *state;
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "label '%s/a.mtc' --data 'csv:%s/t.csv' --quiet -o '%s/a.mtl'", c->dir, c->dir, c->dir);
    assert_int_equal(tu_run_mtc(c->dir, cmd, NULL, NULL), 0);
    expect_bad(c, "distill --spec %D/s.cfg --data csv:%D/t2.csv --soft %D/a.mtl --epochs 1 -o %D/st.mtc",
               "%D/a.mtl", "made for data set", NULL);
}

static void test_cli_verify_with_mismatched_tasks(void **state)
{
    cli_env *c = *state;
    char *out = NULL;
    tu_run_mtc(c->dir, "verify --help", &out, NULL);
    int ready = out && !strstr(out, "not implemented");
    free(out);
    if (!ready) skip();
    put(c, "one.cfg", "[input] shape = 8 columns = area,rooms,age,distance,f5,f6,f7,f8\n"
                      "[dense] units = 8 act = relu\n[task segment] kind = cls classes = 3\n");
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "train --spec '%s/one.cfg' --data 'csv:%s/t.csv' --epochs 1 --quiet -o '%s/one.mtc'",
             c->dir, c->dir, c->dir);
    assert_int_equal(tu_run_mtc(c->dir, cmd, NULL, NULL), 0);
    expect_bad(c, "verify --reference %D/a.mtc --candidate %D/one.mtc --data csv:%D/t.csv", "one.mtc",
               "task", NULL);
}

static void test_cli_absurd_flags_name_the_flag(void **state)
{
    cli_env *c = *state;
    expect_bad(c, "train --spec %D/s.cfg --data csv:%D/t.csv --batch 0 -o %D/x.mtc", "--batch", NULL);
    expect_bad(c, "train --spec %D/s.cfg --data csv:%D/t.csv --epochs -3 -o %D/x.mtc", "--epochs", NULL);
    expect_bad(c, "train --spec %D/s.cfg --data csv:%D/t.csv --lr nan -o %D/x.mtc", "--lr", NULL);
    expect_bad(c, "prune %D/a.mtc --sparsity 1.5 -o %D/p.mtc", "--sparsity", NULL);
    expect_bad(c, "distill --spec %D/s.cfg --data csv:%D/t.csv --soft %D/a.mtl --temperature -1 -o %D/st.mtc",
               "--temperature", NULL);
}

static void test_cli_missing_folder_and_disk_full_keep_files(void **state)
{
    cli_env *c = *state;
    expect_bad(c, "train --spec %D/s.cfg --data csv:%D/t.csv --epochs 1 -o /missing/dir/x.mtc",
               "/missing/dir/x.mtc", NULL);
    /* disk full: the shell caps file size (512-byte blocks) and ignores SIGXFSZ */
    put(c, "wide.cfg", "[input] shape = 8\n[dense] units = 512 act = relu\n[dense] units = 64\n"
                       "[task segment] kind = cls classes = 3\n[task price] kind = reg outputs = 1\n");
    char *a = tu_path(c->dir, "a.mtc");
    size_t n;
    unsigned char *old = tu_read(a, &n);
    const char *bin = getenv("MTC_BIN");
    char *saved = bin ? strdup(bin) : NULL, wrapped[4400];
    snprintf(wrapped, sizeof wrapped, "trap '' XFSZ; ulimit -f 16; %s", bin ? bin : "build/mtc");
    setenv("MTC_BIN", wrapped, 1);
    expect_bad(c, "train --spec %D/wide.cfg --data csv:%D/t.csv --epochs 1 -o %D/a.mtc", "%D/a.mtc",
               "write failed", NULL);
    if (saved) setenv("MTC_BIN", saved, 1);
    else unsetenv("MTC_BIN");
    free(saved);
    assert_true(same_file(a, old, n));
    assert_int_equal(sweep_temps(c->dir, "a.mtc", NULL, 0), 0);
    free(old);
    free(a);
}

int main(void)
{
    const struct CMUnitTest writes[] = {
        cmocka_unit_test(test_sigkill_during_writes_never_loses_the_old_file),
        cmocka_unit_test(test_disk_full_fails_cleanly_and_keeps_the_old_file),
        cmocka_unit_test(test_full_and_read_only_tmpfs_keep_the_old_file),
        cmocka_unit_test(test_read_only_folder_fails_cleanly),
    };
    const struct CMUnitTest cli[] = {
        cmocka_unit_test(test_cli_wrong_specs_name_file_and_line),
        cmocka_unit_test(test_cli_spec_train_section_sets_defaults),
        cmocka_unit_test(test_cli_bad_data_names_file),
        cmocka_unit_test(test_cli_nan_weight_is_refused_on_load),
        cmocka_unit_test(test_cli_training_that_goes_non_finite_names_task_and_step),
        cmocka_unit_test(test_cli_soft_labels_from_another_data_set),
        cmocka_unit_test(test_cli_verify_with_mismatched_tasks),
        cmocka_unit_test(test_cli_absurd_flags_name_the_flag),
        cmocka_unit_test(test_cli_missing_folder_and_disk_full_keep_files),
    };
    int fails = cmocka_run_group_tests_name("writes", writes, NULL, NULL);
    return fails + cmocka_run_group_tests_name("cli", cli, cli_setup, cli_teardown);
}
