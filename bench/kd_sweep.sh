#!/usr/bin/env bash
# KD hyper-parameter sweep on the VALIDATION split (never the test split):
# T in {1,2,4,8,20} x alpha in {0.5,0.7,0.9}, same student, epochs, seed.
# usage: bench/kd_sweep.sh MTC SPEC DATA SOFT EPOCHS [SEEDS]
# Prints one line per setting: T alpha and the mean val metric per task.
set -euo pipefail
MTC=$1; SPEC=$2; DATA=$3; SOFT=$4; EPOCHS=${5:-10}; SEEDS=${6:-1}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
val() { # json task -> val_student_kd
  grep -o "\"$2\":{[^}]*}" "$1" | grep -o '"val_student_kd":[-0-9.e]*' | cut -d: -f2; }
tasks=$(grep -o '^\[task [a-z0-9_-]*' "$SPEC" | cut -d' ' -f2)
printf '%-5s %-6s' T alpha; for t in $tasks; do printf ' %10s' "val_$t"; done; echo
for T in 1 2 4 8 20; do
  for A in 0.5 0.7 0.9; do
    declare -A sum=()
    for s in $(seq 1 "$SEEDS"); do
      "$MTC" distill --spec "$SPEC" --data "$DATA" --soft "$SOFT" --epochs "$EPOCHS" --temperature "$T" \
        --alpha "$A" --seed "$s" --quiet --json -o "$tmp/s.mtc" > "$tmp/r.json"
      for t in $tasks; do sum[$t]=$(awk -v a="${sum[$t]:-0}" -v b="$(val "$tmp/r.json" "$t")" 'BEGIN{print a+b}'); done
    done
    printf '%-5s %-6s' "$T" "$A"
    for t in $tasks; do awk -v a="${sum[$t]}" -v n="$SEEDS" 'BEGIN{printf " %9.2f%%", 100*a/n}'; done; echo
  done
done
