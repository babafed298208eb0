import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ModelDrift } from '../src/monitoring/drift.ts';
import { createDriftWatch, type DriftAlert, type Timer, type WatchedVersion } from '../src/monitoring/drift-watch.ts';

/** A timer the test fires by hand; records the delays asked for. */
function manualTimer() {
  const pending = new Map<number, () => void>();
  let next = 0;
  const delays: number[] = [];
  const timer: Timer = {
    set(run, ms) {
      delays.push(ms);
      pending.set(++next, run);
      return next;
    },
    clear: (handle) => void pending.delete(handle as number),
  };
  return {
    timer,
    delays,
    get pending() {
      return pending.size;
    },
    fire() {
      const [id, run] = [...pending][0]!;
      pending.delete(id);
      run();
    },
  };
}

const version = (name: string, v = 1) => ({ name, version: v }) as WatchedVersion;

/** A watch over the given versions whose PSI per check comes from `psiOf`. */
function watchWith(versions: WatchedVersion[], psiOf: (model: string) => number, sampled = () => 200) {
  const alerts: DriftAlert[] = [];
  const clock = manualTimer();
  const watch = createDriftWatch(
    {
      versions: () => versions,
      measure: async (v): Promise<ModelDrift> => ({ model: v.name, version: v.version, window: 500, sampled: sampled(), features: [{ name: 'x', psi: psiOf(v.name), outOfRangeShare: 0 }] }),
      publish: (alert) => alerts.push(alert),
      log: pino({ level: 'silent' }),
      timer: clock.timer,
    },
    { intervalMs: 1000, threshold: 0.2, minSamples: 100 },
  );
  return { alerts, clock, watch };
}

describe('drift watch', () => {
  it('alerts when a feature crosses the threshold upward, once while it stays above, and again after it went below', async () => {
    const series = [0.05, 0.25, 0.4, 0.3, 0.1, 0.2];
    let i = 0;
    const { alerts, watch } = watchWith([version('iris')], () => series[i++]!);
    for (let k = 0; k < series.length; k++) await watch.check();
    expect(alerts.map((a) => [a.model, a.version, a.feature, a.psi, a.threshold, a.sampled])).toEqual([
      ['iris', 1, 'x', 0.25, 0.2, 200],
      ['iris', 1, 'x', 0.2, 0.2, 200],
    ]);
    expect(alerts[0]!.createdAt).toBeInstanceOf(Date);
  });

  it('keeps each model version apart', async () => {
    const { alerts, watch } = watchWith([version('a'), version('b'), version('a', 2)], (m) => (m === 'a' ? 0.5 : 0.01));
    await watch.check();
    await watch.check();
    expect(alerts.map((a) => `${a.model}/${a.version}`)).toEqual(['a/1', 'a/2']);
  });

  it('does not judge a version with fewer than the minimum samples', async () => {
    let sampled = 50;
    const { alerts, watch } = watchWith([version('iris')], () => 0.9, () => sampled);
    await watch.check();
    expect(alerts).toEqual([]);
    sampled = 100;
    await watch.check();
    expect(alerts).toHaveLength(1);
  });

  it('checks one interval after start, then one interval after each check ends, never after stop', async () => {
    let checks = 0;
    const { clock, watch } = watchWith([version('iris')], () => (checks++, 0));
    watch.start();
    expect([checks, clock.pending, clock.delays]).toEqual([0, 1, [1000]]);
    const two = watch.afterChecks(2);
    clock.fire();
    await watch.afterChecks(1);
    expect([checks, clock.pending]).toEqual([1, 1]);
    clock.fire();
    await two;
    expect(checks).toBe(2);
    await watch.stop();
    expect(clock.pending).toBe(0);
    watch.start();
    expect(clock.pending).toBe(0);
  });

  it('logs a check that fails and goes on with the other versions', async () => {
    const alerts: DriftAlert[] = [];
    const lines: string[] = [];
    const watch = createDriftWatch(
      {
        versions: () => [version('broken'), version('iris')],
        measure: async (v) => {
          if (v.name === 'broken') throw new Error('database gone');
          return { model: v.name, version: 1, window: 500, sampled: 500, features: [{ name: 'x', psi: 1, outOfRangeShare: 0 }] };
        },
        publish: (a) => alerts.push(a),
        log: pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }),
        timer: manualTimer().timer,
      },
      { intervalMs: 1000, threshold: 0.2, minSamples: 1 },
    );
    await watch.check();
    expect(alerts.map((a) => a.model)).toEqual(['iris']);
    expect(lines.map((l) => JSON.parse(l) as { msg: string; model: string })).toMatchObject([{ msg: 'drift check failed', model: 'broken' }]);
  });
});
