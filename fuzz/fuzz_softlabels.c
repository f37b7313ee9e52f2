/* fuzz_softlabels.c — libFuzzer target: soft-label files: mtc_soft_read, mtc_soft_header. */
#define FZ_PARSER "softlabels"
#include "fuzz/fuzz_target.h"
