/*
 * make_corpus.c — writes valid seed files for every fuzz target into
 * ROOT/<parser>/ (usage: make_corpus ROOT). Soft-label seeds are made for
 * the fixture data set at the fixed path the targets open.
 */
#include "fuzz/fuzz_common.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus ROOT\n");
        return 2;
    }
    char csv[256], dir[4200];
    snprintf(csv, sizeof csv, "%s/mtc-fuzz-fixture.csv", fz_tmpdir());
    mtc_err e = {0};
    fz_fixture fx;
    if (fz_fixture_open(&fx, csv, &e)) {
        fprintf(stderr, "make_corpus: %s\n", e.msg);
        return 1;
    }
    mkdir(argv[1], 0755);
    int rc = 0;
    for (int i = 0; i < FZ_NPARSERS && !rc; i++) {
        snprintf(dir, sizeof dir, "%s/%s", argv[1], fz_parsers[i]);
        if (mkdir(dir, 0755) && errno != EEXIST) {
            fprintf(stderr, "make_corpus: %s: %s\n", dir, strerror(errno));
            rc = 1;
        } else if (fz_make_seeds(fz_parsers[i], dir, &fx, &e)) {
            fprintf(stderr, "make_corpus: %s\n", e.msg);
            rc = 1;
        }
    }
    fz_fixture_close(&fx);
    return rc;
}
