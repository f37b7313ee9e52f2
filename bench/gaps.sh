#!/usr/bin/env bash
# bench/gaps.sh [WORK_DIR] [SEEDS] — missing labels at random and disjoint
# tasks (issue: real multi-task data), with the MultiFashion student spec
# (examples/multifashion-student.cfg: MLP 784-128, heads fashion, digit),
# 10 epochs, per seed S:
#   full   MultiFashion with every label
#   mar    MultiFashion with 50% of fashion labels and an independent 50% of
#          digit labels removed (mtc data blank --keep 0.5 --per-task)
#   joined fashion from Fashion-MNIST and digit from MNIST digits, one model
#          on --data fashion-mnist+mnist-digits under each --task-sampling
#          mode, against single-task models on each file alone
# Prints per-task test accuracy. MTC (default build/mtc), THREADS (2).
set -euo pipefail
W=${1:-bench/results/gaps}; SEEDS=${2:-"1 2 3"}; MTC=${MTC:-build/mtc}; T=${THREADS:-2}; E=${EPOCHS:-10}
mkdir -p "$W"
SPEC=examples/multifashion-student.cfg
grep -v '^\[task digit\]' $SPEC > "$W/fashion-only.cfg"
grep -v '^\[task fashion\]' $SPEC > "$W/digit-only.cfg"
acc() { # acc MODEL DATA TASK
  "$MTC" eval "$1" --data "$2" --threads "$T" --json | sed -E "s/.*\"$3\":\{[^}]*\"accuracy\":([0-9.]+).*/\1/"; }
pct() { echo "$1*100" | bc -l | xargs printf "%.2f%%"; }
run() { "$MTC" train --epochs "$E" --threads "$T" --quiet "$@" >/dev/null; }
printf "%-5s %-34s %9s %9s\n" seed run fashion digit
for s in $SEEDS; do
  d=$W/s$s; mkdir -p "$d"
  "$MTC" data blank multifashion --keep 0.5 --per-task --seed "$s" --quiet -o "$d/mf50" >/dev/null
  run --spec $SPEC --data multifashion --seed "$s" -o "$d/full.mtc"
  run --spec $SPEC --data "idx:$d/mf50" --seed "$s" -o "$d/mar.mtc"
  for m in full mar; do
    D=multifashion; [ $m = mar ] && D=idx:$d/mf50
    printf "%-5s %-34s %9s %9s\n" "$s" "multifashion $m" "$(pct "$(acc "$d/$m.mtc" $D fashion)")" "$(pct "$(acc "$d/$m.mtc" $D digit)")"
  done
  J=fashion-mnist+mnist-digits
  for mode in proportional round-robin temperature; do
    run --spec $SPEC --data $J --task-sampling $mode --seed "$s" -o "$d/j-$mode.mtc"
    printf "%-5s %-34s %9s %9s\n" "$s" "joined, $mode" "$(pct "$(acc "$d/j-$mode.mtc" $J fashion)")" "$(pct "$(acc "$d/j-$mode.mtc" $J digit)")"
  done
  run --spec "$W/fashion-only.cfg" --data fashion-mnist --seed "$s" -o "$d/f-only.mtc"
  run --spec "$W/digit-only.cfg" --data mnist-digits --seed "$s" -o "$d/d-only.mtc"
  printf "%-5s %-34s %9s %9s\n" "$s" "single-task models" "$(pct "$(acc "$d/f-only.mtc" fashion-mnist fashion)")" "$(pct "$(acc "$d/d-only.mtc" mnist-digits digit)")"
done
