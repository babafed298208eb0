import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ModelNotReadyError } from '../src/errors.ts';
import { ModelRepository } from '../src/inference/repository.ts';
import { loadServedVersion } from '../src/inference/served-version.ts';
import type { ServedVersion, TensorData } from '../src/inference/types.ts';

// The registry's seam for hot reload and traffic splits, on real iris sessions.
const log = pino({ level: 'silent' });
const proto = (ort.InferenceSession as unknown as { prototype: ort.InferenceSession }).prototype;
const row: TensorData[] = [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }];

let registry: ModelRepository;
beforeEach(async () => {
  const repo = mkdtempSync(join(tmpdir(), 'served-version-'));
  mkdirSync(join(repo, 'iris', '1'), { recursive: true });
  copyFileSync('models/iris/1/model.onnx', join(repo, 'iris', '1', 'model.onnx'));
  copyFileSync('models/iris/model.json', join(repo, 'iris', 'model.json'));
  registry = new ModelRepository(repo, log);
  await registry.load();
});
afterEach(async () => {
  vi.restoreAllMocks();
  await registry.close();
});

/** Another served version of iris 1 from the same file: what a hot reload would load. */
const reload = (): Promise<ServedVersion> => {
  const { path } = registry.get('iris')!.versions[0]!;
  return loadServedVersion({ name: 'iris', version: 1, path, manifest: registry.get('iris')!.manifest }, { log });
};

describe('swap', () => {
  it('serves new requests on the next version at once; the run in flight finishes on the old one, whose session is released only after it', async () => {
    const old = registry.resolve('iris');
    const next = await reload();
    const events: Array<[string, ort.InferenceSession]> = [];
    const { run: originalRun, release: originalRelease } = proto;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    /** The session of every ONNX run, in call order: the first is the held one. */
    const sessions: ort.InferenceSession[] = [];
    let started!: () => void;
    const oldRunStarted = new Promise<void>((resolve) => (started = resolve));
    // The first ONNX run (the old version's) waits at the gate: it is in flight until the test opens it.
    vi.spyOn(proto, 'run').mockImplementation(async function (this: ort.InferenceSession, ...args: unknown[]) {
      sessions.push(this);
      if (sessions.length === 1) {
        started();
        await gate;
      }
      const result = await (originalRun as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>).apply(this, args);
      events.push(['ran', this]);
      return result;
    });
    vi.spyOn(proto, 'release').mockImplementation(function (this: ort.InferenceSession) {
      events.push(['released', this]);
      return originalRelease.call(this);
    });

    const inFlight = old.run(row);
    await oldRunStarted;
    const held = sessions[0];
    let swapped = false;
    const swapping = registry.swap('iris', 1, next).then(() => (swapped = true));

    expect(registry.resolve('iris')).toBe(next);
    const after = await registry.resolve('iris').run(row);
    expect(events.map(([what]) => what)).toEqual(['ran']);
    expect(events[0]![1]).not.toBe(held); // the new request ran on another session while the old run was held
    expect(swapped).toBe(false); // still draining the old version
    expect(events.some(([what]) => what === 'released')).toBe(false);
    await expect(old.run(row)).rejects.toBeInstanceOf(ModelNotReadyError); // closing: no new work on the old version

    open();
    expect(await inFlight).toEqual(after); // the same model file: the same answer
    await swapping;
    expect(events.filter(([, session]) => session === held).map(([what]) => what)).toEqual(['ran', 'released']);
    expect(events.filter(([what]) => what === 'released')).toHaveLength(1); // the next version's session is kept
    expect([old.stats.runs, old.stats.requests, next.stats.runs, next.stats.requests]).toEqual([1, 1, 1, 1]);
    expect(registry.get('iris')!.versions[0]).toMatchObject({ status: 'READY', served: next });
  });
});

describe('the face of a version', () => {
  it('the served descriptor and the listed state are frozen', () => {
    const served = registry.resolve('iris');
    expect([served, served.inputs, served.inputs[0], served.inputs[0]!.shape, served.outputs, served.batching].map(Object.isFrozen)).toEqual([
      true, true, true, true, true, true,
    ]);
    expect(() => ((served as { version: number }).version = 2)).toThrow(TypeError);
    expect(() => served.inputs[0]!.shape.push(5)).toThrow(TypeError);
    const state = registry.get('iris')!.versions[0]!;
    expect(Object.isFrozen(state)).toBe(true);
    expect(() => ((state as { status: string }).status = 'FAILED')).toThrow(TypeError);
    expect(registry.get('iris')!.versions[0]!.status).toBe('READY');
  });

  it('fail makes a version FAILED with the reason, keeps its counters, releases its session; swap serves it again', async () => {
    const served = registry.resolve('iris');
    await served.run(row);
    await registry.fail('iris', 1, 'broken on purpose');
    expect(registry.get('iris')!.versions[0]).toMatchObject({ status: 'FAILED', error: 'broken on purpose', served });
    expect(() => registry.resolve('iris')).toThrow('Model `iris` version 1 is not ready (FAILED: broken on purpose)');
    expect(served.stats.requests).toBe(1);
    await expect(served.run(row)).rejects.toBeInstanceOf(ModelNotReadyError);

    const next = await reload();
    await registry.swap('iris', 1, next);
    expect(registry.get('iris')!.versions[0]).toEqual({ version: 1, path: expect.any(String) as string, status: 'READY', served: next });
    expect(registry.resolve('iris')).toBe(next);
  });
});
