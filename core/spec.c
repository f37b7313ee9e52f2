/*
 * spec.c — parser for the INI-like model spec (see include/mtc/model.h).
 *
 * One section per layer or task; `key = value` pairs follow the header on the
 * same line or on the next lines. Every error names file:line and what was
 * expected. The parser checks syntax and values; shape checks happen when the
 * model is built (mtc_model_build), also with file:line.
 */
#include "mtc.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *file;
    int line;
    mtc_spec *s;
    mtc_err *e;
    /* where layers go: 0 trunk, 1 a head */
    int in_head;
    int head_task;               /* index into pending heads */
    int nheads;
    char head_names[MTC_MAX_TASKS][MTC_NAME_MAX];
    int head_lines[MTC_MAX_TASKS];
    int head_n[MTC_MAX_TASKS];
    mtc_layer_spec head_layers[MTC_MAX_TASKS][MTC_MAX_LAYERS];
    /* current section */
    enum { SEC_NONE, SEC_INPUT, SEC_MMOE, SEC_LAYER, SEC_TASK, SEC_HEAD, SEC_TRAIN } sec;
    int train_seen;
    mtc_layer_spec *layer;
    mtc_task_spec *task;
} parser;

static const char *layer_names[] = {"dense", "conv", "maxpool", "avgpool", "flatten",
                                    "act", "dropout", "batchnorm", "layernorm", "residual", "add"};

const char *mtc_layer_type_name(int type)
{
    return (unsigned)type < sizeof layer_names / sizeof *layer_names ? layer_names[type] : "?";
}

static int fail(parser *p, const char *fmt, const char *a, const char *b)
{
    char msg[300];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    return mtc_err_set(p->e, MTC_EINPUT, "%s:%d: %s", p->file, p->line, msg);
}

static int parse_int(parser *p, const char *key, const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        char range[64];
        snprintf(range, sizeof range, "an integer in [%d, %d]", lo, hi);
        return fail(p, "%s: expected %s", key, range);
    }
    *out = (int)x;
    return 0;
}

static int parse_float(parser *p, const char *key, const char *v, double lo, double hi,
                       float *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        char range[64];
        snprintf(range, sizeof range, "a number in [%g, %g]", lo, hi);
        return fail(p, "%s: expected %s", key, range);
    }
    *out = (float)x;
    return 0;
}

static int parse_shape(parser *p, const char *v)
{
    int d[3] = {0, 0, 0}, n = 0;
    const char *q = v;
    while (*q && n < 3) {
        char *end;
        long x = strtol(q, &end, 10);
        if (end == q || x <= 0 || x > 65536) break;
        d[n++] = (int)x;
        q = end;
        if (*q == 'x' || *q == 'X') q++;
        else break;
    }
    if (*q || n == 0)
        return fail(p, "shape: expected CxHxW, HxW or F (got '%s')", v, NULL);
    if (n == 1) { p->s->c = 1; p->s->h = 1; p->s->w = d[0]; }
    else if (n == 2) { p->s->c = 1; p->s->h = d[0]; p->s->w = d[1]; }
    else { p->s->c = d[0]; p->s->h = d[1]; p->s->w = d[2]; }
    return 0;
}

static int parse_map(parser *p, mtc_task_spec *t, const char *v)
{
    const char *colon = strchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= MTC_NAME_MAX)
        return fail(p, "from: expected TASK:c0,c1,... (got '%s')", v, NULL);
    memcpy(t->from, v, (size_t)(colon - v));
    t->from[colon - v] = 0;
    const char *q = colon + 1;
    t->nmap = 0;
    while (*q) {
        char *end;
        long x = strtol(q, &end, 10);
        if (end == q || x < 0 || x > 255 || t->nmap >= 256)
            return fail(p, "from: bad class map '%s'", v, NULL);
        t->map[t->nmap++] = (int32_t)x;
        q = end;
        if (*q == ',') q++;
        else if (*q) return fail(p, "from: bad class map '%s'", v, NULL);
    }
    if (t->nmap == 0) return fail(p, "from: empty class map", NULL, NULL);
    return 0;
}

static int set_key(parser *p, const char *k, const char *v)
{
    if (p->sec == SEC_INPUT) {
        if (!strcmp(k, "shape")) return parse_shape(p, v);
        if (!strcmp(k, "columns")) {
            if (strlen(v) >= sizeof p->s->columns) return fail(p, "columns: too long", 0, 0);
            snprintf(p->s->columns, sizeof p->s->columns, "%s", v);
            return 0;
        }
        return fail(p, "unknown key '%s' in [input] (expected shape, columns)", k, NULL);
    }
    if (p->sec == SEC_MMOE) {
        if (!strcmp(k, "experts")) return parse_int(p, k, v, 2, MTC_MAX_EXPERTS, &p->s->experts);
        return fail(p, "unknown key '%s' in [mmoe] (expected experts)", k, NULL);
    }
    if (p->sec == SEC_LAYER) {
        mtc_layer_spec *l = p->layer;
        switch (l->type) {
        case MTC_L_DENSE:
            if (!strcmp(k, "units")) return parse_int(p, k, v, 1, 1 << 20, &l->units);
            break;
        case MTC_L_CONV:
            if (!strcmp(k, "filters")) return parse_int(p, k, v, 1, 1 << 16, &l->filters);
            if (!strcmp(k, "size")) return parse_int(p, k, v, 1, 64, &l->size);
            if (!strcmp(k, "stride")) return parse_int(p, k, v, 1, 64, &l->stride);
            if (!strcmp(k, "pad")) return parse_int(p, k, v, 0, 64, &l->pad);
            if (!strcmp(k, "groups")) return parse_int(p, k, v, 1, 1 << 16, &l->groups);
            break;
        case MTC_L_MAXPOOL: case MTC_L_AVGPOOL:
            if (l->type == MTC_L_AVGPOOL && !strcmp(k, "global")) { /* global = 1: as large as the map */
                int g;
                int rc = parse_int(p, k, v, 0, 1, &g);
                if (!rc && g) l->size = 0, l->stride = 0;
                return rc;
            }
            if (!strcmp(k, "size")) return parse_int(p, k, v, 1, 64, &l->size);
            if (!strcmp(k, "stride")) return parse_int(p, k, v, 1, 64, &l->stride);
            break;
        case MTC_L_DROPOUT:
            if (!strcmp(k, "p")) return parse_float(p, k, v, 0.0, 0.95, &l->p);
            break;
        }
        if (!strcmp(k, "act") || (!strcmp(k, "fn") && l->type == MTC_L_ACT)) {
            if (l->type != MTC_L_DENSE && l->type != MTC_L_CONV && l->type != MTC_L_ACT && l->type != MTC_L_ADD)
                return fail(p, "act: only dense, conv, add and act layers take an activation", 0, 0);
            int a = mtc_act_parse(v);
            if (a < 0)
                return fail(p, "unknown activation '%s' (expected none, relu, leaky, tanh, sigmoid, gelu)", v, NULL);
            l->act = a;
            return 0;
        }
        return fail(p, "unknown key '%s' for [%s]", k, mtc_layer_type_name(l->type));
    }
    if (p->sec == SEC_TASK) {
        mtc_task_spec *t = p->task;
        if (!strcmp(k, "kind")) {
            if (!strcmp(v, "cls")) t->kind = MTC_TASK_CLS;
            else if (!strcmp(v, "bin")) t->kind = MTC_TASK_BIN;
            else if (!strcmp(v, "reg")) t->kind = MTC_TASK_REG;
            else return fail(p, "kind: expected cls, bin or reg (got '%s')", v, NULL);
            return 0;
        }
        if (!strcmp(k, "classes") || !strcmp(k, "outputs"))
            return parse_int(p, k, v, 1, 1 << 16, &t->dim);
        if (!strcmp(k, "weight")) return parse_float(p, k, v, 0.0, 1e6, &t->weight);
        if (!strcmp(k, "smoothing")) return parse_float(p, k, v, 0.0, 0.99, &t->smoothing);
        if (!strcmp(k, "delta")) return parse_float(p, k, v, 1e-6, 1e6, &t->huber_delta);
        if (!strcmp(k, "loss")) {
            if (!strcmp(v, "mse")) t->loss = MTC_LOSS_MSE;
            else if (!strcmp(v, "mae")) t->loss = MTC_LOSS_MAE;
            else if (!strcmp(v, "huber")) t->loss = MTC_LOSS_HUBER;
            else if (!strcmp(v, "ce") || !strcmp(v, "bce")) t->loss = MTC_LOSS_MSE;
            else return fail(p, "loss: expected mse, mae or huber (got '%s')", v, NULL);
            return 0;
        }
        if (!strcmp(k, "from")) return parse_map(p, t, v);
        if (!strcmp(k, "column") || !strcmp(k, "label")) {
            if (strlen(v) >= MTC_NAME_MAX) return fail(p, "column: name too long", 0, 0);
            snprintf(t->column, sizeof t->column, "%s", v);
            return 0;
        }
        return fail(p, "unknown key '%s' in [task] (expected kind, classes, outputs, weight, loss, smoothing, delta, from, column)", k, NULL);
    }
    if (p->sec == SEC_HEAD) return fail(p, "[head] takes no keys (put layers after it)", 0, 0);
    if (p->sec == SEC_TRAIN) { /* names and values are checked by the CLI that applies them */
        mtc_spec *s = p->s;
        if (strlen(k) >= sizeof s->train[0].key || strlen(v) >= sizeof s->train[0].val)
            return fail(p, "[train] %s: key or value too long", k, NULL);
        for (int i = 0; i < s->ntrain; i++)
            if (!strcmp(s->train[i].key, k)) return fail(p, "[train]: '%s' given twice", k, NULL);
        if (s->ntrain >= MTC_SPEC_TRAIN_MAX) return fail(p, "[train]: too many keys", 0, 0);
        snprintf(s->train[s->ntrain].key, sizeof s->train[0].key, "%s", k);
        snprintf(s->train[s->ntrain].val, sizeof s->train[0].val, "%s", v);
        s->train[s->ntrain++].line = p->line;
        return 0;
    }
    return fail(p, "'%s' outside any section", k, NULL);
}

static int valid_name(const char *n)
{
    if (!*n || strlen(n) >= MTC_NAME_MAX) return 0;
    for (const char *q = n; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-') return 0;
    return 1;
}

static int open_section(parser *p, const char *name, const char *arg)
{
    mtc_spec *s = p->s;
    if (!strcmp(name, "input")) { p->sec = SEC_INPUT; return 0; }
    if (!strcmp(name, "mmoe")) { p->sec = SEC_MMOE; s->experts = 2; return 0; }
    if (!strcmp(name, "train")) {
        if (p->train_seen++) return fail(p, "a second [train] section", 0, 0);
        p->sec = SEC_TRAIN;
        return 0;
    }
    if (!strcmp(name, "task")) {
        if (!valid_name(arg))
            return fail(p, "[task NAME]: expected a name of letters, digits, '_' or '-'", 0, 0);
        for (int i = 0; i < s->ntasks; i++)
            if (!strcmp(s->tasks[i].name, arg)) return fail(p, "duplicate task '%s'", arg, NULL);
        if (s->ntasks >= MTC_MAX_TASKS) return fail(p, "too many tasks", 0, 0);
        mtc_task_spec *t = &s->tasks[s->ntasks++];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%.*s", MTC_NAME_MAX - 1, arg); /* valid_name bounds it */
        t->kind = MTC_TASK_CLS;
        t->weight = 1.0f;
        t->huber_delta = 1.0f;
        t->line = p->line;
        p->task = t;
        p->sec = SEC_TASK;
        p->in_head = 0;
        return 0;
    }
    if (!strcmp(name, "head")) {
        if (!valid_name(arg)) return fail(p, "[head NAME]: expected the task's name", 0, 0);
        for (int i = 0; i < p->nheads; i++)
            if (!strcmp(p->head_names[i], arg)) return fail(p, "duplicate [head %s]", arg, NULL);
        if (p->nheads >= MTC_MAX_TASKS) return fail(p, "too many heads", 0, 0);
        p->head_task = p->nheads++;
        snprintf(p->head_names[p->head_task], MTC_NAME_MAX, "%.*s", MTC_NAME_MAX - 1, arg);
        p->head_lines[p->head_task] = p->line;
        p->head_n[p->head_task] = 0;
        p->in_head = 1;
        p->sec = SEC_HEAD;
        return 0;
    }
    const int gap = !strcmp(name, "gap"); /* [gap]: [avgpool] global = 1 */
    for (int t = 0; t < (int)(sizeof layer_names / sizeof *layer_names); t++) {
        if (strcmp(name, layer_names[t]) && !(gap && t == MTC_L_AVGPOOL)) continue;
        if (*arg) return fail(p, "[%s] takes no name", name, NULL);
        mtc_layer_spec *l;
        if (p->in_head) {
            int *n = &p->head_n[p->head_task];
            if (*n >= MTC_MAX_LAYERS - 1) return fail(p, "too many layers in head", 0, 0);
            l = &p->head_layers[p->head_task][(*n)++];
        } else {
            if (s->ntasks > 0)
                return fail(p, "[%s] after a [task]: trunk layers come before the tasks; head layers go under [head NAME]", name, NULL);
            if (s->ntrunk >= MTC_MAX_LAYERS) return fail(p, "too many trunk layers", 0, 0);
            l = &s->trunk[s->ntrunk++];
        }
        memset(l, 0, sizeof *l);
        l->type = t;
        l->line = p->line;
        l->stride = 0; /* resolved at build: conv 1, pool = size */
        l->pad = -1;   /* conv default: size/2 */
        if (t == MTC_L_DROPOUT) l->p = 0.5f;
        if (t == MTC_L_MAXPOOL || t == MTC_L_AVGPOOL) l->size = gap ? 0 : 2; /* 0: the whole map */
        if (t == MTC_L_CONV) l->size = 3;
        if (t == MTC_L_ACT) l->act = MTC_ACT_RELU;
        p->layer = l;
        p->sec = SEC_LAYER;
        return 0;
    }
    return fail(p, "unknown section [%s] (expected input, mmoe, dense, conv, maxpool, avgpool, gap, flatten, act, dropout, batchnorm, layernorm, residual, add, task, head, train)", name, NULL);
}

/* Splits "k = v k2=v2" into pairs; '=' may be spaced or not. */
static int parse_pairs(parser *p, char *s)
{
    for (;;) {
        while (isspace((unsigned char)*s)) s++;
        if (!*s) return 0;
        char *k = s;
        while (*s && !isspace((unsigned char)*s) && *s != '=') s++;
        char *kend = s;
        while (isspace((unsigned char)*s)) s++;
        if (*s != '=') {
            *kend = 0;
            return fail(p, "expected 'key = value' near '%s'", k, NULL);
        }
        *kend = 0;
        s++;
        while (isspace((unsigned char)*s)) s++;
        char *v = s;
        while (*s && !isspace((unsigned char)*s)) s++;
        if (v == s) return fail(p, "key '%s' has no value", k, NULL);
        char save = *s;
        *s = 0;
        int rc = set_key(p, k, v);
        *s = save;
        if (rc) return rc;
    }
}

static int finish(parser *p)
{
    mtc_spec *s = p->s;
    p->line = 0;
    if (s->c <= 0) return mtc_err_set(p->e, MTC_EINPUT, "%s: missing [input] shape", p->file);
    if (s->ntasks == 0) return mtc_err_set(p->e, MTC_EINPUT, "%s: no [task] sections", p->file);
    for (int i = 0; i < s->ntasks; i++) {
        mtc_task_spec *t = &s->tasks[i];
        if (t->from[0]) {
            int src = mtc_spec_task_index(s, t->from);
            if (src < 0 || src == i)
                return mtc_err_set(p->e, MTC_EINPUT, "%s:%d: task '%s' derives from unknown task '%s'",
                                   p->file, t->line, t->name, t->from);
            if (t->kind != MTC_TASK_CLS || s->tasks[src].kind != MTC_TASK_CLS)
                return mtc_err_set(p->e, MTC_EINPUT, "%s:%d: derived task '%s' and its source must be cls",
                                   p->file, t->line, t->name);
            if (s->tasks[src].dim && t->nmap != s->tasks[src].dim)
                return mtc_err_set(p->e, MTC_EINPUT, "%s:%d: map of '%s' has %d entries, '%s' has %d classes",
                                   p->file, t->line, t->name, t->nmap, t->from, s->tasks[src].dim);
            int mx = 0;
            for (int j = 0; j < t->nmap; j++) mx = t->map[j] > mx ? t->map[j] : mx;
            if (t->dim == 0) t->dim = mx + 1;
            if (mx >= t->dim)
                return mtc_err_set(p->e, MTC_EINPUT, "%s:%d: map of '%s' names class %d but it has %d classes",
                                   p->file, t->line, t->name, mx, t->dim);
        }
        if (t->dim == 0) {
            if (t->kind == MTC_TASK_CLS)
                return mtc_err_set(p->e, MTC_EINPUT, "%s:%d: task '%s' needs classes = K",
                                   p->file, t->line, t->name);
            t->dim = 1;
        }
        if (t->kind == MTC_TASK_CLS && t->dim < 2)
            return mtc_err_set(p->e, MTC_EINPUT, "%s:%d: cls task '%s' needs at least 2 classes",
                               p->file, t->line, t->name);
        if (t->kind == MTC_TASK_REG && t->dim > 64)
            return mtc_err_set(p->e, MTC_EINPUT, "%s:%d: reg task '%s': at most 64 outputs",
                               p->file, t->line, t->name);
    }
    for (int h = 0; h < p->nheads; h++) {
        int t = mtc_spec_task_index(s, p->head_names[h]);
        if (t < 0)
            return mtc_err_set(p->e, MTC_EINPUT, "%s:%d: [head %s] has no matching [task %s]",
                               p->file, p->head_lines[h], p->head_names[h], p->head_names[h]);
        s->tasks[t].nhead = p->head_n[h];
        memcpy(s->tasks[t].head, p->head_layers[h], sizeof(mtc_layer_spec) * (size_t)p->head_n[h]);
    }
    return 0;
}

int mtc_spec_parse(const char *text, const char *filename, mtc_spec *s, mtc_err *e)
{
    parser *p = calloc(1, sizeof *p);
    if (!p) return mtc_err_set(e, MTC_ENOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    p->file = filename ? filename : "<spec>";
    p->s = s;
    p->e = e;
    int rc = 0;
    const char *q = text;
    char line[4096];
    while (*q && !rc) {
        size_t n = strcspn(q, "\n");
        p->line++;
        if (n >= sizeof line) { rc = fail(p, "line too long", 0, 0); break; }
        memcpy(line, q, n);
        line[n] = 0;
        q += n + (q[n] == '\n');
        char *hash = strpbrk(line, "#;");
        if (hash) *hash = 0;
        char *l = line;
        while (isspace((unsigned char)*l)) l++;
        if (*l == '[') {
            char *close = strchr(l, ']');
            if (!close) { rc = fail(p, "section header without ']'", 0, 0); break; }
            *close = 0;
            char name[64] = "", arg[MTC_NAME_MAX + 8] = "";
            if (sscanf(l + 1, " %63s %71s", name, arg) < 1) { rc = fail(p, "empty section header", 0, 0); break; }
            rc = open_section(p, name, arg);
            if (!rc) rc = parse_pairs(p, close + 1);
        } else if (*l) {
            rc = parse_pairs(p, l);
        }
    }
    if (!rc) rc = finish(p);
    free(p);
    return rc;
}

int mtc_spec_load(const char *path, mtc_spec *s, char **text, mtc_err *e)
{
    char *buf;
    size_t len;
    int rc = mtc_read_file(path, &buf, &len, 1 << 20, e);
    if (rc) return rc;
    if (memchr(buf, 0, len)) {
        free(buf);
        return mtc_err_set(e, MTC_EINPUT, "%s: not a text file", path);
    }
    rc = mtc_spec_parse(buf, path, s, e);
    if (rc || !text) free(buf);
    else *text = buf;
    return rc;
}

int mtc_spec_task_index(const mtc_spec *s, const char *name)
{
    for (int i = 0; i < s->ntasks; i++)
        if (!strcmp(s->tasks[i].name, name)) return i;
    return -1;
}
