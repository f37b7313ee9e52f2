/*
 * png_io.c — PNG read (any PNG -> 8-bit luma) and write (gray or RGB) with
 * libpng, and the png:DIR dataset (DIR/<class>/<name>.png).
 *
 * libpng reports errors by longjmp. Each setjmp lives in a small function
 * whose state is kept in a struct reached through a pointer (also libpng's
 * error pointer), so nothing the handler frees is a clobberable local.
 * Reading converts with png_set_* transforms: 16-bit -> 8, palette -> RGB,
 * low-bit gray -> 8, alpha dropped (not composited); RGB becomes luma
 * (299 R + 587 G + 114 B) / 1000, rounded (BT.601 weights). mtc_png_probe
 * reads the header only, so a caller can refuse a PNG those conversions
 * would change.
 */
#include "mtc.h"

#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define PNG_MAX_SIDE 16384
#define PNG_MAX_PIXELS ((int64_t)1 << 26)

typedef struct png_job {
    const char *path;
    FILE *f;
    png_structp png;
    png_infop info;
    uint8_t *buf;     /* decoded rows, H * rowbytes */
    png_bytep *rows;
    uint32_t w, h;
    int channels;
    uint64_t file_size;
    char msg[256];
} png_job;

static void on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png; (void)msg; /* the library never prints */
}

/* The header (IHDR and what precedes the pixels), within the sides'
 * limit. libpng errors longjmp to the caller's setjmp. */
static void read_header(png_job *j, png_uint_32 *w, png_uint_32 *h, int *depth, int *ctype)
{
    png_init_io(j->png, j->f);
    png_set_sig_bytes(j->png, 8);
    png_set_user_limits(j->png, PNG_MAX_SIDE, PNG_MAX_SIDE);
    png_read_info(j->png, j->info);
    png_get_IHDR(j->png, j->info, w, h, depth, ctype, NULL, NULL, NULL);
}

/* All libpng read calls; returns 0 or -1 with j->msg set. */
static int read_body(png_job *j)
{
    if (setjmp(png_jmpbuf(j->png))) return -1;
    png_uint_32 w, h;
    int depth, ctype;
    read_header(j, &w, &h, &depth, &ctype);
    if ((int64_t)w * h > PNG_MAX_PIXELS) {
        snprintf(j->msg, sizeof j->msg, "%ux%u pixels exceeds the limit of %lld",
                 (unsigned)w, (unsigned)h, (long long)PNG_MAX_PIXELS);
        return -1;
    }
    /* Pixels come out of deflate (at most ~1032:1): a header promising more
     * than the file can hold is refused before the image buffer exists. */
    uint64_t raw_rb = png_get_rowbytes(j->png, j->info);
    if (raw_rb > 1 && (uint64_t)h * (raw_rb - 1) > 1040 * j->file_size) {
        snprintf(j->msg, sizeof j->msg, "%ux%u pixels cannot come from a %llu-byte file",
                 (unsigned)w, (unsigned)h, (unsigned long long)j->file_size);
        return -1;
    }
    if (depth == 16) png_set_strip_16(j->png);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(j->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(j->png);
    if (ctype & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(j->png);
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    j->channels = png_get_channels(j->png, j->info);
    size_t rb = png_get_rowbytes(j->png, j->info);
    if ((j->channels != 1 && j->channels != 3) || rb != (size_t)w * j->channels) {
        snprintf(j->msg, sizeof j->msg, "unsupported layout (%d channels, %zu bytes per row)",
                 j->channels, rb);
        return -1;
    }
    j->w = w;
    j->h = h;
    j->buf = malloc(rb * h);
    j->rows = malloc(sizeof *j->rows * h);
    if (!j->buf || !j->rows) {
        snprintf(j->msg, sizeof j->msg, "out of memory");
        return -1;
    }
    for (uint32_t y = 0; y < h; y++) j->rows[y] = j->buf + (size_t)y * rb;
    png_read_image(j->png, j->rows);
    png_read_end(j->png, NULL);
    return 0;
}

/* Header only: size and the colour type before any transform. */
static int probe_body(png_job *j)
{
    if (setjmp(png_jmpbuf(j->png))) return -1;
    png_uint_32 w, h;
    int depth, ctype;
    read_header(j, &w, &h, &depth, &ctype);
    j->w = w;
    j->h = h;
    int alpha = (ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(j->png, j->info, PNG_INFO_tRNS);
    j->channels = (ctype & PNG_COLOR_MASK_COLOR ? 3 : 1) + alpha; /* a palette is colour */
    return 0;
}

/* Opens path, checks the signature and makes the libpng read structs. */
static int job_open(png_job *j, const char *path, mtc_err *e)
{
    memset(j, 0, sizeof *j);
    j->path = path;
    j->f = fopen(path, "rb");
    if (!j->f) return mtc_err_set(e, MTC_EINPUT, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(j->f), &st) == 0) j->file_size = (uint64_t)st.st_size;
    unsigned char sig[8];
    if (fread(sig, 1, 8, j->f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(j->f);
        return mtc_err_set(e, MTC_EINPUT, "%s: not a PNG file", path);
    }
    j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, on_error, on_warning);
    j->info = j->png ? png_create_info_struct(j->png) : NULL;
    if (!j->png || !j->info) {
        png_destroy_read_struct(&j->png, &j->info, NULL);
        fclose(j->f);
        return mtc_err_set(e, MTC_ENOMEM, "%s: cannot create PNG reader", path);
    }
    return MTC_OK;
}

/* Frees what job_open made (not the decoded pixels). */
static void job_close(png_job *j)
{
    png_destroy_read_struct(&j->png, &j->info, NULL);
    fclose(j->f);
    free(j->rows);
}

int mtc_png_probe(const char *path, int *h, int *w, int *channels, mtc_err *e)
{
    png_job j;
    int rc = job_open(&j, path, e);
    if (rc) return rc;
    if (probe_body(&j)) rc = mtc_err_set(e, MTC_EINPUT, "%s: bad PNG (%s)", path, j.msg);
    job_close(&j);
    if (rc) return rc;
    *h = (int)j.h;
    *w = (int)j.w;
    *channels = j.channels;
    return MTC_OK;
}

int mtc_png_read_gray(const char *path, int *h, int *w, uint8_t **px, mtc_err *e)
{
    *px = NULL;
    png_job j;
    int rc = job_open(&j, path, e);
    if (rc) return rc;
    if (read_body(&j)) rc = mtc_err_set(e, MTC_EINPUT, "%s: bad PNG (%s)", path, j.msg);
    job_close(&j);
    if (rc) { free(j.buf); return rc; }
    size_t n = (size_t)j.w * j.h;
    if (j.channels == 3) { /* luma in place: pixel i reads bytes 3i..3i+2 >= i */
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = j.buf + 3 * i;
            j.buf[i] = (uint8_t)((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
        }
    }
    *h = (int)j.h;
    *w = (int)j.w;
    *px = j.buf;
    return MTC_OK;
}

static int write_body(png_job *j, const uint8_t *px)
{
    if (setjmp(png_jmpbuf(j->png))) return -1;
    png_init_io(j->png, j->f);
    png_set_IHDR(j->png, j->info, j->w, j->h, 8,
                 j->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(j->png, j->info);
    for (uint32_t y = 0; y < j->h; y++)
        png_write_row(j->png, (png_const_bytep)(px + (size_t)y * j->w * j->channels));
    png_write_end(j->png, NULL);
    return 0;
}

int mtc_png_write(const char *path, int h, int w, int channels, const uint8_t *px,
                  mtc_err *e)
{
    if ((channels != 1 && channels != 3) || h <= 0 || w <= 0 || h > PNG_MAX_SIDE ||
        w > PNG_MAX_SIDE)
        return mtc_err_set(e, MTC_EINPUT, "%s: cannot write a %dx%dx%d PNG", path, h, w,
                           channels);
    png_job j;
    memset(&j, 0, sizeof j);
    j.path = path;
    j.w = (uint32_t)w;
    j.h = (uint32_t)h;
    j.channels = channels;
    mtc_outfile o;
    int rc = mtc_outfile_open(&o, path, e);
    if (rc) return rc;
    j.f = o.f;
    j.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &j, on_error, on_warning);
    j.info = j.png ? png_create_info_struct(j.png) : NULL;
    if (!j.png || !j.info)
        rc = mtc_err_set(e, MTC_ENOMEM, "%s: cannot create PNG writer", path);
    else if (write_body(&j, px))
        rc = mtc_err_set(e, MTC_EIO, "%s: PNG write failed (%s)", path, j.msg);
    png_destroy_write_struct(&j.png, &j.info);
    if (rc) { mtc_outfile_abort(&o); return rc; }
    return mtc_outfile_commit(&o, e);
}

/* ---- png:DIR ---------------------------------------------------------------- */

typedef struct names {
    char **v;
    int n, cap;
} names;

static void names_free(names *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int names_add(names *s, const char *name)
{
    if (s->n == s->cap) {
        int nc = s->cap ? 2 * s->cap : 16;
        char **nv = realloc(s->v, sizeof *nv * (size_t)nc);
        if (!nv) return -1;
        s->v = nv;
        s->cap = nc;
    }
    if (!(s->v[s->n] = strdup(name))) return -1;
    s->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

#define PNG_DIR_MAX_ENTRIES (1 << 24)

/* Sorted entries of dir: subfolders (dirs=1) or regular *.png files (dirs=0).
 * Hidden entries are skipped. A missing dir gives an empty list when
 * may_miss is set. */
static int list_dir(const char *dir, int dirs, int may_miss, names *out, mtc_err *e)
{
    memset(out, 0, sizeof *out);
    DIR *dp = opendir(dir);
    if (!dp) {
        if (may_miss && errno == ENOENT) return MTC_OK;
        return mtc_err_set(e, MTC_EINPUT, "%s: cannot open folder (%s)", dir, strerror(errno));
    }
    struct dirent *de;
    char path[8192];
    int rc = MTC_OK;
    while (!rc && (de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        size_t l = strlen(de->d_name);
        int want = dirs ? S_ISDIR(st.st_mode)
                        : S_ISREG(st.st_mode) && l > 4 && !strcasecmp(de->d_name + l - 4, ".png");
        if (!want) continue;
        if (out->n >= PNG_DIR_MAX_ENTRIES)
            rc = mtc_err_set(e, MTC_EINPUT, "%s: more than %d entries", dir, PNG_DIR_MAX_ENTRIES);
        else if (names_add(out, de->d_name))
            rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", dir);
    }
    closedir(dp);
    if (rc) { names_free(out); return rc; }
    if (out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return MTC_OK;
}

/* Sorted union of the subfolders of a and b. */
static int class_union(const char *a, const char *b, names *out, mtc_err *e)
{
    names x, y;
    int rc = list_dir(a, 1, 0, &x, e);
    if (rc) return rc;
    if ((rc = list_dir(b, 1, 0, &y, e))) { names_free(&x); return rc; }
    memset(out, 0, sizeof *out);
    int i = 0, k = 0;
    while (!rc && (i < x.n || k < y.n)) {
        int c = i == x.n ? 1 : k == y.n ? -1 : strcmp(x.v[i], y.v[k]);
        const char *s = c <= 0 ? x.v[i] : y.v[k];
        if (names_add(out, s)) rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", a);
        if (c <= 0) i++;
        if (c >= 0) k++;
    }
    names_free(&x);
    names_free(&y);
    if (rc) names_free(out);
    return rc;
}

/* Appends one image (resized to size x size when size > 0) to the dataset
 * buffer; the first image fixes the shape. */
static int add_image(mtc_dataset *d, int64_t *cap, const char *path, int size,
                     char *first, size_t first_len, mtc_err *e)
{
    int h, w;
    uint8_t *px;
    int rc = mtc_png_read_gray(path, &h, &w, &px, e);
    if (rc) return rc;
    int oh = size > 0 ? size : h, ow = size > 0 ? size : w;
    if (d->n == 0) {
        d->c = 1; d->h = oh; d->w = ow;
        snprintf(first, first_len, "%s", path);
    } else if (size <= 0 && (h != d->h || w != d->w)) {
        free(px);
        return mtc_err_set(e, MTC_EINPUT,
                           "%s: image is %dx%d but %s is %dx%d (all images must share one "
                           "size, or set a resize size)", path, h, w, first, d->h, d->w);
    }
    size_t ss = (size_t)oh * ow;
    if (d->n == *cap) {
        int64_t nc = *cap ? 2 * *cap : 64;
        uint8_t *nb = realloc(d->x_u8, (size_t)nc * ss);
        if (!nb) { free(px); return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); }
        d->x_u8 = nb;
        *cap = nc;
    }
    uint8_t *dst = d->x_u8 + (size_t)d->n * ss;
    if (oh == h && ow == w) memcpy(dst, px, ss);
    else mtc_resize_bilinear_u8(px, h, w, dst, oh, ow);
    free(px);
    d->n++;
    return MTC_OK;
}

/* png:DIR with DIR/labels.csv: "file,<task>,..." rows (file relative to
 * DIR), one classification task per other column, integer or string
 * classes, empty / NA / ? cells (or opts->missing) not labelled. Row i is
 * in test when i % 5 == 4. */
static int load_png_labels(const char *dir, const char *csv, int test, int size, const mtc_data_opts *opts,
                           mtc_dataset *d, mtc_err *e)
{
    mtc_csv_table t;
    int rc = mtc_csv_table_read(csv, &t, e);
    if (rc) return rc;
    int fc = -1;
    for (int c = 0; c < t.ncols; c++)
        if (!strcmp(t.hdr[c], "file")) fc = c;
    if (fc < 0) rc = mtc_err_set(e, MTC_EINPUT, "%s: no 'file' column (want file,<task>,...)", csv);
    else if (t.ncols < 2 || t.ncols - 1 > MTC_MAX_TASKS)
        rc = mtc_err_set(e, MTC_EINPUT, "%s: want 1 to %d task columns besides 'file'", csv, MTC_MAX_TASKS);
    const char *marker = opts ? opts->missing : NULL;
    char path[8192 + 512], first[8192 + 512] = "";
    int64_t cap = 0;
    for (int64_t r = 0; !rc && r < t.nrows; r++) {
        if ((r % 5 == 4) != test) continue;
        const char *f = t.cells[r * t.ncols + fc];
        if (!*f || f[0] == '/' || strstr(f, ".."))
            rc = mtc_err_set(e, MTC_EINPUT, "%s:%lld: file '%.80s' must be a path inside the folder", csv,
                             (long long)t.lines[r], f);
        else {
            snprintf(path, sizeof path, "%s/%s", dir, f);
            rc = add_image(d, &cap, path, size, first, sizeof first, e);
        }
    }
    if (!rc && d->n == 0) rc = mtc_err_set(e, MTC_EINPUT, "%s: no rows for the %s split", csv, test ? "test" : "train");
    for (int c = 0, k = 0; !rc && c < t.ncols; c++) {
        if (c == fc) continue;
        mtc_data_task *dt = &d->tasks[k++];
        memset(dt, 0, sizeof *dt);
        d->ntasks = k;
        snprintf(dt->name, sizeof dt->name, "%s", t.hdr[c]);
        dt->kind = MTC_TASK_CLS;
        if (!(dt->labels = malloc((size_t)d->n * sizeof *dt->labels))) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); break; }
        /* classes over every row of the file (both splits share the ids):
         * integers 0..N-1, or the sorted distinct names */
        int all_int = 1;
        int64_t maxid = -1, nl = 0;
        char **u = malloc(sizeof *u * (size_t)(t.nrows ? t.nrows : 1));
        if (!u) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); break; }
        for (int64_t r = 0; r < t.nrows; r++) {
            char *v = t.cells[r * t.ncols + c];
            if (mtc_csv_cell_missing(v, marker)) continue;
            char *end;
            long id = strtol(v, &end, 10);
            if (end == v || *end || id < 0 || id > 65535) all_int = 0;
            else if (id > maxid) maxid = id;
            u[nl++] = v;
        }
        if (!nl) rc = mtc_err_set(e, MTC_EINPUT, "%s: column '%s' holds no label: every cell is missing", csv, t.hdr[c]);
        int64_t nu = 0;
        if (!rc && !all_int) {
            qsort(u, (size_t)nl, sizeof *u, cmp_str);
            for (int64_t i = 0; i < nl; i++)
                if (!nu || strcmp(u[nu - 1], u[i])) u[nu++] = u[i];
            if (nu > 65536) rc = mtc_err_set(e, MTC_EINPUT, "%s: column '%s' has too many classes", csv, t.hdr[c]);
        }
        dt->dim = all_int ? (int)maxid + 1 : (int)nu;
        for (int64_t r = 0, i = 0; !rc && r < t.nrows; r++) {
            if ((r % 5 == 4) != test) continue;
            char *v = t.cells[r * t.ncols + c];
            int32_t y = MTC_LABEL_MISSING;
            if (!mtc_csv_cell_missing(v, marker)) {
                if (all_int) y = (int32_t)strtol(v, NULL, 10);
                else y = (int32_t)((char **)bsearch(&v, u, (size_t)nu, sizeof *u, cmp_str) - u);
            }
            dt->labels[i++] = y;
        }
        if (!rc && !all_int) {
            if (!(dt->class_names = calloc((size_t)nu, sizeof *dt->class_names))) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
            for (int64_t i = 0; !rc && i < nu; i++)
                if (!(dt->class_names[i] = strdup(u[i]))) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
                else dt->nclass_names = (int)i + 1;
        }
        free(u);
    }
    mtc_csv_table_free(&t);
    return rc;
}

int mtc_data_load_png_dir(const char *dir, const char *split,
                          const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e)
{
    if (strlen(dir) > 3000) return mtc_err_set(e, MTC_EINPUT, "png: folder name too long");
    int test = !strcmp(split, "test"), size = opts ? opts->png_size : 0;
    if (size < 0 || size > PNG_MAX_SIDE)
        return mtc_err_set(e, MTC_EINPUT, "%s: resize size %d out of range", dir, size);
    char tr[4096], te[4096], root[4096], path[8192 + 512], first[8192 + 512] = "";
    snprintf(path, sizeof path, "%s/labels.csv", dir);
    struct stat lst;
    if (!stat(path, &lst) && S_ISREG(lst.st_mode)) return load_png_labels(dir, path, test, size, opts, d, e);
    snprintf(tr, sizeof tr, "%s/train", dir);
    snprintf(te, sizeof te, "%s/test", dir);
    int folders = is_dir(tr) && is_dir(te);
    names classes;
    int rc = folders ? class_union(tr, te, &classes, e) : list_dir(dir, 1, 0, &classes, e);
    if (rc) return rc;
    if (classes.n == 0) { /* PNGs in DIR itself: an unlabelled set (no task) */
        names_free(&classes);
        names files;
        if ((rc = list_dir(dir, 0, 0, &files, e))) return rc;
        if (!files.n) {
            names_free(&files);
            return mtc_err_set(e, MTC_EINPUT, "%s: no class subfolders (DIR/<class>/*.png) and no PNG files", dir);
        }
        int64_t cap = 0;
        for (int i = 0; !rc && i < files.n; i++) {
            if ((i % 5 == 4) != test) continue;
            snprintf(path, sizeof path, "%s/%s", dir, files.v[i]);
            rc = add_image(d, &cap, path, size, first, sizeof first, e);
        }
        names_free(&files);
        if (!rc && d->n == 0) rc = mtc_err_set(e, MTC_EINPUT, "%s: no PNG files for the %s split", dir, split);
        return rc;
    }
    snprintf(root, sizeof root, "%s", folders ? (test ? te : tr) : dir);
    int64_t cap = 0, index = 0, labcap = 0, j = 0, lo = 0, hi = INT64_MAX;
    int32_t *lab = NULL;
    const int parts = opts && opts->shard_count > 1 ? opts->shard_count : 1;
    if (parts > 1) { /* --shard-data: count the split, then decode only the shard's files */
        int64_t S = 0;
        for (int c = 0; !rc && c < classes.n; c++) {
            char cdir[8192];
            snprintf(cdir, sizeof cdir, "%s/%s", root, classes.v[c]);
            names files;
            if ((rc = list_dir(cdir, 0, folders, &files, e))) break;
            for (int i = 0; i < files.n; i++, index++) S += folders || ((index % 5 == 4) == test);
            names_free(&files);
        }
        lo = S * opts->shard_index / parts, hi = S * (opts->shard_index + 1) / parts, index = 0;
        d->split_n = S, d->shard_lo = lo;
    }
    for (int c = 0; !rc && c < classes.n; c++) {
        char cdir[8192];
        snprintf(cdir, sizeof cdir, "%s/%s", root, classes.v[c]);
        names files;
        if ((rc = list_dir(cdir, 0, folders, &files, e))) break;
        for (int i = 0; !rc && i < files.n; i++, index++) {
            if (!folders && ((index % 5 == 4) != test)) continue;
            if (j++ < lo || j > hi) continue; /* another shard's */
            snprintf(path, sizeof path, "%s/%s", cdir, files.v[i]);
            if ((rc = add_image(d, &cap, path, size, first, sizeof first, e))) break;
            if (d->n > labcap) {
                int64_t nc = labcap ? 2 * labcap : 64;
                int32_t *nl = realloc(lab, (size_t)nc * sizeof *nl);
                if (!nl) { rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", dir); break; }
                lab = nl;
                labcap = nc;
            }
            lab[d->n - 1] = c;
        }
        names_free(&files);
    }
    if (!rc && d->n == 0)
        rc = mtc_err_set(e, MTC_EINPUT, "%s: no PNG files for the %s split", dir, split);
    mtc_data_task *t = &d->tasks[0];
    if (!rc) { /* the task takes the labels and the class names */
        memset(t, 0, sizeof *t);
        d->ntasks = 1;
        snprintf(t->name, sizeof t->name, "class");
        t->kind = MTC_TASK_CLS;
        t->dim = classes.n;
        t->labels = lab;
        t->nclass_names = classes.n;
        t->class_names = classes.v;
        memset(&classes, 0, sizeof classes);
    } else {
        free(lab);
    }
    names_free(&classes);
    return rc;
}
