// peer_ort.js — ONNX Runtime (npm onnxruntime-node, CPU) as the inference
// peer of `make bench`: samples/s of an ONNX model (what `mtc export`
// writes, fp32 or QDQ int8) at the given batches, 1 intra-op and 1
// inter-op thread, the batches interleaved in rounds, the best round kept.
// With --overhead M.onnx, the per-call cost of the binding (a model that
// does next to nothing, timed the same way at batch 1) is measured too,
// and each batch-1 figure is also printed with it subtracted.
//
//   node bench/peer_ort.js MODEL.onnx --shape 1x28x28 [--batches 1,256]
//        [--seconds S] [--rounds R] [--overhead TINY.onnx --tiny-shape 8]
//
// One JSON line per batch on stdout ({"mode":"infer","engine":"ort",...}),
// as bench_infer prints them. Exit 2 with one line on bad input.
'use strict';
let ort;
try {
  ort = require('onnxruntime-node');
} catch (err) {
  console.error('peer_ort: onnxruntime-node is not installed (make deps installs it)');
  process.exit(2);
}

function opt(args, name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}

function now() { return Number(process.hrtime.bigint()) / 1e9; }

async function session(path) {
  return ort.InferenceSession.create(path, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
}

function feed(s, dims) {
  const n = dims.reduce((a, b) => a * b, 1), data = new Float32Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648; data[i] = x / 2147483648; }
  return { [s.inputNames[0]]: new ort.Tensor('float32', data, dims) };
}

// calls of s on f for about secs seconds: seconds per call
async function timeCalls(s, f, secs) {
  let it = 0;
  const t0 = now();
  let dt = 0;
  do {
    await s.run(f);
    it++;
    dt = now() - t0;
  } while (dt < secs || it < 3);
  return dt / it;
}

async function main() {
  const args = process.argv.slice(2);
  const model = args[0];
  if (!model || model.startsWith('--')) {
    console.error('usage: node bench/peer_ort.js MODEL.onnx --shape CxHxW|F [--batches 1,256] [--seconds S]');
    process.exit(2);
  }
  const shape = opt(args, '--shape', '').split('x').filter((v) => v !== '').map(Number);
  const batches = opt(args, '--batches', '1,256').split(',').map(Number);
  const secs = Number(opt(args, '--seconds', '2')), rounds = Number(opt(args, '--rounds', '5'));
  const tiny = opt(args, '--overhead', ''), tinyShape = opt(args, '--tiny-shape', '8').split('x').map(Number);
  if (!shape.length || shape.some((v) => !(v > 0)) || batches.some((v) => !(v > 0)) || !(secs > 0) || !(rounds > 0)) {
    console.error('peer_ort: bad --shape, --batches, --seconds or --rounds');
    process.exit(2);
  }
  const s = await session(model);
  const feeds = batches.map((b) => feed(s, [b].concat(shape)));
  let ts = null, tf = null;
  if (tiny) { ts = await session(tiny); tf = feed(ts, [1].concat(tinyShape)); }
  for (const f of feeds) await timeCalls(s, f, 0.05); // warm-up
  if (ts) await timeCalls(ts, tf, 0.05);
  const best = batches.map(() => Infinity);
  let over = Infinity;
  const slice = secs / (rounds * (batches.length + (ts ? 1 : 0)));
  for (let r = 0; r < rounds; r++) { // interleaved: a noisy neighbour hits every batch
    for (let j = 0; j < batches.length; j++) best[j] = Math.min(best[j], await timeCalls(s, feeds[j], slice));
    if (ts) over = Math.min(over, await timeCalls(ts, tf, slice));
  }
  batches.forEach((b, j) => {
    const o = { mode: 'infer', engine: 'ort', model, batch: b, threads: 1, samples_per_s: b / best[j],
      call_us: 1e6 * best[j], ort_version: ort.env && ort.env.versions ? ort.env.versions.common : undefined };
    if (ts) {
      o.overhead_us = 1e6 * over;
      if (best[j] > over) o.samples_per_s_net = b / (best[j] - over); // the model's own time
    }
    console.log(JSON.stringify(o));
  });
}
main().catch((err) => { console.error('peer_ort: ' + (err && err.message ? err.message.split('\n')[0] : err)); process.exit(2); });
