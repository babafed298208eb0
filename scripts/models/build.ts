// models:build — train the shipped models (catalog.ts) and write, for each <name>:
//   <out>/<name>/1/model.onnx   (graph contract: see graphs.ts)
//   <out>/<name>/model.json     (manifest: see manifest.ts)
// Usage: tsx scripts/models/build.ts [--out <dir>]   (default: the repository's models/)
// Output is byte-identical across runs; only existing files of these models are
// overwritten, other models in <out> are left alone.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATORS, MODELS, SEED, splitFor, type GeneratorSpec, type ModelSpec } from './catalog.ts';
import { bitsPerChar, predictedChars, prepareCorpus, trainCharNgram, unigramBitsPerChar } from './charlm.ts';
import { charNgramOnnx, classifierOnnx, regressorOnnx } from './graphs.ts';
import { DEFAULT_BATCHING, manifestJson, round4, type ModelManifest, type TabularManifest } from './manifest.ts';
import { featureReferences } from './reference.ts';
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
  /** One-line summary for the build log. */
  summary: string;
}

function build(spec: ModelSpec): Built {
  const data = spec.load();
  const split = splitFor(spec, data, SEED);
  const trainX = pick(data.x, split.train);
  const trainY = pick(data.y, split.train);
  const testX = pick(data.x, split.test);
  const testY = pick(data.y, split.test);
  const sgd = { ...spec.sgd, seed: SEED };
  const references = featureReferences(trainX);
  const common = {
    description: spec.description,
    // The allowed ranges come from the whole data set; the drift reference from the training split only.
    features: spec.ranges(data).map((range, j) => ({ ...range, reference: references[j]! })),
    defaultVersion: 1,
    batching: DEFAULT_BATCHING,
  };
  const graphText = { name: spec.name, docString: spec.description };

  if (spec.kind === 'CLASSIFIER') {
    const labels = data.labels;
    if (!labels) throw new Error(`${spec.name}: classifier data has no labels`);
    const model = trainSoftmaxRegression(trainX, trainY, labels.length, sgd);
    const heldOutAccuracy = round4(accuracy(predictAffine(model, testX).map(argmax), testY));
    const manifest: TabularManifest = {
      description: common.description,
      kind: 'CLASSIFIER',
      labels,
      features: common.features,
      output: 'probabilities',
      defaultVersion: common.defaultVersion,
      batching: common.batching,
      metrics: { heldOutAccuracy, trainRows: split.train.length, testRows: split.test.length, seed: SEED },
    };
    const summary = tabularSummary(`accuracy ${heldOutAccuracy}`, split.train.length, split.test.length);
    return { onnx: classifierOnnx(model, graphText, labels), manifest, summary };
  }

  const model = trainLinearRegression(trainX, trainY, sgd);
  const heldOutR2 = round4(rSquared(predictAffine(model, testX).map((v) => v[0]!), testY));
  const manifest: TabularManifest = {
    description: common.description,
    kind: 'REGRESSOR',
    features: common.features,
    output: 'value',
    defaultVersion: common.defaultVersion,
    batching: common.batching,
    metrics: { heldOutR2, trainRows: split.train.length, testRows: split.test.length, seed: SEED },
  };
  const summary = tabularSummary(`R² ${heldOutR2}`, split.train.length, split.test.length);
  return { onnx: regressorOnnx(model, graphText), manifest, summary };
}

function tabularSummary(metric: string, trainRows: number, testRows: number): string {
  return `held-out ${metric.padEnd(16)} train ${trainRows} / test ${testRows}`;
}

function buildGenerator(spec: GeneratorSpec): Built {
  const corpus = prepareCorpus(spec.load(), spec.ngram.minCharCount, spec.testFraction, SEED);
  const model = trainCharNgram(corpus.train, corpus.vocabulary, spec.ngram);
  const heldOutBitsPerChar = round4(bitsPerChar(model, corpus.test));
  const unigram = round4(unigramBitsPerChar(corpus.train, corpus.test, corpus.vocabulary.length));
  const manifest: ModelManifest = {
    description: spec.description,
    kind: 'GENERATOR',
    vocabulary: corpus.vocabulary,
    output: 'logits',
    defaultVersion: 1,
    metrics: {
      heldOutBitsPerChar,
      unigramBitsPerChar: unigram,
      trainChars: predictedChars(corpus.train),
      testChars: predictedChars(corpus.test),
      trainEntries: corpus.train.length,
      testEntries: corpus.test.length,
      seed: SEED,
    },
  };
  const onnx = charNgramOnnx(model, { name: spec.name, docString: spec.description });
  const summary =
    `held-out ${heldOutBitsPerChar} bits/char (unigram ${unigram}), vocabulary ${corpus.vocabulary.length} ` +
    `(${corpus.dropped} chars dropped), ${model.rows} contexts [${model.contextsPerLength.join(', ')}], ` +
    `hash ${model.hash.size} slots, ${(onnx.length / 1e6).toFixed(2)} MB`;
  return { onnx, manifest, summary };
}

function main(): void {
  const out = parseOut(process.argv.slice(2));
  const started = performance.now();
  const jobs: { name: string; build: () => Built }[] = [
    ...MODELS.map((spec) => ({ name: spec.name, build: () => build(spec) })),
    ...GENERATORS.map((spec) => ({ name: spec.name, build: () => buildGenerator(spec) })),
  ];
  for (const job of jobs) {
    const t0 = performance.now();
    const { onnx, manifest, summary } = job.build();
    const dir = join(out, job.name);
    mkdirSync(join(dir, '1'), { recursive: true });
    writeFileSync(join(dir, '1', 'model.onnx'), onnx);
    writeFileSync(join(dir, 'model.json'), manifestJson(manifest));
    const ms = (performance.now() - t0).toFixed(0);
    console.log(`${job.name.padEnd(14)} ${summary}  ${ms} ms`);
  }
  console.log(`wrote ${jobs.length} models to ${out} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

main();
