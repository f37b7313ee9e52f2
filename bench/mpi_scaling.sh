#!/usr/bin/env bash
# MPI scaling on one machine: 1 process x 2 threads against 2 ranks x 1
# thread for teacher training, distillation and labelling on Fashion-MNIST
# (docs/scaling.md). Runs one job at a time; prints samples/s and the
# gradient sums' share of training as each job reports it.
# usage: bench/mpi_scaling.sh [MTC_BIN] [OUT_DIR]
set -euo pipefail
MTC=$(realpath "${1:-build/mtc}"); OUT=${2:-bench/results/mpi}
MP="mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2"
mkdir -p "$OUT"
T_EPOCHS=${T_EPOCHS:-1}; S_EPOCHS=${S_EPOCHS:-2}
rate() { grep -o '[0-9]* samples/s' "$1" | tail -1; }
echo "== teacher training (examples/fmnist-teacher.cfg, $T_EPOCHS epoch(s))"
"$MTC" train --spec examples/fmnist-teacher.cfg --data fashion-mnist --epochs "$T_EPOCHS" --threads 2 --no-test \
  -o "$OUT/t1.mtc" > "$OUT/t1.log" 2>&1
echo "1 x 2 threads: $(rate "$OUT/t1.log")"
$MP "$MTC" train --spec examples/fmnist-teacher.cfg --data fashion-mnist --epochs "$T_EPOCHS" --threads 1 --no-test \
  -o "$OUT/t2.mtc" > "$OUT/t2.log" 2>&1
echo "2 x 1 thread:  $(rate "$OUT/t2.log")  ($(grep -o 'MPI:.*' "$OUT/t2.log" | head -1))"
$MP "$MTC" train --spec examples/fmnist-teacher.cfg --data fashion-mnist --epochs "$T_EPOCHS" --threads 1 --no-test \
  --overlap -o "$OUT/t3.mtc" > "$OUT/t3.log" 2>&1
echo "2 x 1 thread --overlap: $(rate "$OUT/t3.log")  ($(grep -o 'MPI:.*' "$OUT/t3.log" | tr '\n' ' '))"
cmp -s "$OUT/t2.mtc" "$OUT/t3.mtc" && echo "--overlap: checkpoint identical" || echo "--overlap: checkpoint DIFFERS"
echo "== labelling the training split with that teacher"
for mode in 1 2; do
  s=$(date +%s.%N)
  if [ $mode = 1 ]; then "$MTC" label "$OUT/t1.mtc" --data fashion-mnist --threads 2 --quiet -o "$OUT/soft1.mtl" >/dev/null
  else $MP "$MTC" label "$OUT/t1.mtc" --data fashion-mnist --threads 1 --quiet -o "$OUT/soft2.mtl" >/dev/null; fi
  e=$(date +%s.%N)
  echo "$([ $mode = 1 ] && echo '1 x 2 threads' || echo '2 x 1 thread ') : $(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f s", b - a }')"
done
cmp -s "$OUT/soft1.mtl" "$OUT/soft2.mtl" && echo "soft-label files identical" || echo "soft-label files DIFFER"
echo "== distillation (examples/fmnist-student.cfg, $S_EPOCHS epochs)"
"$MTC" distill --spec examples/fmnist-student.cfg --data fashion-mnist --soft "$OUT/soft1.mtl" --epochs "$S_EPOCHS" \
  --threads 2 -o "$OUT/s1.mtc" > "$OUT/s1.log" 2>&1
echo "1 x 2 threads: $(rate "$OUT/s1.log")"
$MP "$MTC" distill --spec examples/fmnist-student.cfg --data fashion-mnist --soft "$OUT/soft1.mtl" --epochs "$S_EPOCHS" \
  --threads 1 -o "$OUT/s2.mtc" > "$OUT/s2.log" 2>&1
echo "2 x 1 thread:  $(rate "$OUT/s2.log")  ($(grep -o 'MPI:.*' "$OUT/s2.log" | head -1))"
$MP "$MTC" distill --spec examples/fmnist-student.cfg --data fashion-mnist --soft "$OUT/soft1.mtl" --epochs "$S_EPOCHS" \
  --threads 1 --overlap -o "$OUT/s3.mtc" > "$OUT/s3.log" 2>&1
echo "2 x 1 thread --overlap: $(rate "$OUT/s3.log")  ($(grep -o 'MPI:.*' "$OUT/s3.log" | tr '\n' ' '))"
cmp -s "$OUT/s2.mtc" "$OUT/s3.mtc" && echo "--overlap: checkpoint identical" || echo "--overlap: checkpoint DIFFERS"
grep -A4 "test metrics" "$OUT/s1.log" | tail -3 || true
grep -A4 "test metrics" "$OUT/s2.log" | tail -3 || true
