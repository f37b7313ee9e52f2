#!/usr/bin/env bash
# make test-matrix: the whole suite under every OpenBLAS kernel and every
# mtc ISA, one line per cell; exits 1 if any cell fails. Each cell's full
# output goes to $OUT/<coretype>-<isa>.log.
#   OPENBLAS_CORETYPE: Haswell, SkylakeX, Zen, unset (OpenBLAS picks)
#   MTC_ISA:           scalar, avx2, default (the best the CPU has)
# usage: tools/test_matrix.sh MTC_BIN OUT TEST_BIN...
# CORETYPES="..." and ISAS="..." narrow the grid.
set -u
MTC=$1; OUT=$2; shift 2
CORETYPES=${CORETYPES:-"Haswell SkylakeX Zen unset"}
ISAS=${ISAS:-"scalar avx2 default"}
mkdir -p "$OUT"
failed=0; cells=0
for ct in $CORETYPES; do
  for isa in $ISAS; do
    cells=$((cells + 1))
    log="$OUT/$ct-$isa.log"
    envs=(env) sets=() # env takes its -u options before the assignments
    if [ "$ct" = unset ]; then envs+=(-u OPENBLAS_CORETYPE); else sets+=(OPENBLAS_CORETYPE="$ct"); fi
    if [ "$isa" = default ]; then envs+=(-u MTC_ISA); else sets+=(MTC_ISA="$isa"); fi
    envs+=("${sets[@]}")
    start=$(date +%s)
    if "${envs[@]}" MTC_BIN="$MTC" tests/run.sh "$@" >"$log" 2>&1; then st=ok; else st=FAILED; failed=$((failed + 1)); fi
    summary=$(grep '^tests:' "$log" | tail -1)
    which=$(grep '^failed:' "$log" | tail -1)
    printf 'OPENBLAS_CORETYPE=%-8s MTC_ISA=%-7s %-6s %s%s (%ds)\n' "$ct" "$isa" "$st" "${summary#tests: }" \
      "${which:+, $which}" $(( $(date +%s) - start ))
  done
done
echo "test-matrix: $((cells - failed)) of $cells cells passed (logs in $OUT/)"
[ "$failed" -eq 0 ]
