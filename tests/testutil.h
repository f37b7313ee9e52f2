/*
 * testutil.h — helpers shared by the cmocka tests: scratch folders, small
 * files, running the mtc binary. Tests include <cmocka.h> after this.
 */
#ifndef MTC_TESTUTIL_H
#define MTC_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "mtc.h"

/* A fresh folder under $TMPDIR (or /tmp); removed by tu_rmdir. */
char *tu_mkdtemp(void);
void tu_rmdir(const char *dir);
/* dir + "/" + name into a static-free malloc'd string. */
char *tu_path(const char *dir, const char *name);
int tu_write(const char *path, const void *data, size_t n);
/* Reads a whole file; returns malloc'd bytes or NULL. */
unsigned char *tu_read(const char *path, size_t *n);
/* Runs `$MTC_BIN args...` (default build/mtc) through the shell with
 * stdout/stderr to files in dir; returns the exit code. */
int tu_run_mtc(const char *dir, const char *args, char **out, char **err);
/* tu_run_mtc with printf-style arguments; frees *out and *err first (start
 * them NULL), so a test keeps the last run's outputs. */
int tu_run_mtcv(const char *dir, char **out, char **err, const char *fmt, va_list ap);
/* CSV files the CLI tests train on: "x0,x1,x2,x3,fine" with n rows of
 * tu_synth_data(seed); "x0,x1,x2,x3,a,b" with 1000 rows, x uniform in
 * [-1, 1), a = argmax(x0, x1, x2), b = x3 > 0. */
void tu_write_synth_csv(const char *path, int64_t n, uint64_t seed);
void tu_write_ab_csv(const char *path);
/* Synthetic multi-task data: 4 gaussian features; task fine = argmax
 * (cls 4), level = 3 + mean (reg 1), pos = x0 > 0 (bin 1). Free with
 * mtc_data_free. */
void tu_synth_data(mtc_dataset *d, int64_t n, uint64_t seed);
/* Parses spec text, builds and initialises a model; 0 or an error in e. */
int tu_build_model(const char *text, mtc_model *m, uint64_t seed, mtc_err *e);
/* m (pruned: m->mask set) saved the way files were written before weight
 * bitmasks: "<layer>.weight" f32 with the pruned weights 0 plus a u8
 * "<layer>.mask", through mtc_ckpt_add. 0 or an error in e. */
int tu_save_dense_mask(const mtc_model *m, const char *path, mtc_err *e);
/* Relative error |a-b| / max(|a|,|b|,floor). */
double tu_relerr(double a, double b, double floor);

#endif
