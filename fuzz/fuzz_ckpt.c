/* fuzz_ckpt.c — libFuzzer target: .mtc checkpoints: mtc_ckpt_load, mtc_model_load, mtc_ckpt_inspect. */
#define FZ_PARSER "ckpt"
#include "fuzz/fuzz_target.h"
