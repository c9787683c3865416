// node compare.mjs DIR: runs every model of DIR/manifest.json (written by onnx_export_models) in
// onnxruntime-node and compares each output with what the engine computed on the same input.
//
// Tolerance, per element: |onnx - engine| <= 1e-4 * max(1, |engine|) (relative 1e-4, absolute
// below 1). Both sides are fp32 but sum in different orders (and onnxruntime fuses Conv with
// BatchNormalization), so agreement is to a few ulps per layer, not bit for bit.
// A file <name>.cli.onnx beside <name>.onnx (written by fer_convert --to onnx in
// run_onnx_test.sh) is run against the same references.
// Prints one line per file (worst relative difference, where it is, time per batch) and writes
// DIR/results.json; exits 1 naming the model and its worst element when any is over.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';

const TOLERANCE = 1e-4;
const dir = process.argv[2];
if (!dir) {
  console.error('usage: node compare.mjs DIR (holding manifest.json)');
  process.exit(2);
}

function readFloats(file, shape) {
  const bytes = readFileSync(join(dir, file));
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== count * 4)
    throw new Error(`${file}: ${bytes.length} bytes, expected ${count} floats of shape [${shape}]`);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

// The worst element by |diff| / max(1, |ref|), with its index and both values.
function worst(got, ref) {
  let w = { rel: -1, index: -1, got: 0, ref: 0, maxAbs: 0, refMax: 0 };
  for (let i = 0; i < ref.length; ++i) {
    const diff = Math.abs(got[i] - ref[i]);
    w.refMax = Math.max(w.refMax, Math.abs(ref[i]));
    const rel = Number.isFinite(diff) ? diff / Math.max(1, Math.abs(ref[i])) : Infinity;
    w.maxAbs = Math.max(w.maxAbs, diff);
    if (rel > w.rel) w = { ...w, rel, index: i, got: got[i], ref: ref[i] };
  }
  return w;
}

const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
const results = [];
const failures = [];
for (const entry of manifest) {
  const files = [entry.onnx];
  const cli = `${entry.name}.cli.onnx`;
  if (existsSync(join(dir, cli))) files.push(cli);
  for (const file of files) {
    const session = await ort.InferenceSession.create(join(dir, file));
    const input = new ort.Tensor('float32', readFloats(entry.input.file, entry.input.shape), entry.input.shape);
    const start = performance.now();
    const out = await session.run({ input });
    const ms = performance.now() - start;
    const row = { model: entry.name, file, ms_per_batch: ms, batch: entry.input.shape[0], outputs: {} };
    for (const [name, ref] of Object.entries(entry.outputs)) {
      const got = out[name];
      if (!got) {
        failures.push(`${file}: no output '${name}' (it has ${Object.keys(out).join(', ')})`);
        continue;
      }
      if (got.dims.join(',') !== ref.shape.join(','))
        failures.push(`${file}: output '${name}' has shape [${got.dims}], the engine's [${ref.shape}]`);
      const w = worst(got.data, readFloats(ref.file, ref.shape));
      row.outputs[name] = { max_rel: w.rel, max_abs: w.maxAbs, max_ref: w.refMax };
      if (!(w.rel <= TOLERANCE)) {
        const cols = ref.shape[ref.shape.length - 1];
        failures.push(`${entry.name} (${file}): output '${name}' differs by ${w.rel.toExponential(2)} ` +
                      `(relative, tolerance ${TOLERANCE}) at [${Math.floor(w.index / cols)}, ${w.index % cols}]: ` +
                      `onnxruntime ${w.got}, engine ${w.ref}`);
      }
    }
    results.push(row);
    const diffs = Object.entries(row.outputs)
      .map(([n, d]) => `${n} ${d.max_rel.toExponential(2)} (|${n}| <= ${d.max_ref.toFixed(2)})`).join(', ');
    console.log(`${file.padEnd(34)} max relative difference: ${diffs}; ${ms.toFixed(1)} ms for ${row.batch}`);
  }
}
writeFileSync(join(dir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
if (failures.length) {
  console.error(`\nFAILED: ${failures.length} output(s) over the tolerance:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log(`\nall ${results.length} files agree with the engine within ${TOLERANCE} (relative)`);
