/*
 * mtc/distill.h — soft-label files (.mtl) and distillation helpers
 * (the distill/ folder).
 *
 * A .mtl file is a section container (see mtc/ckpt.h) with magic "MTL1":
 *   "header"    JSON: {"teachers":[{"path":..,"hash":..}], "data":{"name",
 *               "split","n","hash"}, "tasks":[{"name","kind","dim",
 *               "teacher"}], "dtype":"f32"|"f16", "rows_per_chunk":N,
 *               "hints": D or 0, "augmentation": "none" | {"kind":
 *               "shift"|"flip"|"shift+flip", "copies": K, "seed": "hex"}}
 *   "chunk:<i>" rows [i*N, min(R,(i+1)*N)) of every task, R = K*n rows,
 *               row k*n + s = view k of sample s (K = 1 without
 *               augmentation), row-major, tasks concatenated per row (sum of
 *               dims values per row), f32 or f16 little-endian
 *   "hints:<i>" optional teacher trunk outputs for the same rows
 * Written chunk by chunk (streaming) to a temp file, renamed at the end.
 *
 * Without --augment-copies the soft labels are the teachers' outputs for the
 * unaugmented samples; with K copies, view 0 is the sample and views 1..K-1
 * are shifted/flipped as mtc_data_view rebuilds them, so the student trains
 * augmented on the teacher's outputs for exactly the images it sees.
 *
 * Tasks of the file: the union of the teachers' tasks in teacher order. A
 * task's values are the mean of every (non task-only) teacher that has it,
 * or one teacher's output when task_teacher names one ("teacher": index in
 * the header, -1 = average; "sources": the teachers used).
 */
#ifndef MTC_DISTILL_H
#define MTC_DISTILL_H

typedef struct mtc_label_cfg {
    int nteachers;
    mtc_model *teachers[8];
    char teacher_path[8][1024];
    /* per teacher task name: index of the teacher to use, -1 = average of
     * every teacher that has the task */
    int ntask_teacher;
    char task_teacher_name[MTC_MAX_TASKS][MTC_NAME_MAX];
    int task_teacher_idx[MTC_MAX_TASKS];
    /* 1 = teacher k is used only for the tasks that name it in
     * task_teacher (e.g. `--task-teacher digit=b.mtc` with b not listed) */
    int task_only[8];
    int f16;          /* store half precision */
    int hints;        /* also store teacher 0's trunk output */
    int batch;        /* inference batch, default 256 */
    int rows_per_chunk; /* default 4096 */
    /* stored augmented views: copies K >= 1 (1 = the samples only, the
     * default), aug MTC_AUG_* of view 1..K-1 (default shift), their seed
     * (see mtc_data_view) */
    int aug_copies, aug;
    uint64_t aug_seed;
    /* called after every chunk with rows done so far (may be NULL) */
    void (*progress)(void *ctx, int64_t done, int64_t n);
    void *progress_ctx;
} mtc_label_cfg;
/* The defaults above; `mtc label` starts from them and prints them in --help. */
void mtc_label_cfg_default(mtc_label_cfg *c);
/* Runs the teachers over every sample of d and writes path. */
int mtc_soft_write(const char *path, const mtc_label_cfg *cfg,
                   const mtc_dataset *d, mtc_err *e);

/* Reads a .mtl for training `student` on `d`: checks the data set (name, n,
 * hash) and maps tasks by name (a student task missing from the file, or of
 * another kind/dim, is an error unless allow_missing). Fills out->v[t] for
 * each student task t. hints (may be NULL) gets (n, D) teacher trunk
 * outputs when the file has them. */
int mtc_soft_read(const char *path, const mtc_model *student,
                  const mtc_dataset *d, int allow_missing, mtc_soft *out,
                  float **hints, int *hint_dim, mtc_err *e);
void mtc_soft_free(mtc_soft *s);
/* Header JSON text of a .mtl (for `mtc inspect`); malloc'd. */
int mtc_soft_header(const char *path, char **json, mtc_err *e);

/* IEEE half precision <-> float; float -> half rounds to nearest even,
 * finite values beyond the half range saturate to +-65504, NaN stays NaN. */
uint16_t mtc_f32_to_f16(float f);
float mtc_f16_to_f32(uint16_t h);

/* Teacher-student agreement on the same samples, per task: outputs (n, dim)
 * in label units (cls/bin logits). cls: top-1 agreement and mean
 * KL(softmax t || softmax s) at T=1; bin: agreement of (logit > 0) and mean
 * Bernoulli KL, both averaged over outputs; reg: mean |t - s|
 * (agree = NAN). */
typedef struct mtc_agreement {
    double agree, kl, mean_abs_diff;
} mtc_agreement;
void mtc_distill_agreement(int kind, int dim, const float *teacher,
                           const float *student, int64_t n, mtc_agreement *a);
/* Share of the teacher-student gap closed: (kd - scratch) / (teacher -
 * scratch); NAN when teacher and scratch are (nearly) equal. Works for
 * higher-is-better and lower-is-better metrics alike. */
double mtc_distill_gap_closed(double teacher, double kd, double scratch,
                              int higher_is_better);
/* Paired difference of two models on the same samples (KD student a,
 * scratch student b): per labelled sample, a's score minus b's, where the
 * score is the task's primary metric on that sample (cls: top-1 correct;
 * bin: share of correct outputs; reg: mean |output - target|, so a
 * negative diff means a is better there). diff is the difference of the
 * two metrics over the labelled samples, se its standard error (the
 * per-sample differences' sd / sqrt(n)); the 95% interval is diff ± ci95,
 * ci95 = 1.96 se (cls: McNemar's normal approximation). Outputs (n, dim) in label
 * units; labels (cls, MTC_LABEL_MISSING skipped) or targets (bin/reg, rows
 * mtc_row_labelled skips) as mtc_model_bind_task gives them. n_used: the
 * labelled samples; diff = se = ci95 = NAN when there are none (se and
 * ci95 NAN below 2). */
typedef struct mtc_paired {
    double diff, se, ci95;
    int64_t n_used;
} mtc_paired;
void mtc_distill_paired(int kind, int dim, const float *a, const float *b, const int32_t *labels,
                        const float *targets, int64_t n, mtc_paired *p);
/* `mtc distill --tune`'s guard. v, v0: validation metrics of ntasks tasks
 * (lower_better[t]: MAE; else accuracy) of a run and of alpha 0's (the
 * labels alone). worse: the first task where v is worse than v0, or -1.
 * fallback: among runs val[0..n) (val[0] is alpha 0's), the one nowhere
 * worse than val[0] with the largest mean relative gain over it; 0 when no
 * other is. NaN metrics count as neither worse nor a gain. */
int mtc_distill_tune_worse(const double *v, const double *v0, const int *lower_better, int ntasks);
int mtc_distill_tune_fallback(const double (*val)[MTC_MAX_TASKS], int n, const int *lower_better, int ntasks);

#endif
