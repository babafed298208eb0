import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { BadUserInputError, ModelNotFoundError, ModelNotReadyError } from '../errors.ts';
import { interpretationOf, outcomeOf } from '../inference/interpretation.ts';
import { modelEvent, type ModelEvent } from '../inference/model-events.ts';
import { defaultVersionOf } from '../inference/repository.ts';
import { requestTensors } from '../inference/tensors.ts';
import type { Model, ServedVersion, TensorData } from '../inference/types.ts';
import type { PredictInput } from './predict.ts';
import type { PredictionRecord } from './records.ts';

/** A shadow version's answer to one prediction's request, as callers see it (`Prediction.shadow`). */
export interface ShadowResultRecord {
  /** The primary prediction. */
  predictionId: string;
  /** The shadow version. */
  shadowVersion: number;
  /** When the shadow run ended. */
  createdAt: Date;
  /** The shadow's output tensors; null when it failed. */
  outputs: TensorData[] | null;
  /** Classifiers: the shadow's most probable class. */
  label: string | null;
  /** Why the shadow run failed; null when it answered. */
  error: string | null;
  /** Milliseconds from the shadow run's start to its answer (bulk priority: includes waiting for online work). */
  latencyMs: number | null;
  /** Mean |shadow − primary| over every output number present in both under the same name; null when none is. */
  meanAbsoluteDifference: number | null;
  /** Classifiers: the shadow's label equals the primary's. */
  labelsAgree: boolean | null;
}

/** What is stored: the result, plus what the comparison filters and averages on without reading the history. */
export interface NewShadowResult extends ShadowResultRecord {
  modelName: string;
  /** The primary's version. */
  version: number;
  /** The primary prediction's createdAt: comparison windows are on it. */
  predictedAt: Date;
  /** The primary's latency; null when the shadow failed (no pair). */
  primaryLatencyMs: number | null;
  /** The primary prediction's API key. */
  apiKeyId: string | null;
}

/** Mean and 95th percentile of latencies, in milliseconds; null without any. */
export interface LatencySummary {
  meanMs: number | null;
  /** Nearest rank: the smallest latency with at least 95% of the pairs at or below it. */
  p95Ms: number | null;
}

/** Primary version `version` against shadow version `shadowVersion` of `model`, over the stored pairs. */
export interface Comparison {
  model: string;
  version: number;
  shadowVersion: number;
  since: Date | null;
  /** Pairs: predictions the shadow answered. */
  count: number;
  /** Shadow runs that failed (stored with their error; not in the figures). */
  failed: number;
  /** Classifiers: share of pairs whose labels agree, 0..1; null without classifier pairs. */
  agreement: number | null;
  /** Mean over pairs of each pair's mean absolute difference; null without comparable outputs. */
  meanAbsoluteDifference: number | null;
  primaryLatency: LatencySummary;
  shadowLatency: LatencySummary;
}

export interface ComparisonQuery {
  model: string;
  version: number;
  shadowVersion: number;
  /** Only predictions made at or after this time. */
  since?: Date | null;
  /** Only this API key's predictions (a key without the admin scope: its own). */
  apiKeyId?: string;
}

/** Where shadow results live (store/shadow-repository.ts). */
export interface ShadowStore {
  /** Resolves once the row is committed (rows handed in together share a commit). */
  save(result: NewShadowResult): Promise<void>;
  /** One query for all ids; aligned with `ids`, undefined where there is none. */
  findByPredictionIds(ids: readonly string[]): Promise<Array<ShadowResultRecord | undefined>>;
  /** Computed in the database: one aggregate query, then one query per p95. */
  compare(query: ComparisonQuery): Promise<Comparison>;
  /** Resolves once every row handed to `save` so far is committed (or failed). */
  drain(): Promise<void>;
}

/** A model's shadow, with this process's counters since it was set. */
export interface Shadow {
  model: string;
  /** The shadow version. */
  version: number;
  /** When it was set. */
  since: Date;
  /** Requests run on the shadow (or tried: failures included). */
  runs: number;
  /** Shadow runs that failed (version not READY, request refused by it, run threw): stored with `error`. */
  failures: number;
  /** Requests not run on the shadow because SHADOW_MAX_OUTSTANDING runs were in flight. */
  dropped: number;
  /** Results that could not be stored (logged). */
  writeErrors: number;
  /** Runs started and not yet answered by the shadow version (their rows may still wait for a commit). */
  outstanding: number;
}

export interface ShadowOptions {
  /** Shadow runs in flight (started, not yet answered) in this process at most; beyond it a request is dropped. @default 64 */
  maxOutstanding?: number;
}

export type ShadowTraffic = ReturnType<typeof createShadowTraffic>;

/**
 * Pair figures of a primary prediction and the shadow's outputs for the same request:
 * the mean absolute difference over every output number present in both under the same
 * name and length (null when there is none), and for classifiers whether the labels agree.
 */
export function pairFigures(primary: PredictionRecord, shadow: { outputs: readonly TensorData[]; label: string | null; classifier: boolean }) {
  let sum = 0;
  let numbers = 0;
  for (const before of primary.outputs) {
    const after = shadow.outputs.find((o) => o.name === before.name);
    if (!after || after.data.length !== before.data.length) continue;
    for (let i = 0; i < before.data.length; i++) sum += Math.abs(after.data[i]! - before.data[i]!);
    numbers += before.data.length;
  }
  const primaryLabel = primary.interpretation?.kind === 'CLASSIFIER' ? (primary.outcome?.label ?? null) : null;
  return {
    meanAbsoluteDifference: numbers > 0 ? sum / numbers : null,
    labelsAgree: shadow.classifier && primaryLabel !== null && shadow.label !== null ? primaryLabel === shadow.label : null,
  };
}

/**
 * Shadow traffic: which model is shadowed by which version (in this process's memory; lost on
 * restart, set per replica), and `mirror`, which the prediction service calls after each
 * committed prediction. A mirrored request runs on the shadow version after the caller's answer
 * is on its way, at bulk priority (it waits for the version's online work), and its result is
 * stored beside the prediction; nothing about it ever reaches the caller. At most
 * `maxOutstanding` runs are in flight: a request beyond that is dropped and counted, never queued.
 */
export function createShadowTraffic(deps: {
  models: { get(name: string): Model | undefined; resolve(name: string, version?: number | null): ServedVersion };
  store: ShadowStore;
  publish: (event: ModelEvent) => void;
  log: Logger;
  /** Each mirrored prediction's fate (the `gateway_shadow_runs_total` metric). */
  onRun?: (model: string, version: number, outcome: 'ok' | 'failed' | 'dropped') => void;
}, options: ShadowOptions = {}) {
  const { models, store, publish, log } = deps;
  const counted = deps.onRun ?? (() => {});
  const maxOutstanding = options.maxOutstanding ?? 64;
  const shadows = new Map<string, Shadow>();
  const inFlight = new Set<Promise<void>>();
  const savesInFlight = new Set<Promise<void>>();
  let outstanding = 0;
  let closed = false;

  async function run(shadow: Shadow, input: PredictInput, primary: PredictionRecord): Promise<void> {
    // Off the response path: the caller's answer is written first.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const started = performance.now();
    const base = { predictionId: primary.id, modelName: primary.modelName, version: primary.version, shadowVersion: shadow.version, predictedAt: primary.createdAt, apiKeyId: primary.apiKeyId ?? null };
    let result: NewShadowResult;
    try {
      const served = models.resolve(primary.modelName, shadow.version);
      const outputs = await served.run(requestTensors(served, input), { priority: 'bulk' });
      const latencyMs = performance.now() - started;
      const interpretation = interpretationOf(served.manifest, served.outputs[0]?.name);
      const label = outcomeOf(outputs, interpretation).label;
      const figures = pairFigures(primary, { outputs, label, classifier: interpretation.kind === 'CLASSIFIER' });
      result = { ...base, createdAt: new Date(), outputs, label, error: null, latencyMs, primaryLatencyMs: primary.latencyMs, ...figures };
      counted(shadow.model, shadow.version, 'ok');
    } catch (error) {
      shadow.failures++;
      counted(shadow.model, shadow.version, 'failed');
      const message = error instanceof Error ? error.message : String(error);
      result = { ...base, createdAt: new Date(), outputs: null, label: null, error: message, latencyMs: null, primaryLatencyMs: null, meanAbsoluteDifference: null, labelsAgree: null };
    }
    // Handed to the store, the run is no longer outstanding: rows wait for their group commit (up to 20 ms) without holding the bound.
    const saving = store
      .save(result)
      .catch((error: unknown) => {
        shadow.writeErrors++;
        log.warn({ err: error, model: primary.modelName, version: shadow.version, predictionId: primary.id }, 'could not store a shadow result');
      })
      .finally(() => savesInFlight.delete(saving));
    savesInFlight.add(saving);
  }

  return {
    /**
     * Runs every prediction of `model` from now on also on `version`. MODEL_NOT_FOUND for an
     * unknown model or version; MODEL_NOT_READY when the version is not READY; BAD_USER_INPUT
     * for a generator or the version serving the model by default. Replaces an earlier shadow.
     */
    set(model: string, version: number): Shadow {
      const entry = models.get(model);
      if (!entry) throw new ModelNotFoundError(model);
      const state = entry.versions.find((v) => v.version === version);
      if (!state) throw new ModelNotFoundError(model, version);
      if (entry.manifest.kind === 'GENERATOR') {
        throw new BadUserInputError([{ path: ['model'], message: `\`${model}\` is a GENERATOR; shadow traffic mirrors \`predict\` only` }]);
      }
      if (state.status !== 'READY' || !state.served) throw new ModelNotReadyError(model, version, state.status, state.error);
      if (defaultVersionOf(entry)?.version === version) {
        throw new BadUserInputError([{ path: ['version'], message: `version ${version} serves \`${model}\` by default; a shadow must be another version` }]);
      }
      const shadow: Shadow = { model, version, since: new Date(), runs: 0, failures: 0, dropped: 0, writeErrors: 0, outstanding: 0 };
      shadows.set(model, shadow);
      log.info({ model, version }, 'shadow set');
      publish(modelEvent('TRAFFIC', model, version, `shadow: version ${version}`));
      return shadow;
    },

    /** Stops shadowing `model` (runs in flight finish and are stored); the shadow that was stopped, or null. MODEL_NOT_FOUND for an unknown model. */
    clear(model: string): Shadow | null {
      const shadow = shadows.get(model);
      if (!shadow) {
        if (!models.get(model)) throw new ModelNotFoundError(model);
        return null;
      }
      shadows.delete(model);
      log.info({ model, version: shadow.version }, 'shadow cleared');
      publish(modelEvent('TRAFFIC', model, shadow.version, `shadow: none (version ${shadow.version} cleared)`));
      return shadow;
    },

    /** The shadow of `model` in this process, if any. */
    get(model: string): Shadow | undefined {
      return shadows.get(model);
    },

    /**
     * Called once per committed prediction (serving/predict.ts); returns at once. Requests
     * that ran on the shadow version itself (named it, or routed to it) are not mirrored.
     */
    mirror(input: PredictInput, primary: PredictionRecord): void {
      const shadow = shadows.get(primary.modelName);
      if (!shadow || closed || shadow.version === primary.version) return;
      if (outstanding >= maxOutstanding) {
        shadow.dropped++;
        counted(shadow.model, shadow.version, 'dropped');
        return;
      }
      outstanding++;
      shadow.outstanding++;
      shadow.runs++;
      const done = run(shadow, input, primary)
        .catch((error: unknown) => log.error({ err: error }, 'shadow run failed unexpectedly'))
        .finally(() => {
          outstanding--;
          shadow.outstanding--;
          inFlight.delete(done);
        });
      inFlight.add(done);
    },

    /** Primary against shadow over the stored pairs (the database's figures, every replica's rows). */
    compare: (query: ComparisonQuery): Promise<Comparison> => store.compare(query),

    /** Shadow runs in flight in this process. */
    get outstanding(): number {
      return outstanding;
    },

    /** Resolves once every run started so far is stored (or failed to be). */
    async idle(): Promise<void> {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
      await Promise.all([...savesInFlight]);
      await store.drain();
    },

    /** Shutdown: mirrors nothing more, then waits for the runs in flight and their rows. */
    async close(): Promise<void> {
      closed = true;
      await this.idle();
    },
  };
}
