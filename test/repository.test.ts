import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { writeAdderModel } from './helpers/onnx-models.ts';

const MODELS = `{ models { name kind description labels defaultVersion { version }
  versions { version status error loadedAt inputs { name datatype shape featureNames } outputs { name datatype shape } } } }`;

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const tempRepository = () => mkdtempSync(join(tmpdir(), 'model-repo-'));

describe('model repository', () => {
  it('serves a model dropped in with no manifest as GENERIC, with the metadata its session reports', async () => {
    const repo = tempRepository();
    const file = writeAdderModel(repo);
    const startedAt = Date.now();
    gw = await startGateway({ modelRepository: repo });
    const loadedBy = Date.now();

    const listed = await gw.gql(MODELS);
    const session = await ort.InferenceSession.create(file);
    const reported = (list: readonly ort.InferenceSession.ValueMetadata[]) =>
      list.map((m) => {
        if (!m.isTensor) throw new Error('not a tensor');
        return { name: m.name, type: m.type, shape: m.shape.map((d) => (typeof d === 'number' ? d : -1)) };
      });
    const inputs = reported(session.inputMetadata);
    const outputs = reported(session.outputMetadata);
    await session.release();
    expect(inputs.map((i) => i.name)).toEqual(['a', 'b', 'n']);

    const [model] = listed.body.data.models;
    expect(model).toMatchObject({ name: 'adder', kind: 'GENERIC', description: null, labels: null, defaultVersion: { version: 1 } });
    const [version] = model.versions;
    expect(version.status).toBe('READY');
    expect(version.error).toBeNull();
    expect(Date.parse(version.loadedAt)).toBeGreaterThanOrEqual(startedAt);
    expect(Date.parse(version.loadedAt)).toBeLessThanOrEqual(loadedBy);
    const datatype = { float32: 'FP32', int64: 'INT64' } as Record<string, string>;
    expect(version.inputs).toEqual(inputs.map((i) => ({ name: i.name, datatype: datatype[i.type], shape: i.shape, featureNames: null })));
    expect(version.outputs).toEqual(outputs.map((o) => ({ name: o.name, datatype: datatype[o.type], shape: o.shape })));
    expect(version.inputs[0].shape).toEqual([-1, 3]);

    const res = await gw.gql(
      `mutation($input: PredictInput!) { predict(input: $input) { modelName label value scores { label } outputs { name datatype shape data } } }`,
      {
        input: {
          model: 'adder',
          inputs: [
            { name: 'n', datatype: 'INT64', shape: [2, 2], data: [1, 2, 2 ** 40, -7] },
            { name: 'a', datatype: 'FP32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
            { name: 'b', datatype: 'FP32', shape: [2, 3], data: [0.5, 0.5, 0.5, 1, 1, 1] },
          ],
        },
      },
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.predict).toEqual({
      modelName: 'adder',
      label: null,
      value: null,
      scores: null,
      outputs: [
        { name: 'sum', datatype: 'FP32', shape: [2, 3], data: [1.5, 2.5, 3.5, 5, 6, 7] },
        { name: 'doubled', datatype: 'INT64', shape: [2, 2], data: [2, 4, 2 ** 41, -14] },
      ],
    });

    const features = await gw.gql(`mutation { predict(input: { model: "adder", features: [1, 2, 3] }) { id } }`);
    expect(features.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(features.body.errors![0]!.extensions!.issues[0].message).toMatch(/has 3 inputs/);

    const fraction = await gw.gql(`mutation { predict(input: { model: "adder", inputs: [
      { name: "a", datatype: FP32, shape: [1, 3], data: [1, 2, 3] }, { name: "b", datatype: FP32, shape: [1, 3], data: [1, 2, 3] },
      { name: "n", datatype: INT64, shape: [1, 2], data: [1.5, 2] }] }) { id } }`);
    expect(fraction.body.errors![0]!.extensions!.issues).toEqual([
      { path: ['input', 'inputs', 2, 'data', 0], message: `INT64 takes whole numbers from ${Number.MIN_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}, got 1.5` },
    ]);
  });

  it('lists a model that fails to load as FAILED with the reason, and keeps serving the others', async () => {
    const repo = tempRepository();
    mkdirSync(join(repo, 'iris', '1'), { recursive: true });
    copyFileSync('models/iris/1/model.onnx', join(repo, 'iris', '1', 'model.onnx'));
    copyFileSync('models/iris/model.json', join(repo, 'iris', 'model.json'));
    mkdirSync(join(repo, 'broken', '1'), { recursive: true });
    writeFileSync(join(repo, 'broken', '1', 'model.onnx'), 'this is not an ONNX file');
    mkdirSync(join(repo, 'typo', '1'), { recursive: true });
    copyFileSync('models/iris/1/model.onnx', join(repo, 'typo', '1', 'model.onnx'));
    writeFileSync(join(repo, 'typo', 'model.json'), JSON.stringify({ kind: 'CLASSIFIER', lables: ['a'] }));
    gw = await startGateway({ modelRepository: repo });

    const models = (await gw.gql(MODELS)).body.data.models;
    expect(models.map((m: any) => [m.name, m.versions[0].status])).toEqual([
      ['broken', 'FAILED'],
      ['iris', 'READY'],
      ['typo', 'FAILED'],
    ]);
    expect(models[0].versions[0].error).toMatch(/protobuf|parse|load/i);
    expect(models[2].versions[0].error).toMatch(/model\.json.*lables/);

    const res = await gw.gql(`mutation { predict(input: { model: "broken", features: [1] }) { id } }`);
    expect(res.body.errors![0]!.extensions).toMatchObject({ code: 'MODEL_NOT_READY', model: 'broken', version: 1, status: 'FAILED' });
    expect(res.body.errors![0]!.message).toMatch(/^Model `broken` version 1 is not ready \(FAILED: /);
    const ok = await gw.gql(`mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { label } }`);
    expect(ok.body.data.predict.label).toBe('setosa');
    expect(await gw.countRows()).toBe(1);
    expect((await fetch(`${gw.url}/readyz`)).status).toBe(200); // FAILED counts as settled
  });

  it('answers /readyz 503 and MODEL_NOT_READY while a model is still loading, 200 once loaded', async () => {
    const repo = tempRepository();
    mkdirSync(join(repo, 'slow', '1'), { recursive: true });
    const fifo = join(repo, 'slow', '1', 'model.onnx');
    execFileSync('mkfifo', [fifo]); // loading blocks until the test writes the model into the pipe
    gw = await startGateway({ modelRepository: repo, waitForModels: false });

    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${gw.url}/readyz`)).status).toBe(503);
    const listed = await gw.gql(`{ model(name: "slow") { versions { status } } }`);
    expect(listed.body.data.model.versions).toEqual([{ status: 'LOADING' }]);
    const early = await gw.gql(`mutation { predict(input: { model: "slow", features: [5.1, 3.5, 1.4, 0.2] }) { id } }`);
    expect(early.body.errors![0]!.extensions).toMatchObject({ code: 'MODEL_NOT_READY', status: 'LOADING' });

    const pipe = await open(fifo, 'w');
    await pipe.write(readFileSync('models/iris/1/model.onnx'));
    await pipe.close();
    await gw.app.modelsLoaded;
    expect((await fetch(`${gw.url}/readyz`)).status).toBe(200);
    const later = await gw.gql(`mutation { predict(input: { model: "slow", features: [5.1, 3.5, 1.4, 0.2] }) { outputs { shape } } }`);
    expect(later.body.data.predict.outputs).toEqual([{ shape: [1, 3] }]);
  });

  it('serves the default version: the newest READY one unless model.json names one', async () => {
    const repo = tempRepository();
    for (const v of [1, 2, 3]) writeAdderModel(repo, 'adder', v);
    writeFileSync(join(repo, 'adder', '3', 'model.onnx'), 'broken'); // newest fails
    gw = await startGateway({ modelRepository: repo });
    const res = await gw.gql(`{ model(name: "adder") { defaultVersion { version } versions { version status } } }`);
    expect(res.body.data.model.defaultVersion).toEqual({ version: 2 });
    const predicted = await gw.gql(`mutation { predict(input: { model: "adder", inputs: [
      { name: "a", datatype: FP32, shape: [1, 3], data: [1, 2, 3] }, { name: "b", datatype: FP32, shape: [1, 3], data: [1, 2, 3] },
      { name: "n", datatype: INT64, shape: [1, 2], data: [1, 2] }] }) { version } }`);
    expect(predicted.body.data.predict.version).toBe(2);
  });
});
