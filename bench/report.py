#!/usr/bin/env python3
"""
report.py RECORDS.jsonl OUT.json [--mode M] [--seconds S] — the table of
`make bench` (bench/run.sh collects the records; docs/bench.md explains the
figures). Prints one side-by-side table on stdout and writes OUT.json with
the table rows, the scaling tables and every raw record.

Every ratio is mtc / peer (or mtc / mtc fp32, mtc / OpenBLAS) from the same
run; a target is a ratio, never an absolute speed.
"""
import argparse
import json
import time

U8_DATASET_BYTES = 70000 * 28 * 28  # Fashion-MNIST train + test, one byte a pixel


def load(path):
    recs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    return recs


class Records:
    def __init__(self, recs):
        self.recs = recs

    def get(self, key, **want):
        for r in self.recs:
            if r.get("key") == key and all(r.get(k) == v for k, v in want.items()):
                return r
        return None

    def failed(self, key):
        return any(r.get("key") == key and r.get("failed") for r in self.recs)


def acc(r, task):
    """Test accuracy of task from a record of mtc train --json, bench_infer
    train/int8 or the peer."""
    if r is None:
        return None
    if "tasks" in r:
        return r["tasks"].get(task, {}).get("accuracy")
    return r.get(f"{task}_acc")


def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if unit == "%":
        return f"{100 * v:.2f}%"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("records")
    ap.add_argument("out")
    ap.add_argument("--mode", default="?")
    ap.add_argument("--seconds", type=float, default=0)
    a = ap.parse_args()
    R = Records(load(a.records))
    rows = []

    def row(workload, mtc, peer, target=None, unit="", note="", higher=True):
        ratio = mtc / peer if (mtc and peer) else None
        if target is None or ratio is None:
            status = "info" if target is None else "n/a"
        elif (ratio >= target) if higher else (ratio <= target):
            status = "pass"
        else:
            miss = (target / ratio - 1) if higher else (ratio / target - 1)
            status = f"MISS ({100 * miss:.0f}% short)"
        rows.append({"workload": workload, "mtc": mtc, "peer": peer, "ratio": ratio,
                     "target": target, "target_op": ">=" if higher else "<=",
                     "status": status, "unit": unit, "note": note})

    # ---- training speed ------------------------------------------------
    meta = R.get("meta", mode="version") or {}
    mt, pt = R.get("mtc_teacher", mode="train") or R.get("mtc_teacher"), R.get("peer_teacher", mode="train")
    ms, ps = R.get("mtc_student"), R.get("peer_student", mode="train")
    if mt and "samples_per_s" not in mt:
        mt = None
    if ms and "samples_per_s" not in ms:
        ms = None
    tnote = f"{pt['batches']} batches" if pt and pt.get("epochs_run") == 1 and pt["batches"] < 469 else \
        (f"{pt['epochs_run']} epochs" if pt else "")
    row("teacher training samples/s, 2 threads", mt and mt["samples_per_s"], pt and pt["samples_per_s"],
        1.5, note=tnote)
    row("student training samples/s, 2 threads", ms and ms["samples_per_s"], ps and ps["samples_per_s"],
        2.0, note=f"{ps['epochs_run']} epoch(s)" if ps else "")

    # ---- fp32 inference (1 thread: the BENCH.md reference) -------------
    for model in ("student", "teacher"):
        for B, tgt in ((1, 3.0), (256, 1.2)):
            m = R.get(f"mtc_infer_{model}", batch=B, threads=1)
            p = R.get(f"peer_infer_{model}", batch=B, threads=1)
            row(f"fp32 inference {model}, batch {B}, 1 thread", m and m["samples_per_s"],
                p and p["samples_per_s"], tgt, note="samples/s vs PyTorch eager")

    # ---- int8 ------------------------------------------------------------
    note8 = meta.get("int8_note") or ""
    m8 = R.get("mtc_int8_student", mode="infer_rt", batch=256, threads=1)
    mf = R.get("mtc_infer_student", batch=256, threads=1)
    pdyn = R.get("peer_int8_dynamic", batch=256, threads=1)
    pst = R.get("peer_int8_static", batch=256, threads=1)
    row("int8 inference student, batch 256 vs mtc fp32", m8 and m8["samples_per_s"], mf and mf["samples_per_s"],
        2.5, note=note8 or "peer column = mtc fp32")
    row("int8 inference student, batch 256 vs PyTorch dynamic", m8 and m8["samples_per_s"],
        pdyn and pdyn.get("samples_per_s"), 1.5,
        note=(note8 + "; " if note8 else "") + f"peer engine {pdyn.get('engine', '?') if pdyn else '?'}")
    if pst:
        row("PyTorch static int8 (per-channel) batch 256, for reference", None, pst.get("samples_per_s"),
            note=pst.get("unavailable") or f"engine {pst.get('engine')}")

    # ---- dense layer vs OpenBLAS, core types ------------------------------
    dc = R.get("dense_chosen", mode="dense")
    if dc:
        row(f"dense fwd {dc['B']}x{dc['I']}->{dc['O']} GFLOP/s vs bare sgemm", dc["dense_gflops"],
            dc["sgemm_gflops"], 0.70, note=f"core {dc['corename']}; peer column = OpenBLAS, same shape")
        row("dense fwd GFLOP/s vs sgemm 1024^3 peak", dc["dense_gflops"], dc["sgemm_peak_gflops"],
            note="peer column = OpenBLAS peak")
    dh, dsx = R.get("dense_Haswell", mode="dense"), R.get("dense_SkylakeX", mode="dense")
    if dh and dsx:
        row("OPENBLAS_CORETYPE SkylakeX vs Haswell, sgemm 1024^3 GFLOP/s", dsx["sgemm_peak_gflops"],
            dh["sgemm_peak_gflops"], note=f"mtc chose {meta.get('coretype', '?')}")
        row("OPENBLAS_CORETYPE SkylakeX vs Haswell, mtc dense fwd GFLOP/s", dsx["dense_gflops"],
            dh["dense_gflops"], note="1 thread")
    psg = R.get("peer_sgemm", mode="sgemm")
    if psg and dc:
        row("sgemm 256x128x784 GFLOP/s: mtc's OpenBLAS vs torch.mm", dc["sgemm_gflops"], psg["gflops"],
            note="1 thread")

    # ---- memory ----------------------------------------------------------
    for key, what in (("mtc_teacher", "teacher"), ("mtc_student", "student")):
        rss = R.get(key, mode="rss")
        tr = R.get(key)
        if rss and tr and tr.get("parameters"):
            limit = 2 * U8_DATASET_BYTES + 4 * tr["parameters"]
            row(f"peak RSS of mtc train ({what}), MiB vs 2x u8 data + model", rss["peak_rss_kib"] / 1024,
                limit / 2**20, 1.0, note="lower is better", higher=False)

    # ---- accuracy ------------------------------------------------------
    acc_rows = []

    def arow(what, m, p, note=""):
        for task in ("fashion", "super"):
            acc_rows.append({"model": what, "task": task, "mtc": acc(m, task), "peer": acc(p, task), "note": note})

    arow("teacher", mt, pt, tnote)
    arow("student scratch", ms, ps, f"{ps['epochs_run']} epoch(s)" if ps else "")
    for stage in ("label", "distill", "prune"):
        sk = R.get(f"mtc_{stage}")
        if sk and sk.get("skipped"):
            acc_rows.append({"model": f"student {stage}", "task": "-", "mtc": None, "peer": None,
                             "note": sk["skipped"]})
    acc8 = R.get("mtc_int8_student", mode="accuracy")
    pd8 = R.get("peer_int8_dynamic")
    arow("student int8 (mtc PTQ | peer dynamic)", acc8, pd8, note8)
    ps8 = R.get("peer_int8_static")
    if ps8 and not ps8.get("unavailable"):
        arow("student int8 (peer static per-channel)", None, ps8)

    # ---- scaling tables ---------------------------------------------------
    scaling = []
    for r in R.recs:
        k = r.get("key", "")
        if r.get("mode") in ("infer", "infer_rt") and r.get("samples_per_s") and k.split("_")[0] in ("mtc", "peer"):
            scaling.append({"side": k.split("_")[0], "what": k, "dtype": r.get("dtype") or r.get("int8"),
                            "batch": r["batch"], "threads": r["threads"], "samples_per_s": r["samples_per_s"]})
    train_scaling = []
    for b in (32, 128, 512):
        m = R.get(f"mtc_student_b{b}") if b != 128 else ms
        p = R.get(f"peer_student_b{b}", mode="train") if b != 128 else ps
        if m and "samples_per_s" in m or p:
            train_scaling.append({"batch": b, "mtc": m and m.get("samples_per_s"), "peer": p and p.get("samples_per_s")})

    # ---- print -------------------------------------------------------------
    print(f"\nmtc bench ({a.mode}, {a.seconds:.0f} s) — {meta.get('text', '').replace(chr(10), '; ')}")
    w = max(len(r["workload"]) for r in rows) if rows else 20
    print(f"\n{'workload':<{w}} | {'mtc':>10} | {'peer':>10} | {'ratio':>6} | {'target':>7} | status")
    print("-" * (w + 60))
    for r in rows:
        tgt = f"{r['target_op']}{r['target']:.2f}" if r["target"] is not None else ""
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "—"
        print(f"{r['workload']:<{w}} | {fmt(r['mtc']):>10} | {fmt(r['peer']):>10} | {ratio:>6} | {tgt:>7} | "
              f"{r['status']}" + (f"  ({r['note']})" if r["note"] else ""))
    print(f"\n{'accuracy (test)':<44} | {'task':<7} | {'mtc':>7} | {'peer':>7} | note")
    print("-" * 85)
    for r in acc_rows:
        print(f"{r['model']:<44} | {r['task']:<7} | {fmt(r['mtc'], '%'):>7} | {fmt(r['peer'], '%'):>7} | {r['note']}")
    if scaling:
        print("\ninference samples/s (batch x threads)")
        for s in scaling:
            print(f"  {s['what']:<24} {s['dtype']:<5} batch {s['batch']:>3} threads {s['threads']}: "
                  f"{s['samples_per_s']:>12,.0f}")
    if train_scaling:
        print("\nstudent training samples/s by batch (2 threads)")
        for t in train_scaling:
            print(f"  batch {t['batch']:>3}: mtc {fmt(t['mtc']):>8}  peer {fmt(t['peer']):>8}")
    fails = sorted({r["key"] for r in R.recs if r.get("failed")})
    if fails:
        print(f"\nfailed steps (see bench/results/latest.log): {', '.join(fails)}")
    if note8:
        print(f"\n{note8}")
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mode": a.mode, "seconds": a.seconds,
           "mtc_version": meta.get("text"), "openblas_coretype": meta.get("coretype"),
           "table": rows, "accuracy": acc_rows, "inference_scaling": scaling,
           "training_scaling": train_scaling, "failed": fails, "records": R.recs}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
