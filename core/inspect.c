/*
 * inspect.c — the `mtc inspect` report of a checkpoint or soft-label file:
 * sections, tensors (shape, dtype, zeros, stored bytes) and, for a layer
 * stored as bitmask + values, its sparsity from the spec's layout. It sits
 * above both the container (ckpt.c) and the model (model.c), so that the
 * container knows nothing about models.
 */
#include "mtc.h"

#include <stdlib.h>
#include <string.h>

/* ---- inspect --------------------------------------------------------------- */
typedef struct {
    mtc_tensor t; /* no data */
    int64_t numel, zeros;
    int64_t ones;   /* u8 tensors: bits set (a weight bitmask's kept weights) */
    uint64_t bytes; /* payload, raw */
    uint64_t stored; /* the section as stored (zlib) */
} tensor_row;

/* A layer stored as bitmask + values ("<layer>.weight_bits" and
 * "<layer>.weight_nz", include/mtc/model.h), shown as one weight tensor. */
typedef struct {
    char name[160];  /* "<layer>.weight" */
    int64_t weights; /* from the spec; -1 when the spec does not say */
    int64_t kept;    /* bits set */
    uint64_t stored; /* both sections */
} sparse_row;

static int64_t count_ones(const unsigned char *p, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        for (unsigned v = p[i]; v; v &= v - 1) k++;
    return k;
}

static int64_t count_zeros(mtc_dtype dt, const unsigned char *p, int64_t n)
{
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++) {
        switch (dt) {
        case MTC_F32: { float v; memcpy(&v, p + 4 * i, 4); z += v == 0.0f; break; }
        case MTC_S32: { int32_t v; memcpy(&v, p + 4 * i, 4); z += v == 0; break; }
        case MTC_F16: z += ((p[2 * i] | p[2 * i + 1] << 8) & 0x7fff) == 0; break; /* ±0 */
        default: z += p[i] == 0; break;
        }
    }
    return z;
}

typedef struct {
    mtc_creader r;
    tensor_row *rows;
    int nrows;
    sparse_row *sparse;
    int nsparse;
    char *spec;
    mtc_json meta;
    int have_meta;
} inspect_info;

static void info_free(inspect_info *in)
{
    mtc_creader_close(&in->r);
    free(in->rows);
    free(in->sparse);
    free(in->spec);
    mtc_json_free(&in->meta);
}

static const tensor_row *find_row(const inspect_info *in, const char *name)
{
    for (int i = 0; i < in->nrows; i++)
        if (!strcmp(in->rows[i].t.name, name)) return &in->rows[i];
    return NULL;
}

typedef struct { const char *name; int64_t nw; } layer_query;

static int match_layer(mtc_model *m, mtc_layer *L, void *ctx)
{
    (void)m;
    layer_query *q = ctx;
    if (strcmp(L->name, q->name)) return 0;
    q->nw = L->nw;
    return 1;
}

/* Pairs "<layer>.weight_bits" with "<layer>.weight_nz"; the layer's weight
 * count comes from the spec (the bitmask has up to 7 padding bits). Only
 * what a reader needs to show is derived here: the loader validates. */
static int collect_sparse(inspect_info *in, mtc_err *e)
{
    static const char bits_sfx[] = ".weight_bits";
    const size_t nsfx = sizeof bits_sfx - 1;
    mtc_model *m = NULL;
    for (int i = 0; i < in->nrows; i++) {
        const tensor_row *b = &in->rows[i];
        size_t n = strlen(b->t.name);
        if (b->t.dtype != MTC_U8 || n <= nsfx || strcmp(b->t.name + n - nsfx, bits_sfx)) continue;
        char layer[128], nzname[160];
        snprintf(layer, sizeof layer, "%.*s", (int)(n - nsfx), b->t.name);
        snprintf(nzname, sizeof nzname, "%s.weight_nz", layer);
        const tensor_row *z = find_row(in, nzname);
        if (!z) continue;
        if (!in->sparse && !(in->sparse = calloc((size_t)in->nrows, sizeof *in->sparse)))
            return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", in->r.path);
        if (!m && in->spec && (m = calloc(1, sizeof *m))) {
            mtc_spec sp;
            mtc_err ignore = {0};
            if (mtc_spec_parse(in->spec, "spec", &sp, &ignore) || mtc_model_layout(&sp, NULL, m, &ignore))
                m->nparams = -1; /* no layer names: weights unknown */
        }
        layer_query q = {layer, -1};
        if (m && m->nparams >= 0) mtc_model_for_each_layer(m, match_layer, &q);
        sparse_row *sr = &in->sparse[in->nsparse++];
        snprintf(sr->name, sizeof sr->name, "%s.weight", layer);
        sr->weights = q.nw;
        sr->kept = b->ones;
        sr->stored = b->stored + z->stored;
    }
    if (m) {
        if (m->nparams >= 0) mtc_model_free(m);
        free(m);
    }
    return MTC_OK;
}

static double sparse_sparsity(const sparse_row *s)
{
    return s->weights > 0 ? 1.0 - (double)s->kept / (double)s->weights : 0.0;
}

/* Reads every section (so every CRC is checked) before anything is printed. */
static int inspect_collect(inspect_info *in, const char *path, const char *magic, mtc_err *e)
{
    mtc_creader *r = &in->r;
    int rc = mtc_creader_open(r, path, magic, e);
    if (rc) return rc;
    if (r->nsections && !(in->rows = calloc((size_t)r->nsections, sizeof *in->rows)))
        return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", r->path);
    int ckpt = !memcmp(magic, "MTC1", 4);
    for (int i = 0; i < r->nsections; i++) {
        const char *name = r->sections[i].name;
        void *buf;
        uint64_t len;
        if (ckpt && !strcmp(name, "spec")) {
            if ((rc = mtc_creader_read_text(r, i, &in->spec, e))) return rc;
            continue;
        }
        if ((rc = mtc_creader_read(r, i, &buf, &len, e))) return rc;
        if (ckpt && !strcmp(name, "meta")) {
            mtc_err je = {0};
            rc = mtc_json_parse(buf, (size_t)len, &in->meta, &je);
            if (!rc && in->meta.type != MTC_JOBJ) {
                mtc_json_free(&in->meta);
                rc = mtc_err_set(&je, MTC_EINPUT, "not an object");
            }
            if (rc) rc = mtc_err_set(e, MTC_EINPUT, "%s: metadata is not a JSON object: %s",
                                     r->path, je.msg);
            in->have_meta = !rc;
        } else if (ckpt && !strncmp(name, MTC_CKPT_TENSOR_PREFIX, (sizeof MTC_CKPT_TENSOR_PREFIX - 1))) {
            tensor_row *row = &in->rows[in->nrows];
            size_t hdr;
            const char *tname = name + (sizeof MTC_CKPT_TENSOR_PREFIX - 1);
            rc = mtc_ckpt_parse_tensor(r->path, tname, buf, len, &row->t, &hdr, &row->bytes, e);
            if (!rc) {
                row->numel = mtc_tensor_numel(&row->t);
                row->zeros = count_zeros(row->t.dtype, (unsigned char *)buf + hdr, row->numel);
                if (row->t.dtype == MTC_U8) row->ones = count_ones((unsigned char *)buf + hdr, row->numel);
                row->stored = r->sections[i].comp_len;
                in->nrows++;
            }
        }
        free(buf);
        if (rc) return rc;
    }
    return ckpt ? collect_sparse(in, e) : MTC_OK;
}

static void shape_str(const mtc_tensor *t, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "x" : "", (long long)t->dims[i]);
}

static double sparsity(const tensor_row *row)
{
    return row->numel ? (double)row->zeros / (double)row->numel : 0.0;
}

static void inspect_json(const inspect_info *in, const char *magic, FILE *out)
{
    const mtc_creader *r = &in->r;
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "file", r->path);
    char m[5] = {0};
    memcpy(m, magic, 4);
    mtc_jw_kstr(&w, "magic", m);
    mtc_jw_kint(&w, "version", r->version);
    mtc_jw_kint(&w, "file_bytes", (int64_t)r->file_size);
    mtc_jw_key(&w, "sections");
    mtc_jw_arr(&w);
    for (int i = 0; i < r->nsections; i++) {
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "name", r->sections[i].name);
        mtc_jw_kint(&w, "raw_bytes", (int64_t)r->sections[i].raw_len);
        mtc_jw_kint(&w, "stored_bytes", (int64_t)r->sections[i].comp_len);
        mtc_jw_obj_end(&w);
    }
    mtc_jw_arr_end(&w);
    int64_t params = 0;
    mtc_jw_key(&w, "tensors");
    mtc_jw_arr(&w);
    for (int i = 0; i < in->nrows; i++) {
        const tensor_row *row = &in->rows[i];
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "name", row->t.name);
        mtc_jw_kstr(&w, "dtype", mtc_dtype_name(row->t.dtype));
        mtc_jw_key(&w, "shape");
        mtc_jw_arr(&w);
        for (int d = 0; d < row->t.ndim; d++) mtc_jw_int(&w, row->t.dims[d]);
        mtc_jw_arr_end(&w);
        mtc_jw_kint(&w, "numel", row->numel);
        mtc_jw_knum(&w, "sparsity", sparsity(row));
        mtc_jw_kint(&w, "bytes", (int64_t)row->bytes);
        mtc_jw_kint(&w, "stored_bytes", (int64_t)row->stored);
        mtc_jw_obj_end(&w);
        params += row->numel;
    }
    mtc_jw_arr_end(&w);
    mtc_jw_key(&w, "sparse_weights");
    mtc_jw_arr(&w);
    for (int i = 0; i < in->nsparse; i++) {
        const sparse_row *sr = &in->sparse[i];
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "name", sr->name);
        mtc_jw_key(&w, "weights");
        if (sr->weights >= 0) mtc_jw_int(&w, sr->weights);
        else mtc_jw_null(&w);
        mtc_jw_kint(&w, "kept", sr->kept);
        mtc_jw_key(&w, "sparsity");
        if (sr->weights >= 0) mtc_jw_num(&w, sparse_sparsity(sr));
        else mtc_jw_null(&w);
        mtc_jw_kint(&w, "stored_bytes", (int64_t)sr->stored);
        mtc_jw_obj_end(&w);
    }
    mtc_jw_arr_end(&w);
    mtc_jw_kint(&w, "parameters", params);
    mtc_jw_kstr(&w, "spec", in->spec); /* null when absent */
    mtc_jw_key(&w, "meta");
    if (in->have_meta) mtc_jw_value(&w, &in->meta);
    else mtc_jw_null(&w);
    mtc_jw_obj_end(&w);
    if (w.buf) fprintf(out, "%s\n", w.buf);
    mtc_jw_free(&w);
}

static void inspect_human(const inspect_info *in, const char *magic, FILE *out)
{
    const mtc_creader *r = &in->r;
    int wsec = 7, wten = 6;
    for (int i = 0; i < r->nsections; i++) {
        int n = (int)strlen(r->sections[i].name);
        if (n > wsec) wsec = n;
    }
    for (int i = 0; i < in->nrows; i++) {
        int n = (int)strlen(in->rows[i].t.name);
        if (n > wten) wten = n;
    }
    fprintf(out, "%s: %.4s v%u, %llu bytes, %d sections\n\n", r->path, magic, r->version,
            (unsigned long long)r->file_size, r->nsections);
    fprintf(out, "%-*s  %14s  %14s\n", wsec, "section", "raw bytes", "stored bytes");
    uint64_t raw = 0, comp = 0;
    for (int i = 0; i < r->nsections; i++) {
        const mtc_csection *s = &r->sections[i];
        fprintf(out, "%-*s  %14llu  %14llu\n", wsec, s->name, (unsigned long long)s->raw_len,
                (unsigned long long)s->comp_len);
        raw += s->raw_len;
        comp += s->comp_len;
    }
    fprintf(out, "%-*s  %14llu  %14llu\n", wsec, "total", (unsigned long long)raw,
            (unsigned long long)comp);
    if (in->nrows) {
        int64_t params = 0, zeros = 0;
        uint64_t bytes = 0;
        fprintf(out, "\n%-*s  %-5s  %-18s  %12s  %8s  %12s  %12s\n", wten, "tensor", "dtype", "shape",
                "numel", "sparsity", "raw bytes", "stored bytes");
        uint64_t stored = 0;
        for (int i = 0; i < in->nrows; i++) {
            const tensor_row *row = &in->rows[i];
            char shape[64];
            shape_str(&row->t, shape, sizeof shape);
            fprintf(out, "%-*s  %-5s  %-18s  %12lld  %8.4f  %12llu  %12llu\n", wten, row->t.name,
                    mtc_dtype_name(row->t.dtype), shape, (long long)row->numel, sparsity(row),
                    (unsigned long long)row->bytes, (unsigned long long)row->stored);
            params += row->numel;
            zeros += row->zeros;
            bytes += row->bytes;
            stored += row->stored;
        }
        fprintf(out, "%-*s  %-5s  %-18s  %12lld  %8.4f  %12llu  %12llu\n", wten, "total", "", "",
                (long long)params, params ? (double)zeros / (double)params : 0.0,
                (unsigned long long)bytes, (unsigned long long)stored);
    }
    if (in->nsparse) {
        fprintf(out, "\n%-*s  %12s  %12s  %8s  %14s  %12s\n", wten, "bitmask + values", "weights", "kept",
                "sparsity", "dense f32", "stored bytes");
        for (int i = 0; i < in->nsparse; i++) {
            const sparse_row *sr = &in->sparse[i];
            if (sr->weights >= 0)
                fprintf(out, "%-*s  %12lld  %12lld  %8.4f  %14lld  %12llu\n", wten, sr->name, (long long)sr->weights,
                        (long long)sr->kept, sparse_sparsity(sr), (long long)sr->weights * 4,
                        (unsigned long long)sr->stored);
            else
                fprintf(out, "%-*s  %12s  %12lld  %8s  %14s  %12llu\n", wten, sr->name, "?", (long long)sr->kept,
                        "?", "?", (unsigned long long)sr->stored);
        }
    }
    if (in->spec) {
        int lines = 0;
        for (const char *p = in->spec; *p; p++) lines += *p == '\n';
        fprintf(out, "\nspec: %zu bytes, %d lines\n", strlen(in->spec), lines);
    }
    if (in->have_meta) {
        fprintf(out, "\nmetadata:\n");
        mtc_json_fprint(out, &in->meta, 2);
    }
}

int mtc_ckpt_inspect(const char *path, int json, FILE *out, mtc_err *e)
{
    /* Soft-label files share the container: list their sections too. */
    char magic[4] = {'M', 'T', 'C', '1'};
    FILE *f = fopen(path, "rb");
    if (f) {
        char m[4];
        if (fread(m, 1, 4, f) == 4 && !memcmp(m, "MTL1", 4)) memcpy(magic, m, 4);
        fclose(f);
    }
    inspect_info in;
    memset(&in, 0, sizeof in);
    int rc = inspect_collect(&in, path, magic, e);
    if (!rc) {
        if (json) inspect_json(&in, magic, out);
        else inspect_human(&in, magic, out);
        if (fflush(out) || ferror(out))
            rc = mtc_err_set(e, MTC_EIO, "%s: cannot write the report", path);
    }
    info_free(&in);
    return rc;
}
