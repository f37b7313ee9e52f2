/* fuzz_png.c — libFuzzer target: PNG files and folders: mtc_png_probe, mtc_png_read_gray, mtc_data_open("png:DIR"). */
#define FZ_PARSER "png"
#include "fuzz/fuzz_target.h"
