// Check the written models with onnxruntime (the runtime the server uses):
// graph contract (input/output names, dynamic batch), manifest consistency,
// the training reference histograms, and that the held-out metric recomputed through ONNX
// matches model.json.
// For generators also: causality, batching and padding invariance, and sample
// text decoded autoregressively through the session (printed).
// Usage: tsx scripts/models/verify.ts [--dir <models dir>]   exits 1 on any failure.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { GENERATORS, MODELS, splitFor, type GeneratorSpec } from './catalog.ts';
import { encodeText, predictedChars, prepareCorpus, unigramBitsPerChar } from './charlm.ts';
import { GENERATOR_ATTENTION_MASK, GENERATOR_INPUT_IDS, GENERATOR_OUTPUT, INPUT_NAME } from './graphs.ts';
import type { GeneratorManifest, ModelManifest, TabularManifest } from './manifest.ts';
import { mulberry32, type Rng } from './prng.ts';
import { featureReferences } from './reference.ts';
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

/** Prompts for the printed samples. */
const SAMPLE_PROMPTS = ['The ', 'A man ', 'Q: '];
const SAMPLE_CHARS = 120;
const SAMPLE_TEMPERATURE = 0.8;

interface Row {
  model: string;
  kind: string;
  metric: string;
  manifest: number;
  onnx: number;
  rows: string;
  ok: boolean;
}

/** One token sequence per batch row, each [length, V] of logits; rows must share one length. */
async function runGenerator(
  session: ort.InferenceSession,
  ids: readonly number[][],
  mask?: readonly number[][],
): Promise<Float32Array[][]> {
  const length = ids[0]!.length;
  if (ids.some((row) => row.length !== length)) throw new Error('ragged batch');
  const dims = [ids.length, length];
  const feeds = {
    [GENERATOR_INPUT_IDS]: new ort.Tensor('int64', BigInt64Array.from(ids.flat(), BigInt), dims),
    [GENERATOR_ATTENTION_MASK]: new ort.Tensor(
      'int64',
      BigInt64Array.from(mask ? mask.flat() : ids.flat().map(() => 1), BigInt),
      dims,
    ),
  };
  const result = (await session.run(feeds))[GENERATOR_OUTPUT];
  if (!result) throw new Error(`no output ${GENERATOR_OUTPUT}`);
  const [b, s, v] = result.dims as number[];
  if (b !== ids.length || s !== length) {
    throw new Error(`logits dims [${result.dims.join(', ')}] for input [${dims.join(', ')}]`);
  }
  const data = result.data as Float32Array;
  return Array.from({ length: b }, (_, i) =>
    Array.from({ length: s }, (_, t) => data.subarray((i * s + t) * v!, (i * s + t + 1) * v!)),
  );
}

function maxAbsDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let worst = 0;
  a.forEach((row, t) => row.forEach((x, k) => (worst = Math.max(worst, Math.abs(x - b[t]![k]!)))));
  return worst;
}

/** Index drawn from softmax(logits / temperature); temperature 0 means argmax. */
function sampleToken(logits: Float32Array, temperature: number, rng: Rng): number {
  if (temperature === 0) return argmax(logits);
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x / temperature);
  const weights = Array.from(logits, (x) => Math.exp(x / temperature - max));
  let u = rng() * weights.reduce((a, b) => a + b, 0);
  for (let k = 0; k < weights.length; k++) if ((u -= weights[k]!) < 0) return k;
  return weights.length - 1;
}

/** Autoregressive decoding: every step reruns the whole sequence and reads the last position. */
async function generate(
  session: ort.InferenceSession,
  prompt: number[],
  steps: number,
  temperature: number,
  rng: Rng,
): Promise<number[]> {
  const ids = prompt.slice();
  for (let i = 0; i < steps; i++) {
    const [rows] = await runGenerator(session, [ids]);
    ids.push(sampleToken(rows![rows!.length - 1]!, temperature, rng));
  }
  return ids;
}

async function verifyGenerator(dir: string, spec: GeneratorSpec, fail: (msg: string) => void): Promise<Row> {
  const manifest = JSON.parse(readFileSync(join(dir, spec.name, 'model.json'), 'utf8')) as ModelManifest;
  if (manifest.kind !== 'GENERATOR') throw new Error(`${spec.name}: kind ${manifest.kind}, expected GENERATOR`);
  const m: GeneratorManifest = manifest;
  const session = await ort.InferenceSession.create(join(dir, spec.name, String(m.defaultVersion), 'model.onnx'));
  const V = m.vocabulary.length;

  if ([...session.inputNames].sort().join() !== [GENERATOR_ATTENTION_MASK, GENERATOR_INPUT_IDS].join()) {
    fail(`inputs ${session.inputNames.join()}`);
  }
  if (session.outputNames.join() !== GENERATOR_OUTPUT || m.output !== GENERATOR_OUTPUT) {
    fail(`outputs ${session.outputNames.join()} / manifest ${m.output}`);
  }
  if (m.vocabulary.some((ch) => [...ch].length !== 1) || new Set(m.vocabulary).size !== V) {
    fail('vocabulary entries must be distinct single characters');
  }

  // The held-out entries, re-derived from the data set and the manifest's seed.
  const { seed, testEntries, trainEntries, testChars, trainChars } = m.metrics;
  const corpus = prepareCorpus(spec.load(), spec.ngram.minCharCount, spec.testFraction, seed);
  if (corpus.vocabulary.join('') !== m.vocabulary.join('')) fail('vocabulary differs from the one rebuilt from the data');
  if (corpus.test.length !== testEntries || corpus.train.length !== trainEntries) fail('train/test entry counts');
  if (predictedChars(corpus.test) !== testChars || predictedChars(corpus.train) !== trainChars) {
    fail('train/test char counts');
  }
  const unigram = unigramBitsPerChar(corpus.train, corpus.test, V);
  if (Math.abs(unigram - m.metrics.unigramBitsPerChar) > TOLERANCE) fail(`unigram ${unigram} != manifest`);

  // Held-out bits/char through the session: each entry alone, position t scores token t + 1.
  let nats = 0;
  let worstNormalisation = 0;
  for (const entry of corpus.test) {
    const [rows] = await runGenerator(session, [entry]);
    rows!.forEach((logits, t) => {
      if (logits.length !== V) fail(`logits width ${logits.length} != vocabulary ${V}`);
      worstNormalisation = Math.max(worstNormalisation, Math.abs(logits.reduce((a, x) => a + Math.exp(x), 0) - 1));
      if (t + 1 < entry.length) nats -= logits[entry[t + 1]!]!;
    });
  }
  const bits = nats / Math.LN2 / predictedChars(corpus.test);
  const ok = Math.abs(bits - m.metrics.heldOutBitsPerChar) <= TOLERANCE;
  if (!ok) fail(`held-out bits/char ${bits} != manifest ${m.metrics.heldOutBitsPerChar}`);
  if (worstNormalisation > 1e-4) fail(`exp(logits) rows sum to 1 ± ${worstNormalisation}`);

  // A single token is a valid input (the graph pads its context internally).
  const [first] = await runGenerator(session, [[corpus.test[0]![0]!]]);
  if (first!.length !== 1 || first![0]!.length !== V) fail('length-1 input');

  // Causality: changing tokens after position k leaves logits at positions <= k unchanged.
  const long = corpus.test.filter((e) => e.length >= 48).map((e) => e.slice(0, 48));
  if (long.length < 2) throw new Error(`${spec.name}: need two held-out entries of 48+ characters`);
  const [base, other] = [long[0]!, long[1]!];
  const [baseRows] = await runGenerator(session, [base]);
  for (const k of [0, 1, 5, 20, 46]) {
    const changed = base.map((id, t) => (t <= k ? id : (id + 7 + t) % V));
    const [rows] = await runGenerator(session, [changed]);
    if (maxAbsDiff(rows!.slice(0, k + 1), baseRows!.slice(0, k + 1)) !== 0) {
      fail(`not causal: changing tokens after position ${k} moved earlier logits`);
    }
    if (k < 40 && maxAbsDiff(rows!.slice(k + 6), baseRows!.slice(k + 6)) === 0) fail(`changes after ${k} had no effect`);
  }

  // Batching: a batch of two equals two batch-1 runs; a left-padded row (attention_mask 0) equals the unpadded run.
  const [otherRows] = await runGenerator(session, [other]);
  const pair = await runGenerator(session, [base, other]);
  const batchDiff = Math.max(maxAbsDiff(pair[0]!, baseRows!), maxAbsDiff(pair[1]!, otherRows!));
  if (batchDiff > 1e-6) fail(`batch of 2 differs from batch-1 runs by ${batchDiff}`);
  const short = other.slice(0, 30);
  const padding = 18;
  const padded = await runGenerator(
    session,
    [base, [...new Array<number>(padding).fill(short[0]!), ...short]],
    [base.map(() => 1), [...new Array<number>(padding).fill(0), ...short.map(() => 1)]],
  );
  const padDiff = Math.max(
    maxAbsDiff(padded[0]!, baseRows!),
    maxAbsDiff(padded[1]!.slice(padding), otherRows!.slice(0, short.length)),
  );
  if (padDiff > 1e-6) fail(`left padding with attention_mask 0 changes real positions by ${padDiff}`);

  console.log(
    `${spec.name}: held-out ${bits.toFixed(4)} bits/char through onnxruntime (manifest ${m.metrics.heldOutBitsPerChar}, ` +
      `unigram ${m.metrics.unigramBitsPerChar}); causal; batch/padding invariant (max |Δ| ${Math.max(batchDiff, padDiff)})`,
  );
  const rng = mulberry32(seed);
  for (const [label, temperature] of [['greedy', 0], [`T=${SAMPLE_TEMPERATURE}`, SAMPLE_TEMPERATURE]] as const) {
    for (const prompt of SAMPLE_PROMPTS) {
      const ids = encodeText(prompt, m.vocabulary).ids;
      const out = await generate(session, ids, SAMPLE_CHARS, temperature, rng);
      const text = out.map((id) => m.vocabulary[id]).join('');
      console.log(`--- ${spec.name} ${label}, prompt ${JSON.stringify(prompt)}:\n${text}`);
    }
  }
  await session.release();
  return {
    model: spec.name,
    kind: m.kind,
    metric: 'heldOutBitsPerChar',
    manifest: m.metrics.heldOutBitsPerChar,
    onnx: Number(bits.toFixed(6)),
    rows: `${trainEntries}/${testEntries} entries`,
    ok,
  };
}

async function main(): Promise<void> {
  const dir = parseDir(process.argv.slice(2));
  const problems: string[] = [];
  const table: Row[] = [];
  const fail = (model: string, msg: string) => problems.push(`${model}: ${msg}`);

  for (const spec of MODELS) {
    const manifest = JSON.parse(readFileSync(join(dir, spec.name, 'model.json'), 'utf8')) as TabularManifest;
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
    // The drift references are the training split's histograms, rebuilt from the seed.
    const references = featureReferences(pick(data.x, split.train));
    const differing = manifest.features.filter((f, j) => JSON.stringify(f.reference) !== JSON.stringify(references[j]));
    if (differing.length) fail(spec.name, `reference histograms differ from the training split's: ${differing.map((f) => f.name).join(', ')}`);
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

  for (const spec of GENERATORS) table.push(await verifyGenerator(dir, spec, (msg) => fail(spec.name, msg)));

  console.table(table);
  if (problems.length) {
    console.error(`verify FAILED (${dir}):\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log(`verify OK: ${table.length} models in ${dir}`);
  }
}

await main();
