/*
 * ckpt.c — `.mtc` checkpoints on top of the section container, and the
 * `mtc inspect` report.
 *
 * Sections: "spec" (model spec text), "meta" (a JSON object), and one
 * "tensor:<name>" per tensor whose raw payload is
 *   u8 dtype, u8 ndim (1..4), u16 0, u32 dims[ndim], numel × dtype-size bytes.
 * The loader checks dtype, ndim, the reserved zero and that the overflow-
 * checked byte count equals the payload size; sections it does not know are
 * skipped (forward compatibility). Text sections may not contain NUL bytes.
 * This file knows nothing about layers: model.c maps models to tensors, and
 * the `mtc inspect` report (which asks a spec's layout how many weights a
 * layer stored as bitmask + values has) lives in inspect.c.
 */
#include "mtc.h"

#include <stdlib.h>
#include <string.h>

#define TENSOR_PREFIX MTC_CKPT_TENSOR_PREFIX
#define TENSOR_PREFIX_LEN 7

/* Byte size of a tensor from dtype/ndim/dims, overflow-checked. `what` names
 * the file or caller for the message. */
static int tensor_bytes(const char *what, const char *name, int dtype, int ndim,
                        const int64_t *dims, uint64_t *bytes, mtc_err *e)
{
    size_t esz = mtc_dtype_size((mtc_dtype)dtype);
    if (dtype < 0 || esz == 0)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' has unknown dtype %d", what, name,
                           dtype);
    if (ndim < 1 || ndim > MTC_MAX_DIMS)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' has %d dims (want 1..%d)", what,
                           name, ndim, MTC_MAX_DIMS);
    uint64_t n = esz;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || dims[i] > (int64_t)UINT32_MAX)
            return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' dim %d is %lld", what, name, i,
                               (long long)dims[i]);
        if (dims[i] && n > MTC_SECTION_MAX / (uint64_t)dims[i])
            return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' is too large", what, name);
        n *= (uint64_t)dims[i];
    }
    if (n > MTC_SECTION_MAX - 4 - 4 * MTC_MAX_DIMS || n > SIZE_MAX)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' is too large", what, name);
    *bytes = n;
    return MTC_OK;
}

static int tensor_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n >= sizeof(((mtc_tensor *)0)->name)) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e) return 0;
    return 1;
}

/* Parses a tensor payload header; fills t (no data) and *hdr, *bytes. */
static int tensor_header(const char *path, const char *name, const unsigned char *p,
                         uint64_t len, mtc_tensor *t, size_t *hdr, uint64_t *bytes, mtc_err *e)
{
    if (len < 4)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' payload too short (%llu bytes)", path,
                           name, (unsigned long long)len);
    int ndim = p[1];
    if (p[2] || p[3])
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' reserved bytes are not zero", path,
                           name);
    if (ndim < 1 || ndim > MTC_MAX_DIMS)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' has %d dims (want 1..%d)", path,
                           name, ndim, MTC_MAX_DIMS);
    *hdr = 4 + 4 * (size_t)ndim;
    if (len < *hdr)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' payload too short (%llu bytes)", path,
                           name, (unsigned long long)len);
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = (mtc_dtype)p[0];
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        const unsigned char *d = p + 4 + 4 * i;
        t->dims[i] = (int64_t)((uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 |
                               (uint32_t)d[3] << 24);
    }
    int rc = tensor_bytes(path, name, p[0], ndim, t->dims, bytes, e);
    if (rc) return rc;
    if (*bytes != len - *hdr)
        return mtc_err_set(e, MTC_EINPUT,
                           "%s: tensor '%s' shape needs %llu bytes but payload has %llu", path,
                           name, (unsigned long long)*bytes, (unsigned long long)(len - *hdr));
    return MTC_OK;
}

/* ---- in-memory checkpoint ------------------------------------------------ */
int mtc_ckpt_set_text(char **field, const char *text)
{
    char *copy = NULL;
    if (text && !(copy = strdup(text))) return MTC_ENOMEM;
    free(*field);
    *field = copy;
    return MTC_OK;
}

const mtc_tensor *mtc_ckpt_find(const mtc_ckpt *c, const char *name)
{
    for (int i = 0; i < c->ntensors; i++)
        if (!strcmp(c->tensors[i].name, name)) return &c->tensors[i];
    return NULL;
}

int mtc_ckpt_add(mtc_ckpt *c, const char *name, mtc_dtype dtype, int ndim,
                 const int64_t *dims, const void *data, mtc_err *e)
{
    uint64_t bytes;
    if (!tensor_name_ok(name))
        return mtc_err_set(e, MTC_EINPUT, "tensor name '%.127s' is empty, too long or not "
                           "printable", name);
    int rc = tensor_bytes("checkpoint", name, (int)dtype, ndim, dims, &bytes, e);
    if (rc) return rc;
    void *copy = malloc(bytes ? (size_t)bytes : 1);
    if (!copy) return mtc_err_set(e, MTC_ENOMEM, "tensor '%s': out of memory", name);
    if (bytes) memcpy(copy, data, (size_t)bytes);
    mtc_tensor *t = (mtc_tensor *)mtc_ckpt_find(c, name);
    if (!t) {
        mtc_tensor *nt = realloc(c->tensors, ((size_t)c->ntensors + 1) * sizeof *nt);
        if (!nt) {
            free(copy);
            return mtc_err_set(e, MTC_ENOMEM, "tensor '%s': out of memory", name);
        }
        c->tensors = nt;
        t = &c->tensors[c->ntensors++];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", name);
    }
    free(t->data);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < MTC_MAX_DIMS; i++) t->dims[i] = i < ndim ? dims[i] : 0;
    t->data = copy;
    return MTC_OK;
}

void mtc_ckpt_free(mtc_ckpt *c)
{
    if (!c) return;
    for (int i = 0; i < c->ntensors; i++) free(c->tensors[i].data);
    free(c->tensors);
    free(c->spec);
    free(c->meta);
    memset(c, 0, sizeof *c);
}

/* ---- save / load ---------------------------------------------------------- */
static int check_meta(const char *path, const char *text, mtc_err *e)
{
    mtc_json j;
    mtc_err je = {0};
    int rc = mtc_json_parse(text, strlen(text), &j, &je);
    if (rc) return mtc_err_set(e, MTC_EINPUT, "%s: metadata is not valid JSON: %s", path, je.msg);
    int is_obj = j.type == MTC_JOBJ;
    mtc_json_free(&j);
    if (!is_obj) return mtc_err_set(e, MTC_EINPUT, "%s: metadata is not a JSON object", path);
    return MTC_OK;
}

static int save_tensor(mtc_cwriter *w, const char *path, const mtc_tensor *t, mtc_err *e)
{
    uint64_t bytes;
    if (!tensor_name_ok(t->name))
        return mtc_err_set(e, MTC_EINPUT, "%s: bad tensor name '%.127s'", path, t->name);
    int rc = tensor_bytes(path, t->name, (int)t->dtype, t->ndim, t->dims, &bytes, e);
    if (rc) return rc;
    if (bytes && !t->data)
        return mtc_err_set(e, MTC_EINPUT, "%s: tensor '%s' has no data", path, t->name);
    unsigned char h[4 + 4 * MTC_MAX_DIMS];
    h[0] = (unsigned char)t->dtype;
    h[1] = (unsigned char)t->ndim;
    h[2] = h[3] = 0;
    for (int i = 0; i < t->ndim; i++)
        for (int b = 0; b < 4; b++) h[4 + 4 * i + b] = (unsigned char)((uint64_t)t->dims[i] >> (8 * b));
    char sec[TENSOR_PREFIX_LEN + sizeof t->name];
    snprintf(sec, sizeof sec, TENSOR_PREFIX "%s", t->name);
    /* streamed: the tensor data is deflated in place, never copied */
    if ((rc = mtc_cwriter_begin(w, sec, e))) return rc;
    if ((rc = mtc_cwriter_write(w, h, 4 + 4 * (size_t)t->ndim, e))) return rc;
    if (bytes && (rc = mtc_cwriter_write(w, t->data, (size_t)bytes, e))) return rc;
    return mtc_cwriter_end(w, e);
}

int mtc_ckpt_save(const char *path, const mtc_ckpt *c, mtc_err *e)
{
    int rc;
    if (c->meta && (rc = check_meta(path, c->meta, e))) return rc;
    mtc_cwriter w;
    if ((rc = mtc_cwriter_open(&w, path, "MTC1", e))) return rc;
    if (c->spec) rc = mtc_cwriter_section(&w, "spec", c->spec, strlen(c->spec), e);
    if (!rc && c->meta) rc = mtc_cwriter_section(&w, "meta", c->meta, strlen(c->meta), e);
    for (int i = 0; !rc && i < c->ntensors; i++) rc = save_tensor(&w, path, &c->tensors[i], e);
    if (rc) {
        mtc_cwriter_abort(&w);
        return rc;
    }
    return mtc_cwriter_commit(&w, e);
}

/* Reads one tensor section into t; t->data owns the (shifted) buffer. */
static int load_tensor(mtc_creader *r, int i, mtc_tensor *t, mtc_err *e)
{
    const char *name = r->sections[i].name + TENSOR_PREFIX_LEN;
    if (!tensor_name_ok(name))
        return mtc_err_set(e, MTC_EINPUT, "%s: bad tensor name in section '%s'", r->path,
                           r->sections[i].name);
    void *buf;
    uint64_t len, bytes;
    size_t hdr;
    int rc = mtc_creader_read(r, i, &buf, &len, e);
    if (rc) return rc;
    rc = tensor_header(r->path, name, buf, len, t, &hdr, &bytes, e);
    if (rc) {
        free(buf);
        return rc;
    }
    memmove(buf, (unsigned char *)buf + hdr, (size_t)bytes);
    t->data = buf;
    return MTC_OK;
}

int mtc_ckpt_load(const char *path, mtc_ckpt *c, mtc_err *e)
{
    memset(c, 0, sizeof *c);
    mtc_creader r;
    int rc = mtc_creader_open(&r, path, "MTC1", e);
    if (rc) return rc;
    int ntensor = 0;
    for (int i = 0; i < r.nsections; i++)
        ntensor += !strncmp(r.sections[i].name, TENSOR_PREFIX, TENSOR_PREFIX_LEN);
    if (ntensor && !(c->tensors = calloc((size_t)ntensor, sizeof *c->tensors)))
        rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    for (int i = 0; !rc && i < r.nsections; i++) {
        const char *name = r.sections[i].name;
        if (!strcmp(name, "spec")) {
            rc = mtc_creader_read_text(&r, i, &c->spec, e);
        } else if (!strcmp(name, "meta")) {
            rc = mtc_creader_read_text(&r, i, &c->meta, e);
            if (!rc) rc = check_meta(path, c->meta, e);
        } else if (!strncmp(name, TENSOR_PREFIX, TENSOR_PREFIX_LEN)) {
            rc = load_tensor(&r, i, &c->tensors[c->ntensors], e);
            if (!rc) c->ntensors++;
        }
    }
    mtc_creader_close(&r);
    if (rc) mtc_ckpt_free(c);
    return rc;
}

int mtc_ckpt_parse_tensor(const char *path, const char *name, const unsigned char *p, uint64_t len,
                          mtc_tensor *t, size_t *hdr, uint64_t *bytes, mtc_err *e)
{
    if (!tensor_name_ok(name))
        return mtc_err_set(e, MTC_EINPUT, "%s: bad tensor name in section '" TENSOR_PREFIX "%s'", path, name);
    return tensor_header(path, name, p, len, t, hdr, bytes, e);
}
