/*
 * cli.c — option parsing, common options, error printing for the mtc CLI.
 */
#include "tools/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* An option's value, kept from the start of cli_parse for its help. */
typedef union opt_val {
    int i;
    float f;
    uint64_t u;
    const char *s;
} opt_val;

static opt_val opt_get(const cli_opt *o)
{
    opt_val v = {0};
    if (o->type == OPT_FLOAT) v.f = *(const float *)o->ptr;
    else if (o->type == OPT_U64) v.u = *(const uint64_t *)o->ptr;
    else if (o->type == OPT_STR) v.s = *(const char *const *)o->ptr;
    else v.i = *(const int *)o->ptr; /* OPT_INT, OPT_FLAG */
    return v;
}

static void opt_format(const cli_opt *o, opt_val v, char *buf, size_t n)
{
    if (o->type == OPT_FLOAT) snprintf(buf, n, "%g", v.f);
    else if (o->type == OPT_U64) snprintf(buf, n, "%llu", (unsigned long long)v.u);
    else if (o->type == OPT_STR) snprintf(buf, n, "%s", v.s ? v.s : "none");
    else if (o->type == OPT_FLAG) snprintf(buf, n, "%s", v.i ? "on" : "off");
    else snprintf(buf, n, "%d", v.i);
}

/* The help text with every "{default}" replaced by the value v. */
static void print_opt_help(const cli_opt *o, opt_val v)
{
    static const char token[] = "{default}";
    char val[128];
    opt_format(o, v, val, sizeof val);
    for (const char *h = o->help, *p;; h = p + sizeof token - 1) {
        if (!(p = strstr(h, token))) {
            printf("%s\n", h);
            return;
        }
        printf("%.*s%s", (int)(p - h), h, val);
    }
}

static void print_help(const char *cmd, const char *usage, const char *summary,
                       const cli_opt *opts, const opt_val *start)
{
    printf("usage: mtc %s %s\n\n%s\n\noptions:\n", cmd, usage, summary);
    for (const cli_opt *o = opts; o->name; o++) {
        const char *arg = o->type == OPT_FLAG ? "" : o->type == OPT_STR ? " S"
                        : o->type == OPT_FLOAT ? " X" : " N";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name, arg);
        printf("  %-24s ", left);
        print_opt_help(o, start[o - opts]);
    }
    printf("  %-24s %s\n", "--help", "show this help");
}

static int set_value(const char *cmd, const cli_opt *o, const char *val)
{
    char *end = NULL;
    errno = 0;
    if (o->type == OPT_STR) {
        *(const char **)o->ptr = val;
        return 0;
    }
    double v;
    if (o->type == OPT_FLOAT) {
        v = strtod(val, &end);
    } else if (o->type == OPT_U64) {
        if (val[0] == '-') end = (char *)val;
        else v = (double)strtoull(val, &end, 10);
    } else {
        v = (double)strtoll(val, &end, 10);
    }
    if (!end || end == val || *end || errno || !isfinite(v)) {
        fprintf(stderr, "mtc %s: --%s: '%s' is not a valid number\n", cmd, o->name, val);
        return 2;
    }
    if (o->lo <= o->hi && (v < o->lo || v > o->hi)) {
        fprintf(stderr, "mtc %s: --%s %s: must be in [%g, %g]\n", cmd, o->name, val,
                o->lo, o->hi);
        return 2;
    }
    if (o->type == OPT_FLOAT) *(float *)o->ptr = (float)v;
    else if (o->type == OPT_U64) *(uint64_t *)o->ptr = strtoull(val, NULL, 10);
    else *(int *)o->ptr = (int)v;
    return 0;
}

int cli_parse(const char *cmd, const char *usage, const char *summary,
              const cli_opt *opts, int argc, char **argv, const char **pos,
              int maxpos, int *npos)
{
    /* the values before any option is applied: the defaults --help shows */
    opt_val start[CLI_MAX_OPTS];
    int nopts = 0;
    for (const cli_opt *o = opts; o->name; o++) {
        if (nopts == CLI_MAX_OPTS) {
            fprintf(stderr, "mtc %s: more than %d options (raise CLI_MAX_OPTS)\n", cmd, CLI_MAX_OPTS);
            return 2;
        }
        start[nopts++] = opt_get(o);
    }
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(cmd, usage, summary, opts, start);
            return -1;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const cli_opt *o = opts;
            for (; o->name; o++)
                if (strlen(o->name) == len && !strncmp(o->name, name, len)) break;
            if (!o->name) {
                fprintf(stderr, "mtc %s: unknown option --%.*s (see mtc %s --help)\n",
                        cmd, (int)len, name, cmd);
                return 2;
            }
            if (o->type == OPT_FLAG) {
                if (eq) {
                    fprintf(stderr, "mtc %s: --%s takes no value\n", cmd, o->name);
                    return 2;
                }
                *(int *)o->ptr = 1;
                continue;
            }
            const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val) {
                fprintf(stderr, "mtc %s: --%s needs a value\n", cmd, o->name);
                return 2;
            }
            int rc = set_value(cmd, o, val);
            if (rc) return rc;
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            const cli_opt *o = opts;
            for (; o->name; o++)
                if (!strcmp(o->name, "out")) break;
            if (!o->name) {
                fprintf(stderr, "mtc %s: -o is not an option of this command\n", cmd);
                return 2;
            }
            *(const char **)o->ptr = argv[++i];
        } else {
            if (*npos >= maxpos) {
                fprintf(stderr, "mtc %s: unexpected argument '%s' (see mtc %s --help)\n",
                        cmd, a, cmd);
                return 2;
            }
            pos[(*npos)++] = a;
        }
    }
    return 0;
}

void cli_common_defaults(cli_common *c)
{
    mtc_train_cfg t;
    mtc_quant_cfg q;
    mtc_train_cfg_default(&t);
    mtc_quant_cfg_default(&q); /* the one library cfg with a thread count */
    memset(c, 0, sizeof *c);
    c->seed = t.seed;
    c->threads = q.threads;
}

const char *cli_missing_marker; /* --missing, read by util_data_open */
int cli_impute_mean;            /* --impute mean, likewise */
const char *cli_join_column;    /* --join ID, likewise */

void cli_apply_common(const cli_common *c)
{
    mtc_set_threads(c->threads);
    cli_missing_marker = c->missing;
    cli_impute_mean = c->impute && !strcmp(c->impute, "mean");
    cli_join_column = c->join;
    if (c->impute && !cli_impute_mean) {
        fprintf(stderr, "mtc: --impute %s: expected mean\n", c->impute);
        exit(2);
    }
}

int cli_fail(const char *cmd, const mtc_err *e)
{
    fprintf(stderr, "mtc %s: %s\n", cmd, e->msg[0] ? e->msg : "failed");
    return mtc_exit_code(e->code ? e->code : MTC_EINTERNAL);
}

void cli_progress(const cli_common *c, const char *fmt, ...)
{
    if ((c && c->quiet) || mtc_comm_rank() > 0) return; /* rank 0 reports for an MPI job */
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
