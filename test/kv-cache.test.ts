import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sampleToken, seededRandom } from '../src/inference/sampling.ts';
import { subscribeRawSse } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { characters, writeGptModel, type GptOptions } from './helpers/gpt-model.ts';

const GPT: GptOptions = { vocab: 24, layers: 2, heads: 2, headDim: 4, seed: 5 };
const VOCABULARY = characters(GPT.vocab);
const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { text tokens finishReason prediction { id outputs { data } } } }`;
const VERSIONS = `{ models { name versions { status error } } }`;

let gw: TestGateway;
let gptFile: string;
beforeAll(async () => {
  const repo = mkdtempSync(join(tmpdir(), 'kv-cache-'));
  gptFile = writeGptModel(repo, 'gpt', GPT);
  writeGptModel(repo, 'gpt_short_vocabulary', GPT, 20);
  writeGptModel(repo, 'gpt_dynamic_heads', { ...GPT, dynamicHeads: true });
  writeGptModel(repo, 'gpt_dynamic_width', { ...GPT, dynamicVocab: true }, 20);
  gw = await startGateway({ modelRepository: repo });
});
afterAll(() => gw.close());

const statusOf = async (name: string) => {
  const models = (await gw.gql(VERSIONS)).body.data.models as Array<{ name: string; versions: Array<{ status: string; error: string | null }> }>;
  return models.find((m) => m.name === name)!.versions[0]!;
};

/**
 * Reference decoding: the same graph run by onnxruntime directly with an empty past and the
 * whole sequence at every step (no cache), sampled with the gateway's sampler and seed.
 */
async function fullContextDecode(prompt: string, options: { maxTokens: number; temperature: number; topK?: number; seed: number }): Promise<number[]> {
  const session = await ort.InferenceSession.create(gptFile);
  try {
    const ids = [...prompt].map((c) => VOCABULARY.indexOf(c));
    const random = seededRandom(options.seed);
    const generated: number[] = [];
    const int64 = (values: number[]) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), [1, values.length]);
    const empty = new ort.Tensor('float32', new Float32Array(0), [1, GPT.heads!, 0, GPT.headDim!]);
    while (generated.length < options.maxTokens) {
      const feeds: Record<string, ort.Tensor> = { input_ids: int64(ids), attention_mask: int64(ids.map(() => 1)), position_ids: int64(ids.map((_, i) => i)) };
      for (let l = 0; l < GPT.layers!; l++) for (const kind of ['key', 'value']) feeds[`past_key_values.${l}.${kind}`] = empty;
      const logits = (await session.run(feeds)).logits!.data as Float32Array;
      const next = sampleToken(logits.subarray((ids.length - 1) * GPT.vocab, ids.length * GPT.vocab), options, random);
      ids.push(next);
      generated.push(next);
    }
    return generated;
  } finally {
    await session.release();
  }
}

const text = (ids: number[]) => ids.map((id) => VOCABULARY[id]).join('');

describe('a decoder-with-past export (KV cache)', () => {
  it.each([
    ['greedy', { temperature: 0, seed: 1 }],
    ['seeded sampling', { temperature: 1, seed: 11 }],
    ['seeded top-k sampling', { temperature: 0.7, topK: 5, seed: 4 }],
  ])('%s: cached decoding gives exactly the tokens of full-context decoding', async (_name, sampling) => {
    const input = { model: 'gpt', prompt: 'the cat sat on', maxTokens: 48, ...sampling };
    const expected = await fullContextDecode(input.prompt, input);
    expect(new Set(expected).size).toBeGreaterThan(3); // not a degenerate loop on one token

    const res = await gw.gql(GENERATE, { input });
    expect(res.body.errors).toBeUndefined();
    const g = res.body.data.generate;
    expect(g).toMatchObject({ text: text(expected), tokens: 48, finishReason: 'LENGTH' });
    expect(g.prediction.outputs[0].data).toEqual(expected);
  });

  it('streams the same tokens over SSE', async () => {
    const input = { model: 'gpt', prompt: 'a dog', maxTokens: 30, temperature: 1.2, seed: 99 };
    const expected = await fullContextDecode(input.prompt, input);
    const sub = subscribeRawSse(gw.url, `subscription($input: GenerateInput!) { generate(input: $input) { token done } }`, { input });
    await sub.done;
    const tokens = sub.events.map((e) => e.data!.generate).filter((e: any) => !e.done).map((e: any) => e.token);
    expect(tokens.join('')).toBe(text(expected));
  });

  it('runs one token per step after the prompt: the work per step does not grow with the context', async () => {
    // Every ONNX session's run (the gateway runs in this process; only this generation runs meanwhile).
    const run = vi.spyOn((ort.InferenceSession as unknown as { prototype: ort.InferenceSession }).prototype, 'run');
    try {
      const prompt = 'one two three four';
      const res = await gw.gql(GENERATE, { input: { model: 'gpt', prompt, maxTokens: 60, temperature: 1, seed: 5 } });
      expect(res.body.data.generate.tokens).toBe(60);
      const fed = run.mock.calls.map(([feeds]) => {
        const f = feeds as Record<string, ort.Tensor>;
        return {
          ids: f.input_ids!.dims[1],
          mask: f.attention_mask!.dims[1],
          positions: Array.from(f.position_ids!.data as BigInt64Array, Number),
          past: [0, 1].flatMap((l) => ['key', 'value'].map((k) => f[`past_key_values.${l}.${k}`]!.dims[2])),
        };
      });
      const p = prompt.length;
      expect(fed).toHaveLength(60);
      expect(fed[0]).toEqual({ ids: p, mask: p, positions: [...Array(p).keys()], past: [0, 0, 0, 0] });
      fed.slice(1).forEach((step, k) => {
        const pastLength = p + k;
        expect(step).toEqual({ ids: 1, mask: pastLength + 1, positions: [pastLength], past: [pastLength, pastLength, pastLength, pastLength] });
      });
    } finally {
      run.mockRestore();
    }
  });
});

describe('generator interfaces the gateway cannot serve', () => {
  it('a vocabulary whose length differs from the logits width is FAILED at load, naming both', async () => {
    expect(await statusOf('gpt_short_vocabulary')).toEqual({
      status: 'FAILED',
      error: 'model.json lists 20 vocabulary entries but output `logits` has 24 (its last dimension)',
    });
  });

  it('a cache input whose heads dimension is dynamic is FAILED at load with the reason', async () => {
    const { status, error } = await statusOf('gpt_dynamic_heads');
    expect(status).toBe('FAILED');
    expect(error).toBe(
      "input `past_key_values.0.key` must be float32 [batch, heads, past_length, head_dim] with static heads and head_dim (they size the first step's empty cache); the model has FP32 [?, ?, ?, 4]",
    );
  });

  it('a dynamic logits width that differs from the vocabulary fails the first step and then the version', async () => {
    expect(await statusOf('gpt_dynamic_width')).toEqual({ status: 'READY', error: null });
    const rows = await gw.countRows();
    const reason = 'model.json lists 20 vocabulary entries but output `logits` has 24 (its last dimension)';
    const fail = vi.spyOn(gw.app.models, 'fail');
    const res = await gw.gql(GENERATE, { input: { model: 'gpt_dynamic_width', prompt: 'abc', maxTokens: 5 } });
    expect(res.body.errors![0]!.extensions).toMatchObject({ code: 'MODEL_NOT_READY', status: 'FAILED' });
    expect(res.body.errors![0]!.message).toContain(reason);
    expect(fail.mock.calls).toEqual([['gpt_dynamic_width', 1, reason]]); // the registry, not causal-lm, changes the status
    fail.mockRestore();
    expect(gw.app.models.get('gpt_dynamic_width')!.versions[0]!.served!.stats.runs).toBe(1);
    expect(await statusOf('gpt_dynamic_width')).toEqual({ status: 'FAILED', error: reason });
    expect(await gw.countRows()).toBe(rows);
  });
});
