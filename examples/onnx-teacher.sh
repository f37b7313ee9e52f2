#!/usr/bin/env bash
# A teacher trained elsewhere (an ONNX file, e.g. torch.onnx.export of a
# Fashion-MNIST model with outputs "fashion" and "super", input pixels/255)
# through mtc's pipeline, and the student back out as ONNX:
#   examples/onnx-teacher.sh teacher.onnx [OUT_DIR]
# import -> label -> distill -> prune -> quantize -> verify, then export of
# the int8 student (QDQ) for ONNX Runtime. MTC (default build/mtc)
# and THREADS (default 2) from the environment.
set -euo pipefail
ONNX=$1; OUT=${2:-onnx-demo}; MTC=${MTC:-build/mtc}; T=${THREADS:-2}
mkdir -p "$OUT"
"$MTC" import "$ONNX" -o "$OUT/teacher.mtc"
"$MTC" label "$OUT/teacher.mtc" --data fashion-mnist --threads "$T" -o "$OUT/soft.mtl"
"$MTC" distill --spec examples/fmnist-student.cfg --data fashion-mnist --soft "$OUT/soft.mtl" \
  --teacher "$OUT/teacher.mtc" --epochs 10 --threads "$T" -o "$OUT/student.mtc"
"$MTC" prune "$OUT/student.mtc" --sparsity 0.9 --schedule agp --steps 5 --finetune-epochs 2 \
  --soft "$OUT/soft.mtl" --data fashion-mnist --threads "$T" -o "$OUT/pruned.mtc"
"$MTC" quantize "$OUT/pruned.mtc" --data fashion-mnist -o "$OUT/student.q8.mtc"
"$MTC" verify --reference "$ONNX" --data fashion-mnist --report-only --threads 1 \
  --candidate "$OUT/teacher.mtc,$OUT/student.mtc,$OUT/pruned.mtc,$OUT/student.q8.mtc"
"$MTC" export "$OUT/student.q8.mtc" -o "$OUT/student.onnx"
echo "student for ONNX Runtime: $OUT/student.onnx (node tests/ort_run.js $OUT/student.onnx INPUTS.csv 1x28x28)"
