/*
 * bench_infer.c — the C half of `make bench` (bench/run.sh builds it against
 * build/release/libmtc.a). Every subcommand prints JSON lines on stdout, one
 * per measurement, so run.sh can collect them; it never asserts a speed.
 *
 *   infer CKPT [--engine rt|model] [--seconds S] [--batches 1,16,256]
 *         [--threads 1,2]         fp32 inference samples/s of a checkpoint
 *                                  through the runtime (mtc_rt_run: what
 *                                  mtc eval/predict/verify run; the default)
 *                                  or the training engine's eval forward
 *                                  (mtc_model_forward); threads = mtc's
 *                                  pool, OpenBLAS single-threaded
 *   dense [--seconds S] [--threads N] [--B 256 --I 784 --O 128]
 *                                  mtc_dense_forward GFLOP/s next to a bare
 *                                  cblas_sgemm of the same shape and a
 *                                  1024³ sgemm (the machine's BLAS peak),
 *                                  interleaved in rounds, median of rounds
 *   train SPEC --samples N [--epochs E] [--threads T] [--batch B] [--out CKPT]
 *                                  mtc_train on the first N training samples
 *                                  of fashion-mnist (no validation), then the
 *                                  test accuracy per task: the library twin
 *                                  of `mtc train` with a batch limit, used by
 *                                  quick mode to match `peer --max-batches`
 *   int8 CKPT [--seconds S] [--batches 1,16,256] [--threads 1,2] [--nchw]
 *                                  (--nchw: int8 conv maps kept (c, h, w)
 *                                  between int8 ops, the layout before
 *                                  channels-last, to time one against the other)
 *                                  test accuracy, then samples/s as infer,
 *                                  through the runtime (include/mtc/
 *                                  runtime.h): int8 or fp32 checkpoints;
 *                                  MTC_ISA=scalar|avx2|avx512 picks the
 *                                  int8 kernels (recorded as "isa")
 *   quantize CKPT OUT              mtc_quantize with its defaults
 *                                  (both only when runtime.h exists; built
 *                                  with -DMTC_BENCH_NO_INT8 otherwise)
 *   sparse [--seconds S] [--sparsity 0.3,...,0.98] [--batches 1,4,16,256]
 *          [--K 784 --N 128]      the runtime's sparse kernel (CSR, the
 *                                  ISA MTC_ISA picks) against the dense path
 *                                  it replaces (mtc_dense_forward: sgemv at
 *                                  batch 1, sgemm above; one thread) on a
 *                                  random mask of each sparsity: the table
 *                                  mtc_sparse_crossover was set from
 *                                  (fastest call of each, interleaved;
 *                                  also needs runtime.h)
 *   rss LABEL CMD ARGS...          runs CMD (its stdout passes through), then
 *                                  prints its peak RSS (wait4)
 *
 * OpenBLAS reads OPENBLAS_CORETYPE when it loads; this program does not
 * re-exec like `mtc` does, so run.sh sets the variable to what `mtc
 * --version` chose. Each line reports the core OpenBLAS actually runs.
 */
#include "mtc.h"

#include <cblas.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#undef I /* cblas.h pulls in <complex.h> */

#if !defined(MTC_BENCH_NO_INT8) && defined(__has_include)
#if __has_include("mtc/runtime.h")
#include "mtc/runtime.h"
#define HAVE_RT 1
#endif
#endif

void openblas_set_num_threads(int);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* KiB on Linux */
}

static const char *opt_str(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}
static double opt_num(int argc, char **argv, const char *name, double def)
{
    const char *s = opt_str(argc, argv, name, NULL);
    return s ? atof(s) : def;
}

/* "1,16,256" -> up to max ints; returns the count. */
static int opt_list(int argc, char **argv, const char *name, const char *def, int *v, int max)
{
    const char *s = opt_str(argc, argv, name, def);
    int n = 0;
    while (*s && n < max) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 1 || x > 65536) break;
        v[n++] = (int)x;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void fill_uniform(float *x, int64_t n, uint64_t seed)
{
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = mtc_rng_uniform(&r) - 0.5f;
}

/* Test images as floats (u8/255), converted once: inference timing measures
 * the model, not the conversion (the peer does the same). */
static float *test_inputs(int64_t want, int64_t *S, mtc_err *e)
{
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    if (mtc_data_open("fashion-mnist", "test", NULL, &d, e)) return NULL;
    *S = mtc_data_sample_size(&d);
    if (want > d.n) want = d.n;
    int64_t *idx = malloc((size_t)want * sizeof *idx);
    float *x = malloc((size_t)want * (size_t)*S * sizeof *x);
    if (idx && x) {
        for (int64_t i = 0; i < want; i++) idx[i] = i;
        mtc_data_batch_x(&d, idx, (int)want, 0, NULL, x);
    }
    free(idx);
    mtc_data_free(&d);
    if (!x) mtc_err_set(e, MTC_ENOMEM, "out of memory");
    return x;
}

/* ---- fp32 inference ---------------------------------------------------- */
/* One timed forward of B samples through the chosen engine. */
typedef struct engine {
    mtc_model m;            /* --engine model */
#ifdef HAVE_RT
    mtc_rt *rt;             /* --engine rt */
    float *outs[MTC_MAX_TASKS];
#endif
} engine;

static int engine_open(engine *g, const char *path, int use_rt, int threads, int maxb, mtc_err *e)
{
    memset(g, 0, sizeof *g);
#ifdef HAVE_RT
    if (use_rt) {
        if (mtc_rt_load(path, &g->rt, e)) return -1;
        mtc_rt_set_threads(g->rt, threads);
        const mtc_model *m = mtc_rt_model(g->rt);
        for (int t = 0; t < m->spec.ntasks; t++)
            if (!(g->outs[t] = malloc((size_t)maxb * (size_t)m->spec.tasks[t].dim * sizeof(float))))
                return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        return mtc_rt_reserve(g->rt, maxb, e);
    }
#else
    (void)use_rt;
#endif
    /* mtc's own pool over batch slices, OpenBLAS single-threaded (as `mtc
     * --threads N`): the model sizes its pool when it reserves its buffers */
    mtc_set_threads(threads);
    char *meta = NULL;
    if (mtc_model_load(path, &g->m, &meta, e)) return -1;
    free(meta);
    return mtc_model_reserve(&g->m, maxb, e);
}

static int engine_run(engine *g, const float *x, int B, mtc_err *e)
{
#ifdef HAVE_RT
    if (g->rt) return mtc_rt_run(g->rt, x, B, g->outs, e);
#endif
    mtc_model_forward(&g->m, x, B, 0, NULL);
    (void)e;
    return 0;
}

/* Samples/s of batch B: 10 warm-up runs, then runs over the pool of test
 * inputs until secs have passed (checked every 8 runs). */
static int time_batch(engine *g, const float *x, int64_t S, int64_t pool, int B, double secs, double *sps,
                      int64_t *iters, mtc_err *e)
{
    int64_t slots = pool / B, it = 0;
    for (int w = 0; w < 10; w++)
        if (engine_run(g, x + (w % slots) * B * S, B, e)) return -1;
    double t0 = now_s(), dt;
    for (;;) {
        if (engine_run(g, x + (it % slots) * B * S, B, e)) return -1;
        if (++it % 8 == 0 && (dt = now_s() - t0) >= secs) break;
    }
    *sps = it * B / dt;
    *iters = it;
    return 0;
}

static void engine_close(engine *g)
{
#ifdef HAVE_RT
    if (g->rt) {
        for (int t = 0; t < MTC_MAX_TASKS; t++) free(g->outs[t]);
        mtc_rt_free(g->rt);
        return;
    }
#endif
    mtc_model_free(&g->m);
}

static int cmd_infer(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: bench_infer infer CKPT [--engine rt|model] [--seconds S] [--batches 1,16,256] "
                               "[--threads 1,2]\n"), 2;
    const char *path = argv[1];
    double secs = opt_num(argc, argv, "--seconds", 1.0);
#ifdef HAVE_RT
    const char *eng = opt_str(argc, argv, "--engine", "rt");
#else
    const char *eng = opt_str(argc, argv, "--engine", "model");
#endif
    int use_rt = !strcmp(eng, "rt");
    if (!use_rt && strcmp(eng, "model")) return fprintf(stderr, "bench_infer: --engine rt|model, not '%s'\n", eng), 2;
    mtc_err e = {0};
    int batches[8], threads[8], maxb = 1;
    int nb = opt_list(argc, argv, "--batches", "1,16,256", batches, 8);
    int nt = opt_list(argc, argv, "--threads", "1,2", threads, 8);
    for (int bi = 0; bi < nb; bi++) maxb = batches[bi] > maxb ? batches[bi] : maxb;
    int64_t S, pool = maxb > 2048 ? maxb : 2048;
    float *x = test_inputs(pool, &S, &e);
    if (!x) return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    for (int ti = 0; ti < nt; ti++) {
        /* loaded again for every thread count (the model sizes its pool
         * when it reserves its buffers) */
        engine g;
        if (engine_open(&g, path, use_rt, threads[ti], maxb, &e))
            return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
        for (int bi = 0; bi < nb; bi++) {
            int B = batches[bi];
            double sps;
            int64_t it;
            if (time_batch(&g, x, S, pool, B, secs, &sps, &it, &e)) return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
            printf("{\"mode\":\"infer\",\"model\":\"%s\",\"engine\":\"%s\",\"dtype\":\"fp32\",\"batch\":%d,"
                   "\"threads\":%d,\"samples_per_s\":%.1f,\"iters\":%lld,\"corename\":\"%s\"}\n",
                   path, eng, B, threads[ti], sps, (long long)it, openblas_get_corename());
            fflush(stdout);
        }
        engine_close(&g);
    }
    printf("{\"mode\":\"rss\",\"what\":\"bench_infer infer\",\"peak_rss_kib\":%ld}\n", peak_rss_kib());
    free(x);
    return 0;
}

/* ---- dense forward vs bare sgemm ---------------------------------------- */
typedef struct {
    float *in, *W, *b, *out, *Wp; /* Wp: W packed for mtc_gemm (the runtime's dense) */
    int B, I, O;
} dense_case;

static double time_rounds(int which, const dense_case *c, double secs)
{
    int64_t it = 0;
    double t0 = now_s(), dt;
    for (;;) {
        if (which == 0)
            mtc_dense_forward(c->out, c->in, c->W, c->b, c->B, c->I, c->O);
        else if (which == 2) /* the runtime's dense layer on AVX2 */
            mtc_gemm_avx2(c->out, c->O, c->in, c->I, c->B, &(mtc_gemm_w){c->Wp, c->I, c->O, 1}, c->b, 0);
        else if (which == 3) /* and on AVX-512 */
            mtc_gemm_avx512(c->out, c->O, c->in, c->I, c->B, &(mtc_gemm_w){c->Wp, c->I, c->O, 1}, c->b, 0);
        else /* the same product, nothing else: in·Wᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->B, c->O, c->I, 1.0f, c->in,
                        c->I, c->W, c->I, 0.0f, c->out, c->O);
        if (++it % 4 == 0 && (dt = now_s() - t0) >= secs) break;
    }
    return 2.0 * c->B * c->I * c->O * it / dt / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_dense(int argc, char **argv)
{
    double secs = opt_num(argc, argv, "--seconds", 1.5);
    int T = (int)opt_num(argc, argv, "--threads", 1);
    dense_case c = {.B = (int)opt_num(argc, argv, "--B", 256), .I = (int)opt_num(argc, argv, "--I", 784),
                    .O = (int)opt_num(argc, argv, "--O", 128)};
    dense_case big = {.B = 1024, .I = 1024, .O = 1024};
    openblas_set_num_threads(T);
    dense_case *cs[2] = {&c, &big};
    for (int k = 0; k < 2; k++) {
        dense_case *d = cs[k];
        d->in = malloc(sizeof(float) * d->B * d->I);
        d->W = malloc(sizeof(float) * d->O * d->I);
        d->b = malloc(sizeof(float) * d->O);
        d->out = malloc(sizeof(float) * d->B * d->O);
        if (!d->in || !d->W || !d->b || !d->out) return fprintf(stderr, "bench_infer: out of memory\n"), 2;
        fill_uniform(d->in, (int64_t)d->B * d->I, 1);
        fill_uniform(d->W, (int64_t)d->O * d->I, 2);
        fill_uniform(d->b, d->O, 3);
    }
    int packed = mtc_qgemm_isa_supported(MTC_ISA_AVX2);
    if (packed) {
        if (!(c.Wp = malloc(sizeof(float) * (size_t)mtc_gemm_pack_floats(c.O, c.I))))
            return fprintf(stderr, "bench_infer: out of memory\n"), 2;
        mtc_gemm_pack(c.Wp, c.W, c.O, c.I);
    }
    enum { R = 5 };
    const int has512 = mtc_qgemm_isa_supported(MTC_ISA_AVX512);
    double g_dense[R], g_sgemm[R], g_peak[R], g_rt[R] = {0}, g_rt512[R] = {0};
    time_rounds(0, &c, 0.05), time_rounds(1, &c, 0.05); /* warm-up */
    for (int r = 0; r < R; r++) { /* interleaved: noise from neighbours hits all */
        g_dense[r] = time_rounds(0, &c, secs / (4 * R));
        g_sgemm[r] = time_rounds(1, &c, secs / (4 * R));
        g_peak[r] = time_rounds(1, &big, secs / (4 * R));
        if (packed) g_rt[r] = time_rounds(2, &c, secs / (4 * R));
        if (has512) g_rt512[r] = time_rounds(3, &c, secs / (4 * R));
    }
    qsort(g_rt512, R, sizeof(double), cmp_d);
    qsort(g_dense, R, sizeof(double), cmp_d);
    qsort(g_sgemm, R, sizeof(double), cmp_d);
    qsort(g_peak, R, sizeof(double), cmp_d);
    qsort(g_rt, R, sizeof(double), cmp_d);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("{\"mode\":\"dense\",\"B\":%d,\"I\":%d,\"O\":%d,\"threads\":%d,\"dense_gflops\":%.2f,"
           "\"sgemm_gflops\":%.2f,\"sgemm_peak_gflops\":%.2f,\"dense_vs_sgemm\":%.3f,\"rt_dense_gflops\":%.2f,"
           "\"rt_dense_avx512_gflops\":%.2f,"
           "\"openblas_coretype_env\":\"%s\",\"corename\":\"%s\"}\n",
           c.B, c.I, c.O, T, g_dense[R / 2], g_sgemm[R / 2], g_peak[R / 2], g_dense[R / 2] / g_sgemm[R / 2],
           g_rt[R / 2], g_rt512[R / 2], ct ? ct : "", openblas_get_corename());
    for (int k = 0; k < 2; k++) free(cs[k]->in), free(cs[k]->W), free(cs[k]->b), free(cs[k]->out), free(cs[k]->Wp);
    return 0;
}

/* ---- training on a prefix of the data (quick mode's batch limit) -------- */
static int cmd_train(int argc, char **argv)
{
    if (argc < 2) return fprintf(stderr, "usage: bench_infer train SPEC --samples N [--epochs E] [--threads T]\n"), 2;
    int64_t nmax = (int64_t)opt_num(argc, argv, "--samples", 12800);
    int T = (int)opt_num(argc, argv, "--threads", 2);
    mtc_err e = {0};
    mtc_spec spec;
    char *text = NULL;
    mtc_model m;
    mtc_dataset d, dt;
    memset(&d, 0, sizeof d);
    memset(&dt, 0, sizeof dt);
    if (mtc_spec_load(argv[1], &spec, &text, &e)) return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    int rc = mtc_model_build(&spec, text, &m, &e);
    free(text);
    if (rc) return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    mtc_set_threads(T); /* before the model reserves its buffers (and pool) */
    if (mtc_data_open("fashion-mnist", "train", NULL, &d, &e) ||
        mtc_data_open("fashion-mnist", "test", NULL, &dt, &e))
        return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    if (d.n > nmax) d.n = nmax; /* the first N samples; labels stay valid */
    mtc_model_init_params(&m, 1);
    mtc_train_cfg cfg;
    mtc_train_cfg_default(&cfg);
    cfg.epochs = (int)opt_num(argc, argv, "--epochs", 1);
    cfg.batch = (int)opt_num(argc, argv, "--batch", 128);
    cfg.val_frac = 0;
    cfg.seed = 1;
    mtc_train_result res = {0};
    mtc_task_eval ev[MTC_MAX_TASKS];
    if (mtc_train(&m, &d, &cfg, &res, &e) || mtc_evaluate(&m, &dt, NULL, 0, 256, ev, &e))
        return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    const char *out = opt_str(argc, argv, "--out", NULL);
    if (out && mtc_model_save(&m, out, "{\"producer\":\"bench_infer train\"}", &e))
        return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    printf("{\"mode\":\"train\",\"spec\":\"%s\",\"samples\":%lld,\"threads\":%d,\"samples_per_s\":%.1f",
           argv[1], (long long)d.n, T, res.samples_per_s);
    for (int t = 0; t < m.spec.ntasks; t++)
        printf(",\"%s_acc\":%.4f", m.spec.tasks[t].name, ev[t].cls.accuracy);
    printf(",\"peak_rss_kib\":%ld,\"corename\":\"%s\"}\n", peak_rss_kib(), openblas_get_corename());
    mtc_task_eval_free(ev, m.spec.ntasks);
    free(res.history_json);
    mtc_data_free(&d);
    mtc_data_free(&dt);
    mtc_model_free(&m);
    return 0;
}

/* ---- int8 runtime (another stage; compiled only when its header exists) - */
#ifdef HAVE_RT
/* The runtime runs any checkpoint: int8 ones and, for reference, fp32 ones.
 * Threads through mtc_rt_set_threads (the runtime owns the parallelism and
 * asks OpenBLAS for one thread). Test accuracy per task comes first. */
static int cmd_int8(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: bench_infer int8 CKPT [--seconds S] [--batches 1,16,256] [--threads 1,2]\n"), 2;
    double secs = opt_num(argc, argv, "--seconds", 1.0);
    mtc_err e = {0};
    mtc_rt *rt = NULL;
    mtc_dataset dt;
    memset(&dt, 0, sizeof dt);
    if (mtc_rt_load(argv[1], &rt, &e)) return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    const mtc_model *m = mtc_rt_model(rt);
    int T = m->spec.ntasks;
    const char *dtype = mtc_rt_nquantized(rt) > 0 ? "int8" : "fp32";
    float *pred[MTC_MAX_TASKS] = {0};
    mtc_task_eval ev[MTC_MAX_TASKS];
    if (mtc_data_open("fashion-mnist", "test", NULL, &dt, &e) ||
        mtc_rt_predict(rt, &dt, NULL, 0, 256, pred, &e) ||
        mtc_evaluate_outputs(m, &dt, NULL, 0, pred, ev, &e))
        return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    printf("{\"mode\":\"accuracy\",\"model\":\"%s\",\"dtype\":\"%s\",\"quantized_layers\":%d,"
           "\"layers\":%d,\"weight_bytes\":%lld", argv[1], dtype, mtc_rt_nquantized(rt),
           mtc_rt_nlayers(rt), (long long)mtc_rt_weight_bytes(rt));
    for (int t = 0; t < T; t++) printf(",\"%s_acc\":%.4f", m->spec.tasks[t].name, ev[t].cls.accuracy);
    printf("}\n");
    mtc_task_eval_free(ev, T);
    for (int t = 0; t < T; t++) free(pred[t]);
    mtc_data_free(&dt);
    int64_t S, pool = 2048;
    float *x = test_inputs(pool, &S, &e);
    engine g; /* the loaded runtime, timed as `infer --engine rt` times it */
    memset(&g, 0, sizeof g);
    g.rt = rt;
    for (int t = 0; t < T; t++) g.outs[t] = malloc(256 * (size_t)m->spec.tasks[t].dim * sizeof(float));
    if (!x) return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    int batches[8], threads[8];
    int nb = opt_list(argc, argv, "--batches", "1,16,256", batches, 8);
    int nt = opt_list(argc, argv, "--threads", "1,2", threads, 8);
    for (int bi = 0; bi < nb; bi++)
        if (batches[bi] > 256) return fprintf(stderr, "bench_infer: int8: batch <= 256\n"), 2;
    int nchw = 0;
    for (int i = 2; i < argc; i++) nchw |= !strcmp(argv[i], "--nchw");
    mtc_rt_set_channels_last(rt, !nchw);
    for (int ti = 0; ti < nt; ti++) {
        mtc_rt_set_threads(rt, threads[ti]);
        for (int bi = 0; bi < nb; bi++) {
            int B = batches[bi];
            double sps;
            int64_t it;
            if (time_batch(&g, x, S, pool, B, secs, &sps, &it, &e)) return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
            printf("{\"mode\":\"infer_rt\",\"model\":\"%s\",\"dtype\":\"%s\",\"isa\":\"%s\",\"batch\":%d,"
                   "\"threads\":%d,\"samples_per_s\":%.1f,\"iters\":%lld,\"layout\":\"%s\"}\n", argv[1], dtype,
                   mtc_isa_name(mtc_qgemm_isa()), B, threads[ti], sps, (long long)it, nchw ? "nchw" : "channels-last");
            fflush(stdout);
        }
    }
    free(x);
    engine_close(&g); /* frees the outputs and the runtime */
    return 0;
}

/* ---- sparse kernel vs sgemm ------------------------------------------------ */
/* "0.5,0.9" -> up to max fractions in [0, 1); returns the count. */
static int opt_fracs(int argc, char **argv, const char *name, const char *def, double *v, int max)
{
    const char *s = opt_str(argc, argv, name, def);
    int n = 0;
    while (*s && n < max) {
        char *end;
        double x = strtod(s, &end);
        if (end == s || !(x >= 0.0 && x < 1.0)) break;
        v[n++] = x;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

typedef struct {
    const float *X, *W, *b, *Wp; /* Wp: W packed (AVX2 CPUs), as the runtime holds it */
    const mtc_csr *csr;
    mtc_spmm_fn spmm;
    float *Y, *scratch;
    int B, K, N;
} sparse_case;

/* Fastest call of the dense path as the runtime runs it (which = 0) or of the sparse kernel over
 * secs, in microseconds: on a shared machine a call is either preempted or
 * not, and the fastest is the one that was not. */
static double sparse_time_us(int which, const sparse_case *c, double secs)
{
    double best = 1e30, t0 = now_s(), t = t0;
    while (t - t0 < secs) {
        if (which == 0 && c->Wp) /* the runtime's dense path on AVX2 */
            mtc_gemm_avx2(c->Y, c->N, c->X, c->K, c->B, &(mtc_gemm_w){c->Wp, c->K, c->N, 1}, c->b, 0);
        else if (which == 0) mtc_dense_forward(c->Y, c->X, c->W, c->b, c->B, c->K, c->N);
        else c->spmm(c->X, c->B, c->csr, c->b, 0, c->Y, c->scratch);
        double t1 = now_s();
        if (t1 - t < best) best = t1 - t;
        t = t1;
    }
    return best * 1e6;
}

/* One (sparsity, batch) point: dense and sparse interleaved in rounds, the
 * fastest call of each. */
static void sparse_point(sparse_case *c, double secs, double *dense_us, double *sparse_us)
{
    enum { R = 5 };
    *dense_us = *sparse_us = 1e30;
    for (int r = 0; r < R; r++) {
        double d = sparse_time_us(0, c, secs / (2 * R)), s = sparse_time_us(1, c, secs / (2 * R));
        if (d < *dense_us) *dense_us = d;
        if (s < *sparse_us) *sparse_us = s;
    }
}

static int cmd_sparse(int argc, char **argv)
{
    double secs = opt_num(argc, argv, "--seconds", 0.2);
    int K = (int)opt_num(argc, argv, "--K", 784), N = (int)opt_num(argc, argv, "--N", 128);
    double sp[16];
    int batches[8], maxb = 1;
    int ns = opt_fracs(argc, argv, "--sparsity", "0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95,0.98", sp, 16);
    int nb = opt_list(argc, argv, "--batches", "1,4,16,256", batches, 8);
    for (int i = 0; i < nb; i++) maxb = batches[i] > maxb ? batches[i] : maxb;
    if (K < 1 || N < 1) return fprintf(stderr, "bench_infer: sparse: bad --K/--N\n"), 2;
    openblas_set_num_threads(1); /* as the runtime runs it */
    int isa = mtc_qgemm_isa();
    sparse_case c = {.spmm = mtc_spmm_get(isa), .K = K, .N = N};
    float *X = malloc((size_t)maxb * K * sizeof(float)), *W = malloc((size_t)N * K * sizeof(float));
    float *b = malloc((size_t)N * sizeof(float)), *Y = malloc((size_t)maxb * N * sizeof(float));
    if (!X || !W || !b || !Y) return fprintf(stderr, "bench_infer: out of memory\n"), 2;
    fill_uniform(X, (int64_t)maxb * K, 1);
    fill_uniform(b, N, 3);
    mtc_rng r;
    mtc_rng_seed(&r, 2);
    for (int si = 0; si < ns; si++) {
        for (int64_t i = 0; i < (int64_t)N * K; i++) /* each weight pruned with probability sp[si] */
            W[i] = mtc_rng_uniform(&r) < sp[si] ? 0.0f : mtc_rng_uniform(&r) - 0.5f;
        mtc_csr csr;
        mtc_err e = {0};
        if (mtc_csr_from_dense(&csr, W, N, K, &e)) return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
        float *scratch = malloc((size_t)mtc_spmm_scratch_floats(&csr) * sizeof(float));
        if (!scratch) return fprintf(stderr, "bench_infer: out of memory\n"), 2;
        float *Wp = NULL;
        if (mtc_qgemm_isa_supported(MTC_ISA_AVX2)) {
            if (!(Wp = malloc((size_t)mtc_gemm_pack_floats(N, K) * sizeof(float))))
                return fprintf(stderr, "bench_infer: out of memory\n"), 2;
            mtc_gemm_pack(Wp, W, N, K);
        }
        c.X = X, c.W = W, c.b = b, c.Wp = Wp, c.Y = Y, c.csr = &csr, c.scratch = scratch;
        for (int bi = 0; bi < nb; bi++) {
            double du, su;
            c.B = batches[bi];
            sparse_point(&c, secs, &du, &su);
            printf("{\"mode\":\"sparse\",\"K\":%d,\"N\":%d,\"sparsity\":%.4f,\"batch\":%d,\"isa\":\"%s\","
                   "\"dense_us\":%.2f,\"sparse_us\":%.2f,\"speedup\":%.3f,\"crossover\":%.2f,"
                   "\"corename\":\"%s\"}\n", K, N, mtc_sparsity(W, (int64_t)N * K), c.B, mtc_isa_name(isa), du,
                   su, du / su, mtc_sparse_crossover(c.B), openblas_get_corename());
            fflush(stdout);
        }
        free(scratch), free(Wp);
        mtc_csr_free(&csr);
    }
    free(X), free(W), free(b), free(Y);
    return 0;
}

/* Library quantization (defaults of mtc_quant_cfg_default, no budget), so
 * the bench does not depend on the CLI's flags. -DMTC_BENCH_NO_QUANTIZE
 * when libmtc.a has the runtime but not the quantizer yet. */
#ifdef MTC_BENCH_NO_QUANTIZE
static int cmd_quantize(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("{\"mode\":\"quantize\",\"unavailable\":\"int8: mtc_quantize not built yet\"}\n");
    return 2;
}
#else
static int cmd_quantize(int argc, char **argv)
{
    if (argc < 3) return fprintf(stderr, "usage: bench_infer quantize CKPT OUT\n"), 2;
    mtc_err e = {0};
    mtc_ckpt c;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    if (mtc_ckpt_load(argv[1], &c, &e)) return fprintf(stderr, "bench_infer: %s\n", e.msg), 2;
    mtc_quant_cfg cfg;
    mtc_quant_cfg_default(&cfg);
    mtc_quant_report *rep = calloc(1, sizeof *rep);
    double t0 = now_s();
    int rc = !rep || mtc_data_open("fashion-mnist", "train", NULL, &d, &e) ||
             mtc_quantize(&c, argv[1], &d, &cfg, argv[2], rep, &e);
    if (!rc)
        printf("{\"mode\":\"quantize\",\"out\":\"%s\",\"seconds\":%.2f,\"calib_used\":%lld}\n", argv[2],
               now_s() - t0, (long long)rep->calib_used);
    else
        fprintf(stderr, "bench_infer: %s\n", e.msg);
    free(rep);
    mtc_data_free(&d);
    mtc_ckpt_free(&c);
    return rc ? 2 : 0;
}
#endif
#else
static int cmd_int8(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("{\"mode\":\"int8\",\"unavailable\":\"int8: runtime not built yet\"}\n");
    return 0;
}
static int cmd_quantize(int argc, char **argv)
{
    return cmd_int8(argc, argv);
}
static int cmd_sparse(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("{\"mode\":\"sparse\",\"unavailable\":\"sparse: runtime not built yet\"}\n");
    return 0;
}
#endif

/* ---- peak RSS of a child process ------------------------------------------ */
static int cmd_rss(int argc, char **argv)
{
    if (argc < 3) return fprintf(stderr, "usage: bench_infer rss LABEL CMD ARGS...\n"), 2;
    pid_t pid = fork();
    if (pid < 0) return perror("bench_infer: fork"), 2;
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR) return perror("bench_infer: wait4"), 2;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    fflush(stdout);
    printf("{\"mode\":\"rss\",\"what\":\"%s\",\"exit\":%d,\"peak_rss_kib\":%ld}\n",
           argv[1], code, ru.ru_maxrss);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_infer infer|dense|train|int8|quantize|sparse|rss ... (see bench_infer.c)\n");
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "infer")) return cmd_infer(argc - 1, argv + 1);
    if (!strcmp(c, "dense")) return cmd_dense(argc - 1, argv + 1);
    if (!strcmp(c, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(c, "int8")) return cmd_int8(argc - 1, argv + 1);
    if (!strcmp(c, "quantize")) return cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(c, "sparse")) return cmd_sparse(argc - 1, argv + 1);
    if (!strcmp(c, "rss")) return cmd_rss(argc - 1, argv + 1);
    fprintf(stderr, "bench_infer: unknown mode '%s'\n", c);
    return 2;
}
