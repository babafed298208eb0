// Check the written models with onnxruntime (the runtime the server uses):
// graph contract (input/output names, dynamic batch), manifest consistency,
// and that the held-out metric recomputed through ONNX matches model.json.
// Usage: tsx scripts/models/verify.ts [--dir <models dir>]   exits 1 on any failure.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { MODELS, splitFor } from './catalog.ts';
import { INPUT_NAME } from './graphs.ts';
import type { ModelManifest } from './manifest.ts';
import { pick } from './split.ts';
import { accuracy, argmax, rSquared } from './train.ts';

const TOLERANCE = 1e-3;
const IRIS_SETOSA_SAMPLE = [5.1, 3.5, 1.4, 0.2];

function parseDir(argv: readonly string[]): string {
  const i = argv.indexOf('--dir');
  if (i === -1) return fileURLToPath(new URL('../../models/', import.meta.url));
  const dir = argv[i + 1];
  if (!dir || dir.startsWith('--')) throw new Error('--dir needs a directory');
  return resolve(dir);
}

/** Runs rows through the session; returns one output row per input row. */
async function run(session: ort.InferenceSession, output: string, rows: readonly number[][]): Promise<number[][]> {
  const width = rows[0]!.length;
  const input = new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, width]);
  const result = (await session.run({ [INPUT_NAME]: input }))[output];
  if (!result) throw new Error(`no output ${output}`);
  const [n, k] = result.dims as number[];
  if (n !== rows.length) throw new Error(`output batch ${n} != input batch ${rows.length}`);
  const data = result.data as Float32Array;
  return Array.from({ length: n }, (_, i) => Array.from(data.subarray(i * k!, (i + 1) * k!)));
}

interface Row {
  model: string;
  kind: string;
  metric: string;
  manifest: number;
  onnx: number;
  rows: string;
  ok: boolean;
}

async function main(): Promise<void> {
  const dir = parseDir(process.argv.slice(2));
  const problems: string[] = [];
  const table: Row[] = [];
  const fail = (model: string, msg: string) => problems.push(`${model}: ${msg}`);

  for (const spec of MODELS) {
    const manifest = JSON.parse(readFileSync(join(dir, spec.name, 'model.json'), 'utf8')) as ModelManifest;
    const session = await ort.InferenceSession.create(
      join(dir, spec.name, String(manifest.defaultVersion), 'model.onnx'),
    );
    const data = spec.load();

    if (session.inputNames.join() !== INPUT_NAME) fail(spec.name, `inputs ${session.inputNames.join()}`);
    if (session.outputNames.join() !== manifest.output) fail(spec.name, `outputs ${session.outputNames.join()}`);
    if (manifest.kind !== spec.kind) fail(spec.name, `kind ${manifest.kind}`);
    if (manifest.features.map((f) => f.name).join() !== data.featureNames.join()) fail(spec.name, 'feature names');
    const outside = data.x.filter((row) => row.some((v, j) => v < manifest.features[j]!.min || v > manifest.features[j]!.max));
    if (outside.length) fail(spec.name, `${outside.length} data rows outside the manifest feature ranges`);

    const { seed, trainRows, testRows } = manifest.metrics;
    const split = splitFor(spec, data, seed);
    if (split.train.length !== trainRows || split.test.length !== testRows) fail(spec.name, 'train/test row counts');
    const testX = pick(data.x, split.test);
    const testY = pick(data.y, split.test);
    const out = await run(session, manifest.output, testX);
    const single = await run(session, manifest.output, testX.slice(0, 1));
    if (single[0]!.some((v, k) => Math.abs(v - out[0]![k]!) > 1e-5)) fail(spec.name, 'batch of 1 differs from full batch');

    let expected: number;
    let actual: number;
    if (manifest.kind === 'CLASSIFIER') {
      if (manifest.labels.join() !== (data.labels ?? []).join()) fail(spec.name, 'labels');
      if (out.some((p) => p.length !== manifest.labels.length || Math.abs(p.reduce((a, b) => a + b, 0) - 1) > 1e-4)) {
        fail(spec.name, 'probabilities do not have one column per label summing to 1');
      }
      expected = manifest.metrics.heldOutAccuracy;
      actual = accuracy(out.map(argmax), testY);
    } else {
      if (out.some((v) => v.length !== 1)) fail(spec.name, 'value must have exactly one column');
      expected = manifest.metrics.heldOutR2;
      actual = rSquared(
        out.map((v) => v[0]!),
        testY,
      );
    }
    const ok = Math.abs(actual - expected) <= TOLERANCE;
    if (!ok) fail(spec.name, `held-out metric ${actual} != manifest ${expected}`);
    table.push({
      model: spec.name,
      kind: manifest.kind,
      metric: manifest.kind === 'CLASSIFIER' ? 'heldOutAccuracy' : 'heldOutR2',
      manifest: expected,
      onnx: Number(actual.toFixed(6)),
      rows: `${trainRows}/${testRows}`,
      ok,
    });

    if (spec.name === 'iris') {
      const [probabilities] = await run(session, manifest.output, [IRIS_SETOSA_SAMPLE]);
      const top = argmax(probabilities!);
      const label = manifest.kind === 'CLASSIFIER' ? manifest.labels[top] : '?';
      console.log(
        `iris [${IRIS_SETOSA_SAMPLE.join(', ')}] → ${label} (p = ${probabilities![top]!.toFixed(4)}); ` +
          `probabilities [${probabilities!.map((p) => p.toFixed(4)).join(', ')}]`,
      );
      if (label !== 'setosa' || probabilities![top]! <= 0.9) fail('iris', 'sample is not setosa with p > 0.9');
    }
    await session.release();
  }

  console.table(table);
  if (problems.length) {
    console.error(`verify FAILED (${dir}):\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log(`verify OK: ${table.length} models in ${dir}`);
  }
}

await main();
