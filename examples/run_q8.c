/*
 * run_q8.c — the smallest useful program against an installed libmtc: load a
 * checkpoint (int8 `.q8.mtc`, or any fp32 / pruned `.mtc`) with the reference
 * runtime and print each task's prediction for the first few test samples of
 * a data set. It uses nothing but <mtc.h>.
 *
 *   cc run_q8.c $(pkg-config --cflags --libs mtc) -o run_q8
 *   ./run_q8 student.q8.mtc fashion-mnist 5
 *   ./run_q8 tab.q8.mtc csv:tabular.csv 3
 *
 * Output, one line per sample and task:
 *   sample 0 task fashion: class 9 (p=0.973) label 9
 *   sample 0 task price: 231.4 label 228.9
 *
 * Exit codes as the mtc CLI: 0 ok, 2 bad input.
 */
#include <mtc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Opens `name` (test split) with the columns and tasks the model's spec
 * names, which is what CSV files need; image data sets ignore the options. */
static int open_data(const mtc_model *m, const char *name, mtc_dataset *d, mtc_err *e)
{
    mtc_data_opts o;
    memset(&o, 0, sizeof o);
    o.inputs = m->spec.columns[0] ? m->spec.columns : NULL;
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        if (ts->from[0]) continue; /* derived task: labels come from its source */
        mtc_csv_task *ct = &o.tasks[o.ntasks++];
        snprintf(ct->name, sizeof ct->name, "%s", ts->name);
        snprintf(ct->column, sizeof ct->column, "%s", ts->column[0] ? ts->column : ts->name);
        ct->kind = ts->kind;
    }
    int rc = mtc_data_open(name, "test", &o, d, e);
    if (rc) return rc;
    if ((rc = mtc_model_check_input(m, d, e))) mtc_data_free(d);
    return rc;
}

/* One task's output row y (dim values) for sample i, with its label. */
static void print_row(const mtc_model *m, const mtc_dataset *d, int t, int64_t i,
                      const float *y, const int32_t *labels, const float *targets)
{
    const mtc_task_spec *ts = &m->spec.tasks[t];
    printf("sample %lld task %s: ", (long long)i, ts->name);
    if (ts->kind == MTC_TASK_CLS) {
        int best = 0;
        for (int k = 1; k < ts->dim; k++)
            if (y[k] > y[best]) best = k;
        float *p = malloc((size_t)ts->dim * sizeof *p);
        if (p) mtc_softmax_rows(p, y, 1, ts->dim, 1.0f); /* the library's softmax */
        printf("class %d (p=%.3f)", best, p ? p[best] : 0.0);
        free(p);
        if (labels) printf(" label %d", labels[i]);
    } else {
        for (int k = 0; k < ts->dim; k++) {
            float v = y[k];
            if (ts->kind == MTC_TASK_BIN) { /* sigmoid(v) = softmax([0, v])[1] */
                float z[2] = {0.0f, v}, p[2];
                mtc_softmax_rows(p, z, 1, 2, 1.0f);
                v = p[1];
            }
            printf(k ? " %.4g" : "%.4g", (double)v);
        }
        if (targets) {
            printf(" label");
            for (int k = 0; k < ts->dim; k++) printf(" %.4g", targets[i * ts->dim + k]);
        }
    }
    (void)d;
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.mtc DATA [N]   (DATA: fashion-mnist, csv:PATH, ...)\n",
                argv[0]);
        return 2;
    }
    int n = argc == 4 ? atoi(argv[3]) : 5;
    if (n < 1 || n > 1000) n = 5;
    mtc_err e = {0};
    mtc_rt *rt = NULL;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    float *x = NULL, *outs[MTC_MAX_TASKS] = {0};
    int rc = mtc_rt_load(argv[1], &rt, &e);
    const mtc_model *m = rc ? NULL : mtc_rt_model(rt);
    if (!rc) rc = open_data(m, argv[2], &d, &e);
    if (!rc) {
        if (n > d.n) n = (int)d.n;
        printf("%s: %d of %d layers int8, %lld weight bytes; %d samples of %s (test)\n",
               argv[1], mtc_rt_nquantized(rt), mtc_rt_nlayers(rt),
               (long long)mtc_rt_weight_bytes(rt), n, d.name);
        int64_t idx[1000];
        for (int i = 0; i < n; i++) idx[i] = i;
        x = malloc((size_t)n * (size_t)mtc_data_sample_size(&d) * sizeof *x);
        for (int t = 0; t < m->spec.ntasks && x; t++)
            if (!(outs[t] = malloc((size_t)n * (size_t)m->spec.tasks[t].dim * sizeof(float))))
                rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
        if (!x) rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
        if (!rc) {
            mtc_data_batch_x(&d, idx, n, 0, NULL, x); /* no augmentation: no rng */
            rc = mtc_rt_run(rt, x, n, outs, &e);
        }
        for (int t = 0; t < m->spec.ntasks && !rc; t++) {
            int32_t *labels = NULL;
            const float *targets = NULL;
            if (mtc_model_bind_task(m, t, &d, &labels, &targets, &e)) {
                labels = NULL; /* no labels for this task: print predictions only */
                targets = NULL;
            }
            for (int64_t i = 0; i < n; i++)
                print_row(m, &d, t, i, outs[t] + i * m->spec.tasks[t].dim, labels, targets);
            free(labels);
        }
    }
    if (rc) fprintf(stderr, "run_q8: %s\n", e.msg);
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(outs[t]);
    free(x);
    mtc_data_free(&d);
    mtc_rt_free(rt);
    return rc ? mtc_exit_code(rc) : 0;
}
