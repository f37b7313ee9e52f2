/*
 * idx.c — IDX (LeCun's MNIST format) reader and writer, plain or gzip.
 *
 * Only the unsigned-byte type is supported: images are magic 0x00000803 with
 * dims (n, h, w), labels 0x00000801 with dim (n); all big-endian. Reading goes
 * through zlib's gzread, which also reads plain files transparently. Every
 * header field is checked, the buffer grows with the data actually read (a
 * lying header cannot make us allocate gigabytes up front), and a short or
 * over-long payload is an error naming the file.
 *
 * Writing ".gz" names produces a gzip stream made with deflate directly, so
 * the header carries no time stamp or file name: same input, same bytes.
 */
#include "mtc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAX_SIDE 4096
#define IDX_MAX_BYTES ((int64_t)4 << 30) /* payload limit, 4 GiB */
#define IDX_FIRST_ALLOC ((int64_t)16 << 20)

/* ---- reading ------------------------------------------------------------ */

/* Reads exactly n bytes; returns bytes read (< n at end of data), -1 on a
 * zlib error. */
static int64_t gz_read_full(gzFile g, void *buf, int64_t n)
{
    int64_t got = 0;
    while (got < n) {
        int64_t want = n - got;
        if (want > (1 << 30)) want = 1 << 30;
        int r = gzread(g, (char *)buf + got, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        got += r;
    }
    return got;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int gz_fail(gzFile g, const char *path, const char *what, mtc_err *e)
{
    int zerr = 0;
    const char *zmsg = gzerror(g, &zerr);
    if (zerr != Z_OK && zmsg && *zmsg)
        return mtc_err_set(e, MTC_EINPUT, "%s: %s (%s)", path, what, zmsg);
    return mtc_err_set(e, MTC_EINPUT, "%s: %s", path, what);
}

/* Reads header (magic + ndim dims) and the u8 payload of n*prod(dims[1..]):
 * part `part` of `parts` of the records (dims[0] of them), records
 * [dims[0] part/parts, dims[0] (part+1)/parts), into *out, the first one's
 * index into *first. dims[] are the whole file's. */
static int idx_read_part(const char *path, int ndim, int64_t dims[3], int part, int parts, uint8_t **out,
                         int64_t *first, mtc_err *e)
{
    *out = NULL;
    gzFile g = gzopen(path, "rb");
    if (!g)
        return mtc_err_set(e, MTC_EINPUT, "%s: cannot open (%s)", path,
                           errno ? strerror(errno) : "zlib");
    gzbuffer(g, 1 << 17);
    unsigned char hdr[16];
    int64_t hlen = 4 + 4 * (int64_t)ndim;
    int64_t got = gz_read_full(g, hdr, hlen);
    int rc;
    if (got != hlen) {
        rc = gz_fail(g, path, got < 0 ? "corrupt gzip data in IDX header"
                                      : "truncated IDX header", e);
        goto done;
    }
    if (hdr[0] != 0 || hdr[1] != 0) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: not an IDX file (magic 0x%08x)", path,
                         be32(hdr));
        goto done;
    }
    if (hdr[2] != 0x08) {
        rc = mtc_err_set(e, MTC_EINPUT,
                         "%s: IDX element type 0x%02x, only 0x08 (unsigned byte) is supported",
                         path, hdr[2]);
        goto done;
    }
    if (hdr[3] != ndim) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: IDX file has %d dims, expected %d (%s)",
                         path, hdr[3], ndim, ndim == 3 ? "images" : "labels");
        goto done;
    }
    int64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s: IDX dim %d is 0", path, i);
            goto done;
        }
        if (i > 0 && dims[i] > IDX_MAX_SIDE) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s: IDX dim %d is %lld (limit %d)", path, i,
                             (long long)dims[i], IDX_MAX_SIDE);
            goto done;
        }
        total *= dims[i]; /* < 2^32 * 2^12 * 2^12: no overflow */
    }
    if (total > IDX_MAX_BYTES) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: IDX payload of %lld bytes exceeds the 4 GiB limit",
                         path, (long long)total);
        goto done;
    }
    /* Records [lo, hi) of dims[0] are kept (the part); the rest is read
     * through a scratch buffer, so the whole stream is still checked.
     * Grow with the data: a header claiming 4 GiB over 100 bytes of file
     * fails at "truncated" after a small allocation. */
    const int64_t rec = total / dims[0], lo = dims[0] * part / parts, hi = dims[0] * (part + 1) / parts;
    const int64_t klo = lo * rec, khi = hi * rec, keep = khi - klo;
    int64_t cap = keep < IDX_FIRST_ALLOC ? keep : IDX_FIRST_ALLOC, pos = 0;
    uint8_t *buf = malloc((size_t)(cap ? cap : 1)), scratch[1 << 14];
    if (!buf) { rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); goto done; }
    while (pos < total) {
        int64_t r;
        if (pos >= klo && pos < khi) {
            if (pos - klo == cap) {
                int64_t ncap = cap * 2 < keep ? cap * 2 : keep;
                uint8_t *nb = realloc(buf, (size_t)ncap);
                if (!nb) { free(buf); rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); goto done; }
                buf = nb;
                cap = ncap;
            }
            r = gz_read_full(g, buf + (pos - klo), cap - (pos - klo));
        } else {
            int64_t want = (pos < klo ? klo : total) - pos;
            r = gz_read_full(g, scratch, want < (int64_t)sizeof scratch ? want : (int64_t)sizeof scratch);
        }
        if (r < 0) {
            free(buf);
            rc = gz_fail(g, path, "corrupt gzip data", e);
            goto done;
        }
        if (r == 0) break; /* end of data */
        pos += r;
    }
    const int64_t have = pos;
    if (have < total) {
        free(buf);
        rc = mtc_err_set(e, MTC_EINPUT, "%s: truncated IDX file (%lld of %lld data bytes)",
                         path, (long long)have, (long long)total);
        goto done;
    }
    *first = lo;
    unsigned char extra;
    int64_t r = gz_read_full(g, &extra, 1);
    int zerr = Z_OK;
    gzerror(g, &zerr);
    if (r == 0 && zerr != Z_OK) { /* Z_BUF_ERROR: the gzip trailer is cut off */
        free(buf);
        rc = gz_fail(g, path, "truncated gzip stream", e);
        goto done;
    }
    if (r != 0) {
        free(buf);
        rc = r < 0 ? gz_fail(g, path, "corrupt gzip data after the IDX payload", e)
                   : mtc_err_set(e, MTC_EINPUT, "%s: trailing bytes after the IDX payload", path);
        goto done;
    }
    *out = buf;
    rc = MTC_OK;
done:
    gzclose(g);
    return rc;
}

static int idx_read(const char *path, int ndim, int64_t dims[3], uint8_t **out, mtc_err *e)
{
    int64_t first;
    return idx_read_part(path, ndim, dims, 0, 1, out, &first, e);
}

int mtc_idx_read_images_part(const char *path, int part, int parts, int64_t *n_total, int64_t *first, int64_t *n,
                             int *h, int *w, uint8_t **px, mtc_err *e)
{
    int64_t dims[3];
    int rc = idx_read_part(path, 3, dims, part, parts, px, first, e);
    if (rc) return rc;
    *n_total = dims[0];
    *n = dims[0] * (part + 1) / parts - *first;
    *h = (int)dims[1];
    *w = (int)dims[2];
    return MTC_OK;
}

int mtc_idx_read_images(const char *path, int64_t *n, int *h, int *w,
                        uint8_t **px, mtc_err *e)
{
    int64_t dims[3];
    int rc = idx_read(path, 3, dims, px, e);
    if (rc) return rc;
    *n = dims[0];
    *h = (int)dims[1];
    *w = (int)dims[2];
    return MTC_OK;
}

int mtc_idx_read_labels(const char *path, int64_t *n, uint8_t **lab, mtc_err *e)
{
    int64_t dims[3];
    int rc = idx_read(path, 1, dims, lab, e);
    if (rc) return rc;
    *n = dims[0];
    return MTC_OK;
}

/* ---- writing ------------------------------------------------------------ */

/* Byte sink over an mtc_outfile: either plain or a gzip stream (windowBits
 * 15+16 so deflate writes a minimal header with mtime 0). Level 6, not 9:
 * on MultiFashion level 9 takes ~8x longer for a 1% smaller file. */
typedef struct sink {
    FILE *f;
    int gz;
    z_stream z;
    unsigned char out[1 << 16];
} sink;

static int sink_put(sink *s, const void *data, size_t n, int finish)
{
    if (!s->gz) return n == 0 || fwrite(data, 1, n, s->f) == n ? 0 : -1; /* finish passes (NULL, 0) */
    s->z.next_in = (Bytef *)data;
    s->z.avail_in = (uInt)n; /* callers pass < 4 GiB per call */
    for (;;) {
        s->z.next_out = s->out;
        s->z.avail_out = sizeof s->out;
        int zr = deflate(&s->z, finish ? Z_FINISH : Z_NO_FLUSH);
        if (zr == Z_STREAM_ERROR) return -1;
        size_t have = sizeof s->out - s->z.avail_out;
        if (have && fwrite(s->out, 1, have, s->f) != have) return -1;
        if (finish ? zr == Z_STREAM_END : (s->z.avail_in == 0 && s->z.avail_out != 0))
            return 0;
    }
}

static int has_gz_suffix(const char *path)
{
    size_t l = strlen(path);
    return l >= 3 && !strcmp(path + l - 3, ".gz");
}

static int idx_write(const char *path, int ndim, const int64_t *dims,
                     const uint8_t *data, mtc_err *e)
{
    int64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0 || dims[i] > UINT32_MAX || (i > 0 && dims[i] > IDX_MAX_SIDE))
            return mtc_err_set(e, MTC_EINPUT, "%s: bad IDX dim %d = %lld", path, i,
                               (long long)dims[i]);
        total *= dims[i];
    }
    if (total > IDX_MAX_BYTES)
        return mtc_err_set(e, MTC_EINPUT, "%s: IDX payload exceeds 4 GiB", path);
    unsigned char hdr[16] = {0, 0, 0x08, (unsigned char)ndim};
    for (int i = 0; i < ndim; i++) {
        uint32_t v = (uint32_t)dims[i];
        unsigned char *p = hdr + 4 + 4 * i;
        p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
        p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
    }
    sink *s = calloc(1, sizeof *s);
    if (!s) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    mtc_outfile o;
    int rc = mtc_outfile_open(&o, path, e);
    if (rc) { free(s); return rc; }
    s->f = o.f;
    s->gz = has_gz_suffix(path);
    if (s->gz && deflateInit2(&s->z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        mtc_outfile_abort(&o);
        free(s);
        return mtc_err_set(e, MTC_ENOMEM, "%s: deflateInit failed", path);
    }
    int bad = sink_put(s, hdr, 4 + 4 * (size_t)ndim, 0);
    for (int64_t off = 0; !bad && off < total; off += 1 << 30) {
        int64_t len = total - off < (1 << 30) ? total - off : 1 << 30;
        bad = sink_put(s, data + off, (size_t)len, 0);
    }
    if (!bad && s->gz) bad = sink_put(s, NULL, 0, 1);
    if (s->gz) deflateEnd(&s->z);
    free(s);
    if (bad) {
        mtc_outfile_abort(&o);
        return mtc_err_set(e, MTC_EIO, "%s: write failed (%s)", path, strerror(errno));
    }
    return mtc_outfile_commit(&o, e);
}

int mtc_idx_write_images(const char *path, int64_t n, int h, int w,
                         const uint8_t *px, mtc_err *e)
{
    int64_t dims[3] = {n, h, w};
    return idx_write(path, 3, dims, px, e);
}

int mtc_idx_write_labels(const char *path, int64_t n, const uint8_t *lab,
                         mtc_err *e)
{
    int64_t dims[1] = {n};
    return idx_write(path, 1, dims, lab, e);
}
