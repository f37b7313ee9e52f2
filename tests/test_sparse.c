/*
 * test_sparse.c — the runtime's sparse fp32 dense layers: the CSR keeps
 * every nonzero in order, the scalar kernel equals the dense path (sgemm +
 * relu) at any sparsity, batch and shape, every SIMD twin equals the
 * scalar one, and a pruned checkpoint gives the same outputs through
 * mtc_rt_run with the sparse path on (MTC_SPARSE_MIN=0) as with it off
 * (MTC_SPARSE=0).
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* W (N, K) uniform in [-0.5, 0.5) with each weight zero with probability s. */
static float *random_sparse(int N, int K, double s, uint64_t seed)
{
    float *W = malloc((size_t)N * K * sizeof(float));
    assert_non_null(W);
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    for (int64_t i = 0; i < (int64_t)N * K; i++)
        W[i] = mtc_rng_uniform(&r) < s ? 0.0f : mtc_rng_uniform(&r) - 0.5f;
    return W;
}

static void check_close(const float *want, const float *got, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (tu_relerr(want[i], got[i], 1.0) > 1e-5)
            fail_msg("%s: value %lld: want %.9g got %.9g", what, (long long)i, want[i], got[i]);
}

/* Y = kernel(X), with sentinels after Y and after the scratch: the kernel
 * writes B·N outputs and uses no more scratch than it asks for. */
static void run_kernel(mtc_spmm_fn f, const float *X, int B, const mtc_csr *W, const float *b, int relu, float *Y)
{
    int64_t ns = mtc_spmm_scratch_floats(W);
    float *scratch = malloc((size_t)(ns + 1) * sizeof(float));
    assert_non_null(scratch);
    scratch[ns] = 12345.0f;
    Y[(int64_t)B * W->N] = 54321.0f;
    f(X, B, W, b, relu, Y, scratch);
    assert_true(scratch[ns] == 12345.0f);
    assert_true(Y[(int64_t)B * W->N] == 54321.0f);
    free(scratch);
}

typedef struct { int N, K; } shape;
/* The student's first layer; one narrower than a vector with a K that is no
 * multiple of 8; two panels, the second partial. */
static const shape shapes[] = {{128, 784}, {5, 37}, {33, 300}};
static const double sparsities[] = {0.0, 0.5, 0.9, 0.99, 1.0};
static const int batches[] = {1, 2, 3, 17, 256};

#define NS (int)(sizeof sparsities / sizeof *sparsities)
#define NB (int)(sizeof batches / sizeof *batches)

/* For every shape, sparsity, batch and relu: kernel f against the reference
 * ref (NULL: mtc_dense_forward + relu, the runtime's dense path). */
static void compare_grid(mtc_spmm_fn f, mtc_spmm_fn ref, const char *name)
{
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int N = shapes[si].N, K = shapes[si].K;
        float *X = random_sparse(256, K, 0.0, 7), *b = random_sparse(1, N, 0.0, 8);
        size_t ny = ((size_t)256 * N + 1) * sizeof(float); /* + the sentinel */
        float *want = malloc(ny), *got = malloc(ny);
        assert_non_null(want);
        assert_non_null(got);
        for (int s = 0; s < NS; s++) {
            float *W = random_sparse(N, K, sparsities[s], 9 + s);
            mtc_csr csr;
            mtc_err e = {0};
            assert_int_equal(mtc_csr_from_dense(&csr, W, N, K, &e), 0);
            for (int bi = 0; bi < NB; bi++)
                for (int relu = 0; relu <= 1; relu++) {
                    int B = batches[bi];
                    if (ref) {
                        run_kernel(ref, X, B, &csr, b, relu, want);
                    } else {
                        mtc_dense_forward(want, X, W, b, B, K, N);
                        if (relu) mtc_act_forward(want, want, (int64_t)B * N, MTC_ACT_RELU);
                    }
                    run_kernel(f, X, B, &csr, b, relu, got);
                    char what[128];
                    snprintf(what, sizeof what, "%s %dx%d s=%.2f B=%d relu=%d", name, N, K, sparsities[s], B, relu);
                    check_close(want, got, (int64_t)B * N, what);
                }
            mtc_csr_free(&csr);
            free(W);
        }
        free(X); free(b); free(want); free(got);
    }
}

static void test_sparse_csr_keeps_every_nonzero_in_order(void **st)
{
    (void)st;
    int N = 33, K = 300;
    float *W = random_sparse(N, K, 0.8, 1);
    mtc_csr c;
    mtc_err e = {0};
    assert_int_equal(mtc_csr_from_dense(&c, W, N, K, &e), 0);
    assert_non_null(c.col16);
    assert_null(c.col32);
    assert_int_equal(c.P, (K + c.KP - 1) / c.KP);
    float *back = calloc((size_t)N * K, sizeof(float));
    for (int n = 0; n < N; n++) {
        const int32_t *split = c.split + (int64_t)n * (c.P + 1);
        assert_int_equal(split[0], c.rowptr[n]);
        assert_int_equal(split[c.P], c.rowptr[n + 1]);
        for (int p = 0; p < c.P; p++)
            for (int32_t j = split[p]; j < split[p + 1]; j++) {
                assert_true(c.col16[j] >= p * c.KP && c.col16[j] < (p + 1) * c.KP); /* in its panel */
                if (j > c.rowptr[n]) assert_true(c.col16[j] > c.col16[j - 1]);     /* ascending */
                assert_true(c.val[j] != 0.0f);
                back[(int64_t)n * K + c.col16[j]] = c.val[j];
            }
    }
    assert_memory_equal(back, W, (size_t)N * K * sizeof(float));
    assert_true(mtc_sparsity(W, (int64_t)N * K) == 1.0 - (double)c.nnz / (N * K));
    mtc_csr_free(&c);
    free(back);
    free(W);
}

static void test_sparse_scalar_kernel_equals_dense_path(void **st)
{
    (void)st;
    compare_grid(mtc_spmm_scalar, NULL, "scalar");
}

static void test_sparse_simd_kernels_equal_scalar_twin(void **st)
{
    (void)st;
    int tested = 0;
    if (mtc_qgemm_isa_supported(MTC_ISA_AVX2)) compare_grid(mtc_spmm_avx2, mtc_spmm_scalar, "avx2"), tested++;
    if (mtc_qgemm_isa_supported(MTC_ISA_AVX512)) compare_grid(mtc_spmm_avx512, mtc_spmm_scalar, "avx512"), tested++;
    if (!tested) skip();
}

/* K ≥ 65536: 32-bit column indices, through the row and the tile paths.
 * 99.9% sparse (~70 terms a sum, as short as the other tests': long float
 * sums in two orders drift apart by more than 1e-5), against double. */
static void test_sparse_wide_input_uses_32bit_columns(void **st)
{
    (void)st;
    int N = 3, K = 70000, B = 20;
    float *W = random_sparse(N, K, 0.999, 4), *X = random_sparse(B, K, 0.0, 5), *b = random_sparse(1, N, 0.0, 6);
    float want[20 * 3 + 1], got[20 * 3 + 1];
    mtc_csr c;
    mtc_err e = {0};
    assert_int_equal(mtc_csr_from_dense(&c, W, N, K, &e), 0);
    assert_null(c.col16);
    assert_non_null(c.col32);
    for (int isa = MTC_ISA_SCALAR; isa <= MTC_ISA_AVX512; isa++) {
        if (!mtc_qgemm_isa_supported(isa)) continue;
        for (int rows = 1; rows <= B; rows += B - 1) {
            for (int i = 0; i < rows * N; i++) {
                double y = b[i % N];
                for (int k = 0; k < K; k++) y += (double)X[(int64_t)(i / N) * K + k] * W[(int64_t)(i % N) * K + k];
                want[i] = (float)y;
            }
            run_kernel(mtc_spmm_get(isa), X, rows, &c, b, 0, got);
            check_close(want, got, (int64_t)rows * N, mtc_isa_name(isa));
        }
    }
    mtc_csr_free(&c);
    free(W); free(X); free(b);
}

static void test_sparse_crossover_is_lowest_for_large_batches(void **st)
{
    (void)st;
    double lowest = mtc_sparse_crossover(INT_MAX);
    assert_true(lowest > 0.0 && lowest < 1.0);
    for (int B = 1; B <= 4096; B++) {
        double c = mtc_sparse_crossover(B);
        assert_true(c >= lowest && c < 1.0);
    }
    assert_true(mtc_sparse_crossover(1) > mtc_sparse_crossover(256)); /* gathers cost more than a tile */
}

/* ---- through the runtime ------------------------------------------------- */

/* Dense + folded batchnorm + fused relu, dense with tanh (not fused into the
 * kernel), and two heads; pruned to 90% per layer. */
#define PRUNED_SPEC                                                                                  \
    "[input] shape = 1x1x64\n[dense] units = 48\n[batchnorm]\n[act] fn = relu\n"                     \
    "[dense] units = 40 act = tanh\n"                                                                \
    "[task a] kind = cls classes = 3\n[task v] kind = reg outputs = 1\n"

static void set_env(const char *sparse, const char *min)
{
    unsetenv("MTC_SPARSE");
    unsetenv("MTC_SPARSE_MIN");
    if (sparse) setenv("MTC_SPARSE", sparse, 1);
    if (min) setenv("MTC_SPARSE_MIN", min, 1);
}

/* The checkpoint at path loaded with MTC_SPARSE / MTC_SPARSE_MIN set as
 * given (NULL: unset); both unset again afterwards. */
static mtc_rt *load_with(const char *path, const char *sparse, const char *min)
{
    set_env(sparse, min);
    mtc_rt *rt = NULL;
    mtc_err e = {0};
    int rc = mtc_rt_load(path, &rt, &e);
    set_env(NULL, NULL);
    if (rc) fail_msg("load: %s", e.msg);
    return rt;
}

static void run_all(mtc_rt *rt, const float *x, int B, float **outs)
{
    mtc_err e = {0};
    if (mtc_rt_run(rt, x, B, outs, &e)) fail_msg("run: %s", e.msg);
}

/* PRUNED_SPEC (seed 3), pruned per layer to `sparsity` when > 0, saved
 * as dir/file; returns the path. */
static char *save_test_model(const char *dir, const char *file, double sparsity)
{
    char *path = tu_path(dir, file);
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model(PRUNED_SPEC, &m, 3, &e), 0);
    if (sparsity > 0) assert_int_equal(mtc_prune_magnitude(&m, sparsity, MTC_PRUNE_LAYER, NULL, &e), 0);
    assert_int_equal(mtc_model_save(&m, path, NULL, &e), 0);
    mtc_model_free(&m);
    return path;
}

static void test_sparse_pruned_checkpoint_same_outputs_sparse_or_dense(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *path = save_test_model(dir, "pruned.mtc", 0.9);
    float *x = random_sparse(256, 64, 0.0, 11), *want[2], *got[2];
    for (int t = 0; t < 2; t++) {
        want[t] = malloc(256 * 3 * sizeof(float));
        got[t] = malloc(256 * 3 * sizeof(float));
    }
    mtc_rt *dense = load_with(path, "0", NULL), *sparse = load_with(path, NULL, "0");
    mtc_rt *dflt = load_with(path, NULL, NULL);
    int ndense = mtc_rt_nlayers(dense); /* all four layers are dense */
    for (int B = 1; B <= 256; B *= 16) {
        assert_int_equal(mtc_rt_nsparse(dense, B), 0);
        assert_int_equal(mtc_rt_nsparse(sparse, B), ndense);
    }
    assert_int_equal(mtc_rt_nsparse(dflt, 256), ndense); /* ~90% ≥ the large-batch crossover */
    for (int threads = 1; threads <= 2; threads++) {
        mtc_rt_set_threads(dense, threads);
        mtc_rt_set_threads(sparse, threads);
        mtc_rt_set_threads(dflt, threads);
        const int Bs[] = {1, 3, 256};
        for (int bi = 0; bi < 3; bi++) {
            int B = Bs[bi];
            run_all(dense, x, B, want);
            for (int which = 0; which < 2; which++) {
                run_all(which ? dflt : sparse, x, B, got);
                char what[96];
                snprintf(what, sizeof what, "%s B=%d threads=%d", which ? "default" : "sparse", B, threads);
                check_close(want[0], got[0], (int64_t)B * 3, what);
                check_close(want[1], got[1], B, what);
            }
        }
    }
    mtc_rt_free(dense); mtc_rt_free(sparse); mtc_rt_free(dflt);
    for (int t = 0; t < 2; t++) { free(want[t]); free(got[t]); }
    free(x);
    tu_rmdir(dir);
    free(dir); free(path);
}

static void test_sparse_bad_threshold_fails_the_load(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *path = save_test_model(dir, "m.mtc", 0);
    mtc_err e = {0};
    const char *bad[] = {"1.5", "-0.1", "ninety", "0.9x"};
    for (int i = 0; i < 4; i++) {
        set_env(NULL, bad[i]);
        mtc_rt *rt = NULL;
        assert_int_equal(mtc_rt_load(path, &rt, &e), MTC_EINPUT);
        assert_null(rt);
        assert_non_null(strstr(e.msg, "MTC_SPARSE_MIN"));
    }
    set_env(NULL, NULL);
    tu_rmdir(dir);
    free(dir); free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse_csr_keeps_every_nonzero_in_order),
        cmocka_unit_test(test_sparse_scalar_kernel_equals_dense_path),
        cmocka_unit_test(test_sparse_simd_kernels_equal_scalar_twin),
        cmocka_unit_test(test_sparse_wide_input_uses_32bit_columns),
        cmocka_unit_test(test_sparse_crossover_is_lowest_for_large_batches),
        cmocka_unit_test(test_sparse_pruned_checkpoint_same_outputs_sparse_or_dense),
        cmocka_unit_test(test_sparse_bad_threshold_fails_the_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
