/*
 * csv.c — the csv:PATH dataset: a header row, then one sample per record.
 *
 * Parsing follows RFC 4180: fields separated by commas, records by LF or
 * CRLF, quoted fields may hold commas, line breaks and doubled quotes ("").
 * Blank lines are skipped. The file is read whole (limit 4 GiB) and fields
 * are unquoted and NUL-terminated in place, so no per-field allocation.
 *
 * Inputs are the opts->inputs columns (or every non-label column) as f32
 * features, shape 1x1xF. Labels: cls columns are integer ids when every value
 * is a non-negative integer (dim = max+1), else names mapped to ids in sorted
 * order (or in the order of the given class_names); bin/reg columns are
 * floats (dim 1, bin in [0,1]). Nothing is imputed: an empty or non-numeric
 * value is an error naming file:line:column. Class ids are decided over the
 * whole file, so train and test agree. Data row r goes to test when
 * r % 5 == 4; `csv:PATH@all` keeps every row in both splits.
 */
#include "mtc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#define CSV_MAX_BYTES ((size_t)4 << 30)
#define CSV_MAX_FIELD (1 << 20)
#define CSV_MAX_COLS (1 << 20)
#define CSV_MAX_CLASSES 65536

typedef struct field {
    char *s;        /* NUL-terminated, unquoted, inside the file buffer */
    size_t len;
} field;

typedef struct csvp {
    const char *path;
    char *buf;
    size_t len, pos;
    int64_t line;   /* physical line of pos, 1-based */
    field *f;       /* fields of the current record */
    int nf, cap;
    int64_t rec_line;
} csvp;

static int push_field(csvp *p, char *s, size_t len, mtc_err *e)
{
    if (len > CSV_MAX_FIELD)
        return mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: field longer than %d bytes", p->path,
                           (long long)p->rec_line, p->nf + 1, CSV_MAX_FIELD);
    if (p->nf == p->cap) {
        if (p->cap >= CSV_MAX_COLS)
            return mtc_err_set(e, MTC_EINPUT, "%s:%lld: more than %d fields", p->path,
                               (long long)p->rec_line, CSV_MAX_COLS);
        int nc = p->cap ? 2 * p->cap : 16;
        field *nf = realloc(p->f, sizeof *nf * (size_t)nc);
        if (!nf) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", p->path);
        p->f = nf;
        p->cap = nc;
    }
    p->f[p->nf].s = s;
    p->f[p->nf].len = len;
    p->nf++;
    return MTC_OK;
}

/* Reads the next record into p->f. Returns 1 for a record, 0 at the end,
 * or -(error code). */
static int next_record(csvp *p, mtc_err *e)
{
    char *b = p->buf;
    for (;;) { /* skip blank lines */
        if (p->pos < p->len && b[p->pos] == '\n') { p->pos++; p->line++; }
        else if (p->pos + 1 < p->len && b[p->pos] == '\r' && b[p->pos + 1] == '\n') {
            p->pos += 2; p->line++;
        } else break;
    }
    if (p->pos >= p->len) return 0;
    p->nf = 0;
    p->rec_line = p->line;
    for (;;) {
        size_t start = p->pos, end;
        int rc;
        if (b[p->pos] == '"') {
            size_t q = p->pos + 1, w = start;
            for (;;) {
                if (q >= p->len)
                    return -mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: unterminated quoted field",
                                        p->path, (long long)p->rec_line, p->nf + 1);
                if (b[q] == '"') {
                    if (q + 1 < p->len && b[q + 1] == '"') { b[w++] = '"'; q += 2; continue; }
                    q++;
                    break;
                }
                if (b[q] == '\n') p->line++;
                b[w++] = b[q++];
            }
            p->pos = q;
            end = w;
            char c = p->pos < p->len ? b[p->pos] : 0;
            if (p->pos < p->len && c != ',' && c != '\n' && c != '\r')
                return -mtc_err_set(e, MTC_EINPUT,
                                    "%s:%lld:%d: unexpected character after a closing quote",
                                    p->path, (long long)p->line, p->nf + 1);
        } else {
            while (p->pos < p->len && b[p->pos] != ',' && b[p->pos] != '\n' && b[p->pos] != '\r')
                p->pos++;
            end = p->pos;
        }
        char delim = p->pos < p->len ? b[p->pos] : 0;
        b[end] = 0; /* end <= pos: the delimiter was read first */
        if ((rc = push_field(p, b + start, end - start, e))) return -rc;
        if (delim == ',') { p->pos++; continue; }
        if (delim == '\r') { p->pos++; if (p->pos < p->len && b[p->pos] == '\n') p->pos++; }
        else if (delim == '\n') p->pos++;
        p->line++;
        return 1;
    }
}

/* Float from a field: leading/trailing blanks allowed, must be finite. */
static int parse_float(const csvp *p, int col, const char *name, const char *s, float *out,
                       mtc_err *e)
{
    const char *t = s;
    while (*t == ' ' || *t == '\t') t++;
    if (!*t)
        return mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: missing value in column '%s'", p->path,
                           (long long)p->rec_line, col + 1, name);
    char *end;
    errno = 0;
    double v = strtod(t, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (end == t || *end)
        return mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: '%.40s' in column '%s' is not a number",
                           p->path, (long long)p->rec_line, col + 1, s, name);
    if (!isfinite(v) || !isfinite((float)v))
        return mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: '%.40s' in column '%s' is not finite",
                           p->path, (long long)p->rec_line, col + 1, s, name);
    *out = (float)v;
    return MTC_OK;
}

/* Non-negative integer class id (digits only, surrounding blanks ok) or -1. */
static int64_t parse_class_id(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    int64_t v = 0;
    int nd = 0;
    for (; *s >= '0' && *s <= '9'; s++, nd++) {
        if (v > INT32_MAX / 10) return -1;
        v = v * 10 + (*s - '0');
    }
    while (*s == ' ' || *s == '\t') s++;
    return nd && !*s ? v : -1;
}

static int cmp_pstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What one requested task reads. */
typedef struct tcol {
    int col, kind;
    const mtc_csv_task *spec;
    char **vals;      /* cls: raw strings per row (pointers into the buffer) */
    float *targets;   /* bin/reg: one per row */
} tcol;

typedef struct csvload {
    csvp p;
    int ncols, F, ntasks;
    char **hdr;       /* column names (pointers into the buffer) */
    int *in_cols;
    tcol t[MTC_MAX_TASKS];
    int64_t nrows, rowcap;
    float *x;         /* nrows * F */
    int64_t *lines;   /* record line per row, for error messages */
    int key_col;      /* --join: the id column, else -1 */
    uint64_t *keys;   /* its cells' FNV-1a per row */
    const float *fill; /* --impute mean: the whole file's column means (a
                          shard), or NULL: computed over these rows */
    int64_t row0;     /* data row index (in the file) of row 0 here */
    size_t *start;    /* census: each row's start in the buffer, or NULL */
    int64_t *start_line; /* and the physical line there */
} csvload;

static void csvload_free(csvload *L)
{
    free(L->keys);
    free(L->p.buf);
    free(L->p.f);
    free(L->hdr);
    free(L->in_cols);
    for (int i = 0; i < L->ntasks; i++) { free(L->t[i].vals); free(L->t[i].targets); }
    free(L->x);
    free(L->lines);
}

static int find_col(const csvload *L, const char *name)
{
    for (int c = 0; c < L->ncols; c++)
        if (!strcmp(L->hdr[c], name)) return c;
    return -1;
}

static int resolve_columns(csvload *L, const mtc_data_opts *o, mtc_err *e)
{
    const char *path = L->p.path;
    for (int c = 0; c < L->ncols; c++)
        for (int k = 0; k < c; k++)
            if (!strcmp(L->hdr[c], L->hdr[k]))
                return mtc_err_set(e, MTC_EINPUT, "%s:1:%d: duplicate column name '%s'", path,
                                   c + 1, L->hdr[c]);
    int *is_label = calloc((size_t)L->ncols, sizeof *is_label);
    L->in_cols = malloc(sizeof *L->in_cols * (size_t)L->ncols);
    if (!is_label || !L->in_cols) { free(is_label); return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); }
    int rc = MTC_OK;
    if (o->ntasks < 0 || o->ntasks > MTC_MAX_TASKS)
        rc = mtc_err_set(e, MTC_EINPUT, "%s: bad task count %d", path, o->ntasks);
    for (int i = 0; !rc && i < o->ntasks; i++) {
        const mtc_csv_task *s = &o->tasks[i];
        const char *cn = s->column[0] ? s->column : s->name;
        int c = find_col(L, cn);
        if (c < 0 && o->allow_absent && s->kind >= MTC_TASK_CLS && s->kind <= MTC_TASK_REG) {
            L->t[i].col = -1; /* no column: unlabelled on every row */
            L->t[i].kind = s->kind;
            L->t[i].spec = s;
            L->ntasks = i + 1;
        } else if (c < 0)
            rc = mtc_err_set(e, MTC_EINPUT, "%s: no column '%s' for task %s", path, cn, s->name);
        else if (s->kind < MTC_TASK_CLS || s->kind > MTC_TASK_REG)
            rc = mtc_err_set(e, MTC_EINPUT, "%s: task %s has an unknown kind %d", path, s->name,
                             s->kind);
        else {
            L->t[i].col = c;
            L->t[i].kind = s->kind;
            L->t[i].spec = s;
            is_label[c] = 1;
            L->ntasks = i + 1;
        }
    }
    L->F = 0;
    L->key_col = -1;
    if (!rc && o->join) { /* the id column: neither an input nor a label */
        if ((L->key_col = find_col(L, o->join)) < 0) rc = mtc_err_set(e, MTC_EINPUT, "%s: no id column '%s' (--join)", path, o->join);
        else if (is_label[L->key_col]) rc = mtc_err_set(e, MTC_EINPUT, "%s: the id column '%s' is a task's label", path, o->join);
        else is_label[L->key_col] = 2;
    }
    if (!rc && o->inputs && *o->inputs) {
        const char *q = o->inputs;
        while (!rc && q) {
            const char *comma = strchr(q, ',');
            size_t l = comma ? (size_t)(comma - q) : strlen(q);
            char name[4096];
            snprintf(name, sizeof name, "%.*s", (int)(l < 4095 ? l : 4095), q);
            int c = find_col(L, name);
            if (c < 0)
                rc = mtc_err_set(e, MTC_EINPUT, "%s: no input column '%s'", path, name);
            else if (is_label[c])
                rc = mtc_err_set(e, MTC_EINPUT, "%s: column '%s' is both an input and a label (or listed twice)",
                                 path, name);
            else { L->in_cols[L->F++] = c; is_label[c] = 2; }
            q = comma ? comma + 1 : NULL;
        }
    } else if (!rc) {
        for (int c = 0; c < L->ncols; c++)
            if (!is_label[c]) L->in_cols[L->F++] = c;
    }
    free(is_label);
    if (!rc && L->F == 0) rc = mtc_err_set(e, MTC_EINPUT, "%s: no input columns", path);
    return rc;
}

static int grow_rows(csvload *L, mtc_err *e)
{
    int64_t nc = L->rowcap ? 2 * L->rowcap : 1024;
    if (L->key_col >= 0) {
        uint64_t *k = realloc(L->keys, sizeof *k * (size_t)nc);
        if (!k) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", L->p.path);
        L->keys = k;
    }
    if ((uint64_t)nc * (uint64_t)L->F > ((uint64_t)1 << 40) / sizeof(float))
        return mtc_err_set(e, MTC_EINPUT, "%s: too many values", L->p.path);
    if (L->start) {
        size_t *st = realloc(L->start, sizeof *st * (size_t)nc);
        if (st) L->start = st;
        int64_t *sl = st ? realloc(L->start_line, sizeof *sl * (size_t)nc) : NULL;
        if (sl) L->start_line = sl;
        if (!st || !sl) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", L->p.path);
    }
    float *x = realloc(L->x, sizeof *x * (size_t)(nc * L->F));
    if (x) L->x = x;
    int64_t *ln = x ? realloc(L->lines, sizeof *ln * (size_t)nc) : NULL;
    if (ln) L->lines = ln;
    if (!x || !ln) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", L->p.path);
    for (int i = 0; i < L->ntasks; i++) {
        tcol *t = &L->t[i];
        if (t->kind == MTC_TASK_CLS) {
            char **v = realloc(t->vals, sizeof *v * (size_t)nc);
            if (!v) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", L->p.path);
            t->vals = v;
        } else {
            float *v = realloc(t->targets, sizeof *v * (size_t)nc);
            if (!v) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", L->p.path);
            t->targets = v;
        }
    }
    L->rowcap = nc;
    return MTC_OK;
}

/* A label cell that holds no label: empty, NA, ? or the user's marker. */
static int missing_cell(const char *s, const char *marker)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (!n || (n == 2 && !strncmp(s, "NA", 2)) || (n == 1 && *s == '?')) return 1;
    return marker && *marker && strlen(marker) == n && !strncmp(s, marker, n);
}

/* Parses the records of p's buffer into rows. partial: the buffer is a
 * block that ends mid-file, so the record reaching its end (cut, or an
 * unterminated quote) is left out: *resume and *resume_line say where it
 * starts, for the next block. Otherwise the buffer is the whole rest of the
 * file (resume may be NULL). */
static int read_rows_ex(csvload *L, const char *marker, int impute, int partial, size_t *resume, int64_t *resume_line,
                        mtc_err *e)
{
    csvp *p = &L->p;
    int r, rc;
    for (;;) {
        size_t pos0 = p->pos;
        int64_t line0 = p->line;
        mtc_err pe = {0};
        r = next_record(p, &pe);
        if (partial && ((r == 1 && p->pos >= p->len) || (r < 0 && strstr(pe.msg, "unterminated quoted field")))) {
            *resume = pos0, *resume_line = line0;
            return MTC_OK;
        }
        if (r < 0) { *e = pe; return -r; }
        if (r == 0) break;
        if (p->nf != L->ncols)
            return mtc_err_set(e, MTC_EINPUT, "%s:%lld: expected %d fields, found %d", p->path,
                               (long long)p->rec_line, L->ncols, p->nf);
        if (L->nrows == L->rowcap && (rc = grow_rows(L, e))) return rc;
        int64_t row = L->nrows;
        for (int j = 0; j < L->F; j++) {
            int c = L->in_cols[j];
            if (impute && missing_cell(p->f[c].s, NULL)) { /* filled with the column mean below */
                L->x[row * L->F + j] = NAN;
                continue;
            }
            if ((rc = parse_float(p, c, L->hdr[c], p->f[c].s, &L->x[row * L->F + j], e)))
                return rc;
        }
        for (int i = 0; i < L->ntasks; i++) {
            tcol *t = &L->t[i];
            const char *s = t->col >= 0 ? p->f[t->col].s : "";
            if (missing_cell(s, marker)) { /* not labelled for this task */
                if (t->kind == MTC_TASK_CLS) t->vals[row] = NULL;
                else t->targets[row] = NAN;
                continue;
            }
            if (t->kind == MTC_TASK_CLS) {
                t->vals[row] = p->f[t->col].s;
                continue;
            }
            if ((rc = parse_float(p, t->col, L->hdr[t->col], s, &t->targets[row], e))) return rc;
            if (t->kind == MTC_TASK_BIN && !(t->targets[row] >= 0.0f && t->targets[row] <= 1.0f))
                return mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: binary target %s not in [0,1]",
                                   p->path, (long long)p->rec_line, t->col + 1, s);
        }
        if (L->key_col >= 0) {
            const char *k = p->f[L->key_col].s;
            if (missing_cell(k, NULL))
                return mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: missing id in column '%s'", p->path,
                                   (long long)p->rec_line, L->key_col + 1, L->hdr[L->key_col]);
            L->keys[row] = mtc_fnv1a64(k, strlen(k), 0x6a6f696eULL);
        }
        L->lines[row] = p->rec_line;
        if (L->start) L->start[row] = pos0, L->start_line[row] = line0;
        L->nrows++;
    }
    if (resume) *resume = p->len, *resume_line = p->line;
    return MTC_OK;
}

static int read_rows(csvload *L, const char *marker, int impute, mtc_err *e)
{
    csvp *p = &L->p;
    int rc = read_rows_ex(L, marker, impute, 0, NULL, NULL, e);
    if (rc) return rc;
    if (L->nrows == 0) return mtc_err_set(e, MTC_EINPUT, "%s: no data rows", p->path);
    for (int j = 0; impute && j < L->F; j++) { /* --impute mean: the column's mean over its values */
        if (L->fill) {
            for (int64_t i = 0; i < L->nrows; i++)
                if (L->x[i * L->F + j] != L->x[i * L->F + j]) L->x[i * L->F + j] = L->fill[j];
            continue;
        }
        double s = 0;
        int64_t k = 0;
        for (int64_t i = 0; i < L->nrows; i++) {
            float v = L->x[i * L->F + j];
            if (v == v) s += v, k++;
        }
        if (!k)
            return mtc_err_set(e, MTC_EINPUT, "%s: input column '%s' has no value to impute from", p->path,
                               L->hdr[L->in_cols[j]]);
        float mean = (float)(s / (double)k);
        for (int64_t i = 0; i < L->nrows; i++)
            if (L->x[i * L->F + j] != L->x[i * L->F + j]) L->x[i * L->F + j] = mean;
    }
    return MTC_OK;
}

/* Class ids for a cls column over all rows; fills the dataset task (labels
 * for all rows, compacted to the split later). */
static int map_classes(csvload *L, tcol *t, mtc_data_task *dt, mtc_err *e)
{
    const char *path = L->p.path, *cname = t->col >= 0 ? L->hdr[t->col] : t->spec->name;
    int64_t n = L->nrows;
    dt->labels = malloc(sizeof *dt->labels * (size_t)n);
    if (!dt->labels) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    const mtc_csv_task *s = t->spec;
    if (s->nclass_names > 0 && s->class_names) { /* fixed vocabulary */
        if (s->nclass_names > CSV_MAX_CLASSES)
            return mtc_err_set(e, MTC_EINPUT, "%s: task %s: too many class names", path, s->name);
        dt->dim = s->nclass_names;
        dt->class_names = calloc((size_t)dt->dim, sizeof *dt->class_names);
        if (!dt->class_names) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
        dt->nclass_names = dt->dim;
        for (int k = 0; k < dt->dim; k++)
            if (!(dt->class_names[k] = strdup(s->class_names[k])))
                return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
        for (int64_t r = 0; r < n; r++) {
            int id = -1;
            if (!t->vals[r]) { dt->labels[r] = MTC_LABEL_MISSING; continue; }
            for (int k = 0; k < dt->dim && id < 0; k++)
                if (!strcmp(t->vals[r], s->class_names[k])) id = k;
            if (id < 0)
                return mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: class '%.40s' is not one of the %d known classes of task %s",
                                   path, (long long)L->lines[r], t->col + 1, t->vals[r], dt->dim, s->name);
            dt->labels[r] = id;
        }
        return MTC_OK;
    }
    int64_t maxid = -1;
    int all_int = 1;
    for (int64_t r = 0; r < n && all_int; r++) {
        if (!t->vals[r]) { dt->labels[r] = MTC_LABEL_MISSING; continue; }
        int64_t v = parse_class_id(t->vals[r]);
        if (v < 0) all_int = 0;
        else {
            if (v >= CSV_MAX_CLASSES)
                return mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: class id %lld in column '%s' exceeds %d",
                                   path, (long long)L->lines[r], t->col + 1, (long long)v, cname,
                                   CSV_MAX_CLASSES - 1);
            dt->labels[r] = (int32_t)v;
            if (v > maxid) maxid = v;
        }
    }
    if (all_int) { dt->dim = (int)maxid + 1; return MTC_OK; }
    /* string classes: sorted unique names */
    char **u = malloc(sizeof *u * (size_t)n);
    if (!u) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    int64_t nl = 0;
    for (int64_t r = 0; r < n; r++)
        if (t->vals[r]) u[nl++] = t->vals[r];
    qsort(u, (size_t)nl, sizeof *u, cmp_pstr);
    int64_t nu = 0;
    for (int64_t r = 0; r < nl; r++)
        if (nu == 0 || strcmp(u[nu - 1], u[r])) u[nu++] = u[r];
    if (nu > CSV_MAX_CLASSES) {
        free(u);
        return mtc_err_set(e, MTC_EINPUT, "%s: column '%s' has more than %d distinct classes",
                           path, cname, CSV_MAX_CLASSES);
    }
    dt->dim = (int)nu;
    dt->class_names = calloc((size_t)nu, sizeof *dt->class_names);
    int rc = dt->class_names ? MTC_OK : mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    if (!rc) dt->nclass_names = (int)nu;
    for (int64_t k = 0; !rc && k < nu; k++)
        if (!(dt->class_names[k] = strdup(u[k])))
            rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    for (int64_t r = 0; !rc && r < n; r++) {
        if (!t->vals[r]) { dt->labels[r] = MTC_LABEL_MISSING; continue; }
        char **hit = bsearch(&t->vals[r], u, (size_t)nu, sizeof *u, cmp_pstr);
        dt->labels[r] = (int32_t)(hit - u);
    }
    free(u);
    return rc;
}

/* Keeps the rows of the split, in file order. */
static int select_split(csvload *L, int test, int all, mtc_dataset *d, mtc_err *e)
{
    int64_t n = 0, F = L->F;
    for (int64_t r = 0; r < L->nrows; r++) {
        if (!all && (((r + L->row0) % 5 == 4) != test)) continue;
        if (n != r) {
            memmove(L->x + n * F, L->x + r * F, sizeof *L->x * (size_t)F);
            for (int i = 0; i < L->ntasks; i++) {
                mtc_data_task *dt = &d->tasks[i];
                if (dt->labels) dt->labels[n] = dt->labels[r];
                else dt->targets[n] = dt->targets[r];
            }
            if (L->keys) L->keys[n] = L->keys[r];
        }
        n++;
    }
    if (n == 0)
        return mtc_err_set(e, MTC_EINPUT, "%s: no rows fall in the %s split (%lld data rows)",
                           L->p.path, test ? "test" : "train", (long long)L->nrows);
    d->n = n;
    d->c = 1; d->h = 1; d->w = L->F;
    d->x_f32 = L->x;
    L->x = NULL;
    d->key = L->keys; /* --join: the ids of the kept rows */
    L->keys = NULL;
    float *shrunk = realloc(d->x_f32, sizeof(float) * (size_t)(n * F));
    if (shrunk) d->x_f32 = shrunk;
    return MTC_OK;
}

/* ---- --shard-data: only one shard's rows in memory ------------------------------
 * Pass 1 (the census) streams the file in blocks of mtc_csv_block_bytes,
 * parsing and checking every record as the whole-file reader does, and
 * keeps only what every shard must agree on: the record count, each cls
 * column's class vocabulary (sorted unique names, or the largest integer
 * id), the --impute column means, and every MARK-th record's byte offset
 * and line. Pass 2 reads the byte range of the shard's records (from the
 * marks around it) and parses it with those class ids and means. Memory:
 * one block plus the shard. */
size_t mtc_csv_block_bytes = (size_t)8 << 20;
int64_t mtc_csv_mark_rows = 4096;
#define MARK (mtc_csv_mark_rows > 0 ? mtc_csv_mark_rows : 4096)

typedef struct vocab {
    char **s;
    int64_t n;
} vocab;

/* Merges the n (unsorted, repeating) names of a block into v. */
static int vocab_merge(vocab *v, char **names, int64_t n, const char *path, const char *col, mtc_err *e)
{
    if (n == 0) return MTC_OK;
    qsort(names, (size_t)n, sizeof *names, cmp_pstr);
    int64_t u = 0;
    for (int64_t i = 0; i < n; i++)
        if (!u || strcmp(names[u - 1], names[i])) names[u++] = names[i];
    char **m = malloc(sizeof *m * (size_t)(v->n + u + 1));
    if (!m) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
    int64_t a = 0, b = 0, k = 0;
    int rc = MTC_OK;
    while (a < v->n || b < u) {
        int c = a == v->n ? 1 : b == u ? -1 : strcmp(v->s[a], names[b]);
        if (c <= 0) { m[k++] = v->s[a++]; if (!c) b++; continue; }
        if (!(m[k] = strdup(names[b++]))) { rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); break; }
        k++;
    }
    while (a < v->n) m[k++] = v->s[a++]; /* (an error above: keep every owned name) */
    free(v->s);
    v->s = m, v->n = k;
    if (!rc && k > CSV_MAX_CLASSES)
        rc = mtc_err_set(e, MTC_EINPUT, "%s: column '%s' has more than %d distinct classes", path, col, CSV_MAX_CLASSES);
    return rc;
}

typedef struct census {
    int64_t R;                     /* data records */
    int64_t *mark_off, *mark_line; /* record k*MARK: file offset, physical line */
    int64_t nmark;
    int all_int[MTC_MAX_TASKS];
    int64_t maxid[MTC_MAX_TASKS], labelled[MTC_MAX_TASKS];
    vocab voc[MTC_MAX_TASKS];
    double *isum;
    int64_t *icnt;
} census;

static void census_free(census *c)
{
    free(c->mark_off); free(c->mark_line); free(c->isum); free(c->icnt);
    for (int t = 0; t < MTC_MAX_TASKS; t++) {
        for (int64_t i = 0; i < c->voc[t].n; i++) free(c->voc[t].s[i]);
        free(c->voc[t].s);
    }
}

/* Reads up to n bytes at off into buf (a short count only at the end). */
static int read_at(FILE *f, const char *path, int64_t off, char *buf, size_t n, size_t *got, mtc_err *e)
{
    if (fseeko(f, (off_t)off, SEEK_SET)) return mtc_err_set(e, MTC_EIO, "%s: cannot seek (%s)", path, strerror(errno));
    *got = fread(buf, 1, n, f);
    if (*got < n && ferror(f)) return mtc_err_set(e, MTC_EIO, "%s: read error", path);
    buf[*got] = 0;
    return MTC_OK;
}

/* Bytes of a UTF-8 byte-order mark at the start of b (0 or 3). */
static size_t bom_len(const char *b, size_t len) { return len >= 3 && !memcmp(b, "\xef\xbb\xbf", 3) ? 3 : 0; }

/* L's column names: the fields of the record just read (the header). */
static int take_header(csvload *L, mtc_err *e)
{
    L->ncols = L->p.nf;
    if (!(L->hdr = malloc(sizeof *L->hdr * (size_t)L->ncols))) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", L->p.path);
    for (int c = 0; c < L->ncols; c++) L->hdr[c] = L->p.f[c].s;
    return MTC_OK;
}

/* The header record: L's columns resolved, its bytes (BOM included) in
 * *hbuf (owned by L as L->p.buf) and their count in *hlen. */
static int read_header(FILE *f, const char *path, int64_t size, const mtc_data_opts *opts, csvload *L, size_t *hlen,
                       mtc_err *e)
{
    size_t bs = 1 << 16, got;
    for (;;) {
        char *b = realloc(L->p.buf, bs + 1);
        if (!b) return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
        L->p.buf = b;
        int rc = read_at(f, path, 0, b, bs, &got, e);
        if (rc) return rc;
        L->p.len = got, L->p.pos = bom_len(b, got), L->p.line = 1;
        mtc_err pe = {0};
        int r = next_record(&L->p, &pe);
        if (r < 0 && ((int64_t)got == size || !strstr(pe.msg, "unterminated quoted field"))) {
            *e = pe;
            return -r;
        }
        if (r == 0 && (int64_t)got == size)
            return mtc_err_set(e, MTC_EINPUT, "%s: empty file (a header row is required)", path);
        if (r == 1 && (L->p.pos < got || (int64_t)got == size)) break;
        if (bs > CSV_MAX_FIELD * (size_t)64) return mtc_err_set(e, MTC_EINPUT, "%s: header row too long", path);
        bs *= 4; /* the header reaches past the buffer: more */
    }
    *hlen = L->p.pos;
    int rc = take_header(L, e);
    return rc ? rc : resolve_columns(L, opts, e);
}

/* A csvload over a block: H's columns, its own rows and parser state. */
static void block_view(const csvload *H, csvload *B)
{
    *B = *H;
    memset(&B->p, 0, sizeof B->p);
    B->p.path = H->p.path;
    B->nrows = B->rowcap = 0;
    B->x = NULL, B->lines = NULL, B->keys = NULL, B->start = NULL, B->start_line = NULL;
    for (int i = 0; i < B->ntasks; i++) B->t[i].vals = NULL, B->t[i].targets = NULL;
}

static void block_free(csvload *B)
{
    free(B->p.f); free(B->x); free(B->lines); free(B->keys); free(B->start); free(B->start_line);
    for (int i = 0; i < B->ntasks; i++) { free(B->t[i].vals); free(B->t[i].targets); }
}

static int run_census(FILE *f, const char *path, int64_t size, size_t hlen, int64_t line, const csvload *H,
                      const mtc_data_opts *opts, census *c, mtc_err *e)
{
    const char *marker = opts->missing;
    int impute = opts->impute_mean;
    size_t bs = mtc_csv_block_bytes < 64 ? 64 : mtc_csv_block_bytes;
    char *buf = malloc(bs + 1);
    char **names = NULL;
    int64_t ncap = 0;
    c->isum = calloc((size_t)H->F, sizeof *c->isum);
    c->icnt = calloc((size_t)H->F, sizeof *c->icnt);
    if (!buf || !c->isum || !c->icnt) { free(buf); return mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); }
    for (int t = 0; t < H->ntasks; t++) c->all_int[t] = 1, c->maxid[t] = -1;
    int64_t off = (int64_t)hlen, mcap = 0;
    int rc = MTC_OK;
    while (!rc && off < size) {
        size_t got;
        if ((rc = read_at(f, path, off, buf, bs, &got, e))) break;
        const int eof = off + (int64_t)got >= size;
        csvload B;
        block_view(H, &B);
        B.p.buf = buf, B.p.len = got, B.p.line = line;
        B.start = malloc(sizeof *B.start), B.start_line = malloc(sizeof *B.start_line); /* grown with the rows */
        size_t resume = got;
        int64_t rline = line;
        if (!B.start || !B.start_line) rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path);
        if (!rc) rc = read_rows_ex(&B, marker, impute, !eof, &resume, &rline, e);
        if (!rc && !eof && B.nrows == 0) { /* one record longer than the block */
            block_free(&B);
            char *nb = bs < ((size_t)1 << 34) ? realloc(buf, 2 * bs + 1) : NULL;
            if (!nb) { rc = mtc_err_set(e, MTC_EINPUT, "%s: a record longer than %zu bytes", path, bs); break; }
            buf = nb, bs *= 2;
            continue;
        }
        for (int64_t i = 0; !rc && i < B.nrows; i++) { /* marks */
            if ((c->R + i) % MARK) continue;
            if (c->nmark == mcap) {
                int64_t nc = mcap ? 2 * mcap : 64;
                int64_t *o = realloc(c->mark_off, sizeof *o * (size_t)nc);
                if (o) c->mark_off = o;
                int64_t *l = o ? realloc(c->mark_line, sizeof *l * (size_t)nc) : NULL;
                if (l) c->mark_line = l;
                if (!o || !l) { rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); break; }
                mcap = nc;
            }
            c->mark_off[c->nmark] = off + (int64_t)B.start[i], c->mark_line[c->nmark++] = B.start_line[i];
        }
        for (int j = 0; !rc && impute && j < B.F; j++)
            for (int64_t i = 0; i < B.nrows; i++) {
                float v = B.x[i * B.F + j];
                if (v == v) c->isum[j] += v, c->icnt[j]++;
            }
        for (int t = 0; !rc && t < B.ntasks; t++) {
            tcol *tc = &B.t[t];
            for (int64_t i = 0; i < B.nrows; i++)
                c->labelled[t] += tc->kind == MTC_TASK_CLS ? tc->vals[i] != NULL : tc->targets[i] == tc->targets[i];
            if (tc->col < 0 || tc->kind != MTC_TASK_CLS || (tc->spec->nclass_names > 0 && tc->spec->class_names))
                continue; /* (col < 0: an absent column, unlabelled everywhere) */
            if (B.nrows > ncap) {
                char **nn = realloc(names, sizeof *nn * (size_t)B.nrows);
                if (!nn) { rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); break; }
                names = nn, ncap = B.nrows;
            }
            int64_t k = 0;
            for (int64_t i = 0; i < B.nrows; i++) {
                const char *v = tc->vals[i];
                if (!v) continue;
                int64_t id = parse_class_id(v);
                if (id < 0) c->all_int[t] = 0;
                else if (id >= CSV_MAX_CLASSES) {
                    /* an error only while every label so far is an id (the
                     * whole-file reader's order): a name before it makes
                     * the column names */
                    if (c->all_int[t] && !rc)
                        rc = mtc_err_set(e, MTC_EINPUT, "%s:%lld:%d: class id %lld in column '%s' exceeds %d", path,
                                         (long long)B.lines[i], tc->col + 1, (long long)id, B.hdr[tc->col],
                                         CSV_MAX_CLASSES - 1);
                } else if (id > c->maxid[t]) c->maxid[t] = id;
                names[k++] = tc->vals[i];
            }
            if (!rc) rc = vocab_merge(&c->voc[t], names, k, path, B.hdr[tc->col], e);
        }
        c->R += B.nrows;
        block_free(&B);
        off += (int64_t)resume, line = rline;
    }
    free(names);
    free(buf);
    if (!rc && c->R == 0) rc = mtc_err_set(e, MTC_EINPUT, "%s: no data rows", path);
    for (int t = 0; !rc && t < H->ntasks; t++)
        if (H->t[t].col >= 0 && !c->labelled[t])
            rc = mtc_err_set(e, MTC_EINPUT, "%s: column '%s' (task %s) holds no label: every cell is missing", path,
                             H->hdr[H->t[t].col], H->t[t].spec->name);
    for (int j = 0; !rc && impute && j < H->F; j++)
        if (!c->icnt[j])
            rc = mtc_err_set(e, MTC_EINPUT, "%s: input column '%s' has no value to impute from", path,
                             H->hdr[H->in_cols[j]]);
    return rc;
}

/* Data row of split index j: every row (all), rows r % 5 != 4 (train) or
 * r % 5 == 4 (test). */
static int64_t split_row(int64_t j, int all, int test) { return all ? j : test ? 5 * j + 4 : j + j / 4; }

static int load_csv_shard(const char *path, int all, int test, const mtc_data_opts *opts, mtc_dataset *d, mtc_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mtc_err_set(e, MTC_EINPUT, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) { fclose(f); return mtc_err_set(e, MTC_EINPUT, "%s: not a regular file", path); }
    const int64_t size = (int64_t)st.st_size;
    csvload H, L;
    memset(&H, 0, sizeof H);
    memset(&L, 0, sizeof L);
    census c;
    memset(&c, 0, sizeof c);
    mtc_data_opts o = *opts;
    float *fill = NULL;
    H.p.path = L.p.path = path;
    size_t hlen = 0;
    int rc = read_header(f, path, size, opts, &H, &hlen, e);
    if (!rc) rc = run_census(f, path, size, hlen, H.p.line, &H, opts, &c, e);
    if (rc) goto done;
    /* the shard: split indices [a, b), data rows [r0, r1), read from mark m0 */
    const int64_t R = c.R, S = all ? R : test ? R / 5 : R - R / 5, N = opts->shard_count, k = opts->shard_index;
    const int64_t a = S * k / N, b = S * (k + 1) / N;
    if (a == b) {
        rc = mtc_err_set(e, MTC_EINPUT, "%s: the %s split's %lld rows leave shard %lld of %lld empty", path,
                         test ? "test" : "train", (long long)S, (long long)k, (long long)N);
        goto done;
    }
    const int64_t r0 = split_row(a, all, test), r1 = split_row(b - 1, all, test) + 1;
    const int64_t m0 = r0 / MARK, m1 = (r1 + MARK - 1) / MARK;
    const int64_t from = c.mark_off[m0], to = m1 < c.nmark ? c.mark_off[m1] : size;
    if (!(L.p.buf = malloc(hlen + (size_t)(to - from) + 1))) { rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); goto done; }
    size_t got;
    if ((rc = read_at(f, path, 0, L.p.buf, hlen, &got, e))) goto done;
    if ((rc = read_at(f, path, from, L.p.buf + hlen, (size_t)(to - from), &got, e))) goto done;
    L.p.len = hlen + got;
    L.p.pos = bom_len(L.p.buf, hlen), L.p.line = 1;
    int r = next_record(&L.p, e);
    if (r != 1) { rc = r < 0 ? -r : mtc_err_set(e, MTC_EINPUT, "%s: changed while read", path); goto done; }
    if ((rc = take_header(&L, e))) goto done;
    /* string classes: the whole file's sorted names, as a fixed vocabulary */
    for (int t = 0; t < opts->ntasks; t++)
        if (H.t[t].kind == MTC_TASK_CLS && !(opts->tasks[t].nclass_names > 0 && opts->tasks[t].class_names) &&
            !c.all_int[t]) {
            o.tasks[t].nclass_names = (int)c.voc[t].n;
            o.tasks[t].class_names = c.voc[t].s;
        }
    if ((rc = resolve_columns(&L, &o, e))) goto done;
    if (opts->impute_mean) {
        if (!(fill = malloc(sizeof *fill * (size_t)L.F))) { rc = mtc_err_set(e, MTC_ENOMEM, "%s: out of memory", path); goto done; }
        for (int j = 0; j < L.F; j++) fill[j] = (float)(c.isum[j] / (double)c.icnt[j]);
        L.fill = fill;
    }
    L.p.line = c.mark_line[m0];
    L.row0 = m0 * MARK;
    if ((rc = read_rows(&L, opts->missing, opts->impute_mean, e))) goto done;
    if (L.nrows != (m1 < c.nmark ? m1 * MARK : R) - m0 * MARK) {
        rc = mtc_err_set(e, MTC_EIO, "%s: changed while read", path);
        goto done;
    }
    for (int i = 0; !rc && i < L.ntasks; i++) {
        tcol *t = &L.t[i];
        mtc_data_task *dt = &d->tasks[i];
        memset(dt, 0, sizeof *dt);
        d->ntasks = i + 1;
        snprintf(dt->name, sizeof dt->name, "%s", t->spec->name);
        dt->kind = t->kind;
        if (t->kind == MTC_TASK_CLS) {
            rc = map_classes(&L, t, dt, e);
            if (!rc && c.all_int[i] && !dt->nclass_names) dt->dim = (int)c.maxid[i] + 1; /* the whole file's ids */
        } else {
            dt->dim = 1;
            dt->targets = t->targets;
            t->targets = NULL;
        }
    }
    if (rc) goto done;
    /* rows [r0, r1) of the ones read, then the split's */
    const int64_t lo = r0 - L.row0, hi = r1 - L.row0, F = L.F;
    memmove(L.x, L.x + lo * F, sizeof *L.x * (size_t)((hi - lo) * F));
    for (int i = 0; i < L.ntasks; i++) {
        mtc_data_task *dt = &d->tasks[i];
        if (dt->labels) memmove(dt->labels, dt->labels + lo, sizeof *dt->labels * (size_t)(hi - lo));
        else memmove(dt->targets, dt->targets + lo, sizeof *dt->targets * (size_t)(hi - lo));
    }
    L.nrows = hi - lo, L.row0 = r0;
    if ((rc = select_split(&L, test, all, d, e))) goto done;
    d->split_n = S, d->shard_lo = a;
    if (d->n != b - a) rc = mtc_err_set(e, MTC_EINTERNAL, "%s: shard of %lld rows, expected %lld", path, (long long)d->n, (long long)(b - a));
done:
    fclose(f);
    census_free(&c);
    csvload_free(&H);
    csvload_free(&L);
    free(fill);
    return rc;
}

int mtc_data_load_csv(const char *arg, const char *split, const mtc_data_opts *opts,
                      mtc_dataset *d, mtc_err *e)
{
    char path[4096];
    size_t al = strlen(arg);
    int all = al > 4 && !strcmp(arg + al - 4, "@all");
    const int whole = all || (opts && opts->join); /* --join splits by id, after the merge */
    if (al >= sizeof path || al == 0)
        return mtc_err_set(e, MTC_EINPUT, "csv: bad path '%.64s'", arg);
    snprintf(path, sizeof path, "%.*s", (int)(all ? al - 4 : al), arg);
    if (opts && opts->shard_count > 1 && !opts->join) /* (--join shards the merged set) */
        return load_csv_shard(path, all, !strcmp(split, "test"), opts, d, e);
    csvload L;
    memset(&L, 0, sizeof L);
    L.p.path = path;
    L.p.line = 1;
    int rc = mtc_read_file(path, &L.p.buf, &L.p.len, CSV_MAX_BYTES, e);
    if (rc) return rc;
    L.p.pos = bom_len(L.p.buf, L.p.len);
    int r = next_record(&L.p, e);
    if (r <= 0) {
        csvload_free(&L);
        return r < 0 ? -r : mtc_err_set(e, MTC_EINPUT, "%s: empty file (a header row is required)", path);
    }
    if ((rc = take_header(&L, e))) { csvload_free(&L); return rc; }
    rc = resolve_columns(&L, opts, e);
    if (!rc) rc = read_rows(&L, opts ? opts->missing : NULL, opts ? opts->impute_mean : 0, e);
    for (int i = 0; !rc && i < L.ntasks; i++) {
        tcol *t = &L.t[i];
        mtc_data_task *dt = &d->tasks[i];
        memset(dt, 0, sizeof *dt);
        d->ntasks = i + 1; /* so mtc_data_free releases what we attach */
        snprintf(dt->name, sizeof dt->name, "%s", t->spec->name);
        dt->kind = t->kind;
        if (t->kind == MTC_TASK_CLS) {
            rc = map_classes(&L, t, dt, e);
        } else {
            dt->dim = 1;
            dt->targets = t->targets;
            t->targets = NULL;
        }
    }
    for (int i = 0; !rc && i < L.ntasks; i++)
        if (L.t[i].col >= 0 && !mtc_data_labelled(&d->tasks[i], NULL, L.nrows))
            rc = mtc_err_set(e, MTC_EINPUT, "%s: column '%s' (task %s) holds no label: every cell is missing", path,
                             L.hdr[L.t[i].col], d->tasks[i].name);
    if (!rc) rc = select_split(&L, !strcmp(split, "test"), whole, d, e);
    csvload_free(&L);
    return rc;
}

/* ---- a CSV as a table of strings (png:DIR's labels.csv) --------------------- */

int mtc_csv_table_read(const char *path, mtc_csv_table *t, mtc_err *e)
{
    memset(t, 0, sizeof *t);
    csvp p;
    memset(&p, 0, sizeof p);
    p.path = path;
    p.line = 1;
    int rc = mtc_read_file(path, &p.buf, &p.len, CSV_MAX_BYTES, e);
    if (rc) return rc;
    p.pos = bom_len(p.buf, p.len);
    int r = next_record(&p, e);
    if (r <= 0) {
        rc = r < 0 ? -r : mtc_err_set(e, MTC_EINPUT, "%s: empty file (a header row is required)", path);
        goto fail;
    }
    t->ncols = p.nf;
    if (!(t->hdr = malloc(sizeof *t->hdr * (size_t)t->ncols))) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); goto fail; }
    for (int c = 0; c < t->ncols; c++) t->hdr[c] = p.f[c].s;
    int64_t cap = 0;
    while ((r = next_record(&p, e)) == 1) {
        if (p.nf != t->ncols) {
            rc = mtc_err_set(e, MTC_EINPUT, "%s:%lld: expected %d fields, found %d", path, (long long)p.rec_line,
                             t->ncols, p.nf);
            goto fail;
        }
        if (t->nrows == cap) {
            int64_t nc = cap ? 2 * cap : 256;
            if ((uint64_t)nc * (uint64_t)t->ncols > ((uint64_t)1 << 32)) { rc = mtc_err_set(e, MTC_EINPUT, "%s: too many cells", path); goto fail; }
            char **cells = realloc(t->cells, sizeof *cells * (size_t)(nc * t->ncols));
            int64_t *lines = realloc(t->lines, sizeof *lines * (size_t)nc);
            if (cells) t->cells = cells;
            if (lines) t->lines = lines;
            if (!cells || !lines) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); goto fail; }
            cap = nc;
        }
        for (int c = 0; c < t->ncols; c++) t->cells[t->nrows * t->ncols + c] = p.f[c].s;
        t->lines[t->nrows++] = p.rec_line;
    }
    if (r < 0) { rc = -r; goto fail; }
    free(p.f);
    t->buf = p.buf;
    return MTC_OK;
fail:
    free(p.f);
    free(p.buf);
    free(t->hdr); free(t->cells); free(t->lines);
    memset(t, 0, sizeof *t);
    return rc;
}

void mtc_csv_table_free(mtc_csv_table *t)
{
    free(t->buf); free(t->hdr); free(t->cells); free(t->lines);
    memset(t, 0, sizeof *t);
}

int mtc_csv_cell_missing(const char *s, const char *marker)
{
    return missing_cell(s, marker);
}
