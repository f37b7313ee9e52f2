#!/usr/bin/env bash
# bench/run.sh MTC_BIN full|quick — the side-by-side benchmark (docs/bench.md).
#
# Runs every workload for mtc and for the PyTorch peer (bench/peer_pytorch.py)
# in this one run, collects JSON lines in a work folder, then bench_report
# (bench/bench_report.c, built here like bench_infer) prints ONE table and
# writes bench/results/latest.json (+ summary.md in full mode). Speeds are
# only ever compared as ratios measured here; nothing asserts an absolute time.
# No Python here: the peer is the only Python in the bench.
#
#   quick  ~2-4 min: student 1 epoch, teacher 100 batches (library twin of
#          `mtc train`, see bench_infer train), the pipeline (label, distill,
#          prune, quantize, verify) at 1 epoch, short inference timings
#   full   ~30-40 min on 2 cores: teacher 5 epochs, student 10 epochs, KD
#          student 10 epochs, AGP pruning to 50/80/90/95% with KD fine-tuning,
#          structured removal of half the neurons (+ KD fine-tune), int8,
#          the MultiFashion+MNIST teacher and its single-task baselines,
#          batch/thread scaling tables
#
#   front  ~60 min on 2 cores: only the size–accuracy front (bench/front.sh;
#          full mode runs it too, unless BENCH_FRONT=0): bench/results/front.md
#          and front-*.png
#
# Environment: BENCH_SECONDS (per inference timing), BENCH_KEEP_CORETYPE=1 to
# keep a user's OPENBLAS_CORETYPE for mtc (default: unset it so mtc picks its
# own, which is what the bench is about), PEER_OPENBLAS_CORETYPE (default:
# unset, OpenBLAS's own choice, i.e. PyTorch as shipped), BENCH_PEER_SINGLE=1
# to train the peer's MultiFashion single-task baselines too (full mode; +7 min).
set -euo pipefail

MTC=${1:?usage: bench/run.sh MTC_BIN full|quick|front}
MODE=${2:-quick}
case $MODE in full|quick|front) ;; *) echo "bench: mode must be full, quick or front" >&2; exit 2;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MTC=$(cd "$(dirname "$MTC")" && pwd)/$(basename "$MTC")
BUILD=$(dirname "$MTC")
PY=/usr/bin/python3 # Debian's python: the one python3-torch installs into
PEER="$PY $ROOT/bench/peer_pytorch.py"
RESULTS=$ROOT/bench/results
# the MNIST digits of MultiFashion: mtc looks in ./data/... (cwd) or beside
# build/, not beside build/release/; the bench may run from anywhere
if [ -z "${MTC_MNIST_DIR:-}" ] && [ -f "$ROOT/data/mnist/package/src/digits/0.json" ]; then
    export MTC_MNIST_DIR=$ROOT/data/mnist/package/src/digits
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mtc-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
REC=$WORK/records.jsonl
LOG=$RESULTS/latest.log
mkdir -p "$RESULTS"
: >"$REC"
: >"$LOG"
T0=$(date +%s)

say() { echo "bench [$(($(date +%s) - T0))s] $*" >&2; }
# record KEY < json-lines: tags each JSON object line of stdin with "key"
record() { "$BR" tag "$1" >>"$REC"; }
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

# ---- bench_infer and bench_report against the release library -------------
BI=$BUILD/bench/bench_infer
BR=$BUILD/bench/bench_report
mkdir -p "$BUILD/bench"
CFLAGS_BI="-O3 -march=x86-64-v3 -mtune=native -g -std=c11 -Wall -Wextra -D_GNU_SOURCE -I$ROOT/include -I$ROOT -pthread"
LIBS="-lopenblas -lprotobuf-c -lpng -lz -lm -lpthread"
# a libmtc built with MPI (make finds mpicc) needs OpenMPI's libraries too
if [ "$(cut -c1 "$BUILD/mpi.flag" 2>/dev/null)" = 1 ]; then LIBS="$LIBS $(mpicc --showme:link)"; fi
gcc $CFLAGS_BI -o "$BR" "$ROOT/bench/bench_report.c" "$BUILD/libmtc.a" $LIBS 2>>"$LOG" ||
    { echo "bench: bench_report does not build, see $LOG" >&2; exit 2; }
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
"$BR" meta "$VERSION" "${CORE:-auto}" "$MODE" "$INT8_NOTE" >>"$REC"
# bench_infer does not re-exec: give it the core mtc chose
BI_ENV=(env -u OPENBLAS_CORETYPE)
[ -n "$CORE" ] && BI_ENV=(env OPENBLAS_CORETYPE="$CORE")
PEER_ENV=(env -u OPENBLAS_CORETYPE)
[ -n "${PEER_OPENBLAS_CORETYPE:-}" ] && PEER_ENV=(env OPENBLAS_CORETYPE="$PEER_OPENBLAS_CORETYPE")
say "mtc: $(printf '%s' "$VERSION" | tr '\n' ' ')"


if [ "$MODE" = quick ]; then
    S_EPOCHS=1; T_EPOCHS=0; T_BATCHES=100; SECS=${BENCH_SECONDS:-0.5}
    INFER_THREADS=1; INFER_BATCHES=1,256
    P_STEPS=2; P_FT=1 # AGP steps x fine-tune epochs per step
else
    S_EPOCHS=10; T_EPOCHS=5; T_BATCHES=0; SECS=${BENCH_SECONDS:-2}
    INFER_THREADS=1,2; INFER_BATCHES=1,16,256
    P_STEPS=5; P_FT=2
fi
# the plain CNN: training speed, inference and the KD teacher (it distills
# best); examples/fmnist-teacher.cfg (BN + its [train] cosine recipe) is the
# accuracy teacher, trained beside the peer in full mode below
TEACHER=$ROOT/examples/fmnist-teacher-plain.cfg
ACC_TEACHER=$ROOT/examples/fmnist-teacher.cfg
STUDENT=$ROOT/examples/fmnist-student.cfg
MF_TEACHER=$ROOT/examples/multifashion-teacher.cfg
TRAIN_COMMON=(--data fashion-mnist --val 0 --json --threads 2 --seed 1)
M=("${MTC_ENV[@]}" "$MTC") # mtc as the user runs it (its own core-type choice)

# ---- the size–accuracy front (front mode alone; full mode runs it at the end)
FRONT_ARGS=()
front_report() {
    . "$ROOT/bench/front.sh" # writes front.md after each data set, and again at the end
    if [ ${#FRONT_ARGS[@]} -gt 0 ]; then
        "$BR" front "$REC" "$RESULTS/front.md" "${FRONT_ARGS[@]}" >&2 || say "front: no table (see $LOG)"
    fi
}
if [ "$MODE" = front ]; then
    SECS=${BENCH_SECONDS:-2}
    front_report
    say "done: $RESULTS/front.md"
    exit 0
fi

# ---- training: student ------------------------------------------------------
say "student: mtc train, $S_EPOCHS epoch(s)"
run mtc_student "$BI" rss "mtc train student" "${M[@]}" train --spec "$STUDENT" \
    -o "$WORK/student.mtc" --epochs $S_EPOCHS "${TRAIN_COMMON[@]}"
say "student: peer, $S_EPOCHS epoch(s)"
run peer_student "${PEER_ENV[@]}" $PEER train --model student --epochs $S_EPOCHS --threads 2 \
    --save "$WORK/peer_student.pt"
if [ "$MODE" = full ]; then # a 3-second run is at the mercy of the VM: time each side twice
    say "student: second timing run each (best of 2 is reported)"
    run mtc_student_rep "${M[@]}" train --spec "$STUDENT" -o "$WORK/student_rep.mtc" \
        --epochs $S_EPOCHS --no-test "${TRAIN_COMMON[@]}"
    run peer_student_rep "${PEER_ENV[@]}" $PEER train --model student --epochs $S_EPOCHS --threads 2
fi

# ---- training: teacher ------------------------------------------------------
if [ "$T_EPOCHS" -gt 0 ]; then
    say "teacher: mtc train, $T_EPOCHS epochs"
    run mtc_teacher "$BI" rss "mtc train teacher" "${M[@]}" train --spec "$TEACHER" \
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

# ---- the compression pipeline: KD student, pruned, int8 (accuracy, bytes) ---
# teacher -> soft labels -> KD student (beside its scratch twin) -> AGP 90%
# with KD fine-tuning -> int8; all on all 60000 training samples (--val 0).
# Full mode distills from the demo's teacher recipe (15 epochs, cosine,
# shifts): the 5-epoch speed teacher is too weak for KD to help the MLP.
KD_TEACHER=$WORK/teacher.mtc
if [ "$MODE" = full ]; then
    say "KD teacher: mtc train, 15 epochs, cosine, shift augmentation"
    run mtc_kd_teacher "${M[@]}" train --spec "$TEACHER" -o "$WORK/kd_teacher.mtc" --epochs 15 \
        --schedule cosine --augment shift "${TRAIN_COMMON[@]}"
    KD_TEACHER=$WORK/kd_teacher.mtc
fi
if [ -f "$KD_TEACHER" ]; then
    say "pipeline: label, distill ($S_EPOCHS epochs), prune (AGP $P_STEPS x $P_FT epochs), quantize, verify"
    run mtc_label "${M[@]}" label "$KD_TEACHER" --data fashion-mnist -o "$WORK/soft.mtl" \
        --threads 2 --json --quiet
    if [ "$MODE" = full ]; then # the labeller's speed: its convs on im2col (MTC_WINOGRAD=0) against the default
        say "label: the teacher's convs on im2col, then as shipped (alternating, best of 2)"
        for round in 1 2; do
            run mtc_label_im2col env MTC_WINOGRAD=0 "${M[@]}" label "$KD_TEACHER" --data fashion-mnist \
                -o "$WORK/soft_im2col.mtl" --threads 2 --json --quiet
            run mtc_label_rep "${M[@]}" label "$KD_TEACHER" --data fashion-mnist -o "$WORK/soft_rep.mtl" \
                --threads 2 --json --quiet
        done
    fi
fi
if [ -f "$WORK/soft.mtl" ]; then
    run mtc_distill "${M[@]}" distill --spec "$STUDENT" --data fashion-mnist --soft "$WORK/soft.mtl" \
        --teacher "$KD_TEACHER" -o "$WORK/kd.mtc" --epochs $S_EPOCHS --compare-scratch \
        "${TRAIN_COMMON[@]:2}" --quiet
fi
if [ -f "$WORK/kd.mtc" ]; then
    run mtc_prune "${M[@]}" prune "$WORK/kd.mtc" -o "$WORK/pruned.mtc" --sparsity 0.9 --schedule agp \
        --steps $P_STEPS --finetune-epochs $P_FT --soft "$WORK/soft.mtl" --data fashion-mnist --val 0 \
        --threads 2 --seed 1 --json --quiet
fi
# the rest of the AGP grid (full only): same schedule, other final sparsities
if [ "$MODE" = full ] && [ -f "$WORK/kd.mtc" ]; then
    for s in 50 80 95; do
        say "pipeline: prune AGP to $s% ($P_STEPS x $P_FT epochs)"
        run "mtc_prune_s$s" "${M[@]}" prune "$WORK/kd.mtc" -o "$WORK/pruned$s.mtc" --sparsity 0.$s \
            --schedule agp --steps $P_STEPS --finetune-epochs $P_FT --soft "$WORK/soft.mtl" --data fashion-mnist \
            --val 0 --threads 2 --seed 1 --json --quiet
    done
fi
# structured: half of the KD student's hidden neurons removed (l2 ranking),
# then KD fine-tuning; its speed is timed against the KD student below
if [ -f "$WORK/kd.mtc" ]; then
    say "pipeline: structured, keep 0.5 of the neurons, $P_FT epoch(s) KD fine-tune"
    run mtc_struct "${M[@]}" prune "$WORK/kd.mtc" -o "$WORK/struct.mtc" --structured neurons --keep 0.5 \
        --rank l2 --finetune-epochs $P_FT --soft "$WORK/soft.mtl" --data fashion-mnist --val 0 \
        --threads 2 --seed 1 --json --quiet
fi
if [ -z "$INT8_NOTE" ]; then
    for src in student pruned; do
        [ -f "$WORK/$src.mtc" ] || continue
        run "mtc_quantize_$src" "${M[@]}" quantize "$WORK/$src.mtc" --data fashion-mnist \
            -o "$WORK/$src.q8.mtc" --calib-method percentile --json --quiet
    done
fi
CANDS=""
for c in kd pruned student.q8 pruned.q8; do
    [ -f "$WORK/$c.mtc" ] && CANDS="$CANDS${CANDS:+,}$WORK/$c.mtc"
done
# generous budgets: the bench reports accuracy, it does not gate it
if [ -f "$WORK/student.mtc" ] && [ -n "$CANDS" ]; then
    run mtc_verify "${M[@]}" verify --reference "$WORK/student.mtc" --candidate "$CANDS" \
        --data fashion-mnist --max-drop fashion=100,super=100 --json --quiet
fi

# ---- the accuracy teacher, examples/fmnist-teacher.cfg (full only) -----------
if [ "$MODE" = full ]; then
    say "teacher (BN, cosine, its [train] recipe): mtc train, $T_EPOCHS epochs"
    run mtc_acc_teacher "${M[@]}" train --spec "$ACC_TEACHER" -o "$WORK/acc_teacher.mtc" \
        --epochs $T_EPOCHS "${TRAIN_COMMON[@]}"
    say "teacher (BN, cosine): peer, $T_EPOCHS epochs"
    run peer_acc_teacher "${PEER_ENV[@]}" $PEER train --model teacher-bn --schedule cosine \
        --epochs $T_EPOCHS --threads 2
fi

# ---- MultiFashion+MNIST teacher and single-task baselines (full only) -------
if [ "$MODE" = full ]; then
    say "multifashion: data folder (same samples for mtc and the peer)"
    run mtc_mf_data "${M[@]}" data multifashion --out "$WORK/mf" --json --quiet
    # the same CNN with one [task] each: the single-task baselines
    for t in fashion digit; do
        other=$([ $t = fashion ] && echo digit || echo fashion)
        grep -v "^\[task $other\]" "$MF_TEACHER" >"$WORK/mf-$t.cfg"
    done
    MF_COMMON=(--data multifashion --val 0 --json --threads 2 --seed 1 --epochs $T_EPOCHS)
    say "multifashion: mtc train, 2 tasks, $T_EPOCHS epochs"
    run mtc_mf_teacher "${M[@]}" train --spec "$MF_TEACHER" -o "$WORK/mf.mtc" "${MF_COMMON[@]}"
    say "multifashion: peer, 2 tasks, $T_EPOCHS epochs"
    run peer_mf_teacher "${PEER_ENV[@]}" $PEER train --model teacher-bn --epochs $T_EPOCHS --threads 2 \
        --data-dir "$WORK/mf" --tasks fashion,digit
    for t in fashion digit; do
        say "multifashion: mtc train, $t only, $T_EPOCHS epochs"
        run "mtc_mf_${t}_only" "${M[@]}" train --spec "$WORK/mf-$t.cfg" -o "$WORK/mf-$t.mtc" "${MF_COMMON[@]}"
        if [ "${BENCH_PEER_SINGLE:-0}" = 1 ]; then
            say "multifashion: peer, $t only, $T_EPOCHS epochs"
            run "peer_mf_${t}_only" "${PEER_ENV[@]}" $PEER train --model teacher-bn --epochs $T_EPOCHS --threads 2 \
                --data-dir "$WORK/mf" --tasks $t
        fi
    done
fi

# ---- training scaling: student, batch 32/128/512 x threads 1/2 (full only) --
if [ "$MODE" = full ]; then
    for th in 1 2; do
        for b in 32 128 512; do
            [ $b = 128 ] && [ $th = 2 ] && continue # the main student run above
            say "scaling: student training, batch $b, $th thread(s), 1 epoch"
            run "mtc_student_b${b}_t$th" "${M[@]}" train --spec "$STUDENT" -o "$WORK/s$b.mtc" --epochs 1 \
                --batch $b --data fashion-mnist --val 0 --json --threads $th --seed 1 --no-test
            run "peer_student_b${b}_t$th" "${PEER_ENV[@]}" $PEER train --model student --epochs 1 --batch $b \
                --threads $th
        done
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

# the teacher at batch 1 and 256 three ways, side by side: the runtime above
# (Winograd for its 32->64 conv), the runtime on im2col (MTC_WINOGRAD=0), and
# the training engine's eval forward (mtc_model_forward, im2col)
if [ -f "$WORK/teacher.mtc" ]; then
    run mtc_infer_teacher_im2col "${BI_ENV[@]}" MTC_WINOGRAD=0 "$BI" infer "$WORK/teacher.mtc" --seconds "$SECS" \
        --batches 1,256 --threads 1
    run mtc_infer_teacher_model "${BI_ENV[@]}" "$BI" infer "$WORK/teacher.mtc" --engine model --seconds "$SECS" \
        --batches 1,256 --threads 1
fi

# structured pruning: the same forward on the KD student and its 50%-neuron cut
for model in kd struct; do
    [ -f "$WORK/$model.mtc" ] || continue
    run "mtc_infer_$model" "${BI_ENV[@]}" "$BI" infer "$WORK/$model.mtc" --seconds "$SECS" \
        --batches "$INFER_BATCHES" --threads 1
done

# ---- int8: speed against fp32 and PyTorch, and by kernel ISA -----------------
say "int8: student"
if [ -f "$WORK/student.q8.mtc" ]; then
    run mtc_int8_student "${BI_ENV[@]}" "$BI" int8 "$WORK/student.q8.mtc" --seconds "$SECS" \
        --batches "$INFER_BATCHES" --threads "$INFER_THREADS"
    # the same checkpoint on each kernel family (MTC_ISA override), one run
    for isa in avx512 avx2 scalar; do
        run "mtc_int8_isa_$isa" "${BI_ENV[@]}" MTC_ISA=$isa "$BI" int8 "$WORK/student.q8.mtc" --seconds "$SECS" \
            --batches 256 --threads 1
    done
fi
if [ -f "$WORK/student.mtc" ] && ! "$BI" int8 2>/dev/null | grep -q unavailable; then
    run mtc_model_fp32_student "${BI_ENV[@]}" "$BI" infer "$WORK/student.mtc" --engine model --seconds "$SECS" \
        --batches 256 --threads 1
fi
for how in dynamic static; do
    run "peer_int8_$how" "${PEER_ENV[@]}" $PEER infer --model student --int8 $how --batch "$INFER_BATCHES" \
        --threads "$INFER_THREADS" --seconds "$SECS" --load "$WORK/peer_student.pt"
done

# ---- ONNX Runtime: the same checkpoints exported (mtc export), 1 thread -----
# node + onnxruntime-node (make deps): fp32 student and teacher, int8 student
# and teacher (QDQ with mtc's scales: both run the same quantized model),
# batches 1 and 256, each right after mtc's own run of the same model; the
# binding's per-call cost from a one-Gemm model (8 -> 1), subtracted in
# samples_per_s_net at batch 1.
if (cd "$ROOT" && node -e "require('onnxruntime-node')") >/dev/null 2>&1; then
    ORT=(node "$ROOT/bench/peer_ort.js")
    "${M[@]}" data tabular -o "$WORK/tiny.csv" --rows 500 --quiet >>"$LOG" 2>&1
    printf '[input] shape=8 columns=area,rooms,age,distance,f5,f6,f7,f8\n[task price] kind=reg outputs=1\n' >"$WORK/tiny.cfg"
    "${M[@]}" train --spec "$WORK/tiny.cfg" --data "csv:$WORK/tiny.csv" --epochs 1 --quiet -o "$WORK/tiny.mtc" >>"$LOG" 2>&1
    "${M[@]}" export "$WORK/tiny.mtc" -o "$WORK/tiny.onnx" --quiet >>"$LOG" 2>&1
    if [ -f "$WORK/teacher.mtc" ] && [ ! -f "$WORK/teacher.q8.mtc" ]; then
        "${M[@]}" quantize "$WORK/teacher.mtc" --data fashion-mnist -o "$WORK/teacher.q8.mtc" --quiet >>"$LOG" 2>&1
    fi
    for m in student teacher student.q8 teacher.q8; do
        [ -f "$WORK/$m.mtc" ] || continue
        "${M[@]}" export "$WORK/$m.mtc" -o "$WORK/$m.onnx" --quiet >>"$LOG" 2>&1 || continue
        key=${m/.q8/_int8}
        say "ONNX Runtime next to mtc: $key, batches 1 and 256"
        for round in 1 2; do # alternating, best of two each (bench_report keeps the best)
            if [ "${m%.q8}" = "$m" ]; then
                run "mtc_ort_$key" "${BI_ENV[@]}" "$BI" infer "$WORK/$m.mtc" --seconds "$SECS" --batches 1,256 --threads 1
            else
                run "mtc_ort_$key" "${BI_ENV[@]}" "$BI" int8 "$WORK/$m.mtc" --seconds "$SECS" --batches 1,256 --threads 1
            fi
            run "ort_$key" "${ORT[@]}" "$WORK/$m.onnx" --shape 1x28x28 --batches 1,256 --seconds "$SECS" \
                --overhead "$WORK/tiny.onnx" --tiny-shape 8
        done
    done
else
    say "ONNX Runtime: onnxruntime-node not found (make deps installs it): no ONNX Runtime rows"
fi

# ---- dense layer vs bare sgemm, and the OpenBLAS core-type gain -------------
say "dense forward vs sgemm: Haswell and SkylakeX"
for ct in Haswell SkylakeX; do
    run "dense_$ct" env OPENBLAS_CORETYPE=$ct "$BI" dense --seconds 1.5 --threads 1
done
run dense_chosen "${BI_ENV[@]}" "$BI" dense --seconds 1.5 --threads 1
run sparse_crossover "${BI_ENV[@]}" "$BI" sparse --seconds 0.2 # the runtime's sparse threshold (docs/prune.md)
run peer_sgemm "${PEER_ENV[@]}" $PEER sgemm --m 256 --n 128 --k 784 --threads 1

[ "$MODE" = full ] && [ "${BENCH_FRONT:-1}" != 0 ] && front_report

# ---- ONE table + latest.json (+ summary.md, full mode) -----------------------
SUMMARY=$RESULTS/summary.md
[ "$MODE" = full ] || SUMMARY=$RESULTS/summary-quick.md # summary.md is kept for full runs
"$BR" report "$REC" "$RESULTS/latest.json" --mode "$MODE" --seconds $(($(date +%s) - T0)) --summary "$SUMMARY"
