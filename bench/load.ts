/**
 * Closed-loop HTTP load with autocannon (as a library), one POST body repeated.
 *
 * Contract of one run (`runLoad`):
 * - `connections` keep-alive connections, one request in flight each, for `durationS` seconds.
 * - At the deadline no new request is sent, but the requests in flight are allowed to finish
 *   (a graceful drain, bounded by autocannon's 10 s request timeout). autocannon's own stop
 *   destroys connections with requests still in flight, which the server may go on to commit:
 *   the bench could then no longer compare stored rows with acknowledged responses exactly.
 * - `rps` = responses (any status) completed before the deadline / seconds to the deadline.
 * - `p50Ms`/`p99Ms` are exact percentiles (nearest rank) of every response's latency in the run,
 *   drained ones included, in fractional ms (autocannon's histogram keeps whole ms only, too
 *   coarse at one connection; its figures are kept in `autocannon` for cross-checking).
 * - `ok` counts 2xx responses whose body has no `"errors"`, over the whole run (drain included).
 * - `unanswered` counts requests sent that never got a response (timeouts, connection errors,
 *   or clients still busy when the hard stop fired): the server may or may not have handled them.
 */
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';

export interface LoadTarget {
  /** Full URL; only http://127.0.0.1 is accepted (`assertLoopback`). */
  url: string;
  /** JSON request body, sent with content-type application/json. */
  body: string;
  /** When set, each request's body instead (e.g. unique inputs); `body` is then only the first. */
  nextBody?: () => string;
  /** Extra request headers (e.g. `authorization`), beside content-type. */
  headers?: Record<string, string>;
}

export interface LoadRun {
  connections: number;
  durationS: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  responses: number;
  ok: number;
  /** 2xx answers whose body carries GraphQL `errors`. */
  graphqlErrors: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  sent: number;
  unanswered: number;
  /** Seconds from the deadline until the last in-flight request finished. */
  drainS: number;
  autocannon: { requestsPerSecMean: number; p50Ms: number; p99Ms: number };
}

export interface LoadStep {
  warmup: LoadRun;
  measured: LoadRun;
  /** The server's peak RSS during this step (warm-up included), MB; for servers started by the bench. */
  peakRssMb?: number;
}

const SAMPLE_INT_MS = 100;

/** The fields of autocannon 8's client this module relies on for the graceful drain. */
interface ClientInternals extends NodeJS.EventEmitter {
  reqsMade: number;
  responseMax?: number;
}

/** Throws unless `url` is plain http on 127.0.0.1: the bench never loads anything else. */
export function assertLoopback(url: string): URL {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' || parsed.hostname !== '127.0.0.1') {
    throw new Error(`refusing to load ${url}: the bench only targets http://127.0.0.1`);
  }
  return parsed;
}

/** A warm-up run (not counted in the figures, but its `ok` counts towards stored rows), then the measured run. */
export async function runStep(target: LoadTarget, connections: number, durationS: number, warmupS: number): Promise<LoadStep> {
  const warmup = await runLoad(target, connections, warmupS);
  const measured = await runLoad(target, connections, durationS);
  return { warmup, measured };
}

export async function runLoad(target: LoadTarget, connections: number, durationS: number): Promise<LoadRun> {
  const url = assertLoopback(target.url);
  const clients: ClientInternals[] = [];
  const latencies: number[] = [];
  let responses = 0;
  let ok = 0;
  let sent = 0;
  let atDeadline: { responses: number; seconds: number } | undefined;
  let deadlineAt = 0;

  const start = performance.now();
  const instance = autocannon(
    {
      url: url.origin,
      connections,
      pipelining: 1,
      timeout: 10,
      // Hard stop, only reached if the drain below hangs; normally every client ends itself first.
      duration: durationS + 15,
      // Tick often so the result arrives soon after the last client is done.
      sampleInt: SAMPLE_INT_MS,
      requests: [
        {
          method: 'POST',
          path: url.pathname + url.search,
          headers: { 'content-type': 'application/json', ...target.headers },
          body: target.body,
          ...(target.nextBody ? { setupRequest: (request: autocannon.Request) => ({ ...request, body: target.nextBody!() }) } : {}),
          onResponse: (status, body) => {
            if (status >= 200 && status < 300 && !body.includes('"errors"')) ok++;
          },
        },
      ],
      setupClient: (client) => {
        const internals = client as unknown as ClientInternals;
        clients.push(internals);
        // Emitted for every request written (not in the typings).
        internals.on('request', () => sent++);
      },
    },
    () => {},
  );
  instance.on('response', (_client, _status, _bytes, responseTime) => {
    responses++;
    latencies.push(responseTime);
  });

  const deadline = setTimeout(() => {
    deadlineAt = performance.now();
    atDeadline = { responses, seconds: (deadlineAt - start) / 1000 };
    // A client whose response cap is reached destroys itself (and reports 'done') instead of
    // sending its next request; setting the cap to what it has already sent lets the request in
    // flight finish. When every client is done autocannon ends the run.
    if (clients.some((client) => typeof client.reqsMade !== 'number')) {
      // autocannon internals changed: fall back to its abrupt stop (in-flight requests end up `unanswered`).
      instance.stop();
      return;
    }
    for (const client of clients) client.responseMax = Math.max(client.reqsMade, 1);
  }, durationS * 1000);

  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    instance.on('done', resolve);
    instance.on('error', reject);
  }).finally(() => clearTimeout(deadline));
  const end = performance.now();

  latencies.sort((a, b) => a - b);
  const measured = atDeadline ?? { responses, seconds: (end - start) / 1000 };
  return {
    connections,
    durationS,
    rps: round(measured.responses / measured.seconds, 1),
    p50Ms: round(percentile(latencies, 0.5), 2),
    p99Ms: round(percentile(latencies, 0.99), 2),
    maxMs: round(latencies.at(-1) ?? 0, 2),
    responses,
    ok,
    graphqlErrors: Math.max(0, result['2xx'] - ok),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    sent,
    unanswered: Math.max(0, sent - responses),
    drainS: round(deadlineAt ? (end - deadlineAt) / 1000 : 0, 2),
    // autocannon samples requests every `sampleInt` ms: scale its per-sample mean to per second.
    autocannon: { requestsPerSecMean: round(result.requests.mean * (1000 / SAMPLE_INT_MS), 1), p50Ms: result.latency.p50, p99Ms: result.latency.p99 },
  };
}

/** Nearest-rank percentile of an ascending array; 0 when empty. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
