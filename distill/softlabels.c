/*
 * softlabels.c — soft-label files (.mtl): `mtc label` writes the teachers'
 * outputs for every training sample once, `mtc distill` reads them so the
 * teacher never runs (nor sits in memory) while the student trains.
 *
 * Layout (section container, magic "MTL1", see mtc/distill.h): a JSON
 * "header", then "chunk:<i>" sections of rows_per_chunk rows each (tasks
 * concatenated per row, f32 or f16) and optional "hints:<i>" sections with
 * teacher 0's trunk output. Memory while writing is bounded by one chunk.
 *
 * Not here: the KD loss itself (core/train.c, mtc_loss_kd in core/loss.c).
 */
#include "mtc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MTL_MAGIC "MTL1"
#define MTL_FORMAT_VERSION 1
#define MTL_HEADER_MAX ((uint64_t)1 << 20)
#define MTL_MAX_TEACHERS 8
#define MTL_MAX_DIM 65536
#define MTL_MAX_ROWS_PER_CHUNK (1 << 20)
#define MTL_MAX_HINT_DIM (1 << 24)
#define MTL_MAX_COPIES 64

/* ---- half precision ----------------------------------------------------- */

uint16_t mtc_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN */
    if (ax == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);                          /* inf */
    if (ax > 0x477fe000u) return (uint16_t)(sign | 0x7bffu); /* beyond 65504: saturate */
    if (ax >= 0x38800000u) {                                 /* normal half */
        uint32_t h = ((((ax >> 23) - 127 + 15) << 10) | ((ax & 0x7fffffu) >> 13));
        uint32_t rest = ax & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* nearest even */
        return (uint16_t)(sign | h);
    }
    /* subnormal half: value / 2^-24 = mant * 2^(E-126), rounded to nearest even */
    uint32_t E = ax >> 23;
    if (E < 102) return sign; /* < 2^-25: rounds to zero (E=0 float subnormals too) */
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u, shift = 126 - E;
    uint32_t h = mant >> shift, rest = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float mtc_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float v = (float)m * (1.0f / 16777216.0f); /* m * 2^-24, exact */
        return sign ? -v : v;
    }
    if (e == 31) x = sign | 0x7f800000u | (m << 13);
    else x = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* ---- the tasks of a file ------------------------------------------------ */

typedef struct ftask {
    char name[MTC_NAME_MAX];
    int kind, dim;
    int teacher;                 /* chosen teacher, -1 = average */
    int nsrc;
    int src[MTL_MAX_TEACHERS];   /* teachers used */
    int src_task[MTL_MAX_TEACHERS]; /* the task's index in that teacher */
    int64_t off;                 /* first column within a row */
} ftask;

static const char *teacher_label(const mtc_label_cfg *c, int k, char *buf, size_t n)
{
    if (c->teacher_path[k][0]) snprintf(buf, n, "%s", c->teacher_path[k]);
    else snprintf(buf, n, "teacher %d", k);
    return buf;
}

void mtc_label_cfg_default(mtc_label_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->batch = 256;
    c->rows_per_chunk = 4096;
    c->aug_copies = 1;
    c->aug = MTC_AUG_SHIFT; /* used only with aug_copies > 1 */
    for (int t = 0; t < MTC_MAX_TASKS; t++) c->task_teacher_idx[t] = -1;
}

/* Which teacher(s) give each task; *W = values per row. */
static int plan_tasks(const mtc_label_cfg *c, ftask *ft, int *nft, int64_t *W, mtc_err *e)
{
    char b1[1100], b2[1100];
    *nft = 0;
    *W = 0;
    if (c->nteachers < 1 || c->nteachers > MTL_MAX_TEACHERS)
        return mtc_err_set(e, MTC_EINPUT, "label: %d teachers (1 to %d allowed)", c->nteachers, MTL_MAX_TEACHERS);
    for (int k = 0; k < c->nteachers; k++)
        if (!c->teachers[k]) return mtc_err_set(e, MTC_EINPUT, "label: teacher %d missing", k);
    if (c->ntask_teacher < 0 || c->ntask_teacher > MTC_MAX_TASKS)
        return mtc_err_set(e, MTC_EINPUT, "label: %d task-teacher choices (at most %d)", c->ntask_teacher, MTC_MAX_TASKS);
    for (int i = 0; i < c->ntask_teacher; i++) {
        int k = c->task_teacher_idx[i];
        if (k < 0 || k >= c->nteachers)
            return mtc_err_set(e, MTC_EINPUT, "--task-teacher %s: teacher index %d out of range", c->task_teacher_name[i], k);
        if (mtc_spec_task_index(&c->teachers[k]->spec, c->task_teacher_name[i]) < 0)
            return mtc_err_set(e, MTC_EINPUT, "--task-teacher %s: %s has no task '%s'", c->task_teacher_name[i],
                               teacher_label(c, k, b1, sizeof b1), c->task_teacher_name[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(c->task_teacher_name[i], c->task_teacher_name[j]))
                return mtc_err_set(e, MTC_EINPUT, "--task-teacher: task '%s' named twice", c->task_teacher_name[i]);
    }
    for (int k = 0; k < c->nteachers; k++) {
        const mtc_spec *sk = &c->teachers[k]->spec;
        for (int t = 0; t < sk->ntasks; t++) {
            const char *name = sk->tasks[t].name;
            int seen = 0;
            for (int j = 0; j < *nft && !seen; j++) seen = !strcmp(ft[j].name, name);
            if (seen) continue;
            int chosen = -1;
            for (int i = 0; i < c->ntask_teacher; i++)
                if (!strcmp(c->task_teacher_name[i], name)) chosen = c->task_teacher_idx[i];
            ftask f;
            memset(&f, 0, sizeof f);
            snprintf(f.name, sizeof f.name, "%s", name);
            f.teacher = chosen;
            for (int q = 0; q < c->nteachers; q++) {
                if (chosen >= 0 ? q != chosen : c->task_only[q]) continue;
                int tq = mtc_spec_task_index(&c->teachers[q]->spec, name);
                if (tq < 0) continue;
                f.src[f.nsrc] = q;
                f.src_task[f.nsrc++] = tq;
            }
            if (!f.nsrc) continue; /* only in a task-only teacher that was not chosen for it */
            const mtc_task_spec *s0 = &c->teachers[f.src[0]]->spec.tasks[f.src_task[0]];
            f.kind = s0->kind;
            f.dim = s0->dim;
            for (int i = 1; i < f.nsrc; i++) {
                const mtc_task_spec *si = &c->teachers[f.src[i]]->spec.tasks[f.src_task[i]];
                if (si->kind != f.kind || si->dim != f.dim)
                    return mtc_err_set(e, MTC_EINPUT,
                                       "task '%s': %s has %s with %d outputs, %s has %s with %d: cannot average "
                                       "(choose one with --task-teacher %s=FILE)",
                                       name, teacher_label(c, f.src[0], b1, sizeof b1), mtc_task_kind_name(f.kind),
                                       f.dim, teacher_label(c, f.src[i], b2, sizeof b2),
                                       mtc_task_kind_name(si->kind), si->dim, name);
            }
            if (*nft >= MTC_MAX_TASKS)
                return mtc_err_set(e, MTC_EINPUT, "label: the teachers have more than %d tasks together", MTC_MAX_TASKS);
            f.off = *W;
            *W += f.dim;
            ft[(*nft)++] = f;
        }
    }
    if (!*nft) return mtc_err_set(e, MTC_EINPUT, "label: no task to label");
    return 0;
}

/* ---- writer ------------------------------------------------------------- */

static const char *aug_kind_name(int aug)
{
    return aug == (MTC_AUG_SHIFT | MTC_AUG_FLIP) ? "shift+flip" : aug == MTC_AUG_FLIP ? "flip" : "shift";
}

static void header_json(mtc_jw *w, const mtc_label_cfg *c, const uint64_t *hash, const mtc_dataset *d,
                        const ftask *ft, int nft, int64_t nchunks, int64_t hint_dim)
{
    char h[17];
    mtc_jw_obj(w);
    mtc_jw_kstr(w, "format", "mtc soft labels");
    mtc_jw_kint(w, "version", MTL_FORMAT_VERSION);
    mtc_jw_key(w, "teachers");
    mtc_jw_arr(w);
    for (int k = 0; k < c->nteachers; k++) {
        mtc_jw_obj(w);
        mtc_jw_kstr(w, "path", c->teacher_path[k]);
        mtc_jw_key(w, "hash");
        if (c->teacher_path[k][0]) {
            snprintf(h, sizeof h, "%016llx", (unsigned long long)hash[k]);
            mtc_jw_str(w, h);
        } else {
            mtc_jw_null(w);
        }
        mtc_jw_key(w, "task_only");
        mtc_jw_bool(w, c->task_only[k]);
        mtc_jw_obj_end(w);
    }
    mtc_jw_arr_end(w);
    mtc_jw_key(w, "data");
    mtc_jw_obj(w);
    mtc_jw_kstr(w, "name", d->name);
    mtc_jw_kstr(w, "split", d->split);
    mtc_jw_kint(w, "n", d->n);
    snprintf(h, sizeof h, "%016llx", (unsigned long long)d->hash);
    mtc_jw_kstr(w, "hash", h);
    mtc_jw_obj_end(w);
    mtc_jw_key(w, "tasks");
    mtc_jw_arr(w);
    for (int j = 0; j < nft; j++) {
        mtc_jw_obj(w);
        mtc_jw_kstr(w, "name", ft[j].name);
        mtc_jw_kstr(w, "kind", mtc_task_kind_name(ft[j].kind));
        mtc_jw_kint(w, "dim", ft[j].dim);
        mtc_jw_kint(w, "teacher", ft[j].teacher);
        mtc_jw_key(w, "sources");
        mtc_jw_arr(w);
        for (int i = 0; i < ft[j].nsrc; i++) mtc_jw_int(w, ft[j].src[i]);
        mtc_jw_arr_end(w);
        mtc_jw_obj_end(w);
    }
    mtc_jw_arr_end(w);
    mtc_jw_kstr(w, "dtype", c->f16 ? "f16" : "f32");
    mtc_jw_kint(w, "rows_per_chunk", c->rows_per_chunk);
    mtc_jw_kint(w, "chunks", nchunks);
    mtc_jw_kint(w, "hints", hint_dim);
    if (c->aug_copies > 1) {
        mtc_jw_key(w, "augmentation");
        mtc_jw_obj(w);
        mtc_jw_kstr(w, "kind", aug_kind_name(c->aug));
        mtc_jw_kint(w, "copies", c->aug_copies);
        snprintf(h, sizeof h, "%016llx", (unsigned long long)c->aug_seed);
        mtc_jw_kstr(w, "seed", h);
        mtc_jw_obj_end(w);
    } else {
        mtc_jw_kstr(w, "augmentation", "none");
    }
    mtc_jw_obj_end(w);
}

static void store(void *dst, int64_t i, float v, int f16)
{
    if (f16) ((uint16_t *)dst)[i] = mtc_f32_to_f16(v);
    else ((float *)dst)[i] = v;
}

typedef struct wbuf {
    float *x, *hint;
    float *out[MTL_MAX_TEACHERS][MTC_MAX_TASKS]; /* the teachers' outputs, batch rows */
    double *acc;
    int64_t *bi;
    int *view;
    void *chunk, *hchunk;
    mtc_rt *rt[MTL_MAX_TEACHERS]; /* NULL: teacher not used */
} wbuf;

static void wbuf_free(wbuf *b)
{
    free(b->x); free(b->hint); free(b->acc); free(b->bi); free(b->view); free(b->chunk); free(b->hchunk);
    for (int k = 0; k < MTL_MAX_TEACHERS; k++) {
        mtc_rt_free(b->rt[k]);
        for (int t = 0; t < MTC_MAX_TASKS; t++) free(b->out[k][t]);
    }
}

/* Teacher k in the runtime, when some task (or the hints) uses it: a soft
 * label is what the teacher's runtime outputs for the sample, the same bytes
 * whatever the batch, chunking, views or threads (the sparse kernel, whose
 * sums depend on the batch, stays off). */
static int teacher_rt(const mtc_label_cfg *c, const ftask *ft, int nft, int64_t D, int k, wbuf *b, mtc_err *e)
{
    int used = k == 0 && D > 0;
    for (int j = 0; j < nft && !used; j++)
        for (int i = 0; i < ft[j].nsrc; i++) used |= ft[j].src[i] == k;
    if (!used) return 0;
    char where[1100];
    teacher_label(c, k, where, sizeof where);
    int rc = mtc_rt_from_model(c->teachers[k], where, &b->rt[k], e);
    if (rc) return rc;
    mtc_rt_set_threads(b->rt[k], mtc_get_threads());
    mtc_rt_set_sparse(b->rt[k], 0);
    if ((rc = mtc_rt_reserve(b->rt[k], c->batch, e))) return rc;
    const mtc_model *m = c->teachers[k];
    for (int t = 0; t < m->spec.ntasks; t++)
        if (!(b->out[k][t] = malloc((size_t)c->batch * (size_t)m->spec.tasks[t].dim * sizeof(float))))
            return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", where);
    return 0;
}

/* Rows [r0, r0+B) (row r = view r / n of sample r % n) through every
 * teacher used; averaged values (and hints) into the chunk buffers at row
 * `at`. */
static int label_batch(const mtc_label_cfg *c, const mtc_dataset *d, const ftask *ft, int nft, int64_t W,
                       int64_t D, int64_t r0, int B, int64_t at, wbuf *b, mtc_err *e)
{
    for (int i = 0; i < B; i++) {
        b->bi[i] = (r0 + i) % d->n;
        b->view[i] = (int)((r0 + i) / d->n);
    }
    mtc_data_batch_x_views(d, b->bi, b->view, B, c->aug, c->aug_seed, b->x);
    memset(b->acc, 0, (size_t)B * (size_t)W * sizeof(double));
    for (int k = 0; k < c->nteachers; k++) {
        if (!b->rt[k]) continue;
        /* cls/bin logits, reg outputs in label units */
        int rc = mtc_rt_run_trunk(b->rt[k], b->x, B, b->out[k], k == 0 && D > 0 ? b->hint : NULL, e);
        if (rc) return rc;
        if (k == 0 && D > 0)
            for (int64_t i = 0; i < (int64_t)B * D; i++) store(b->hchunk, at * D + i, b->hint[i], c->f16);
        for (int j = 0; j < nft; j++)
            for (int i = 0; i < ft[j].nsrc; i++) {
                if (ft[j].src[i] != k) continue;
                const float *o = b->out[k][ft[j].src_task[i]];
                int dim = ft[j].dim;
                for (int r = 0; r < B; r++)
                    for (int q = 0; q < dim; q++) b->acc[r * W + ft[j].off + q] += o[r * dim + q];
            }
    }
    for (int r = 0; r < B; r++)
        for (int j = 0; j < nft; j++)
            for (int q = 0; q < ft[j].dim; q++) {
                int64_t col = ft[j].off + q;
                store(b->chunk, (at + r) * W + col, (float)(b->acc[r * W + col] / ft[j].nsrc), c->f16);
            }
    return 0;
}

int mtc_soft_write(const char *path, const mtc_label_cfg *c, const mtc_dataset *d, mtc_err *e)
{
    ftask ft[MTC_MAX_TASKS];
    int nft, rc;
    int64_t W;
    char b1[1100];
    if (c->batch < 1 || c->batch > 65536) return mtc_err_set(e, MTC_EINPUT, "--batch %d: must be in [1, 65536]", c->batch);
    if (c->rows_per_chunk < 1 || c->rows_per_chunk > MTL_MAX_ROWS_PER_CHUNK)
        return mtc_err_set(e, MTC_EINPUT, "rows per chunk %d: must be in [1, %d]", c->rows_per_chunk, MTL_MAX_ROWS_PER_CHUNK);
    if (d->n < 1) return mtc_err_set(e, MTC_EINPUT, "%s: the data set is empty", d->name);
    if (c->aug_copies < 1 || c->aug_copies > MTL_MAX_COPIES)
        return mtc_err_set(e, MTC_EINPUT, "--augment-copies %d: must be in [1, %d]", c->aug_copies, MTL_MAX_COPIES);
    if (c->aug_copies > 1 && (!(c->aug & (MTC_AUG_SHIFT | MTC_AUG_FLIP)) || (c->aug & ~(MTC_AUG_SHIFT | MTC_AUG_FLIP))))
        return mtc_err_set(e, MTC_EINPUT, "--augment-copies %d needs an augmentation (shift and/or flip)", c->aug_copies);
    if (c->aug_copies > 1 && !d->x_u8)
        return mtc_err_set(e, MTC_EINPUT, "%s: --augment-copies needs an image data set (this one has features)", d->name);
    if ((rc = plan_tasks(c, ft, &nft, &W, e))) return rc;
    uint64_t hash[MTL_MAX_TEACHERS] = {0};
    for (int k = 0; k < c->nteachers; k++) {
        mtc_err ie = {0};
        if (mtc_model_check_input(c->teachers[k], d, &ie))
            return mtc_err_set(e, MTC_EINPUT, "%s: %s", teacher_label(c, k, b1, sizeof b1), ie.msg);
        if (c->teacher_path[k][0] && (rc = mtc_file_hash(c->teacher_path[k], &hash[k], e))) return rc;
    }
    int64_t D = c->hints ? c->teachers[0]->trunk_out : 0;
    if (c->hints && (D < 1 || D > MTL_MAX_HINT_DIM))
        return mtc_err_set(e, MTC_EINPUT, "--hints: %s has no usable trunk output", teacher_label(c, 0, b1, sizeof b1));
    int64_t R = d->n * c->aug_copies; /* rows: every view of every sample */
    int64_t rpc = c->rows_per_chunk, nchunks = (R + rpc - 1) / rpc;
    size_t es = c->f16 ? 2 : 4;
    int64_t S = mtc_data_sample_size(d);
    wbuf b = {0};
    for (int k = 0; k < c->nteachers; k++)
        if ((rc = teacher_rt(c, ft, nft, D, k, &b, e))) {
            wbuf_free(&b);
            return rc;
        }
    b.x = malloc((size_t)c->batch * (size_t)S * sizeof(float));
    b.hint = D ? malloc((size_t)c->batch * (size_t)D * sizeof(float)) : NULL;
    b.acc = malloc((size_t)c->batch * (size_t)W * sizeof(double));
    b.bi = malloc((size_t)c->batch * sizeof(int64_t));
    b.view = malloc((size_t)c->batch * sizeof(int));
    b.chunk = malloc((size_t)rpc * (size_t)W * es);
    b.hchunk = D ? malloc((size_t)rpc * (size_t)D * es) : NULL;
    if (!b.x || (D && !b.hint) || !b.acc || !b.bi || !b.view || !b.chunk || (D && !b.hchunk)) {
        wbuf_free(&b);
        return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    }
    /* An MPI job (mpirun -np N mtc label): chunk ci is labelled by rank
     * ci % N and streamed to rank 0, which writes every chunk in order, so
     * the file is the one a single process writes, byte for byte, and no
     * rank holds more than a chunk. */
    enum { MTL_TAG = 17 }; /* one tag: MPI keeps one sender's messages in order */
    const int rank = mtc_comm_rank(), np = mtc_comm_size();
    mtc_cwriter w;
    if (rank == 0) {
        mtc_jw hj;
        mtc_jw_init(&hj);
        header_json(&hj, c, hash, d, ft, nft, nchunks, D);
        if (hj.oom) rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
        if (!rc) rc = mtc_cwriter_open(&w, path, MTL_MAGIC, e);
        if (rc) { mtc_jw_free(&hj); wbuf_free(&b); return rc; }
        rc = mtc_cwriter_section(&w, "header", hj.buf, hj.len, e);
        mtc_jw_free(&hj);
    }
    for (int64_t ci = 0; ci < nchunks && !rc; ci++) {
        int64_t r0 = ci * rpc, rows = R - r0 < rpc ? R - r0 : rpc;
        const int owner = (int)(ci % np);
        if (owner != rank && rank != 0) continue;
        if (owner == rank)
            for (int64_t s = 0; s < rows && !rc; s += c->batch) {
                int B = (int)(rows - s < c->batch ? rows - s : c->batch);
                rc = label_batch(c, d, ft, nft, W, D, r0 + s, B, s, &b, e);
            }
        if (rc) break;
        const size_t cb = (size_t)rows * (size_t)W * es, hb = (size_t)rows * (size_t)D * es;
        if (rank != 0) { /* to rank 0, in chunk order */
            rc = mtc_comm_send(b.chunk, cb, 0, MTL_TAG, e);
            if (!rc && D) rc = mtc_comm_send(b.hchunk, hb, 0, MTL_TAG, e);
            continue;
        }
        if (owner != 0) {
            rc = mtc_comm_recv(b.chunk, cb, owner, MTL_TAG, e);
            if (!rc && D) rc = mtc_comm_recv(b.hchunk, hb, owner, MTL_TAG, e);
            if (rc) break;
        }
        char name[64];
        snprintf(name, sizeof name, "chunk:%lld", (long long)ci);
        rc = mtc_cwriter_section(&w, name, b.chunk, (uint64_t)rows * (uint64_t)W * es, e);
        if (!rc && D) {
            snprintf(name, sizeof name, "hints:%lld", (long long)ci);
            rc = mtc_cwriter_section(&w, name, b.hchunk, (uint64_t)rows * (uint64_t)D * es, e);
        }
        if (!rc && c->progress) c->progress(c->progress_ctx, r0 + rows, R);
    }
    wbuf_free(&b);
    if (rank != 0) return rc;
    if (rc) {
        mtc_cwriter_abort(&w);
        return rc;
    }
    return mtc_cwriter_commit(&w, e);
}

/* ---- reader ------------------------------------------------------------- */

typedef struct mtl_info {
    char data_name[256], data_split[16], data_hash[17];
    int64_t n, rows, rpc, nchunks, hint_dim, W; /* rows = copies * n */
    int f16, copies, aug;
    uint64_t aug_seed;
    int ntasks;
    ftask tasks[MTC_MAX_TASKS];
} mtl_info;

static int read_header_text(mtc_creader *r, char **text, uint64_t *len, mtc_err *e)
{
    int i = mtc_creader_find(r, "header");
    if (i < 0) return mtc_err_set(e, MTC_EINPUT, "%s: no 'header' section (not a soft-label file?)", r->path);
    if (r->sections[i].raw_len > MTL_HEADER_MAX)
        return mtc_err_set(e, MTC_EINPUT, "%s: header of %llu bytes is larger than %llu", r->path,
                           (unsigned long long)r->sections[i].raw_len, (unsigned long long)MTL_HEADER_MAX);
    return mtc_creader_read(r, i, (void **)text, len, e);
}

/* An integer field in [lo, hi]. */
static int hdr_int(const char *path, const mtc_json *o, const char *key, int64_t lo, int64_t hi, int64_t *v,
                   mtc_err *e)
{
    const mtc_json *j = mtc_json_get(o, key);
    if (!j || j->type != MTC_JNUM || j->num != floor(j->num) || j->num < (double)lo || j->num > (double)hi)
        return mtc_err_set(e, MTC_EINPUT, "%s: header field '%s' missing or not an integer in [%lld, %lld]", path,
                           key, (long long)lo, (long long)hi);
    *v = (int64_t)j->num;
    return 0;
}

static int hdr_str(const char *path, const mtc_json *o, const char *key, char *dst, size_t n, mtc_err *e)
{
    const char *s = mtc_json_str(o, key);
    if (!s || strlen(s) >= n)
        return mtc_err_set(e, MTC_EINPUT, "%s: header field '%s' missing or longer than %zu bytes", path, key, n - 1);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int parse_kind(const char *s)
{
    for (int k = MTC_TASK_CLS; k <= MTC_TASK_REG; k++)
        if (!strcmp(s, mtc_task_kind_name(k))) return k;
    return -1;
}

/* "augmentation": "none" (or absent) | {"kind", "copies", "seed"}. */
static int parse_aug(const char *path, const mtc_json *h, mtl_info *in, mtc_err *e)
{
    in->copies = 1, in->aug = 0, in->aug_seed = 0;
    const mtc_json *a = mtc_json_get(h, "augmentation");
    if (!a || (a->type == MTC_JSTR && !strcmp(a->str, "none"))) return 0;
    if (a->type != MTC_JOBJ) return mtc_err_set(e, MTC_EINPUT, "%s: header 'augmentation' is neither \"none\" nor an object", path);
    int64_t k;
    int rc = hdr_int(path, a, "copies", 1, MTL_MAX_COPIES, &k, e);
    if (rc) return rc;
    const char *kind = mtc_json_str(a, "kind"), *seed = mtc_json_str(a, "seed");
    static const int augs[3] = {MTC_AUG_SHIFT, MTC_AUG_FLIP, MTC_AUG_SHIFT | MTC_AUG_FLIP};
    for (int i = 0; i < 3 && kind; i++)
        if (!strcmp(kind, aug_kind_name(augs[i]))) in->aug = augs[i];
    if (!in->aug) return mtc_err_set(e, MTC_EINPUT, "%s: augmentation kind must be shift, flip or shift+flip", path);
    char *end = NULL;
    if (!seed || strlen(seed) != 16 || (in->aug_seed = strtoull(seed, &end, 16), *end))
        return mtc_err_set(e, MTC_EINPUT, "%s: augmentation seed must be 16 hex digits", path);
    in->copies = (int)k;
    return 0;
}

static int parse_info(const char *path, const mtc_json *h, mtl_info *in, mtc_err *e)
{
    memset(in, 0, sizeof *in);
    int rc;
    int64_t v;
    if (h->type != MTC_JOBJ) return mtc_err_set(e, MTC_EINPUT, "%s: header is not a JSON object", path);
    if ((rc = hdr_int(path, h, "version", MTL_FORMAT_VERSION, MTL_FORMAT_VERSION, &v, e))) return rc;
    const mtc_json *d = mtc_json_get(h, "data");
    if (!d || d->type != MTC_JOBJ) return mtc_err_set(e, MTC_EINPUT, "%s: header has no 'data' object", path);
    if ((rc = hdr_str(path, d, "name", in->data_name, sizeof in->data_name, e))) return rc;
    if ((rc = hdr_str(path, d, "split", in->data_split, sizeof in->data_split, e))) return rc;
    if ((rc = hdr_str(path, d, "hash", in->data_hash, sizeof in->data_hash, e))) return rc;
    if ((rc = hdr_int(path, d, "n", 1, (int64_t)1 << 50, &in->n, e))) return rc;
    if ((rc = hdr_int(path, h, "rows_per_chunk", 1, MTL_MAX_ROWS_PER_CHUNK, &in->rpc, e))) return rc;
    if ((rc = hdr_int(path, h, "hints", 0, MTL_MAX_HINT_DIM, &in->hint_dim, e))) return rc;
    if ((rc = parse_aug(path, h, in, e))) return rc;
    in->rows = in->n * in->copies;
    in->nchunks = (in->rows + in->rpc - 1) / in->rpc;
    if ((rc = hdr_int(path, h, "chunks", in->nchunks, in->nchunks, &v, e))) return rc;
    const char *dt = mtc_json_str(h, "dtype");
    if (!dt || (strcmp(dt, "f32") && strcmp(dt, "f16")))
        return mtc_err_set(e, MTC_EINPUT, "%s: header dtype must be \"f32\" or \"f16\"", path);
    in->f16 = !strcmp(dt, "f16");
    const mtc_json *ts = mtc_json_get(h, "tasks");
    if (!ts || ts->type != MTC_JARR || ts->n < 1 || ts->n > MTC_MAX_TASKS)
        return mtc_err_set(e, MTC_EINPUT, "%s: header needs 'tasks', 1 to %d of them", path, MTC_MAX_TASKS);
    for (int j = 0; j < ts->n; j++) {
        const mtc_json *t = &ts->items[j];
        ftask *f = &in->tasks[j];
        char kind[16];
        if (t->type != MTC_JOBJ) return mtc_err_set(e, MTC_EINPUT, "%s: header task %d is not an object", path, j);
        if ((rc = hdr_str(path, t, "name", f->name, sizeof f->name, e))) return rc;
        if ((rc = hdr_str(path, t, "kind", kind, sizeof kind, e))) return rc;
        if ((f->kind = parse_kind(kind)) < 0)
            return mtc_err_set(e, MTC_EINPUT, "%s: task '%s' has unknown kind '%s'", path, f->name, kind);
        if ((rc = hdr_int(path, t, "dim", 1, MTL_MAX_DIM, &v, e))) return rc;
        f->dim = (int)v;
        for (int q = 0; q < j; q++)
            if (!strcmp(in->tasks[q].name, f->name))
                return mtc_err_set(e, MTC_EINPUT, "%s: task '%s' listed twice", path, f->name);
        f->off = in->W;
        in->W += f->dim;
    }
    in->ntasks = ts->n;
    return 0;
}

static int info_find(const mtl_info *in, const char *name)
{
    for (int j = 0; j < in->ntasks; j++)
        if (!strcmp(in->tasks[j].name, name)) return j;
    return -1;
}

static void task_list(const mtl_info *in, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int j = 0; j < in->ntasks && len + 2 < n; j++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", j ? ", " : "", in->tasks[j].name);
}

/* Checks the file's data set and maps student tasks to file tasks. */
static int check_against(const char *path, const mtl_info *in, const mtc_model *m, const mtc_dataset *d,
                         int allow_missing, int *map, mtc_err *e)
{
    char h[17];
    snprintf(h, sizeof h, "%016llx", (unsigned long long)d->hash);
    const int64_t dn = mtc_data_sharded(d) ? d->split_n : d->n; /* a shard (--shard-data): the whole split's */
    if (strcmp(in->data_name, d->name) || strcmp(in->data_split, d->split) || in->n != dn || strcmp(in->data_hash, h))
        return mtc_err_set(e, MTC_EINPUT,
                           "%s: made for data set %s (%s split, %lld samples, hash %s), not %s (%s split, %lld "
                           "samples, hash %s)",
                           path, in->data_name, in->data_split, (long long)in->n, in->data_hash, d->name, d->split,
                           (long long)dn, h);
    char list[1024];
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        int j = map[t] = info_find(in, ts->name);
        if (j < 0) {
            if (allow_missing) continue;
            task_list(in, list, sizeof list);
            return mtc_err_set(e, MTC_EINPUT, "%s: no soft labels for task '%s' (the file has: %s)", path, ts->name,
                               list);
        }
        const ftask *f = &in->tasks[j];
        if (f->kind != ts->kind || f->dim != ts->dim)
            return mtc_err_set(e, MTC_EINPUT, "%s: task '%s' is %s with %d outputs in the file, the student has %s with %d",
                               path, ts->name, mtc_task_kind_name(f->kind), f->dim, mtc_task_kind_name(ts->kind),
                               ts->dim);
    }
    return 0;
}

static float load(const void *src, int64_t i, int f16)
{
    return f16 ? mtc_f16_to_f32(((const uint16_t *)src)[i]) : ((const float *)src)[i];
}

/* Reads section "<prefix>:<ci>", which must hold exactly `bytes` bytes. */
static int read_chunk(mtc_creader *r, const char *prefix, int64_t ci, uint64_t bytes, void **data, mtc_err *e)
{
    char name[64];
    snprintf(name, sizeof name, "%s:%lld", prefix, (long long)ci);
    int i = mtc_creader_find(r, name);
    if (i < 0) return mtc_err_set(e, MTC_EINPUT, "%s: section '%s' missing (damaged file)", r->path, name);
    if (r->sections[i].raw_len != bytes)
        return mtc_err_set(e, MTC_EINPUT, "%s: section '%s' holds %llu bytes, the header implies %llu", r->path,
                           name, (unsigned long long)r->sections[i].raw_len, (unsigned long long)bytes);
    uint64_t len;
    return mtc_creader_read(r, i, data, &len, e);
}

/* Every chunk (and hints chunk, when wanted) must be present with the size
 * the header implies before anything of n rows is allocated: the buffers
 * are then bounded by the section sizes, which the container bounds by the
 * file size. */
static int check_chunks(mtc_creader *r, const mtl_info *in, int hints, mtc_err *e)
{
    size_t es = in->f16 ? 2 : 4;
    for (int64_t ci = 0; ci < in->nchunks; ci++) {
        int64_t r0 = ci * in->rpc, rows = in->rows - r0 < in->rpc ? in->rows - r0 : in->rpc;
        for (int k = 0; k < 1 + (hints && in->hint_dim > 0); k++) {
            char name[64];
            uint64_t bytes = (uint64_t)rows * (uint64_t)(k ? in->hint_dim : in->W) * es;
            snprintf(name, sizeof name, "%s:%lld", k ? "hints" : "chunk", (long long)ci);
            int i = mtc_creader_find(r, name);
            if (i < 0) return mtc_err_set(e, MTC_EINPUT, "%s: section '%s' missing (damaged file)", r->path, name);
            if (r->sections[i].raw_len != bytes)
                return mtc_err_set(e, MTC_EINPUT, "%s: section '%s' holds %llu bytes, the header implies %llu",
                                   r->path, name, (unsigned long long)r->sections[i].raw_len,
                                   (unsigned long long)bytes);
        }
    }
    return 0;
}

static int alloc_rows(float **p, int64_t n, int64_t dim, const char *path, mtc_err *e)
{
    if (n > INT64_MAX / 4 / dim) return mtc_err_set(e, MTC_EINPUT, "%s: %lld x %lld values overflow", path, (long long)n, (long long)dim);
    *p = malloc((size_t)(n * dim) * sizeof(float));
    if (!*p) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory for %lld x %lld soft labels", path, (long long)n, (long long)dim);
    return 0;
}

/* Row R (view R / n of sample R % n) of the file is row
 * (R / n) k + (R % n - lo) of the window of samples [lo, lo + k), or -1. */
static int64_t window_row(int64_t R, int64_t n, int64_t lo, int64_t k)
{
    int64_t s = R % n;
    return s >= lo && s < lo + k ? R / n * k + (s - lo) : -1;
}

/* Keeps the rows of samples [lo, lo + k) (every sample: lo 0, k n); every
 * row is still read and checked. */
static int read_body(mtc_creader *r, const mtl_info *in, const mtc_model *m, const int *map, mtc_soft *out,
                     float *hints, int64_t lo, int64_t k, mtc_err *e)
{
    size_t es = in->f16 ? 2 : 4;
    int rc = 0;
    for (int64_t ci = 0; ci < in->nchunks && !rc; ci++) {
        int64_t r0 = ci * in->rpc, rows = in->rows - r0 < in->rpc ? in->rows - r0 : in->rpc;
        void *buf = NULL;
        if ((rc = read_chunk(r, "chunk", ci, (uint64_t)rows * (uint64_t)in->W * es, &buf, e))) break;
        for (int t = 0; t < m->spec.ntasks && !rc; t++) {
            if (!out->v[t]) continue;
            const ftask *f = &in->tasks[map[t]];
            for (int64_t i = 0; i < rows && !rc; i++) {
                const int64_t w = window_row(r0 + i, in->n, lo, k); /* -1: another shard's row, checked only */
                for (int q = 0; q < f->dim; q++) {
                    float v = load(buf, i * in->W + f->off + q, in->f16);
                    if (!isfinite(v)) {
                        rc = mtc_err_set(e, MTC_EINPUT, "%s: non-finite soft label for task '%s' at sample %lld "
                                         "(view %lld)", r->path, f->name, (long long)((r0 + i) % in->n),
                                         (long long)((r0 + i) / in->n));
                        break;
                    }
                    if (w >= 0) out->v[t][w * f->dim + q] = v;
                }
            }
        }
        free(buf);
        if (rc || !hints) continue;
        int64_t D = in->hint_dim;
        if ((rc = read_chunk(r, "hints", ci, (uint64_t)rows * (uint64_t)D * es, &buf, e))) break;
        for (int64_t i = 0; i < rows; i++) {
            int64_t w = window_row(r0 + i, in->n, lo, k);
            if (w >= 0)
                for (int64_t q = 0; q < D; q++) hints[w * D + q] = load(buf, i * D + q, in->f16);
        }
        free(buf);
    }
    return rc;
}

int mtc_soft_read(const char *path, const mtc_model *student, const mtc_dataset *d, int allow_missing,
                  mtc_soft *out, float **hints, int *hint_dim, mtc_err *e)
{
    memset(out, 0, sizeof *out);
    if (hints) *hints = NULL;
    if (hint_dim) *hint_dim = 0;
    mtc_creader r;
    int rc = mtc_creader_open(&r, path, MTL_MAGIC, e);
    if (rc) return rc;
    char *text = NULL;
    uint64_t len = 0;
    mtc_json h = {0};
    mtl_info in;
    int map[MTC_MAX_TASKS];
    if ((rc = read_header_text(&r, &text, &len, e))) goto done;
    mtc_err je = {0};
    if (mtc_json_parse(text, (size_t)len, &h, &je)) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: header: %s", path, je.msg);
        goto done;
    }
    if ((rc = parse_info(path, &h, &in, e))) goto done;
    if ((rc = check_against(path, &in, student, d, allow_missing, map, e))) goto done;
    if ((rc = check_chunks(&r, &in, hints != NULL, e))) goto done;
    /* a shard (--shard-data): only its samples' rows, d->n of them per view */
    const int sh = mtc_data_sharded(d);
    const int64_t lo = sh ? d->shard_lo : 0, k = sh ? d->n : in.n;
    out->n = k;
    out->copies = in.copies, out->aug = in.aug, out->aug_seed = in.aug_seed;
    for (int t = 0; t < student->spec.ntasks && !rc; t++) {
        if (map[t] < 0) continue;
        out->dim[t] = in.tasks[map[t]].dim;
        rc = alloc_rows(&out->v[t], in.copies * k, out->dim[t], path, e);
    }
    float *hv = NULL;
    if (!rc && hints && in.hint_dim > 0) rc = alloc_rows(&hv, in.copies * k, in.hint_dim, path, e);
    if (!rc) rc = read_body(&r, &in, student, map, out, hv, lo, k, e);
    if (!rc && hv) {
        *hints = hv;
        if (hint_dim) *hint_dim = (int)in.hint_dim;
    } else {
        free(hv);
    }
done:
    if (rc) mtc_soft_free(out);
    mtc_json_free(&h);
    free(text);
    mtc_creader_close(&r);
    return rc;
}

void mtc_soft_free(mtc_soft *s)
{
    for (int t = 0; t < MTC_MAX_TASKS; t++) {
        free(s->v[t]);
        s->v[t] = NULL;
    }
    s->n = 0;
}

int mtc_soft_header(const char *path, char **json, mtc_err *e)
{
    *json = NULL;
    mtc_creader r;
    int rc = mtc_creader_open(&r, path, MTL_MAGIC, e);
    if (rc) return rc;
    uint64_t len;
    rc = read_header_text(&r, json, &len, e);
    mtc_creader_close(&r);
    return rc;
}
