/*
 * data.c — the dataset registry (mtc_data_open by name), freeing, hashing,
 * train/val splits, batch conversion with augmentation, and the
 * fashion-mnist loader.
 *
 * Formats live beside this file: idx.c, digits_json.c, multifashion.c
 * (also idx:DIR), csv.c, png_io.c (also png:DIR). Samples stay u8 (images) or
 * f32 (CSV features); batches are converted on the fly, never the whole set.
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef int (*loader_fn)(const char *, const char *, const mtc_data_opts *,
                         mtc_dataset *, mtc_err *);

/* name: exact name, or a prefix when it ends in ':' or '@'. */
static const struct {
    const char *name;
    loader_fn load;
} registry[] = {
    {"fashion-mnist", mtc_data_load_fashion},
    {"mnist-digits", mtc_data_load_digits},
    {"multifashion", mtc_data_load_multifashion},
    {"multifashion@", mtc_data_load_multifashion},
    {"idx:", mtc_data_load_idx_dir},
    {"csv:", mtc_data_load_csv},
    {"png:", mtc_data_load_png_dir},
};

int mtc_data_open(const char *name, const char *split, const mtc_data_opts *opts,
                  mtc_dataset *d, mtc_err *e)
{
    memset(d, 0, sizeof *d);
    if (!name || !*name)
        return mtc_err_set(e, MTC_EINPUT, "dataset: empty name");
    if (!split || (strcmp(split, "train") && strcmp(split, "test")))
        return mtc_err_set(e, MTC_EINPUT, "%s: split '%s' is not train or test", name,
                           split ? split : "(null)");
    if (strlen(name) >= sizeof d->name)
        return mtc_err_set(e, MTC_EINPUT, "%.64s...: dataset name too long", name);
    mtc_data_opts none;
    if (!opts) { memset(&none, 0, sizeof none); opts = &none; }
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
        const char *r = registry[i].name;
        size_t l = strlen(r);
        int prefix = r[l - 1] == ':' || r[l - 1] == '@';
        if (prefix ? strncmp(name, r, l) != 0 : strcmp(name, r) != 0) continue;
        int rc = registry[i].load(prefix ? name + l : "", split, opts, d, e);
        if (rc) { mtc_data_free(d); return rc; }
        snprintf(d->name, sizeof d->name, "%s", name);
        snprintf(d->split, sizeof d->split, "%s", split);
        mtc_data_rehash(d);
        return MTC_OK;
    }
    return mtc_err_set(e, MTC_EINPUT,
                       "%s: unknown dataset (known: fashion-mnist, mnist-digits, "
                       "multifashion[@SEED], idx:DIR, csv:PATH, png:DIR)", name);
}

void mtc_data_free(mtc_dataset *d)
{
    if (!d) return;
    free(d->x_u8);
    free(d->x_f32);
    free(d->group);
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

void mtc_data_rehash(mtc_dataset *d)
{
    uint64_t h = 0;
    size_t ss = (size_t)mtc_data_sample_size(d), n = (size_t)d->n;
    if (d->x_u8) h = mtc_fnv1a64(d->x_u8, n * ss, h);
    if (d->x_f32) h = mtc_fnv1a64(d->x_f32, n * ss * sizeof(float), h);
    for (int t = 0; t < d->ntasks; t++) {
        const mtc_data_task *k = &d->tasks[t];
        if (k->labels) h = mtc_fnv1a64(k->labels, n * sizeof(int32_t), h);
        if (k->targets) h = mtc_fnv1a64(k->targets, n * (size_t)k->dim * sizeof(float), h);
    }
    d->hash = h;
}

/* ---- bilinear resize ------------------------------------------------------ */

/* Source coordinate of output index i (align-corners=false):
 *   s = (i + 0.5) * S/D - 0.5 = ((2i+1)S - D) / (2D), clamped at 0.
 * Returned as integer position p0 and fraction num/(2D). */
static void src_coord(int i, int S, int D, int *p0, int *p1, int64_t *frac)
{
    int64_t num = (int64_t)(2 * i + 1) * S - D, den = 2 * (int64_t)D;
    if (num < 0) num = 0;
    *p0 = (int)(num / den);
    *frac = num % den;
    if (*p0 >= S - 1) { *p0 = S - 1; *frac = 0; }
    *p1 = *p0 + 1 < S ? *p0 + 1 : S - 1;
}

void mtc_resize_bilinear_u8(const uint8_t *src, int sh, int sw, uint8_t *dst,
                            int dh, int dw)
{
    /* value = sum of 4 pixels * (den_y - fy|fy) * (den_x - fx|fx) / (den_y*den_x),
     * exact in int64, rounded half up. */
    int64_t dy = 2 * (int64_t)dh, dx = 2 * (int64_t)dw, den = dy * dx;
    for (int y = 0; y < dh; y++) {
        int y0, y1;
        int64_t fy;
        src_coord(y, sh, dh, &y0, &y1, &fy);
        const uint8_t *r0 = src + (size_t)y0 * sw, *r1 = src + (size_t)y1 * sw;
        for (int x = 0; x < dw; x++) {
            int x0, x1;
            int64_t fx;
            src_coord(x, sw, dw, &x0, &x1, &fx);
            int64_t top = r0[x0] * (dx - fx) + r0[x1] * fx;
            int64_t bot = r1[x0] * (dx - fx) + r1[x1] * fx;
            int64_t v = top * (dy - fy) + bot * fy;
            dst[(size_t)y * dw + x] = (uint8_t)((v + den / 2) / den);
        }
    }
}

/* ---- fashion-mnist --------------------------------------------------------- */

int mtc_fashion_load(const char *split, int64_t *n, uint8_t **px, uint8_t **lab,
                     mtc_err *e)
{
    const char *dir = getenv("MTC_FASHION_DIR");
    if (!dir || !*dir) dir = "/usr/share/datasets/fashion-mnist";
    const char *pre = !strcmp(split, "test") ? "t10k" : "train";
    int64_t want = !strcmp(split, "test") ? 10000 : 60000, nl;
    char ip[4200], lp[4200];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, pre);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, pre);
    int h, w;
    *px = *lab = NULL;
    int rc = mtc_idx_read_images(ip, n, &h, &w, px, e);
    if (rc) return rc;
    if (h != 28 || w != 28 || *n != want) {
        free(*px); *px = NULL;
        return mtc_err_set(e, MTC_EINPUT, "%s: %lldx%dx%d images, expected %lldx28x28", ip,
                           (long long)*n, h, w, (long long)want);
    }
    rc = mtc_idx_read_labels(lp, &nl, lab, e);
    if (!rc && nl != *n)
        rc = mtc_err_set(e, MTC_EINPUT, "%s: %lld labels for %lld images", lp, (long long)nl,
                         (long long)*n);
    for (int64_t i = 0; !rc && i < nl; i++)
        if ((*lab)[i] > 9)
            rc = mtc_err_set(e, MTC_EINPUT, "%s: label %d at %lld is not a class 0..9", lp,
                             (*lab)[i], (long long)i);
    if (rc) { free(*px); free(*lab); *px = *lab = NULL; }
    return rc;
}

/* Fashion-MNIST class -> super-category: tops 0,2,3,4,6; bottoms 1;
 * footwear 5,7,9; bags 8. */
static const uint8_t fashion_super[10] = {0, 1, 0, 0, 0, 2, 0, 2, 3, 2};

int mtc_data_load_fashion(const char *arg, const char *split,
                          const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e)
{
    (void)arg; (void)opts;
    uint8_t *lab;
    int rc = mtc_fashion_load(split, &d->n, &d->x_u8, &lab, e);
    if (rc) return rc;
    d->c = 1; d->h = 28; d->w = 28;
    rc = mtc_data_add_cls_task(d, "fashion", 10, lab, e);
    if (!rc) {
        for (int64_t i = 0; i < d->n; i++) lab[i] = fashion_super[lab[i]];
        rc = mtc_data_add_cls_task(d, "super", 4, lab, e);
    }
    free(lab);
    return rc;
}

/* ---- splits and batches ------------------------------------------------------ */

/* Grouped split: whole groups go to validation, in a seeded order of the
 * group ids, until it holds at least round(n*frac) samples; both sides are
 * then shuffled from the same stream. */
static int split_grouped(int64_t n, const int32_t *group, int64_t nv_want, mtc_rng *r,
                         int64_t *t, int64_t *nt, int64_t *v, int64_t *nv, mtc_err *e)
{
    int64_t ng = 0;
    for (int64_t i = 0; i < n; i++) {
        if (group[i] < 0 || group[i] >= n)
            return mtc_err_set(e, MTC_EINPUT, "split: group id %d at sample %lld is not in [0, %lld)",
                               group[i], (long long)i, (long long)n);
        if (group[i] + 1LL > ng) ng = group[i] + 1LL;
    }
    int64_t *order = malloc((size_t)(ng ? ng : 1) * sizeof *order);
    int64_t *count = calloc((size_t)(ng ? ng : 1), sizeof *count);
    uint8_t *isval = calloc((size_t)(ng ? ng : 1), 1);
    if (!order || !count || !isval) {
        free(order); free(count); free(isval);
        return mtc_err_set(e, MTC_ENOMEM, "split: out of memory for %lld groups", (long long)ng);
    }
    for (int64_t i = 0; i < n; i++) count[group[i]]++;
    for (int64_t g = 0; g < ng; g++) order[g] = g;
    mtc_shuffle_i64(r, order, ng);
    for (int64_t k = 0, got = 0; k < ng && got < nv_want; k++) {
        isval[order[k]] = 1;
        got += count[order[k]];
    }
    *nt = *nv = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isval[group[i]]) v[(*nv)++] = i;
        else t[(*nt)++] = i;
    }
    mtc_shuffle_i64(r, v, *nv);
    mtc_shuffle_i64(r, t, *nt);
    free(order); free(count); free(isval);
    return MTC_OK;
}

int mtc_data_split(int64_t n, const int32_t *group, double val_frac, uint64_t seed,
                   int64_t **train, int64_t *ntrain, int64_t **val, int64_t *nval, mtc_err *e)
{
    *train = *val = NULL;
    *ntrain = *nval = 0;
    if (n < 0 || !(val_frac >= 0.0 && val_frac <= 1.0))
        return mtc_err_set(e, MTC_EINPUT, "split: need n >= 0 and a fraction in [0,1] (got %g)",
                           val_frac);
    int64_t nv = llround((double)n * val_frac);
    if (nv > n) nv = n;
    int64_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    int64_t *t = malloc((size_t)(n ? n : 1) * sizeof *t);
    if (!v || !t) {
        free(v); free(t);
        return mtc_err_set(e, MTC_ENOMEM, "split: out of memory for %lld indices", (long long)n);
    }
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    int64_t nt = n - nv;
    if (group && nv > 0) {
        int rc = split_grouped(n, group, nv, &r, t, &nt, v, &nv, e);
        if (rc) { free(v); free(t); return rc; }
    } else {
        /* The first nv of the shuffled order validate; the rest train, still
         * shuffled (the trainer reshuffles every epoch). */
        for (int64_t i = 0; i < n; i++) t[i] = i;
        mtc_shuffle_i64(&r, t, n);
        memcpy(v, t, (size_t)nv * sizeof *v);
        memmove(t, t + nv, (size_t)nt * sizeof *t);
    }
    *val = v; *nval = nv;
    *train = t; *ntrain = nt;
    return MTC_OK;
}

/* One u8 sample -> floats v/255, shifted by (dx,dy) with zero fill and
 * optionally mirrored: out(y,x) = in(y-dy, x') with x' = x-dx, or
 * w-1-(x-dx) when flipped. */
static void convert_u8(const uint8_t *src, int c, int h, int w, int dx, int dy,
                       int flip, float *out)
{
    if (!dx && !dy && !flip) { /* as it is: one straight loop, vectorised */
        const size_t n = (size_t)c * h * w;
        for (size_t i = 0; i < n; i++) out[i] = src[i] / 255.0f;
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
 * is NULL). */
static void batch_x(const mtc_dataset *d, const int64_t *idx, int B, int aug, mtc_rng *rng, const int *view,
                    uint64_t seed, float *x)
{
    size_t ss = (size_t)mtc_data_sample_size(d);
    for (int b = 0; b < B; b++) {
        float *o = x + (size_t)b * ss;
        if (d->x_f32) { /* features: plain copy, augmentation does not apply */
            memcpy(o, d->x_f32 + (size_t)idx[b] * ss, ss * sizeof(float));
            continue;
        }
        int dx, dy, flip;
        if (view) mtc_data_view(aug, seed, idx[b], view[b], &dx, &dy, &flip);
        else draw_aug(aug, rng, &dx, &dy, &flip);
        convert_u8(d->x_u8 + (size_t)idx[b] * ss, d->c, d->h, d->w, dx, dy, flip, o);
    }
}

void mtc_data_batch_x(const mtc_dataset *d, const int64_t *idx, int B, int aug,
                      mtc_rng *rng, float *x)
{
    batch_x(d, idx, B, aug, rng, NULL, 0, x);
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
    batch_x(d, idx, B, aug, NULL, view, seed, x); /* view NULL: every sample as it is */
}

/* ---- CLI task lists ------------------------------------------------------------ */

int mtc_data_parse_csv_tasks(const char *spec, mtc_data_opts *opts, mtc_err *e)
{
    opts->ntasks = 0;
    const char *p = spec;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[3 * MTC_NAME_MAX];
        if (len == 0 || len >= sizeof item)
            return mtc_err_set(e, MTC_EINPUT, "--tasks: bad item '%.*s'", (int)len, p);
        memcpy(item, p, len);
        item[len] = 0;
        if (opts->ntasks == MTC_MAX_TASKS)
            return mtc_err_set(e, MTC_EINPUT, "--tasks: more than %d tasks", MTC_MAX_TASKS);
        mtc_csv_task *t = &opts->tasks[opts->ntasks];
        memset(t, 0, sizeof *t);
        char *col = strchr(item, '=');
        if (col) *col++ = 0;
        char *kind = strchr(item, ':');
        if (kind) *kind++ = 0;
        t->kind = MTC_TASK_CLS;
        if (kind) {
            if (!strcmp(kind, "cls")) t->kind = MTC_TASK_CLS;
            else if (!strcmp(kind, "bin")) t->kind = MTC_TASK_BIN;
            else if (!strcmp(kind, "reg")) t->kind = MTC_TASK_REG;
            else
                return mtc_err_set(e, MTC_EINPUT, "--tasks: kind '%s' of %s is not cls, bin or reg",
                                   kind, item);
        }
        if (!*item || strlen(item) >= MTC_NAME_MAX || (col && (!*col || strlen(col) >= MTC_NAME_MAX)))
            return mtc_err_set(e, MTC_EINPUT, "--tasks: bad name in '%.*s'", (int)len, p);
        memcpy(t->name, item, strlen(item) + 1); /* lengths checked above */
        if (col) memcpy(t->column, col, strlen(col) + 1);
        opts->ntasks++;
        p = end ? end + 1 : NULL;
    }
    return MTC_OK;
}
