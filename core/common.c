/*
 * common.c — errors, the deterministic RNG, hashing, dtypes and crash-safe
 * file output shared by every stage.
 */
#include "mtc.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mtc_err_set(mtc_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        for (char *p = e->msg; *p; p++)
            if (*p == '\n') *p = ' ';
        e->code = code;
    }
    return code;
}

int mtc_exit_code(int code)
{
    return code == MTC_OK ? 0 : code == MTC_EFAIL ? 1 : 2;
}

/* ---- RNG: xoshiro256** (Blackman & Vigna), seeded through splitmix64 ---- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mtc_rng_seed(mtc_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mtc_rng_u64(mtc_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

float mtc_rng_uniform(mtc_rng *r)
{
    return (float)(mtc_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float mtc_rng_normal(mtc_rng *r)
{
    /* Box-Muller; u1 in (0,1] so log is finite. */
    double u1 = ((double)(mtc_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(mtc_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t mtc_rng_below(mtc_rng *r, uint64_t n)
{
    if (n == 0) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do x = mtc_rng_u64(r); while (x >= lim);
    return x % n;
}

void mtc_shuffle_i64(mtc_rng *r, int64_t *a, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)mtc_rng_below(r, (uint64_t)i + 1);
        int64_t t = a[i]; a[i] = a[j]; a[j] = t;
    }
}

uint64_t mtc_fnv1a64(const void *data, size_t n, uint64_t h)
{
    const uint8_t *p = data;
    if (h == 0) h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- file hash (lineage: names a parent checkpoint) ----------------------- */

int mtc_file_hash(const char *path, uint64_t *h, mtc_err *e)
{
    *h = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mtc_err_set(e, MTC_EINPUT, "%s: cannot open (%s)", path, strerror(errno));
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) *h = mtc_fnv1a64(buf, n, *h);
    int bad = ferror(f);
    fclose(f);
    if (bad) return mtc_err_set(e, MTC_EIO, "%s: read failed", path);
    return 0;
}

/* ---- dtypes / tensors / tasks ------------------------------------------ */
size_t mtc_dtype_size(mtc_dtype t)
{
    switch (t) {
    case MTC_F32: case MTC_S32: return 4;
    case MTC_S8: case MTC_U8: return 1;
    case MTC_F16: return 2;
    }
    return 0;
}

const char *mtc_dtype_name(mtc_dtype t)
{
    static const char *n[] = {"f32", "s8", "u8", "s32", "f16"};
    return (unsigned)t < 5 ? n[t] : "?";
}

int64_t mtc_tensor_numel(const mtc_tensor *t)
{
    if (t->ndim < 0 || t->ndim > MTC_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0) return -1;
        if (t->dims[i] != 0 && n > INT64_MAX / t->dims[i]) return -1;
        n *= t->dims[i];
    }
    return n;
}

const char *mtc_task_kind_name(int kind)
{
    return kind == MTC_TASK_CLS ? "cls" : kind == MTC_TASK_BIN ? "bin"
         : kind == MTC_TASK_REG ? "reg" : "?";
}

/* ---- crash-safe output --------------------------------------------------- */
static int g_outfile_discard; /* set by mtc_comm_init on ranks > 0 */

void mtc_outfile_discard_all(int on)
{
    g_outfile_discard = on;
}

int mtc_outfile_open(mtc_outfile *o, const char *path, mtc_err *e)
{
    memset(o, 0, sizeof *o);
    if (strlen(path) >= sizeof o->path)
        return mtc_err_set(e, MTC_EINPUT, "%.200s...: path too long", path);
    snprintf(o->path, sizeof o->path, "%s", path);
    if (g_outfile_discard) { /* an MPI job's files are rank 0's to write (mtc/comm.h) */
        o->discard = 1;
        o->f = fopen("/dev/null", "wb");
        return o->f ? MTC_OK : mtc_err_set(e, MTC_EIO, "/dev/null: cannot open (%s)", strerror(errno));
    }
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld", path, (long)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f)
        return mtc_err_set(e, MTC_EIO, "%s: cannot create (%s)", path,
                           strerror(errno));
    return MTC_OK;
}

static void fsync_dir_of(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

int mtc_outfile_commit(mtc_outfile *o, mtc_err *e)
{
    if (o->discard) {
        fclose(o->f);
        o->f = NULL;
        return MTC_OK;
    }
    int bad = ferror(o->f) | fflush(o->f);
    if (!bad) bad = fsync(fileno(o->f));
    int err = errno;
    if (fclose(o->f) != 0 && !bad) { bad = 1; err = errno; }
    o->f = NULL;
    if (bad) {
        unlink(o->tmp);
        return mtc_err_set(e, MTC_EIO, "%s: write failed (%s); previous file left intact",
                           o->path, strerror(err));
    }
    if (rename(o->tmp, o->path) != 0) {
        err = errno;
        unlink(o->tmp);
        return mtc_err_set(e, MTC_EIO, "%s: cannot rename into place (%s)",
                           o->path, strerror(err));
    }
    fsync_dir_of(o->path);
    return MTC_OK;
}

void mtc_outfile_abort(mtc_outfile *o)
{
    if (o->f) { fclose(o->f); o->f = NULL; }
    if (o->tmp[0]) unlink(o->tmp);
}

int mtc_read_file(const char *path, char **buf, size_t *len, size_t max_len,
                  mtc_err *e)
{
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mtc_err_set(e, MTC_EINPUT, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return mtc_err_set(e, MTC_EINPUT, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_len) {
        fclose(f);
        return mtc_err_set(e, MTC_EINPUT, "%s: too large (%lld bytes, limit %zu)",
                           path, (long long)st.st_size, max_len);
    }
    char *b = malloc((size_t)st.st_size + 1);
    if (!b) { fclose(f); return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); }
    size_t got = fread(b, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(b);
        return mtc_err_set(e, MTC_EIO, "%s: short read", path);
    }
    b[got] = 0;
    *buf = b;
    if (len) *len = got;
    return MTC_OK;
}

int mtc_write_file_atomic(const char *path, const void *buf, size_t len, mtc_err *e)
{
    mtc_outfile o;
    int rc = mtc_outfile_open(&o, path, e);
    if (rc) return rc;
    if (fwrite(buf, 1, len, o.f) != len) {
        mtc_outfile_abort(&o);
        return mtc_err_set(e, MTC_EIO, "%s: write failed (%s)", path, strerror(errno));
    }
    return mtc_outfile_commit(&o, e);
}
