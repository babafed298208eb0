/**
 * Fan-out: many identical `predictionCreated` subscribers over WebSocket while predictions
 * arrive at a fixed rate (open loop), the load generator in the bench process.
 *
 * What is measured, exactly:
 * - Subscribers: raw `ws` sockets speaking graphql-transport-ws (connection_init, subscribe to
 *   `subscription { predictionCreated { id } }`), no graphql-ws client library and no JSON
 *   parse per message: the prediction id is cut out of the message bytes (the last `"id":"…"`),
 *   and the time is taken with `performance.now()` as the message event fires.
 * - Predictions: iris `predict` over HTTP/1.1 keep-alive (node:http), one sent every
 *   1/rate s on a fixed schedule whatever the answers do. For each, the generator keeps the
 *   send time and the time its HTTP answer arrived (the answer carries the id).
 * - Latency "from answer": delivery time − the moment the predict's answer arrived at the
 *   generator. The gateway commits the row, publishes, then answers, so the answer arrives
 *   after the commit: this slightly understates commit → delivery, and it is negative when the
 *   event beats the answer. Latency "from send": delivery − the moment the predict was sent,
 *   an upper bound (it includes parse, inference and commit). Both are reported.
 *   Latency "from first delivery": delivery − the first delivery of that prediction to any
 *   subscriber, the spread the fan-out itself adds.
 * - Before measuring, warm-up predictions are sent until every subscriber has received one:
 *   every subscription is live. Only the predictions sent in the measured window count:
 *   expected = answered predictions × subscribers; missed = expected − received (of those ids).
 * - CPU: each gateway's and nginx's utime+stime (/proc/<pid>/stat) and the bench process's
 *   own (`process.cpuUsage`) over the measured window and its settle time, and the bench's
 *   event-loop delay: how much of the 2 cores the client itself took.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { round } from './load.ts';

export const FAN_OUT_SUBSCRIPTION = 'subscription { predictionCreated { id } }';
const PREDICT = JSON.stringify({
  query: 'mutation($f:[Float!]!){predict(input:{model:"iris",features:$f}){id}}',
  variables: { f: [5.1, 3.5, 1.4, 0.2] },
});
const ID_MARK = Buffer.from('"id":"');
const QUOTE = 0x22;

export interface FanOutOptions {
  /** http://127.0.0.1:<port> of nginx or the gateway. */
  url: string;
  subscribers: number;
  /** Predictions per second. */
  rate: number;
  durationS: number;
  /** Process ids whose CPU time to report (gateways, nginx), by label. */
  pids: Record<string, number>;
}

export interface Percentiles {
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface FanOutFigure {
  label: string;
  subscribers: number;
  rate: number;
  durationS: number;
  /** Predictions sent in the measured window, answered (ok, with an id), failed. */
  sent: number;
  answered: number;
  failed: number;
  /** Answers that came in after the window's last send (ok ones still count). */
  achievedRate: number;
  predictAnswerMs: Percentiles;
  expected: number;
  received: number;
  missed: number;
  /** Deliveries of the same id to the same subscriber more than once. */
  duplicates: number;
  /** Deliveries that arrived before the predict's own answer (their "from answer" latency is negative). */
  beforeAnswer: number;
  fromAnswer: Percentiles;
  fromSend: Percentiles;
  /** Delivery − the first delivery of the same prediction to any subscriber (deliveries are in arrival order). */
  fromFirst: Percentiles;
  /** Seconds from the last send until the last expected delivery arrived (or the wait gave up). */
  settleS: number;
  /** CPU seconds per process over the window and the settle time. */
  cpuS: Record<string, number>;
  /** Whole-machine busy share over the same time (all cores, /proc/stat). */
  machineBusy: number;
  /** Server-side CPU µs per delivery: the gateways' CPU ÷ deliveries received. */
  gatewayCpuUsPerDelivery: number;
  /** Bench process event-loop delay p99 / max over the window, ms. */
  clientLoopDelayMs: { p99: number; max: number };
}

interface Subscriber {
  socket: WebSocket;
  /** Ids seen, for duplicates. */
  seen: Set<string>;
  live: boolean;
}

export async function runFanOut(label: string, o: FanOutOptions): Promise<FanOutFigure> {
  const wsUrl = `${o.url.replace(/^http/, 'ws')}/graphql`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  /** id → send and answer times of a measured prediction. */
  const predictions = new Map<string, { sentAt: number; answeredAt: number }>();
  /** Deliveries, flat: id and time, in arrival order. */
  const deliveredIds: string[] = [];
  const deliveredAt: number[] = [];
  let recording = false;
  let warmupSeen = 0;
  let duplicates = 0;
  /** Messages that are neither events nor handshake (errors, completes): the run fails with them. */
  const unexpected: string[] = [];

  const subscribers: Subscriber[] = [];
  const onMessage = (subscriber: Subscriber, data: Buffer) => {
    const at = performance.now();
    const mark = data.lastIndexOf(ID_MARK);
    // The subscription's own id ("1") is first; a message without a second is not an event.
    if (mark < 0 || mark === data.indexOf(ID_MARK)) return onControl(subscriber, data);
    const start = mark + ID_MARK.length;
    const end = data.indexOf(QUOTE, start);
    const id = data.toString('latin1', start, end);
    if (!subscriber.live) {
      subscriber.live = true;
      warmupSeen++;
    }
    if (!recording) return;
    if (subscriber.seen.has(id)) duplicates++;
    else subscriber.seen.add(id);
    deliveredIds.push(id);
    deliveredAt.push(at);
  };
  const onControl = (subscriber: Subscriber, data: Buffer) => {
    const text = data.toString();
    if (text.includes('"connection_ack"')) {
      subscriber.socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: FAN_OUT_SUBSCRIPTION } }));
    } else if (text.includes('"ping"')) subscriber.socket.send('{"type":"pong"}');
    else if (!text.includes('"pong"')) unexpected.push(text.slice(0, 300));
  };

  const open = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(wsUrl, 'graphql-transport-ws', { perMessageDeflate: false });
      const subscriber: Subscriber = { socket, seen: new Set(), live: false };
      subscribers.push(subscriber);
      socket.on('open', () => {
        socket.send('{"type":"connection_init"}');
        resolve();
      });
      socket.on('message', (data: Buffer) => onMessage(subscriber, data));
      socket.on('error', reject);
      socket.on('close', (code) => {
        if (!closing) unexpected.push(`socket closed by the server (${code})`);
      });
    });
  let closing = false;
  const closeAll = () => {
    closing = true;
    for (const s of subscribers) s.socket.terminate();
  };

  const predict = (): Promise<{ id?: string; answeredAt: number }> =>
    new Promise((resolve) => {
      const req = http.request(`${o.url}/graphql`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(PREDICT) } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          const answeredAt = performance.now();
          const id = /"id":"([^"]+)"/.exec(body)?.[1];
          resolve({ id: res.statusCode === 200 && !body.includes('"errors"') ? id : undefined, answeredAt });
        });
      });
      req.on('error', () => resolve({ answeredAt: performance.now() }));
      req.end(PREDICT);
    });

  try {
    for (let i = 0; i < o.subscribers; i += 100) await Promise.all(Array.from({ length: Math.min(100, o.subscribers - i) }, open));
    // Warm-up: predictions until every subscriber has heard one (every subscription is live).
    const warmDeadline = Date.now() + 30_000;
    while (warmupSeen < o.subscribers) {
      if (Date.now() > warmDeadline) throw new Error(`only ${warmupSeen} of ${o.subscribers} subscriptions delivered a warm-up event within 30 s`);
      await predict();
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 500));

    const cpuBefore = readCpu(o.pids);
    const machineBefore = machineTicks();
    const ownBefore = process.cpuUsage();
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    recording = true;
    const total = Math.round(o.rate * o.durationS);
    const period = 1000 / o.rate;
    const started = performance.now();
    const inFlight: Array<Promise<void>> = [];
    let failed = 0;
    const answerTimes: number[] = [];
    for (let k = 0; k < total; k++) {
      const due = started + k * period;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const sentAt = performance.now();
      inFlight.push(
        predict().then(({ id, answeredAt }) => {
          answerTimes.push(answeredAt - sentAt);
          if (id) predictions.set(id, { sentAt, answeredAt });
          else failed++;
        }),
      );
    }
    const lastSend = performance.now();
    await Promise.all(inFlight);
    const answersDone = performance.now();
    // Settle: until every answered prediction reached every subscriber, or 5 s without progress.
    const expected = predictions.size * o.subscribers;
    let lastCount = -1;
    let lastProgress = performance.now();
    while (countReceived(deliveredIds, predictions) < expected) {
      if (deliveredIds.length !== lastCount) {
        lastCount = deliveredIds.length;
        lastProgress = performance.now();
      } else if (performance.now() - lastProgress > 5_000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    recording = false;
    loop.disable();
    if (unexpected.length > 0) throw new Error(`${unexpected.length} unexpected subscriber messages, first: ${unexpected[0]}`);
    const settleEnd = deliveredAt.length > 0 ? Math.max(deliveredAt.at(-1)!, answersDone) : answersDone;
    const own = process.cpuUsage(ownBefore);
    const cpuAfter = readCpu(o.pids);
    const machineAfter = machineTicks();

    const fromAnswer: number[] = [];
    const fromSend: number[] = [];
    const fromFirst: number[] = [];
    /** Each id's first delivery to any subscriber: the spread after it is the fan-out's own cost. */
    const first = new Map<string, number>();
    let beforeAnswer = 0;
    for (let i = 0; i < deliveredIds.length; i++) {
      const id = deliveredIds[i]!;
      const p = predictions.get(id);
      if (!p) continue;
      const at = deliveredAt[i]!;
      const a = at - p.answeredAt;
      if (a < 0) beforeAnswer++;
      fromAnswer.push(a);
      fromSend.push(at - p.sentAt);
      const f = first.get(id);
      if (f === undefined) first.set(id, at);
      fromFirst.push(at - (f ?? at));
    }
    const received = fromAnswer.length - duplicates;
    const cpuS: Record<string, number> = { 'bench process (load generator + subscribers)': round((own.user + own.system) / 1e6, 2) };
    let gatewayCpu = 0;
    for (const [name, ticks] of Object.entries(cpuAfter)) {
      const seconds = (ticks - (cpuBefore[name] ?? 0)) / CLOCK_TICKS;
      cpuS[name] = round(seconds, 2);
      if (name.startsWith('gateway')) gatewayCpu += seconds;
    }
    return {
      label,
      subscribers: o.subscribers,
      rate: o.rate,
      durationS: o.durationS,
      sent: total,
      answered: predictions.size,
      failed,
      achievedRate: round(total / ((lastSend - started) / 1000 + period / 1000), 1),
      predictAnswerMs: percentiles(answerTimes),
      expected,
      received,
      missed: Math.max(0, expected - received),
      duplicates,
      beforeAnswer,
      fromAnswer: percentiles(fromAnswer),
      fromSend: percentiles(fromSend),
      fromFirst: percentiles(fromFirst),
      settleS: round((settleEnd - lastSend) / 1000, 2),
      cpuS,
      machineBusy: round(busyShare(machineBefore, machineAfter), 3),
      gatewayCpuUsPerDelivery: received > 0 ? round((gatewayCpu * 1e6) / received, 2) : 0,
      clientLoopDelayMs: { p99: round(loop.percentile(99) / 1e6, 1), max: round(loop.max / 1e6, 1) },
    };
  } finally {
    closeAll();
    agent.destroy();
  }
}

function countReceived(ids: string[], predictions: Map<string, unknown>): number {
  let n = 0;
  for (const id of ids) if (predictions.has(id)) n++;
  return n;
}

/** Nearest-rank percentiles of unsorted values (sorted here). */
function percentiles(values: number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (p: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!);
  return { p50Ms: round(at(0.5), 1), p95Ms: round(at(0.95), 1), p99Ms: round(at(0.99), 1), maxMs: round(sorted.at(-1) ?? 0, 1) };
}

/** USER_HZ; 100 on every Linux Node supports. */
const CLOCK_TICKS = 100;

/** utime + stime of each pid, in clock ticks (0 once it is gone). */
export function readCpu(pids: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    try {
      // Fields after the command (in parentheses, which may contain spaces): utime is the 14th field overall.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[name] = Number(fields[11]) + Number(fields[12]);
    } catch {
      out[name] = 0;
    }
  }
  return out;
}

export function cpuSeconds(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((name) => [name, round((after[name]! - (before[name] ?? 0)) / CLOCK_TICKS, 2)]));
}

function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = cpu[3]! + (cpu[4] ?? 0);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function busyShare(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

export function machineLoad(): number {
  return round(os.loadavg()[0]!, 2);
}

export function renderFanOut(figures: FanOutFigure[]): string[] {
  if (figures.length === 0) return ['Not run (see notes).'];
  const out: string[] = [];
  out.push(
    `Subscribers: raw \`ws\` sockets (graphql-transport-ws) in the bench process, \`${FAN_OUT_SUBSCRIPTION}\`, the prediction id cut from the message bytes (no JSON parse). Predictions: iris \`predict\` over HTTP keep-alive on a fixed schedule (open loop). "from answer": delivery − arrival of that predict's HTTP answer at the generator (the gateway commits, publishes, then answers: a lower bound of commit → delivery; negative when the event beats the answer). "from send": delivery − send of the predict (an upper bound, it includes inference and commit). "from first delivery": delivery − that prediction's first delivery to any subscriber (the fan-out's own spread). Everything (gateways, nginx, PostgreSQL, Redis, generator and 1,000 sockets) on the same 2 cores.`,
    '',
  );
  const row = (f: FanOutFigure) => [
    f.label, f.subscribers, f.rate, `${f.answered}/${f.sent}`, f.predictAnswerMs.p99Ms, f.expected, f.received, f.missed, f.duplicates,
    f.beforeAnswer, `${f.fromAnswer.p50Ms} / ${f.fromAnswer.p95Ms} / ${f.fromAnswer.p99Ms} / ${f.fromAnswer.maxMs}`,
    `${f.fromSend.p50Ms} / ${f.fromSend.p95Ms} / ${f.fromSend.p99Ms} / ${f.fromSend.maxMs}`, `${f.fromFirst.p50Ms} / ${f.fromFirst.p99Ms}`, f.settleS, f.gatewayCpuUsPerDelivery, `${Math.round(f.machineBusy * 100)}%`,
    Object.entries(f.cpuS).map(([k, v]) => `${k.replace(' (load generator + subscribers)', '')} ${v}`).join(', '),
    `${f.clientLoopDelayMs.p99} / ${f.clientLoopDelayMs.max}`,
  ];
  const header = ['topology', 'subs', 'predicts/s', 'answered/sent', 'predict p99 ms', 'expected', 'received', 'missed', 'dup', 'before answer', 'from answer p50/p95/p99/max ms', 'from send p50/p95/p99/max ms', 'from first delivery p50/p99 ms', 'settle s', 'gateway CPU µs/delivery', 'machine busy', 'CPU s', 'bench loop delay p99/max ms'];
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  out.push(line(header), line(header.map(() => '---')), ...figures.map((f) => line(row(f))), '');
  return out;
}
