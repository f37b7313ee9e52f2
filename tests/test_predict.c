/*
 * test_predict.c — `mtc predict` on PNG inputs: the model sees exactly the
 * pixels of a grey image of its input size; a wrong-size or colour PNG is
 * refused with exit 2 and one line naming the file, unless --convert asks
 * for the conversion (then stderr says what was done). mtc_png_probe reports
 * a PNG's layout before any conversion.
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <png.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* 1x28x28 input, as the image workloads. */
#define IMG_SPEC "[input] shape = 1x28x28\n[dense] units = 16 act = relu\n[task kind] kind = cls classes = 3\n"

typedef struct fixture {
    char *dir, *model;
    char *out, *err; /* of the last run */
} fixture;

static fixture F;

static int setup(void **st)
{
    (void)st;
    F.dir = tu_mkdtemp();
    F.model = tu_path(F.dir, "m.mtc");
    mtc_model m;
    mtc_err e = {0};
    int rc = tu_build_model(IMG_SPEC, &m, 3, &e);
    if (!rc) rc = mtc_model_save(&m, F.model, "{\"producer\":\"test\"}", &e);
    if (!rc) mtc_model_free(&m);
    if (rc) fprintf(stderr, "model: %s\n", e.msg);
    return rc;
}

static int teardown(void **st)
{
    (void)st;
    free(F.out);
    free(F.err);
    tu_rmdir(F.dir);
    free(F.dir);
    free(F.model);
    return 0;
}

static int mtc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int mtc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tu_run_mtcv(F.dir, &F.out, &F.err, fmt, ap);
    va_end(ap);
    return rc;
}

/* An h x w image with `channels` planes interleaved; grey pixel i is a
 * smooth pattern, and every channel of a colour pixel holds that grey value
 * unless tint is set. Returns the path (caller frees). */
static char *write_png(const char *name, int h, int w, int channels, int tint)
{
    uint8_t *px = malloc((size_t)h * w * channels);
    for (int i = 0; i < h * w; i++)
        for (int k = 0; k < channels; k++)
            px[i * channels + k] = (uint8_t)((i * 37 + (tint ? 80 * k : 0)) % 256);
    char *p = tu_path(F.dir, name);
    mtc_err e = {0};
    assert_int_equal(mtc_png_write(p, h, w, channels, px, &e), 0);
    free(px);
    return p;
}

/* Grey + alpha (mtc_png_write writes only grey and RGB). */
static char *write_png_grey_alpha(const char *name, int h, int w)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_GA;
    uint8_t *px = malloc((size_t)h * w * 2);
    for (int i = 0; i < h * w; i++) { px[2 * i] = (uint8_t)(i * 37 % 256); px[2 * i + 1] = 255; }
    char *p = tu_path(F.dir, name);
    assert_true(png_image_write_to_file(&img, p, 0, px, 0, NULL) != 0);
    free(px);
    return p;
}

/* A refusal: exit 2, nothing on stdout, one stderr line naming file and model. */
static void assert_refused(const char *png, const char *problem)
{
    assert_int_equal(mtc("predict %s --input %s", F.model, png), 2);
    assert_string_equal(F.out, "");
    char *nl = strchr(F.err, '\n');
    assert_true(nl && nl[1] == 0);
    assert_non_null(strstr(F.err, "mtc predict: "));
    assert_non_null(strstr(F.err, png));
    assert_non_null(strstr(F.err, problem));
    assert_non_null(strstr(F.err, "28x28 grey"));
    assert_non_null(strstr(F.err, "--convert"));
}

static void test_png_probe_reports_layout_before_conversion(void **st)
{
    (void)st;
    char *g = write_png("g.png", 28, 30, 1, 0), *c = write_png("c.png", 5, 7, 3, 1),
         *ga = write_png_grey_alpha("ga.png", 4, 4);
    int h, w, ch;
    mtc_err e = {0};
    assert_int_equal(mtc_png_probe(g, &h, &w, &ch, &e), 0);
    assert_true(h == 28 && w == 30 && ch == 1);
    assert_int_equal(mtc_png_probe(c, &h, &w, &ch, &e), 0);
    assert_true(h == 5 && w == 7 && ch == 3);
    assert_int_equal(mtc_png_probe(ga, &h, &w, &ch, &e), 0);
    assert_true(h == 4 && w == 4 && ch == 2);
    assert_int_equal(mtc_png_probe(F.model, &h, &w, &ch, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "not a PNG"));
    free(g); free(c); free(ga);
}

static void test_predict_takes_a_right_size_grey_png_silently(void **st)
{
    (void)st;
    char *g = write_png("ok.png", 28, 28, 1, 0);
    assert_int_equal(mtc("predict %s --input %s", F.model, g), 0);
    assert_non_null(strstr(F.out, "0:  kind="));
    assert_string_equal(F.err, "");
    free(g);
}

static void test_predict_refuses_wrong_size_png(void **st)
{
    (void)st;
    char *p = write_png("big.png", 330, 1180, 1, 0);
    assert_refused(p, "1180x330 grey");
    free(p);
}

static void test_predict_refuses_colour_png_even_at_the_right_size(void **st)
{
    (void)st;
    char *c = write_png("rgb.png", 28, 28, 3, 1), *ga = write_png_grey_alpha("ga.png", 28, 28);
    assert_refused(c, "28x28 colour (RGB)");
    assert_refused(ga, "28x28 grey+alpha");
    free(c); free(ga);
}

/* --convert: an RGB image whose channels are equal has luma = that grey, so
 * the output must match the grey image's exactly; stderr says what was done. */
static void test_predict_convert_says_what_it_did(void **st)
{
    (void)st;
    char *g = write_png("g.png", 28, 28, 1, 0), *c = write_png("c.png", 28, 28, 3, 0),
         *big = write_png("big.png", 330, 1180, 3, 1);
    assert_int_equal(mtc("predict %s --input %s --json", F.model, g), 0);
    char *grey_out = F.out;
    F.out = NULL;
    assert_int_equal(mtc("predict %s --input %s --convert --json", F.model, c), 0);
    const char *pg = strstr(grey_out, "\"predictions\""), *pc = strstr(F.out, "\"predictions\"");
    assert_non_null(pg);
    assert_non_null(pc);
    assert_string_equal(pg, pc);
    assert_non_null(strstr(F.err, c));
    assert_non_null(strstr(F.err, "converted a 28x28 colour (RGB) image to 28x28 grey (luma"));
    free(grey_out);

    assert_int_equal(mtc("predict %s --input %s --convert", F.model, big), 0);
    assert_non_null(strstr(F.out, "0:  kind="));
    assert_non_null(strstr(F.err, "converted a 1180x330 colour (RGB) image to 28x28 grey"));
    assert_non_null(strstr(F.err, "bilinear resize"));
    /* a fitting image is not converted, so nothing is said */
    assert_int_equal(mtc("predict %s --input %s --convert", F.model, g), 0);
    assert_string_equal(F.err, "");
    free(g); free(c); free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_probe_reports_layout_before_conversion),
        cmocka_unit_test(test_predict_takes_a_right_size_grey_png_silently),
        cmocka_unit_test(test_predict_refuses_wrong_size_png),
        cmocka_unit_test(test_predict_refuses_colour_png_even_at_the_right_size),
        cmocka_unit_test(test_predict_convert_says_what_it_did),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
