/* fuzz_spec.c — libFuzzer target: model spec files: mtc_spec_parse, mtc_spec_load. */
#define FZ_PARSER "spec"
#include "fuzz/fuzz_target.h"
