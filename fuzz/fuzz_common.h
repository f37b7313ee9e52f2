/*
 * fuzz_common.h — shared by the libFuzzer targets (fuzz/fuzz_*.c), the seed
 * corpus generator (fuzz/make_corpus.c) and the in-process mutation test
 * (tests/test_fuzz.c): the fixture data set and model, the per-process temp
 * files, the container "pack" format and the seed files of every parser.
 *
 * Header-only (static inline) so that each user compiles it with its own
 * compiler and flags; nothing here is part of libmtc.
 *
 * Container pack format: checkpoints and soft-label files carry CRCs, so a
 * blind mutation almost never gets past the container. An input starting
 * with 'P' is therefore a list of sections, each
 *   u8 name_len, name, u32 payload_len (LE, clipped to what is left), payload
 * which the harness writes as a valid container (right CRCs) before loading:
 * mutations then reach the tensor, JSON header and spec parsers behind it.
 * Any other input is written as the file itself.
 */
#ifndef MTC_FUZZ_COMMON_H
#define MTC_FUZZ_COMMON_H

#include "mtc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The ten parsers, one fuzz target each. */
static const char *const fz_parsers[] = {"ckpt", "softlabels", "spec", "idx", "csv",
                                         "png", "digits_json", "json", "onnx", "safetensors"};
#define FZ_NPARSERS 10

/* Fixture: a tiny tabular data set and a model that fits it. */
#define FZ_TASKS "y:cls,z:reg"
#define FZ_SPEC                                   \
    "# fuzz fixture\n"                            \
    "[input] shape = 4\n"                         \
    "[dense] units = 6 act = relu\n"              \
    "[head y]\n[dense] units = 3 act = tanh\n"    \
    "[task y] kind = cls classes = 3\n"           \
    "[task z] kind = reg outputs = 1 loss = huber\n"

static inline void fz_csv_text(char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "a,b,c,d,y,z\n");
    for (int r = 0; r < 12 && k < cap; r++)
        k += (size_t)snprintf(buf + k, cap - k, "%d.5,%d,-%d.25,\"%d\",%d,%d.75\r\n", r, r * 3,
                              r % 4, r * 7 % 5, r % 3, r * 2);
}

/* A folder for per-process scratch files: tmpfs when there is one, so the
 * fsync of every committed write costs nothing. */
static inline const char *fz_tmpdir(void)
{
    struct stat st;
    return stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
               ? "/dev/shm" : "/tmp";
}

static inline int fz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* ---- container pack format ------------------------------------------------ */
static inline uint32_t fz_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Writes sections described by d[0..n) (after the 'P') as a container at
 * path. Returns 0 when a file was written, -1 when the description is not
 * writable (bad or duplicate names: the writer refuses them). */
static inline int fz_pack(const uint8_t *d, size_t n, const char *path, const char magic[4])
{
    mtc_cwriter w;
    mtc_err e = {0};
    if (mtc_cwriter_open(&w, path, magic, &e)) return -1;
    w.level = 1;
    size_t i = 0;
    int rc = 0;
    while (!rc && i < n) {
        size_t nl = d[i++];
        if (nl > n - i) nl = n - i;
        char name[256];
        memcpy(name, d + i, nl);
        name[nl] = 0;
        i += nl;
        size_t len = 0;
        if (n - i >= 4) { len = fz_le32(d + i); i += 4; }
        if (len > n - i) len = n - i;
        rc = mtc_cwriter_section(&w, name, d + i, len, &e);
        i += len;
    }
    if (rc) { mtc_cwriter_abort(&w); return -1; }
    return mtc_cwriter_commit(&w, &e) ? -1 : 0;
}

/* The pack description ('P' first) of an existing container; malloc'd. */
static inline uint8_t *fz_unpack(const char *path, const char magic[4], size_t *n)
{
    mtc_creader r;
    mtc_err e = {0};
    if (mtc_creader_open(&r, path, magic, &e)) return NULL;
    size_t cap = 1, len = 1;
    uint8_t *out = malloc(1);
    if (out) out[0] = 'P';
    for (int i = 0; out && i < r.nsections; i++) {
        void *buf;
        uint64_t bl;
        if (mtc_creader_read(&r, i, &buf, &bl, &e)) { free(out); out = NULL; break; }
        size_t nl = strlen(r.sections[i].name), need = len + 1 + nl + 4 + (size_t)bl;
        if (need > cap) {
            uint8_t *no = realloc(out, need * 2);
            if (!no) { free(buf); free(out); out = NULL; break; }
            out = no;
            cap = need * 2;
        }
        out[len++] = (uint8_t)nl;
        memcpy(out + len, r.sections[i].name, nl);
        len += nl;
        for (int b = 0; b < 4; b++) out[len++] = (uint8_t)((uint32_t)bl >> (8 * b));
        memcpy(out + len, buf, (size_t)bl);
        len += (size_t)bl;
        free(buf);
    }
    mtc_creader_close(&r);
    *n = len;
    return out;
}

/* Input bytes -> the file a parser reads: raw, or packed when data[0]=='P'.
 * Returns -1 when there is nothing to parse. */
static inline int fz_container_file(const uint8_t *d, size_t n, const char *path,
                                    const char magic[4])
{
    if (n && d[0] == 'P') return fz_pack(d + 1, n - 1, path, magic);
    return fz_write(path, d, n);
}

/* ---- fixture ---------------------------------------------------------------- */
typedef struct fz_fixture {
    mtc_dataset d;
    mtc_model m;
    int ok;
} fz_fixture;

/* Writes the fixture CSV at csv_path, opens it (train split) and builds the
 * fixture model. */
static inline int fz_fixture_open(fz_fixture *fx, const char *csv_path, mtc_err *e)
{
    memset(fx, 0, sizeof *fx);
    char text[4096], name[4200];
    fz_csv_text(text, sizeof text);
    int rc = mtc_write_file_atomic(csv_path, text, strlen(text), e);
    if (rc) return rc;
    mtc_data_opts o;
    memset(&o, 0, sizeof o);
    if ((rc = mtc_data_parse_csv_tasks(FZ_TASKS, &o, e))) return rc;
    snprintf(name, sizeof name, "csv:%s", csv_path);
    if ((rc = mtc_data_open(name, "train", &o, &fx->d, e))) return rc;
    mtc_spec s;
    if ((rc = mtc_spec_parse(FZ_SPEC, "fixture.cfg", &s, e))) { mtc_data_free(&fx->d); return rc; }
    if ((rc = mtc_model_build(&s, FZ_SPEC, &fx->m, e))) { mtc_data_free(&fx->d); return rc; }
    mtc_model_init_params(&fx->m, 7);
    fx->ok = 1;
    return MTC_OK;
}

static inline void fz_fixture_close(fz_fixture *fx)
{
    if (!fx->ok) return;
    mtc_model_free(&fx->m);
    mtc_data_free(&fx->d);
    fx->ok = 0;
}

/* ---- seed files ---------------------------------------------------------------- */
static inline int fz_seed_put(const char *dir, const char *name, const void *d, size_t n)
{
    char p[8192];
    snprintf(p, sizeof p, "%.4000s/%.4000s", dir, name);
    return fz_write(p, d, n);
}

/* Also stores the pack form of a container seed. */
static inline int fz_seed_pack(const char *dir, const char *file, const char magic[4])
{
    char p[8192], q[8300];
    snprintf(p, sizeof p, "%.4000s/%.4000s", dir, file);
    size_t n;
    uint8_t *b = fz_unpack(p, magic, &n);
    if (!b) return -1;
    snprintf(q, sizeof q, "%.4000s.pack", file);
    int rc = fz_seed_put(dir, q, b, n);
    free(b);
    return rc;
}

/* Writes valid seeds of parser `which` into dir (which must exist). The
 * soft-label seed is made for fx (fixture at the same CSV path as the one
 * the fuzzer will open). Returns 0 or -1 with e set. */
static inline int fz_make_seeds(const char *which, const char *dir, fz_fixture *fx, mtc_err *e)
{
    char p[4200];
    int rc = 0;
    if (!strcmp(which, "ckpt")) {
        snprintf(p, sizeof p, "%s/tiny.mtc", dir);
        if ((rc = mtc_model_save(&fx->m, p, "{\"producer\":\"fuzz\",\"n\":[1,2.5,null]}", e))) return rc;
        if (fz_seed_pack(dir, "tiny.mtc", "MTC1")) return mtc_err_set(e, MTC_EINPUT, "%s: unpack", p);
        /* the same model pruned: weights as bitmask + values */
        float *mask = malloc((size_t)fx->m.nparams * sizeof(float) + 1);
        if (!mask) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        for (int64_t i = 0; i < fx->m.nparams; i++) mask[i] = (float)(i % 3 != 0);
        fx->m.mask = mask;
        snprintf(p, sizeof p, "%s/pruned.mtc", dir);
        rc = mtc_model_save(&fx->m, p, "{}", e);
        fx->m.mask = NULL;
        free(mask);
        if (rc) return rc;
        if (fz_seed_pack(dir, "pruned.mtc", "MTC1")) return mtc_err_set(e, MTC_EINPUT, "%s: unpack", p);
        /* a bare checkpoint with every dtype */
        mtc_ckpt c = {0};
        int64_t dims[2] = {2, 3};
        uint8_t raw[24] = {1, 2, 3, 0, 5, 6};
        mtc_ckpt_set_text(&c.meta, "{}");
        for (int dt = 0; dt <= MTC_F16 && !rc; dt++) {
            char nm[32];
            snprintf(nm, sizeof nm, "t%d", dt);
            rc = mtc_ckpt_add(&c, nm, (mtc_dtype)dt, 2, dims, raw, e);
        }
        snprintf(p, sizeof p, "%s/dtypes.mtc", dir);
        if (!rc) rc = mtc_ckpt_save(p, &c, e);
        mtc_ckpt_free(&c);
        if (!rc && fz_seed_pack(dir, "dtypes.mtc", "MTC1"))
            rc = mtc_err_set(e, MTC_EINPUT, "%s: unpack", p);
        return rc;
    }
    if (!strcmp(which, "softlabels")) {
        mtc_label_cfg c;
        mtc_label_cfg_default(&c);
        c.nteachers = 1;
        c.teachers[0] = &fx->m;
        c.rows_per_chunk = 4;
        c.batch = 3;
        for (int v = 0; v < 2 && !rc; v++) {
            c.f16 = v;
            c.hints = v;
            snprintf(p, sizeof p, "%s/soft%d.mtl", dir, v);
            if ((rc = mtc_soft_write(p, &c, &fx->d, e))) return rc;
            snprintf(p, sizeof p, "soft%d.mtl", v);
            if (fz_seed_pack(dir, p, "MTL1")) rc = mtc_err_set(e, MTC_EINPUT, "%s: unpack", p);
        }
        return rc;
    }
    if (!strcmp(which, "spec")) {
        static const char *mmoe =
            "[input] shape = 1x8x8\n[mmoe] experts = 3\n[conv] filters = 2 size = 3 pad = 1 "
            "act = leaky\n[maxpool] size = 2\n[batchnorm]\n[flatten]\n[dropout] p = 0.1\n"
            "[dense] units = 5\n[layernorm]\n[act] fn = gelu\n"
            "[task a] kind = cls classes = 4 weight = 2 smoothing = 0.1\n"
            "[task b] kind = cls from = a:0,1,1,0\n[task c] kind = bin outputs = 2\n"
            "[task d] kind = reg outputs = 3 loss = huber delta = 0.5 column = dd\n"
            "[head c]\n[avgpool] size = 1\n";
        rc = fz_seed_put(dir, "fixture.cfg", FZ_SPEC, strlen(FZ_SPEC));
        if (!rc) rc = fz_seed_put(dir, "mmoe.cfg", mmoe, strlen(mmoe));
        return rc ? mtc_err_set(e, MTC_EIO, "%s: cannot write seeds", dir) : 0;
    }
    if (!strcmp(which, "idx")) {
        uint8_t px[3 * 4 * 5], lab[3] = {0, 7, 9};
        for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 17);
        const char *names[4] = {"img.gz", "img", "lab.gz", "lab"};
        for (int k = 0; k < 4 && !rc; k++) {
            snprintf(p, sizeof p, "%s/%s", dir, names[k]);
            rc = k < 2 ? mtc_idx_write_images(p, 3, 4, 5, px, e) : mtc_idx_write_labels(p, 3, lab, e);
        }
        return rc;
    }
    if (!strcmp(which, "csv")) {
        char text[4096];
        fz_csv_text(text, sizeof text);
        static const char *strs = "\xef\xbb\xbf" "a,b,\"x,2\",y\n1e3,\" 2 \",3,cat\n\n"
                                  "-0.5,3,4,dog\n4,\"5\",6,cat\n1,2,3,\"d\"\"og\"\n7,8,9,cat\n";
        rc = fz_seed_put(dir, "fixture.csv", text, strlen(text));
        if (!rc) rc = fz_seed_put(dir, "strings.csv", strs, strlen(strs));
        return rc ? mtc_err_set(e, MTC_EIO, "%s: cannot write seeds", dir) : 0;
    }
    if (!strcmp(which, "png")) {
        uint8_t px[6 * 5 * 3];
        for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 29);
        snprintf(p, sizeof p, "%s/gray.png", dir);
        rc = mtc_png_write(p, 6, 5, 1, px, e);
        snprintf(p, sizeof p, "%s/rgb.png", dir);
        if (!rc) rc = mtc_png_write(p, 5, 6, 3, px, e);
        return rc;
    }
    if (!strcmp(which, "digits_json")) {
        char *t = malloc(784 * 8 + 64);
        if (!t) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        size_t k = (size_t)sprintf(t, "{\"data\": [");
        for (int i = 0; i < 784; i++)
            k += (size_t)sprintf(t + k, "%s%s", i ? "," : "",
                                 i % 7 == 0 ? "0.5" : i % 5 == 0 ? "1" : i % 11 == 0 ? "2.5e-1" : "0");
        k += (size_t)sprintf(t + k, "]}\n");
        rc = fz_seed_put(dir, "one.json", t, k);
        free(t);
        if (!rc) rc = fz_seed_put(dir, "empty.json", "{\"data\":[]}", 11);
        return rc ? mtc_err_set(e, MTC_EIO, "%s: cannot write seeds", dir) : 0;
    }
    if (!strcmp(which, "json")) {
        static const char *j1 =
            "{\"a\": [1, -2.5e3, 0.125, true, false, null], \"s\": \"x\\u00e9\\ud83d\\ude00\\n\\\"\","
            " \"o\": {\"k\": {}, \"l\": []}}";
        rc = fz_seed_put(dir, "obj.json", j1, strlen(j1));
        if (!rc) rc = fz_seed_put(dir, "num.json", "-0.0e+1", 7);
        return rc ? mtc_err_set(e, MTC_EIO, "%s: cannot write seeds", dir) : 0;
    }
    if (!strcmp(which, "onnx")) { /* the committed fixtures (run from the repository root) */
        static const char *const fx_files[] = {"mt_cnn.onnx", "mlp.onnx", "unsupported.onnx", "gelu_gap.onnx",
                                               "ln_mean.onnx", "resnet_dw.onnx"}; /* residual + depthwise */
        /* and an MMoE with layernorm and gelu as mtc export writes it (MMoE, gelu chains) */
        static const char *mmoe = "[input] shape=1x4x4\n[mmoe] experts=2\n[conv] filters=2 size=3 act=gelu_erf\n"
                                  "[layernorm]\n[dense] units=3 act=gelu\n[task a] kind=cls classes=2\n"
                                  "[task level] kind=reg outputs=1\n[head level]\n[dense] units=2\n";
        mtc_spec s;
        mtc_model m;
        if (mtc_spec_parse(mmoe, "mmoe", &s, e) || mtc_model_build(&s, mmoe, &m, e)) return e->code;
        mtc_model_init_params(&m, 3);
        snprintf(p, sizeof p, "%s/mmoe.onnx", dir);
        rc = mtc_onnx_export(&m, 17, p, e);
        mtc_model_free(&m);
        if (rc) return rc;
        for (int i = 0; i < (int)(sizeof fx_files / sizeof *fx_files) && !rc; i++) {
            char *b = NULL;
            size_t n = 0;
            snprintf(p, sizeof p, "tests/fixtures/%s", fx_files[i]);
            if ((rc = mtc_read_file(p, &b, &n, 1 << 24, e))) return rc;
            rc = fz_seed_put(dir, fx_files[i], b, n);
            free(b);
        }
        return rc ? mtc_err_set(e, MTC_EIO, "%s: cannot write seeds", dir) : 0;
    }
    if (!strcmp(which, "safetensors")) { /* the fixture model's tensors, and a tiny one */
        mtc_ckpt c;
        snprintf(p, sizeof p, "%s/tiny.safetensors", dir);
        if ((rc = mtc_model_to_ckpt(&fx->m, NULL, &c, e))) return rc;
        rc = mtc_safetensors_write(&c, p, e);
        mtc_ckpt_free(&c);
        if (rc) return rc;
        /* every dtype, no spec */
        mtc_ckpt d = {0};
        int64_t dims[2] = {2, 3};
        uint8_t raw[24] = {1, 2, 3, 0, 5, 6};
        for (int dt = 0; dt <= MTC_F16 && !rc; dt++) {
            char nm[32];
            snprintf(nm, sizeof nm, "t%d", dt);
            rc = mtc_ckpt_add(&d, nm, (mtc_dtype)dt, 2, dims, raw, e);
        }
        snprintf(p, sizeof p, "%s/dtypes.safetensors", dir);
        if (!rc) rc = mtc_safetensors_write(&d, p, e);
        mtc_ckpt_free(&d);
        return rc;
    }
    return mtc_err_set(e, MTC_EINPUT, "unknown parser '%s'", which);
}

/* Removes the scratch files fz_run may leave behind. */
static inline void fz_remove_scratch(const char *scratch)
{
    static const char *const ext[] = {".mtc", ".mtl", ".cfg", ".idx.gz", ".csv", ".json", ".onnx", ".safetensors",
                                      ".d/c/x.png", ".d/c", ".d"};
    char p[512];
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        snprintf(p, sizeof p, "%.400s%s", scratch, ext[i]);
        remove(p);
    }
}

/* ---- one parse of one input ------------------------------------------------------------ */
/* Runs parser `which` on input bytes d[0..n), using scratch paths under
 * `scratch` (a per-process prefix, e.g. "/dev/shm/mtc-fuzz-123"). Frees
 * everything. Returns the parser's code (0 or MTC_E*), -1 when the input was
 * not parseable as a file (pack refused); e gets the message. */
static inline int fz_run(const char *which, const uint8_t *d, size_t n, const char *scratch,
                         fz_fixture *fx, mtc_err *e)
{
    char p[4200];
    int rc;
    e->code = 0;
    e->msg[0] = 0;
    if (!strcmp(which, "ckpt")) {
        snprintf(p, sizeof p, "%s.mtc", scratch);
        if (fz_container_file(d, n, p, "MTC1")) return -1;
        mtc_ckpt c;
        rc = mtc_ckpt_load(p, &c, e);
        if (!rc) {
            mtc_ckpt_free(&c);
            mtc_model m;
            char *meta = NULL;
            mtc_err e2 = {0};
            /* only small specs: a fuzzed spec may ask for a huge model */
            if (n < 4096 && !mtc_model_load(p, &m, &meta, &e2)) {
                mtc_model_free(&m);
                free(meta);
            } else if (e2.code && !e2.msg[0]) {
                return mtc_err_set(e, MTC_EINTERNAL, "model load failed without a message");
            }
            FILE *null = fopen("/dev/null", "w");
            if (null) {
                rc = mtc_ckpt_inspect(p, (int)(n & 1), null, e);
                fclose(null);
            }
        }
        return rc;
    }
    if (!strcmp(which, "softlabels")) {
        snprintf(p, sizeof p, "%s.mtl", scratch);
        if (fz_container_file(d, n, p, "MTL1")) return -1;
        mtc_soft s;
        float *hints = NULL;
        int hd = 0;
        rc = mtc_soft_read(p, &fx->m, &fx->d, (int)(n & 1), &s, &hints, &hd, e);
        if (!rc) { mtc_soft_free(&s); free(hints); }
        char *json = NULL;
        mtc_err e2 = {0};
        int rc2 = mtc_soft_header(p, &json, &e2);
        free(json);
        if (rc2 && !e2.msg[0]) return mtc_err_set(e, MTC_EINTERNAL, "header failed without a message");
        return rc;
    }
    if (!strcmp(which, "spec")) {
        char *text = malloc(n + 1);
        if (!text) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        memcpy(text, d, n);
        text[n] = 0;
        mtc_spec s;
        rc = mtc_spec_parse(text, "fuzz.cfg", &s, e);
        free(text);
        if (rc) return rc;
        snprintf(p, sizeof p, "%s.cfg", scratch);
        if (fz_write(p, d, n)) return -1;
        char *t2 = NULL;
        rc = mtc_spec_load(p, &s, &t2, e);
        free(t2);
        return rc;
    }
    if (!strcmp(which, "idx")) {
        snprintf(p, sizeof p, "%s.idx.gz", scratch);
        if (fz_write(p, d, n)) return -1;
        int64_t cnt;
        int h, w;
        uint8_t *px = NULL;
        /* byte 3 of the header is the dim count: 1 labels, else images */
        if (n > 3 && d[3] == 1) rc = mtc_idx_read_labels(p, &cnt, &px, e);
        else rc = mtc_idx_read_images(p, &cnt, &h, &w, &px, e);
        free(px);
        return rc;
    }
    if (!strcmp(which, "csv")) {
        snprintf(p, sizeof p, "%s.csv", scratch);
        if (fz_write(p, d, n)) return -1;
        char name[4300];
        mtc_data_opts o;
        memset(&o, 0, sizeof o);
        /* the fixture's tasks when the header names z, else string classes on y */
        int fixture = n && memchr(d, 'z', n < 64 ? n : 64);
        if ((rc = mtc_data_parse_csv_tasks(fixture ? FZ_TASKS : "y", &o, e))) return rc;
        if (n & 2) o.inputs = "a,b";
        snprintf(name, sizeof name, "csv:%s%s", p, (n & 4) ? "@all" : "");
        mtc_dataset ds;
        memset(&ds, 0, sizeof ds);
        o.missing = (n & 16) ? "x" : NULL;
        o.allow_absent = (n & 32) != 0;
        o.impute_mean = (n & 64) != 0;
        rc = mtc_data_open(name, (n & 8) ? "test" : "train", &o, &ds, e);
        mtc_data_free(&ds);
        /* one shard of it (--shard-data), read in tiny blocks with a note
         * every 2 records: whatever opens whole opens as a shard, unless the
         * shard is empty */
        size_t keep_bs = mtc_csv_block_bytes;
        int64_t keep_mark = mtc_csv_mark_rows;
        mtc_csv_block_bytes = 16 + n % 48, mtc_csv_mark_rows = 2;
        o.shard_count = 2 + (int)(n % 3), o.shard_index = (int)(n / 3 % (size_t)o.shard_count);
        mtc_err es = {0};
        int rs = mtc_data_open(name, (n & 8) ? "test" : "train", &o, &ds, &es);
        mtc_data_free(&ds);
        mtc_csv_block_bytes = keep_bs, mtc_csv_mark_rows = keep_mark;
        if (rs > 0 && (rs > MTC_EINTERNAL || !es.msg[0] || strchr(es.msg, '\n') || rs == MTC_EINTERNAL)) {
            fprintf(stderr, "csv shard: bad error report: code %d, message '%s'\n", rs, es.msg);
            abort();
        }
        if (rc == 0 && rs != 0 && !strstr(es.msg, "empty") && rs != MTC_ENOMEM) {
            fprintf(stderr, "csv shard: the whole file opens, shard %d of %d does not: %s\n", o.shard_index,
                    o.shard_count, es.msg);
            abort();
        }
        /* the same bytes as a string table (png:DIR's labels.csv) */
        mtc_csv_table t;
        mtc_err e2 = {0};
        if (!mtc_csv_table_read(p, &t, &e2)) {
            for (int64_t r = 0; r < t.nrows; r++)
                for (int c = 0; c < t.ncols; c++) (void)mtc_csv_cell_missing(t.cells[r * t.ncols + c], "x");
            mtc_csv_table_free(&t);
        }
        return rc;
    }
    if (!strcmp(which, "png")) {
        /* scratch.d/c/x.png: a png:DIR with one class of one image */
        char dir[4096];
        snprintf(dir, sizeof dir, "%.4000s.d", scratch);
        mkdir(dir, 0700);
        snprintf(p, sizeof p, "%s/c", dir);
        mkdir(p, 0700);
        snprintf(p, sizeof p, "%s/c/x.png", dir);
        if (fz_write(p, d, n)) return -1;
        int h, w, ch;
        uint8_t *px = NULL;
        /* the header probe (mtc predict's check) agrees with the full read */
        int prc = mtc_png_probe(p, &h, &w, &ch, e);
        int ph = h, pw = w;
        rc = mtc_png_read_gray(p, &h, &w, &px, e);
        free(px);
        if (!rc && (prc || ph != h || pw != w || ch < 1 || ch > 4)) __builtin_trap();
        if (rc) return rc;
        mtc_data_opts o;
        memset(&o, 0, sizeof o);
        o.png_size = (n & 1) ? 7 : 0;
        char name[4300];
        snprintf(name, sizeof name, "png:%s", dir);
        mtc_dataset ds;
        memset(&ds, 0, sizeof ds);
        rc = mtc_data_open(name, "train", &o, &ds, e);
        mtc_data_free(&ds);
        return rc;
    }
    if (!strcmp(which, "digits_json")) {
        snprintf(p, sizeof p, "%s.json", scratch);
        if (fz_write(p, d, n)) return -1;
        int64_t cnt;
        uint8_t *px = NULL;
        rc = mtc_digits_json_read(p, &cnt, &px, e);
        free(px);
        return rc;
    }
    if (!strcmp(which, "safetensors")) {
        snprintf(p, sizeof p, "%s.safetensors", scratch);
        if (fz_write(p, d, n)) return -1;
        mtc_ckpt c;
        rc = mtc_safetensors_read(p, &c, e);
        if (!rc) mtc_ckpt_free(&c);
        return rc;
    }
    if (!strcmp(which, "onnx")) {
        snprintf(p, sizeof p, "%s.onnx", scratch);
        if (fz_write(p, d, n)) return -1;
        mtc_model m;
        char note[512];
        rc = mtc_onnx_import(p, (n & 1) ? "level:reg" : NULL, &m, note, sizeof note, e);
        if (!rc) mtc_model_free(&m);
        return rc;
    }
    if (!strcmp(which, "json")) {
        mtc_json j;
        rc = mtc_json_parse((const char *)d, n, &j, e);
        if (!rc) {
            mtc_jw w;
            mtc_jw_init(&w);
            mtc_jw_value(&w, &j);
            if (!w.oom && w.buf) { /* what we write we can read back */
                mtc_json j2;
                mtc_err e2 = {0};
                if (mtc_json_parse(w.buf, w.len, &j2, &e2))
                    rc = mtc_err_set(e, MTC_EINTERNAL, "re-parse of written JSON failed: %s", e2.msg);
                else
                    mtc_json_free(&j2);
            }
            mtc_jw_free(&w);
            FILE *null = fopen("/dev/null", "w");
            if (null) { mtc_json_fprint(null, &j, 2); fclose(null); }
            mtc_json_free(&j);
        }
        return rc;
    }
    return mtc_err_set(e, MTC_EINTERNAL, "unknown parser '%s'", which);
}

#endif
