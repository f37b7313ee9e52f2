/*
 * fuzz_target.h — the body of every libFuzzer target: fuzz_<parser>.c
 * defines FZ_PARSER and includes this. Each input goes through fz_run
 * (fuzz_common.h) with a per-process scratch path; a parser that fails must
 * return an mtc error code with a non-empty message, anything else aborts.
 */
#include "fuzz/fuzz_common.h"


static char scratch[256];
static fz_fixture fixture;

/* The soft-label fixture's CSV has a fixed path: seeds made by make_corpus
 * name that data set, so they get past the data-set check. */
static void fixture_path(char *buf, size_t n)
{
    snprintf(buf, n, "%s/mtc-fuzz-fixture.csv", fz_tmpdir());
}

static void cleanup(void)
{
    fz_remove_scratch(scratch);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    snprintf(scratch, sizeof scratch, "%s/mtc-fuzz-%ld", fz_tmpdir(), (long)getpid());
    atexit(cleanup);
    char csv[256];
    fixture_path(csv, sizeof csv);
    mtc_err e = {0};
    if (!strcmp(FZ_PARSER, "softlabels") && fz_fixture_open(&fixture, csv, &e)) {
        fprintf(stderr, "fuzz fixture: %s\n", e.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mtc_err e = {0};
    int rc = fz_run(FZ_PARSER, data, size, scratch, &fixture, &e);
    if (rc > 0 && (rc > MTC_EINTERNAL || !e.msg[0] || strchr(e.msg, '\n'))) {
        fprintf(stderr, "%s: bad error report: code %d, message '%s'\n", FZ_PARSER, rc, e.msg);
        abort();
    }
    if (rc == MTC_EINTERNAL) {
        fprintf(stderr, "%s: internal error: %s\n", FZ_PARSER, e.msg);
        abort();
    }
    return 0;
}
