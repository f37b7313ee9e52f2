/*
 * rt_predict.c — a program to ship: it links build/libmtcrt.a alone (the
 * runtime and the checkpoint reader; libc, libm, zlib and pthreads, no
 * OpenBLAS, no libpng) and prints, for every row of a CSV file of inputs,
 * what `mtc predict MODEL --input FILE.csv` prints. Any checkpoint the
 * runtime loads works: fp32, pruned or int8.
 *
 *   make                       # builds build/libmtcrt.a
 *   cc -std=c11 -O2 -Iinclude examples/rt_predict.c build/libmtcrt.a \
 *      -lz -lm -lpthread -o rt_predict
 *   ./rt_predict student.q8.mtc inputs.csv
 *
 * CSV: a header line of column names, then one sample per line. A model
 * whose spec names its input columns (`[input] columns = ...`) takes those
 * columns by name; any other model takes every column, in order, as its
 * c·h·w input values (an image model: the pixels in [0, 1], row by row).
 * Output, one line per row and task, as `mtc predict`:
 *   0:  fashion=9 (p 0.973)  super=3 (p 0.999)
 * Exit codes as the mtc CLI: 0 ok, 2 bad input.
 */
#define _POSIX_C_SOURCE 200809L /* getline, strdup, strtok_r */
#include <mtc.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 65536

/* Splits line at commas in place (trailing newline removed); returns the
 * number of fields, at most max. */
static int split(char *line, char **f, int max)
{
    line[strcspn(line, "\r\n")] = 0;
    int n = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

/* Input value i of the model <- header column col[i]. */
static int map_columns(const mtc_model *m, char **head, int nh, int S, int *col, const char *path)
{
    if (!m->spec.columns[0]) {
        if (nh != S) {
            fprintf(stderr, "rt_predict: %s: %d columns, the model takes %d inputs\n", path, nh, S);
            return 2;
        }
        for (int i = 0; i < S; i++) col[i] = i;
        return 0;
    }
    char names[sizeof m->spec.columns];
    snprintf(names, sizeof names, "%s", m->spec.columns);
    char *save = NULL;
    int i = 0;
    for (char *t = strtok_r(names, ",", &save); t; t = strtok_r(NULL, ",", &save), i++) {
        int c = 0;
        while (c < nh && strcmp(head[c], t)) c++;
        if (c == nh) {
            fprintf(stderr, "rt_predict: %s: no column '%s'\n", path, t);
            return 2;
        }
        if (i < S) col[i] = c;
    }
    if (i != S) {
        fprintf(stderr, "rt_predict: the model names %d columns but takes %d inputs\n", i, S);
        return 2;
    }
    return 0;
}

/* One row of outputs, in `mtc predict`'s text format. */
static void print_row(const mtc_model *m, long long row, float *const *outs)
{
    printf("%lld:", row);
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        const float *o = outs[t];
        if (ts->kind == MTC_TASK_CLS) {
            float p[4096];
            int K = ts->dim > 4096 ? 4096 : ts->dim, best = 0;
            mtc_softmax_rows(p, o, 1, K, 1.0f);
            for (int k = 1; k < K; k++)
                if (p[k] > p[best]) best = k;
            if (best < m->nclass_names[t]) printf("  %s=%s (p %.3f)", ts->name, m->class_names[t][best], p[best]);
            else printf("  %s=%d (p %.3f)", ts->name, best, p[best]);
        } else {
            printf("  %s=", ts->name);
            for (int d = 0; d < ts->dim; d++) {
                float v = ts->kind == MTC_TASK_BIN ? 1.0f / (1.0f + expf(-o[d])) : o[d];
                printf("%s%.4g", d ? "," : "", v);
            }
        }
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: rt_predict MODEL.mtc INPUTS.csv\n");
        return 2;
    }
    mtc_err e = {0};
    mtc_rt *rt;
    if (mtc_rt_load(argv[1], &rt, &e)) {
        fprintf(stderr, "rt_predict: %s\n", e.msg);
        return 2;
    }
    const mtc_model *m = mtc_rt_model(rt);
    int S = m->spec.c * m->spec.h * m->spec.w, T = m->spec.ntasks, rc = 2;
    FILE *f = fopen(argv[2], "r");
    size_t cap = 0;
    char *line = NULL, **fld = malloc(MAX_COLS * sizeof *fld);
    int *col = malloc((size_t)S * sizeof *col);
    float *x = malloc((size_t)S * sizeof *x), *outs[MTC_MAX_TASKS] = {0};
    for (int t = 0; t < T; t++) outs[t] = malloc((size_t)m->spec.tasks[t].dim * sizeof(float));
    if (!f) {
        fprintf(stderr, "rt_predict: %s: %s\n", argv[2], strerror(errno));
        goto out;
    }
    if (getline(&line, &cap, f) < 0) {
        fprintf(stderr, "rt_predict: %s: empty file\n", argv[2]);
        goto out;
    }
    int nh = split(line, fld, MAX_COLS);
    char **head = malloc((size_t)nh * sizeof *head);
    for (int i = 0; i < nh; i++) head[i] = strdup(fld[i]);
    rc = map_columns(m, head, nh, S, col, argv[2]);
    long long row = 0;
    for (long long lineno = 2; !rc && getline(&line, &cap, f) >= 0; lineno++) {
        if (line[strspn(line, " \t\r\n")] == 0) continue; /* blank line */
        int n = split(line, fld, MAX_COLS);
        if (n != nh) {
            fprintf(stderr, "rt_predict: %s:%lld: %d fields, the header has %d\n", argv[2], lineno, n, nh);
            rc = 2;
            break;
        }
        for (int i = 0; i < S && !rc; i++) {
            char *end;
            double v = strtod(fld[col[i]], &end); /* as mtc's CSV reader: double, then float */
            while (*end == ' ' || *end == '\t') end++;
            if (end == fld[col[i]] || *end || !isfinite((float)v)) {
                fprintf(stderr, "rt_predict: %s:%lld: '%s' is not a number\n", argv[2], lineno, fld[col[i]]);
                rc = 2;
            }
            x[i] = (float)v;
        }
        if (!rc && (rc = mtc_rt_run(rt, x, 1, outs, &e))) fprintf(stderr, "rt_predict: %s\n", e.msg);
        if (!rc) print_row(m, row++, outs);
    }
    for (int i = 0; i < nh; i++) free(head[i]);
    free(head);
out:
    if (f) fclose(f);
    free(line); free(fld); free(col); free(x);
    for (int t = 0; t < T; t++) free(outs[t]);
    mtc_rt_free(rt);
    return rc ? 2 : 0;
}
