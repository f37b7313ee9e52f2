# bench/front.sh — the size–accuracy front; sourced by bench/run.sh (full and
# front modes) after its tools are built: uses M, BI, BR, WORK, RESULTS,
# LOG, REC, SECS, run() and say() from there.
#
# For Fashion-MNIST and MultiFashion: the teacher (its recipe), its soft
# labels, then every student distilled beside its scratch twin and each
# compression step of it:
#   mlp  examples/*-student.cfg         KD, int8, AGP 90% (KD fine-tune) + int8
#   cnn  examples/*-student-cnn.cfg     KD, int8, AGP 50% + int8, structured
#                                       channels kept 0.75 (KD fine-tune) + int8
#   dw   examples/fmnist-student-dw.cfg KD, int8 (on MultiFashion with a
#        `digit` head for `super`; its depthwise training is the slowest
#        step, ~12 min with its scratch twin)
# Every checkpoint is measured through the reference runtime on the test
# split (`mtc plot size-accuracy --data --json`, which also draws the PNG
# with the teacher ringed); bench_report front writes bench/results/front.md
# (one table per data set, KD against scratch, inference of the int8 students
# against the MLP student and the teacher, timed on Fashion-MNIST).
#
# Environment: FRONT_DATA (default "fashion-mnist multifashion"), FRONT_SEED (1),
# FRONT_QUICK=1 (one epoch everywhere: a smoke test of the script).

FRONT_SEED=${FRONT_SEED:-1}
if [ "$MODE" = quick ] || [ "${FRONT_QUICK:-0}" = 1 ]; then
    F_T_EPOCHS=1; F_MLP_EPOCHS=1; F_CNN_EPOCHS=1; F_AGP=(--steps 1 --finetune-epochs 1); F_FT=1
else
    F_T_EPOCHS=5; F_MLP_EPOCHS=10; F_CNN_EPOCHS=15; F_AGP=(--steps 3 --finetune-epochs 1); F_FT=2
fi
# KD of the CNN students: their cosine recipe on unaugmented soft labels
# (stored shifted views cost them accuracy on the test split: docs/students.md)
F_CNN_KD=(--lr 2e-3 --schedule cosine)
F_MLP_KD=(--schedule cosine)

# front_student DS SOFT TEACHER NAME SPEC EPOCHS KD-FLAGS...: distil NAME
# beside its scratch twin into $FW/NAME.mtc
front_student() {
    local ds=$1 soft=$2 teacher=$3 name=$4 spec=$5 epochs=$6
    shift 6
    say "front $ds: $name student, KD + scratch, $epochs epochs"
    run "front_${ds}_kd_$name" "${M[@]}" distill --spec "$spec" --data "$ds" --soft "$soft" --teacher "$teacher" \
        -o "$FW/$name.mtc" --epochs "$epochs" --compare-scratch --val 0 --threads 2 --seed "$FRONT_SEED" \
        --json --quiet "$@"
}

# front_quantize DS NAME: NAME.mtc -> NAME.q8.mtc (percentile calibration)
front_quantize() {
    [ -f "$FW/$2.mtc" ] || return 0
    run "front_$1_q8_$2" "${M[@]}" quantize "$FW/$2.mtc" --data "$1" -o "$FW/$2.q8.mtc" \
        --calib-method percentile --json --quiet
}

for ds in ${FRONT_DATA:-fashion-mnist multifashion}; do
    FW=$WORK/front-$ds
    mkdir -p "$FW"
    case $ds in
        fashion-mnist)
            T_SPEC=$ROOT/examples/fmnist-teacher.cfg; T_FLAGS=(); MLP_EP=$F_MLP_EPOCHS
            cp "$ROOT/examples/fmnist-student.cfg" "$FW/mlp.cfg"
            cp "$ROOT/examples/fmnist-student-cnn.cfg" "$FW/cnn.cfg"
            cp "$ROOT/examples/fmnist-student-dw.cfg" "$FW/dw.cfg" ;;
        multifashion)
            # the MLP: 30 epochs, where KD beats scratch on both tasks (tools/demo.sh)
            T_SPEC=$ROOT/examples/multifashion-teacher.cfg; T_FLAGS=(--schedule cosine); MLP_EP=$((F_MLP_EPOCHS * 3))
            cp "$ROOT/examples/multifashion-student.cfg" "$FW/mlp.cfg"
            cp "$ROOT/examples/multifashion-student-cnn.cfg" "$FW/cnn.cfg"
            sed 's/^\[task super\].*/[task digit]   kind = cls classes = 10/' \
                "$ROOT/examples/fmnist-student-dw.cfg" >"$FW/dw.cfg" ;;
        *) say "front: unknown data set $ds (skipped)"; continue ;;
    esac
    say "front $ds: teacher $(basename "$T_SPEC"), $F_T_EPOCHS epochs"
    run "front_${ds}_teacher" "${M[@]}" train --spec "$T_SPEC" --data "$ds" -o "$FW/teacher.mtc" \
        --epochs $F_T_EPOCHS --val 0 --threads 2 --seed "$FRONT_SEED" --json --quiet "${T_FLAGS[@]}"
    [ -f "$FW/teacher.mtc" ] || continue
    run "front_${ds}_label" "${M[@]}" label "$FW/teacher.mtc" --data "$ds" -o "$FW/soft.mtl" \
        --threads 2 --json --quiet
    [ -f "$FW/soft.mtl" ] && front_student "$ds" "$FW/soft.mtl" "$FW/teacher.mtc" mlp "$FW/mlp.cfg" \
        $MLP_EP "${F_MLP_KD[@]}"
    for s in cnn dw; do
        [ -f "$FW/$s.cfg" ] && [ -f "$FW/soft.mtl" ] && front_student "$ds" "$FW/soft.mtl" "$FW/teacher.mtc" $s \
            "$FW/$s.cfg" $F_CNN_EPOCHS "${F_CNN_KD[@]}"
    done
    # pruning: AGP with KD fine-tuning (unstructured; int8 files store the
    # zeros compressed), structured channel removal of the CNN
    if [ -f "$FW/mlp.mtc" ]; then
        say "front $ds: mlp AGP 90%"
        run "front_${ds}_prune_mlp" "${M[@]}" prune "$FW/mlp.mtc" -o "$FW/mlp-agp90.mtc" --sparsity 0.9 \
            --schedule agp "${F_AGP[@]}" --soft "$FW/soft.mtl" --data "$ds" --val 0 --threads 2 \
            --seed "$FRONT_SEED" --json --quiet
    fi
    if [ -f "$FW/cnn.mtc" ]; then
        say "front $ds: cnn AGP 50%, structured channels 0.75"
        run "front_${ds}_prune_cnn" "${M[@]}" prune "$FW/cnn.mtc" -o "$FW/cnn-agp50.mtc" --sparsity 0.5 \
            --schedule agp "${F_AGP[@]}" --soft "$FW/soft.mtl" --data "$ds" --val 0 --threads 2 \
            --seed "$FRONT_SEED" --json --quiet
        run "front_${ds}_struct_cnn" "${M[@]}" prune "$FW/cnn.mtc" -o "$FW/cnn-ch75.mtc" \
            --structured channels --keep 0.75 --rank l2 --finetune-epochs $F_FT --soft "$FW/soft.mtl" \
            --data "$ds" --val 0 --threads 2 --seed "$FRONT_SEED" --json --quiet
    fi
    for c in mlp mlp-agp90 cnn cnn-agp50 cnn-ch75 dw; do front_quantize "$ds" $c; done
    # every point through the runtime on the test split; the PNG
    pts=()
    for c in teacher mlp mlp.q8 mlp-agp90 mlp-agp90.q8 cnn cnn.q8 cnn-agp50 cnn-agp50.q8 cnn-ch75 cnn-ch75.q8 dw dw.q8; do
        [ -f "$FW/$c.mtc" ] && pts+=("$FW/$c.mtc")
    done
    say "front $ds: ${#pts[@]} checkpoints on the test split, $RESULTS/front-$ds.png"
    if "${M[@]}" plot size-accuracy "${pts[@]}" --data "$ds" --threads 2 --json --quiet \
        -o "$RESULTS/front-$ds.png" >"$FW/front.json" 2>>"$LOG"; then
        FRONT_ARGS+=("$ds=$FW/front.json")
    else
        say "front $ds: plot failed (see $LOG)"
    fi
    # inference, batch 1 and 256, 1 thread: the int8 CNN students against the
    # int8 MLP student and the fp32 teacher (bench_infer feeds Fashion-MNIST)
    if [ "$ds" = fashion-mnist ]; then
        say "front $ds: inference of the teacher and the int8 students"
        [ -f "$FW/teacher.mtc" ] && run "front_${ds}_infer_teacher" "${BI_ENV[@]}" "$BI" infer "$FW/teacher.mtc" \
            --seconds "$SECS" --batches 1,256 --threads 1
        for c in mlp cnn dw; do
            [ -f "$FW/$c.q8.mtc" ] && run "front_${ds}_infer_$c" "${BI_ENV[@]}" "$BI" int8 "$FW/$c.q8.mtc" \
                --seconds "$SECS" --batches 1,256 --threads 1
        done
    fi
    # the tables so far (a long run that stops later keeps what it measured)
    if [ ${#FRONT_ARGS[@]} -gt 0 ]; then
        "$BR" front "$REC" "$RESULTS/front.md" "${FRONT_ARGS[@]}" >&2 || say "front: no table (see $LOG)"
    fi
done
