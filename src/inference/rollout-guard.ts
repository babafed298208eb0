// When is a candidate version "worse" than the stable one? The guard of a traffic split
// compares the two on one metric, once both have enough samples.

export const GUARD_METRICS = ['ERROR_RATE', 'P95_LATENCY', 'ACCURACY'] as const;

export interface RolloutGuard {
  /**
   * - ERROR_RATE: share of inference runs that failed, counted in process since the split took effect.
   * - P95_LATENCY: 95th percentile of inference latency (the newest 1,000 runs per version).
   * - ACCURACY: share of feedback labels equal to the served label, in the database (recordFeedback), since the split took effect.
   */
  metric: (typeof GUARD_METRICS)[number];
  /** The version traffic returns to; it must take part in the split, so it has samples to compare with. */
  stableVersion: number;
  /**
   * How much worse a candidate may be. ERROR_RATE and ACCURACY: an absolute difference of
   * shares (0.05: five percentage points more errors, or less accuracy); P95_LATENCY: a ratio
   * (0.5: a p95 half as long again as the stable version's).
   */
  threshold: number;
  /** Neither version is judged before both have this many samples (runs, or predictions with feedback). */
  minSamples: number;
}

/** A figure read from elsewhere (the feedback table): `samples` it rests on, `value` null without any. */
export interface GuardSignal {
  figure(query: { model: string; version: number; since: Date }): Promise<{ samples: number; value: number | null }>;
}

const LATENCIES_KEPT = 1000;

interface VersionOutcomes {
  runs: number;
  errors: number;
  /** Ring of the newest latencies, in ms. */
  latencies: number[];
  next: number;
}

/** Outcomes per version of one split, since it took effect. */
export class OutcomeWindow {
  private readonly versions = new Map<number, VersionOutcomes>();

  add(version: number, ok: boolean, latencyMs: number): void {
    let v = this.versions.get(version);
    if (!v) this.versions.set(version, (v = { runs: 0, errors: 0, latencies: [], next: 0 }));
    v.runs++;
    if (!ok) v.errors++;
    if (v.latencies.length < LATENCIES_KEPT) v.latencies.push(latencyMs);
    else v.latencies[v.next] = latencyMs;
    v.next = (v.next + 1) % LATENCIES_KEPT;
  }

  runs(version: number): number {
    return this.versions.get(version)?.runs ?? 0;
  }

  errorRate(version: number): number | null {
    const v = this.versions.get(version);
    return v && v.runs > 0 ? v.errors / v.runs : null;
  }

  /** Nearest-rank 95th percentile of the latencies kept. */
  p95(version: number): number | null {
    const kept = this.versions.get(version)?.latencies;
    if (!kept?.length) return null;
    const sorted = [...kept].sort((a, b) => a - b);
    return sorted[Math.ceil(0.95 * sorted.length) - 1]!;
  }
}

export interface GuardVerdict {
  worse: boolean;
  /** Why it is worse (the figures), or why it was not judged. */
  reason: string;
}

const pct = (share: number) => `${(share * 100).toFixed(1)}%`;

/** Compares `candidate` with the guard's stable version. */
export async function guardVerdict(
  guard: RolloutGuard,
  at: { model: string; candidate: number; since: Date; window: OutcomeWindow; signal?: GuardSignal },
): Promise<GuardVerdict> {
  const { candidate, window } = at;
  const stable = guard.stableVersion;
  const tooFew = (c: number, s: number) => ({ worse: false, reason: `too few samples (version ${candidate}: ${c}, version ${stable}: ${s}; ${guard.minSamples} needed)` });
  if (guard.metric === 'ACCURACY') {
    if (!at.signal) return { worse: false, reason: 'no accuracy signal' };
    const [c, s] = await Promise.all([candidate, stable].map((version) => at.signal!.figure({ model: at.model, version, since: at.since })));
    if (c!.samples < guard.minSamples || s!.samples < guard.minSamples || c!.value === null || s!.value === null) return tooFew(c!.samples, s!.samples);
    const worse = s!.value - c!.value > guard.threshold;
    return { worse, reason: `accuracy of version ${candidate} is ${pct(c!.value)} against ${pct(s!.value)} for version ${stable} (threshold ${pct(guard.threshold)}, ${c!.samples} and ${s!.samples} predictions with feedback)` };
  }
  const [cRuns, sRuns] = [window.runs(candidate), window.runs(stable)];
  if (cRuns < guard.minSamples || sRuns < guard.minSamples) return tooFew(cRuns, sRuns);
  if (guard.metric === 'ERROR_RATE') {
    const [c, s] = [window.errorRate(candidate)!, window.errorRate(stable)!];
    return { worse: c - s > guard.threshold, reason: `error rate of version ${candidate} is ${pct(c)} against ${pct(s)} for version ${stable} (threshold ${pct(guard.threshold)}, ${cRuns} and ${sRuns} runs)` };
  }
  const [c, s] = [window.p95(candidate)!, window.p95(stable)!];
  return {
    worse: c > s * (1 + guard.threshold),
    reason: `p95 latency of version ${candidate} is ${c.toFixed(2)} ms against ${s.toFixed(2)} ms for version ${stable} (threshold +${pct(guard.threshold)}, ${cRuns} and ${sRuns} runs)`,
  };
}
