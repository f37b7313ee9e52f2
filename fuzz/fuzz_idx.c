/* fuzz_idx.c — libFuzzer target: IDX files, plain or gzip: mtc_idx_read_images, mtc_idx_read_labels. */
#define FZ_PARSER "idx"
#include "fuzz/fuzz_target.h"
