/*
 * safetensors.c — a checkpoint's tensors as a safetensors file and back
 * (`mtc export --format safetensors`, `mtc import W.safetensors`).
 *
 * Layout (huggingface's format): u64 little-endian header length N, then N
 * bytes of JSON {"<name>": {"dtype": "F32", "shape": [..], "data_offsets":
 * [begin, end]}, ..., "__metadata__": {"format": "mtc", "spec": "<spec>"}}
 * padded with spaces to a multiple of 8, then the tensors' raw little-
 * endian bytes (offsets relative to the end of the header). Names are the
 * checkpoint's (docs/formats.md: trunk.<i>.<type>.weight, head.<task>.out.
 * bias, ...). The reader checks every offset and size against the file
 * before copying and refuses overlaps, gaps out of range and headers
 * larger than 100 MB.
 */
#include "mtc.h"

#include <stdlib.h>
#include <string.h>

#define ST_HEADER_MAX ((uint64_t)100 << 20)
#define ST_FILE_MAX ((size_t)4 << 30)

static const char *st_dtype(mtc_dtype t)
{
    switch (t) {
    case MTC_F32: return "F32";
    case MTC_S8: return "I8";
    case MTC_U8: return "U8";
    case MTC_S32: return "I32";
    case MTC_F16: return "F16";
    }
    return "?";
}

static int st_parse_dtype(const char *s, mtc_dtype *t)
{
    static const struct { const char *n; mtc_dtype t; } map[] = {
        {"F32", MTC_F32}, {"I8", MTC_S8}, {"U8", MTC_U8}, {"I32", MTC_S32}, {"F16", MTC_F16}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (s && !strcmp(s, map[i].n)) return *t = map[i].t, 0;
    return -1;
}

int mtc_safetensors_write(const mtc_ckpt *c, const char *path, mtc_err *e)
{
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_obj(&w);
    uint64_t off = 0;
    for (int i = 0; i < c->ntensors; i++) {
        const mtc_tensor *t = &c->tensors[i];
        uint64_t bytes = (uint64_t)mtc_tensor_numel(t) * mtc_dtype_size(t->dtype);
        mtc_jw_key(&w, t->name);
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "dtype", st_dtype(t->dtype));
        mtc_jw_key(&w, "shape");
        mtc_jw_arr(&w);
        for (int d = 0; d < t->ndim; d++) mtc_jw_int(&w, t->dims[d]);
        mtc_jw_arr_end(&w);
        mtc_jw_key(&w, "data_offsets");
        mtc_jw_arr(&w);
        mtc_jw_int(&w, (int64_t)off);
        mtc_jw_int(&w, (int64_t)(off + bytes));
        mtc_jw_arr_end(&w);
        mtc_jw_obj_end(&w);
        off += bytes;
    }
    mtc_jw_key(&w, "__metadata__");
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "format", "mtc");
    if (c->spec) mtc_jw_kstr(&w, "spec", c->spec);
    mtc_jw_obj_end(&w);
    mtc_jw_obj_end(&w);
    if (w.oom) { mtc_jw_free(&w); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
    uint64_t n = (uint64_t)w.len, pad = (8 - n % 8) % 8, hn = n + pad;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hn >> (8 * i));
    mtc_outfile o;
    int rc = mtc_outfile_open(&o, path, e);
    if (!rc) {
        int bad = fwrite(len8, 1, 8, o.f) != 8 || fwrite(w.buf, 1, n, o.f) != n;
        for (uint64_t i = 0; i < pad && !bad; i++) bad = fputc(' ', o.f) == EOF;
        for (int i = 0; i < c->ntensors && !bad; i++) {
            const mtc_tensor *t = &c->tensors[i];
            size_t bytes = (size_t)mtc_tensor_numel(t) * mtc_dtype_size(t->dtype);
            bad = bytes && fwrite(t->data, 1, bytes, o.f) != bytes;
        }
        if (bad) {
            mtc_outfile_abort(&o);
            rc = mtc_err_set(e, MTC_EIO, "%s: write failed", path);
        } else {
            rc = mtc_outfile_commit(&o, e);
        }
    }
    mtc_jw_free(&w);
    return rc;
}

/* One tensor entry of the header into c, its bytes from data[0..dlen). */
static int st_tensor(const char *path, const char *name, const mtc_json *v, const unsigned char *data, uint64_t dlen,
                     mtc_ckpt *c, mtc_err *e)
{
    mtc_dtype dt;
    const mtc_json *shape = mtc_json_get(v, "shape"), *off = mtc_json_get(v, "data_offsets");
    if (v->type != MTC_JOBJ || st_parse_dtype(mtc_json_str(v, "dtype"), &dt))
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%.100s': dtype missing or not F32, F16, I32, I8, U8", path, name);
    if (!shape || shape->type != MTC_JARR || shape->n < 1 || shape->n > MTC_MAX_DIMS || !off ||
        off->type != MTC_JARR || off->n != 2)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%.100s': shape (1-%d dims) or data_offsets missing", path, name,
                           MTC_MAX_DIMS);
    int64_t dims[MTC_MAX_DIMS];
    for (int d = 0; d < shape->n; d++) {
        double x = shape->items[d].num;
        if (shape->items[d].type != MTC_JNUM || x < 1 || x > (double)((int64_t)1 << 31) || x != (double)(int64_t)x)
            return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%.100s': bad dimension", path, name);
        dims[d] = (int64_t)x;
    }
    double b0 = off->items[0].num, b1 = off->items[1].num;
    if (off->items[0].type != MTC_JNUM || off->items[1].type != MTC_JNUM || b0 < 0 || b1 < b0 || b1 > (double)dlen)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%.100s': data_offsets outside the file's %llu data bytes", path,
                           name, (unsigned long long)dlen);
    mtc_tensor t = {.dtype = dt, .ndim = shape->n};
    memcpy(t.dims, dims, sizeof dims);
    int64_t numel = mtc_tensor_numel(&t);
    if (numel < 0 || (double)numel * (double)mtc_dtype_size(dt) != b1 - b0)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%.100s': %.0f bytes for its shape and dtype", path, name, b1 - b0);
    if (strlen(name) >= sizeof t.name) return mtc_err_set(e, MTC_EINPUT, "%s: tensor name '%.100s...' too long", path, name);
    if (mtc_ckpt_find(c, name)) return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%.100s' twice", path, name);
    return mtc_ckpt_add(c, name, dt, shape->n, dims, data + (uint64_t)b0, e);
}

int mtc_safetensors_read(const char *path, mtc_ckpt *c, mtc_err *e)
{
    memset(c, 0, sizeof *c);
    char *buf = NULL;
    size_t len = 0;
    int rc = mtc_read_file(path, &buf, &len, ST_FILE_MAX, e);
    if (rc) return rc;
    uint64_t hn = 0;
    for (int i = 0; i < 8 && len >= 8; i++) hn |= (uint64_t)(unsigned char)buf[i] << (8 * i);
    if (len < 8 || hn < 2 || hn > ST_HEADER_MAX || hn > len - 8) {
        free(buf);
        return mtc_err_set(e, MTC_EINPUT, "%s: not a safetensors file (header length %llu for %zu bytes)", path,
                           (unsigned long long)hn, len);
    }
    mtc_json h;
    mtc_err je = {0};
    if (mtc_json_parse(buf + 8, (size_t)hn, &h, &je)) {
        free(buf);
        return mtc_err_set(e, MTC_EINPUT, "%s: header: %s", path, je.msg);
    }
    const unsigned char *data = (const unsigned char *)buf + 8 + hn;
    uint64_t dlen = len - 8 - hn;
    if (h.type != MTC_JOBJ) rc = mtc_err_set(e, MTC_EINPUT, "%s: the header is not a JSON object", path);
    for (int i = 0; i < h.n && !rc; i++) {
        if (!strcmp(h.keys[i], "__metadata__")) {
            const char *spec = h.items[i].type == MTC_JOBJ ? mtc_json_str(&h.items[i], "spec") : NULL;
            if (spec) rc = mtc_ckpt_set_text(&c->spec, spec) ? mtc_err_set(e, MTC_ENOMEM, "out of memory") : 0;
            continue;
        }
        rc = st_tensor(path, h.keys[i], &h.items[i], data, dlen, c, e);
    }
    mtc_json_free(&h);
    free(buf);
    if (rc) mtc_ckpt_free(c);
    return rc;
}
