/* fuzz_csv.c — libFuzzer target: CSV data sets: mtc_data_open("csv:PATH"). */
#define FZ_PARSER "csv"
#include "fuzz/fuzz_target.h"
