import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServedVersion } from '../src/inference/served-version.ts';
import type { TensorData } from '../src/inference/types.ts';
import { startGateway, type GraphQLResponse, type TestGateway } from './helpers/gateway.ts';
import { writeAdderModel, writeLayerStateModel, writeRowMixerModel, writeScaleModel } from './helpers/onnx-models.ts';

// Dynamic batching must never change an answer: every request fired in the same tick is
// compared, element by element, with the same request sent alone.

let gw: TestGateway;
beforeAll(async () => {
  const repo = mkdtempSync(join(tmpdir(), 'batching-safety-'));
  writeAdderModel(repo);
  writeRowMixerModel(repo);
  writeLayerStateModel(repo);
  writeScaleModel(repo);
  // The manifest decides: off for a model that names its batch dimension, asked for on a scalar.
  writeAdderModel(repo, 'adder_unbatched');
  writeFileSync(join(repo, 'adder_unbatched', 'model.json'), JSON.stringify({ batching: { maxBatchSize: 0 } }));
  writeScaleModel(repo, 'scale_asked');
  writeFileSync(join(repo, 'scale_asked', 'model.json'), JSON.stringify({ batching: { maxBatchSize: 8 } }));
  gw = await startGateway({ modelRepository: repo });
});
afterAll(() => gw.close());

const PREDICT = `mutation($model: String!, $inputs: [TensorInput!]!) {
  predict(input: { model: $model, inputs: $inputs }) { outputs { name datatype shape data } } }`;

/** In memory through Yoga, so requests fired together reach the batcher in the same event-loop turn. */
async function gql(query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse['body']> {
  const res = await gw.app.yoga.fetch('http://yoga/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return res.json();
}

const predict = (model: string, inputs: TensorData[]) => gql(PREDICT, { model, inputs });

/** Every request at once, then each again alone. */
async function togetherAndAlone(model: string, requests: TensorData[][]) {
  const together = await Promise.all(requests.map((r) => predict(model, r)));
  const alone = [];
  for (const r of requests) alone.push(await predict(model, r));
  return { together, alone };
}

const stats = async (model: string) =>
  (await gql(`query($m: String!) { model(name: $m) { versions { stats { requests batches } } } }`, { m: model })).data.model.versions[0].stats;

const batchingOf = async (model: string) =>
  (await gql(`query($m: String!) { model(name: $m) { versions { batching { enabled reason maxBatchSize } inputs { name dimNames } } } }`, { m: model }))
    .data.model.versions[0];

let seed = 11;
const random = () => Math.round(((seed = (seed * 16807) % 2147483647) / 2147483647) * 1000) / 100;
const fp32 = (name: string, shape: number[]): TensorData => ({ name, datatype: 'FP32', shape, data: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, random) });
const int64 = (name: string, shape: number[]): TensorData => ({ name, datatype: 'INT64', shape, data: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.round(random())) });
const adderRequest = (ab: number, n: number) => [fp32('a', [ab, 3]), fp32('b', [ab, 3]), int64('n', [n, 2])];

describe('a model that names one batch dimension (the adder: a, b, n all [batch, ...])', () => {
  it('refuses inputs that disagree on it with BAD_USER_INPUT, while its well-formed neighbours are stacked and get exactly a lone run', async () => {
    const good = Array.from({ length: 10 }, (_, i) => adderRequest(1 + (i % 3), 1 + (i % 3)));
    const bad = [adderRequest(2, 3), adderRequest(3, 2)];
    const before = await stats('adder');
    const rowsBefore = await gw.countRows();
    const together = await Promise.all([...bad, ...good].map((r) => predict('adder', r)));
    const after = await stats('adder');

    for (const [k, response] of together.slice(0, 2).entries()) {
      expect(response.data).toBeNull();
      expect(response.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
      expect(response.errors![0]!.extensions!.issues).toEqual([
        {
          path: ['input', 'inputs', 2, 'shape', 0],
          message: `input \`n\` has ${[3, 2][k]} rows but input \`a\` has ${[2, 3][k]}: the first dimension is the model's batch dimension and must agree across inputs`,
        },
      ]);
    }
    expect((await gw.countRows()) - rowsBefore).toBe(good.length);
    // The same-tick burst really was stacked, so the equality below is a test of batching.
    expect(after.requests - before.requests).toBe(good.length);
    expect(after.batches - before.batches).toBeLessThan(good.length);

    const alone = [];
    for (const r of good) alone.push(await predict('adder', r));
    expect(together.slice(2)).toEqual(alone);
    expect(alone[0]!.data.predict.outputs[1].data).toEqual(good[0]![2]!.data.map((v) => 2 * v));
    expect((await batchingOf('adder')).batching).toEqual({ enabled: true, reason: 'every input and output has first dimension `batch`', maxBatchSize: 64 });
  });

  it('never stacks a request whose inputs disagree, even when it reaches the batcher', async () => {
    // `run` skips request checking, so these reach the served version's batcher (batching is on for adder).
    const adder = gw.app.models.resolve('adder');
    expect(adder.batching.enabled).toBe(true);
    const path = gw.app.models.get('adder')!.versions[0]!.path;
    const unbatched = await loadServedVersion({ name: 'adder', version: 1, path, manifest: adder.manifest }, { log: pino({ level: 'silent' }), batching: false });
    try {
      // 8 rows of a and b, 8 of n in all: stacked by the first tensor's rows, they would fit.
      const requests = [adderRequest(2, 3), adderRequest(3, 2), adderRequest(1, 1), adderRequest(2, 2)];
      const together = await Promise.all(requests.map((r) => adder.run(r)));
      for (const [i, r] of requests.entries()) expect(together[i]).toEqual(await unbatched.run(r));
    } finally {
      await unbatched.close();
    }
  });
});

describe('models whose rows are not independent are not batched, and say why', () => {
  it('a row-mixing model with an unnamed first dimension (y = x - mean(x, axis 0))', async () => {
    const requests = Array.from({ length: 12 }, (_, i) => [fp32('x', [1 + (i % 3), 3])]);
    const { together, alone } = await togetherAndAlone('row_mixer', requests);
    expect(together).toEqual(alone);
    expect(alone.every((r) => r.data.predict.outputs[0].shape[0] === r.data.predict.outputs[0].data.length / 3)).toBe(true);
    expect(await batchingOf('row_mixer')).toEqual({
      batching: { enabled: false, reason: 'input `x` has an unnamed first dimension', maxBatchSize: 0 },
      inputs: [{ name: 'x', dimNames: [null, null] }],
    });
  });

  it('a state whose batch axis is not first ([layers, batch, hidden])', async () => {
    // One layer: stacked along the first axis, the states would fit and be summed together.
    const requests = Array.from({ length: 12 }, () => [fp32('x', [1, 4]), fp32('state', [1, 1, 4])]);
    const { together, alone } = await togetherAndAlone('layer_state', requests);
    expect(together).toEqual(alone);
    expect(await batchingOf('layer_state')).toEqual({
      batching: { enabled: false, reason: 'input `state` has its batch axis `batch` at position 1, not first', maxBatchSize: 0 },
      inputs: [
        { name: 'x', dimNames: ['batch', null] },
        { name: 'state', dimNames: ['layers', 'batch', null] },
      ],
    });
  });

  it('a scalar input', async () => {
    const requests = Array.from({ length: 12 }, () => [fp32('x', [1, 2]), fp32('scale', [])]);
    const { together, alone } = await togetherAndAlone('scale', requests);
    expect(together).toEqual(alone);
    const [x, scale] = requests[0]!;
    expect(alone[0]!.data.predict.outputs[0].data).toEqual(x!.data.map((v) => Math.fround(Math.fround(v) * Math.fround(scale!.data[0]!))));
    expect((await batchingOf('scale')).batching).toEqual({ enabled: false, reason: 'input `scale` is a scalar', maxBatchSize: 0 });
  });
});

describe('model.json batching decides for the model', () => {
  it('maxBatchSize 0 turns it off for a model that names one batch dimension, which still refuses disagreeing inputs', async () => {
    expect((await batchingOf('adder_unbatched')).batching).toEqual({ enabled: false, reason: 'model.json batching.maxBatchSize is 0', maxBatchSize: 0 });
    const before = await stats('adder_unbatched');
    const { together, alone } = await togetherAndAlone('adder_unbatched', Array.from({ length: 6 }, (_, i) => adderRequest(1 + (i % 2), 1 + (i % 2))));
    expect(together).toEqual(alone);
    const after = await stats('adder_unbatched');
    expect(after.batches - before.batches).toBe(after.requests - before.requests);
    const refused = await predict('adder_unbatched', adderRequest(2, 3));
    expect(refused.errors![0]!.extensions!.issues[0].path).toEqual(['input', 'inputs', 2, 'shape', 0]);
  });

  it('asked for on a model with a scalar input, it stays off with the reason and a warning', async () => {
    const reason = 'model.json batching.maxBatchSize is 8, but input `scale` is a scalar';
    expect((await batchingOf('scale_asked')).batching).toEqual({ enabled: false, reason, maxBatchSize: 0 });
    expect(gw.logs.filter((l) => l.level === 40 && l.model === 'scale_asked')).toMatchObject([
      { version: 1, reason: 'model.json asks for batching, but input `scale` is a scalar' },
    ]);
  });
});
