// ort_run.js — the independent check of `mtc export`: runs an ONNX model in
// ONNX Runtime (npm onnxruntime-node, CPU) on the rows of a CSV of inputs
// (header line, then the model's c*h*w values per row) and prints, per row,
// every output's values in graph order, comma-separated (9 digits).
//   node tests/ort_run.js model.onnx inputs.csv [CxHxW]   (default: [N, F])
// Exit 2 with one line on bad input. Used by tests/test_onnx.c.
'use strict';
const fs = require('fs');
let ort;
try {
  ort = require('onnxruntime-node');
} catch (err) {
  console.error('ort_run: onnxruntime-node is not installed (make deps installs it)');
  process.exit(2);
}
async function main() {
  const [model, csv] = process.argv.slice(2);
  if (!model || !csv) { console.error('usage: node tests/ort_run.js model.onnx inputs.csv'); process.exit(2); }
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const input = session.inputNames[0];
  const rows = fs.readFileSync(csv, 'utf8').split('\n').slice(1).filter((l) => l.trim() !== '')
    .map((l) => l.split(',').map(Number));
  const n = rows.length, f = rows[0].length;
  const data = Float32Array.from(rows.flat());
  const shape = process.argv[4];
  const dims = shape ? [n].concat(shape.split('x').map(Number)) : [n, f];
  const out = await session.run({ [input]: new ort.Tensor('float32', data, dims) });
  for (let r = 0; r < n; r++) {
    const vals = [];
    for (const name of session.outputNames) {
      const t = out[name], d = t.data.length / n;
      for (let k = 0; k < d; k++) vals.push(t.data[r * d + k].toPrecision(9));
    }
    console.log(vals.join(','));
  }
}
main().catch((err) => { console.error('ort_run: ' + (err && err.message ? err.message.split('\n')[0] : err)); process.exit(2); });
