/*
 * test_report.c — `mtc report DIR -o report.html` on a tiny pipeline folder
 * built here (teacher, student, int8 student, summary.json, verify.json,
 * plots, an explain/ folder):
 *   - base64 matches RFC 4648's test vectors;
 *   - the page has no script and no external URL, holds the stage rows,
 *     task names and gate verdicts of the JSON reports, and every PNG of the
 *     folder as a data URI that decodes to the PNG's exact bytes; strings
 *     from files are HTML-escaped;
 *   - the same folder gives the same bytes (however DIR is spelled);
 *   - bad input (missing folder, corrupt summary.json, empty folder, no -o)
 *     is exit 2 naming the file, and an existing report is left intact;
 *   - headless Chromium renders it to a 1200x1600 screenshot that is not
 *     blank (skipped when /usr/bin/chromium is absent).
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHROMIUM "/usr/bin/chromium"

static struct {
    char *dir;
    char csv[4200], pipe[4200];
} F;

static char *last_out, *last_err;
static int mtc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int mtc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tu_run_mtcv(F.dir, &last_out, &last_err, fmt, ap);
    va_end(ap);
    return rc;
}

static int write_spec(const char *name, int units, char *path, size_t n)
{
    char text[512];
    snprintf(path, n, "%s/%s", F.dir, name);
    snprintf(text, sizeof text,
             "[input] shape = 4 columns = x0,x1,x2,x3\n[dense] units = %d act = relu\n"
             "[task shape] kind = cls classes = 3 column = a\n[task sign] kind = cls classes = 2 column = b\n",
             units);
    return tu_write(path, text, strlen(text));
}

/* What tools/demo.sh writes, in miniature (a second of training). */
static int setup(void **st)
{
    (void)st;
    F.dir = tu_mkdtemp();
    snprintf(F.csv, sizeof F.csv, "%s/d.csv", F.dir);
    snprintf(F.pipe, sizeof F.pipe, "%s/pipe", F.dir);
    tu_write_ab_csv(F.csv);
    char ts[4300], ss[4300];
    if (write_spec("t.cfg", 32, ts, sizeof ts) || write_spec("s.cfg", 8, ss, sizeof ss) || mkdir(F.pipe, 0755))
        return -1;
    const char *P = F.pipe, *D = F.csv;
    int rc = mtc("train --spec %s --data csv:%s --epochs 30 --lr 0.01 --batch 32 -o %s/teacher.mtc --quiet", ts, D, P);
    if (!rc) rc = mtc("train --spec %s --data csv:%s --epochs 15 --lr 0.01 --batch 32 -o %s/student.mtc --quiet", ss, D, P);
    if (!rc) rc = mtc("quantize %s/student.mtc --data csv:%s --calib 200 --quiet -o %s/student.q8.mtc", P, D, P);
    if (!rc)
        rc = mtc("verify --reference %s/teacher.mtc --candidate %s/student.mtc,%s/student.q8.mtc --data csv:%s "
                 "--report-only --report-json %s/summary.json --quiet", P, P, P, D, P);
    if (!rc)
        rc = mtc("verify --reference %s/student.mtc --candidate %s/student.q8.mtc --data csv:%s --max-drop shape=5,sign=5 "
                 "--report-json %s/verify.json --quiet", P, P, D, P);
    if (!rc) rc = mtc("plot curves %s/teacher.mtc -o %s/teacher-curves.png", P, P);
    if (!rc) rc = mtc("plot confusion %s/student.mtc -o %s/student-confusion.png", P, P);
    if (!rc)
        rc = mtc("plot size-accuracy %s/teacher.mtc %s/student.mtc %s/student.q8.mtc --data csv:%s -o %s/size-accuracy.png",
                 P, P, P, D, P);
    if (!rc) rc = mtc("explain %s/teacher.mtc --data csv:%s -o %s/explain --quiet", P, D, P);
    if (rc) fprintf(stderr, "fixture failed (exit %d): %s\n", rc, last_err ? last_err : "");
    return rc;
}

static int teardown(void **st)
{
    (void)st;
    free(last_out);
    free(last_err);
    last_out = last_err = NULL;
    tu_rmdir(F.dir);
    free(F.dir);
    return 0;
}

/* ---- base64 --------------------------------------------------------------- */

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes s[0..n) (padded base64) into a malloc'd buffer; NULL if invalid. */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_n)
{
    if (n % 4) return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) { v[j] = 0; pad++; continue; }
            if (pad || (v[j] = b64_value((unsigned char)s[i + j])) < 0) { free(out); return NULL; }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[k++] = (unsigned char)(w >> 16);
        if (pad < 2) out[k++] = (unsigned char)(w >> 8);
        if (pad < 1) out[k++] = (unsigned char)w;
    }
    *out_n = k;
    return out;
}

static void test_base64_matches_rfc4648_vectors(void **st)
{
    (void)st;
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char buf[64];
    for (int i = 0; i < 7; i++) {
        size_t n = mtc_base64_encode(in[i], strlen(in[i]), buf);
        assert_string_equal(buf, want[i]);
        assert_int_equal(n, mtc_base64_len(strlen(in[i])));
    }
    /* every byte value, every length mod 3: round trip through the decoder above */
    unsigned char all[256 + 2];
    for (int i = 0; i < 258; i++) all[i] = (unsigned char)(i * 7 + 3);
    char *enc = malloc(mtc_base64_len(sizeof all) + 1);
    for (size_t len = 255; len <= sizeof all; len++) {
        size_t n = mtc_base64_encode(all, len, enc), dn = 0;
        unsigned char *dec = b64_decode(enc, n, &dn);
        assert_non_null(dec);
        assert_int_equal(dn, len);
        assert_memory_equal(dec, all, len);
        free(dec);
    }
    free(enc);
}

/* ---- the page --------------------------------------------------------------- */

static char *run_report(const char *out)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", F.dir, out);
    if (mtc("report %s -o %s", F.pipe, path)) fail_msg("report: %s", last_err);
    char *html = (char *)tu_read(path, NULL);
    assert_non_null(html);
    return html;
}

/* Every data:image/png URI of html, decoded, must equal one PNG under the
 * folder sub of the pipeline; returns how many PNGs were matched. */
static int check_pngs(const char *html, const char *sub)
{
    char folder[4400];
    snprintf(folder, sizeof folder, "%s%s%s", F.pipe, *sub ? "/" : "", sub);
    DIR *d = opendir(folder);
    assert_non_null(d);
    int found = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".png")) continue;
        char *p = tu_path(folder, de->d_name);
        size_t n = 0;
        unsigned char *png = tu_read(p, &n);
        assert_non_null(png);
        int hit = 0;
        static const char uri[] = "src=\"data:image/png;base64,";
        for (const char *s = strstr(html, uri); s && !hit; s = strstr(s + 1, uri)) {
            const char *b = s + strlen(uri), *q = strchr(b, '"');
            assert_non_null(q);
            size_t dn = 0;
            unsigned char *dec = b64_decode(b, (size_t)(q - b), &dn);
            if (!dec) fail_msg("invalid base64 in a data URI");
            hit = dn == n && !memcmp(dec, png, n);
            free(dec);
        }
        if (!hit) fail_msg("%s is not in the report as a data URI of its bytes", p);
        found++;
        free(png);
        free(p);
    }
    closedir(d);
    return found;
}

static void test_report_inlines_every_png_and_the_tables(void **st)
{
    (void)st;
    char *html = run_report("report.html");
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    assert_null(strstr(html, "src=\"/"));
    assert_null(strstr(html, "@import"));
    assert_non_null(strstr(html, "<title>mtc report: pipe</title>"));
    /* the stage rows of summary.json and their tasks */
    static const char *const want[] = {"<code>teacher.mtc</code>", "<code>student.mtc</code>",
                                       "<code>student.q8.mtc</code>", "<td class=\"l\">shape</td>",
                                       "<td class=\"l\">sign</td>", "Stages against the reference"};
    for (int i = 0; i < 6; i++)
        if (!strstr(html, want[i])) fail_msg("report lacks %s", want[i]);
    /* the gate of verify.json: its verdict and the budget 5 */
    assert_non_null(strstr(html, "verify gate: PASS"));
    assert_non_null(strstr(html, "<td>5.00</td>"));
    /* explain/: the per-task ECE table */
    assert_non_null(strstr(html, "<code>explain/</code>"));
    assert_non_null(strstr(html, "<th>ECE</th>"));
    /* every PNG, in DIR and in explain/, decodes to its own bytes */
    int n = check_pngs(html, "") + check_pngs(html, "explain");
    int uris = 0;
    for (const char *s = strstr(html, "data:image/png;base64,"); s; s = strstr(s + 1, "data:image/png;base64,")) uris++;
    print_message("report: %d PNGs inlined, %zu bytes\n", n, strlen(html));
    assert_true(n >= 6);
    assert_int_equal(uris, n);
    free(html);
}

static void test_report_escapes_names_and_is_deterministic(void **st)
{
    (void)st;
    /* a figure whose name needs escaping */
    char *src = tu_path(F.pipe, "teacher-curves.png"), *odd = tu_path(F.pipe, "odd&<b>.png");
    size_t n = 0;
    unsigned char *png = tu_read(src, &n);
    assert_non_null(png);
    assert_int_equal(tu_write(odd, png, n), 0);
    char *a = run_report("a.html");
    assert_non_null(strstr(a, "odd&amp;&lt;b&gt;.png"));
    assert_null(strstr(a, "odd&<b>"));
    /* the same folder spelled differently: the same bytes */
    char path[4400];
    snprintf(path, sizeof path, "%s/b.html", F.dir);
    if (mtc("report %s/ -o %s --quiet", F.pipe, path)) fail_msg("report: %s", last_err);
    char *b = (char *)tu_read(path, NULL);
    assert_non_null(b);
    assert_string_equal(a, b);
    unlink(odd);
    free(a); free(b); free(png); free(src); free(odd);
}

static void expect_exit2(const char *out, const char *old, const char *needle, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void expect_exit2(const char *out, const char *old, const char *needle, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tu_run_mtcv(F.dir, &last_out, &last_err, fmt, ap);
    va_end(ap);
    if (rc != 2) fail_msg("%s: exit %d, expected 2 (%s)", fmt, rc, last_err);
    if (!strstr(last_err, needle)) fail_msg("stderr \"%s\" does not name \"%s\"", last_err, needle);
    if (strchr(last_err, '\n') != last_err + strlen(last_err) - 1) fail_msg("not one line: %s", last_err);
    char *now = (char *)tu_read(out, NULL);
    assert_non_null(now);
    assert_string_equal(now, old); /* the old report is intact */
    free(now);
}

static void test_report_bad_input_is_exit_2_and_keeps_the_old_file(void **st)
{
    (void)st;
    static const char old[] = "<!DOCTYPE html><p>an older report</p>\n";
    char *out = tu_path(F.dir, "keep.html"), *bad = tu_path(F.dir, "bad"), *empty = tu_path(F.dir, "empty");
    assert_int_equal(tu_write(out, old, strlen(old)), 0);
    assert_int_equal(mkdir(bad, 0755), 0);
    assert_int_equal(mkdir(empty, 0755), 0);
    char *sj = tu_path(bad, "summary.json");
    assert_int_equal(tu_write(sj, "{\"reference\": \"t.mtc\", \"candidates\": [", 39), 0);
    expect_exit2(out, old, "nothere", "report %s/nothere -o %s", F.dir, out);
    expect_exit2(out, old, sj, "report %s -o %s", bad, out);
    expect_exit2(out, old, "nothing to report", "report %s -o %s", empty, out);
    expect_exit2(out, old, "-o", "report %s", F.pipe);
    /* valid JSON that is not a verify report */
    assert_int_equal(tu_write(sj, "[1, 2]", 6), 0);
    expect_exit2(out, old, sj, "report %s -o %s", bad, out);
    assert_int_equal(tu_write(sj, "{\"tasks\": 3}", 12), 0);
    expect_exit2(out, old, sj, "report %s -o %s", bad, out);
    /* a .png that is not a PNG */
    unlink(sj);
    char *fake = tu_path(bad, "fake.png");
    assert_int_equal(tu_write(fake, "not a png", 9), 0);
    expect_exit2(out, old, fake, "report %s -o %s", bad, out);
    /* --help works */
    if (mtc("report --help")) fail_msg("report --help: %s", last_err);
    assert_non_null(strstr(last_out, "usage: mtc report DIR -o report.html"));
    free(out); free(bad); free(empty); free(sj); free(fake);
}

/* ---- headless Chromium ------------------------------------------------------ */

static void test_report_renders_in_headless_chromium(void **st)
{
    (void)st;
    if (access(CHROMIUM, X_OK)) {
        print_message("skipped: %s not installed (make deps installs Debian's chromium)\n", CHROMIUM);
        skip();
    }
    char *html = run_report("render.html");
    free(html);
    char *shot = tu_path(F.dir, "render.png"), *prof = tu_path(F.dir, "chromium-profile"), cmd[16384];
    snprintf(cmd, sizeof cmd,
             "cd %s && timeout 60 " CHROMIUM " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
             "--disable-background-networking --disable-component-update --disable-sync --user-data-dir=%s "
             "--window-size=1200,1600 --screenshot=%s file://%s/render.html >chromium.log 2>&1",
             F.dir, prof, shot, F.dir);
    int rc = system(cmd);
    if (rc) {
        char *log = tu_path(F.dir, "chromium.log"), *txt = (char *)tu_read(log, NULL);
        fail_msg("chromium exit %d: %s", rc, txt ? txt : "(no log)");
    }
    int h = 0, w = 0;
    uint8_t *px = NULL;
    mtc_err e = {0};
    if (mtc_png_read_gray(shot, &h, &w, &px, &e)) fail_msg("%s", e.msg);
    assert_int_equal(w, 1200);
    assert_int_equal(h, 1600);
    /* not blank: text, tables and charts give many grey levels and dark ink */
    int64_t dark = 0, levels = 0, hist[256] = {0};
    for (int64_t i = 0; i < (int64_t)h * w; i++) {
        hist[px[i]]++;
        dark += px[i] < 160;
    }
    for (int i = 0; i < 256; i++) levels += hist[i] > 0;
    double frac = (double)dark / ((double)h * w);
    print_message("screenshot %dx%d: %lld grey levels, %.2f%% dark pixels\n", w, h, (long long)levels, 100 * frac);
    assert_true(levels >= 64);
    assert_true(frac > 0.01 && frac < 0.6);
    free(px);
    free(shot);
    free(prof);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_matches_rfc4648_vectors),
        cmocka_unit_test(test_report_inlines_every_png_and_the_tables),
        cmocka_unit_test(test_report_escapes_names_and_is_deterministic),
        cmocka_unit_test(test_report_bad_input_is_exit_2_and_keeps_the_old_file),
        cmocka_unit_test(test_report_renders_in_headless_chromium),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
