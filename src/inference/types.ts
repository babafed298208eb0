// The shared types of inference: what a model and a served version look like to the rest of
// the gateway. Declarations only (type imports, no runtime code), so every module can depend on
// this one and it depends on none of theirs.
import type * as ort from 'onnxruntime-node';
import type { TensorDatatype } from './datatypes.ts';
import type { Manifest } from './manifest.ts';
import type { VersionCounters } from './stats.ts';

/** A tensor as the API and the history carry it: row-major data as plain numbers. */
export interface TensorData {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  data: number[];
}

export type ModelStatus = 'LOADING' | 'READY' | 'FAILED' | 'UNLOADED';

/** An input or output as the ONNX session reports it; dynamic dimensions are -1. */
export interface TensorSpec {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  /** The symbolic name of each dimension (e.g. "batch"); null for a fixed or unnamed one. */
  dimNames: Array<string | null>;
  featureNames?: string[];
}

/** What a served version is: fixed once its session is loaded (frozen at run time). */
export interface VersionDescriptor {
  readonly name: string;
  readonly version: number;
  readonly manifest: Manifest;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** Whether requests are stacked and why. */
  readonly batching: BatchingDecision;
  /** When the session became ready. */
  readonly loadedAt: Date;
  /** SHA-256 of the model.onnx bytes loaded (base64url): tells apart two loads of one version number (a file replaced in place). */
  readonly digest: string;
}

/**
 * A loaded version that takes work: its session, warm-up, batching and counters are its
 * insides, and it is the only place a serving ONNX run happens.
 */
export interface ServedVersion extends VersionDescriptor {
  /**
   * One request's inference: through the batcher when batching is enabled, else alone.
   * `bulk` requests (background batch jobs) wait in a queue of their own until no online
   * run of this version is queued or running, or the queue's head has waited 100 ms
   * (BULK_MAX_WAIT_MS), and are stacked with each other only; see bulk-lane.ts.
   */
  run(tensors: readonly TensorData[], options?: RunOptions): Promise<TensorData[]>;
  /** One decoding run of a generator, counted in `stats.runs`. */
  step(feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.ReturnType>;
  /** Counters since the version was loaded. */
  readonly stats: VersionCounters;
  /**
   * Refuses new work (MODEL_NOT_READY), waits for the runs in flight, then releases the
   * session. Idempotent.
   */
  close(): Promise<void>;
}

export interface RunOptions {
  /** `online` for a client waiting on the answer; `bulk` yields to all online work. @default 'online' */
  priority?: 'online' | 'bulk';
}

/** A version folder as the registry lists it; replaced (never changed) by the registry alone. */
export interface VersionState {
  readonly version: number;
  readonly path: string;
  readonly status: ModelStatus;
  /** Why the version is FAILED, or UNLOADED. */
  readonly error?: string;
  /** The version serving requests (READY), or the one that served before it was FAILED at run time. */
  readonly served?: ServedVersion;
  /** Inputs and outputs the session reported before loading failed, if it got that far. */
  readonly reported?: { readonly inputs: readonly TensorSpec[]; readonly outputs: readonly TensorSpec[] };
}

export interface Model {
  readonly name: string;
  readonly manifest: Manifest;
  /** Versions in ascending order. */
  readonly versions: readonly VersionState[];
}

/** Dynamic batching settings of one model version (Triton's max_batch_size / max_queue_delay). */
export interface BatchingOptions {
  /** Rows per stacked ONNX run at most. 0 or 1: no batching. */
  maxBatchSize: number;
  /**
   * How long the first request of a batch waits for company, in ms. 0 waits only until
   * the current event-loop turn ends: requests that arrived together run together, and
   * a lone request pays nothing.
   */
  maxQueueDelayMs: number;
}

/** Whether a version's requests are stacked, and why; `maxBatchSize` and `maxQueueDelayMs` are 0 when off. */
export interface BatchingDecision extends BatchingOptions {
  enabled: boolean;
  /** A sentence a user can act on, e.g. "input `x` has an unnamed first dimension". */
  reason: string;
  /**
   * The model declares one batch dimension (every input and output has the same symbolic
   * first dimension, or model.json turns batching on): every input of a request must then
   * have the same first dimension, and a request that disagrees is refused.
   */
  rowsMustAgree: boolean;
  /** Set when model.json asks for batching that the model's shapes do not allow: worth a warning. */
  warning?: string;
}
