import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { writeReflectPadModel } from './helpers/onnx-models.ts';

// reflect_pad rejects inputs shorter than 3 along `time`, so the default warm-up
// (zeros, dynamic dimensions 1) fails on a model that is perfectly valid.
const WARMUPS: Record<string, unknown> = {
  warm_data: { inputs: [{ name: 'x', shape: [1, 4], data: [1, 2, 3, 4] }] },
  warm_random: { inputs: [{ name: 'x', shape: [2, 5], data: 'random' }] },
  warm_too_short: { inputs: [{ name: 'x', shape: [1, 1] }] },
  warm_wrong_inputs: { inputs: [{ name: 'y', shape: [4] }] },
  warm_bad_shape: { inputs: [{ name: 'x', shape: [4], data: 'zeros' }] },
  warm_bad_data: { inputs: [{ name: 'x', shape: [1, 4], data: [1, 2, 3] }] },
  warm_unknown_key: { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32' }] },
};

let gw: TestGateway;
beforeAll(async () => {
  const repo = mkdtempSync(join(tmpdir(), 'warmup-'));
  writeReflectPadModel(repo, 'reflect_pad');
  for (const [name, warmup] of Object.entries(WARMUPS)) {
    writeReflectPadModel(repo, name);
    writeFileSync(join(repo, name, 'model.json'), JSON.stringify({ warmup }));
  }
  gw = await startGateway({ modelRepository: repo });
});
afterAll(() => gw.close());

const versionOf = async (model: string) =>
  (await gw.gql(`query($m: String!) { model(name: $m) { versions { status error } } }`, { m: model })).body.data.model.versions[0];
const warnings = (model: string) => gw.logs.filter((l) => l.level === 40 && l.model === model);

describe('warm-up', () => {
  it('without model.json warmup: a failing zero warm-up is a warning, the version is READY and serves real requests', async () => {
    expect(await versionOf('reflect_pad')).toEqual({ status: 'READY', error: null });
    const [warning, ...more] = warnings('reflect_pad');
    expect(more).toEqual([]);
    expect(warning).toMatchObject({ model: 'reflect_pad', version: 1, msg: expect.stringContaining('warm-up on zeros') });
    expect(warning!.reason).toContain('Pad reflect');

    const res = await gw.gql(`mutation { predict(input: { model: "reflect_pad", inputs: [{ name: "x", datatype: FP32, shape: [1, 3], data: [1, 2, 3] }] }) { outputs { shape data } } }`);
    expect(res.body.data.predict.outputs).toEqual([{ shape: [1, 7], data: [3, 2, 1, 2, 3, 2, 1] }]);
  });

  it.each(['warm_data', 'warm_random'])('%s: model.json warmup inputs the model accepts: READY, no warning', async (model) => {
    expect(await versionOf(model)).toEqual({ status: 'READY', error: null });
    expect(warnings(model)).toEqual([]);
  });

  it.each([
    ['warm_too_short', 'model.json warmup: the run failed: ', 'Pad reflect requires axis length >= 2'],
    ['warm_wrong_inputs', 'model.json warmup.inputs.0.name: `y` is not an input of the model (`x`); warmup.inputs: missing input `x`', ''],
    ['warm_bad_shape', 'model.json warmup.inputs.0.shape: input `x` has shape [-1, -1] (-1: any size), got [4]', ''],
    ['warm_bad_data', 'model.json warmup.inputs.0.data: shape [1, 4] holds 4 values, got 3', ''],
    ['warm_unknown_key', 'model.json: warmup.inputs.0: ', 'datatype'],
  ])('%s: a model.json warmup that is invalid or fails makes the version FAILED with the reason', async (model, start, detail) => {
    const { status, error } = await versionOf(model);
    expect(status).toBe('FAILED');
    expect(error.startsWith(start)).toBe(true);
    expect(error).toContain(detail);
    const batching = (await gw.gql(`query($m: String!) { model(name: $m) { versions { batching { enabled reason } } } }`, { m: model })).body.data.model.versions[0].batching;
    expect(batching).toEqual({ enabled: false, reason: 'version 1 is FAILED' });
  });
});
