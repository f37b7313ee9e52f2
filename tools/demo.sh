#!/usr/bin/env bash
# make demo: the whole pipeline on the default workload.
# usage: tools/demo.sh MTC_BIN DATA OUT
set -euo pipefail
MTC=$1; DATA=${2:-fashion-mnist}; OUT=${3:-demo}
mkdir -p "$OUT"
"$MTC" --version
echo "demo: pipeline stages are being built; see README for status"
