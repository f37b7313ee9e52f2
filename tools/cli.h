/*
 * cli.h — the small option parser every `mtc` command uses, so that every
 * command has --help, bounds-checked numbers and the same common options.
 * Only the CLI (tools/) uses this; the library never parses argv.
 */
#ifndef MTC_CLI_H
#define MTC_CLI_H

#include "mtc.h"

enum { OPT_FLAG, OPT_INT, OPT_FLOAT, OPT_STR, OPT_U64 };
/* help may say "{default}": --help prints the option's value there as it
 * was when cli_parse began (int %d, float %g, u64 %llu, string as is).
 * Commands fill their targets from the library's *_cfg_default before
 * parsing, so the help shows what a run without the option uses and cannot
 * drift from it. */
typedef struct cli_opt {
    const char *name;   /* long name without "--" */
    int type;
    void *ptr;          /* int*, int*, float*, const char**, uint64_t* */
    const char *help;
    double lo, hi;      /* numeric bounds, inclusive; lo > hi = unbounded */
} cli_opt;
#define CLI_MAX_OPTS 64
#define CLI_END {0, 0, 0, 0, 0, 0}

typedef struct cli_common {
    uint64_t seed;
    int threads;
    int json;
    int quiet;
    const char *missing;  /* CLI_MISSING: CSV label cells that are no label */
    const char *impute;   /* CLI_MISSING: "mean" fills missing CSV input cells */
    const char *join;     /* CLI_MISSING: the id column that merges A+B's rows */
} cli_common;
/* --missing for the commands that read labelled data (util_data_open) */
#define CLI_MISSING(c)                                                       \
    {"missing", OPT_STR, &(c)->missing, "CSV: label cells equal to this are missing labels (besides empty, NA and ?)", \
     1, 0},                                                                   \
    {"impute", OPT_STR, &(c)->impute, "CSV: 'mean' fills a missing input cell (empty, NA, ?) with its column's mean (default: an error)", \
     1, 0},                                                                   \
    {"join", OPT_STR, &(c)->join, "csv:A+csv:B: merge the rows with the same value in this id column (default: one file after the other)", \
     1, 0}
#define CLI_COMMON(c)                                                        \
    {"seed", OPT_U64, &(c)->seed, "random seed (default {default})", 1, 0},  \
    {"threads", OPT_INT, &(c)->threads, "worker threads (default {default})", 1, 256}, \
    {"json", OPT_FLAG, &(c)->json, "print one JSON object on stdout", 1, 0}, \
    {"quiet", OPT_FLAG, &(c)->quiet, "no progress on stderr", 1, 0}

/* Parses argv[1..] (argv[0] is the command name). Positional arguments go to
 * pos[]. Returns 0 to go on, -1 when --help was printed (exit 0), or 2 after
 * printing a one-line usage error to stderr. */
int cli_parse(const char *cmd, const char *usage, const char *summary,
              const cli_opt *opts, int argc, char **argv, const char **pos,
              int maxpos, int *npos);
/* --seed and --threads from the library's defaults (mtc_train_cfg_default,
 * mtc_quant_cfg_default). */
void cli_common_defaults(cli_common *c);
/* Applies --threads to OpenBLAS and mtc's own loops. */
void cli_apply_common(const cli_common *c);
extern const char *cli_missing_marker; /* the last --missing applied, or NULL */
extern int cli_impute_mean;            /* the last --impute mean applied */
extern const char *cli_join_column;    /* the last --join applied, or NULL */
/* Prints "mtc <cmd>: <msg>" for an error and returns the exit code. */
int cli_fail(const char *cmd, const mtc_err *e);
/* Progress line to stderr unless quiet: one line per call. */
void cli_progress(const cli_common *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
double cli_now(void); /* monotonic seconds */

#endif
