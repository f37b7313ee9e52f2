/* fuzz_safetensors.c — libFuzzer target: safetensors files through mtc_safetensors_read. */
#define FZ_PARSER "safetensors"
#include "fuzz/fuzz_target.h"
