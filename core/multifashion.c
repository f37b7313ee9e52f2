/*
 * multifashion.c — MultiFashion+MNIST (Lin et al. 2019 recipe) and the
 * idx:DIR folders `mtc data multifashion` writes.
 *
 * Sample i: a 36x36 black canvas, Fashion-MNIST item i at (0,0), a digit
 * drawn by the seeded RNG at offset (8,8) (8 px right and down), pixel-wise
 * max, then bilinear 36 -> 28 (align-corners=false). Tasks: fashion, digit.
 * Train pairs the 60000 Fashion train items with digits from the digits'
 * train side, test the 10000 test items with the test side, so no digit
 * image is shared between the splits. Seeds: train uses the seed as is, test
 * uses seed ^ MF_TEST_SALT so that the two sides draw independent streams.
 */
#include "mtc.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MF_SIDE 28
#define MF_CANVAS 36
#define MF_OFFSET 8
#define MF_PIX (MF_SIDE * MF_SIDE)
#define MF_TEST_SALT 0x7465737400000000ULL /* "test" */
#define MF_DEFAULT_SEED 1

int mtc_multifashion_build(const uint8_t *fashion_px, const uint8_t *fashion_lab,
                           int64_t n, const uint8_t *digit_px,
                           const uint8_t *digit_lab, int64_t ndigits,
                           uint64_t seed, uint8_t *out_px, uint8_t *out_digit,
                           int32_t *out_index)
{
    if (ndigits <= 0 || ndigits > INT32_MAX || n < 0) return MTC_EINPUT;
    for (int64_t i = 0; i < n; i++)
        if (fashion_lab[i] > 9) return MTC_EINPUT;
    for (int64_t j = 0; j < ndigits; j++)
        if (digit_lab[j] > 9) return MTC_EINPUT;
    mtc_rng r;
    mtc_rng_seed(&r, seed);
    uint8_t canvas[MF_CANVAS * MF_CANVAS];
    for (int64_t i = 0; i < n; i++) {
        int64_t j = (int64_t)mtc_rng_below(&r, (uint64_t)ndigits);
        const uint8_t *f = fashion_px + i * MF_PIX, *g = digit_px + j * MF_PIX;
        memset(canvas, 0, sizeof canvas);
        for (int y = 0; y < MF_SIDE; y++)
            memcpy(canvas + y * MF_CANVAS, f + y * MF_SIDE, MF_SIDE);
        for (int y = 0; y < MF_SIDE; y++) {
            uint8_t *row = canvas + (y + MF_OFFSET) * MF_CANVAS + MF_OFFSET;
            for (int x = 0; x < MF_SIDE; x++)
                if (g[y * MF_SIDE + x] > row[x]) row[x] = g[y * MF_SIDE + x];
        }
        mtc_resize_bilinear_u8(canvas, MF_CANVAS, MF_CANVAS, out_px + i * MF_PIX, MF_SIDE,
                               MF_SIDE);
        out_digit[i] = digit_lab[j];
        if (out_index) out_index[i] = (int32_t)j;
    }
    return MTC_OK;
}

/* Builds one side in memory: px (n,28,28), fashion and digit labels and,
 * when group is not NULL, the index of the digit image of each pair. */
static int build_side(const char *split, uint64_t seed, int64_t *n, uint8_t **px,
                      uint8_t **flab, uint8_t **dlab, int32_t **group, mtc_err *e)
{
    uint8_t *fpx = NULL, *gpx = NULL, *glab = NULL;
    int64_t ng;
    *px = *flab = *dlab = NULL;
    int rc = mtc_fashion_load(split, n, &fpx, flab, e);
    if (!rc) rc = mtc_digits_load(split, &ng, &gpx, &glab, e);
    if (!rc) {
        *px = malloc((size_t)*n * MF_PIX);
        *dlab = malloc((size_t)*n + 1);
        if (group) *group = malloc(((size_t)*n + 1) * sizeof **group);
        if (!*px || !*dlab || (group && !*group)) rc = mtc_err_set(e, MTC_ENOMEM, "multifashion: out of memory");
    }
    if (!rc) {
        uint64_t s = strcmp(split, "test") ? seed : seed ^ MF_TEST_SALT;
        if (mtc_multifashion_build(fpx, *flab, *n, gpx, glab, ng, s, *px, *dlab,
                                   group ? *group : NULL))
            rc = mtc_err_set(e, MTC_EINPUT, "multifashion: bad source labels");
    }
    free(fpx); free(gpx); free(glab);
    if (rc) {
        free(*px); free(*flab); free(*dlab);
        *px = *flab = *dlab = NULL;
        if (group) { free(*group); *group = NULL; }
    }
    return rc;
}

static int parse_seed(const char *arg, uint64_t *seed, mtc_err *e)
{
    *seed = MF_DEFAULT_SEED;
    if (!*arg) return MTC_OK;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (arg[0] < '0' || arg[0] > '9' || *end || errno)
        return mtc_err_set(e, MTC_EINPUT, "multifashion@%s: the seed must be a number", arg);
    *seed = v;
    return MTC_OK;
}

int mtc_data_load_multifashion(const char *arg, const char *split,
                               const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e)
{
    (void)opts;
    uint64_t seed;
    int rc = parse_seed(arg, &seed, e);
    if (rc) return rc;
    uint8_t *flab, *dlab;
    /* Groups = the digit drawn: a validation split then holds digits that no
     * training pair shows, as the test split does (60,000 pairs reuse the
     * ~8,000 training digits). */
    rc = build_side(split, seed, &d->n, &d->x_u8, &flab, &dlab, &d->group, e);
    if (rc) return rc;
    d->c = 1; d->h = MF_SIDE; d->w = MF_SIDE;
    rc = mtc_data_add_cls_task(d, "fashion", 10, flab, e);
    if (!rc) rc = mtc_data_add_cls_task(d, "digit", 10, dlab, e);
    free(flab); free(dlab);
    return rc;
}

/* ---- idx:DIR -------------------------------------------------------------------- */

/* The label files of idx:DIR: "<pre>-<task>-labels-idx1-ubyte.gz". fashion
 * and digit (MultiFashion's) come first, then the others by name. */
static int idx_task_names(const char *dir, const char *pre, char names[][MTC_NAME_MAX], int *n, mtc_err *e)
{
    DIR *dp = opendir(dir);
    if (!dp) return mtc_err_set(e, MTC_EIO, "%s: cannot open the folder (%s)", dir, strerror(errno));
    struct dirent *de;
    size_t lp = strlen(pre), ls = strlen("-labels-idx1-ubyte.gz");
    *n = 0;
    while ((de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l <= lp + 1 + ls || strncmp(de->d_name, pre, lp) || de->d_name[lp] != '-' ||
            strcmp(de->d_name + l - ls, "-labels-idx1-ubyte.gz") || l - lp - 1 - ls >= MTC_NAME_MAX)
            continue;
        if (*n == MTC_MAX_TASKS) { closedir(dp); return mtc_err_set(e, MTC_EINPUT, "%s: more than %d label files", dir, MTC_MAX_TASKS); }
        snprintf(names[*n], MTC_NAME_MAX, "%.*s", (int)(l - lp - 1 - ls), de->d_name + lp + 1);
        (*n)++;
    }
    closedir(dp);
    for (int i = 1; i < *n; i++) /* insertion sort: fashion, digit, then by name */
        for (int j = i; j > 0; j--) {
            int rj = !strcmp(names[j], "fashion") ? 0 : !strcmp(names[j], "digit") ? 1 : 2;
            int rk = !strcmp(names[j - 1], "fashion") ? 0 : !strcmp(names[j - 1], "digit") ? 1 : 2;
            if (rj > rk || (rj == rk && strcmp(names[j], names[j - 1]) >= 0)) break;
            char t[MTC_NAME_MAX];
            memcpy(t, names[j], MTC_NAME_MAX), memcpy(names[j], names[j - 1], MTC_NAME_MAX), memcpy(names[j - 1], t, MTC_NAME_MAX);
        }
    return 0;
}

/* A task's labels of one side: 255 is "not labelled" (MTC_LABEL_MISSING). */
static int idx_labels(const char *dir, const char *pre, const char *task, int64_t n, uint8_t **lab, mtc_err *e)
{
    char path[4200];
    int64_t nl;
    snprintf(path, sizeof path, "%s/%s-%s-labels-idx1-ubyte.gz", dir, pre, task);
    int rc = mtc_idx_read_labels(path, &nl, lab, e);
    if (!rc && n >= 0 && nl != n) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: %lld labels for %lld images", path, (long long)nl, (long long)n);
        free(*lab);
    }
    return rc;
}

int mtc_data_load_idx_dir(const char *dir, const char *split,
                          const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e)
{
    const char *pre = !strcmp(split, "test") ? "t10k" : "train";
    char path[4200], names[MTC_MAX_TASKS][MTC_NAME_MAX];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, pre);
    /* --shard-data: this shard's images; the labels are read whole and cut */
    const int parts = opts && opts->shard_count > 1 ? opts->shard_count : 1, part = parts > 1 ? opts->shard_index : 0;
    int64_t total, first;
    int rc = mtc_idx_read_images_part(path, part, parts, &total, &first, &d->n, &d->h, &d->w, &d->x_u8, e);
    if (rc) return rc;
    if (parts > 1) d->split_n = total, d->shard_lo = first;
    d->c = 1;
    int nt = 0;
    if ((rc = idx_task_names(dir, pre, names, &nt, e))) return rc;
    if (!nt) return mtc_err_set(e, MTC_EINPUT, "%s: no %s-*-labels-idx1-ubyte.gz label file", dir, pre);
    for (int t = 0; t < nt && !rc; t++) {
        uint8_t *lab, *other = NULL;
        if ((rc = idx_labels(dir, pre, names[t], total, &lab, e))) break;
        /* classes: 10 for MultiFashion's tasks, else the largest label of
         * either side + 1 (the other side's file when it is there) */
        int dim = 0;
        int64_t no = 0;
        const char *opre = !strcmp(pre, "train") ? "t10k" : "train";
        snprintf(path, sizeof path, "%s/%s-%s-labels-idx1-ubyte.gz", dir, opre, names[t]);
        if (!strcmp(names[t], "fashion") || !strcmp(names[t], "digit")) dim = 10;
        else if (!mtc_idx_read_labels(path, &no, &other, e)) {
            for (int64_t i = 0; i < no; i++)
                if (other[i] != 255 && other[i] + 1 > dim) dim = other[i] + 1;
            free(other);
        }
        int32_t *l = malloc((size_t)(d->n ? d->n : 1) * sizeof *l);
        if (!l) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
        const int fixed = dim == 10;
        for (int64_t i = 0; !rc && i < total; i++) { /* every sample's label, a shard's too */
            if (fixed && lab[i] != 255 && lab[i] > 9)
                rc = mtc_err_set(e, MTC_EINPUT, "%s/%s-%s-labels-idx1-ubyte.gz: label %d at %lld is not 0..9", dir, pre,
                                 names[t], lab[i], (long long)i);
            if (lab[i] != 255 && lab[i] + 1 > dim) dim = lab[i] + 1;
        }
        for (int64_t i = 0; !rc && i < d->n; i++)
            l[i] = lab[first + i] == 255 ? MTC_LABEL_MISSING : lab[first + i];
        free(lab);
        if (!rc && d->ntasks >= MTC_MAX_TASKS) rc = mtc_err_set(e, MTC_EINPUT, "%s: too many tasks", dir);
        if (rc) { free(l); break; }
        mtc_data_task *k = &d->tasks[d->ntasks++];
        memset(k, 0, sizeof *k);
        snprintf(k->name, sizeof k->name, "%s", names[t]);
        k->kind = MTC_TASK_CLS;
        k->dim = dim;
        k->labels = l;
        if (parts == 1 && !mtc_data_labelled(k, NULL, d->n) && !strcmp(pre, "train"))
            rc = mtc_err_set(e, MTC_EINPUT, "%s: task %s has no label in the train split", dir, names[t]);
    }
    return rc;
}

/* ---- writing the folder --------------------------------------------------------- */

/* 8x8 grid of the first 64 samples, each upscaled 3x, 2 px grey separators
 * (also around the border). */
static int write_contact_sheet(const char *path, const uint8_t *px, int64_t n, mtc_err *e)
{
    enum { G = 8, Z = 3, SEP = 2, TILE = MF_SIDE * Z, SIDE = G * TILE + (G + 1) * SEP };
    uint8_t *img = malloc((size_t)SIDE * SIDE);
    if (!img) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    memset(img, 128, (size_t)SIDE * SIDE);
    for (int k = 0; k < G * G; k++) {
        int oy = SEP + (k / G) * (TILE + SEP), ox = SEP + (k % G) * (TILE + SEP);
        for (int y = 0; y < TILE; y++)
            for (int x = 0; x < TILE; x++)
                img[(size_t)(oy + y) * SIDE + ox + x] =
                    k < n ? px[(size_t)k * MF_PIX + (y / Z) * MF_SIDE + x / Z] : 0;
    }
    int rc = mtc_png_write(path, SIDE, SIDE, 1, img, e);
    free(img);
    return rc;
}

static int write_side(const char *dir, const char *split, const char *pre, uint64_t seed,
                      mtc_err *e)
{
    int64_t n;
    uint8_t *px, *flab, *dlab;
    int rc = build_side(split, seed, &n, &px, &flab, &dlab, NULL, e);
    if (rc) return rc;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, pre);
    rc = mtc_idx_write_images(path, n, MF_SIDE, MF_SIDE, px, e);
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s-fashion-labels-idx1-ubyte.gz", dir, pre);
        rc = mtc_idx_write_labels(path, n, flab, e);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s-digit-labels-idx1-ubyte.gz", dir, pre);
        rc = mtc_idx_write_labels(path, n, dlab, e);
    }
    if (!rc && !strcmp(split, "train")) {
        snprintf(path, sizeof path, "%s/contact-sheet.png", dir);
        rc = write_contact_sheet(path, px, n, e);
    }
    free(px); free(flab); free(dlab);
    return rc;
}

int mtc_data_write_multifashion(const char *dir, uint64_t seed, mtc_err *e)
{
    if (strlen(dir) > 3900)
        return mtc_err_set(e, MTC_EINPUT, "%.64s...: folder name too long", dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return mtc_err_set(e, MTC_EIO, "%s: cannot create folder (%s)", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return mtc_err_set(e, MTC_EINPUT, "%s: not a folder", dir);
    int rc = write_side(dir, "train", "train", seed, e);
    if (!rc) rc = write_side(dir, "test", "t10k", seed, e);
    return rc;
}
