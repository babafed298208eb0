/**
 * Per-step cost of decoding with the KV cache against re-running the whole context, on the test
 * GPT graph (test/helpers/gpt-model.ts: decoder-with-past interface, 2 layers, 2 heads of 4),
 * in-process, one session (one intra-op thread, as the gateway runs it).
 *
 * At each context length L: the prompt (L tokens) is run once untimed, then `steps` tokens are
 * decoded and timed, each step
 * - cached: `createCausalLm(...).next()`, the gateway's own path: 1 token in, L.. positions of past;
 * - full: the same graph fed the whole context (L.. tokens) with an empty past.
 * One warm-up round, then `rounds` rounds over every context; a figure is the median over the
 * rounds of the mean ms per step.
 *
 *   npx tsx bench/kv-cache.ts [--rounds 20] [--steps 32]    prints the table alone
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { createCausalLm, stepFeeds } from '../src/inference/causal-lm.ts';
import { describeGenerator } from '../src/inference/generator-interface.ts';
import { manifestSchema } from '../src/inference/manifest.ts';
import type { ServedVersion, TensorSpec } from '../src/inference/types.ts';
import { characters, gptGraph, type GptOptions } from '../test/helpers/gpt-model.ts';
import { round } from './load.ts';

export interface KvCacheFigure {
  context: number;
  steps: number;
  /** `input_ids` tokens fed to the model per timed step, counted at the session. */
  cachedTokensPerStep: number;
  fullTokensPerStep: number;
  cachedMsPerStep: number;
  fullMsPerStep: number;
}

const GPT: GptOptions = { vocab: 24, layers: 2, heads: 2, headDim: 4, positions: 2048, seed: 5 };

/** A version's shapes and a `step` that counts the `input_ids` tokens fed to the session (the work per step, counted). */
function versionOf(session: ort.InferenceSession, fed: { tokens: number }): Pick<ServedVersion, 'inputs' | 'outputs' | 'step'> {
  const step = (feeds: Record<string, ort.Tensor>) => {
    fed.tokens += feeds.input_ids!.dims[1]!;
    return session.run(feeds);
  };
  const specs = (list: readonly ort.InferenceSession.ValueMetadata[]): TensorSpec[] =>
    list.map((m) => {
      if (!m.isTensor) throw new Error(`${m.name} is not a tensor`);
      return { name: m.name, datatype: m.type === 'int64' ? 'INT64' : 'FP32', shape: m.shape.map((d) => (typeof d === 'number' ? d : -1)), dimNames: m.shape.map((d) => (typeof d === 'string' && d !== '' ? d : null)) };
    });
  return { inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata), step };
}

export async function runKvCacheBench(contexts: number[] = [16, 64, 256, 1024], steps = 32, rounds = 20): Promise<KvCacheFigure[]> {
  const session = await ort.InferenceSession.create(gptGraph(GPT), { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  try {
    const fed = { tokens: 0 };
    const version = versionOf(session, fed);
    const generator = describeGenerator(manifestSchema.parse({ kind: 'GENERATOR', vocabulary: characters(GPT.vocab) }), version.inputs, version.outputs);
    const token = (i: number) => (i * 7 + 3) % GPT.vocab;
    const cached = contexts.map(() => [] as number[]);
    const full = contexts.map(() => [] as number[]);
    const tokens = contexts.map(() => ({ cached: 0, full: 0 }));
    // Rounds outside, contexts inside: a load spike from elsewhere on the machine hits every context alike.
    for (let r = 0; r <= rounds; r++) {
      for (const [c, context] of contexts.entries()) {
        const prompt = Array.from({ length: context }, (_, i) => token(i));
        const lm = createCausalLm(version, generator);
        await lm.start(prompt);
        fed.tokens = 0;
        let t = performance.now();
        for (let s = 0; s < steps; s++) await lm.next(token(context + s));
        const cachedMs = performance.now() - t;
        tokens[c]!.cached = fed.tokens / steps;
        const ids = [...prompt];
        fed.tokens = 0;
        t = performance.now();
        for (let s = 0; s < steps; s++) {
          ids.push(token(context + s));
          await version.step(stepFeeds(generator, ids, 0));
        }
        const fullMs = performance.now() - t;
        tokens[c]!.full = fed.tokens / steps;
        if (r === 0) continue; // warm-up round
        cached[c]!.push(cachedMs / steps);
        full[c]!.push(fullMs / steps);
      }
    }
    const figures = contexts.map((context, c) => ({
      context,
      steps,
      cachedTokensPerStep: tokens[c]!.cached,
      fullTokensPerStep: tokens[c]!.full,
      cachedMsPerStep: round(median(cached[c]!), 3),
      fullMsPerStep: round(median(full[c]!), 3),
    }));
    return figures;
  } finally {
    await session.release();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function renderKvCache(figures: KvCacheFigure[]): string[] {
  const rows = figures.map((f) =>
    `| ${f.context} | ${f.cachedTokensPerStep} | ${f.cachedMsPerStep} | ${f.fullTokensPerStep} | ${f.fullMsPerStep} | ${(f.fullMsPerStep / f.cachedMsPerStep).toFixed(1)}× |`,
  );
  return [
    `Test GPT graph (decoder with past: 2 layers, 2 heads of 4, vocabulary 24), one session, one thread. Each context: the prompt run once, then ${figures[0]?.steps ?? 0} next tokens timed (median over rounds of the mean ms per step); cached = the gateway's decoder (one token in, the past as presents), full = the same graph fed the whole context with an empty past.`,
    '',
    '| context (tokens) | cached: tokens fed per step | cached: ms per step | full: tokens fed per step (mean) | full: ms per step | full / cached |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, steps: { type: 'string' } } });
  const figures = await runKvCacheBench(undefined, Number(values.steps ?? 32), Number(values.rounds ?? 20));
  console.log(renderKvCache(figures).join('\n'));
}
