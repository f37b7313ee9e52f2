#!/usr/bin/env bash
# Runs every test binary given, prints each one's cmocka output, then one
# closing line "N passed, N failed" counted over binaries.
set -u
pass=0; fail=0; failed=""
for t in "$@"; do
  start=$(date +%s%N)
  if "$t"; then pass=$((pass+1)); st=ok; else fail=$((fail+1)); failed="$failed $(basename "$t")"; st=FAILED; fi
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '== %s: %s (%d ms)\n' "$(basename "$t")" "$st" "$ms"
done
[ -n "$failed" ] && echo "failed:$failed"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
