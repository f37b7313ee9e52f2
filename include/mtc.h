/*
 * mtc.h — the one header a user of libmtc includes.
 *
 * mtc trains multi-task teachers, distills them into students, prunes and
 * int8-quantizes the students, and verifies per-task accuracy retention.
 * This file holds the types every stage shares (errors, RNG, tensors, task
 * kinds) and pulls in each stage's API from include/mtc/.
 *
 * Conventions: functions that can fail return 0 or an MTC_E* code and fill an
 * mtc_err with a one-line message naming the file/flag and the problem. The
 * library never prints (except progress through a caller-given callback) and
 * never exits.
 */
#ifndef MTC_H
#define MTC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MTC_VERSION "0.1.0"

/* ---- errors ------------------------------------------------------------ */
enum {
    MTC_OK = 0,
    MTC_EFAIL = 1,     /* a check failed (verify budget, quantize budget) */
    MTC_EINPUT = 2,    /* bad input: file, flag, shape, format */
    MTC_EIO = 3,       /* read/write failure (disk full, permissions) */
    MTC_ENOMEM = 4,
    MTC_EINTERNAL = 5
};
typedef struct mtc_err {
    int code;
    char msg[512];
} mtc_err;

/* Sets e (if non-NULL) and returns code. Message is one line, no newline. */
int mtc_err_set(mtc_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Process exit code for an error: EFAIL -> 1, everything else -> 2. */
int mtc_exit_code(int code);

/* ---- deterministic RNG (xoshiro256**, seeded by splitmix64) ------------ */
typedef struct mtc_rng {
    uint64_t s[4];
} mtc_rng;
void mtc_rng_seed(mtc_rng *r, uint64_t seed);
uint64_t mtc_rng_u64(mtc_rng *r);
float mtc_rng_uniform(mtc_rng *r);            /* [0, 1) */
float mtc_rng_normal(mtc_rng *r);             /* N(0, 1), Box-Muller */
uint64_t mtc_rng_below(mtc_rng *r, uint64_t n); /* [0, n), unbiased */
void mtc_shuffle_i64(mtc_rng *r, int64_t *a, int64_t n);

/* ---- threads (core/pool.c) --------------------------------------------------
 * mtc_set_threads is called once at start-up (the CLI's --threads); models
 * and the runtime size their pools from it. One pool at a time: inside a
 * pool region OpenBLAS runs single-threaded. */
void mtc_set_threads(int n);
int mtc_get_threads(void);
/* OpenBLAS single-threaded: mtc splits the work itself (mtc_set_threads
 * does this; so does the runtime when it loads a model). */
void mtc_blas_single_thread(void);
typedef struct mtc_pool mtc_pool;
mtc_pool *mtc_pool_create(int threads);
int mtc_pool_size(const mtc_pool *p);
/* fn(ctx, i) for i in [0, ntasks): task i on thread i % size (static). */
void mtc_pool_run(mtc_pool *p, int ntasks, void (*fn)(void *ctx, int task), void *ctx);
void mtc_pool_free(mtc_pool *p);

/* ---- hashing ------------------------------------------------------------ */
uint64_t mtc_fnv1a64(const void *data, size_t n, uint64_t h); /* h=0 starts */
/* FNV-1a 64 of a file's bytes: how a checkpoint names its parent. */
int mtc_file_hash(const char *path, uint64_t *h, mtc_err *e);

/* ---- tensors ------------------------------------------------------------ */
typedef enum mtc_dtype {
    MTC_F32 = 0,
    MTC_S8 = 1,
    MTC_U8 = 2,
    MTC_S32 = 3,
    MTC_F16 = 4
} mtc_dtype;
#define MTC_MAX_DIMS 4
#define MTC_NAME_MAX 64
size_t mtc_dtype_size(mtc_dtype t);
const char *mtc_dtype_name(mtc_dtype t);

typedef struct mtc_tensor {
    char name[128];
    mtc_dtype dtype;
    int ndim;
    int64_t dims[MTC_MAX_DIMS];
    void *data; /* owned by whoever owns the tensor array */
} mtc_tensor;
/* Element count with overflow check; returns -1 on overflow/bad dims. */
int64_t mtc_tensor_numel(const mtc_tensor *t);

/* ---- tasks -------------------------------------------------------------- */
typedef enum mtc_task_kind {
    MTC_TASK_CLS = 0, /* softmax cross-entropy over `dim` classes */
    MTC_TASK_BIN = 1, /* sigmoid BCE, `dim` independent outputs */
    MTC_TASK_REG = 2  /* regression, `dim` outputs */
} mtc_task_kind;
#define MTC_MAX_TASKS 16
const char *mtc_task_kind_name(int kind);

/* ---- files -------------------------------------------------------------- */
/* Crash-safe output: writes go to "<path>.tmp.<pid>" in the same folder;
 * commit = fflush + fsync + rename + fsync(folder). abort removes the temp. */
typedef struct mtc_outfile {
    FILE *f;
    char path[4096];
    char tmp[4200];
    int discard; /* a rank > 0 of an MPI job: written to /dev/null */
} mtc_outfile;
int mtc_outfile_open(mtc_outfile *o, const char *path, mtc_err *e);
int mtc_outfile_commit(mtc_outfile *o, mtc_err *e);
/* on: every later outfile goes to /dev/null (ranks > 0 of an MPI job). */
void mtc_outfile_discard_all(int on);
void mtc_outfile_abort(mtc_outfile *o);
/* Whole-file helpers. read: NUL-terminated, *len excludes the NUL. */
int mtc_read_file(const char *path, char **buf, size_t *len, size_t max_len,
                  mtc_err *e);
int mtc_write_file_atomic(const char *path, const void *buf, size_t len,
                          mtc_err *e);
/* RFC 4648 base64 with '=' padding (core/base64.c): encode writes
 * mtc_base64_len(n) characters and a NUL to dst, returns the length. */
size_t mtc_base64_len(size_t n);
size_t mtc_base64_encode(const void *src, size_t n, char *dst);

#include "mtc/data.h"
#include "mtc/ckpt.h"
#include "mtc/json.h"
#include "mtc/nn.h"
#include "mtc/model.h"
#include "mtc/train.h"
#include "mtc/distill.h"
#include "mtc/runtime.h"
#include "mtc/plot.h"
#include "mtc/prune.h"
#include "mtc/interop.h"
#include "mtc/comm.h"

#ifdef __cplusplus
}
#endif
#endif
