/* fuzz_json.c — libFuzzer target: JSON: mtc_json_parse, written back and re-parsed. */
#define FZ_PARSER "json"
#include "fuzz/fuzz_target.h"
