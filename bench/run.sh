#!/usr/bin/env bash
# bench/run.sh MTC_BIN full|quick — the side-by-side benchmark (docs/bench.md).
#
# Runs every workload for mtc and for the PyTorch peer (bench/peer_pytorch.py)
# in this one run, collects JSON lines in a work folder, then bench/report.py
# prints ONE table and writes bench/results/latest.json. Speeds are only ever
# compared as ratios measured here; nothing asserts an absolute time.
#
#   quick  ~1-2 min: student 1 epoch, teacher 100 batches (library twin of
#          `mtc train`, see bench_infer train), short inference timings
#   full   ~15-25 min on 2 cores: teacher 5 epochs, student 10 epochs,
#          batch/thread scaling tables, int8 when the runtime is built
#
# Environment: BENCH_SECONDS (per inference timing), BENCH_KEEP_CORETYPE=1 to
# keep a user's OPENBLAS_CORETYPE for mtc (default: unset it so mtc picks its
# own, which is what the bench is about), PEER_OPENBLAS_CORETYPE (default:
# unset, OpenBLAS's own choice, i.e. PyTorch as shipped).
set -euo pipefail

MTC=${1:?usage: bench/run.sh MTC_BIN full|quick}
MODE=${2:-quick}
case $MODE in full|quick) ;; *) echo "bench: mode must be full or quick" >&2; exit 2;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MTC=$(cd "$(dirname "$MTC")" && pwd)/$(basename "$MTC")
BUILD=$(dirname "$MTC")
PY=/usr/bin/python3 # Debian's python: the one python3-torch installs into
PEER="$PY $ROOT/bench/peer_pytorch.py"
RESULTS=$ROOT/bench/results
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mtc-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
REC=$WORK/records.jsonl
LOG=$RESULTS/latest.log
mkdir -p "$RESULTS"
: >"$REC"
: >"$LOG"
T0=$(date +%s)

say() { echo "bench [$(($(date +%s) - T0))s] $*" >&2; }
# record KEY < json-lines: tags each JSON line of stdin with "key"
record() {
    "$PY" -c '
import json, sys
key = sys.argv[1]
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        try: o = json.loads(line)
        except ValueError: continue
        o["key"] = key
        print(json.dumps(o))' "$1" >>"$REC"
}
# run KEY CMD...: stdout to the records, stderr to the log; a failure is
# recorded, never fatal (a missing stage must not hide the other figures)
run() {
    local key=$1; shift
    echo "### $key: $*" >>"$LOG"
    local out rc=0
    out=$("$@" 2>>"$LOG") || rc=$?
    printf '%s\n' "$out" | record "$key"
    if [ $rc -ne 0 ]; then
        echo "{\"failed\": true, \"exit\": $rc, \"cmd\": \"$(printf '%q ' "$@" | sed 's/\\/\\\\/g; s/"/\\"/g' | cut -c1-300)\"}" | record "$key"
        say "$key failed (exit $rc, see $LOG)"
    fi
    return 0
}

# ---- dependencies: python3-torch only when absent ------------------------
if ! "$PY" -c 'import torch' 2>/dev/null; then
    say "installing python3-torch (absent)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi

# ---- bench_infer against the release library ------------------------------
BI=$BUILD/bench/bench_infer
mkdir -p "$BUILD/bench"
CFLAGS_BI="-O3 -march=x86-64-v3 -mtune=native -g -std=c11 -Wall -Wextra -D_GNU_SOURCE -I$ROOT/include -I$ROOT -pthread"
LIBS="-lopenblas -lpng -lz -lm -lpthread"
INT8_NOTE=""
bi_build() { gcc $CFLAGS_BI "$@" -o "$BI" "$ROOT/bench/bench_infer.c" "$BUILD/libmtc.a" $LIBS 2>>"$LOG"; }
# runtime + quantizer; runtime only; neither (each tier logs why it failed)
if ! bi_build; then
    if bi_build -DMTC_BENCH_NO_QUANTIZE; then
        INT8_NOTE="int8: mtc_quantize not built yet (runtime present: fp32 through the runtime is timed)"
    else
        bi_build -DMTC_BENCH_NO_INT8 || { echo "bench: bench_infer does not build, see $LOG" >&2; exit 2; }
        if [ -f "$ROOT/include/mtc/runtime.h" ]; then
            INT8_NOTE="int8: runtime not built yet (include/mtc/runtime.h present, libmtc.a lacks mtc_rt_*; see bench/results/latest.log)"
        else
            INT8_NOTE="int8: runtime not built yet"
        fi
    fi
fi

# ---- OpenBLAS core type: what mtc picks by itself --------------------------
MTC_ENV=(env)
[ "${BENCH_KEEP_CORETYPE:-0}" = 1 ] || MTC_ENV=(env -u OPENBLAS_CORETYPE -u MTC_BLAS_AUTO)
VERSION=$("${MTC_ENV[@]}" "$MTC" --version)
CORE=$(printf '%s\n' "$VERSION" | sed -n 's/^openblas coretype: \([^ ]*\).*/\1/p')
[ "$CORE" = auto ] && CORE=""
"$PY" -c 'import json,sys; print(json.dumps({"mode":"version","text":sys.argv[1],"coretype":sys.argv[2],"bench_mode":sys.argv[3],"int8_note":sys.argv[4]}))' \
    "$VERSION" "${CORE:-auto}" "$MODE" "$INT8_NOTE" | record meta
# bench_infer does not re-exec: give it the core mtc chose
BI_ENV=(env -u OPENBLAS_CORETYPE)
[ -n "$CORE" ] && BI_ENV=(env OPENBLAS_CORETYPE="$CORE")
PEER_ENV=(env -u OPENBLAS_CORETYPE)
[ -n "${PEER_OPENBLAS_CORETYPE:-}" ] && PEER_ENV=(env OPENBLAS_CORETYPE="$PEER_OPENBLAS_CORETYPE")
say "mtc: $(printf '%s' "$VERSION" | tr '\n' ' ')"

if [ "$MODE" = quick ]; then
    S_EPOCHS=1; T_EPOCHS=0; T_BATCHES=100; SECS=${BENCH_SECONDS:-0.5}
    INFER_THREADS=1; INFER_BATCHES=1,256
else
    S_EPOCHS=10; T_EPOCHS=5; T_BATCHES=0; SECS=${BENCH_SECONDS:-2}
    INFER_THREADS=1,2; INFER_BATCHES=1,16,256
fi
TEACHER=$ROOT/examples/fmnist-teacher.cfg
STUDENT=$ROOT/examples/fmnist-student.cfg
TRAIN_COMMON=(--data fashion-mnist --val 0 --json --threads 2 --seed 1)

# ---- training: student ------------------------------------------------------
say "student: mtc train, $S_EPOCHS epoch(s)"
run mtc_student "$BI" rss "mtc train student" "${MTC_ENV[@]}" "$MTC" train --spec "$STUDENT" \
    -o "$WORK/student.mtc" --epochs $S_EPOCHS "${TRAIN_COMMON[@]}"
say "student: peer, $S_EPOCHS epoch(s)"
run peer_student "${PEER_ENV[@]}" $PEER train --model student --epochs $S_EPOCHS --threads 2 \
    --save "$WORK/peer_student.pt"

# ---- training: teacher ------------------------------------------------------
if [ "$T_EPOCHS" -gt 0 ]; then
    say "teacher: mtc train, $T_EPOCHS epochs"
    run mtc_teacher "$BI" rss "mtc train teacher" "${MTC_ENV[@]}" "$MTC" train --spec "$TEACHER" \
        -o "$WORK/teacher.mtc" --epochs $T_EPOCHS "${TRAIN_COMMON[@]}"
    say "teacher: peer, $T_EPOCHS epochs"
    run peer_teacher "${PEER_ENV[@]}" $PEER train --model teacher --epochs $T_EPOCHS --threads 2
else
    # mtc train has no batch limit: the library twin on the first N samples
    say "teacher: mtc (library), $T_BATCHES batches"
    run mtc_teacher "${BI_ENV[@]}" "$BI" train "$TEACHER" --samples $((T_BATCHES * 128)) --threads 2 \
        --out "$WORK/teacher.mtc"
    say "teacher: peer, $T_BATCHES batches"
    run peer_teacher "${PEER_ENV[@]}" $PEER train --model teacher --epochs 1 --threads 2 --max-batches $T_BATCHES
fi

# ---- training scaling over the batch size (full only; student) --------------
if [ "$MODE" = full ]; then
    for b in 32 512; do
        say "scaling: student batch $b"
        run "mtc_student_b$b" "${MTC_ENV[@]}" "$MTC" train --spec "$STUDENT" -o "$WORK/s$b.mtc" \
            --epochs 1 --batch $b "${TRAIN_COMMON[@]}"
        run "peer_student_b$b" "${PEER_ENV[@]}" $PEER train --model student --epochs 1 --batch $b --threads 2
    done
fi

# ---- fp32 inference ----------------------------------------------------------
for model in student teacher; do
    [ -f "$WORK/$model.mtc" ] || continue
    say "inference: $model, batches $INFER_BATCHES, threads $INFER_THREADS"
    run "mtc_infer_$model" "${BI_ENV[@]}" "$BI" infer "$WORK/$model.mtc" --seconds "$SECS" \
        --batches "$INFER_BATCHES" --threads "$INFER_THREADS"
    run "peer_infer_$model" "${PEER_ENV[@]}" $PEER infer --model $model --batch "$INFER_BATCHES" \
        --threads "$INFER_THREADS" --seconds "$SECS"
done

# ---- int8 --------------------------------------------------------------------
say "int8: student"
if [ -f "$WORK/student.mtc" ] && ! "$BI" int8 2>/dev/null | grep -q unavailable; then
    if [ -z "$INT8_NOTE" ]; then
        run mtc_quantize "${BI_ENV[@]}" "$BI" quantize "$WORK/student.mtc" "$WORK/student.q8.mtc"
        [ -f "$WORK/student.q8.mtc" ] && run mtc_int8_student "${BI_ENV[@]}" "$BI" int8 "$WORK/student.q8.mtc" --seconds "$SECS"
    fi
    run mtc_rt_fp32_student "${BI_ENV[@]}" "$BI" int8 "$WORK/student.mtc" --seconds "$SECS"
fi
for how in dynamic static; do
    run "peer_int8_$how" "${PEER_ENV[@]}" $PEER infer --model student --int8 $how --batch 1,256 \
        --threads 1 --seconds "$SECS" --load "$WORK/peer_student.pt"
done

# ---- dense layer vs bare sgemm, and the OpenBLAS core-type gain -------------
say "dense forward vs sgemm: Haswell and SkylakeX"
for ct in Haswell SkylakeX; do
    run "dense_$ct" env OPENBLAS_CORETYPE=$ct "$BI" dense --seconds 1.5 --threads 1
done
run dense_chosen "${BI_ENV[@]}" "$BI" dense --seconds 1.5 --threads 1
run peer_sgemm "${PEER_ENV[@]}" $PEER sgemm --m 256 --n 128 --k 784 --threads 1

# ---- pipeline stages (accuracy only; each skipped until mtc has it) ----------
if [ "$MODE" = full ]; then
    for cmd in label distill prune; do
        if "$MTC" $cmd --help 2>&1 | grep -q "not implemented"; then
            echo "{\"skipped\": \"mtc $cmd not implemented\"}" | record "mtc_$cmd"
        fi
    done
fi

# ---- table + latest.json -----------------------------------------------------
"$PY" "$ROOT/bench/report.py" "$REC" "$RESULTS/latest.json" --mode "$MODE" --seconds $(($(date +%s) - T0))
