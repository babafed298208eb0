// The shared types of inference: what a model and a served version look like to the rest of
// the gateway. Declarations only (type imports, no runtime code), so every module can depend on
// this one and it depends on none of theirs.
import type * as ort from 'onnxruntime-node';
import type { TensorDatatype } from './datatypes.ts';
import type { Manifest } from './manifest.ts';
import type { VersionStats } from './stats.ts';

/** A tensor as the API and the history carry it: row-major data as plain numbers. */
export interface TensorData {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  data: number[];
}

export type ModelStatus = 'LOADING' | 'READY' | 'FAILED';

/** An input or output as the ONNX session reports it; dynamic dimensions are -1. */
export interface TensorSpec {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  /** The symbolic name of each dimension (e.g. "batch"); null for a fixed or unnamed one. */
  dimNames: Array<string | null>;
  featureNames?: string[];
}

export interface ModelVersion {
  readonly modelName: string;
  readonly version: number;
  readonly path: string;
  status: ModelStatus;
  error?: string;
  loadedAt?: Date;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  session?: ort.InferenceSession;
  /** Counters since start-up. */
  stats: VersionStats;
  /** Whether requests are stacked and why; set once the session is loaded. */
  batching?: BatchingDecision;
  /** Dynamic batching, when `batching` is enabled. */
  batcher?: (tensors: TensorData[]) => Promise<TensorData[]>;
}

export interface Model {
  readonly name: string;
  readonly manifest: Manifest;
  /** Versions in ascending order. */
  readonly versions: ModelVersion[];
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
