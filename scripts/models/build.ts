// models:build — train the shipped models and write, for each <name>:
//   <out>/<name>/1/model.onnx   (graph contract: see graphs.ts)
//   <out>/<name>/model.json     (manifest: see manifest.ts)
// Usage: tsx scripts/models/build.ts [--out <dir>]   (default: the repository's models/)
// Output is byte-identical across runs; only existing files of these models are
// overwritten, other models in <out> are left alone.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODELS, SEED, splitFor, type ModelSpec } from './catalog.ts';
import { classifierOnnx, regressorOnnx } from './graphs.ts';
import { DEFAULT_BATCHING, manifestJson, round4, type ModelManifest } from './manifest.ts';
import { pick } from './split.ts';
import {
  accuracy,
  argmax,
  predictAffine,
  rSquared,
  trainLinearRegression,
  trainSoftmaxRegression,
} from './train.ts';

const DEFAULT_OUT = fileURLToPath(new URL('../../models/', import.meta.url));

function parseOut(argv: readonly string[]): string {
  const i = argv.indexOf('--out');
  if (i === -1) return DEFAULT_OUT;
  const dir = argv[i + 1];
  if (!dir || dir.startsWith('--')) throw new Error('--out needs a directory');
  return resolve(dir);
}

interface Built {
  onnx: Uint8Array;
  manifest: ModelManifest;
  metric: string;
}

function build(spec: ModelSpec): Built {
  const data = spec.load();
  const split = splitFor(spec, data, SEED);
  const trainX = pick(data.x, split.train);
  const trainY = pick(data.y, split.train);
  const testX = pick(data.x, split.test);
  const testY = pick(data.y, split.test);
  const sgd = { ...spec.sgd, seed: SEED };
  const common = {
    description: spec.description,
    features: spec.ranges(data),
    defaultVersion: 1,
    batching: DEFAULT_BATCHING,
  };
  const graphText = { name: spec.name, docString: spec.description };

  if (spec.kind === 'CLASSIFIER') {
    const labels = data.labels;
    if (!labels) throw new Error(`${spec.name}: classifier data has no labels`);
    const model = trainSoftmaxRegression(trainX, trainY, labels.length, sgd);
    const heldOutAccuracy = round4(accuracy(predictAffine(model, testX).map(argmax), testY));
    const manifest: ModelManifest = {
      description: common.description,
      kind: 'CLASSIFIER',
      labels,
      features: common.features,
      output: 'probabilities',
      defaultVersion: common.defaultVersion,
      batching: common.batching,
      metrics: { heldOutAccuracy, trainRows: split.train.length, testRows: split.test.length, seed: SEED },
    };
    return { onnx: classifierOnnx(model, graphText, labels), manifest, metric: `accuracy ${heldOutAccuracy}` };
  }

  const model = trainLinearRegression(trainX, trainY, sgd);
  const heldOutR2 = round4(rSquared(predictAffine(model, testX).map((v) => v[0]!), testY));
  const manifest: ModelManifest = {
    description: common.description,
    kind: 'REGRESSOR',
    features: common.features,
    output: 'value',
    defaultVersion: common.defaultVersion,
    batching: common.batching,
    metrics: { heldOutR2, trainRows: split.train.length, testRows: split.test.length, seed: SEED },
  };
  return { onnx: regressorOnnx(model, graphText), manifest, metric: `R² ${heldOutR2}` };
}

function main(): void {
  const out = parseOut(process.argv.slice(2));
  const started = performance.now();
  for (const spec of MODELS) {
    const t0 = performance.now();
    const { onnx, manifest, metric } = build(spec);
    const dir = join(out, spec.name);
    mkdirSync(join(dir, '1'), { recursive: true });
    writeFileSync(join(dir, '1', 'model.onnx'), onnx);
    writeFileSync(join(dir, 'model.json'), manifestJson(manifest));
    const { trainRows, testRows } = manifest.metrics;
    const ms = (performance.now() - t0).toFixed(0);
    console.log(`${spec.name.padEnd(14)} held-out ${metric.padEnd(16)} train ${trainRows} / test ${testRows}  ${ms} ms`);
  }
  console.log(`wrote ${MODELS.length} models to ${out} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

main();
