#!/usr/bin/env bash
# Runs one short pipeline (train, label, distill, prune, quantize, verify,
# eval, predict, inspect) with two mtc binaries and compares every file they
# write and every report they print, byte for byte. Used to show that a
# refactoring changed no behaviour: tools/same_outputs.sh OLD_MTC NEW_MTC.
# Timings (seconds, samples/s) are the only fields removed before comparing.
set -euo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2"); DATA=${3:-fashion-mnist}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
run() { # run BIN DIR
  local m=$1 d=$2
  mkdir -p "$d"
  {
    "$m" train --spec examples/fmnist-teacher-plain.cfg --data "$DATA" --epochs 1 --threads 2 --quiet --json -o "$d/t.mtc"
    "$m" train --spec examples/fmnist-student.cfg --data "$DATA" --epochs 1 --threads 2 --quiet --json -o "$d/s0.mtc"
    "$m" label "$d/t.mtc" --data "$DATA" --threads 2 --quiet --json --hints -o "$d/soft.mtl"
    "$m" distill --spec examples/fmnist-student.cfg --data "$DATA" --soft "$d/soft.mtl" --teacher "$d/t.mtc" \
      --epochs 1 --threads 2 --quiet --json -o "$d/s.mtc"
    "$m" prune "$d/s.mtc" --sparsity 0.8 --schedule agp --steps 2 --finetune-epochs 1 --soft "$d/soft.mtl" \
      --data "$DATA" --threads 2 --quiet --json -o "$d/p.mtc"
    "$m" quantize "$d/p.mtc" --data "$DATA" --quiet --json -o "$d/q.mtc"
    "$m" verify --reference "$d/s.mtc" --candidate "$d/q.mtc,$d/p.mtc,$d/t.mtc" --data "$DATA" --report-only --json \
      --threads 2 --quiet --report-json "$d/verify.json"
    "$m" verify --reference "$d/s.mtc" --candidate "$d/q.mtc" --data "$DATA" --max-drop fashion=1,super=1 --json \
      --threads 2 --quiet --report-json "$d/gate.json" --junit "$d/gate.xml"
    "$m" eval "$d/q.mtc" --data "$DATA" --json
    "$m" eval "$d/t.mtc" --data "$DATA" --json --threads 2
    "$m" inspect "$d/q.mtc" --json
    "$m" inspect "$d/soft.mtl" --json
  } 2>&1 | untimed >"$d/stdout.txt"
  for j in "$d"/*.json "$d"/*.xml; do untimed <"$j" >"$j.t" && mv "$j.t" "$j"; done
}
# timings out: JSON fields named *seconds*, *secs*, *time_s*, *elapsed*,
# *per_s* (samples/s), and JUnit's time and timestamp attributes
untimed() {
  sed -E 's/"([a-z_]*(seconds|secs|time_s|elapsed|per_s)[a-z_0-9]*)":[0-9.e+-]+/"\1":T/g; s/ (time|timestamp)="[^"]*"/ \1="T"/g'
}
# both runs in the same folder: files record the paths of their parents
run "$OLD" "$work/run" && mv "$work/run" "$work/old"
run "$NEW" "$work/run" && mv "$work/run" "$work/new"
bad=0
for f in "$work"/old/*; do
  n=$work/new/$(basename "$f")
  if cmp -s "$f" "$n"; then echo "same: $(basename "$f") ($(stat -c %s "$f") bytes)"
  else echo "DIFFERENT: $(basename "$f")"; bad=1; fi
done
[ "$bad" -eq 0 ] && echo "same_outputs: every file and report identical" || diff "$work/old/stdout.txt" "$work/new/stdout.txt" | head -20
exit $bad
