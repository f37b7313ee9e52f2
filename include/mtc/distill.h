/*
 * mtc/distill.h — soft-label files (.mtl) and distillation helpers
 * (the distill/ folder).
 *
 * A .mtl file is a section container (see mtc/ckpt.h) with magic "MTL1":
 *   "header"    JSON: {"teachers":[{"path":..,"hash":..}], "data":{"name",
 *               "split","n","hash"}, "tasks":[{"name","kind","dim",
 *               "teacher"}], "dtype":"f32"|"f16", "rows_per_chunk":N,
 *               "hints": D or 0}
 *   "chunk:<i>" rows [i*N, min(n,(i+1)*N)) of every task, row-major, tasks
 *               concatenated per row (sum of dims values per row), f32 or
 *               f16 little-endian
 *   "hints:<i>" optional teacher trunk outputs for the same rows
 * Written chunk by chunk (streaming) to a temp file, renamed at the end.
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
    int f16;          /* store half precision */
    int hints;        /* also store teacher 0's trunk output */
    int batch;        /* inference batch */
    int rows_per_chunk;
} mtc_label_cfg;
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

#endif
