#!/usr/bin/env bash
# bench/semisup.sh [WORK_DIR] [SEEDS] — semi-supervised distillation on
# Fashion-MNIST (issue: missing labels). Per seed S:
#   mtc data blank fashion-mnist --keep 0.05 --seed S   (3,000 labelled of 60,000)
#   teacher T5 on the 5% (examples/fmnist-teacher.cfg, 30 epochs: the
#     unlabelled samples are skipped, so this is 30 passes over 2,700)
#   student A on the 5% alone (examples/fmnist-student.cfg, 30 epochs)
#   student B distilled from T5 over all 60,000 (mtc label + mtc distill,
#     10 epochs, default T/alpha; hard loss on the 5%, soft loss on all)
#   teacher TF on every label (the spec's own recipe, 5 epochs), and
#   student BF distilled from it over the 60,000 with only the 5% labelled
# and prints per-task test accuracy of each. MTC (default build/mtc),
# THREADS (default 2). ~6 min per seed on 2 cores.
set -euo pipefail
W=${1:-bench/results/semisup}; SEEDS=${2:-"1 2 3"}; MTC=${MTC:-build/mtc}; T=${THREADS:-2}
mkdir -p "$W"
acc() { "$MTC" eval "$1" --data "$2" --threads "$T" --json | sed -E 's/.*"fashion":\{[^}]*"accuracy":([0-9.]+).*"super":\{[^}]*"accuracy":([0-9.]+).*/\1 \2/'; }
printf "%-5s %-28s %9s %9s\n" seed model fashion super
for s in $SEEDS; do
  d=$W/s$s; mkdir -p "$d"
  "$MTC" data blank fashion-mnist --keep 0.05 --seed "$s" --quiet -o "$d/fm5" >/dev/null
  D=idx:$d/fm5
  "$MTC" train --spec examples/fmnist-teacher.cfg --data "$D" --epochs 30 --seed "$s" --threads "$T" --quiet -o "$d/t5.mtc" >/dev/null
  "$MTC" train --spec examples/fmnist-student.cfg --data "$D" --epochs 30 --seed "$s" --threads "$T" --quiet -o "$d/a.mtc" >/dev/null
  "$MTC" label "$d/t5.mtc" --data "$D" --threads "$T" --quiet -o "$d/soft5.mtl" >/dev/null
  "$MTC" distill --spec examples/fmnist-student.cfg --data "$D" --soft "$d/soft5.mtl" --epochs 10 --seed "$s" \
    --threads "$T" --quiet -o "$d/b.mtc" >/dev/null
  "$MTC" train --spec examples/fmnist-teacher.cfg --data fashion-mnist --seed "$s" --threads "$T" --quiet -o "$d/tf.mtc" >/dev/null
  "$MTC" label "$d/tf.mtc" --data "$D" --threads "$T" --quiet -o "$d/softf.mtl" >/dev/null
  "$MTC" distill --spec examples/fmnist-student.cfg --data "$D" --soft "$d/softf.mtl" --epochs 10 --seed "$s" \
    --threads "$T" --quiet -o "$d/bf.mtc" >/dev/null
  for m in t5 a b tf bf; do
    read -r f u < <(acc "$d/$m.mtc" "$D")
    printf "%-5s %-28s %8.2f%% %8.2f%%\n" "$s" "$m" "$(echo "$f*100" | bc -l)" "$(echo "$u*100" | bc -l)"
  done
done
