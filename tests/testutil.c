/* testutil.c — see testutil.h. */
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <math.h>

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/mtc-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(p)) { free(p); return NULL; }
    return p;
}

void tu_rmdir(const char *dir)
{
    char cmd[4200];
    if (!dir || !strstr(dir, "mtc-test-")) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int tu_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

unsigned char *tu_read(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    size_t got = fread(b, 1, (size_t)sz, f);
    fclose(f);
    b[got] = 0;
    if (n) *n = got;
    return b;
}

int tu_run_mtc(const char *dir, const char *args, char **out, char **err)
{
    const char *bin = getenv("MTC_BIN");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s >'%s/stdout.txt' 2>'%s/stderr.txt' </dev/null",
             bin ? bin : "build/mtc", args, dir, dir);
    int st = system(cmd);
    char p[4200];
    if (out) { snprintf(p, sizeof p, "%s/stdout.txt", dir); *out = (char *)tu_read(p, NULL); }
    if (err) { snprintf(p, sizeof p, "%s/stderr.txt", dir); *err = (char *)tu_read(p, NULL); }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int tu_run_mtcv(const char *dir, char **out, char **err, const char *fmt, va_list ap)
{
    char args[8192];
    vsnprintf(args, sizeof args, fmt, ap);
    free(*out);
    free(*err);
    *out = *err = NULL;
    return tu_run_mtc(dir, args, out, err);
}

void tu_write_synth_csv(const char *path, int64_t n, uint64_t seed)
{
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "%s: cannot write\n", path); abort(); }
    fprintf(f, "x0,x1,x2,x3,fine\n");
    mtc_dataset d;
    tu_synth_data(&d, n, seed);
    for (int64_t i = 0; i < d.n; i++)
        fprintf(f, "%g,%g,%g,%g,%d\n", d.x_f32[i * 4], d.x_f32[i * 4 + 1], d.x_f32[i * 4 + 2], d.x_f32[i * 4 + 3],
                d.tasks[0].labels[i]);
    mtc_data_free(&d);
    if (fclose(f)) { fprintf(stderr, "%s: cannot write\n", path); abort(); }
}

void tu_write_ab_csv(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "%s: cannot write\n", path); abort(); }
    fprintf(f, "x0,x1,x2,x3,a,b\n");
    mtc_rng r;
    mtc_rng_seed(&r, 5);
    for (int i = 0; i < 1000; i++) {
        float x[4];
        for (int j = 0; j < 4; j++) x[j] = 2 * mtc_rng_uniform(&r) - 1;
        int a = x[0] > x[1] ? (x[0] > x[2] ? 0 : 2) : (x[1] > x[2] ? 1 : 2);
        fprintf(f, "%.4f,%.4f,%.4f,%.4f,%d,%d\n", x[0], x[1], x[2], x[3], a, x[3] > 0);
    }
    if (fclose(f)) { fprintf(stderr, "%s: cannot write\n", path); abort(); }
}

double tu_relerr(double a, double b, double floor)
{
    double d = fabs(a - b), m = fmax(fmax(fabs(a), fabs(b)), floor);
    return d / m;
}

void tu_synth_data(mtc_dataset *d, int64_t n, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "synthetic");
    snprintf(d->split, sizeof d->split, "train");
    d->n = n; d->c = 1; d->h = 1; d->w = 4;
    d->x_f32 = malloc(sizeof(float) * (size_t)(n * 4));
    d->ntasks = 3;
    const char *names[3] = {"fine", "level", "pos"};
    const int kinds[3] = {MTC_TASK_CLS, MTC_TASK_REG, MTC_TASK_BIN}, dims[3] = {4, 1, 1};
    for (int t = 0; t < 3; t++) {
        snprintf(d->tasks[t].name, MTC_NAME_MAX, "%s", names[t]);
        d->tasks[t].kind = kinds[t];
        d->tasks[t].dim = dims[t];
    }
    d->tasks[0].labels = malloc(sizeof(int32_t) * (size_t)n);
    d->tasks[1].targets = malloc(sizeof(float) * (size_t)n);
    d->tasks[2].targets = malloc(sizeof(float) * (size_t)n);
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) {
        float *x = d->x_f32 + i * 4, s = 0;
        int best = 0;
        for (int j = 0; j < 4; j++) {
            x[j] = mtc_rng_normal(&r);
            s += x[j];
            if (x[j] > x[best]) best = j;
        }
        d->tasks[0].labels[i] = best;
        d->tasks[1].targets[i] = 3.0f + s / 4;
        d->tasks[2].targets[i] = x[0] > 0 ? 1.0f : 0.0f;
    }
    mtc_data_rehash(d);
}

int tu_build_model(const char *text, mtc_model *m, uint64_t seed, mtc_err *e)
{
    mtc_spec s;
    int rc = mtc_spec_parse(text, "t.cfg", &s, e);
    if (!rc) rc = mtc_model_build(&s, text, m, e);
    if (!rc) mtc_model_init_params(m, seed);
    return rc;
}

typedef struct { mtc_ckpt *c; const float *mask; mtc_err *e; } dense_mask_ctx;

/* Adds "<layer>.mask" shaped like the "<layer>.weight" already in c. */
static int add_mask(mtc_model *m, mtc_layer *L, void *vctx)
{
    dense_mask_ctx *x = vctx;
    if (L->w_off < 0) return 0;
    char name[160];
    snprintf(name, sizeof name, "%s.weight", L->name);
    const mtc_tensor *w = mtc_ckpt_find(x->c, name);
    if (!w) return mtc_err_set(x->e, MTC_EINTERNAL, "%s missing", name);
    uint8_t *keep = malloc((size_t)L->nw);
    if (!keep) return mtc_err_set(x->e, MTC_ENOMEM, "out of memory");
    for (int64_t i = 0; i < L->nw; i++) keep[i] = x->mask[L->w_off + i] != 0.0f;
    (void)m;
    int64_t dims[MTC_MAX_DIMS]; /* adding may move w */
    int nd = w->ndim;
    memcpy(dims, w->dims, sizeof dims);
    snprintf(name, sizeof name, "%s.mask", L->name);
    int rc = mtc_ckpt_add(x->c, name, MTC_U8, nd, dims, keep, x->e);
    free(keep);
    return rc;
}

int tu_save_dense_mask(const mtc_model *mc, const char *path, mtc_err *e)
{
    mtc_model *m = (mtc_model *)mc; /* the mask is hidden for a moment */
    float *mask = m->mask;
    mtc_ckpt c;
    m->mask = NULL; /* unpruned: every layer as a dense ".weight" */
    int rc = mtc_model_to_ckpt(m, "{}", &c, e);
    m->mask = mask;
    if (rc) return rc;
    dense_mask_ctx x = {&c, mask, e};
    rc = mtc_model_for_each_layer(m, add_mask, &x);
    if (!rc) rc = mtc_ckpt_save(path, &c, e);
    mtc_ckpt_free(&c);
    return rc;
}
