/*
 * cmd_pipeline.c — `mtc pipeline recipe.ini`: teacher -> soft labels ->
 * student (KD, plus a scratch twin) -> pruning -> int8 -> verify, from one
 * recipe file, ending with the per-stage, per-task table.
 *
 * Each stage runs the same code as its own command (cmd_train, cmd_label,
 * ...), in this process, with an argv built from the recipe: every key of a
 * stage's section is passed as `--key value`, so whatever a command accepts
 * a recipe can say (the teacher stage is `mtc train`, so a [train] section
 * in its spec applies under these keys). Recipe:
 *
 *   data = fashion-mnist     out = demo     threads = 2
 *   [teacher]  spec = examples/fmnist-teacher-plain.cfg  epochs = 5
 *   [student]  spec = examples/fmnist-student.cfg  epochs = 10
 *   [distill]                 (T, alpha: the defaults; or temperature = ...)
 *   [prune]    sparsity = 0.9  schedule = agp  steps = 5  finetune-epochs = 2
 *   [quantize]                (an empty section runs the stage at its defaults)
 *   [verify]   max-drop = fashion=0.8,super=0.5
 *   [summary]                 (or max-drop = ... to give the table budgets)
 *
 * A key a recipe leaves out takes the command's default, which is the
 * library's; threads without a top-level key come from --threads. A
 * missing [prune] or [quantize] section skips that stage. The exit code is
 * the verify gate's (int8 student against its fp32 KD parent); the summary
 * table is a report (`verify --report-only`) unless [summary] sets max-drop
 * or junit (a gate's keys).
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_KEYS 32

typedef struct section {
    char name[32];
    int present, n;
    char key[MAX_KEYS][64], val[MAX_KEYS][512];
} section;

enum { S_TOP, S_TEACHER, S_STUDENT, S_DISTILL, S_PRUNE, S_QUANTIZE, S_VERIFY, S_SUMMARY, S_COUNT };
static const char *section_names[S_COUNT] = {"", "teacher", "student", "distill", "prune", "quantize", "verify",
                                             "summary"};

static const char *get(const section *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->key[i], key)) return s->val[i];
    return NULL;
}

static int add_pair(section *s, const char *k, const char *v, const char *path, int line, mtc_err *e)
{
    if (s->n >= MAX_KEYS || strlen(k) >= sizeof s->key[0] || strlen(v) >= sizeof s->val[0])
        return mtc_err_set(e, MTC_EINPUT, "%s:%d: too many or too long settings", path, line);
    snprintf(s->key[s->n], sizeof s->key[0], "%s", k);
    snprintf(s->val[s->n], sizeof s->val[0], "%s", v);
    s->n++;
    return 0;
}

/* "k = v" (spaced) or "k=v" (first '=' splits) pairs on one line. */
static int parse_pairs(section *s, char *p, const char *path, int line, mtc_err *e)
{
    char *tok[256], *sp = NULL;
    int n = 0;
    for (char *t = strtok_r(p, " \t\r", &sp); t && n < 256; t = strtok_r(NULL, " \t\r", &sp)) tok[n++] = t;
    for (int i = 0; i < n;) {
        if (i + 2 < n && !strcmp(tok[i + 1], "=")) {
            if (add_pair(s, tok[i], tok[i + 2], path, line, e)) return e->code;
            i += 3;
            continue;
        }
        char *eq = strchr(tok[i], '=');
        if (!eq || eq == tok[i] || !eq[1])
            return mtc_err_set(e, MTC_EINPUT, "%s:%d: expected 'key = value' near '%s'", path, line, tok[i]);
        *eq = 0;
        if (add_pair(s, tok[i], eq + 1, path, line, e)) return e->code;
        i++;
    }
    return 0;
}

static int parse_recipe(const char *path, section *secs, mtc_err *e)
{
    char *text;
    int rc = mtc_read_file(path, &text, NULL, 1 << 20, e);
    if (rc) return rc;
    section *cur = &secs[S_TOP];
    cur->present = 1;
    int line = 0;
    for (char *l = text, *next; l && !rc; l = next) {
        next = strchr(l, '\n');
        if (next) *next++ = 0;
        line++;
        char *hash = strchr(l, '#');
        if (hash) *hash = 0;
        while (isspace((unsigned char)*l)) l++;
        if (!*l) continue;
        if (*l == '[') {
            char *close = strchr(l, ']');
            if (!close) { rc = mtc_err_set(e, MTC_EINPUT, "%s:%d: section header without ']'", path, line); break; }
            *close = 0;
            int k = 1;
            for (; k < S_COUNT; k++)
                if (!strcmp(l + 1, section_names[k])) break;
            if (k == S_COUNT) {
                rc = mtc_err_set(e, MTC_EINPUT, "%s:%d: unknown section [%s] (expected teacher, student, distill, "
                                 "prune, quantize, verify, summary)", path, line, l + 1);
                break;
            }
            cur = &secs[k];
            cur->present = 1;
            l = close + 1;
        }
        rc = parse_pairs(cur, l, path, line, e);
    }
    free(text);
    return rc;
}

typedef struct argv_b {
    int argc;
    char *argv[160];
} argv_b;

static void argv_reset(argv_b *a)
{
    for (int i = 0; i < a->argc; i++) free(a->argv[i]);
    a->argc = 0;
}

static void arg(argv_b *a, const char *s)
{
    if (a->argc >= 158) return;
    char *d = strdup(s);
    if (!d) return;
    a->argv[a->argc++] = d;
    a->argv[a->argc] = NULL;
}

static void arg2(argv_b *a, const char *k, const char *v)
{
    char opt[80];
    snprintf(opt, sizeof opt, "--%s", k);
    arg(a, opt);
    arg(a, v);
}

/* Section keys pass through as --key value, except those listed in skip. */
static void pass_keys(argv_b *a, const section *s, const char *const *skip)
{
    for (int i = 0; i < s->n; i++) {
        int skipped = 0;
        for (const char *const *k = skip; k && *k; k++) skipped |= !strcmp(*k, s->key[i]);
        if (!skipped) arg2(a, s->key[i], s->val[i]);
    }
}

static int run(const char *title, int (*fn)(int, char **), argv_b *a, const cli_common *c)
{
    if (!c->quiet) {
        fprintf(stderr, "\n== pipeline: %s:", title);
        for (int i = 0; i < a->argc; i++) fprintf(stderr, " %s", a->argv[i]);
        fprintf(stderr, "\n");
    }
    fflush(stdout);
    int rc = fn(a->argc, a->argv);
    fflush(stdout);
    argv_reset(a);
    return rc;
}

static void common_args(argv_b *a, const cli_common *c, const char *threads)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    arg2(a, "seed", seed);
    arg2(a, "threads", threads);
    if (c->quiet) arg(a, "--quiet");
}

int cmd_pipeline(int argc, char **argv)
{
    cli_common c;
    cli_common_defaults(&c);
    const char *out_override = NULL;
    cli_opt opts[] = {
        {"out", OPT_STR, &out_override, "output folder (overrides the recipe's out; -o)", 1, 0},
        CLI_COMMON(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("pipeline", "recipe.ini [-o DIR]",
                       "Runs teacher -> soft labels -> KD student (+ scratch) -> prune -> int8 -> verify from a\n"
                       "recipe; keys of a stage's section are passed to that command as --key value.\n"
                       "See examples/fmnist-pipeline.ini.",
                       opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1) {
        fprintf(stderr, "mtc pipeline: give one recipe file (see mtc pipeline --help)\n");
        return 2;
    }
    static section secs[S_COUNT];
    memset(secs, 0, sizeof secs);
    mtc_err e = {0};
    if (parse_recipe(pos[0], secs, &e)) return cli_fail("pipeline", &e);
    const section *top = &secs[S_TOP];
    const char *data = get(top, "data"), *out = out_override ? out_override : get(top, "out");
    char threads_opt[16]; /* the recipe's threads, else --threads (whose default is the library's) */
    snprintf(threads_opt, sizeof threads_opt, "%d", c.threads);
    const char *threads = get(top, "threads") ? get(top, "threads") : threads_opt;
    if (!data || !out) {
        mtc_err_set(&e, MTC_EINPUT, "%s: the recipe needs data = NAME and out = DIR at the top", pos[0]);
        return cli_fail("pipeline", &e);
    }
    for (int k = S_TEACHER; k <= S_STUDENT; k++)
        if (!secs[k].present || !get(&secs[k], "spec")) {
            mtc_err_set(&e, MTC_EINPUT, "%s: [%s] with spec = FILE is required", pos[0], section_names[k]);
            return cli_fail("pipeline", &e);
        }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        mtc_err_set(&e, MTC_EIO, "%s: cannot create the output folder", out);
        return cli_fail("pipeline", &e);
    }
    char teacher[4200], scratch[4200], soft[4200], student[4200], pruned[4200], q8[4200], list[17000];
    snprintf(teacher, sizeof teacher, "%s/teacher.mtc", out);
    snprintf(scratch, sizeof scratch, "%s/student-scratch.mtc", out);
    snprintf(soft, sizeof soft, "%s/soft.mtl", out);
    snprintf(student, sizeof student, "%s/student.mtc", out);
    snprintf(pruned, sizeof pruned, "%s/pruned.mtc", out);
    snprintf(q8, sizeof q8, "%s/student.q8.mtc", out);
    static argv_b a; /* emptied by every run() */
    static const char *const only_spec[] = {"spec", NULL};

    /* 1. teacher */
    argv_reset(&a);
    arg(&a, "train");
    pass_keys(&a, &secs[S_TEACHER], NULL);
    arg2(&a, "data", data);
    arg2(&a, "out", teacher);
    common_args(&a, &c, threads);
    if ((rc = run("teacher", cmd_train, &a, &c))) return rc;
    /* 2. the student from scratch, for comparison */
    argv_reset(&a);
    arg(&a, "train");
    pass_keys(&a, &secs[S_STUDENT], NULL);
    arg2(&a, "data", data);
    arg2(&a, "out", scratch);
    common_args(&a, &c, threads);
    if ((rc = run("student from scratch", cmd_train, &a, &c))) return rc;
    /* 3. soft labels and distillation (student training keys + distill keys) */
    argv_reset(&a);
    arg(&a, "label");
    arg(&a, teacher);
    arg2(&a, "data", data);
    arg2(&a, "out", soft);
    common_args(&a, &c, threads);
    if ((rc = run("soft labels", cmd_label, &a, &c))) return rc;
    argv_reset(&a);
    arg(&a, "distill");
    pass_keys(&a, &secs[S_STUDENT], NULL);
    pass_keys(&a, &secs[S_DISTILL], only_spec);
    arg2(&a, "data", data);
    arg2(&a, "soft", soft);
    arg2(&a, "teacher", teacher);
    arg2(&a, "out", student);
    common_args(&a, &c, threads);
    if ((rc = run("distillation", cmd_distill, &a, &c))) return rc;
    /* 4. pruning with KD fine-tunes */
    const char *last = student;
    if (secs[S_PRUNE].present) {
        argv_reset(&a);
        arg(&a, "prune");
        arg(&a, student);
        pass_keys(&a, &secs[S_PRUNE], NULL);
        arg2(&a, "data", data);
        arg2(&a, "soft", soft);
        arg2(&a, "out", pruned);
        common_args(&a, &c, threads);
        if ((rc = run("pruning", cmd_prune, &a, &c))) return rc;
        last = pruned;
    }
    /* 5. int8 */
    if (secs[S_QUANTIZE].present) {
        argv_reset(&a);
        arg(&a, "quantize");
        arg(&a, last);
        pass_keys(&a, &secs[S_QUANTIZE], NULL);
        arg2(&a, "data", data);
        arg2(&a, "out", q8);
        common_args(&a, &c, threads);
        if ((rc = run("int8 quantization", cmd_quantize, &a, &c))) return rc;
        last = q8;
    }
    /* 6. the gate: final student against its fp32 KD parent */
    int gate = 0;
    if (last != student) {
        char rj[4300], ju[4300];
        snprintf(rj, sizeof rj, "%s/verify.json", out);
        snprintf(ju, sizeof ju, "%s/verify.xml", out);
        argv_reset(&a);
        arg(&a, "verify");
        arg2(&a, "reference", student);
        arg2(&a, "candidate", last);
        pass_keys(&a, &secs[S_VERIFY], NULL);
        arg2(&a, "data", data);
        arg2(&a, "report-json", rj);
        arg2(&a, "junit", ju);
        common_args(&a, &c, "1");
        gate = run("verify (compressed student against its fp32 parent)", cmd_verify, &a, &c);
        if (gate == 2) return 2;
    }
    /* the table: every stage against the teacher */
    snprintf(list, sizeof list, "%s,%s%s%s%s%s", scratch, student, last != student ? "," : "",
             secs[S_PRUNE].present ? pruned : "", secs[S_PRUNE].present && secs[S_QUANTIZE].present ? "," : "",
             secs[S_QUANTIZE].present ? q8 : "");
    char sj[4300];
    snprintf(sj, sizeof sj, "%s/summary.json", out);
    argv_reset(&a);
    arg(&a, "verify");
    arg2(&a, "reference", teacher);
    arg2(&a, "candidate", list);
    pass_keys(&a, &secs[S_SUMMARY], NULL);
    /* no key that only a gate uses: the table is a report */
    const section *sum = &secs[S_SUMMARY];
    if (!get(sum, "max-drop") && !get(sum, "junit")) arg(&a, "--report-only");
    arg2(&a, "data", data);
    arg2(&a, "report-json", sj);
    common_args(&a, &c, "1");
    int srep = run("summary (every stage against the teacher)", cmd_verify, &a, &c);
    if (srep == 2) return 2;
    if (!c.quiet)
        fprintf(stderr, "pipeline: %s; verify gate %s\n", out, last == student ? "not run (no compression stage)"
                                                              : gate == 0 ? "PASS" : "FAIL");
    return gate;
}
