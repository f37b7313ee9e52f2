/* test_plot.c — the drawing module (canvas primitives, text, ticks, charts)
 * and the `mtc plot` subcommands on small synthetic checkpoints. */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BG 0xffffffu
#define INK 0x123456u

static mtc_canvas blank(int w, int h)
{
    mtc_canvas c;
    mtc_err e = {0};
    assert_int_equal(mtc_canvas_init(&c, w, h, BG, &e), 0);
    return c;
}

/* Count of pixels != BG inside [x0,x1) x [y0,y1) and outside it. */
static void count_ink(const mtc_canvas *c, int x0, int y0, int x1, int y1, int *in, int *out)
{
    *in = *out = 0;
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) {
            if (mtc_canvas_get(c, x, y) == BG) continue;
            if (x >= x0 && x < x1 && y >= y0 && y < y1) (*in)++;
            else (*out)++;
        }
}

/* Reads a PNG back; asserts its size and returns its luma pixels. */
static uint8_t *png_check_size(const char *path, int w, int h)
{
    int rh = 0, rw = 0;
    uint8_t *px = NULL;
    mtc_err e = {0};
    assert_int_equal(mtc_png_read_gray(path, &rh, &rw, &px, &e), 0);
    assert_int_equal(rh, h);
    assert_int_equal(rw, w);
    return px;
}

static int non_white(const uint8_t *px, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) k += px[i] < 250;
    return k;
}

/* ---- primitives ------------------------------------------------------------- */

static void test_line_sets_both_end_pixels(void **st)
{
    (void)st;
    static const int seg[][4] = {{2, 3, 40, 17}, {40, 17, 2, 3}, {5, 30, 9, 1}, {20, 2, 20, 28}, {1, 1, 1, 1}};
    for (int width = 1; width <= 2; width++)
        for (size_t i = 0; i < sizeof seg / sizeof seg[0]; i++) {
            mtc_canvas c = blank(48, 32);
            mtc_draw_line(&c, seg[i][0], seg[i][1], seg[i][2], seg[i][3], width, INK);
            assert_int_equal(mtc_canvas_get(&c, seg[i][0], seg[i][1]), INK);
            assert_int_equal(mtc_canvas_get(&c, seg[i][2], seg[i][3]), INK);
            /* a connected line has at least max(|dx|,|dy|)+1 pixels */
            int in, out, n = abs(seg[i][2] - seg[i][0]);
            if (abs(seg[i][3] - seg[i][1]) > n) n = abs(seg[i][3] - seg[i][1]);
            count_ink(&c, 0, 0, 48, 32, &in, &out);
            assert_true(in >= (n + 1) * width);
            mtc_canvas_free(&c);
        }
}

static void test_filled_rect_covers_exactly_its_pixels(void **st)
{
    (void)st;
    mtc_canvas c = blank(30, 20);
    mtc_draw_rect(&c, 4, 5, 10, 7, INK);
    int in, out;
    count_ink(&c, 4, 5, 14, 12, &in, &out);
    assert_int_equal(in, 70);
    assert_int_equal(out, 0);
    /* partly outside the canvas: clipped, no crash */
    mtc_draw_rect(&c, 25, 15, 100, 100, INK);
    assert_int_equal(mtc_canvas_get(&c, 29, 19), INK);
    mtc_canvas_free(&c);
}

static void test_text_draws_inside_its_box_only(void **st)
{
    (void)st;
    const char *s = "Acc 0.97 gyp|~";
    for (int scale = 1; scale <= 3; scale++) {
        mtc_canvas c = blank(300, 100);
        int w = mtc_text_width(s, scale);
        assert_int_equal(w, (int)strlen(s) * MTC_FONT_W * scale);
        mtc_draw_text(&c, 7, 9, s, scale, INK);
        int in, out;
        count_ink(&c, 7, 9, 7 + w, 9 + MTC_FONT_H * scale, &in, &out);
        assert_true(in > 20 * scale * scale);
        assert_int_equal(out, 0);
        mtc_canvas_free(&c);

        c = blank(100, 300); /* rotated: 8*scale wide, w tall */
        mtc_draw_text_up(&c, 11, 5, s, scale, INK);
        count_ink(&c, 11, 5, 11 + MTC_FONT_H * scale, 5 + w, &in, &out);
        assert_true(in > 20 * scale * scale);
        assert_int_equal(out, 0);
        mtc_canvas_free(&c);
    }
}

static void test_every_printable_glyph_has_ink_but_space(void **st)
{
    (void)st;
    for (int ch = 33; ch <= 126; ch++) {
        int bits = 0;
        for (int r = 0; r < 8; r++) bits |= mtc_font5x8[ch - 32][r];
        assert_true(bits != 0);
        assert_true((bits & ~0x1f) == 0); /* 5 columns wide */
    }
}

static void test_clip_keeps_drawing_inside(void **st)
{
    (void)st;
    mtc_canvas c = blank(40, 40);
    mtc_canvas_clip(&c, 10, 10, 10, 10);
    mtc_draw_line(&c, 0, 0, 39, 39, 2, INK);
    mtc_draw_circle(&c, 15, 15, 12, 1, INK);
    mtc_canvas_unclip(&c);
    int in, out;
    count_ink(&c, 10, 10, 20, 20, &in, &out);
    assert_int_equal(in, 100);
    assert_int_equal(out, 0);
    mtc_canvas_free(&c);
}

static void test_canvas_rejects_bad_sizes(void **st)
{
    (void)st;
    mtc_canvas c;
    mtc_err e = {0};
    assert_int_equal(mtc_canvas_init(&c, 0, 10, BG, &e), MTC_EINPUT);
    assert_int_equal(mtc_canvas_init(&c, 10, 100000, BG, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "canvas"));
}

/* ---- ticks and axes ----------------------------------------------------------- */

static void test_log_ticks_at_powers_of_ten(void **st)
{
    (void)st;
    double t[32];
    int n = mtc_ticks_log10(50, 5e5, t, 32);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++) assert_true(fabs(t[i] - pow(10, i + 2)) < 1e-6 * t[i]);
    /* under three decades: 1-2-5 steps */
    n = mtc_ticks_log10(3, 40, t, 32);
    assert_int_equal(n, 3);
    assert_true(fabs(t[0] - 5) < 1e-9 && fabs(t[1] - 10) < 1e-9 && fabs(t[2] - 20) < 1e-9);
    assert_int_equal(mtc_ticks_log10(0, 10, t, 32), 0);
    /* decades are equally spaced on a log axis */
    mtc_axes a = {10, 0, 301, 100, 1e2, 1e5, 0, 1, 1};
    assert_true(fabs(mtc_axes_px(&a, 1e2) - 10) < 1e-9);
    assert_true(fabs(mtc_axes_px(&a, 1e3) - 110) < 1e-9);
    assert_true(fabs(mtc_axes_px(&a, 1e4) - 210) < 1e-9);
    assert_true(fabs(mtc_axes_px(&a, 1e5) - 310) < 1e-9);
    char buf[32];
    mtc_tick_label(1e4, 0, buf, sizeof buf);
    assert_string_equal(buf, "10k");
    mtc_tick_label(2e6, 0, buf, sizeof buf);
    assert_string_equal(buf, "2M");
}

static void test_linear_ticks_are_nice_steps(void **st)
{
    (void)st;
    double t[32];
    int n = mtc_ticks_linear(0, 1, 5, t, 32);
    assert_int_equal(n, 6); /* 0, 0.2, ..., 1 */
    assert_true(fabs(t[1] - 0.2) < 1e-12 && t[0] == 0 && fabs(t[5] - 1) < 1e-12);
    assert_true(fabs(mtc_tick_step(0.81, 0.97, 5) - 0.02) < 1e-12); /* 0.032 -> 2e-2 */
    assert_true(fabs(mtc_tick_step(0, 250, 5) - 50) < 1e-9);
    char buf[32];
    mtc_tick_label(0.85, 0.05, buf, sizeof buf);
    assert_string_equal(buf, "0.85");
    mtc_tick_label(20, 5, buf, sizeof buf);
    assert_string_equal(buf, "20");
    /* y axis goes up the canvas */
    mtc_axes a = {0, 10, 100, 101, 0, 1, 0, 1, 0};
    assert_true(fabs(mtc_axes_py(&a, 0) - 110) < 1e-9);
    assert_true(fabs(mtc_axes_py(&a, 1) - 10) < 1e-9);
}

/* ---- charts to PNG ------------------------------------------------------------ */

static void test_png_written_and_read_back(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "c.png");
    mtc_canvas c = blank(123, 45);
    mtc_draw_rect(&c, 0, 0, 10, 10, MTC_BLACK);
    mtc_err e = {0};
    assert_int_equal(mtc_canvas_write_png(&c, p, &e), 0);
    uint8_t *px = png_check_size(p, 123, 45);
    assert_int_equal(px[0], 0);
    assert_int_equal(px[44 * 123 + 122], 255);
    free(px);
    mtc_canvas_free(&c);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void test_chart_lines_png(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "lines.png");
    double x[8], y1[8], y2[8];
    for (int i = 0; i < 8; i++) {
        x[i] = i + 1;
        y1[i] = 1.0 / (i + 1);
        y2[i] = i == 3 ? NAN : 0.5 + 0.05 * i;
    }
    mtc_series s[2] = {{"fashion", 8, x, y1, NULL, NULL}, {"super", 8, x, y2, NULL, NULL}};
    mtc_chart ch = {"loss", "epoch", "loss", 0, 1, 0, 0, 1};
    mtc_canvas c = blank(500, 360);
    mtc_err e = {0};
    assert_int_equal(mtc_chart_lines(&c, 0, 0, 500, 360, &ch, s, 2, &e), 0);
    int blue = 0, orange = 0;
    for (int yy = 0; yy < c.h; yy++)
        for (int xx = 0; xx < c.w; xx++) {
            blue += mtc_canvas_get(&c, xx, yy) == mtc_palette(0);
            orange += mtc_canvas_get(&c, xx, yy) == mtc_palette(1);
        }
    assert_true(blue > 100 && orange > 100);
    assert_int_equal(mtc_canvas_write_png(&c, p, &e), 0);
    free(png_check_size(p, 500, 360));
    /* a panel too small for axes is an input error, not a crash */
    assert_int_equal(mtc_chart_lines(&c, 0, 0, 60, 50, &ch, s, 2, &e), MTC_EINPUT);
    mtc_canvas_free(&c);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void test_chart_scatter_logx_png(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "scatter.png");
    double x[3] = {2e4, 9e4, 4e5}, y[3] = {0.80, 0.84, 0.86}, y2[3] = {0.95, 0.97, 0.98};
    const char *lab[3] = {"int8.mtc", "pruned.mtc", "student.mtc"};
    mtc_series s[2] = {{"fashion", 3, x, y, lab, NULL}, {"super", 3, x, y2, lab, NULL}};
    mtc_chart ch = {"size", "file size (bytes)", "accuracy", 1, 0, 0, 0, 0};
    mtc_canvas c = blank(600, 400);
    mtc_err e = {0};
    assert_int_equal(mtc_chart_scatter(&c, 0, 0, 600, 400, &ch, s, 2, &e), 0);
    assert_int_equal(mtc_canvas_write_png(&c, p, &e), 0);
    uint8_t *px = png_check_size(p, 600, 400);
    assert_true(non_white(px, 600 * 400) > 2000);
    free(px);
    mtc_canvas_free(&c);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* A ringed point gets a dark ring of outer radius RING_R + 1 = 9 round its
 * marker; nothing else on the chart changes. */
static void test_chart_scatter_rings_only_marked_points(void **st)
{
    (void)st;
    double x[3] = {2e4, 9e4, 4e5}, y[3] = {0.80, 0.84, 0.86};
    const unsigned char ring[3] = {0, 1, 0};
    mtc_series plain = {"fashion", 3, x, y, NULL, NULL}, ringed = plain;
    ringed.ring = ring;
    mtc_chart ch = {"size", "file size (bytes)", "accuracy", 1, 0, 0, 0, 0};
    mtc_canvas a = blank(600, 400), b = blank(600, 400);
    mtc_err e = {0};
    assert_int_equal(mtc_chart_scatter(&a, 0, 0, 600, 400, &ch, &plain, 1, &e), 0);
    assert_int_equal(mtc_chart_scatter(&b, 0, 0, 600, 400, &ch, &ringed, 1, &e), 0);
    int n = 0, x0 = 600, x1 = -1, y0 = 400, y1 = -1;
    for (int yy = 0; yy < 400; yy++)
        for (int xx = 0; xx < 600; xx++) {
            uint32_t pa = mtc_canvas_get(&a, xx, yy), pb = mtc_canvas_get(&b, xx, yy);
            if (pa == pb) continue;
            assert_true((pb >> 16) < 0x40 && ((pb >> 8) & 0xff) < 0x40 && (pb & 0xff) < 0x40); /* dark */
            n++;
            if (xx < x0) x0 = xx;
            if (xx > x1) x1 = xx;
            if (yy < y0) y0 = yy;
            if (yy > y1) y1 = yy;
        }
    assert_true(n > 60 && n < 200);      /* two 1-px circles of radius 8 and 9 */
    assert_int_equal(x1 - x0 + 1, 19);  /* one ring only, centred on a point */
    assert_int_equal(y1 - y0 + 1, 19);
    assert_true(x0 > 150 && x1 < 450);  /* the middle point, not an end one */
    mtc_canvas_free(&a);
    mtc_canvas_free(&b);
}

static void test_chart_heatmap_png(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "heat.png");
    double v[16] = {50, 2, 0, 1, 3, 40, 5, 0, 0, 7, 1234, 2, 1, 0, 3, 45};
    mtc_heatmap hm = {"confusion", "predicted", "true", 4, 4, v, NULL, NULL, 1, 1};
    int w, h;
    mtc_heatmap_size(&hm, &w, &h);
    assert_true(w > 4 * 24 && h > 4 * 24);
    mtc_canvas c = blank(w, h);
    mtc_err e = {0};
    assert_int_equal(mtc_chart_heatmap(&c, 0, 0, &hm, &e), 0);
    assert_int_equal(mtc_canvas_write_png(&c, p, &e), 0);
    free(png_check_size(p, w, h));
    mtc_canvas_free(&c);
    hm.rows = 0;
    assert_int_equal(mtc_chart_heatmap(&c, 0, 0, &hm, &e), MTC_EINPUT);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* ---- CLI ---------------------------------------------------------------------- */

static const char *META =
    "{\"producer\":\"test\",\"history\":["
    "{\"epoch\":1,\"lr\":0.001,\"samples_per_s\":900,\"val_loss\":0.9,\"loss\":{\"fashion\":0.93,\"super\":0.41},"
    "\"weight\":{\"fashion\":1,\"super\":1},\"val\":{\"fashion\":0.78,\"super\":0.93},"
    "\"val_metric\":{\"fashion\":\"accuracy\",\"super\":\"accuracy\"}},"
    "{\"epoch\":2,\"lr\":0.001,\"samples_per_s\":910,\"val_loss\":0.7,\"loss\":{\"fashion\":0.63,\"super\":0.22},"
    "\"weight\":{\"fashion\":1,\"super\":1},\"val\":{\"fashion\":0.83,\"super\":0.96},"
    "\"val_metric\":{\"fashion\":\"accuracy\",\"super\":\"accuracy\"}},"
    "{\"epoch\":3,\"lr\":0.001,\"samples_per_s\":905,\"val_loss\":0.6,\"loss\":{\"fashion\":0.52,\"super\":0.15},"
    "\"weight\":{\"fashion\":1,\"super\":1},\"val\":{\"fashion\":0.86,\"super\":null},"
    "\"val_metric\":{\"fashion\":\"accuracy\",\"super\":\"accuracy\"}}],"
    "\"test\":{\"fashion\":{\"kind\":\"cls\",\"accuracy\":0.84,\"confusion\":[[80,5,15],[4,90,6],[10,8,82]]},"
    "\"super\":{\"kind\":\"cls\",\"accuracy\":0.97,\"confusion\":[[97,3],[3,97]]},"
    "\"age\":{\"kind\":\"reg\",\"mae\":3.1,\"mse\":12.5,\"r2\":0.71}}}";

/* A checkpoint with one tensor of n floats and the given metadata. */
static void save_ckpt(const char *path, const char *meta, int64_t n)
{
    mtc_ckpt c;
    memset(&c, 0, sizeof c);
    mtc_err e = {0};
    float *w = calloc((size_t)n, sizeof *w);
    for (int64_t i = 0; i < n; i++) w[i] = (float)((i * 7919) % 1000) / 1000.0f; /* poorly compressible */
    assert_int_equal(mtc_ckpt_add(&c, "w", MTC_F32, 1, &n, w, &e), 0);
    assert_int_equal(mtc_ckpt_set_text(&c.meta, meta), 0);
    assert_int_equal(mtc_ckpt_save(path, &c, &e), 0);
    mtc_ckpt_free(&c);
    free(w);
}

static char *run_out, *run_err; /* of the last run */

static int run(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(const char *dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tu_run_mtcv(dir, &run_out, &run_err, fmt, ap);
    va_end(ap);
    if (run_err && *run_err && getenv("MTC_TEST_VERBOSE")) fprintf(stderr, "[%s] %s", fmt, run_err);
    /* an error is one line */
    if (rc == 2 && run_err) {
        char *nl = strchr(run_err, '\n');
        assert_true(nl && nl[1] == 0);
        assert_non_null(strstr(run_err, "mtc plot"));
    }
    return rc;
}

static int file_exists(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    struct stat st;
    int ok = stat(p, &st) == 0 && st.st_size > 100;
    free(p);
    return ok;
}

static void test_cli_curves_and_confusion(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *m = tu_path(dir, "model.mtc");
    save_ckpt(m, META, 64);
    assert_int_equal(run(dir, "plot curves %s -o %s/curves.png", m, dir), 0);
    assert_true(file_exists(dir, "curves.png"));
    assert_int_equal(run(dir, "plot confusion %s -o %s/cm.png", m, dir), 0);
    assert_true(file_exists(dir, "cm-fashion.png"));
    assert_true(file_exists(dir, "cm-super.png"));
    assert_int_equal(run(dir, "plot confusion %s --task super -o %s/one.png", m, dir), 0);
    assert_true(file_exists(dir, "one.png"));
    assert_int_equal(run(dir, "plot confusion %s --task age -o %s/x.png", m, dir), 2);
    assert_int_equal(run(dir, "plot confusion %s --task nope -o %s/x.png", m, dir), 2);
    free(m);
    tu_rmdir(dir);
    free(dir);
}

static void test_cli_size_accuracy(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *a = tu_path(dir, "teacher.mtc"), *b = tu_path(dir, "student.mtc"),
         *c = tu_path(dir, "int8.mtc"), *d = tu_path(dir, "bare.mtc");
    save_ckpt(a, META, 40000);
    save_ckpt(b, "{\"test\":{\"fashion\":{\"kind\":\"cls\",\"accuracy\":0.82},"
                 "\"super\":{\"kind\":\"cls\",\"accuracy\":0.96}}}", 4000);
    save_ckpt(c, "{\"metrics\":{\"fashion\":0.81,\"super\":0.955},\"test\":{\"fashion\":{\"accuracy\":0.1}}}", 1000);
    save_ckpt(d, "{\"producer\":\"x\"}", 10);
    assert_int_equal(run(dir, "plot size-accuracy %s %s %s %s --quiet -o %s/sa.png", a, b, c, d, dir), 0);
    assert_true(file_exists(dir, "sa.png"));
    assert_int_equal(run(dir, "plot size-accuracy %s -o %s/none.png", d, dir), 2);
    free(a); free(b); free(c); free(d);
    tu_rmdir(dir);
    free(dir);
}

/* The point of `file` in the --json "points" array. */
static const mtc_json *point_of(const mtc_json *pts, const char *file)
{
    for (int i = 0; i < pts->n; i++) {
        const char *f = mtc_json_str(&pts->items[i], "file");
        if (f && !strcmp(f, file)) return &pts->items[i];
    }
    fail_msg("no point for %s", file);
    return NULL;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int64_t)st.st_size;
}

/* The pipeline on a tiny CSV (teacher, scratch student, KD student, pruned,
 * int8): with --data every stage is a point measured through the runtime,
 * the int8 one with its own file size and the metrics `mtc eval` gives it,
 * and the teacher is marked; without --data the int8 checkpoint, whose
 * metadata holds no test metrics, is skipped with a note saying why. */
static void test_cli_size_accuracy_plots_every_stage_int8_included(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *csv = tu_path(dir, "d.csv"), *ts = tu_path(dir, "t.cfg"), *ss = tu_path(dir, "s.cfg");
    const char *teacher = "[input] shape = 4 columns = x0,x1,x2,x3\n[dense] units = 128 act = relu\n"
                          "[dense] units = 128 act = relu\n[task a] kind = cls classes = 3\n"
                          "[task b] kind = cls classes = 2\n";
    const char *student = "[input] shape = 4 columns = x0,x1,x2,x3\n[dense] units = 64 act = relu\n"
                          "[dense] units = 64 act = relu\n[task a] kind = cls classes = 3\n"
                          "[task b] kind = cls classes = 2\n";
    tu_write_ab_csv(csv);
    assert_int_equal(tu_write(ts, teacher, strlen(teacher)), 0);
    assert_int_equal(tu_write(ss, student, strlen(student)), 0);
    const char *tr = "--epochs 20 --lr 0.01 --batch 32 --quiet";
    int rc = run(dir, "train --spec %s --data csv:%s %s -o %s/teacher.mtc", ts, csv, tr, dir);
    if (!rc) rc = run(dir, "train --spec %s --data csv:%s %s -o %s/scratch.mtc", ss, csv, tr, dir);
    if (!rc) rc = run(dir, "label %s/teacher.mtc --data csv:%s --quiet -o %s/soft.mtl", dir, csv, dir);
    if (!rc)
        rc = run(dir, "distill --spec %s --data csv:%s --soft %s/soft.mtl --teacher %s/teacher.mtc %s -o %s/student.mtc",
                 ss, csv, dir, dir, tr, dir);
    if (!rc) rc = run(dir, "prune %s/student.mtc --sparsity 0.5 --data csv:%s --quiet -o %s/pruned.mtc", dir, csv, dir);
    if (!rc) rc = run(dir, "quantize %s/pruned.mtc --data csv:%s --calib 200 --quiet -o %s/q8.mtc", dir, csv, dir);
    if (rc) fail_msg("pipeline step exit %d: %s", rc, run_err);
    assert_int_equal(run(dir, "eval %s/q8.mtc --data csv:%s --json", dir, csv), 0);
    mtc_json ev, j;
    mtc_err e = {0};
    assert_int_equal(mtc_json_parse(run_out, strlen(run_out), &ev, &e), 0);

    static const char *files[5] = {"teacher.mtc", "scratch.mtc", "student.mtc", "pruned.mtc", "q8.mtc"};
    char list[5 * 4300] = "";
    for (int i = 0; i < 5; i++) {
        char *p = tu_path(dir, files[i]);
        snprintf(list + strlen(list), sizeof list - strlen(list), " %s", p);
        free(p);
    }
    assert_int_equal(run(dir, "plot size-accuracy%s --data csv:%s --json --quiet -o %s/sa.png", list, csv, dir), 0);
    assert_true(file_exists(dir, "sa.png"));
    assert_int_equal(mtc_json_parse(run_out, strlen(run_out), &j, &e), 0);
    const mtc_json *pts = mtc_json_get(&j, "points");
    assert_non_null(pts);
    assert_int_equal(pts->n, 5);
    char path[4300];
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        const mtc_json *p = point_of(pts, path);
        assert_string_equal(mtc_json_str(p, "source"), "runtime");
        assert_int_equal((int64_t)mtc_json_get(p, "bytes")->num, file_size(path));
        /* the model's parameters, pruned and int8 ones counted as their shape */
        const int64_t np = i == 0 ? (4 * 128 + 128) + (128 * 128 + 128) + (128 * 3 + 3) + (128 * 2 + 2)
                                  : (4 * 64 + 64) + (64 * 64 + 64) + (64 * 3 + 3) + (64 * 2 + 2);
        assert_non_null(mtc_json_get(p, "params"));
        assert_int_equal((int64_t)mtc_json_get(p, "params")->num, np);
        const mtc_json *tch = mtc_json_get(p, "teacher");
        assert_true(tch && tch->type == MTC_JBOOL);
        assert_int_equal((int)tch->num, i == 0); /* student.mtc was distilled from teacher.mtc */
        const mtc_json *tk = mtc_json_get(p, "tasks");
        assert_true(tk && tk->n == 2);
        for (int t = 0; t < 2; t++) assert_true(tk->items[t].num > 0.5 && tk->items[t].num <= 1);
    }
    snprintf(path, sizeof path, "%s/q8.mtc", dir);
    const mtc_json *q8 = point_of(pts, path);
    snprintf(path, sizeof path, "%s/pruned.mtc", dir);
    const mtc_json *pruned = point_of(pts, path);
    /* the int8 point is the int8 file: smaller than its fp32 parent */
    assert_true(mtc_json_get(q8, "bytes")->num < mtc_json_get(pruned, "bytes")->num);
    /* and measured as mtc eval measures it */
    const mtc_json *evt = mtc_json_get(&ev, "tasks");
    static const char *tasks[2] = {"a", "b"};
    for (int t = 0; t < 2; t++) {
        double got = mtc_json_get(mtc_json_get(q8, "tasks"), tasks[t])->num;
        double want = mtc_json_get(mtc_json_get(evt, tasks[t]), "accuracy")->num;
        assert_true(fabs(got - want) < 1e-12);
    }
    mtc_json_free(&j);
    mtc_json_free(&ev);

    /* without --data: metadata only, so the int8 checkpoint is left out, with a note */
    assert_int_equal(run(dir, "plot size-accuracy%s --json -o %s/sa2.png", list, dir), 0);
    assert_int_equal(mtc_json_parse(run_out, strlen(run_out), &j, &e), 0);
    assert_int_equal(mtc_json_get(&j, "points")->n, 4);
    assert_non_null(strstr(run_err, "q8.mtc: no test metrics in the metadata"));
    assert_non_null(strstr(run_err, "--data"));
    mtc_json_free(&j);
    free(csv); free(ts); free(ss);
    tu_rmdir(dir);
    free(dir);
}

static void test_cli_sensitivity(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *r = tu_path(dir, "sens.json"), *bad = tu_path(dir, "bad.json");
    const char *rep =
        "{\"metric\":\"accuracy\",\"grid\":[0,0.25,0.5,0.75,0.9],\"layers\":["
        "{\"name\":\"trunk.0.dense\",\"tasks\":{\"fashion\":[0.86,0.86,0.85,0.80,0.61],\"super\":[0.98,0.98,0.97,0.96,0.90]}},"
        "{\"name\":\"trunk.1.dense\",\"tasks\":{\"fashion\":[0.86,0.86,0.86,0.84,0.79],\"super\":[0.98,0.98,0.98,0.97,null]}},"
        "{\"name\":\"head.fashion\",\"tasks\":{\"fashion\":[0.86,0.85,0.83,0.70,0.40]}}]}";
    assert_int_equal(tu_write(r, rep, strlen(rep)), 0);
    assert_int_equal(run(dir, "plot sensitivity %s -o %s/sens.png", r, dir), 0);
    assert_true(file_exists(dir, "sens.png"));
    /* as `mtc prune --sensitivity` writes it: per-task metric names, base */
    const char *prune_rep =
        "{\"model\":\"m.mtc\",\"grid\":[0.5,0.9],\"metric\":{\"fashion\":\"accuracy\",\"age\":\"mae\"},"
        "\"base\":{\"fashion\":0.86,\"age\":3.0},\"layers\":[{\"name\":\"trunk.0.dense\",\"weights\":100,"
        "\"tasks\":{\"fashion\":[0.85,0.60],\"age\":[3.2,5.5]}}]}";
    assert_int_equal(tu_write(r, prune_rep, strlen(prune_rep)), 0);
    assert_int_equal(run(dir, "plot sensitivity %s -o %s/sens2.png", r, dir), 0);
    assert_true(file_exists(dir, "sens2.png"));
    const char *short_row = "{\"grid\":[0,0.5],\"layers\":[{\"name\":\"a\",\"tasks\":{\"t\":[1]}}]}";
    assert_int_equal(tu_write(bad, short_row, strlen(short_row)), 0);
    assert_int_equal(run(dir, "plot sensitivity %s -o %s/x.png", bad, dir), 2);
    assert_int_equal(tu_write(bad, "{\"grid\":", 8), 0);
    assert_int_equal(run(dir, "plot sensitivity %s -o %s/x.png", bad, dir), 2);
    free(r);
    free(bad);
    tu_rmdir(dir);
    free(dir);
}

static void test_cli_contact_sheet(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *data = tu_path(dir, "imgs");
    mkdir(data, 0755);
    static const char *cls[2] = {"circle", "bar"};
    for (int k = 0; k < 2; k++) {
        char sub[4200];
        snprintf(sub, sizeof sub, "%s/%s", data, cls[k]);
        mkdir(sub, 0755);
        for (int i = 0; i < 6; i++) {
            uint8_t px[16 * 16];
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++)
                    px[y * 16 + x] = k ? (abs(x - 4 - i) < 2 ? 255 : 0)
                                       : ((x - 8) * (x - 8) + (y - 8) * (y - 8) < (3 + i) * (3 + i) ? 255 : 0);
            char p[4300];
            snprintf(p, sizeof p, "%s/%d.png", sub, i);
            mtc_err e = {0};
            assert_int_equal(mtc_png_write(p, 16, 16, 1, px, &e), 0);
        }
    }
    assert_int_equal(run(dir, "plot contact-sheet --data png:%s --n 9 -o %s/sheet.png", data, dir), 0);
    assert_true(file_exists(dir, "sheet.png"));
    free(data);
    tu_rmdir(dir);
    free(dir);
}

static void test_cli_errors_exit_2(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *m = tu_path(dir, "nohist.mtc"), *junk = tu_path(dir, "junk.mtc");
    save_ckpt(m, "{\"producer\":\"x\",\"history\":[]}", 10);
    assert_int_equal(tu_write(junk, "not a checkpoint at all", 23), 0);
    assert_int_equal(run(dir, "plot curves %s/missing.mtc -o %s/x.png", dir, dir), 2);
    assert_int_equal(run(dir, "plot curves %s -o %s/x.png", junk, dir), 2);
    assert_int_equal(run(dir, "plot curves %s -o %s/x.png", m, dir), 2);
    assert_int_equal(run(dir, "plot confusion %s -o %s/x.png", m, dir), 2);
    assert_int_equal(run(dir, "plot size-accuracy %s/missing.mtc -o %s/x.png", dir, dir), 2);
    assert_int_equal(run(dir, "plot sensitivity %s/missing.json -o %s/x.png", dir, dir), 2);
    assert_int_equal(run(dir, "plot contact-sheet --data png:%s/nothing -o %s/x.png", dir, dir), 2);
    assert_int_equal(run(dir, "plot curves %s", m), 2); /* no -o */
    assert_int_equal(run(dir, "plot frobnicate"), 2);
    assert_false(file_exists(dir, "x.png"));
    static const char *subs[] = {"", "curves", "size-accuracy", "sensitivity", "confusion", "contact-sheet"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        assert_int_equal(run(dir, "plot %s --help", subs[i]), 0);
    free(m);
    free(junk);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_sets_both_end_pixels),
        cmocka_unit_test(test_filled_rect_covers_exactly_its_pixels),
        cmocka_unit_test(test_text_draws_inside_its_box_only),
        cmocka_unit_test(test_every_printable_glyph_has_ink_but_space),
        cmocka_unit_test(test_clip_keeps_drawing_inside),
        cmocka_unit_test(test_canvas_rejects_bad_sizes),
        cmocka_unit_test(test_log_ticks_at_powers_of_ten),
        cmocka_unit_test(test_linear_ticks_are_nice_steps),
        cmocka_unit_test(test_png_written_and_read_back),
        cmocka_unit_test(test_chart_lines_png),
        cmocka_unit_test(test_chart_scatter_logx_png),
        cmocka_unit_test(test_chart_scatter_rings_only_marked_points),
        cmocka_unit_test(test_chart_heatmap_png),
        cmocka_unit_test(test_cli_curves_and_confusion),
        cmocka_unit_test(test_cli_size_accuracy),
        cmocka_unit_test(test_cli_size_accuracy_plots_every_stage_int8_included),
        cmocka_unit_test(test_cli_sensitivity),
        cmocka_unit_test(test_cli_contact_sheet),
        cmocka_unit_test(test_cli_errors_exit_2),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(run_out);
    free(run_err);
    return rc;
}
