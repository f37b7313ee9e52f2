/*
 * test_quant.c — int8 arithmetic: quantize/dequantize error bounds,
 * fixed-point requantization against a 64-bit reference and against float,
 * int8 GEMM kernels (AVX2, AVX-512 VNNI) bit-identical to the scalar one over
 * many shapes and saturation cases, vectorized activation quantization,
 * calibration ranges.
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_quant_u8_roundtrip_error_at_most_half_scale(void **st)
{
    (void)st;
    mtc_rng r;
    mtc_rng_seed(&r, 7);
    for (int trial = 0; trial < 200; trial++) {
        float lo = -5 * mtc_rng_uniform(&r), hi = 5 * mtc_rng_uniform(&r) + 1e-3f;
        for (int sym = 0; sym < 2; sym++) {
            mtc_qparams p = mtc_qparams_from_range(lo, hi, sym);
            float a = sym ? -127 * p.scale : (0 - p.zp) * p.scale, b = sym ? 127 * p.scale : (255 - p.zp) * p.scale;
            float x[256], y[256];
            uint8_t q[256];
            for (int i = 0; i < 256; i++) x[i] = a + (b - a) * mtc_rng_uniform(&r);
            mtc_quantize_u8(q, x, 256, p);
            mtc_dequantize_u8(y, q, 256, p);
            for (int i = 0; i < 256; i++)
                if (fabsf(x[i] - y[i]) > p.scale * 0.5f * (1 + 1e-4f))
                    fail_msg("x=%g back %g scale %g", x[i], y[i], p.scale);
            /* zero is exact (relu, padding) */
            float z = 0, zb;
            uint8_t zq;
            mtc_quantize_u8(&zq, &z, 1, p);
            mtc_dequantize_u8(&zb, &zq, 1, p);
            assert_true(zb == 0.0f);
        }
    }
}

static void test_quant_weights_per_channel_and_per_tensor_bounds(void **st)
{
    (void)st;
    mtc_rng r;
    mtc_rng_seed(&r, 3);
    enum { R = 7, C = 33 };
    float W[R * C], scale[R];
    int8_t q[R * C];
    for (int i = 0; i < R * C; i++) W[i] = mtc_rng_normal(&r) * (1 + i / C);
    W[5] = 0; /* a pruned weight */
    for (int pt = 0; pt < 2; pt++) {
        mtc_quantize_weights_s8(q, scale, W, R, C, pt);
        for (int i = 0; i < R * C; i++) {
            assert_true(q[i] >= -127 && q[i] <= 127);
            assert_true(fabsf(q[i] * scale[i / C] - W[i]) <= scale[i / C] * 0.5f * (1 + 1e-4f));
        }
        assert_int_equal(q[5], 0);
        if (pt)
            for (int k = 1; k < R; k++) assert_true(scale[k] == scale[0]);
    }
}

/* Independent 64-bit statement of the requantization: stage 1 rounds
 * x·m0 / 2^31 to nearest with ties up for positive products and ties toward
 * zero for negative ones (gemmlowp's nudge); stage 2 divides by 2^shift
 * rounding half away from zero. */
static int32_t requant_ref(int32_t x, int32_t m0, int shift)
{
    int64_t xx = x;
    if (shift < 0) {
        xx *= (int64_t)1 << -shift;
        if (xx > INT32_MAX) xx = INT32_MAX;
        if (xx < INT32_MIN) xx = INT32_MIN;
        shift = 0;
    }
    int64_t s1;
    if (xx == INT32_MIN && m0 == INT32_MIN) s1 = INT32_MAX;
    else {
        int64_t ab = xx * (int64_t)m0;
        int64_t half = (int64_t)1 << 30;
        if (ab >= 0) s1 = (ab + half) >> 31;
        else s1 = -((-ab + half - 1) >> 31);
    }
    if (shift == 0) return (int32_t)s1;
    int64_t h = (int64_t)1 << (shift - 1);
    return (int32_t)(s1 >= 0 ? (s1 + h) >> shift : -((-s1 + h) >> shift));
}

static void test_quant_requantize_matches_64bit_reference_and_float(void **st)
{
    (void)st;
    mtc_rng r;
    mtc_rng_seed(&r, 11);
    int64_t checked = 0;
    for (int trial = 0; trial < 2000; trial++) {
        /* multipliers from 1e-6 to 4 */
        double real = exp(log(1e-6) + (log(4.0) - log(1e-6)) * mtc_rng_uniform(&r));
        int32_t m0;
        int shift;
        mtc_quant_multiplier(real, &m0, &shift);
        assert_true(m0 >= (1 << 30));
        assert_true(fabs(m0 * ldexp(1.0, -31 - shift) - real) <= real * 1e-9);
        for (int i = 0; i < 200; i++) {
            int32_t x;
            int kind = i % 4;
            if (kind == 0) x = (int32_t)(mtc_rng_u64(&r) >> 32);              /* any int32 */
            else if (kind == 1) x = (int32_t)(mtc_rng_below(&r, 2000001)) - 1000000;
            else if (kind == 2) x = (int32_t)mtc_rng_below(&r, 65) - 32;
            else x = i & 1 ? INT32_MIN : INT32_MAX;
            int32_t got = mtc_requantize(x, m0, shift);
            assert_int_equal(got, requant_ref(x, m0, shift));
            double f = (double)x * m0 * ldexp(1.0, -31 - shift); /* the value being approximated */
            int saturated = shift < 0 && fabs((double)x) * ldexp(1.0, -shift) >= 2147483647.0;
            if (!saturated && fabs(got - f) > 1.0)
                fail_msg("x=%d r=%.9g: %d vs float %.3f", x, real, got, f);
            checked++;
        }
    }
    assert_true(checked == 400000);
    /* gemmlowp edge cases */
    assert_int_equal(mtc_srdhm(INT32_MIN, INT32_MIN), INT32_MAX);
    assert_int_equal(mtc_rdivpot(-3, 1), -2);
    assert_int_equal(mtc_rdivpot(3, 1), 2);
    assert_int_equal(mtc_rdivpot(-5, 2), -1);
}

/* ---- GEMM kernels -------------------------------------------------------- */

static void gemm_case(int isa, int M, int N, int K, int fill, mtc_rng *r)
{
    int lda = K + (M % 3); /* row stride larger than K sometimes */
    size_t an = (size_t)M * lda + MTC_QGEMM_SLACK;
    uint8_t *A = malloc(an);
    int8_t *W = malloc((size_t)N * K);
    int32_t *C0 = malloc((size_t)M * N * sizeof(int32_t)), *C1 = malloc((size_t)M * N * sizeof(int32_t));
    for (size_t i = 0; i < an; i++) A[i] = fill == 0 ? (uint8_t)mtc_rng_below(r, 256) : 255;
    for (int i = 0; i < N * K; i++)
        W[i] = fill == 0 ? (int8_t)((int)mtc_rng_below(r, 256) - 128) : fill == 1 ? -128 : 127;
    mtc_qweight w;
    mtc_err e = {0};
    assert_int_equal(mtc_qweight_pack(&w, W, N, K, &e), 0);
    memset(C0, 0x5a, (size_t)M * N * sizeof(int32_t));
    memset(C1, 0xa5, (size_t)M * N * sizeof(int32_t));
    mtc_qgemm_scalar(A, lda, &w, M, C0, N);
    mtc_qgemm_get(isa)(A, lda, &w, M, C1, N);
    /* the scalar kernel itself against the plain definition */
    for (int m = 0; m < M; m += 1 + M / 3)
        for (int n = 0; n < N; n += 1 + N / 5) {
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += (int32_t)A[(size_t)m * lda + k] * W[(size_t)n * K + k];
            assert_int_equal(C0[(size_t)m * N + n], s);
        }
    if (memcmp(C0, C1, (size_t)M * N * sizeof(int32_t)))
        fail_msg("%s differs from scalar at M=%d N=%d K=%d fill=%d", mtc_isa_name(isa), M, N, K, fill);
    mtc_qweight_free(&w);
    free(A); free(W); free(C0); free(C1);
}

static void gemm_isa_bit_exact(int isa)
{
    if (!mtc_qgemm_isa_supported(isa)) {
        print_message("CPU lacks %s: skipped\n", mtc_isa_name(isa));
        skip();
    }
    mtc_rng r;
    mtc_rng_seed(&r, 5);
    static const int Ms[] = {1, 2, 3, 4, 5, 7, 9, 17};
    static const int Ns[] = {1, 3, 10, 15, 16, 17, 33, 64, 65, 70};
    static const int Ks[] = {1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 127, 300};
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
            for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) gemm_case(isa, Ms[a], Ns[b], Ks[c], 0, &r);
    /* saturation: all 255 against all -128 / all 127, large K */
    for (int fill = 1; fill <= 2; fill++) {
        gemm_case(isa, 5, 17, 4099, fill, &r);
        gemm_case(isa, 8, 64, 65536, fill, &r);
    }
}

static void test_quant_gemm_avx2_bit_exact_to_scalar(void **st)
{
    (void)st;
    gemm_isa_bit_exact(MTC_ISA_AVX2);
}

static void test_quant_gemm_avx512_vnni_bit_exact_to_scalar(void **st)
{
    (void)st;
    gemm_isa_bit_exact(MTC_ISA_AVX512);
}

static void test_quant_act_quantize_vectorized_bit_exact(void **st)
{
    (void)st;
    mtc_rng r;
    mtc_rng_seed(&r, 9);
    enum { N = 1003 };
    float x[N];
    uint8_t q0[N], q1[N];
    for (int i = 0; i < N; i++) x[i] = 6 * mtc_rng_normal(&r);
    x[0] = NAN; x[1] = INFINITY; x[2] = -INFINITY;
    mtc_qparams p = mtc_qparams_from_range(-3, 7, 0);
    mtc_quantize_u8(q0, x, N, p);
    if (mtc_qgemm_isa_supported(MTC_ISA_AVX2)) {
        mtc_quantize_u8_avx2(q1, x, N, p);
        assert_memory_equal(q0, q1, N);
    }
    if (mtc_qgemm_isa_supported(MTC_ISA_AVX512)) {
        mtc_quantize_u8_avx512(q1, x, N, p);
        assert_memory_equal(q0, q1, N);
    }
}

static void test_quant_isa_env_override(void **st)
{
    (void)st;
    setenv("MTC_ISA", "scalar", 1);
    assert_int_equal(mtc_qgemm_isa(), MTC_ISA_SCALAR);
    setenv("MTC_ISA", "avx2", 1);
    assert_int_equal(mtc_qgemm_isa(), mtc_qgemm_isa_supported(MTC_ISA_AVX2) ? MTC_ISA_AVX2 : MTC_ISA_SCALAR);
    unsetenv("MTC_ISA");
}

/* ---- calibration ------------------------------------------------------- */

static void calib_fill(mtc_calib *c, const float *x, int64_t n)
{
    mtc_calib_init(c);
    mtc_calib_observe(c, x, n);
    mtc_calib_next_pass(c);
    mtc_calib_observe(c, x, n);
}

static void test_quant_calibration_clips_outliers_but_not_minmax(void **st)
{
    (void)st;
    mtc_rng r;
    mtc_rng_seed(&r, 1);
    enum { N = 100000 };
    float *x = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = fabsf(mtc_rng_normal(&r)); /* relu-like */
    x[17] = 50.0f; /* one outlier */
    mtc_calib *c = malloc(sizeof *c);
    calib_fill(c, x, N);
    float lo, hi;
    mtc_calib_result(c, MTC_CALIB_MINMAX, 0, 0, &lo, &hi);
    assert_true(lo >= 0 && hi == 50.0f);
    mtc_calib_result(c, MTC_CALIB_PERCENTILE, 99.99, 0, &lo, &hi);
    assert_true(hi > 3.0f && hi < 6.0f);
    mtc_calib_result(c, MTC_CALIB_ENTROPY, 0, 0, &lo, &hi);
    if (!(hi > 2.0f && hi < 10.0f)) fail_msg("entropy threshold %g", hi);
    /* a signed tensor gets a range on both sides */
    for (int i = 0; i < N; i++) x[i] = mtc_rng_normal(&r);
    calib_fill(c, x, N);
    mtc_calib_result(c, MTC_CALIB_ENTROPY, 0, 1, &lo, &hi);
    assert_true(lo < -1.5f && hi > 1.5f);
    mtc_calib_result(c, MTC_CALIB_PERCENTILE, 99.9, 0, &lo, &hi);
    assert_true(lo < -2.5f && lo > -4.5f && hi > 2.5f && hi < 4.5f);
    free(c);
    free(x);
}

/* The AVX-512 dense epilogue is bit-identical to the scalar one, including
 * accumulators at the int32 extremes, every shift 0..30 and odd widths;
 * then, for every shift and multipliers at both ends of [2^30, 2^31),
 * accumulators around each rounding boundary of both roundings (where a
 * fused formula would go wrong first), both signs. */
static void test_quant_avx512_epilogue_bit_exact_to_scalar(void **st)
{
    (void)st;
    if (!mtc_qgemm_isa_supported(MTC_ISA_AVX512)) skip();
    mtc_rng r;
    mtc_rng_seed(&r, 77);
    for (int it = 0; it < 300; it++) {
        int M = 1 + (int)mtc_rng_below(&r, 5), N = 1 + (int)mtc_rng_below(&r, 70);
        int32_t *C = malloc(sizeof(int32_t) * (size_t)(M * N)), *bias = malloc(sizeof(int32_t) * (size_t)N);
        int32_t *m0 = malloc(sizeof(int32_t) * (size_t)N);
        int *sh = malloc(sizeof(int) * (size_t)N);
        uint8_t *a = malloc((size_t)(M * N)), *b = malloc((size_t)(M * N));
        double real[80];
        for (int n = 0; n < N; n++) {
            bias[n] = (int32_t)(mtc_rng_u64(&r) >> 52) - (1 << 11);
            real[n] = 1e-5 + mtc_rng_uniform(&r) * (it % 3 ? 0.01 : 0.999);
            mtc_quant_multiplier(real[n], &m0[n], &sh[n]);
            if (it % 7 == 0) sh[n] = (int)mtc_rng_below(&r, 31);
        }
        /* mostly accumulators that land inside [-60, 320] after scaling, so
         * rounding (not clamping) decides the byte; some at the extremes */
        for (int i = 0; i < M * N; i++) {
            uint64_t k = mtc_rng_below(&r, 10);
            double target = -60 + 380 * mtc_rng_uniform(&r);
            C[i] = k == 0 ? INT32_MAX / 2 : k == 1 ? INT32_MIN / 2 : k == 2 ? INT32_MAX - 4096 - (int32_t)mtc_rng_below(&r, 9)
                 : k == 3 ? INT32_MIN + 4096 + (int32_t)mtc_rng_below(&r, 9) : (int32_t)(target / real[i % N]) - bias[i % N];
        }
        if (!mtc_epilogue_vectorizable(m0, sh, N)) fail_msg("multipliers below 1 must be vectorizable");
        int32_t zo = (int32_t)mtc_rng_below(&r, 256), lo = it % 2 ? zo : 0;
        mtc_epilogue_dense_u8_scalar(C, M, N, bias, m0, sh, zo, lo, a, N);
        mtc_epilogue_dense_u8_avx512(C, M, N, bias, m0, sh, zo, lo, b);
        if (memcmp(a, b, (size_t)(M * N))) fail_msg("iteration %d (M %d, N %d) differs", it, M, N);
        free(C); free(bias); free(m0); free(sh); free(a); free(b);
    }
    enum { R = 4096 };
    static int32_t C[R * 16];
    static uint8_t a[R * 16], b[R * 16];
    const int32_t ms[4] = {1 << 30, (1 << 30) + 1, INT32_MAX, 1518500250};
    for (int e = 0; e <= 30; e++)
        for (int mi = 0; mi < 4; mi++) {
            int32_t m0[16], bias[16] = {0};
            int sh[16];
            for (int n = 0; n < 16; n++) m0[n] = ms[mi], sh[n] = e;
            /* x with x·m0 near j·2^(30+e) (a tie of the second rounding for odd
             * j) and near j·2^30 (of the first), j small of both signs */
            for (int i = 0; i < R * 16; i++) {
                int64_t j = (int64_t)mtc_rng_below(&r, 64) - 32;
                int pw = mtc_rng_below(&r, 2) ? 30 + e : 30;
                double x = (double)j * ldexp(1.0, pw) / ms[mi] + ((double)mtc_rng_below(&r, 5) - 2);
                C[i] = x > INT32_MAX - 1.0 ? INT32_MAX - 1 : x < INT32_MIN + 1.0 ? INT32_MIN + 1 : (int32_t)x;
            }
            mtc_epilogue_dense_u8_scalar(C, R, 16, bias, m0, sh, 128, 0, a, 16);
            mtc_epilogue_dense_u8_avx512(C, R, 16, bias, m0, sh, 128, 0, b);
            if (memcmp(a, b, sizeof a)) fail_msg("boundaries: shift %d m0 %d differ", e, (int)ms[mi]);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quant_u8_roundtrip_error_at_most_half_scale),
        cmocka_unit_test(test_quant_weights_per_channel_and_per_tensor_bounds),
        cmocka_unit_test(test_quant_requantize_matches_64bit_reference_and_float),
        cmocka_unit_test(test_quant_gemm_avx2_bit_exact_to_scalar),
        cmocka_unit_test(test_quant_gemm_avx512_vnni_bit_exact_to_scalar),
        cmocka_unit_test(test_quant_act_quantize_vectorized_bit_exact),
        cmocka_unit_test(test_quant_isa_env_override),
        cmocka_unit_test(test_quant_calibration_clips_outliers_but_not_minmax),
        cmocka_unit_test(test_quant_avx512_epilogue_bit_exact_to_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
