/*
 * mtc/ckpt.h — the section container and `.mtc` checkpoints (core/container.c,
 * core/ckpt.c).
 *
 * Container layout (little-endian), shared by checkpoints (magic "MTC1") and
 * soft-label files (magic "MTL1"):
 *   header  : magic[4] u32 version u32 reserved(0)
 *   section : u32 name_len, name bytes (1..255, no NUL),
 *             u64 raw_len, u64 comp_len, u32 crc32(stored bytes ‖ raw bytes),
 *             u32 crc32(header
 *             fields above), comp_len bytes of zlib data
 *   ...     : sections until end of file
 *   trailer : a section named "end" with raw_len 0 — a file without it is
 *             truncated.
 * Readers check every length against the file size and a sane maximum before
 * allocating, and verify both CRCs. Writes are streamed to a temp file and
 * committed by rename (mtc_outfile).
 */
#ifndef MTC_CKPT_H
#define MTC_CKPT_H

#define MTC_SECTION_MAX ((uint64_t)1 << 34) /* 16 GiB per section, raw */

typedef struct mtc_cwriter {
    mtc_outfile out;
    int level; /* zlib level (6 after open; may be changed between sections) */
    int broken; /* a write failed: only abort is allowed */
    struct mtc_cwstate *st; /* private: section being streamed, names seen */
} mtc_cwriter;
int mtc_cwriter_open(mtc_cwriter *w, const char *path, const char magic[4],
                     mtc_err *e);
int mtc_cwriter_section(mtc_cwriter *w, const char *name, const void *data,
                        uint64_t len, mtc_err *e);
/* One section produced piecewise (e.g. soft labels): begin, any number of
 * writes, end. Bytes are deflated straight to the file; nothing is buffered
 * beyond zlib's window. mtc_cwriter_section = begin + write + end (small
 * sections take one compress2 call). Names: 1..255 printable ASCII bytes,
 * unique within the file, not "end". */
int mtc_cwriter_begin(mtc_cwriter *w, const char *name, mtc_err *e);
int mtc_cwriter_write(mtc_cwriter *w, const void *data, size_t len, mtc_err *e);
int mtc_cwriter_end(mtc_cwriter *w, mtc_err *e);
/* Writes "end", renames into place. On failure the writer is aborted. */
int mtc_cwriter_commit(mtc_cwriter *w, mtc_err *e);
void mtc_cwriter_abort(mtc_cwriter *w);

typedef struct mtc_csection {
    char name[256];
    uint64_t raw_len, comp_len, offset; /* offset of compressed bytes */
    uint32_t crc;
} mtc_csection;
typedef struct mtc_creader {
    FILE *f;
    char path[4096];
    uint64_t file_size;
    uint32_t version;
    int nsections;
    mtc_csection *sections;
} mtc_creader;
/* Opens and indexes every section (headers + header CRCs checked). The
 * trailing "end" section is checked but not listed in sections[]. */
int mtc_creader_open(mtc_creader *r, const char *path, const char magic[4],
                     mtc_err *e);
int mtc_creader_find(const mtc_creader *r, const char *name); /* -1 if none */
/* Reads section i, inflates, checks CRC. *data is malloc'd (+1 NUL byte). */
int mtc_creader_read(mtc_creader *r, int i, void **data, uint64_t *len,
                     mtc_err *e);
/* Section i as text (no NUL byte allowed); *out (malloc'd) replaces any
 * earlier text there. */
int mtc_creader_read_text(mtc_creader *r, int i, char **out, mtc_err *e);
void mtc_creader_close(mtc_creader *r);

/* A checkpoint: spec text, metadata JSON text, named tensors.
 * Sections: "spec", "meta", and one "tensor:<name>" per tensor whose raw
 * payload is u8 dtype, u8 ndim, u16 0, u32 dims[ndim], then the data. */
typedef struct mtc_ckpt {
    char *spec;  /* model spec text (NUL-terminated), may be NULL */
    char *meta;  /* metadata JSON object text, may be NULL */
    int ntensors;
    mtc_tensor *tensors; /* each .data malloc'd, owned by the ckpt */
} mtc_ckpt;
int mtc_ckpt_save(const char *path, const mtc_ckpt *c, mtc_err *e);
int mtc_ckpt_load(const char *path, mtc_ckpt *c, mtc_err *e);
void mtc_ckpt_free(mtc_ckpt *c);
/* Adds a copy of data. Replaces a tensor of the same name. */
int mtc_ckpt_add(mtc_ckpt *c, const char *name, mtc_dtype dtype, int ndim,
                 const int64_t *dims, const void *data, mtc_err *e);
const mtc_tensor *mtc_ckpt_find(const mtc_ckpt *c, const char *name);
int mtc_ckpt_set_text(char **field, const char *text); /* strdup into field */
/* A "tensor:<name>" section's payload p (len bytes): checks the name,
 * fills t (no data), *hdr (header bytes before the values) and *bytes. */
#define MTC_CKPT_TENSOR_PREFIX "tensor:"
int mtc_ckpt_parse_tensor(const char *path, const char *name, const unsigned char *p, uint64_t len,
                          mtc_tensor *t, size_t *hdr, uint64_t *bytes, mtc_err *e);
/* `mtc inspect` (core/inspect.c): human table or one JSON object to out. */
int mtc_ckpt_inspect(const char *path, int json, FILE *out, mtc_err *e);

#endif
