/* fuzz_onnx.c — libFuzzer target: ONNX models through mtc_onnx_import (protobuf-c parse, graph walk, spec and weights). */
#define FZ_PARSER "onnx"
#include "fuzz/fuzz_target.h"
