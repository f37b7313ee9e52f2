/*
 * test_fuzz.c — a short, seeded mutation fuzz of every parser, in process,
 * without clang: valid seed files (fuzz/fuzz_common.h, the same seeds
 * `make fuzz` starts from) are mutated by a small deterministic mutator
 * (bit flips, interesting bytes, insert/delete/duplicate, truncation, length
 * fields that lie, huge numbers in text) and each mutant goes through the
 * parser. Every call must return 0 or an error code with a one-line message;
 * `make sanitize` runs this under ASan+UBSan for leaks and overflows.
 * Also the regression tests of the size-limit fixes found by the audit.
 */
#include "tests/testutil.h"
#include "fuzz/fuzz_common.h"

#include <cmocka.h>
#include <dirent.h>
#include <time.h>
#include <zlib.h>

#define MUTANTS_PER_PARSER 5000
#define SECONDS_PER_PARSER 1.0
#define MAX_SEEDS 8

typedef struct seed {
    unsigned char *b;
    size_t n;
} seed;

typedef struct fuzz_env {
    char *dir;
    fz_fixture fx;
} fuzz_env;

static int env_setup(void **state)
{
    fuzz_env *env = calloc(1, sizeof *env);
    env->dir = tu_mkdtemp();
    char *csv = tu_path(env->dir, "fixture.csv");
    mtc_err e = {0};
    int rc = fz_fixture_open(&env->fx, csv, &e);
    free(csv);
    if (rc) {
        fprintf(stderr, "fixture: %s\n", e.msg);
        return -1;
    }
    *state = env;
    return 0;
}

static int env_teardown(void **state)
{
    fuzz_env *env = *state;
    fz_fixture_close(&env->fx);
    tu_rmdir(env->dir);
    free(env->dir);
    free(env);
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seeds of one parser: made in dir/seeds-<parser>, read back into memory. */
static int load_seeds(fuzz_env *env, const char *which, seed *s)
{
    char sub[64];
    snprintf(sub, sizeof sub, "seeds-%s", which);
    char *dir = tu_path(env->dir, sub);
    assert_int_equal(mkdir(dir, 0700), 0);
    mtc_err e = {0};
    if (fz_make_seeds(which, dir, &env->fx, &e)) fail_msg("seeds of %s: %s", which, e.msg);
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    int n = 0;
    struct dirent *de;
    char *names[MAX_SEEDS];
    while ((de = readdir(dp)) && n < MAX_SEEDS)
        if (de->d_name[0] != '.') names[n++] = strdup(de->d_name);
    closedir(dp);
    /* readdir order is the file system's: sort for a deterministic run */
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++)
            if (strcmp(names[k], names[i]) < 0) { char *t = names[i]; names[i] = names[k]; names[k] = t; }
    for (int i = 0; i < n; i++) {
        char *p = tu_path(dir, names[i]);
        s[i].b = tu_read(p, &s[i].n);
        assert_non_null(s[i].b);
        free(p);
        free(names[i]);
    }
    free(dir);
    return n;
}

/* ---- the mutator ---------------------------------------------------------------- */
typedef struct buf {
    unsigned char *b;
    size_t n, cap;
} buf;

static void buf_reserve(buf *m, size_t n)
{
    if (n <= m->cap) return;
    m->cap = n * 2;
    m->b = realloc(m->b, m->cap);
    assert_non_null(m->b);
}

static void put_bytes(buf *m, size_t at, const void *src, size_t k)
{
    if (at > m->n) at = m->n;
    buf_reserve(m, m->n + k);
    memmove(m->b + at + k, m->b + at, m->n - at);
    memcpy(m->b + at, src, k);
    m->n += k;
}

static const uint64_t lies[] = {0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000u,
                                0xffffffffu, 0x100000000ull, 0x7fffffffffffffffull,
                                0xffffffffffffffffull, 4096, 65536, 1u << 24};
static const char *const words[] = {"99999999999999999999", "1e308", "-1", "nan", "inf", "0",
                                    "65536", "4294967296", "\"", ",", "\n", "\r\n", "[", "]",
                                    "{", "}", "=", "x", "\\u0000", "\\ud800", "[task a]", "[dense]",
                                    "units = 1048576", "\xff\xfe", "-0", "1e-400"};

/* One to four random edits of m, drawn from r only. */
static void mutate(buf *m, mtc_rng *r)
{
    int edits = 1 + (int)mtc_rng_below(r, 4);
    for (int k = 0; k < edits; k++) {
        size_t n = m->n;
        uint64_t op = mtc_rng_below(r, 10);
        size_t at = n ? (size_t)mtc_rng_below(r, n) : 0;
        if (n && mtc_rng_below(r, 3) == 0) at = (size_t)mtc_rng_below(r, n < 64 ? n : 64); /* headers */
        switch (op) {
        case 0: /* bit flip */
            if (n) m->b[at] ^= (unsigned char)(1u << mtc_rng_below(r, 8));
            break;
        case 1: { /* interesting byte */
            static const unsigned char v[] = {0, 1, 0x7f, 0x80, 0xff, '0', '9', '"', ',', '\n'};
            if (n) m->b[at] = v[mtc_rng_below(r, sizeof v)];
            break;
        }
        case 2: { /* insert random bytes */
            unsigned char tmp[16];
            size_t k2 = 1 + (size_t)mtc_rng_below(r, sizeof tmp);
            for (size_t i = 0; i < k2; i++) tmp[i] = (unsigned char)mtc_rng_u64(r);
            put_bytes(m, at, tmp, k2);
            break;
        }
        case 3: { /* delete a range */
            size_t k2 = n ? 1 + (size_t)mtc_rng_below(r, n - at < 32 ? n - at : 32) : 0;
            memmove(m->b + at, m->b + at + k2, n - at - k2);
            m->n -= k2;
            break;
        }
        case 4: /* truncate */
            m->n = at;
            break;
        case 5: { /* duplicate a range */
            if (!n) break;
            size_t k2 = 1 + (size_t)mtc_rng_below(r, n - at < 64 ? n - at : 64);
            unsigned char *tmp = malloc(k2);
            memcpy(tmp, m->b + at, k2);
            put_bytes(m, (size_t)mtc_rng_below(r, n + 1), tmp, k2);
            free(tmp);
            break;
        }
        case 6: case 7: { /* a length field that lies: 1/2/4/8 bytes, LE or BE */
            uint64_t v = lies[mtc_rng_below(r, sizeof lies / sizeof *lies)];
            if (mtc_rng_below(r, 4) == 0) v += mtc_rng_below(r, 16) - 8;
            size_t w = (size_t)1 << mtc_rng_below(r, 4);
            int be = (int)mtc_rng_below(r, 2);
            if (n < w) break;
            if (at > n - w) at = n - w;
            for (size_t i = 0; i < w; i++)
                m->b[at + i] = (unsigned char)(v >> (8 * (be ? w - 1 - i : i)));
            break;
        }
        default: { /* a token: huge numbers, quotes, section headers */
            const char *wd = words[mtc_rng_below(r, sizeof words / sizeof *words)];
            if (n && mtc_rng_below(r, 2)) { /* replace a digit run or one byte */
                size_t e = at;
                while (e < n && m->b[e] >= '0' && m->b[e] <= '9') e++;
                if (e == at) e = at + 1;
                memmove(m->b + at, m->b + e, n - e);
                m->n -= e - at;
            }
            put_bytes(m, at, wd, strlen(wd));
            break;
        }
        }
    }
}

/* Runs `which` on its seeds, then on mutants until the count or the time
 * budget is reached. */
static void fuzz_parser(void **state, const char *which, uint64_t seed_value)
{
    fuzz_env *env = *state;
    seed seeds[MAX_SEEDS];
    int ns = load_seeds(env, which, seeds);
    assert_true(ns >= 2);
    /* scratch files on tmpfs when there is one: packed containers are
     * committed with fsync for every mutant */
    char scratch[256];
    snprintf(scratch, sizeof scratch, "%s/mtc-test-fuzz-%ld-%s", fz_tmpdir(), (long)getpid(), which);
    mtc_rng r;
    mtc_rng_seed(&r, seed_value);
    buf m = {0};
    int ok = 0, refused = 0, runs = 0;
    double t0 = now_s();
    for (int i = -ns; i < MUTANTS_PER_PARSER; i++) {
        const seed *s = &seeds[i < 0 ? i + ns : (int)mtc_rng_below(&r, (uint64_t)ns)];
        buf_reserve(&m, s->n + 1);
        memcpy(m.b, s->b, s->n);
        m.n = s->n;
        if (i >= 0) mutate(&m, &r);
        mtc_err e = {0};
        int rc = fz_run(which, m.b, m.n, scratch, &env->fx, &e);
        if (rc > 0) {
            if (rc >= MTC_EINTERNAL || !e.msg[0] || strchr(e.msg, '\n'))
                fail_msg("%s: mutant %d: code %d, message '%s'", which, i, rc, e.msg);
            refused++;
        } else if (rc == 0) {
            ok++;
        }
        runs++;
        if (i > 100 && now_s() - t0 > SECONDS_PER_PARSER) break;
    }
    print_message("fuzz %-12s %5d runs: %d parsed, %d refused, %.2f s\n", which, runs, ok,
                  refused, now_s() - t0);
    assert_true(refused > 0);
    assert_true(ok > 0);
    free(m.b);
    fz_remove_scratch(scratch);
    for (int i = 0; i < ns; i++) free(seeds[i].b);
}

static void test_fuzz_ckpt_mutants_fail_cleanly(void **s) { fuzz_parser(s, "ckpt", 1); }
static void test_fuzz_softlabels_mutants_fail_cleanly(void **s) { fuzz_parser(s, "softlabels", 2); }
static void test_fuzz_spec_mutants_fail_cleanly(void **s) { fuzz_parser(s, "spec", 3); }
static void test_fuzz_idx_mutants_fail_cleanly(void **s) { fuzz_parser(s, "idx", 4); }
static void test_fuzz_csv_mutants_fail_cleanly(void **s) { fuzz_parser(s, "csv", 5); }
static void test_fuzz_png_mutants_fail_cleanly(void **s) { fuzz_parser(s, "png", 6); }
static void test_fuzz_digits_json_mutants_fail_cleanly(void **s) { fuzz_parser(s, "digits_json", 7); }
static void test_fuzz_json_mutants_fail_cleanly(void **s) { fuzz_parser(s, "json", 8); }
static void test_fuzz_onnx_mutants_fail_cleanly(void **s) { fuzz_parser(s, "onnx", 9); }
static void test_fuzz_safetensors_mutants_fail_cleanly(void **s) { fuzz_parser(s, "safetensors", 10); }

/* ---- regressions found by fuzz_csv (--shard-data's reader) -------------------------
 * An absent task column reached the census's class vocabulary (hdr[-1]);
 * an empty block's names reached qsort as NULL; an id above 65535 after a
 * class name was refused by a shard though the whole file (names: the id
 * is one more name) opens. fz_run aborts when a shard disagrees. */
static void test_csv_shard_reader_regressions(void **state)
{
    fuzz_env *env = *state;
    static const struct { const char *b; size_t n; } cases[] = {
        {"\357\273\277a,b,\042x,2\042,y\0121e3,\042 2 \042,3,1[[[[[[[[[[[-[[[[[[dog\0124,\0425\042,6,3333333\000ield\012\012-0.5,3,4,d\377\377\377\377\377\377\377\377\377t\012", 93},
        {"\357\277\277a,\357\273\277,y\012\012", 12},
        {"a,b,c,d,9,z\0120.5,0,-0.25,\0420\042,0,0.76\015\0121.5,3,-1.25,\0422\042,1,2.75\015\0122.5,6,-2.25,\0424\042,2,4.75\015\012.25,\0420\042,0,0.75\015\0121.53d\042og,-3.25,\0421\042,0,6.75\015\0124.5,12,-0.25,\0423\042,1,8.75\015\0125.5,15,-1.25,\0420\042\0204\013\000\020a\000\000\015\0126.525,\0420\042,1,20.75\015\01211.5,33,-3.25,\0422\042,2,22.75\015\012", 224}
    };
    char scratch[256];
    snprintf(scratch, sizeof scratch, "%s/mtc-test-fuzz-%ld-csvreg", fz_tmpdir(), (long)getpid());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mtc_err e = {0};
        int rc = fz_run("csv", (const uint8_t *)cases[i].b, cases[i].n, scratch, &env->fx, &e);
        if (rc > 0 && (rc >= MTC_EINTERNAL || !e.msg[0])) fail_msg("case %zu: code %d '%s'", i, rc, e.msg);
    }
    fz_remove_scratch(scratch);
}

/* ---- regressions of the size-limit audit ------------------------------------------- */

/* A checkpoint whose spec asks for ~2^41 parameters but holds no tensors:
 * refused before the model's buffers are allocated (ASan would abort on
 * the allocation). */
static void test_ckpt_spec_larger_than_file_is_refused_before_allocating(void **state)
{
    fuzz_env *env = *state;
    char *p = tu_path(env->dir, "huge-spec.mtc");
    mtc_ckpt c = {0};
    assert_int_equal(mtc_ckpt_set_text(&c.spec, "[input] shape = 65536\n[dense] units = 1048576\n"
                                                "[dense] units = 1048576\n[task y] kind = cls classes = 3\n"), 0);
    mtc_err e = {0};
    assert_int_equal(mtc_ckpt_save(p, &c, &e), 0);
    mtc_ckpt_free(&c);
    mtc_model m;
    assert_int_equal(mtc_model_load(p, &m, NULL, &e), MTC_EINPUT);
    print_message("%s\n", e.msg);
    assert_non_null(strstr(e.msg, "the spec needs"));
    assert_non_null(strstr(e.msg, p));
    free(p);
}

/* A soft-label header promising 2^24-wide hints and no chunks at all: the
 * missing chunk is reported before n x 2^24 floats are allocated. */
static void test_softlabels_missing_chunks_refused_before_allocating(void **state)
{
    fuzz_env *env = *state;
    char *p = tu_path(env->dir, "lying.mtl");
    char hdr[1024];
    const mtc_dataset *d = &env->fx.d;
    snprintf(hdr, sizeof hdr,
             "{\"version\":1,\"data\":{\"name\":\"%s\",\"split\":\"%s\",\"n\":%lld,\"hash\":\"%016llx\"},"
             "\"tasks\":[{\"name\":\"y\",\"kind\":\"cls\",\"dim\":3},{\"name\":\"z\",\"kind\":\"reg\",\"dim\":1}],"
             "\"dtype\":\"f32\",\"rows_per_chunk\":1,\"chunks\":%lld,\"hints\":16777216}",
             d->name, d->split, (long long)d->n, (unsigned long long)d->hash, (long long)d->n);
    mtc_cwriter w;
    mtc_err e = {0};
    assert_int_equal(mtc_cwriter_open(&w, p, "MTL1", &e), 0);
    assert_int_equal(mtc_cwriter_section(&w, "header", hdr, strlen(hdr), &e), 0);
    assert_int_equal(mtc_cwriter_commit(&w, &e), 0);
    mtc_soft s;
    float *hints = NULL;
    int hd = 0;
    assert_int_equal(mtc_soft_read(p, &env->fx.m, d, 0, &s, &hints, &hd, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "'chunk:0' missing"));
    assert_null(hints);
    free(p);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (24 - 8 * i));
}

/* PNG chunk: length, type, data, CRC over type+data. */
static size_t png_chunk(unsigned char *o, const char *type, const unsigned char *d, uint32_t n)
{
    put_be32(o, n);
    memcpy(o + 4, type, 4);
    if (n) memcpy(o + 8, d, n);
    put_be32(o + 8 + n, (uint32_t)crc32(crc32(0, (const Bytef *)type, 4), d, n));
    return 12 + n;
}

/* A 60-byte PNG claiming 16384 x 4096 gray pixels: refused from its header,
 * not after a 64 MiB buffer was allocated and libpng ran out of data. */
static void test_png_header_larger_than_file_is_refused(void **state)
{
    fuzz_env *env = *state;
    unsigned char f[256], ihdr[13] = {0}, idat[16];
    memcpy(f, "\x89PNG\r\n\x1a\n", 8);
    put_be32(ihdr, 16384);
    put_be32(ihdr + 4, 4096);
    ihdr[8] = 8; /* depth 8, gray, deflate, no filter, no interlace */
    size_t n = 8 + png_chunk(f + 8, "IHDR", ihdr, 13);
    uLongf cl = sizeof idat;
    unsigned char zero[4] = {0};
    assert_int_equal(compress(idat, &cl, zero, sizeof zero), Z_OK);
    n += png_chunk(f + n, "IDAT", idat, (uint32_t)cl);
    n += png_chunk(f + n, "IEND", NULL, 0);
    char *p = tu_path(env->dir, "huge.png");
    assert_int_equal(tu_write(p, f, n), 0);
    int h, w;
    uint8_t *px = NULL;
    mtc_err e = {0};
    assert_int_equal(mtc_png_read_gray(p, &h, &w, &px, &e), MTC_EINPUT);
    assert_null(px);
    assert_non_null(strstr(e.msg, "cannot come from"));
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_ckpt_mutants_fail_cleanly),
        cmocka_unit_test(test_fuzz_softlabels_mutants_fail_cleanly),
        cmocka_unit_test(test_fuzz_spec_mutants_fail_cleanly),
        cmocka_unit_test(test_fuzz_idx_mutants_fail_cleanly),
        cmocka_unit_test(test_fuzz_csv_mutants_fail_cleanly),
        cmocka_unit_test(test_csv_shard_reader_regressions),
        cmocka_unit_test(test_fuzz_png_mutants_fail_cleanly),
        cmocka_unit_test(test_fuzz_digits_json_mutants_fail_cleanly),
        cmocka_unit_test(test_fuzz_json_mutants_fail_cleanly),
        cmocka_unit_test(test_fuzz_onnx_mutants_fail_cleanly),
        cmocka_unit_test(test_fuzz_safetensors_mutants_fail_cleanly),
        cmocka_unit_test(test_ckpt_spec_larger_than_file_is_refused_before_allocating),
        cmocka_unit_test(test_softlabels_missing_chunks_refused_before_allocating),
        cmocka_unit_test(test_png_header_larger_than_file_is_refused),
    };
    return cmocka_run_group_tests(tests, env_setup, env_teardown);
}
