/** The counters of a version as readers see them. */
export type VersionCounters = Readonly<
  Pick<VersionStats, 'runs' | 'requests' | 'rows' | 'batches' | 'queued' | 'queueDelayTotalMs' | 'queueDelayMaxMs' | 'meanBatchSize' | 'meanQueueDelayMs' | 'waiting' | 'bulkWaiting'>
>;

/**
 * Watches the ONNX runs of model versions from outside (metrics); `forVersion` is called once
 * per loaded version, so label lookups are paid at load, not per run.
 */
export interface InferenceObserver {
  forVersion(model: string, version: number): {
    /** One ONNX run (a predict batch or a generation step) took `seconds`. */
    run(seconds: number): void;
    /** One ONNX run served `requests` predict requests. */
    batch(requests: number): void;
  };
}

/** Counters of one model version since start-up, shown on `ModelVersion.stats`. */
export class VersionStats {
  /** ONNX runs of any kind (predict batches, generation steps). */
  runs = 0;
  /** predict requests answered by inference. */
  requests = 0;
  /** Rows those requests carried. */
  rows = 0;
  /** ONNX runs that served predict requests; requests / batches is the mean batch size. */
  batches = 0;
  /** Online requests that waited in the batching queue, and for how long in all (bulk waits are not counted). */
  queued = 0;
  queueDelayTotalMs = 0;
  queueDelayMaxMs = 0;
  /** Online requests in the batching queue now, and bulk requests in the bulk lane now (gauges read them). */
  waiting = 0;
  bulkWaiting = 0;

  /** `observer`: told each batch's size (metrics), when set. */
  constructor(private readonly observer?: Pick<ReturnType<InferenceObserver['forVersion']>, 'batch'>) {}

  recordBatch(requests: number, rows: number): void {
    this.observer?.batch(requests);
    this.batches++;
    this.requests += requests;
    this.rows += rows;
  }

  recordQueueDelay(ms: number): void {
    this.waiting--;
    this.queued++;
    this.queueDelayTotalMs += ms;
    if (ms > this.queueDelayMaxMs) this.queueDelayMaxMs = ms;
  }

  get meanBatchSize(): number {
    return this.batches === 0 ? 0 : this.requests / this.batches;
  }

  get meanQueueDelayMs(): number {
    return this.queued === 0 ? 0 : this.queueDelayTotalMs / this.queued;
  }
}
