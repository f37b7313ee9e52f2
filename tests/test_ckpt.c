/* test_ckpt.c — section container, .mtc checkpoints, corrupted files and
 * `mtc inspect`. */
#include "tests/testutil.h"
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zlib.h>

/* ---- helpers -------------------------------------------------------------- */
static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Offset of the k-th section header of a well-formed container (k counts
 * "end" too), or 0 if there are fewer sections. */
static size_t section_at(const unsigned char *f, size_t size, int k)
{
    size_t pos = 12;
    for (int i = 0; pos + 4 <= size; i++) {
        if (i == k) return pos;
        uint32_t n = rd32(f + pos);
        pos += 28 + n + rd64(f + pos + 12 + n);
    }
    return 0;
}

/* Recomputes the header CRC of the section at off so a patched field passes
 * the CRC and reaches the length checks. */
static void fix_hcrc(unsigned char *f, size_t off)
{
    uint32_t n = rd32(f + off);
    wr32(f + off + 24 + n, (uint32_t)crc32(0L, f + off, 24 + n));
}

static void fill_random(void *p, size_t n, uint64_t seed)
{
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)mtc_rng_u64(&r);
}

/* A small checkpoint with spec, meta and tensors of several dtypes; a
 * third of the f32 weights are exact zeros. */
static void make_small(mtc_ckpt *c)
{
    memset(c, 0, sizeof *c);
    mtc_err e = {0};
    assert_int_equal(mtc_ckpt_set_text(&c->spec, "[input] shape = 4\n[dense] units = 3\n"), 0);
    assert_int_equal(mtc_ckpt_set_text(&c->meta, "{\"stage\":\"teacher\",\"acc\":{\"fashion\":0.91}}"), 0);
    float w[12];
    for (int i = 0; i < 12; i++) w[i] = i % 3 == 0 ? 0.0f : 0.25f * (float)i;
    int64_t dw[2] = {3, 4}, db[1] = {3};
    assert_int_equal(mtc_ckpt_add(c, "trunk.0.dense.weight", MTC_F32, 2, dw, w, &e), 0);
    int8_t q[3] = {-1, 0, 7};
    assert_int_equal(mtc_ckpt_add(c, "trunk.0.dense.bias", MTC_S8, 1, db, q, &e), 0);
}

static unsigned char *save_small(const char *path, size_t *size)
{
    mtc_ckpt c;
    mtc_err e = {0};
    make_small(&c);
    assert_int_equal(mtc_ckpt_save(path, &c, &e), 0);
    mtc_ckpt_free(&c);
    return tu_read(path, size);
}

static int files_in(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---- container -------------------------------------------------------------- */
static void test_container_round_trip_small_empty_big_streamed(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "c.mtc");
    mtc_err e = {0};
    size_t big_n = 1536 * 1024 + 7;
    unsigned char *big = malloc(big_n);
    for (size_t i = 0; i < big_n; i++) big[i] = (unsigned char)((i * 7) ^ (i >> 9)); /* some structure */
    big[big_n / 2] = 0xAB;
    unsigned char rnd[5000];
    fill_random(rnd, sizeof rnd, 3);

    mtc_cwriter w;
    assert_int_equal(mtc_cwriter_open(&w, p, "MTC1", &e), 0);
    assert_int_equal(mtc_cwriter_section(&w, "hello", "world", 5, &e), 0);
    assert_int_equal(mtc_cwriter_section(&w, "empty", NULL, 0, &e), 0);
    assert_int_equal(mtc_cwriter_section(&w, "big", big, big_n, &e), 0);
    assert_int_equal(mtc_cwriter_begin(&w, "pieces", &e), 0); /* streamed in parts */
    for (size_t off = 0; off < sizeof rnd; off += 999)
        assert_int_equal(mtc_cwriter_write(&w, rnd + off, off + 999 > sizeof rnd ? sizeof rnd - off : 999, &e), 0);
    assert_int_equal(mtc_cwriter_end(&w, &e), 0);
    assert_int_equal(mtc_cwriter_begin(&w, "empty-streamed", &e), 0);
    assert_int_equal(mtc_cwriter_end(&w, &e), 0);
    assert_int_equal(mtc_cwriter_commit(&w, &e), 0);

    mtc_creader r;
    assert_int_equal(mtc_creader_open(&r, p, "MTC1", &e), 0);
    assert_int_equal(r.nsections, 5);
    assert_int_equal(mtc_creader_find(&r, "end"), -1);
    assert_int_equal(mtc_creader_find(&r, "nope"), -1);
    void *d;
    uint64_t n;
    assert_int_equal(mtc_creader_read(&r, mtc_creader_find(&r, "hello"), &d, &n, &e), 0);
    assert_int_equal(n, 5);
    assert_string_equal(d, "world"); /* NUL added */
    free(d);
    assert_int_equal(mtc_creader_read(&r, mtc_creader_find(&r, "empty"), &d, &n, &e), 0);
    assert_int_equal(n, 0);
    free(d);
    assert_int_equal(mtc_creader_read(&r, mtc_creader_find(&r, "big"), &d, &n, &e), 0);
    assert_int_equal(n, big_n);
    assert_memory_equal(d, big, big_n);
    assert_true(r.sections[mtc_creader_find(&r, "big")].comp_len < big_n);
    free(d);
    assert_int_equal(mtc_creader_read(&r, mtc_creader_find(&r, "pieces"), &d, &n, &e), 0);
    assert_int_equal(n, sizeof rnd);
    assert_memory_equal(d, rnd, sizeof rnd);
    free(d);
    assert_int_equal(mtc_creader_read(&r, mtc_creader_find(&r, "empty-streamed"), &d, &n, &e), 0);
    assert_int_equal(n, 0);
    free(d);
    mtc_creader_close(&r);
    /* wrong magic for this file */
    assert_int_equal(mtc_creader_open(&r, p, "MTL1", &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "not an mtc soft-label file (bad magic)"));
    free(big);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* The reader's strict checks (deflate padding must be zero) accept whatever
 * zlib writes: stored, fixed and dynamic blocks, every level. */
static void test_container_accepts_every_kind_of_deflate_output(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "k.mtc");
    mtc_err e = {0};
    mtc_rng r;
    mtc_rng_seed(&r, 77);
    enum { N = 60 };
    size_t lens[N];
    unsigned char *bufs[N];
    mtc_cwriter w;
    assert_int_equal(mtc_cwriter_open(&w, p, "MTC1", &e), 0);
    for (int i = 0; i < N; i++) {
        lens[i] = 1 + (size_t)mtc_rng_below(&r, i < 50 ? 3000 : 400000);
        bufs[i] = malloc(lens[i]);
        int kind = i % 3; /* random, sparse, text-like */
        for (size_t k = 0; k < lens[i]; k++) {
            uint64_t x = mtc_rng_u64(&r);
            bufs[i][k] = kind == 0 ? (unsigned char)x
                       : kind == 1 ? (x % 5 ? 0 : (unsigned char)(x >> 8))
                       : (unsigned char)('a' + x % 7);
        }
        w.level = (int)(i % 10);
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        assert_int_equal(mtc_cwriter_section(&w, name, bufs[i], lens[i], &e), 0);
    }
    /* best case for deflate (~1030:1) stays within the reader's ratio bound */
    size_t zn = 4u << 20;
    unsigned char *zeros = calloc(zn, 1);
    w.level = 9;
    assert_int_equal(mtc_cwriter_section(&w, "zeros", zeros, zn, &e), 0);
    assert_int_equal(mtc_cwriter_commit(&w, &e), 0);
    mtc_creader rd;
    assert_int_equal(mtc_creader_open(&rd, p, "MTC1", &e), 0);
    for (int i = 0; i < N; i++) {
        void *d;
        uint64_t n;
        if (mtc_creader_read(&rd, i, &d, &n, &e)) fail_msg("section %d: %s", i, e.msg);
        assert_int_equal(n, lens[i]);
        assert_memory_equal(d, bufs[i], lens[i]);
        free(d);
        free(bufs[i]);
    }
    void *d;
    uint64_t n;
    int zi = mtc_creader_find(&rd, "zeros");
    print_message("4 MiB of zeros stored in %llu bytes\n",
                  (unsigned long long)rd.sections[zi].comp_len);
    assert_int_equal(mtc_creader_read(&rd, zi, &d, &n, &e), 0);
    assert_memory_equal(d, zeros, zn);
    free(d);
    free(zeros);
    mtc_creader_close(&rd);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* Soft labels: many chunk sections; bytes reach the file while writing. */
static void test_container_streams_many_chunks_to_disk(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "soft.mtl");
    mtc_err e = {0};
    enum { CHUNKS = 600, CHUNK = 4096 };
    unsigned char buf[CHUNK];
    mtc_cwriter w;
    assert_int_equal(mtc_cwriter_open(&w, p, "MTL1", &e), 0);
    for (int i = 0; i < CHUNKS; i++) {
        char name[32];
        snprintf(name, sizeof name, "chunk:%d", i);
        fill_random(buf, sizeof buf, (uint64_t)i + 1);
        assert_int_equal(mtc_cwriter_section(&w, name, buf, sizeof buf, &e), 0);
    }
    struct stat sb;
    assert_int_equal(stat(w.out.tmp, &sb), 0);
    /* incompressible data: all but the stdio buffer is already on disk */
    assert_true(sb.st_size > (off_t)(CHUNKS - 4) * CHUNK);
    assert_int_equal(mtc_cwriter_section(&w, "chunk:7", buf, 1, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "duplicate section 'chunk:7'"));
    assert_int_equal(mtc_cwriter_commit(&w, &e), 0);

    mtc_creader r;
    assert_int_equal(mtc_creader_open(&r, p, "MTL1", &e), 0);
    assert_int_equal(r.nsections, CHUNKS);
    int i = mtc_creader_find(&r, "chunk:321");
    assert_int_equal(i, 321);
    void *d;
    uint64_t n;
    assert_int_equal(mtc_creader_read(&r, i, &d, &n, &e), 0);
    fill_random(buf, sizeof buf, 322);
    assert_memory_equal(d, buf, CHUNK);
    free(d);
    mtc_creader_close(&r);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void test_container_rejects_bad_names_and_duplicates(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "n.mtc");
    mtc_err e = {0};
    char long_name[300];
    memset(long_name, 'x', 256);
    long_name[256] = 0;
    mtc_cwriter w;
    assert_int_equal(mtc_cwriter_open(&w, p, "MTC1", &e), 0);
    assert_int_equal(mtc_cwriter_section(&w, "", "a", 1, &e), MTC_EINPUT);
    assert_int_equal(mtc_cwriter_section(&w, long_name, "a", 1, &e), MTC_EINPUT);
    long_name[255] = 0; /* 255 bytes is fine */
    assert_int_equal(mtc_cwriter_section(&w, long_name, "a", 1, &e), 0);
    assert_int_equal(mtc_cwriter_section(&w, "a\nb", "a", 1, &e), MTC_EINPUT);
    assert_int_equal(mtc_cwriter_section(&w, "end", "a", 1, &e), MTC_EINPUT);
    assert_int_equal(mtc_cwriter_section(&w, "aa", "1", 1, &e), 0);
    assert_int_equal(mtc_cwriter_section(&w, "ab", "2", 1, &e), 0);
    assert_int_equal(mtc_cwriter_section(&w, "aa", "3", 1, &e), MTC_EINPUT);
    assert_int_equal(mtc_cwriter_commit(&w, &e), 0);

    /* the reader refuses a hand-made duplicate: rename "ab" to "aa" */
    size_t size;
    unsigned char *f = tu_read(p, &size);
    size_t off = section_at(f, size, 2);
    assert_int_equal(f[off + 5], 'b');
    f[off + 5] = 'a';
    fix_hcrc(f, off);
    assert_int_equal(tu_write(p, f, size), 0);
    mtc_creader r;
    assert_int_equal(mtc_creader_open(&r, p, "MTC1", &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "duplicate section 'aa'"));
    /* ... and a non-printable name */
    f[off + 5] = 0x07;
    fix_hcrc(f, off);
    assert_int_equal(tu_write(p, f, size), 0);
    assert_int_equal(mtc_creader_open(&r, p, "MTC1", &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "invalid section name"));
    /* ... and data after "end" */
    f[off + 5] = 'b';
    fix_hcrc(f, off);
    unsigned char *g = malloc(size + 1);
    memcpy(g, f, size);
    g[size] = 0;
    assert_int_equal(tu_write(p, g, size + 1), 0);
    assert_int_equal(mtc_creader_open(&r, p, "MTC1", &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "trailing data after 'end'"));
    assert_int_equal(tu_write(p, g, size), 0);
    assert_int_equal(mtc_creader_open(&r, p, "MTC1", &e), 0);
    mtc_creader_close(&r);
    free(g);
    free(f);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* ---- checkpoints ---------------------------------------------------------- */
static void test_ckpt_round_trip_every_dtype_and_rank(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "all.mtc");
    mtc_err e = {0};
    mtc_ckpt c, d;
    memset(&c, 0, sizeof c);
    const int64_t shape[4] = {3, 2, 5, 4};
    unsigned char data[3 * 2 * 5 * 4 * 4];
    for (int dt = MTC_F32; dt <= MTC_F16; dt++)
        for (int nd = 1; nd <= 4; nd++) {
            char name[64];
            snprintf(name, sizeof name, "t.%s.%d", mtc_dtype_name((mtc_dtype)dt), nd);
            fill_random(data, sizeof data, (uint64_t)(dt * 10 + nd));
            assert_int_equal(mtc_ckpt_add(&c, name, (mtc_dtype)dt, nd, shape, data, &e), 0);
        }
    int64_t zero_dim[2] = {0, 5};
    assert_int_equal(mtc_ckpt_add(&c, "empty", MTC_F32, 2, zero_dim, NULL, &e), 0);
    assert_int_equal(mtc_ckpt_set_text(&c.spec, "[input] shape = 1x28x28\n"), 0);
    assert_int_equal(mtc_ckpt_set_text(&c.meta, "{\"lineage\":[\"teacher.mtc\"],\"seed\":1}"), 0);
    assert_int_equal(mtc_ckpt_save(p, &c, &e), 0);
    assert_int_equal(mtc_ckpt_load(p, &d, &e), 0);
    assert_string_equal(d.spec, c.spec);
    assert_string_equal(d.meta, c.meta);
    assert_int_equal(d.ntensors, c.ntensors);
    for (int i = 0; i < c.ntensors; i++) {
        const mtc_tensor *a = &c.tensors[i], *b = mtc_ckpt_find(&d, a->name);
        assert_non_null(b);
        assert_int_equal(a->dtype, b->dtype);
        assert_int_equal(a->ndim, b->ndim);
        for (int k = 0; k < a->ndim; k++) assert_int_equal(a->dims[k], b->dims[k]);
        size_t bytes = (size_t)mtc_tensor_numel(a) * mtc_dtype_size(a->dtype);
        if (bytes) assert_memory_equal(a->data, b->data, bytes);
    }
    mtc_ckpt_free(&d);
    mtc_ckpt_free(&c);
    /* no spec, no meta, no tensors is a valid (empty) checkpoint */
    assert_int_equal(mtc_ckpt_save(p, &c, &e), 0);
    assert_int_equal(mtc_ckpt_load(p, &d, &e), 0);
    assert_null(d.spec);
    assert_null(d.meta);
    assert_int_equal(d.ntensors, 0);
    mtc_ckpt_free(&d);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void test_ckpt_add_replaces_same_name_and_validates(void **st)
{
    (void)st;
    mtc_ckpt c;
    memset(&c, 0, sizeof c);
    mtc_err e = {0};
    float a[4] = {1, 2, 3, 4};
    int32_t b[6] = {1, 2, 3, 4, 5, 6};
    int64_t d4[1] = {4}, d23[2] = {2, 3};
    assert_int_equal(mtc_ckpt_add(&c, "w", MTC_F32, 1, d4, a, &e), 0);
    assert_int_equal(mtc_ckpt_add(&c, "v", MTC_F32, 1, d4, a, &e), 0);
    assert_int_equal(mtc_ckpt_add(&c, "w", MTC_S32, 2, d23, b, &e), 0);
    assert_int_equal(c.ntensors, 2);
    const mtc_tensor *t = mtc_ckpt_find(&c, "w");
    assert_int_equal(t->dtype, MTC_S32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->dims[1], 3);
    assert_memory_equal(t->data, b, sizeof b);
    assert_null(mtc_ckpt_find(&c, "nope"));
    int64_t huge[4] = {0xFFFFFFFFLL, 0xFFFFFFFFLL, 0xFFFFFFFFLL, 0xFFFFFFFFLL}, neg[1] = {-1};
    assert_int_equal(mtc_ckpt_add(&c, "h", MTC_F32, 4, huge, a, &e), MTC_EINPUT);
    assert_int_equal(mtc_ckpt_add(&c, "h", MTC_F32, 1, neg, a, &e), MTC_EINPUT);
    assert_int_equal(mtc_ckpt_add(&c, "h", MTC_F32, 0, d4, a, &e), MTC_EINPUT);
    assert_int_equal(mtc_ckpt_add(&c, "h", MTC_F32, 5, huge, a, &e), MTC_EINPUT);
    assert_int_equal(mtc_ckpt_add(&c, "h", (mtc_dtype)9, 1, d4, a, &e), MTC_EINPUT);
    assert_int_equal(mtc_ckpt_add(&c, "", MTC_F32, 1, d4, a, &e), MTC_EINPUT);
    assert_int_equal(c.ntensors, 2);
    mtc_ckpt_free(&c);
}

static void test_ckpt_every_truncation_fails_naming_the_file(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "ok.mtc"), *q = tu_path(dir, "cut.mtc");
    size_t size;
    unsigned char *f = save_small(p, &size);
    assert_true(size > 100);
    for (size_t len = 0; len < size; len++) {
        assert_int_equal(tu_write(q, f, len), 0);
        mtc_ckpt c;
        mtc_err e = {0};
        int rc = mtc_ckpt_load(q, &c, &e);
        if (rc != MTC_EINPUT) fail_msg("truncated to %zu of %zu bytes: rc %d", len, size, rc);
        assert_non_null(strstr(e.msg, q));
        assert_int_equal(c.ntensors, 0);
        assert_null(c.tensors);
    }
    /* the message says what was cut, as the spec example does */
    size_t meta = section_at(f, size, 1);
    assert_int_equal(tu_write(q, f, meta + 28 + 4 + 10), 0);
    mtc_ckpt c;
    mtc_err e = {0};
    assert_int_equal(mtc_ckpt_load(q, &c, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, ": truncated (section 'meta' needs "));
    assert_non_null(strstr(e.msg, " bytes, 10 left)"));
    free(f);
    free(p);
    free(q);
    tu_rmdir(dir);
    free(dir);
}

/* Every header, length, name and CRC byte is covered, and the section CRC
 * covers the stored (compressed) bytes as well as the raw data, so every
 * single-bit flip anywhere in the file must fail to load. */
static void test_ckpt_random_bit_flips_fail_or_decode_identically(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "ok.mtc"), *q = tu_path(dir, "flip.mtc");
    size_t size;
    unsigned char *f = save_small(p, &size);
    mtc_ckpt orig;
    mtc_err e0 = {0};
    assert_int_equal(mtc_ckpt_load(p, &orig, &e0), 0);
    mtc_rng r;
    mtc_rng_seed(&r, 2024);
    int same = 0;
    for (int it = 0; it < 2000; it++) {
        size_t at = (size_t)mtc_rng_below(&r, size);
        int bit = (int)mtc_rng_below(&r, 8);
        f[at] ^= (unsigned char)(1u << bit);
        assert_int_equal(tu_write(q, f, size), 0);
        f[at] ^= (unsigned char)(1u << bit);
        mtc_ckpt c;
        mtc_err e = {0};
        int rc = mtc_ckpt_load(q, &c, &e);
        if (rc == MTC_OK) {
            mtc_ckpt_free(&c);
            fail_msg("flip of bit %d at byte %zu loaded", bit, at);
        }
        if (rc != MTC_EINPUT) fail_msg("flip of bit %d at byte %zu: rc %d", bit, at, rc);
        assert_non_null(strstr(e.msg, q));
    }
    assert_int_equal(same, 0);
    /* the last deflate byte of each section holds the final padding bits */
    for (int k = 0; k < 4; k++) {
        size_t off = section_at(f, size, k);
        uint32_t n = rd32(f + off);
        size_t last = off + 28 + n + (size_t)rd64(f + off + 12 + n) - 5;
        for (int bit = 0; bit < 8; bit++) {
            f[last] ^= (unsigned char)(1u << bit);
            assert_int_equal(tu_write(q, f, size), 0);
            f[last] ^= (unsigned char)(1u << bit);
            mtc_ckpt c;
            mtc_err e = {0};
            if (mtc_ckpt_load(q, &c, &e) != MTC_EINPUT)
                fail_msg("flip of bit %d in the last deflate byte of section %d loaded", bit, k);
        }
    }
    assert_true(same <= 20); /* at most 1% decode to identical bytes */
    mtc_ckpt_free(&orig);
    /* the named CRC message from the spec */
    size_t t0 = section_at(f, size, 2);
    uint32_t n = rd32(f + t0);
    f[t0 + 28 + n + 3] ^= 0x10; /* inside the zlib data of the first tensor */
    assert_int_equal(tu_write(q, f, size), 0);
    mtc_ckpt c;
    mtc_err e = {0};
    assert_int_equal(mtc_ckpt_load(q, &c, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "section 'tensor:trunk.0.dense.weight'"));
    free(f);
    free(p);
    free(q);
    tu_rmdir(dir);
    free(dir);
}

/* Caps the address space at current use + 512 MiB so a huge allocation
 * would fail (and show up as ENOMEM, not EINPUT). Not under ASan, whose
 * shadow memory needs the whole address space. */
#if defined(__SANITIZE_ADDRESS__)
#define CAP_MEMORY 0
#else
#define CAP_MEMORY 1
#endif
static struct rlimit cap_memory(void)
{
    struct rlimit old;
    getrlimit(RLIMIT_AS, &old);
    if (!CAP_MEMORY) return old;
    long vm_kb = 0;
    FILE *s = fopen("/proc/self/status", "r");
    char line[256];
    while (s && fgets(line, sizeof line, s))
        if (sscanf(line, "VmSize: %ld kB", &vm_kb) == 1) break;
    if (s) fclose(s);
    struct rlimit lim = old;
    lim.rlim_cur = (rlim_t)vm_kb * 1024 + ((rlim_t)512 << 20);
    if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < lim.rlim_cur) lim.rlim_cur = old.rlim_cur;
    setrlimit(RLIMIT_AS, &lim);
    return old;
}

static void expect_lie_rejected(const char *q, const unsigned char *f, size_t size,
                                const char *what)
{
    assert_int_equal(tu_write(q, f, size), 0);
    mtc_ckpt c;
    mtc_err e = {0};
    int rc = mtc_ckpt_load(q, &c, &e);
    if (rc != MTC_EINPUT) fail_msg("%s: rc %d (%s)", what, rc, e.msg);
    assert_non_null(strstr(e.msg, q));
    char *out = NULL;
    size_t outn = 0;
    FILE *o = open_memstream(&out, &outn);
    rc = mtc_ckpt_inspect(q, 0, o, &e);
    fclose(o);
    if (rc != MTC_EINPUT) fail_msg("inspect %s: rc %d", what, rc);
    assert_int_equal(outn, 0); /* nothing printed for a bad file */
    free(out);
}

static void test_ckpt_lying_lengths_fail_before_allocating(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "ok.mtc"), *q = tu_path(dir, "lie.mtc");
    size_t size;
    unsigned char *f = save_small(p, &size);
    const uint64_t lies[] = {0xFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull, 1ull << 63, 1ull << 62,
                             MTC_SECTION_MAX, MTC_SECTION_MAX + 1, MTC_SECTION_MAX - 1,
                             (uint64_t)size * 2000, (uint64_t)size + 1};
    struct rlimit old = cap_memory();
    for (int k = 0; k < 5; k++) { /* spec, meta, two tensors, end */
        size_t off = section_at(f, size, k);
        assert_true(off > 0);
        uint32_t n = rd32(f + off);
        unsigned char save[40];
        memcpy(save, f + off, 4);
        memcpy(save + 4, f + off + 4 + n, 24);
        for (size_t l = 0; l < sizeof lies / sizeof lies[0]; l++) {
            char what[96];
            wr32(f + off, (uint32_t)lies[l]); /* name_len: no CRC fix can help */
            snprintf(what, sizeof what, "section %d name_len %llx", k, (unsigned long long)lies[l]);
            expect_lie_rejected(q, f, size, what);
            memcpy(f + off, save, 4);
            for (int field = 0; field < 2; field++) { /* raw_len, comp_len */
                wr64(f + off + 4 + n + 8 * field, lies[l]);
                fix_hcrc(f, off);
                snprintf(what, sizeof what, "section %d %s %llx", k,
                         field ? "comp_len" : "raw_len", (unsigned long long)lies[l]);
                expect_lie_rejected(q, f, size, what);
                memcpy(f + off + 4 + n, save + 4, 24);
            }
        }
    }
    setrlimit(RLIMIT_AS, &old);

    /* lying tensor payloads, written through a valid container */
    struct {
        const char *what;
        unsigned char hdr[20];
        size_t n;
    } bad[] = {
        {"dims 2^32-1 x4", {0, 4, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}, 20},
        {"dims 2^32-1 s8", {1, 2, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255}, 12},
        {"dims one byte short", {2, 1, 0, 0, 9, 0, 0, 0}, 8},
        {"ndim 0", {0, 0, 0, 0}, 4},
        {"ndim 5", {0, 5, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0}, 20},
        {"dtype 9", {9, 1, 0, 0, 1, 0, 0, 0}, 8},
        {"reserved", {0, 1, 1, 0, 1, 0, 0, 0}, 8},
        {"short header", {0, 2, 0, 0, 1, 0, 0, 0}, 8},
        {"3 bytes", {0, 1, 0}, 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mtc_cwriter w;
        mtc_err e = {0};
        unsigned char payload[40] = {0};
        memcpy(payload, bad[i].hdr, bad[i].n);
        assert_int_equal(mtc_cwriter_open(&w, q, "MTC1", &e), 0);
        size_t len = bad[i].n < 4 ? bad[i].n : bad[i].n + 8; /* 8 bytes of data */
        assert_int_equal(mtc_cwriter_section(&w, "tensor:x", payload, len, &e), 0);
        assert_int_equal(mtc_cwriter_commit(&w, &e), 0);
        mtc_ckpt c;
        int rc = mtc_ckpt_load(q, &c, &e);
        if (rc != MTC_EINPUT) fail_msg("%s: rc %d", bad[i].what, rc);
        assert_non_null(strstr(e.msg, "tensor '"));
    }
    /* meta that is not a JSON object */
    mtc_cwriter w;
    mtc_err e = {0};
    assert_int_equal(mtc_cwriter_open(&w, q, "MTC1", &e), 0);
    assert_int_equal(mtc_cwriter_section(&w, "meta", "[1,2", 4, &e), 0);
    assert_int_equal(mtc_cwriter_commit(&w, &e), 0);
    mtc_ckpt c;
    assert_int_equal(mtc_ckpt_load(q, &c, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "metadata"));
    free(f);
    free(p);
    free(q);
    tu_rmdir(dir);
    free(dir);
}

static void test_ckpt_bad_magic_and_version(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "x.mtc");
    mtc_ckpt c;
    mtc_err e = {0};
    assert_int_equal(tu_write(p, "PK\3\4 this is a zip file", 24), 0);
    assert_int_equal(mtc_ckpt_load(p, &c, &e), MTC_EINPUT);
    char want[4200];
    snprintf(want, sizeof want, "%s: not an mtc checkpoint (bad magic)", p);
    assert_string_equal(e.msg, want);
    size_t size;
    unsigned char *f = save_small(p, &size);
    f[4] = 2;
    assert_int_equal(tu_write(p, f, size), 0);
    assert_int_equal(mtc_ckpt_load(p, &c, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "version 2"));
    assert_int_equal(mtc_ckpt_load(dir, &c, &e), MTC_EINPUT); /* a folder */
    free(f);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

static void test_ckpt_failed_save_leaves_previous_file(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "keep.mtc");
    size_t size, size2;
    unsigned char *orig = save_small(p, &size), *now;
    mtc_err e = {0};
    mtc_ckpt c;
    make_small(&c);

    /* 1. a real write error: file-size limit, 256 KiB tensor */
    size_t big = 65536;
    float *w = malloc(big * sizeof *w);
    fill_random(w, big * sizeof *w, 9);
    int64_t dims[1] = {(int64_t)big};
    assert_int_equal(mtc_ckpt_add(&c, "big", MTC_F32, 1, dims, w, &e), 0);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 16384;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = mtc_ckpt_save(p, &c, &e);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_sig);
    assert_int_equal(rc, MTC_EIO);
    assert_non_null(strstr(e.msg, p));
    now = tu_read(p, &size2);
    assert_int_equal(size2, size);
    assert_memory_equal(now, orig, size);
    free(now);
    assert_int_equal(files_in(dir), 1); /* temp file removed */

    /* 2. invalid content found mid-way (after sections were written) */
    c.tensors[c.ntensors - 1].dtype = (mtc_dtype)7;
    assert_int_equal(mtc_ckpt_save(p, &c, &e), MTC_EINPUT);
    now = tu_read(p, &size2);
    assert_int_equal(size2, size);
    assert_memory_equal(now, orig, size);
    free(now);
    assert_int_equal(files_in(dir), 1);
    c.tensors[c.ntensors - 1].dtype = MTC_F32;

    /* 3. a folder path and a missing folder */
    char *sub = tu_path(dir, "sub"), *missing = tu_path(dir, "missing/x.mtc");
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(mtc_ckpt_save(sub, &c, &e), MTC_EIO);
    assert_non_null(strstr(e.msg, sub));
    struct stat sb;
    assert_int_equal(stat(sub, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(mtc_ckpt_save(missing, &c, &e), MTC_EIO);
    assert_non_null(strstr(e.msg, missing));
    assert_int_equal(files_in(dir), 2); /* keep.mtc + sub */
    mtc_ckpt d;
    assert_int_equal(mtc_ckpt_load(p, &d, &e), 0);
    assert_int_equal(d.ntensors, 2);
    mtc_ckpt_free(&d);
    mtc_ckpt_free(&c);
    free(w);
    free(orig);
    free(sub);
    free(missing);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* ---- inspect ------------------------------------------------------------------ */
/* What `mtc inspect` prints for path (text, or JSON with json = 1); the
 * call must succeed. *n gets the length; free() the result. */
/* noinline: inlined, GCC 12 takes pointers into the text for pointers to
 * the local that open_memstream fills (a false -Wdangling-pointer) */
__attribute__((noinline)) static char *inspect_out(const char *path, int json, size_t *n)
{
    char *out = NULL;
    mtc_err e = {0};
    FILE *o = open_memstream(&out, n);
    assert_non_null(o);
    int rc = mtc_ckpt_inspect(path, json, o, &e);
    fclose(o);
    if (rc) fail_msg("inspect %s: %s", path, e.msg);
    return out;
}

static void test_inspect_reports_tensors_and_sparsity(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "ok.mtc");
    size_t size;
    free(save_small(p, &size));
    size_t n = 0;
    mtc_err e = {0};
    char *out = inspect_out(p, 0, &n);
    assert_non_null(strstr(out, "trunk.0.dense.weight"));
    assert_non_null(strstr(out, "3x4"));
    assert_non_null(strstr(out, "0.3333"));
    assert_non_null(strstr(out, "\"stage\": \"teacher\""));
    free(out);

    out = inspect_out(p, 1, &n);
    mtc_json j;
    assert_int_equal(mtc_json_parse(out, n, &j, &e), 0);
    const mtc_json *t = mtc_json_get(&j, "tensors");
    assert_non_null(t);
    assert_int_equal(t->n, 2);
    assert_string_equal(mtc_json_str(&t->items[0], "name"), "trunk.0.dense.weight");
    assert_string_equal(mtc_json_str(&t->items[0], "dtype"), "f32");
    assert_true(mtc_json_num(&t->items[0], "sparsity", -1) == 4.0 / 12.0);
    assert_true(mtc_json_num(&t->items[1], "sparsity", -1) == 1.0 / 3.0);
    assert_true(mtc_json_num(&j, "parameters", 0) == 15);
    assert_string_equal(mtc_json_str(mtc_json_get(&j, "meta"), "stage"), "teacher");
    mtc_json_free(&j);
    free(out);
    free(p);
    tu_rmdir(dir);
    free(dir);
}

/* A layer stored as bitmask + values shows as one weight tensor with its
 * spec weight count, kept weights and sparsity; every tensor shows the
 * bytes its section takes in the file. */
static void test_inspect_shows_bitmask_weights_with_sparsity_and_stored_bytes(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "pruned.mtc"), *q = tu_path(dir, "nospec.mtc");
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model("[input] shape = 5\n[dense] units = 3\n[task y] kind = cls classes = 2\n", &m, 1, &e), 0);
    m.mask = malloc((size_t)m.nparams * sizeof(float));
    for (int64_t i = 0; i < m.nparams; i++) m.mask[i] = 1.0f;
    const mtc_layer *L = &m.trunk[0].layers[0]; /* 15 weights: 5 pruned */
    for (int64_t i = 0; i < L->nw; i += 3) m.mask[L->w_off + i] = m.params[L->w_off + i] = 0.0f;
    assert_int_equal(mtc_model_save(&m, p, "{}", &e), 0);
    mtc_model_free(&m);

    size_t n = 0;
    char *out = inspect_out(p, 0, &n);
    assert_non_null(strstr(out, "bitmask + values"));
    assert_non_null(strstr(out, "stored bytes"));
    const char *row = strstr(out, "\ntrunk.0.dense.weight ");
    assert_non_null(row);
    long long weights, kept, dense;
    double sparsity;
    assert_int_equal(sscanf(row, " trunk.0.dense.weight %lld %lld %lf %lld", &weights, &kept, &sparsity, &dense), 4);
    assert_int_equal(weights, 15);
    assert_int_equal(kept, 10);
    assert_true(fabs(sparsity - 1.0 / 3.0) < 1e-4);
    assert_int_equal(dense, 60);
    free(out);

    out = inspect_out(p, 1, &n);
    mtc_json j;
    assert_int_equal(mtc_json_parse(out, n, &j, &e), 0);
    const mtc_json *sw = mtc_json_get(&j, "sparse_weights"), *t = mtc_json_get(&j, "tensors"),
                   *secs = mtc_json_get(&j, "sections");
    assert_int_equal(sw->n, 2); /* the dense layer and the output layer */
    assert_string_equal(mtc_json_str(&sw->items[0], "name"), "trunk.0.dense.weight");
    assert_true(mtc_json_num(&sw->items[0], "weights", -1) == 15);
    assert_true(mtc_json_num(&sw->items[0], "kept", -1) == 10);
    assert_true(mtc_json_num(&sw->items[0], "sparsity", -1) == 1.0 - 10.0 / 15.0);
    assert_true(mtc_json_num(&sw->items[1], "sparsity", -1) == 0.0);
    double both = 0;
    for (int i = 0; i < t->n; i++) { /* a tensor's stored bytes = its section's */
        char sec[160];
        snprintf(sec, sizeof sec, "tensor:%s", mtc_json_str(&t->items[i], "name"));
        int found = 0;
        for (int k = 0; k < secs->n; k++)
            if (!strcmp(mtc_json_str(&secs->items[k], "name"), sec)) {
                assert_true(mtc_json_num(&t->items[i], "stored_bytes", -1) ==
                            mtc_json_num(&secs->items[k], "stored_bytes", -2));
                found = 1;
            }
        assert_true(found);
        if (!strncmp(sec, "tensor:trunk.0.dense.weight_", 28)) both += mtc_json_num(&t->items[i], "stored_bytes", 0);
    }
    assert_true(both > 0 && mtc_json_num(&sw->items[0], "stored_bytes", -1) == both);
    mtc_json_free(&j);
    free(out);

    /* without a spec that parses the weight count is unknown, not guessed */
    mtc_ckpt c;
    assert_int_equal(mtc_ckpt_load(p, &c, &e), 0);
    assert_int_equal(mtc_ckpt_set_text(&c.spec, "not a spec"), 0);
    assert_int_equal(mtc_ckpt_save(q, &c, &e), 0);
    mtc_ckpt_free(&c);
    out = inspect_out(q, 1, &n);
    assert_int_equal(mtc_json_parse(out, n, &j, &e), 0);
    sw = mtc_json_get(&j, "sparse_weights");
    assert_int_equal(sw->n, 2);
    assert_int_equal(mtc_json_get(&sw->items[0], "weights")->type, MTC_JNULL);
    assert_true(mtc_json_num(&sw->items[0], "kept", -1) == 10);
    mtc_json_free(&j);
    free(out);
    free(p); free(q);
    tu_rmdir(dir);
    free(dir);
}

static void test_inspect_cli_exit_codes_and_json(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "ok.mtc"), *q = tu_path(dir, "cut.mtc");
    size_t size;
    unsigned char *f = save_small(p, &size);
    assert_int_equal(tu_write(q, f, size - 5), 0);
    char args[8400], *out, *err;

    snprintf(args, sizeof args, "inspect '%s'", p);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    assert_non_null(strstr(out, "trunk.0.dense.weight"));
    assert_non_null(strstr(out, "trunk.0.dense.bias"));
    free(out); free(err);

    snprintf(args, sizeof args, "inspect '%s' --json", p);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 0);
    mtc_json j;
    mtc_err e = {0};
    assert_int_equal(mtc_json_parse(out, strlen(out), &j, &e), 0);
    assert_int_equal(mtc_json_get(&j, "tensors")->n, 2);
    mtc_json_free(&j);
    free(out); free(err);

    snprintf(args, sizeof args, "inspect '%s'", q);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_string_equal(out, "");
    assert_true(!strncmp(err, "mtc inspect: ", 13));
    assert_non_null(strstr(err, q));
    assert_non_null(strstr(err, "truncated"));
    assert_non_null(strchr(err, '\n'));
    assert_string_equal(strchr(err, '\n'), "\n"); /* one line */
    free(out); free(err);

    assert_int_equal(tu_run_mtc(dir, "inspect", &out, &err), 2);
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "inspect --help", &out, &err), 0);
    assert_non_null(strstr(out, "--json"));
    free(out); free(err);
    free(f);
    free(p);
    free(q);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_container_round_trip_small_empty_big_streamed),
        cmocka_unit_test(test_container_accepts_every_kind_of_deflate_output),
        cmocka_unit_test(test_container_streams_many_chunks_to_disk),
        cmocka_unit_test(test_container_rejects_bad_names_and_duplicates),
        cmocka_unit_test(test_ckpt_round_trip_every_dtype_and_rank),
        cmocka_unit_test(test_ckpt_add_replaces_same_name_and_validates),
        cmocka_unit_test(test_ckpt_every_truncation_fails_naming_the_file),
        cmocka_unit_test(test_ckpt_random_bit_flips_fail_or_decode_identically),
        cmocka_unit_test(test_ckpt_lying_lengths_fail_before_allocating),
        cmocka_unit_test(test_ckpt_bad_magic_and_version),
        cmocka_unit_test(test_ckpt_failed_save_leaves_previous_file),
        cmocka_unit_test(test_inspect_reports_tensors_and_sparsity),
        cmocka_unit_test(test_inspect_shows_bitmask_weights_with_sparsity_and_stored_bytes),
        cmocka_unit_test(test_inspect_cli_exit_codes_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
