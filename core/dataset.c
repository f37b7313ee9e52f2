/*
 * dataset.c — a data set once loaded: freeing, task lookup, hashing, and
 * batches converted on the fly (u8 images -> floats v/255, with shift/flip
 * augmentation and reproducible stored views). No loader here (data.c and
 * the format files): the runtime's library (libmtcrt.a) runs data sets
 * without pulling in PNG, CSV or JSON readers.
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void mtc_data_free(mtc_dataset *d)
{
    if (!d) return;
    free(d->x_u8);
    free(d->x_f32);
    free(d->group);
    free(d->key);
    for (int t = 0; t < d->ntasks && t < MTC_MAX_TASKS; t++) {
        mtc_data_task *k = &d->tasks[t];
        free(k->labels);
        free(k->targets);
        for (int i = 0; i < k->nclass_names; i++) free(k->class_names[i]);
        free(k->class_names);
    }
    memset(d, 0, sizeof *d);
}

int mtc_data_task_index(const mtc_dataset *d, const char *task)
{
    for (int t = 0; t < d->ntasks; t++)
        if (!strcmp(d->tasks[t].name, task)) return t;
    return -1;
}

int64_t mtc_data_labelled(const mtc_data_task *t, const int64_t *idx, int64_t n)
{
    int64_t c = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = idx ? idx[j] : j;
        c += t->labels ? t->labels[i] != MTC_LABEL_MISSING : mtc_row_labelled(t->targets + i * t->dim, t->dim);
    }
    return c;
}

int64_t mtc_data_sample_size(const mtc_dataset *d)
{
    return (int64_t)d->c * d->h * d->w;
}

int mtc_data_add_cls_task(mtc_dataset *d, const char *name, int dim,
                          const uint8_t *lab, mtc_err *e)
{
    if (d->ntasks >= MTC_MAX_TASKS)
        return mtc_err_set(e, MTC_EINPUT, "%s: more than %d tasks", name, MTC_MAX_TASKS);
    int32_t *l = malloc((size_t)(d->n ? d->n : 1) * sizeof *l);
    if (!l) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", name);
    for (int64_t i = 0; i < d->n; i++) {
        if (lab[i] >= dim) {
            free(l);
            return mtc_err_set(e, MTC_EINPUT, "task %s: label %d of sample %lld is not below %d",
                               name, lab[i], (long long)i, dim);
        }
        l[i] = lab[i];
    }
    mtc_data_task *k = &d->tasks[d->ntasks++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->kind = MTC_TASK_CLS;
    k->dim = dim;
    k->labels = l;
    return MTC_OK;
}

uint64_t mtc_data_hash_part(const mtc_dataset *d, int seg, uint64_t h)
{
    size_t ss = (size_t)mtc_data_sample_size(d), n = (size_t)d->n;
    if (seg == 0) {
        if (d->x_u8) h = mtc_fnv1a64(d->x_u8, n * ss, h);
        if (d->x_f32) h = mtc_fnv1a64(d->x_f32, n * ss * sizeof(float), h);
        return h;
    }
    const mtc_data_task *k = &d->tasks[seg - 1];
    if (k->labels) h = mtc_fnv1a64(k->labels, n * sizeof(int32_t), h);
    if (k->targets) h = mtc_fnv1a64(k->targets, n * (size_t)k->dim * sizeof(float), h);
    return h;
}

void mtc_data_rehash(mtc_dataset *d)
{
    uint64_t h = 0;
    for (int s = 0; s <= d->ntasks; s++) h = mtc_data_hash_part(d, s, h);
    d->hash = h;
}

int mtc_data_keep_range(mtc_dataset *d, int64_t lo, int64_t hi, mtc_err *e)
{
    if (lo < 0 || hi > d->n || lo > hi) return mtc_err_set(e, MTC_EINTERNAL, "keep_range: bad range");
    const int64_t k = hi - lo, ss = mtc_data_sample_size(d);
    if (d->x_u8) memmove(d->x_u8, d->x_u8 + lo * ss, (size_t)(k * ss));
    if (d->x_f32) memmove(d->x_f32, d->x_f32 + lo * ss, sizeof(float) * (size_t)(k * ss));
    for (int t = 0; t < d->ntasks; t++) {
        mtc_data_task *q = &d->tasks[t];
        if (q->labels) memmove(q->labels, q->labels + lo, sizeof(int32_t) * (size_t)k);
        if (q->targets) memmove(q->targets, q->targets + lo * q->dim, sizeof(float) * (size_t)(k * q->dim));
    }
    if (d->key) memmove(d->key, d->key + lo, sizeof(uint64_t) * (size_t)k);
    if (d->group) { /* ids in [0, k) again, in order of first appearance */
        memmove(d->group, d->group + lo, sizeof(int32_t) * (size_t)k);
        int32_t mx = -1;
        for (int64_t i = 0; i < k; i++) mx = d->group[i] > mx ? d->group[i] : mx;
        int32_t *map = malloc(sizeof(int32_t) * (size_t)(mx + 1 > 0 ? mx + 1 : 1));
        if (!map) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
        for (int32_t g = 0; g <= mx; g++) map[g] = -1;
        int32_t ng = 0;
        for (int64_t i = 0; i < k; i++) {
            if (map[d->group[i]] < 0) map[d->group[i]] = ng++;
            d->group[i] = map[d->group[i]];
        }
        free(map);
    }
    d->n = k;
    d->nparts = 0; /* the parts' counts no longer apply */
    return MTC_OK;
}

/* ---- batches ---------------------------------------------------------------- */

/* One u8 sample -> floats v/255, shifted by (dx,dy) with zero fill and
 * optionally mirrored: out(y,x) = in(y-dy, x') with x' = x-dx, or
 * w-1-(x-dx) when flipped. */
static void convert_u8(const uint8_t *src, int c, int h, int w, int dx, int dy,
                       int flip, float *out)
{
    if (!dx && !dy && !flip) { /* as it is: one straight loop, vectorised */
        const size_t n = (size_t)c * h * w;
        /* v·(1/255) in double, rounded once to float, is v/255.0f for
         * every byte (tests/test_data checks all 256): a multiply in
         * place of a divide, the slowest vector instruction */
        for (size_t i = 0; i < n; i++) out[i] = (float)((double)src[i] * (1.0 / 255.0));
        return;
    }
    for (int ch = 0; ch < c; ch++) {
        const uint8_t *p = src + (size_t)ch * h * w;
        float *o = out + (size_t)ch * h * w;
        for (int y = 0; y < h; y++) {
            int sy = y - dy;
            for (int x = 0; x < w; x++) {
                int sx = x - dx;
                if (flip) sx = w - 1 - sx;
                o[(size_t)y * w + x] = (sy < 0 || sy >= h || sx < 0 || sx >= w)
                                           ? 0.0f
                                           : p[(size_t)sy * w + sx] / 255.0f;
            }
        }
    }
}

/* The draws of one augmented sample: shift dx, dy, then flip. */
static void draw_aug(int aug, mtc_rng *rng, int *dx, int *dy, int *flip)
{
    *dx = *dy = *flip = 0;
    if (!rng) return;
    if (aug & MTC_AUG_SHIFT) {
        *dx = (int)mtc_rng_below(rng, 5) - 2;
        *dy = (int)mtc_rng_below(rng, 5) - 2;
    }
    if (aug & MTC_AUG_FLIP) *flip = (int)mtc_rng_below(rng, 2);
}

/* Samples idx[0..B) to floats; an image sample is shifted/flipped as view
 * view[b] of seed when view is given, else by draws from rng (none when rng
 * is NULL). The draws are made first, in sample order, so that the pool's
 * split of the conversion (slices of samples, pool NULL: one) changes no
 * value. The next samples' bytes are prefetched: a random sample of the
 * training split is a DRAM miss, and waiting for them one line at a time
 * made this half as costly as the student's forward pass. */
#define BX_CHUNK 256 /* samples whose draws are held at once */
#define BX_AHEAD 4   /* samples prefetched ahead */

typedef struct bx_job {
    const mtc_dataset *d;
    const int64_t *idx;
    const int8_t *dx, *dy, *flip;
    float *x;
    int B, P;
} bx_job;

static inline void prefetch_sample(const uint8_t *p, size_t ss)
{
    for (size_t o = 0; o < ss; o += 64) __builtin_prefetch(p + o);
}

static void bx_task(void *v, int k)
{
    const bx_job *j = v;
    const mtc_dataset *d = j->d;
    const size_t ss = (size_t)mtc_data_sample_size(d);
    const int lo = (int)((int64_t)j->B * k / j->P), hi = (int)((int64_t)j->B * (k + 1) / j->P);
    for (int b = lo; b < hi && b < lo + BX_AHEAD; b++) prefetch_sample(d->x_u8 + (size_t)j->idx[b] * ss, ss);
    for (int b = lo; b < hi; b++) {
        if (b + BX_AHEAD < hi) prefetch_sample(d->x_u8 + (size_t)j->idx[b + BX_AHEAD] * ss, ss);
        convert_u8(d->x_u8 + (size_t)j->idx[b] * ss, d->c, d->h, d->w, j->dx[b], j->dy[b], j->flip[b],
                   j->x + (size_t)b * ss);
    }
}

static void batch_x(const mtc_dataset *d, const int64_t *idx, int B, int aug, mtc_rng *rng, const int *view,
                    uint64_t seed, float *x, mtc_pool *pool)
{
    size_t ss = (size_t)mtc_data_sample_size(d);
    if (d->x_f32) { /* features: plain copy, augmentation does not apply */
        for (int b = 0; b < B; b++) memcpy(x + (size_t)b * ss, d->x_f32 + (size_t)idx[b] * ss, ss * sizeof(float));
        return;
    }
    int8_t dx[BX_CHUNK], dy[BX_CHUNK], flip[BX_CHUNK];
    for (int b0 = 0; b0 < B; b0 += BX_CHUNK) {
        const int n = B - b0 < BX_CHUNK ? B - b0 : BX_CHUNK;
        for (int b = 0; b < n; b++) {
            int ddx, ddy, f;
            if (view) mtc_data_view(aug, seed, d->shard_lo + idx[b0 + b], view[b0 + b], &ddx, &ddy, &f); /* the split's index */
            else draw_aug(aug, rng, &ddx, &ddy, &f);
            dx[b] = (int8_t)ddx, dy[b] = (int8_t)ddy, flip[b] = (int8_t)f;
        }
        /* a slice per thread when each has a few samples' work */
        int P = pool ? mtc_pool_size(pool) : 1;
        if ((int64_t)n * (int64_t)ss < (int64_t)P * 16384) P = 1;
        bx_job j = {d, idx + b0, dx, dy, flip, x + (size_t)b0 * ss, n, P};
        if (P > 1) mtc_pool_run(pool, P, bx_task, &j);
        else bx_task(&j, 0);
    }
}

void mtc_data_batch_x(const mtc_dataset *d, const int64_t *idx, int B, int aug,
                      mtc_rng *rng, float *x)
{
    batch_x(d, idx, B, aug, rng, NULL, 0, x, NULL);
}

void mtc_data_batch_x_pool(const mtc_dataset *d, const int64_t *idx, int B, int aug, mtc_rng *rng, float *x,
                           mtc_pool *pool)
{
    batch_x(d, idx, B, aug, rng, NULL, 0, x, pool);
}

void mtc_data_view(int aug, uint64_t seed, int64_t i, int k, int *dx, int *dy, int *flip)
{
    *dx = *dy = *flip = 0;
    if (k <= 0) return; /* view 0: the sample itself */
    /* an rng of its own per (seed, sample, view): the labeller and the
     * student rebuild the same image without sharing any stream */
    mtc_rng r;
    mtc_rng_seed(&r, seed ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)k << 48) ^ 0x5f0dd1ce5a17e5edull);
    draw_aug(aug, &r, dx, dy, flip);
}

void mtc_data_batch_x_views(const mtc_dataset *d, const int64_t *idx, const int *view, int B, int aug,
                            uint64_t seed, float *x)
{
    batch_x(d, idx, B, aug, NULL, view, seed, x, NULL); /* view NULL: every sample as it is */
}

void mtc_data_batch_x_views_pool(const mtc_dataset *d, const int64_t *idx, const int *view, int B, int aug,
                                 uint64_t seed, float *x, mtc_pool *pool)
{
    batch_x(d, idx, B, aug, NULL, view, seed, x, pool);
}
