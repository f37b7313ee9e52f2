/*
 * cmd_label.c — `mtc label`: run one or more teachers once over the training
 * split and store their outputs as soft labels (.mtl) for `mtc distill`.
 * Several teachers are averaged per task; --task-teacher picks one teacher
 * for a task. Labels are for the unaugmented samples, or with
 * --augment-copies K for K views of each (view 0 the sample, 1..K-1
 * shifted/flipped, rebuilt bit-exactly by the student's trainer).
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <stdlib.h>
#include <string.h>

#define MAX_T 8

typedef struct label_state {
    int nt;
    const char *path[MAX_T];
    mtc_model m[MAX_T];
    int loaded[MAX_T];
} label_state;

static int find_or_add(label_state *s, const char *path, int *idx, mtc_err *e)
{
    for (int k = 0; k < s->nt; k++)
        if (!strcmp(s->path[k], path)) { *idx = k; return 0; }
    if (s->nt >= MAX_T) return mtc_err_set(e, MTC_EINPUT, "%s: at most %d teachers", path, MAX_T);
    if (strlen(path) >= 1024) return mtc_err_set(e, MTC_EINPUT, "%.100s...: path too long", path);
    s->path[s->nt] = path;
    *idx = s->nt++;
    return 0;
}

/* Splits a comma list in place (s is a private copy). */
static int split_list(char *s, char **items, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < max + 1; tok = strtok(NULL, ","))
        if (*tok) items[n++] = tok;
    return n;
}

typedef struct progress_ctx {
    const cli_common *c;
    double t0;
} progress_ctx;

static void label_progress(void *ctx, int64_t done, int64_t n)
{
    progress_ctx *p = ctx;
    double el = cli_now() - p->t0, rate = el > 0 ? done / el : 0;
    cli_progress(p->c, "label: %lld/%lld samples  %.0f samples/s  ETA %.0fs", (long long)done, (long long)n, rate,
                 rate > 0 ? (n - done) / rate : 0);
}

static void json_summary(const char *out, const char *hdr, double secs)
{
    mtc_json h = {0};
    mtc_err e = {0};
    mtc_jw j;
    mtc_jw_init(&j);
    mtc_jw_obj(&j);
    mtc_jw_kstr(&j, "soft_labels", out);
    if (!mtc_json_parse(hdr, strlen(hdr), &h, &e)) {
        const char *keys[] = {"teachers", "data", "tasks", "dtype", "rows_per_chunk", "hints", "augmentation"};
        for (int i = 0; i < 7; i++) {
            const mtc_json *v = mtc_json_get(&h, keys[i]);
            if (v) { mtc_jw_key(&j, keys[i]); mtc_jw_value(&j, v); }
        }
    }
    mtc_jw_knum(&j, "seconds", secs);
    mtc_jw_obj_end(&j);
    printf("%s\n", j.buf);
    mtc_jw_free(&j);
    mtc_json_free(&h);
}

int cmd_label(int argc, char **argv)
{
    const char *data = NULL, *out = NULL, *teachers = NULL, *task_teacher = NULL, *augment = NULL, *transfer = NULL;
    char joined[512];
    mtc_label_cfg cfg; /* the options write into it: their defaults are the library's */
    mtc_label_cfg_default(&cfg);
    char augment_help[128];
    snprintf(augment_help, sizeof augment_help,
             "augmentation of the stored views: shift | flip | shift,flip (default %s)", util_augment_name(cfg.aug));
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"data", OPT_STR, &data, "data set the teacher was trained on (required; train split, all samples)", 1, 0},
        {"transfer", OPT_STR, &transfer, "unlabelled data joined after --data (as --data D+NAME), labelled too", 1, 0},
        {"out", OPT_STR, &out, "output soft-label file (-o; required)", 1, 0},
        {"teachers", OPT_STR, &teachers, "more teachers a.mtc,b.mtc: outputs averaged per task", 1, 0},
        {"task-teacher", OPT_STR, &task_teacher, "TASK=FILE[,TASK=FILE]: take TASK from that teacher only", 1, 0},
        {"f16", OPT_FLAG, &cfg.f16, "store half precision (half the size; ~1e-3 relative error)", 1, 0},
        {"hints", OPT_FLAG, &cfg.hints, "also store teacher 0's trunk output (for hint losses)", 1, 0},
        {"batch", OPT_INT, &cfg.batch, "inference batch (default {default})", 1, 65536},
        {"rows-per-chunk", OPT_INT, &cfg.rows_per_chunk, "rows per compressed chunk (default {default})", 1, 1 << 20},
        {"augment-copies", OPT_INT, &cfg.aug_copies, "store K views per sample: the sample + K-1 augmented (default {default})", 1, 64},
        {"augment", OPT_STR, &augment, augment_help, 1, 0},
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("label", "TEACHER.mtc --data NAME -o soft.mtl [options]",
                       "Run the teacher(s) once over every training sample (dataset order) and store their\n"
                       "logits (cls/bin) or outputs (reg, label units) per task in a soft-label file for\n"
                       "`mtc distill`. Several teachers are averaged per task (multi-teacher KD).\n"
                       "Without --augment-copies the labels are for the unaugmented samples. With\n"
                       "--augment-copies K the file holds K views of every sample (view 0 the sample itself,\n"
                       "views 1..K-1 shifted +-2 px and/or flipped, drawn from --seed), and `mtc distill`\n"
                       "trains each step on one stored view per sample against the teacher's output for it.",
                       opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (data && transfer) { /* --transfer U is --data D+U */
        if (snprintf(joined, sizeof joined, "%s+%s", data, transfer) >= (int)sizeof joined) {
            fprintf(stderr, "mtc label: --data and --transfer: names too long\n");
            return 2;
        }
        data = joined;
    }
    if ((!npos && !teachers) || !data || !out) {
        fprintf(stderr, "mtc label: a teacher, --data and -o are required (see mtc label --help)\n");
        return 2;
    }
    if (augment && cfg.aug_copies < 2) {
        fprintf(stderr, "mtc label: --augment needs --augment-copies K with K >= 2\n");
        return 2;
    }
    cli_apply_common(&c);
    if (mtc_comm_rank() != 0) c.quiet = 1; /* an MPI job: rank 0 reports and writes */
    mtc_err e = {0};
    label_state s;
    memset(&s, 0, sizeof s);
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    char *tl = teachers ? strdup(teachers) : NULL, *tt = task_teacher ? strdup(task_teacher) : NULL;
    char *items[MAX_T + MTC_MAX_TASKS + 2];
    int idx = 0;
    if (npos && (rc = find_or_add(&s, pos[0], &idx, &e))) goto out;
    if (tl) {
        int n = split_list(tl, items, MAX_T);
        for (int i = 0; i < n && !rc; i++) rc = find_or_add(&s, items[i], &idx, &e);
        if (rc) goto out;
    }
    int nlisted = s.nt;
    if (tt) {
        int n = split_list(tt, items, MTC_MAX_TASKS);
        if (n > MTC_MAX_TASKS) { rc = mtc_err_set(&e, MTC_EINPUT, "--task-teacher: more than %d tasks", MTC_MAX_TASKS); goto out; }
        for (int i = 0; i < n; i++) {
            char *eq = strchr(items[i], '=');
            if (!eq || eq == items[i] || !eq[1] || eq - items[i] >= MTC_NAME_MAX) {
                rc = mtc_err_set(&e, MTC_EINPUT, "--task-teacher %s: expected TASK=FILE", items[i]);
                goto out;
            }
            *eq = 0;
            if ((rc = find_or_add(&s, eq + 1, &idx, &e))) goto out;
            snprintf(cfg.task_teacher_name[i], MTC_NAME_MAX, "%s", items[i]);
            cfg.task_teacher_idx[i] = idx;
            cfg.ntask_teacher = i + 1;
        }
    }
    for (int k = 0; k < s.nt; k++) {
        if ((rc = util_model_load(s.path[k], &s.m[k], &e))) goto out;
        s.loaded[k] = 1;
        cfg.teachers[k] = &s.m[k];
        snprintf(cfg.teacher_path[k], sizeof cfg.teacher_path[k], "%s", s.path[k]);
        cfg.task_only[k] = k >= nlisted; /* named only by --task-teacher */
    }
    cfg.nteachers = s.nt;
    cfg.aug_seed = c.seed;
    if (augment && (rc = util_parse_augment(augment, &cfg.aug, &e))) goto out;
    progress_ctx pc = {&c, 0};
    cfg.progress = label_progress;
    cfg.progress_ctx = &pc;
    util_unlabelled_ok = 1; /* the teacher needs inputs only: a CSV without label columns is fine */
    if ((rc = util_open_data(&s.m[0], data, "train", &d, &e))) goto out;
    util_report_data(&c, &d);
    cli_progress(&c, "label: %d teacher(s), %s train split, %lld samples x %d view(s), %s%s", s.nt, d.name,
                 (long long)d.n, cfg.aug_copies, cfg.f16 ? "f16" : "f32", cfg.hints ? ", with hints" : "");
    if (mtc_comm_size() > 1)
        cli_progress(&c, "label: %d MPI processes, chunks of %d rows shared round-robin, rank 0 writes", mtc_comm_size(),
                     cfg.rows_per_chunk);
    pc.t0 = cli_now();
    if ((rc = mtc_soft_write(out, &cfg, &d, &e))) goto out;
    if (mtc_comm_rank() != 0) goto out;
    double secs = cli_now() - pc.t0;
    char *hdr = NULL;
    if ((rc = mtc_soft_header(out, &hdr, &e))) goto out;
    if (c.json) {
        json_summary(out, hdr, secs);
    } else {
        printf("wrote %s: %lld samples of %s x %d view(s), %s, %.1fs\n", out, (long long)d.n, d.name, cfg.aug_copies,
               cfg.f16 ? "f16" : "f32", secs);
    }
    free(hdr);
out:
    for (int k = 0; k < s.nt; k++)
        if (s.loaded[k]) mtc_model_free(&s.m[k]);
    mtc_data_free(&d);
    free(tl);
    free(tt);
    return rc ? cli_fail("label", &e) : 0;
}
