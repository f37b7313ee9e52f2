/*
 * container.c — the section container under `.mtc` checkpoints and `.mtl`
 * soft-label files (layout in include/mtc/ckpt.h).
 *
 * Every integer is encoded byte by byte, little-endian; nothing is a struct
 * dump. The writer streams: each section is deflated straight into the temp
 * file (a placeholder header is patched once the compressed size is known),
 * so a file of many sections ("chunk:0", "chunk:1", ...) never has to sit in
 * memory. The reader indexes all section headers at open (header CRC, name
 * rules, lengths against the bytes left and MTC_SECTION_MAX, duplicates, the
 * final "end" section) and inflates a section only when asked, checking the
 * payload CRC. No length read from the file reaches malloc unchecked.
 */
#include "mtc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CONTAINER_VERSION 1u
#define HEADER_BYTES 12           /* magic, version, reserved */
#define SMALL_SECTION (256u << 10) /* below this: one compress2 call */
#define IO_CHUNK (64u << 10)
/* deflate cannot expand more than ~1032:1; a raw_len beyond this bound for
 * its comp_len is a lie we reject before allocating raw_len bytes. */
#define MAX_RATIO 1040u

/* ---- little-endian encoding --------------------------------------------- */
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* crc32 over any length (zlib takes uInt). */
static uint32_t crc_update(uint32_t crc, const void *data, uint64_t len)
{
    const unsigned char *p = data;
    while (len) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = (uint32_t)crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

/* A section's CRC covers its stored (compressed) bytes followed by its raw
 * bytes: crc32(stored ‖ raw). The raw part proves the data; the stored part
 * catches flips that deflate would decode to the same data. */
static uint32_t section_crc(uint32_t stored_crc, uint32_t raw_crc, uint64_t raw_len)
{
    return (uint32_t)crc32_combine(stored_crc, raw_crc, (z_off_t)raw_len);
}

static int name_ok(const char *name, size_t n)
{
    if (n < 1 || n > 255) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e) return 0;
    return 1;
}

/* Section header: u32 name_len, name, u64 raw_len, u64 comp_len, u32 crc,
 * u32 header crc. Returns its size. */
static size_t encode_header(unsigned char *h, const char *name, uint64_t raw_len,
                            uint64_t comp_len, uint32_t crc)
{
    size_t n = strlen(name);
    put32(h, (uint32_t)n);
    memcpy(h + 4, name, n);
    put64(h + 4 + n, raw_len);
    put64(h + 12 + n, comp_len);
    put32(h + 20 + n, crc);
    put32(h + 24 + n, (uint32_t)crc32(0L, h, (uInt)(24 + n)));
    return 28 + n;
}

/* A set of names (open addressing on FNV-1a) so that duplicate checks stay
 * linear in the number of sections, even for thousands of chunks. */
typedef struct nameset {
    char **slot;
    size_t n, cap;
} nameset;

/* 1 if name was present, 0 if added, -1 when out of memory. */
static int nameset_add(nameset *s, const char *name)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        char **ns = calloc(nc, sizeof *ns);
        if (!ns) return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i]) continue;
            size_t j = mtc_fnv1a64(s->slot[i], strlen(s->slot[i]), 0) & (nc - 1);
            while (ns[j]) j = (j + 1) & (nc - 1);
            ns[j] = s->slot[i];
        }
        free(s->slot);
        s->slot = ns;
        s->cap = nc;
    }
    size_t j = mtc_fnv1a64(name, strlen(name), 0) & (s->cap - 1);
    for (; s->slot[j]; j = (j + 1) & (s->cap - 1))
        if (!strcmp(s->slot[j], name)) return 1;
    if (!(s->slot[j] = strdup(name))) return -1;
    s->n++;
    return 0;
}

static void nameset_free(nameset *s)
{
    for (size_t i = 0; i < s->cap; i++) free(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof *s);
}

/* ---- writer ------------------------------------------------------------- */
struct mtc_cwstate {
    z_stream z;
    int zinit;
    char name[256];
    off_t hdr_at;      /* where the placeholder header starts */
    uint64_t raw_len, comp_len;
    uint32_t crc, ccrc; /* crc32 of the raw and of the stored bytes */
    unsigned char out[IO_CHUNK];
    nameset names; /* written so far, to refuse duplicates */
};

static int wfail(mtc_cwriter *w, mtc_err *e, const char *what)
{
    w->broken = 1;
    return mtc_err_set(e, MTC_EIO, "%s: %s (%s)", w->out.path, what,
                       errno ? strerror(errno) : "stream error");
}

static void state_free(mtc_cwriter *w)
{
    struct mtc_cwstate *s = w->st;
    if (!s) return;
    if (s->zinit) deflateEnd(&s->z);
    nameset_free(&s->names);
    free(s);
    w->st = NULL;
}

int mtc_cwriter_open(mtc_cwriter *w, const char *path, const char magic[4], mtc_err *e)
{
    memset(w, 0, sizeof *w);
    w->level = 6;
    int rc = mtc_outfile_open(&w->out, path, e);
    if (rc) return rc;
    w->st = calloc(1, sizeof *w->st);
    if (!w->st) {
        mtc_outfile_abort(&w->out);
        return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    }
    unsigned char h[HEADER_BYTES];
    memcpy(h, magic, 4);
    put32(h + 4, CONTAINER_VERSION);
    put32(h + 8, 0);
    if (fwrite(h, 1, sizeof h, w->out.f) != sizeof h) {
        rc = wfail(w, e, "write failed");
        mtc_cwriter_abort(w);
        return rc;
    }
    return MTC_OK;
}

int mtc_cwriter_begin(mtc_cwriter *w, const char *name, mtc_err *e)
{
    struct mtc_cwstate *s = w->st;
    const char *path = w->out.path;
    if (!s || w->broken || s->zinit)
        return mtc_err_set(e, MTC_EINTERNAL, "%s: section writer misused", path);
    size_t n = strlen(name);
    if (!name_ok(name, n) || !strcmp(name, "end"))
        return mtc_err_set(e, MTC_EINPUT, "%s: invalid section name '%.255s'", path, name);
    int seen = nameset_add(&s->names, name);
    if (seen < 0) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    if (seen) return mtc_err_set(e, MTC_EINPUT, "%s: duplicate section '%s'", path, name);
    memset(&s->z, 0, sizeof s->z);
    if (deflateInit(&s->z, w->level) != Z_OK)
        return mtc_err_set(e, MTC_EINTERNAL, "%s: zlib init failed", path);
    s->zinit = 1;
    memcpy(s->name, name, n + 1);
    s->raw_len = s->comp_len = 0;
    s->crc = s->ccrc = (uint32_t)crc32(0L, Z_NULL, 0);
    errno = 0;
    s->hdr_at = ftello(w->out.f);
    unsigned char h[300];
    size_t hn = encode_header(h, name, 0, 0, 0); /* placeholder, patched at end */
    if (s->hdr_at < 0 || fwrite(h, 1, hn, w->out.f) != hn) return wfail(w, e, "write failed");
    return MTC_OK;
}

/* Runs deflate over avail_in with `flush`, writing every full output buffer. */
static int deflate_pump(mtc_cwriter *w, int flush, mtc_err *e)
{
    struct mtc_cwstate *s = w->st;
    int zr;
    do {
        s->z.next_out = s->out;
        s->z.avail_out = sizeof s->out;
        zr = deflate(&s->z, flush);
        if (zr == Z_STREAM_ERROR) return wfail(w, e, "compression failed");
        size_t have = sizeof s->out - s->z.avail_out;
        errno = 0;
        if (have && fwrite(s->out, 1, have, w->out.f) != have) return wfail(w, e, "write failed");
        s->ccrc = crc_update(s->ccrc, s->out, have);
        s->comp_len += have;
    } while (s->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
    return MTC_OK;
}

int mtc_cwriter_write(mtc_cwriter *w, const void *data, size_t len, mtc_err *e)
{
    struct mtc_cwstate *s = w->st;
    if (!s || w->broken || !s->zinit)
        return mtc_err_set(e, MTC_EINTERNAL, "%s: section writer misused", w->out.path);
    if (len > MTC_SECTION_MAX - s->raw_len)
        return mtc_err_set(e, MTC_EINPUT, "%s: section '%s' exceeds %llu bytes", w->out.path,
                           s->name, (unsigned long long)MTC_SECTION_MAX);
    const unsigned char *p = data;
    s->crc = crc_update(s->crc, p, len);
    s->raw_len += len;
    while (len) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        s->z.next_in = (Bytef *)p;
        s->z.avail_in = n;
        int rc = deflate_pump(w, Z_NO_FLUSH, e);
        if (rc) return rc;
        p += n;
        len -= n;
    }
    return MTC_OK;
}

/* Writes a finished header at the current position (no placeholder). */
static int write_whole(mtc_cwriter *w, const char *name, uint64_t raw_len,
                       const void *comp, uint64_t comp_len, uint32_t crc, mtc_err *e)
{
    unsigned char h[300];
    size_t hn = encode_header(h, name, raw_len, comp_len, crc);
    errno = 0;
    if (fwrite(h, 1, hn, w->out.f) != hn ||
        (comp_len && fwrite(comp, 1, comp_len, w->out.f) != comp_len))
        return wfail(w, e, "write failed");
    return MTC_OK;
}

int mtc_cwriter_end(mtc_cwriter *w, mtc_err *e)
{
    struct mtc_cwstate *s = w->st;
    if (!s || w->broken || !s->zinit)
        return mtc_err_set(e, MTC_EINTERNAL, "%s: section writer misused", w->out.path);
    s->z.next_in = NULL;
    s->z.avail_in = 0;
    int rc = deflate_pump(w, Z_FINISH, e);
    deflateEnd(&s->z);
    s->zinit = 0;
    if (rc) return rc;
    if (s->raw_len == 0) { /* empty sections carry no zlib data: drop the stream */
        errno = 0;
        if (fflush(w->out.f) || ftruncate(fileno(w->out.f), s->hdr_at) ||
            fseeko(w->out.f, s->hdr_at, SEEK_SET))
            return wfail(w, e, "write failed");
        return write_whole(w, s->name, 0, NULL, 0, 0, e);
    }
    unsigned char h[300];
    size_t hn = encode_header(h, s->name, s->raw_len, s->comp_len,
                              section_crc(s->ccrc, s->crc, s->raw_len));
    errno = 0;
    if (fseeko(w->out.f, s->hdr_at, SEEK_SET) || fwrite(h, 1, hn, w->out.f) != hn ||
        fseeko(w->out.f, 0, SEEK_END))
        return wfail(w, e, "write failed");
    return MTC_OK;
}

int mtc_cwriter_section(mtc_cwriter *w, const char *name, const void *data,
                        uint64_t len, mtc_err *e)
{
    if (len > MTC_SECTION_MAX || len > SIZE_MAX)
        return mtc_err_set(e, MTC_EINPUT, "%s: section '%.255s' too large (%llu bytes)",
                           w->out.path, name, (unsigned long long)len);
    if (len >= SMALL_SECTION) {
        int rc = mtc_cwriter_begin(w, name, e);
        if (!rc) rc = mtc_cwriter_write(w, data, (size_t)len, e);
        if (!rc) rc = mtc_cwriter_end(w, e);
        return rc;
    }
    /* Small section: one compress2 into a bounded buffer. */
    struct mtc_cwstate *s = w->st;
    if (!s || w->broken || s->zinit)
        return mtc_err_set(e, MTC_EINTERNAL, "%s: section writer misused", w->out.path);
    size_t n = strlen(name);
    if (!name_ok(name, n) || !strcmp(name, "end"))
        return mtc_err_set(e, MTC_EINPUT, "%s: invalid section name '%.255s'", w->out.path, name);
    int seen = nameset_add(&s->names, name);
    if (seen < 0) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", w->out.path);
    if (seen) return mtc_err_set(e, MTC_EINPUT, "%s: duplicate section '%s'", w->out.path, name);
    if (len == 0) return write_whole(w, name, 0, NULL, 0, 0, e);
    uLongf clen = compressBound((uLong)len);
    unsigned char *comp = malloc(clen);
    if (!comp) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", w->out.path);
    int rc;
    if (compress2(comp, &clen, data, (uLong)len, w->level) != Z_OK) {
        errno = 0;
        rc = wfail(w, e, "compression failed");
    } else {
        uint32_t z0 = (uint32_t)crc32(0L, Z_NULL, 0);
        uint32_t crc = section_crc(crc_update(z0, comp, clen), crc_update(z0, data, len), len);
        rc = write_whole(w, name, len, comp, clen, crc, e);
    }
    free(comp);
    return rc;
}

int mtc_cwriter_commit(mtc_cwriter *w, mtc_err *e)
{
    int rc;
    if (!w->st || w->broken || w->st->zinit)
        rc = mtc_err_set(e, MTC_EINTERNAL, "%s: commit after a failed or open section",
                         w->out.path);
    else
        rc = write_whole(w, "end", 0, NULL, 0, 0, e);
    if (rc) {
        mtc_cwriter_abort(w);
        return rc;
    }
    state_free(w);
    return mtc_outfile_commit(&w->out, e);
}

void mtc_cwriter_abort(mtc_cwriter *w)
{
    state_free(w);
    mtc_outfile_abort(&w->out);
}

/* ---- reader ------------------------------------------------------------- */
static const char *kind_of(const char magic[4])
{
    if (!memcmp(magic, "MTC1", 4)) return "an mtc checkpoint";
    if (!memcmp(magic, "MTL1", 4)) return "an mtc soft-label file";
    return "an mtc container";
}

static int rd(mtc_creader *r, void *buf, size_t n, mtc_err *e)
{
    if (fread(buf, 1, n, r->f) != n)
        return mtc_err_set(e, MTC_EIO, "%s: read failed (%s)", r->path,
                           ferror(r->f) ? strerror(errno) : "file shrank while reading");
    return MTC_OK;
}

/* Reads and checks the section header at *pos; appends it to r->sections
 * unless it is "end" (then *done = 1). */
static int index_section(mtc_creader *r, uint64_t *pos, int *cap, nameset *seen, int *done,
                         mtc_err *e)
{
    const char *path = r->path;
    uint64_t left = r->file_size - *pos, at = *pos;
    unsigned char h[300];
    int rc;
    if (left < 4)
        return mtc_err_set(e, MTC_EINPUT,
                           "%s: truncated (section header at byte %llu needs 4 bytes, %llu left)",
                           path, (unsigned long long)at, (unsigned long long)left);
    if ((rc = rd(r, h, 4, e))) return rc;
    uint32_t nlen = get32(h);
    if (nlen < 1 || nlen > 255)
        return mtc_err_set(e, MTC_EINPUT, "%s: bad section name length %u at byte %llu",
                           path, nlen, (unsigned long long)at);
    if (left < 28 + (uint64_t)nlen)
        return mtc_err_set(e, MTC_EINPUT,
                           "%s: truncated (section header at byte %llu needs %u bytes, %llu left)",
                           path, (unsigned long long)at, 28 + nlen, (unsigned long long)left);
    if ((rc = rd(r, h + 4, 24 + nlen, e))) return rc;
    char name[256];
    memcpy(name, h + 4, nlen);
    name[nlen] = 0;
    uint64_t raw = get64(h + 4 + nlen), comp = get64(h + 12 + nlen);
    uint32_t crc = get32(h + 20 + nlen), hcrc = get32(h + 24 + nlen);
    if ((uint32_t)crc32(0L, h, 24 + nlen) != hcrc) {
        if (name_ok(name, nlen))
            return mtc_err_set(e, MTC_EINPUT, "%s: section '%s' header CRC mismatch", path, name);
        return mtc_err_set(e, MTC_EINPUT, "%s: section header CRC mismatch at byte %llu", path,
                           (unsigned long long)at);
    }
    if (!name_ok(name, nlen))
        return mtc_err_set(e, MTC_EINPUT, "%s: invalid section name at byte %llu", path,
                           (unsigned long long)at);
    left -= 28 + nlen;
    *pos += 28 + nlen;
    if (raw > MTC_SECTION_MAX)
        return mtc_err_set(e, MTC_EINPUT, "%s: section '%s' too large (%llu bytes, limit %llu)",
                           path, name, (unsigned long long)raw,
                           (unsigned long long)MTC_SECTION_MAX);
    if (comp > left)
        return mtc_err_set(e, MTC_EINPUT, "%s: truncated (section '%s' needs %llu bytes, %llu left)",
                           path, name, (unsigned long long)comp, (unsigned long long)left);
    /* empty <=> no zlib data; otherwise the expansion must be possible */
    if ((raw == 0) != (comp == 0) || raw / MAX_RATIO > comp || (raw == 0 && crc != 0))
        return mtc_err_set(e, MTC_EINPUT,
                           "%s: section '%s' has impossible sizes (raw %llu, stored %llu)", path,
                           name, (unsigned long long)raw, (unsigned long long)comp);
    if (!strcmp(name, "end")) {
        if (raw != 0 || *pos != r->file_size)
            return mtc_err_set(e, MTC_EINPUT, "%s: %llu bytes of trailing data after 'end'",
                               path, (unsigned long long)(r->file_size - *pos));
        *done = 1;
        return MTC_OK;
    }
    int dup = nameset_add(seen, name);
    if (dup < 0) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    if (dup) return mtc_err_set(e, MTC_EINPUT, "%s: duplicate section '%s'", path, name);
    if (r->nsections == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        mtc_csection *ns = realloc(r->sections, (size_t)nc * sizeof *ns);
        if (!ns) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
        r->sections = ns;
        *cap = nc;
    }
    mtc_csection *s = &r->sections[r->nsections++];
    memcpy(s->name, name, nlen + 1);
    s->raw_len = raw;
    s->comp_len = comp;
    s->offset = *pos;
    s->crc = crc;
    *pos += comp;
    if (comp && fseeko(r->f, (off_t)*pos, SEEK_SET))
        return mtc_err_set(e, MTC_EIO, "%s: seek failed (%s)", path, strerror(errno));
    return MTC_OK;
}

int mtc_creader_open(mtc_creader *r, const char *path, const char magic[4], mtc_err *e)
{
    memset(r, 0, sizeof *r);
    if (strlen(path) >= sizeof r->path)
        return mtc_err_set(e, MTC_EINPUT, "%.200s...: path too long", path);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->f = fopen(path, "rb");
    if (!r->f) return mtc_err_set(e, MTC_EINPUT, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    int rc;
    if (fstat(fileno(r->f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: not a regular file", path);
        goto fail;
    }
    r->file_size = (uint64_t)st.st_size;
    unsigned char h[HEADER_BYTES];
    size_t got = fread(h, 1, sizeof h, r->f);
    if (got < 4 || memcmp(h, magic, 4)) {
        if (got < 4 && !memcmp(h, magic, got))
            rc = mtc_err_set(e, MTC_EINPUT, "%s: truncated (header needs %d bytes, %zu left)",
                             path, HEADER_BYTES, got);
        else
            rc = mtc_err_set(e, MTC_EINPUT, "%s: not %s (bad magic)", path, kind_of(magic));
        goto fail;
    }
    if (got < sizeof h) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: truncated (header needs %d bytes, %zu left)", path,
                         HEADER_BYTES, got);
        goto fail;
    }
    r->version = get32(h + 4);
    if (r->version != CONTAINER_VERSION || get32(h + 8) != 0) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: unsupported container version %u (reserved %u)",
                         path, r->version, get32(h + 8));
        goto fail;
    }
    uint64_t pos = HEADER_BYTES;
    int cap = 0, done = 0;
    nameset seen = {0};
    while (!done) {
        if (pos == r->file_size)
            rc = mtc_err_set(e, MTC_EINPUT, "%s: truncated (no 'end' section after byte %llu)",
                             path, (unsigned long long)pos);
        else
            rc = index_section(r, &pos, &cap, &seen, &done, e);
        if (rc) break;
    }
    nameset_free(&seen);
    if (!rc) return MTC_OK;
fail:
    mtc_creader_close(r);
    return rc;
}

int mtc_creader_find(const mtc_creader *r, const char *name)
{
    for (int i = 0; i < r->nsections; i++)
        if (!strcmp(r->sections[i].name, name)) return i;
    return -1;
}

/* Deflate has a few bits that decode to nothing: the padding after the final
 * block and after a stored block's 3-bit header. zlib writes them as zero;
 * the payload CRC cannot see them, so we require zero, and then no single
 * bit of a section escapes every check. Inflating with Z_BLOCK stops at each
 * block boundary and reports (data_type & 7) unused bits of the last byte
 * consumed; the next block's header starts in those bits. */
typedef struct {
    unsigned char last; /* last byte inflate consumed */
    int pending;        /* a block header to look at once its byte is here */
    unsigned val, n;    /* its first n bits */
    int bad;
} padcheck;

static void pad_at_stop(padcheck *pc, int data_type)
{
    unsigned n = (unsigned)data_type & 7, val = n ? (unsigned)pc->last >> (8 - n) : 0;
    if (data_type & 64) { /* after the final block: only padding remains */
        if (val) pc->bad = 1;
        pc->pending = 0;
        return;
    }
    pc->pending = 1;
    pc->val = val;
    pc->n = n;
}

static void pad_resolve(padcheck *pc, const z_stream *z)
{
    if (!pc->pending || (pc->n < 3 && z->avail_in == 0)) return;
    unsigned bits = pc->val, total = pc->n;
    if (pc->n < 3) {
        bits |= (unsigned)z->next_in[0] << pc->n;
        total += 8;
    }
    if (((bits >> 1) & 3) == 0 && (bits & (((1u << total) - 1) & ~7u))) pc->bad = 1;
    pc->pending = 0;
}

/* Inflates comp_len bytes from the file into out[0..raw_len). */
static int inflate_section(mtc_creader *r, const mtc_csection *s, unsigned char *out,
                           uint32_t *stored_crc, mtc_err *e)
{
    *stored_crc = (uint32_t)crc32(0L, Z_NULL, 0);
    unsigned char *in = malloc(IO_CHUNK);
    if (!in) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", r->path);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) {
        free(in);
        return mtc_err_set(e, MTC_EINTERNAL, "%s: zlib init failed", r->path);
    }
    padcheck pc = {0};
    uint64_t in_left = s->comp_len, out_done = 0;
    int zr = Z_OK, rc = MTC_OK;
    while (zr != Z_STREAM_END && !pc.bad) {
        if (z.avail_in == 0) {
            if (in_left == 0) break;
            size_t n = in_left > IO_CHUNK ? IO_CHUNK : (size_t)in_left;
            if ((rc = rd(r, in, n, e))) break;
            *stored_crc = crc_update(*stored_crc, in, n);
            in_left -= n;
            z.next_in = in;
            z.avail_in = (uInt)n;
            pad_resolve(&pc, &z);
        }
        uint64_t room = s->raw_len - out_done;
        z.next_out = out + out_done;
        z.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        uInt before = z.avail_out;
        zr = inflate(&z, Z_BLOCK);
        out_done += before - z.avail_out;
        if (z.next_in > in) pc.last = z.next_in[-1];
        if (zr == Z_OK && (z.data_type & 128)) {
            pad_at_stop(&pc, z.data_type);
            pad_resolve(&pc, &z);
        }
        if (zr == Z_BUF_ERROR && room == 0) break; /* more data than raw_len */
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) break;
    }
    if (!rc && (zr != Z_STREAM_END || out_done != s->raw_len || in_left || z.avail_in ||
                pc.bad || pc.pending))
        rc = mtc_err_set(e, MTC_EINPUT, "%s: section '%s' corrupt (%s)", r->path, s->name,
                         pc.bad ? "nonzero deflate padding"
                         : zr != Z_STREAM_END && z.msg ? z.msg : "size mismatch");
    inflateEnd(&z);
    free(in);
    return rc;
}

int mtc_creader_read(mtc_creader *r, int i, void **data, uint64_t *len, mtc_err *e)
{
    *data = NULL;
    if (len) *len = 0;
    if (i < 0 || i >= r->nsections)
        return mtc_err_set(e, MTC_EINTERNAL, "%s: no section %d", r->path, i);
    const mtc_csection *s = &r->sections[i];
    /* lengths were checked at open: raw <= MTC_SECTION_MAX, comp <= bytes left */
    if (s->raw_len >= SIZE_MAX)
        return mtc_err_set(e, MTC_EINPUT, "%s: section '%s' too large", r->path, s->name);
    unsigned char *buf = malloc((size_t)s->raw_len + 1);
    if (!buf)
        return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory for section '%s' (%llu bytes)",
                           r->path, s->name, (unsigned long long)s->raw_len);
    int rc = MTC_OK;
    uint32_t z0 = (uint32_t)crc32(0L, Z_NULL, 0), stored = z0;
    if (s->raw_len) {
        if (fseeko(r->f, (off_t)s->offset, SEEK_SET))
            rc = mtc_err_set(e, MTC_EIO, "%s: seek failed (%s)", r->path, strerror(errno));
        if (!rc) rc = inflate_section(r, s, buf, &stored, e);
    }
    if (!rc && s->raw_len &&
        section_crc(stored, crc_update(z0, buf, s->raw_len), s->raw_len) != s->crc)
        rc = mtc_err_set(e, MTC_EINPUT, "%s: section '%s' CRC mismatch", r->path, s->name);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[s->raw_len] = 0;
    *data = buf;
    if (len) *len = s->raw_len;
    return MTC_OK;
}

int mtc_creader_read_text(mtc_creader *r, int i, char **out, mtc_err *e)
{
    void *buf;
    uint64_t len;
    int rc = mtc_creader_read(r, i, &buf, &len, e);
    if (rc) return rc;
    if (memchr(buf, 0, (size_t)len)) {
        free(buf);
        return mtc_err_set(e, MTC_EINPUT, "%s: section '%s' contains a NUL byte", r->path,
                           r->sections[i].name);
    }
    free(*out);
    *out = buf;
    return MTC_OK;
}

void mtc_creader_close(mtc_creader *r)
{
    if (r->f) fclose(r->f);
    free(r->sections);
    r->f = NULL;
    r->sections = NULL;
    r->nsections = 0;
}
