#!/usr/bin/env bash
# bench/onnx_sample_check.sh [WORK_DIR] [STATE_DICT] — does a PyTorch teacher
# imported into mtc predict the same class as PyTorch on every test sample?
#
# Trains the PyTorch peer's BN teacher (bench/peer_pytorch.py train --model
# teacher-bn: conv-bn-relu-pool x2, dense256, heads fashion/10 and super/4) on
# Fashion-MNIST for 5 epochs, seed 1, cosine schedule, 1 thread (or takes the
# state_dict given as $2), exports it to ONNX (peer export), has PyTorch write
# its per-sample argmax per task and top-2 logit gap (peer predict) and the
# test images as mtc CSV input (pixel/255 in float32, the floats both tools
# feed: the peer's batch_x divides by 255, mtc's u8 loader too, so mtc import
# keeps its default --input-scale 1/255), imports the ONNX (mtc import), runs
# mtc predict on those 10,000 rows and mtc eval on its own fashion-mnist
# loader (a cross-check that the CSV path saw the same inputs), then compares
# torch and mtc sample by sample. Prints per task: agreements, disagreements,
# torch's and mtc's accuracy, mtc eval's, torch's smallest top-2 logit gap
# (the closest call), and for any disagreeing sample its index, label, both
# classes, torch's top-2 logit gap and mtc's top-2 probability gap.
# Note: torch.onnx.export (eval mode) folds each BatchNorm into its Conv, so
# mtc runs the folded weights while torch runs conv then BN: the two are not
# the same float arithmetic, and a near-tie could in principle flip.
#
# Exit 0 when every sample agrees on every task and mtc eval's accuracies equal
# those of the predictions; 1 on any disagreement; 2 on bad usage.
# Time on 2 cores, 1 thread: ~9 min when training (8.5 min of it the 5
# epochs at ~600 samples/s), ~15 s with a STATE_DICT.
#
# Work files (state_dict, ONNX, checkpoint, CSVs, JSON, log) go to WORK_DIR,
# default bench/results/onnx-check/ (git-ignored). build/mtc is copied there
# first, so a rebuild during the run does not change the binary mid-way.
# Environment: MTC (default build/mtc), PY (default /usr/bin/python3, the
# python with Debian's python3-torch), SEED (1), EPOCHS (5), SCHEDULE
# (cosine, as examples/fmnist-teacher.cfg and docs/interop.md; or const),
# MTC_FASHION_DIR (both tools read the data set from it; default
# /usr/share/datasets/fashion-mnist).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$ROOT/bench/results/onnx-check}
SD=${2:-}
MTC_SRC=${MTC:-$ROOT/build/mtc}
PY=${PY:-/usr/bin/python3}
SEED=${SEED:-1}
EPOCHS=${EPOCHS:-5}
SCHEDULE=${SCHEDULE:-cosine}
if [ $# -gt 2 ] || [ ! -x "$MTC_SRC" ] || { [ -n "$SD" ] && [ ! -f "$SD" ]; }; then
    echo "usage: bench/onnx_sample_check.sh [WORK_DIR] [STATE_DICT] (MTC=$MTC_SRC must exist; make -j2)" >&2
    exit 2
fi
# one thread everywhere (2 shared cores): torch via --threads 1, OpenBLAS and
# OpenMP pools pinned too
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
MTC=$WORK/mtc
cp "$MTC_SRC" "$MTC"
PEER="$PY $ROOT/bench/peer_pytorch.py"
LOG=$WORK/log.txt
: >"$LOG"
T0=$(date +%s)
say() { echo "onnx-check [$(($(date +%s) - T0))s] $*" >&2; }
# step NAME OUT CMD...: stdout to OUT, stderr to the log
step() {
    local name=$1 out=$2; shift 2
    say "$name"
    echo "### $name: $*" >>"$LOG"
    "$@" >"$out" 2>>"$LOG" || { echo "onnx-check: $name failed (exit $?), see $LOG" >&2; exit 2; }
}

say "work dir $WORK; mtc $(sha256sum "$MTC" | cut -c1-12) from $MTC_SRC (git $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ", tree dirty"))"
if [ -z "$SD" ]; then
    SD=$WORK/teacher.pt
    step "train teacher-bn ($EPOCHS epochs, seed $SEED, $SCHEDULE, 1 thread)" "$WORK/train.json" \
        $PEER train --model teacher-bn --epochs "$EPOCHS" --schedule "$SCHEDULE" --seed "$SEED" \
        --threads 1 --save "$SD"
fi
step "export ONNX" "$WORK/export.json" $PEER export --model teacher-bn --load "$SD" --out "$WORK/teacher.onnx" --threads 1
step "torch per-sample predictions" "$WORK/torch.json" $PEER predict --model teacher-bn --load "$SD" \
    --out "$WORK/torch_preds.csv" --inputs-csv "$WORK/test_inputs.csv" --threads 1
step "mtc import" "$WORK/import.json" "$MTC" import "$WORK/teacher.onnx" -o "$WORK/teacher.mtc" --threads 1 --json
step "mtc predict (10,000 CSV rows)" "$WORK/mtc_preds.json" "$MTC" predict "$WORK/teacher.mtc" \
    --input "$WORK/test_inputs.csv" --threads 1 --json
step "mtc eval --data fashion-mnist" "$WORK/mtc_eval.json" "$MTC" eval "$WORK/teacher.mtc" \
    --data fashion-mnist --split test --threads 1 --json
say "compare"

rc=0
"$PY" - "$WORK" <<'EOF' || rc=$?
import csv, json, sys
work = sys.argv[1]
rows = list(csv.DictReader(open(f"{work}/torch_preds.csv")))
mp = json.load(open(f"{work}/mtc_preds.json"))["predictions"]
ev = json.load(open(f"{work}/mtc_eval.json"))
tasks = [k[len("pred_"):] for k in rows[0] if k.startswith("pred_")]
if len(mp) != len(rows):
    sys.exit(f"onnx-check: mtc predicted {len(mp)} rows, torch {len(rows)}")
bad_any = False
print(f"samples {len(rows)}")
print(f"{'task':8} {'agree':>6} {'differ':>6} {'torch acc':>10} {'mtc acc':>10} {'mtc eval':>10}  closest call (torch top-2 logit gap)")
for t in tasks:
    n = len(rows)
    agree = tc = mc = 0
    diff = []
    for r, m in zip(rows, mp):
        y, tp, mcl = int(r[f"label_{t}"]), int(r[f"pred_{t}"]), int(m[t]["class"])
        tc += tp == y
        mc += mcl == y
        if tp == mcl:
            agree += 1
        else:
            p = sorted(m[t]["probs"], reverse=True)
            diff.append((int(r["i"]), y, tp, mcl, float(r[f"gap_{t}"]), p[0] - p[1]))
    acc = ev["tasks"][t]["accuracy"] if isinstance(ev.get("tasks"), dict) else None
    ok_eval = acc is not None and round(acc * n) == mc
    g, gi = min((float(r[f"gap_{t}"]), int(r["i"])) for r in rows)
    print(f"{t:8} {agree:6d} {len(diff):6d} {100 * tc / n:9.2f}% {100 * mc / n:9.2f}% "
          f"{'?' if acc is None else f'{100 * acc:9.2f}%':>10}  {g:.3g} (sample {gi}, "
          f"{'agreed' if all(d[0] != gi for d in diff) else 'differed'})"
          f"{'' if ok_eval else '  <- eval differs from predict'}")
    for i, y, tp, mcl, g, pg in diff:
        print(f"  sample {i}: label {y}, torch {tp}, mtc {mcl}, torch top-2 logit gap {g:.3g}, "
              f"mtc top-2 prob gap {pg:.3g}")
    bad_any |= bool(diff) or not ok_eval
sys.exit(1 if bad_any else 0)
EOF
say "done (exit $rc)"
exit $rc
