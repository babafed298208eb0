import { execFileSync } from 'node:child_process';
import { createServer as createTcpServer, connect, type AddressInfo } from 'node:net';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Client } from 'graphql-ws';
import { restartDelayMs } from '../src/cluster/primary.ts';
import { subscribeWs, wsClient, type Subscription } from './helpers/clients.ts';
import { spawnGateway, startGatewayProcess, waitFor, type GatewayProcess } from './helpers/process.ts';

const PREDICT = 'mutation ($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id } }';
/**
 * Which worker answers: each loaded its sessions at its own instants, so the `loadedAt`
 * of every version tells the processes apart without exposing anything new; `requests`
 * is that worker's own count of predicts since it started.
 */
const WHO = '{ models { name versions { loadedAt stats { requests } } } }';

interface Who {
  worker: string;
  irisRequests: number;
}
const whoFrom = (data: any): Who => ({
  worker: data.models.flatMap((m: any) => m.versions.map((v: any) => v.loadedAt)).join(),
  irisRequests: data.models.find((m: any) => m.name === 'iris').versions[0].stats.requests,
});

/** GraphQL over HTTP on a connection of its own, so the cluster hands each request to the next worker. */
async function gql(url: string, query: string, variables?: Record<string, unknown>) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', connection: 'close' },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, body: (await res.json()) as { data?: any; errors?: unknown[] } };
}

/** Asks on fresh connections until `count` distinct workers have answered; their answers by worker. */
async function workers(url: string, count: number): Promise<Map<string, Who>> {
  const seen = new Map<string, Who>();
  for (let attempt = 0; attempt < 20 * count && seen.size < count; attempt++) {
    const who = whoFrom((await gql(url, WHO)).body.data);
    seen.set(who.worker, who);
  }
  return seen;
}

/** Resolves once `count` workers have logged `models loaded` (a replacement counts again). */
const modelsLoadedOn = (gw: GatewayProcess, count: number) => waitFor(async () => gw.lines.filter((l) => l.msg === 'models loaded').length >= count, 60_000);

/** The primary's worker processes (tsx may run a helper process of its own beside them). */
const workerPids = (primary: number) =>
  execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(primary)], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes('src/main.ts'))
    .map((line) => Number.parseInt(line, 10));

describe('replacing a dead worker', () => {
  it('waits 0.5 s after a healthy run, doubling to 30 s while replacements keep dying young', () => {
    const delays: number[] = [];
    let delay: number | undefined;
    for (let death = 0; death < 8; death++) delays.push((delay = restartDelayMs(delay, 1000)));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(restartDelayMs(30_000, 60_000)).toBe(500);
  });
});

describe('WORKERS=2: two processes sharing one port', () => {
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startGatewayProcess({ WORKERS: '2', BATCH_CHUNK_ROWS: '5' });
    await modelsLoadedOn(gw, 2);
  });
  afterAll(async () => {
    gw.child.kill('SIGTERM');
    await gw.exited;
  });

  it('logs `listening` once, with the port and the number of workers', () => {
    const listening = gw.lines.filter((l) => l.msg === 'listening');
    expect(listening).toEqual([expect.objectContaining({ port: Number(new URL(gw.url).port), workers: 2, url: `${gw.url}/graphql` })]);
    expect(workerPids(gw.child.pid!)).toHaveLength(2);
  });

  it('serves requests on both workers: the predicts each counted add up to those sent', async () => {
    const before = await workers(gw.url, 2);
    const answers = await Promise.all(Array.from({ length: 20 }, () => gql(gw.url, PREDICT, { f: [5.1, 3.5, 1.4, 0.2] })));
    expect(answers.every((a) => a.status === 200 && a.body.data?.predict.id)).toBe(true);
    const after = await workers(gw.url, 2);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    const served = [...after].map(([worker, who]) => who.irisRequests - before.get(worker)!.irisRequests);
    expect(served.every((n) => n > 0)).toBe(true);
    expect(served[0]! + served[1]!).toBe(20);
  });

  it('both workers write the one SQLite file under concurrent load, with a batch job committing chunks meanwhile: every acknowledged row is stored, no SQLITE_BUSY', async () => {
    const before = await workers(gw.url, 2);
    const rows = Array.from({ length: 400 }, (_, i) => [4.5 + (i % 30) / 10, 3.0, 1.4 + (i % 40) / 10, 0.2 + (i % 20) / 10]);
    const submitted = await gql(gw.url, 'mutation ($input: BatchJobInput!) { submitBatchJob(input: $input) { id } }', { input: { model: 'iris', rows } });
    const jobId: string = submitted.body.data.submitBatchJob.id;
    // 32 clients, each sending its predicts one after another, every one on a new connection.
    const acknowledged = (
      await Promise.all(
        Array.from({ length: 32 }, async (_, client) => {
          const ids: string[] = [];
          for (let i = 0; i < 15; i++) {
            const answer = await gql(gw.url, PREDICT, { f: [5 + client / 10, 3.5, 1.4, i / 10] });
            expect(answer.body.errors).toBeUndefined();
            ids.push(answer.body.data.predict.id);
          }
          return ids;
        }),
      )
    ).flat();
    await waitFor(async () => (await gql(gw.url, `{ batchJob(id: "${jobId}") { status } }`)).body.data.batchJob.status !== 'RUNNING', 60_000);
    const job = (await gql(gw.url, `{ batchJob(id: "${jobId}") { status processed failed error } }`)).body.data.batchJob;
    expect(job).toEqual({ status: 'SUCCEEDED', processed: 400, failed: 0, error: null });

    const stored = new Set((await gw.query<{ id: string }>('SELECT "id" FROM "Prediction"')).map((r) => r.id));
    const [done] = await gw.query('SELECT COUNT(*) AS "n" FROM "BatchRow" WHERE "jobId" = $1 AND "predictionId" IS NOT NULL', [jobId]);
    const batchPredictions = Number(done!.n);
    expect(acknowledged).toHaveLength(480);
    expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
    expect(batchPredictions).toBe(400);
    // (The one start-up warning that AUTH_MODE is off is expected.)
    expect(gw.lines.filter((l) => (l.level >= 40 && l.authMode !== 'off') || JSON.stringify(l).includes('SQLITE_BUSY'))).toEqual([]);

    const after = await workers(gw.url, 2);
    for (const [worker, who] of after) expect(who.irisRequests).toBeGreaterThan(before.get(worker)!.irisRequests);
  });

  it('a predictionCreated subscriber on either worker hears the predictions made on both, all in the same order', async () => {
    // Six WebSockets, opened one after another: round-robin puts them on both workers.
    const sockets: Array<{ client: Client; worker: string; subscription: Subscription<{ predictionCreated: { id: string } }> }> = [];
    for (let i = 0; i < 6; i++) {
      const client = wsClient(gw.url);
      // Subscribed first: graphql-ws's lazy client closes its socket when nothing is active,
      // and the next operation would open another one, maybe on the other worker.
      const subscription = subscribeWs<{ predictionCreated: { id: string } }>(client, 'subscription { predictionCreated(model: "iris") { id } }');
      subscription.done.catch(() => {}); // ends with the gateway if a check below fails first
      const asked = subscribeWs(client, WHO);
      await asked.done;
      sockets.push({ client, worker: whoFrom(asked.events[0]!.data).worker, subscription });
    }
    expect(new Set(sockets.map((s) => s.worker)).size).toBe(2);
    // Subscriptions are live once each has heard something.
    await waitFor(async () => {
      await gql(gw.url, PREDICT, { f: [5.0, 3.4, 1.5, 0.2] });
      return sockets.every((s) => s.subscription.events.length > 0);
    });

    // Each socket predicts twice over its own connection, so both workers make some.
    const made: string[] = [];
    for (const { client } of sockets) {
      for (let i = 0; i < 2; i++) {
        const predicted = subscribeWs(client, PREDICT, { f: [6.7, 3.0, 5.2, 2.3] });
        await predicted.done;
        made.push(predicted.events[0]!.data.predict.id);
      }
    }
    const heardOf = (s: (typeof sockets)[number]) => s.subscription.events.map((e) => e.data!.predictionCreated.id).filter((id) => made.includes(id));
    await waitFor(async () => sockets.every((s) => heardOf(s).length === made.length));
    const order = heardOf(sockets[0]!);
    expect([...order].sort()).toEqual([...made].sort());
    for (const s of sockets) expect(heardOf(s)).toEqual(order);
    for (const s of sockets) {
      s.subscription.unsubscribe();
      await s.client.dispose();
    }
  });

  it('a worker killed with SIGKILL is replaced, and the port keeps answering meanwhile', async () => {
    const [victim, survivor] = workerPids(gw.child.pid!);
    process.kill(victim!, 'SIGKILL');
    await waitFor(async () => gw.lines.some((l) => l.msg === 'worker exited unexpectedly: starting a replacement' && l.pid === victim));
    const exited = gw.lines.find((l) => l.pid === victim)!;
    expect(exited).toMatchObject({ level: 50, code: null, signal: 'SIGKILL' });
    expect(exited.restartInMs).toBeGreaterThan(0);

    for (let i = 0; i < 6; i++) expect((await gql(gw.url, PREDICT, { f: [5.1, 3.5, 1.4, 0.2] })).status).toBe(200);

    await waitFor(async () => gw.lines.some((l) => l.msg === 'replacement worker listening' && l.worker === exited.worker), 60_000);
    await modelsLoadedOn(gw, 3);
    const now = workerPids(gw.child.pid!);
    expect(now).toHaveLength(2);
    expect(now).toContain(survivor);
    expect(now).not.toContain(victim);
    expect((await workers(gw.url, 2)).size).toBe(2);
  });
});

/** A graphql-transport-ws connection spoken by hand, so the test can also send WebSocket pings. */
async function openGraphqlWs(url: string) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
  const messages: any[] = [];
  socket.on('message', (data) => messages.push(JSON.parse((data as Buffer).toString())));
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(JSON.stringify({ type: 'connection_init' }));
  await waitFor(async () => messages.some((m) => m.type === 'connection_ack'));
  socket.send(JSON.stringify({ id: 'who', type: 'subscribe', payload: { query: WHO } }));
  await waitFor(async () => messages.some((m) => m.id === 'who' && m.type === 'complete'));
  const worker = whoFrom(messages.find((m) => m.id === 'who' && m.type === 'next').payload.data).worker;
  return { socket, messages, worker };
}

describe('WORKERS=2: shutdown', () => {
  it('SIGTERM: each worker finishes the predict it has in flight (answer sent, row committed), then all exit and the primary exits 0', async () => {
    // iris whose batcher holds a request for a second waiting for company: the predicts are in flight when the signal arrives.
    const repo = mkdtempSync(join(tmpdir(), 'workers-'));
    cpSync('models/iris', join(repo, 'iris'), { recursive: true });
    const manifest = JSON.parse(readFileSync(join(repo, 'iris', 'model.json'), 'utf8'));
    writeFileSync(join(repo, 'iris', 'model.json'), JSON.stringify({ ...manifest, batching: { maxBatchSize: 8, maxQueueDelayMs: 1000 } }));
    const gw = await startGatewayProcess({ WORKERS: '2', MODEL_REPOSITORY: repo });
    await modelsLoadedOn(gw, 2);
    const sockets = [await openGraphqlWs(gw.url)];
    while (sockets.length < 2 || new Set(sockets.map((s) => s.worker)).size < 2) sockets.push(await openGraphqlWs(gw.url));
    const closed = sockets.map((s) => new Promise<number>((resolve) => s.socket.once('close', (code) => resolve(code))));

    for (const { socket } of sockets) {
      socket.send(JSON.stringify({ id: 'p', type: 'subscribe', payload: { query: PREDICT, variables: { f: [5.1, 3.5, 1.4, 0.2] } } }));
      // The pong comes back once the server has read the frames before it: the predict is queued.
      socket.ping();
      await new Promise((resolve) => socket.once('pong', resolve));
    }
    gw.child.kill('SIGTERM');

    expect(await Promise.all(closed)).toEqual(sockets.map(() => 1001));
    const ids = sockets.map(({ messages }) => {
      expect(messages.filter((m) => m.id === 'p').map((m) => m.type)).toEqual(['next', 'complete']);
      const answer = messages.find((m) => m.id === 'p');
      expect(answer.payload.errors).toBeUndefined();
      return answer.payload.data.predict.id as string;
    });
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    expect(gw.lines.filter((l) => l.msg === 'stopped').map((l) => l.worker ?? 'primary')).toEqual(expect.arrayContaining([1, 2, 'primary']));
    expect(gw.lines.at(-1)).toMatchObject({ msg: 'stopped' });
    expect(gw.lines.at(-1)!.worker).toBeUndefined();
    expect((await gw.query<{ id: string }>('SELECT "id" FROM "Prediction"')).map((r) => r.id).sort()).toEqual(ids.sort());
  });

  it('a worker still busy at its SHUTDOWN_TIMEOUT_MS exits 1, and so does the primary, once the others have stopped', async () => {
    const gw = await startGatewayProcess({ WORKERS: '2', SHUTDOWN_TIMEOUT_MS: '1500' });
    await modelsLoadedOn(gw, 2);
    // A client that completes the WebSocket handshake and then never answers anything, not even the close frame.
    const stalled = connect(Number(new URL(gw.url).port), '127.0.0.1');
    await new Promise((resolve) => stalled.once('connect', resolve));
    stalled.write(
      'GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n',
    );
    await new Promise((resolve) => stalled.once('data', resolve));
    stalled.pause();

    gw.child.kill('SIGTERM');
    const exit = await gw.exited;
    stalled.destroy();
    expect(exit).toEqual({ code: 1, signal: null });
    const abandoned = gw.lines.filter((l) => l.msg === 'shutdown deadline passed: abandoning work in flight');
    expect(abandoned).toHaveLength(1);
    expect(gw.lines.filter((l) => l.msg === 'stopped').map((l) => l.worker)).toEqual([3 - abandoned[0]!.worker]);
    expect(gw.lines.at(-1)).toMatchObject({ level: 50, msg: 'stopped: not every worker stopped cleanly' });
  });

  it('a port already in use is one clear log line and exit 1, before any worker starts', async () => {
    const blocker = createTcpServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const dbFile = join(mkdtempSync(join(tmpdir(), 'inuse-')), 'h.db');
      const { child, exited, stderr } = spawnGateway({ WORKERS: '2', PORT: String(port), DATABASE_URL: `file:${dbFile}` });
      let stdout = '';
      child.stdout!.on('data', (chunk) => (stdout += chunk));
      expect((await exited).code).toBe(1);
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.authMode !== 'off');
      expect(lines).toEqual([expect.objectContaining({ level: 60, msg: `cannot listen on 127.0.0.1:${port}: the address is already in use`, code: 'EADDRINUSE' })]);
      expect(stderr()).toBe('');
    } finally {
      blocker.close();
    }
  });
});
