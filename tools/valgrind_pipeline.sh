#!/usr/bin/env bash
# A short train -> label -> distill -> prune -> quantize -> verify run, every
# command under valgrind (memcheck, --error-exitcode=1, definite leaks are
# errors). Part of `make check-long`.
# usage: tools/valgrind_pipeline.sh MTC_BIN
set -euo pipefail
MTC=$(realpath "$1")
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
# mtc re-execs itself to pick OpenBLAS kernels when the variable is unset;
# under valgrind the re-exec would leave the tool, so set it.
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
VG="valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --max-stackframe=30000000 --main-stacksize=64000000"
command -v valgrind >/dev/null || { echo "valgrind_pipeline: valgrind not installed" >&2; exit 2; }
"$MTC" data tabular -o "$W/t.csv" --rows 600 --quiet
cat > "$W/teacher.cfg" <<'CFG'
[input]   shape = 8  columns = area,rooms,age,distance,f5,f6,f7,f8
[mmoe]    experts = 2
[dense]   units = 16 act = relu
[task segment] kind = cls classes = 3
[task price]   kind = reg outputs = 1
CFG
cat > "$W/student.cfg" <<'CFG'
[input]   shape = 8  columns = area,rooms,age,distance,f5,f6,f7,f8
[dense]   units = 12 act = relu
[task segment] kind = cls classes = 3
[task price]   kind = reg outputs = 1
CFG
D="csv:$W/t.csv"
run() { echo "valgrind: mtc $*"; $VG "$MTC" "$@" --quiet > "$W/out.txt" 2>&1 || { cat "$W/out.txt"; echo "valgrind_pipeline: FAILED: mtc $*" >&2; exit 1; }; }
run train --spec "$W/teacher.cfg" --data "$D" --epochs 3 --threads 2 -o "$W/teacher.mtc"
run label "$W/teacher.mtc" --data "$D" -o "$W/soft.mtl"
run distill --spec "$W/student.cfg" --data "$D" --soft "$W/soft.mtl" --epochs 3 -o "$W/student.mtc"
run prune "$W/student.mtc" --sparsity 0.5 --schedule agp --steps 2 --finetune-epochs 1 --soft "$W/soft.mtl" --data "$D" -o "$W/pruned.mtc"
run quantize "$W/pruned.mtc" --data "$D" --calib 200 -o "$W/q8.mtc"
# verify may fail its budget (exit 1) on this toy model; only memory errors count
echo "valgrind: mtc verify"
set +e
$VG "$MTC" verify --reference "$W/student.mtc" --candidate "$W/q8.mtc" --data "$D" --max-drop segment=100,price=1000 --quiet > "$W/out.txt" 2>&1
st=$?
set -e
if [ "$st" -ne 0 ] && [ "$st" -ne 1 ]; then cat "$W/out.txt"; echo "valgrind_pipeline: FAILED: verify ($st)" >&2; exit 1; fi
grep -q "Invalid\|uninitialised\|definitely lost" "$W/out.txt" && { cat "$W/out.txt"; exit 1; }
echo "valgrind_pipeline: clean"
