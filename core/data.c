/*
 * data.c — the dataset registry (mtc_data_open by name), train/val splits,
 * and the fashion-mnist loader. What a loaded data set does (free, hash,
 * batches with augmentation) is dataset.c's, which the runtime's library
 * links without the loaders.
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

/* ---- A+B: data sets joined -------------------------------------------------- */

/* Where the next part starts: a '+' followed by a registered name (exact
 * names followed by '+' or the end), or NULL. */
static const char *next_plus(const char *s)
{
    for (const char *p = strchr(s, '+'); p; p = strchr(p + 1, '+'))
        for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
            const char *r = registry[i].name;
            size_t l = strlen(r);
            int prefix = r[l - 1] == ':' || r[l - 1] == '@';
            if (!strncmp(p + 1, r, l) && (prefix || p[1 + l] == 0 || p[1 + l] == '+')) return p;
        }
    return NULL;
}

/* The class id of part's label y for task t of the union (class names
 * merged by name, appended in order of appearance). */
static int merge_names(mtc_data_task *u, const mtc_data_task *p, int32_t *map, mtc_err *e)
{
    for (int k = 0; k < p->nclass_names; k++) {
        int id = -1;
        for (int j = 0; j < u->nclass_names && id < 0; j++)
            if (!strcmp(u->class_names[j], p->class_names[k])) id = j;
        if (id < 0) {
            char **cn = realloc(u->class_names, (size_t)(u->nclass_names + 1) * sizeof *cn);
            if (!cn) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
            u->class_names = cn;
            if (!(cn[u->nclass_names] = strdup(p->class_names[k]))) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
            id = u->nclass_names++;
        }
        map[k] = id;
    }
    if (u->nclass_names > u->dim) u->dim = u->nclass_names;
    return 0;
}

/* --join ID: the parts' rows merged by id (see mtc/data.h). p[0..np) are
 * the parts, read whole; d holds the union of their tasks (no rows yet). */
static int merge_by_key(const char *name, const char *split, mtc_dataset *p, int np, mtc_dataset *d, mtc_err *e)
{
    int64_t total = 0, S = mtc_data_sample_size(&p[0]);
    for (int k = 0; k < np; k++) {
        if (!p[k].key || !p[k].x_f32)
            return mtc_err_set(e, MTC_EINPUT, "%s: --join merges CSV files by an id column; %s is not one", name, p[k].name);
        total += p[k].n;
    }
    int64_t cap = 16;
    while (cap < 2 * total) cap *= 2;
    int64_t *slot = malloc((size_t)cap * sizeof *slot), *src = malloc((size_t)(total + 1) * 2 * sizeof *src), nm = 0;
    if (!slot || !src) { free(slot); free(src); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
    for (int64_t i = 0; i < cap; i++) slot[i] = -1;
    int rc = 0;
    int64_t *where = malloc((size_t)(total + 1) * sizeof *where); /* merged index of each part row, parts in order */
    int64_t *last = malloc((size_t)(total + 1) * 2 * sizeof *last); /* per merged row: the last part and row seen */
    if (!where || !last) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    for (int k = 0, w = 0; k < np && !rc; k++)
        for (int64_t i = 0; i < p[k].n && !rc; i++, w++) {
            uint64_t key = p[k].key[i];
            int64_t h = (int64_t)(key & (uint64_t)(cap - 1));
            while (slot[h] >= 0 && p[src[2 * slot[h]]].key[src[2 * slot[h] + 1]] != key) h = (h + 1) & (cap - 1);
            if (slot[h] < 0) { /* a new id */
                slot[h] = nm;
                src[2 * nm] = k, src[2 * nm + 1] = i;
                last[2 * nm] = k, last[2 * nm + 1] = i;
                where[w] = nm++;
                continue;
            }
            int64_t m = slot[h], k0 = src[2 * m], i0 = src[2 * m + 1];
            if (last[2 * m] == k)
                rc = mtc_err_set(e, MTC_EINPUT, "%s: row %lld repeats the id of row %lld (--join ids are unique per file)",
                                 p[k].name, (long long)i + 1, (long long)last[2 * m + 1] + 1);
            else if (memcmp(p[k].x_f32 + i * S, p[k0].x_f32 + i0 * S, (size_t)S * sizeof(float)))
                rc = mtc_err_set(e, MTC_EINPUT, "%s: row %lld has other inputs than row %lld of %s with the same id",
                                 p[k].name, (long long)i + 1, (long long)i0 + 1, p[k0].name);
            last[2 * m] = k, last[2 * m + 1] = i;
            where[w] = m;
        }
    /* the split: by the id, so a sample is on one side in every file */
    const int test = !strcmp(split, "test");
    int64_t *keep = rc ? NULL : malloc((size_t)(nm + 1) * sizeof *keep), n = 0;
    if (!rc && !keep) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    for (int64_t m = 0; !rc && m < nm; m++) {
        uint64_t key = p[src[2 * m]].key[src[2 * m + 1]];
        keep[m] = ((key % 5 == 4) == test) ? n++ : -1;
    }
    if (!rc && !n) rc = mtc_err_set(e, MTC_EINPUT, "%s: no id falls in the %s split", name, split);
    if (!rc) {
        d->n = n, d->c = p[0].c, d->h = p[0].h, d->w = p[0].w;
        d->x_f32 = malloc((size_t)(n * S) * sizeof(float));
        d->key = malloc((size_t)n * sizeof *d->key);
        if (!d->x_f32 || !d->key) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    }
    for (int64_t m = 0; !rc && m < nm; m++)
        if (keep[m] >= 0) {
            memcpy(d->x_f32 + keep[m] * S, p[src[2 * m]].x_f32 + src[2 * m + 1] * S, (size_t)S * sizeof(float));
            d->key[keep[m]] = p[src[2 * m]].key[src[2 * m + 1]];
        }
    for (int t = 0; t < d->ntasks && !rc; t++) { /* unlabelled, to start */
        mtc_data_task *u = &d->tasks[t];
        if (u->kind == MTC_TASK_CLS) {
            if (!(u->labels = malloc((size_t)n * sizeof *u->labels))) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
            for (int64_t i = 0; !rc && i < n; i++) u->labels[i] = MTC_LABEL_MISSING;
        } else {
            if (!(u->targets = malloc((size_t)(n * u->dim) * sizeof *u->targets))) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
            for (int64_t i = 0; !rc && i < n * u->dim; i++) u->targets[i] = NAN;
        }
    }
    int64_t w0 = 0;
    for (int k = 0; k < np && !rc; w0 += p[k].n, k++)
        for (int t = 0; t < p[k].ntasks && !rc; t++) {
            const mtc_data_task *pt = &p[k].tasks[t];
            mtc_data_task *u = &d->tasks[mtc_data_task_index(d, pt->name)];
            int32_t *map = NULL;
            if (pt->kind == MTC_TASK_CLS) {
                if (!(map = malloc((size_t)(pt->dim > 0 ? pt->dim : 1) * sizeof *map))) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); break; }
                for (int c = 0; c < pt->dim; c++) map[c] = c;
                if (pt->nclass_names && (rc = merge_names(u, pt, map, e))) { free(map); break; }
            }
            for (int64_t i = 0; i < p[k].n && !rc; i++) {
                int64_t m = keep[where[w0 + i]];
                if (m < 0) continue;
                if (pt->kind == MTC_TASK_CLS) {
                    if (pt->labels[i] == MTC_LABEL_MISSING) continue;
                    int32_t y = map[pt->labels[i]];
                    if (u->labels[m] != MTC_LABEL_MISSING && u->labels[m] != y)
                        rc = mtc_err_set(e, MTC_EINPUT, "%s: row %lld labels task '%s' otherwise than an earlier file "
                                         "with the same id", p[k].name, (long long)i + 1, pt->name);
                    u->labels[m] = y;
                } else if (mtc_row_labelled(pt->targets + i * pt->dim, pt->dim)) {
                    memcpy(u->targets + m * u->dim, pt->targets + i * pt->dim, (size_t)pt->dim * sizeof(float));
                }
            }
            free(map);
        }
    free(slot); free(src); free(where); free(keep); free(last);
    return rc;
}

static int open_joined(const char *name, const char *split, const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e)
{
    enum { MAXP = 16 };
    mtc_dataset *p = calloc(MAXP, sizeof *p);
    char part[256];
    int np = 0, rc = 0;
    if (!p) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    mtc_data_opts po = *opts;
    po.allow_absent = 1;
    for (const char *s = name; s && !rc;) {
        const char *q = next_plus(s);
        size_t l = q ? (size_t)(q - s) : strlen(s);
        if (np == MAXP) { rc = mtc_err_set(e, MTC_EINPUT, "%s: more than %d parts", name, MAXP); break; }
        snprintf(part, sizeof part, "%.*s", (int)l, s);
        if (!(rc = mtc_data_open(part, split, &po, &p[np], e))) np++; /* a failed part freed itself */
        s = q ? q + 1 : NULL;
    }
    int64_t n = 0;
    for (int k = 0; k < np && !rc; k++) {
        if (p[k].c != p[0].c || p[k].h != p[0].h || p[k].w != p[0].w || !p[k].x_u8 != !p[0].x_u8)
            rc = mtc_err_set(e, MTC_EINPUT, "%s: samples of %s are %dx%dx%d %s, of %s %dx%dx%d %s (joined data "
                             "sets need one input shape)", name, p[k].name, p[k].c, p[k].h, p[k].w,
                             p[k].x_u8 ? "pixels" : "features", p[0].name, p[0].c, p[0].h, p[0].w,
                             p[0].x_u8 ? "pixels" : "features");
        n += p[k].n;
    }
    /* the union of the tasks */
    for (int k = 0; k < np && !rc; k++)
        for (int t = 0; t < p[k].ntasks && !rc; t++) {
            const mtc_data_task *pt = &p[k].tasks[t];
            int u = mtc_data_task_index(d, pt->name);
            if (u < 0) {
                if (d->ntasks == MTC_MAX_TASKS) { rc = mtc_err_set(e, MTC_EINPUT, "%s: more than %d tasks", name, MTC_MAX_TASKS); break; }
                u = d->ntasks++;
                snprintf(d->tasks[u].name, sizeof d->tasks[u].name, "%s", pt->name);
                d->tasks[u].kind = pt->kind;
            } else if (d->tasks[u].kind != pt->kind || (pt->kind != MTC_TASK_CLS && d->tasks[u].dim != pt->dim)) {
                rc = mtc_err_set(e, MTC_EINPUT, "%s: task '%s' is %s/%d in %s and %s/%d before", name, pt->name,
                                 mtc_task_kind_name(pt->kind), pt->dim, p[k].name,
                                 mtc_task_kind_name(d->tasks[u].kind), d->tasks[u].dim);
                break;
            }
            if (pt->dim > d->tasks[u].dim) d->tasks[u].dim = pt->dim;
        }
    if (!rc && opts->join) { /* rows merged by id instead of one after another */
        rc = merge_by_key(name, split, p, np, d, e);
        for (int k = 0; k < np; k++) mtc_data_free(&p[k]);
        free(p);
        return rc;
    }
    int64_t S = np ? mtc_data_sample_size(&p[0]) : 0;
    if (!rc) {
        d->n = n, d->c = p[0].c, d->h = p[0].h, d->w = p[0].w;
        if (p[0].x_u8) d->x_u8 = malloc((size_t)(n * S));
        else d->x_f32 = malloc((size_t)(n * S) * sizeof(float));
        if (!d->x_u8 && !d->x_f32) rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", name);
        int any_group = 0;
        for (int k = 0; k < np; k++) any_group |= p[k].group != NULL;
        if (!rc && any_group && !(d->group = malloc((size_t)n * sizeof *d->group)))
            rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", name);
        for (int t = 0; t < d->ntasks && !rc; t++) { /* every sample unlabelled, to start */
            mtc_data_task *u = &d->tasks[t];
            if (u->kind == MTC_TASK_CLS) {
                if (!(u->labels = malloc((size_t)n * sizeof *u->labels))) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
                for (int64_t i = 0; !rc && i < n; i++) u->labels[i] = MTC_LABEL_MISSING;
            } else {
                if (!(u->targets = malloc((size_t)(n * u->dim) * sizeof *u->targets))) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
                for (int64_t i = 0; !rc && i < n * u->dim; i++) u->targets[i] = NAN;
            }
        }
    }
    int64_t off = 0;
    d->nparts = rc ? 0 : np;
    for (int k = 0; k < np && !rc; k++) {
        const mtc_dataset *q = &p[k];
        d->part_n[k] = q->n;
        if (q->x_u8) memcpy(d->x_u8 + off * S, q->x_u8, (size_t)(q->n * S));
        else memcpy(d->x_f32 + off * S, q->x_f32, (size_t)(q->n * S) * sizeof(float));
        for (int64_t i = 0; d->group && i < q->n; i++) /* groups stay apart between parts */
            d->group[off + i] = (int32_t)(q->group ? q->group[i] + off : off + i);
        for (int t = 0; t < q->ntasks && !rc; t++) {
            const mtc_data_task *pt = &q->tasks[t];
            mtc_data_task *u = &d->tasks[mtc_data_task_index(d, pt->name)];
            if (pt->kind != MTC_TASK_CLS) {
                memcpy(u->targets + off * u->dim, pt->targets, (size_t)(q->n * u->dim) * sizeof(float));
                continue;
            }
            int32_t *map = malloc((size_t)(pt->dim > 0 ? pt->dim : 1) * sizeof *map);
            if (!map) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); break; }
            for (int c = 0; c < pt->dim; c++) map[c] = c;
            if (pt->nclass_names && (rc = merge_names(u, pt, map, e))) { free(map); break; }
            for (int64_t i = 0; i < q->n; i++)
                u->labels[off + i] = pt->labels[i] == MTC_LABEL_MISSING ? MTC_LABEL_MISSING : map[pt->labels[i]];
            free(map);
        }
        off += q->n;
    }
    for (int k = 0; k < np; k++) mtc_data_free(&p[k]);
    free(p);
    return rc;
}

void mtc_data_hash_shards(mtc_dataset *d)
{
    const int N = mtc_comm_size(), r = mtc_comm_rank();
    if (N < 2 || d->split_n <= d->n) return;
    enum { TAG = 0x6861 };
    mtc_err e = {0};
    uint64_t h = 0;
    int rc = 0;
    /* segment by segment along the ranks: 0 -> 1 -> ... -> N-1 -> 0 (next segment) */
    for (int s = 0; s <= d->ntasks && !rc; s++) {
        if (r > 0 || s > 0) rc = mtc_comm_recv(&h, sizeof h, r > 0 ? r - 1 : N - 1, TAG, &e);
        if (rc) break;
        h = mtc_data_hash_part(d, s, h);
        if (r < N - 1) rc = mtc_comm_send(&h, sizeof h, r + 1, TAG, &e);
        else if (s < d->ntasks) rc = mtc_comm_send(&h, sizeof h, 0, TAG, &e);
    }
    /* the last rank holds the whole hash: to everyone */
    if (!rc && r == N - 1)
        for (int k = 0; k < N - 1 && !rc; k++) rc = mtc_comm_send(&h, sizeof h, k, TAG + 1, &e);
    else if (!rc)
        rc = mtc_comm_recv(&h, sizeof h, N - 1, TAG + 1, &e);
    if (rc) { /* MPI errors end the job before this; keep the shard's own hash */
        mtc_data_rehash(d);
        return;
    }
    d->hash = h;
}

/* After a loader: the shard (a loader that read only its shard set
 * split_n), the name, split and hash. */
static int finish_open(mtc_dataset *d, const char *name, const char *split, const mtc_data_opts *opts, mtc_err *e)
{
    const int N = opts->shard_count, k = opts->shard_index;
    if (N > 1 && !d->split_n) {
        int64_t n = d->n, lo = n * k / N, hi = n * (k + 1) / N;
        int rc = mtc_data_keep_range(d, lo, hi, e);
        if (rc) return rc;
        d->split_n = n, d->shard_lo = lo;
    }
    if (!d->split_n) d->split_n = d->n;
    if (N > 1 && d->n == 0)
        return mtc_err_set(e, MTC_EINPUT, "%s: the %s split's %lld samples leave shard %d of %d empty", name, split,
                           (long long)d->split_n, k, N);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->split, sizeof d->split, "%s", split);
    mtc_data_rehash(d);
    return MTC_OK;
}

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
    if (opts->shard_count > 1 && (opts->shard_index < 0 || opts->shard_index >= opts->shard_count))
        return mtc_err_set(e, MTC_EINPUT, "%s: shard %d of %d", name, opts->shard_index, opts->shard_count);
    if (opts->join && !next_plus(name) && !opts->allow_absent) /* (a part of A+B has allow_absent set) */
        return mtc_err_set(e, MTC_EINPUT, "%s: --join %s merges data sets joined with '+' (csv:A+csv:B)", name, opts->join);
    if (next_plus(name)) {
        mtc_data_opts whole = *opts; /* the parts load whole; the joined set is sharded */
        whole.shard_count = 0;
        int rc = open_joined(name, split, &whole, d, e);
        if (!rc) rc = finish_open(d, name, split, opts, e);
        if (rc) mtc_data_free(d);
        return rc;
    }
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
        const char *r = registry[i].name;
        size_t l = strlen(r);
        int prefix = r[l - 1] == ':' || r[l - 1] == '@';
        if (prefix ? strncmp(name, r, l) != 0 : strcmp(name, r) != 0) continue;
        int rc = registry[i].load(prefix ? name + l : "", split, opts, d, e);
        if (!rc) rc = finish_open(d, name, split, opts, e);
        if (rc) mtc_data_free(d);
        return rc;
    }
    return mtc_err_set(e, MTC_EINPUT,
                       "%s: unknown dataset (known: fashion-mnist, mnist-digits, "
                       "multifashion[@SEED], idx:DIR, csv:PATH, png:DIR)", name);
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

/* Images [N part/parts, N (part+1)/parts) of the split's N (the first's
 * index in *first) and their labels; every label is checked. */
static int fashion_load_part(const char *split, int part, int parts, int64_t *total, int64_t *first, int64_t *n,
                             uint8_t **px, uint8_t **lab, mtc_err *e)
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
    int rc = mtc_idx_read_images_part(ip, part, parts, total, first, n, &h, &w, px, e);
    if (rc) return rc;
    if (h != 28 || w != 28 || *total != want) {
        free(*px); *px = NULL;
        return mtc_err_set(e, MTC_EINPUT, "%s: %lldx%dx%d images, expected %lldx28x28", ip,
                           (long long)*total, h, w, (long long)want);
    }
    rc = mtc_idx_read_labels(lp, &nl, lab, e);
    if (!rc && nl != *total)
        rc = mtc_err_set(e, MTC_EINPUT, "%s: %lld labels for %lld images", lp, (long long)nl,
                         (long long)*total);
    for (int64_t i = 0; !rc && i < nl; i++)
        if ((*lab)[i] > 9)
            rc = mtc_err_set(e, MTC_EINPUT, "%s: label %d at %lld is not a class 0..9", lp,
                             (*lab)[i], (long long)i);
    if (rc) { free(*px); free(*lab); *px = *lab = NULL; return rc; }
    memmove(*lab, *lab + *first, (size_t)*n); /* the part's labels */
    return MTC_OK;
}

int mtc_fashion_load(const char *split, int64_t *n, uint8_t **px, uint8_t **lab,
                     mtc_err *e)
{
    int64_t total, first;
    return fashion_load_part(split, 0, 1, &total, &first, n, px, lab, e);
}

/* Fashion-MNIST class -> super-category: tops 0,2,3,4,6; bottoms 1;
 * footwear 5,7,9; bags 8. */
static const uint8_t fashion_super[10] = {0, 1, 0, 0, 0, 2, 0, 2, 3, 2};

int mtc_data_load_fashion(const char *arg, const char *split,
                          const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e)
{
    (void)arg;
    uint8_t *lab = NULL;
    const int parts = opts->shard_count > 1 ? opts->shard_count : 1; /* --shard-data: this shard's images */
    int64_t total, first;
    int rc = fashion_load_part(split, parts > 1 ? opts->shard_index : 0, parts, &total, &first, &d->n, &d->x_u8, &lab, e);
    if (rc) return rc;
    if (parts > 1) d->split_n = total, d->shard_lo = first;
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
