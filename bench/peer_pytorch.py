#!/usr/bin/env python3
"""
peer_pytorch.py — the PyTorch peer of `make bench` (see docs/bench.md).

Same workloads as mtc, built the plain PyTorch way, so every mtc figure has a
side-by-side reference measured in the same run:
  data    Fashion-MNIST IDX .gz read here (gzip + struct + numpy), kept as u8,
          each batch converted to float /255 (as mtc does; no normalisation);
          or, with --data-dir DIR --tasks a,b, a folder `mtc data multifashion
          --out DIR` wrote: DIR/{train,t10k}-images-idx3-ubyte.gz and one
          DIR/{train,t10k}-TASK-labels-idx1-ubyte.gz per task
  models  teacher: conv32(3x3,p1,relu)-maxpool2-conv64(3x3,p1,relu)-maxpool2-
          flatten-dense256(relu); student: dense128(relu); heads fashion (10)
          and super (4, derived from fashion by SUPER_MAP), each its own
          Linear with its own CE loss: loss = CE(fashion) + CE(super)
  init    PyTorch's default, U(±1/sqrt(fan_in)) — what mtc uses
  recipe  Adam lr 1e-3, batch 128, reshuffled every epoch, all 60000 samples

Modes (each prints ONE JSON line on stdout):
  train  --model teacher|teacher-bn|student --epochs E --threads N [--max-batches K]
         [--data-dir DIR --tasks fashion,digit]
  infer  --model ... --batch B[,B..] --threads N[,N..] --seconds S
         [--int8 dynamic|static] [--load state_dict]
  sgemm  --m M --n N --k K --threads N
  export --model ... --load state_dict --out model.onnx [--opset 13]
         (the ONNX a PyTorch user hands to `mtc import`)
  predict --model ... --load state_dict --out preds.csv [--inputs-csv x.csv]
         per test sample: labels, argmax and top-2 logit gap per task (CSV);
         --inputs-csv also writes the test images as `mtc predict` CSV input
         (pixel/255 as float32, printed so they parse back to the same float)
It is not a general training script: no validation split, no early stopping.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

# glog (used by the quantized kernels) would print a warning per call
os.environ.setdefault("GLOG_minloglevel", "2")
# One thread pool: torch's OpenMP pool does the parallel work and the OpenBLAS
# under Debian's torch stays single-threaded (set before torch loads it).
# Two pools (OpenMP + OpenBLAS pthreads) on 2 shared cores made 2-thread
# training up to 8x slower here; measuring the peer like that would flatter
# mtc. Override with OPENBLAS_NUM_THREADS in the environment.
# It must be set before numpy is imported: numpy loads the same libopenblas
# first, and OpenBLAS reads the variable once, at load. (Until 2026-11-24 the
# import came first, so every "1 thread" peer figure that ran through BLAS
# used both cores, and 2-thread runs had two pools fighting.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np


DATA_DIR = os.environ.get("MTC_FASHION_DIR", "/usr/share/datasets/fashion-mnist")
SUPER_MAP = [0, 1, 0, 0, 0, 2, 0, 2, 3, 2]


def read_idx(path):
    """IDX file (gzip) -> numpy u8 array of its declared shape."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX u8 file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    arr = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: size does not match header")
    return arr.reshape(dims)


def load_split(split, data_dir=None, tasks=None):
    """(x u8 (n,1,28,28), [labels per task]) and the task names. Default:
    Fashion-MNIST with tasks fashion and super (derived by SUPER_MAP)."""
    import torch
    pre = "train" if split == "train" else "t10k"
    if data_dir:
        x = read_idx(os.path.join(data_dir, f"{pre}-images-idx3-ubyte.gz"))
        ys = [torch.from_numpy(read_idx(os.path.join(data_dir, f"{pre}-{t}-labels-idx1-ubyte.gz"))
                               .astype(np.int64)) for t in tasks]
        return torch.from_numpy(x.copy()).unsqueeze(1), ys, list(tasks)
    x = read_idx(os.path.join(DATA_DIR, f"{pre}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA_DIR, f"{pre}-labels-idx1-ubyte.gz")).astype(np.int64)
    ys = np.asarray(SUPER_MAP, dtype=np.int64)[y]
    return (torch.from_numpy(x.copy()).unsqueeze(1),  # (n,1,28,28) u8
            [torch.from_numpy(y), torch.from_numpy(ys)], ["fashion", "super"])


def build_model(kind, classes=(10, 4)):
    """Trunk + one Linear head per task (classes[i] outputs), in task order."""
    import torch.nn as nn

    class MultiTask(nn.Module):
        def __init__(self):
            super().__init__()
            if kind == "teacher-bn":  # examples/{multifashion,fmnist}-teacher.cfg: conv-bn-relu-pool x2
                self.trunk = nn.Sequential(
                    nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU())
                width = 256
                self.fuse = [["trunk.0", "trunk.1", "trunk.2"], ["trunk.4", "trunk.5", "trunk.6"],
                             ["trunk.9", "trunk.10"]]
            elif kind == "teacher":  # examples/fmnist-teacher-plain.cfg
                self.trunk = nn.Sequential(
                    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU())
                width = 256
                self.fuse = [["trunk.0", "trunk.1"], ["trunk.3", "trunk.4"], ["trunk.7", "trunk.8"]]
            else:
                self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU())
                width = 128
                self.fuse = [["trunk.1", "trunk.2"]]
            self.heads = nn.ModuleList([nn.Linear(width, k) for k in classes])
            self.quant = None  # set for static int8 (with self.dq, one per head)

        def forward(self, x):
            if self.quant is not None:
                x = self.quant(x)
            h = self.trunk(x)
            outs = [head(h) for head in self.heads]
            if self.quant is not None:
                outs = [dq(o) for dq, o in zip(self.dq, outs)]
            return outs

    return MultiTask()


def batch_x(xu8):
    return xu8.float().div_(255.0)


def evaluate(model, x, ys, batch=256):
    """Test accuracy per task (list, in task order)."""
    import torch
    model.eval()
    correct = [0] * len(ys)
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            outs = model(batch_x(x[i:i + batch]))
            for t, (o, y) in enumerate(zip(outs, ys)):
                correct[t] += int((o.argmax(1) == y[i:i + batch]).sum())
    return [c / x.shape[0] for c in correct]


def n_classes(ys):
    return [int(y.max()) + 1 for y in ys]


def cmd_train(a):
    import torch
    import torch.nn.functional as F
    torch.manual_seed(a.seed)
    tasks = a.tasks.split(",") if a.tasks else (["fashion", "digit"] if a.data_dir else None)
    x, ys, names = load_split("train", a.data_dir, tasks)
    xt, yts, _ = load_split("test", a.data_dir, tasks)
    model = build_model(a.model, [10, 4] if not a.data_dir else n_classes(ys))
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    n, B = x.shape[0], a.batch
    sched = None
    if a.schedule == "cosine":  # per step to 0, as mtc's --schedule cosine: lr*(1+cos(pi*k/K))/2
        total = a.epochs * ((n + B - 1) // B)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k / total, 1.0))))
    g = torch.Generator().manual_seed(a.seed)
    rates, batches, t_all = [], 0, 0.0
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        seen = 0
        t0 = time.perf_counter()
        for s in range(0, n, B):
            if a.max_batches and batches >= a.max_batches:
                break
            idx = perm[s:s + B]
            xb = batch_x(x[idx])
            outs = model(xb)
            loss = sum(F.cross_entropy(o, y[idx]) for o, y in zip(outs, ys))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            seen += idx.shape[0]
            batches += 1
        dt = time.perf_counter() - t0
        t_all += dt
        rates.append(seen / max(dt, 1e-9))
        print(f"peer train {a.model}: epoch {ep + 1}/{a.epochs} loss {float(loss):.4f} "
              f"{rates[-1]:.0f} samples/s", file=sys.stderr)
        if a.max_batches and batches >= a.max_batches:
            break
    accs = evaluate(model, xt, yts)
    if a.save:
        torch.save(model.state_dict(), a.save)
    rec = {
        "peer": "pytorch", "torch": torch.__version__, "mode": "train", "model": a.model, "schedule": a.schedule,
        "threads": torch.get_num_threads(), "batch": B, "epochs_run": len(rates),
        "batches": batches, "parameters": nparams,
        # last epoch's rate, as `mtc train` reports; mean over all epochs too
        "samples_per_s": rates[-1], "samples_per_s_mean": sum(rates) / len(rates),
        "train_seconds": t_all, "data": a.data_dir or "fashion-mnist", "tasks": names}
    rec.update({f"{t}_acc": v for t, v in zip(names, accs)})
    print(json.dumps(rec))


def pick_qengine():
    import torch
    engines = torch.backends.quantized.supported_engines
    for e in ("fbgemm", "x86", "qnnpack", "onednn"):
        if e in engines:
            torch.backends.quantized.engine = e
            return e
    return None


def make_int8(model, kind, how, xcal):
    """Returns (model, engine) or raises RuntimeError(reason)."""
    import torch
    import torch.nn as nn
    import torch.ao.quantization as tq
    engine = pick_qengine()
    if engine is None:
        raise RuntimeError("no quantized engine in this torch build")
    model.eval()
    if how == "dynamic":
        return tq.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8), engine
    # static post-training quantization, per-channel weights
    model.quant = tq.QuantStub()
    model.dq = nn.ModuleList([tq.DeQuantStub() for _ in model.heads])
    model = tq.fuse_modules(model, model.fuse)
    if engine in ("fbgemm", "x86"):
        model.qconfig = tq.get_default_qconfig(engine)  # per-channel weights
    else:
        model.qconfig = tq.QConfig(activation=tq.HistogramObserver.with_args(reduce_range=False),
                                   weight=tq.default_per_channel_weight_observer)
    tq.prepare(model, inplace=True)
    with torch.inference_mode():
        for i in range(0, xcal.shape[0], 256):
            model(batch_x(xcal[i:i + 256]))
    tq.convert(model, inplace=True)
    with torch.inference_mode():
        model(batch_x(xcal[:2]))  # fails here when the engine lacks a kernel
    return model, engine


def set_blas_threads(n):
    """Inference: OpenBLAS gets as many threads as torch (one op runs at a
    time, so the two pools do not fight; measured 694k vs 415k samples/s for
    the student at batch 256 on 2 threads). Training keeps OpenBLAS at 1
    (112k vs 26k samples/s for the student on 2 threads). Returns the count
    set, or None when no libopenblas is loaded or the user fixed it."""
    import ctypes
    if os.environ.get("MTC_PEER_BLAS_FIXED"):
        return None
    with open("/proc/self/maps") as f:
        libs = sorted({ln.split()[-1] for ln in f if "libopenblas" in ln and ln.split()[-1].startswith("/")})
    for lib in libs:
        try:
            ctypes.CDLL(lib).openblas_set_num_threads(int(n))
            return int(n)
        except (OSError, AttributeError):
            continue
    return None


def cmd_infer(a):
    """One JSON line per (threads, batch): the process and model are set up
    once, torch.set_num_threads switches between runs."""
    import torch
    torch.manual_seed(a.seed)
    model = build_model(a.model)
    if a.load:
        model.load_state_dict(torch.load(a.load))
    model.eval()
    xt, yts, names = load_split("test")
    base = {"peer": "pytorch", "torch": torch.__version__, "mode": "infer", "model": a.model,
            "int8": a.int8 or "fp32", "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    if a.int8:
        try:
            model, base["engine"] = make_int8(model, a.model, a.int8, xt[:1024])
        except Exception as ex:  # report, do not fail the whole bench
            base.update(samples_per_s=None, unavailable=f"{type(ex).__name__}: {ex}"[:300])
            print(json.dumps(base))
            return
    if a.load:
        base.update({f"{t}_acc": v for t, v in zip(names, evaluate(model, xt, yts))})
    for th in [int(v) for v in str(a.threads).split(",")]:
        torch.set_num_threads(th)
        bt = set_blas_threads(th)
        if bt is not None:
            base["blas_threads"] = bt
        for B in [int(v) for v in a.batch.split(",")]:
            # inputs: test images cycled, converted once (the peer's best case)
            reps = max(1, 4096 // B)
            xs = [batch_x(xt[(i * B) % 9000:(i * B) % 9000 + B]) for i in range(reps)]
            with torch.inference_mode():
                for i in range(min(reps, 20)):  # warm-up
                    model(xs[i % reps])
                iters, t0 = 0, time.perf_counter()
                while True:
                    model(xs[iters % reps])
                    iters += 1
                    if iters % 8 == 0 and time.perf_counter() - t0 >= a.seconds:
                        break
                dt = time.perf_counter() - t0
            print(json.dumps(dict(base, batch=B, threads=th, samples_per_s=iters * B / dt)), flush=True)


def cmd_sgemm(a):
    import torch
    set_blas_threads(int(str(a.threads).split(",")[0]))
    A = torch.rand(a.m, a.k)
    Bm = torch.rand(a.k, a.n)
    C = torch.empty(a.m, a.n)
    for _ in range(5):
        torch.mm(A, Bm, out=C)
    iters, t0 = 0, time.perf_counter()
    while True:
        torch.mm(A, Bm, out=C)
        iters += 1
        if iters % 16 == 0 and time.perf_counter() - t0 >= a.seconds:
            break
    dt = time.perf_counter() - t0
    print(json.dumps({"peer": "pytorch", "mode": "sgemm", "m": a.m, "n": a.n, "k": a.k,
                      "threads": torch.get_num_threads(),
                      "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                      "gflops": 2.0 * a.m * a.n * a.k * iters / dt / 1e9}))


def cmd_export(a):
    """A trained state_dict as ONNX (what a PyTorch user hands to `mtc import`):
    input 'image' (N,1,28,28) in [0,1], outputs named after the tasks, logits."""
    import torch
    model = build_model(a.model)
    model.load_state_dict(torch.load(a.load))
    model.eval()
    torch.onnx.export(model, torch.rand(1, 1, 28, 28), a.out, opset_version=a.opset, input_names=["image"],
                      output_names=["fashion", "super"],
                      dynamic_axes={"image": {0: "batch"}, "fashion": {0: "batch"}, "super": {0: "batch"}})
    print(json.dumps({"peer": "pytorch", "mode": "export", "model": a.model, "onnx": a.out, "opset": a.opset}))


def cmd_predict(a):
    """Per-test-sample predictions (for a sample-by-sample comparison with mtc,
    bench/onnx_sample_check.sh): one CSV row per test image, in file order:
    i, then per task label_T, pred_T (argmax of the logits, first index on a
    tie, as torch.argmax) and gap_T (top-1 minus top-2 logit, float32)."""
    import torch
    model = build_model(a.model)
    model.load_state_dict(torch.load(a.load))
    model.eval()
    xt, yts, names = load_split("test")
    preds = [[] for _ in names]
    gaps = [[] for _ in names]
    with torch.inference_mode():
        for i in range(0, xt.shape[0], a.batch):
            outs = model(batch_x(xt[i:i + a.batch]))
            for t, o in enumerate(outs):
                preds[t].append(o.argmax(1))
                top2 = o.topk(2, dim=1).values
                gaps[t].append(top2[:, 0] - top2[:, 1])
    preds = [torch.cat(p).numpy() for p in preds]
    gaps = [torch.cat(g).numpy() for g in gaps]
    ys = [y.numpy() for y in yts]
    with open(a.out, "w") as f:
        f.write("i," + ",".join(f"label_{t},pred_{t},gap_{t}" for t in names) + "\n")
        for i in range(xt.shape[0]):
            f.write(f"{i}," + ",".join(f"{ys[t][i]},{preds[t][i]},{float(gaps[t][i]):.9g}"
                                       for t in range(len(names))) + "\n")
    if a.inputs_csv:
        # the floats batch_x makes (u8 / 255 in float32, as mtc's u8 loader),
        # as text that strtod + a cast to float (mtc's CSV reader) turns back
        # into the same float32: checked for all 256 values here
        v = torch.arange(256, dtype=torch.uint8).float().div_(255.0).numpy()
        txt = [f"{float(f):.9g}" for f in v]
        for k in range(256):
            if np.float32(float(txt[k])) != v[k]:
                raise SystemExit(f"peer predict: pixel {k}: '{txt[k]}' does not parse back to {v[k]!r}")
        txt[0] = "0"
        lut = np.array(txt, dtype=object)
        flat = xt.reshape(xt.shape[0], -1).numpy()
        with open(a.inputs_csv, "w") as f:
            f.write(",".join(f"p{j}" for j in range(flat.shape[1])) + "\n")
            for r in flat:
                f.write(",".join(lut[r]) + "\n")
    rec = {"peer": "pytorch", "torch": torch.__version__, "mode": "predict", "model": a.model,
           "threads": torch.get_num_threads(), "n": int(xt.shape[0]), "out": a.out,
           "inputs_csv": a.inputs_csv}
    rec.update({f"{t}_acc": float((p == y).mean()) for t, p, y in zip(names, preds, ys)})
    print(json.dumps(rec))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    sub = p.add_subparsers(dest="mode", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", default="1", help="threads (infer: a list, e.g. 1,2)")
    common.add_argument("--seed", type=int, default=1)
    t = sub.add_parser("train", parents=[common])
    t.add_argument("--model", choices=["teacher", "teacher-bn", "student"], required=True)
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--schedule", choices=["const", "cosine"], default="const",
                   help="learning-rate schedule (cosine: per step to 0, as mtc)")
    t.add_argument("--max-batches", type=int, default=0, help="stop after K batches (0 = all)")
    t.add_argument("--save", help="write the state_dict here (for infer --load)")
    t.add_argument("--data-dir", help="IDX folder of `mtc data multifashion --out DIR` instead of Fashion-MNIST")
    t.add_argument("--tasks", help="with --data-dir: tasks (label files) to train, e.g. fashion,digit")
    i = sub.add_parser("infer", parents=[common])
    i.add_argument("--model", choices=["teacher", "student"], required=True)
    i.add_argument("--batch", default="1", help="batch sizes, e.g. 1,16,256")
    i.add_argument("--seconds", type=float, default=2.0)
    i.add_argument("--int8", choices=["dynamic", "static"])
    i.add_argument("--load", help="trained state_dict; adds test accuracy to the output")
    x = sub.add_parser("export", parents=[common])
    x.add_argument("--model", choices=["teacher", "teacher-bn", "student"], required=True)
    x.add_argument("--load", required=True, help="the state_dict train --save wrote")
    x.add_argument("--out", required=True, help="the .onnx to write")
    x.add_argument("--opset", type=int, default=13)
    r = sub.add_parser("predict", parents=[common])
    r.add_argument("--model", choices=["teacher", "teacher-bn", "student"], required=True)
    r.add_argument("--load", required=True, help="the state_dict train --save wrote")
    r.add_argument("--out", required=True, help="CSV: i, then label_T,pred_T,gap_T per task")
    r.add_argument("--batch", type=int, default=256)
    r.add_argument("--inputs-csv", help="also write the test images as mtc predict --input CSV")
    g = sub.add_parser("sgemm", parents=[common])
    g.add_argument("--m", type=int, default=256)
    g.add_argument("--n", type=int, default=128)
    g.add_argument("--k", type=int, default=784)
    g.add_argument("--seconds", type=float, default=1.0)
    a = p.parse_args()
    import torch
    torch.set_num_threads(int(str(a.threads).split(",")[0]))
    try:
        torch.set_num_interop_threads(1)  # one pool; never oversubscribe 2 cores
    except RuntimeError:
        pass
    {"train": cmd_train, "infer": cmd_infer, "sgemm": cmd_sgemm, "export": cmd_export,
     "predict": cmd_predict}[a.mode](a)


if __name__ == "__main__":
    main()
