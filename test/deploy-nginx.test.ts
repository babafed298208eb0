import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeRawSse, subscribeWs, upgrade, wsClient } from './helpers/clients.ts';
import { checkNginxConf, findNginx, GATEWAY_CONF, startNginx, type RunningNginx } from './helpers/nginx.ts';
import { startGatewayProcess, waitFor, type GatewayProcess } from './helpers/process.ts';

// deploy/nginx/gateway.conf, run by a real nginx in front of real gateway processes. CI
// installs nginx (`apt-get install -y nginx`); without it on PATH these tests skip.
const nginx = findNginx();
const skipped = nginx ? '' : ' (skipped: no nginx on PATH; install it with apt-get install -y nginx)';
if (!nginx) console.warn(`${GATEWAY_CONF} is not exercised:${skipped}`);

const PREDICT = 'mutation ($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id label } }';
const GENERATE = 'subscription ($input: GenerateInput!) { generate(input: $input) { index token text done finishReason predictionId } }';
const SUBMIT = 'mutation ($input: BatchJobInput!) { submitBatchJob(input: $input) { id status total } }';

async function gql(url: string, query: string, variables?: Record<string, unknown>) {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** One number from a replica's own SQLite history, read beside the running process. */
async function scalar(replica: GatewayProcess, sql: string, ...params: unknown[]): Promise<number> {
  const [row] = await replica.query(sql, params);
  return Number(Object.values(row!)[0]);
}

describe.skipIf(!nginx)(`nginx (${GATEWAY_CONF}) in front of two gateway processes${skipped}`, () => {
  let replicas: GatewayProcess[] = [];
  let proxy: RunningNginx;
  const hostOf = (replica: GatewayProcess) => new URL(replica.url).host;

  beforeAll(async () => {
    // Two models are enough, and each replica loads and warms fewer sessions.
    const repo = mkdtempSync(join(tmpdir(), 'deploy-models-'));
    for (const model of ['iris', 'fortune']) cpSync(`models/${model}`, join(repo, model), { recursive: true });
    replicas = await Promise.all([1, 2].map(() => startGatewayProcess({ HOST: '127.0.0.1', MODEL_REPOSITORY: repo })));
    await Promise.all(replicas.map((r) => waitFor(async () => (await fetch(`${r.url}/readyz`)).ok, 60_000)));
    proxy = await startNginx(nginx!, replicas.map(hostOf));
  });

  afterAll(async () => {
    await proxy?.stop();
    for (const replica of replicas) replica.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => r.exited));
  });

  it('balances requests over both replicas: each history gets predictions, all of them between the two', async () => {
    const answers = [];
    for (let k = 0; k < 6; k++) answers.push(await gql(proxy.url, PREDICT, { f: [5.1, 3.5, 1.4, 0.2] }));
    expect(answers.map((a) => a.body.data?.predict.label)).toEqual(Array(6).fill('setosa'));

    const rows = await Promise.all(replicas.map((r) => scalar(r, 'SELECT COUNT(*) FROM "Prediction"')));
    expect(rows.every((n) => n > 0)).toBe(true);
    expect(rows[0]! + rows[1]!).toBe(6);
    // nginx's access log (the config's JSON format) names the replica of each request.
    const upstreams = proxy.accessLog().filter((line) => line.request.startsWith('POST /graphql ')).map((line) => line.upstream);
    expect(new Set(upstreams)).toEqual(new Set(replicas.map(hostOf)));

    const health = await fetch(`${proxy.url}/healthz`);
    expect(health.status).toBe(200);
    const readiness = await fetch(`${proxy.url}/readyz`);
    expect(readiness.status).toBe(200);
    expect(await readiness.json()).toMatchObject({ status: 'ready', database: 'ok' });
  });

  it('upgrades to WebSocket: a graphql-ws generate streams every token, and the generation is stored on one replica', async () => {
    const client = wsClient(proxy.url);
    const sub = subscribeWs(client, GENERATE, { input: { model: 'fortune', prompt: 'The ', maxTokens: 20, temperature: 0.8, seed: 7 } });
    await sub.done;
    await client.dispose();
    const events = sub.events.map((e) => e.data!.generate);
    expect(events).toHaveLength(21);
    expect(events.slice(0, 20).map((e) => e.index)).toEqual([...Array(20).keys()]);
    const last = events.at(-1);
    expect(last).toMatchObject({ done: true, finishReason: 'LENGTH', text: events.slice(0, 20).map((e) => e.token).join('') });
    const stored = await Promise.all(replicas.map((r) => scalar(r, 'SELECT COUNT(*) FROM "Prediction" WHERE "id" = $1', last.predictionId)));
    expect(stored.sort()).toEqual([0, 1]);
    await waitFor(async () => proxy.accessLog().some((line) => line.status === 101));
  });

  it("passes the browser's Host on with its port: an upgrade from the page nginx serves is taken, one from another site refused (403)", async () => {
    expect((await upgrade(proxy.url, { origin: proxy.url })).status).toBe(101);
    expect((await upgrade(proxy.url, { origin: 'https://evil.example' })).status).toBe(403);
  });

  it('passes SSE events through as they happen: each predictionCreated arrives before the next prediction is made', async () => {
    const sub = subscribeRawSse(proxy.url, 'subscription { predictionCreated(model: "iris") { id } }');
    // The headers come once the replica has subscribed to its event bus. Which replica that
    // is does not matter: each step predicts on both directly (events are per replica for now).
    expect((await sub.connected).headers.get('content-type')).toContain('text/event-stream');
    const made: string[][] = [];
    for (let step = 1; step <= 4; step++) {
      const ids = await Promise.all(replicas.map(async (r) => (await gql(r.url, PREDICT, { f: [6.7, 3.0, 5.2, 2.3] })).body.data.predict.id as string));
      made.push(ids);
      // A proxy holding events back to fill a buffer or a compressor would keep this one (a
      // hundred bytes) waiting for more, which never comes.
      await sub.waitFor(step);
    }
    sub.unsubscribe();
    const received = sub.events.map((e) => e.data!.predictionCreated.id);
    expect(received).toHaveLength(4);
    received.forEach((id, k) => expect(made[k]).toContain(id));
  });

  it('leaves a stalled SSE client to the replica: nginx holds no stream on disk, and the client gets every event once it reads', async () => {
    const sub = subscribeRawSse(proxy.url, 'subscription { predictionCreated(model: "iris") { id inputs { data } outputs { data } } }');
    await sub.connected;
    const first = await Promise.all(replicas.map(async (r) => (await gql(r.url, PREDICT, { f: [5.1, 3.5, 1.4, 0.2] })).body.data.predict.id as string));
    await sub.waitFor(1);
    const subscribed = replicas[first.indexOf(sub.events[0]!.data!.predictionCreated.id)]!;

    // About 1 MB of JSON per event, 8 events: more than the sockets between replica, nginx and
    // client hold. With buffering on, nginx would read it all and spool it to a temp file
    // (up to 1 GB a stream) and the replica would never see a slow client.
    sub.pause();
    const rows = 10_000;
    const data = Array.from({ length: rows * 4 }, (_, i) => [5.1, 3.5, 1.4, 0.2][i % 4]!);
    const big = `mutation ($d: [Float!]!) { predict(input: { model: "iris", inputs: [{ name: "features", datatype: FP32, shape: [${rows}, 4], data: $d }] }) { id } }`;
    const ids: string[] = [];
    for (let k = 0; k < 8; k++) ids.push((await gql(subscribed.url, big, { d: data })).body.data.predict.id);
    expect(proxy.errorLog()).not.toContain('an upstream response is buffered to a temporary file');

    sub.resume();
    await waitFor(async () => sub.events.length === 1 + ids.length);
    expect(sub.events.slice(1).map((e) => e.data!.predictionCreated.id)).toEqual(ids);
    sub.unsubscribe();
  });

  it("streams a multipart upload bigger than nginx's default 1 MB body limit to a replica, without spooling it to disk", async () => {
    // Three rows, then 1.5 MB of blank lines (not rows): a big request, a small job.
    const csv = '5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n5.9,3.0,4.2,1.5\n' + '\n'.repeat(1_500_000);
    const form = new FormData();
    form.set('operations', JSON.stringify({ query: SUBMIT, variables: { input: { model: 'iris', file: null } } }));
    form.set('map', JSON.stringify({ 0: ['variables.input.file'] }));
    form.set('0', new Blob([csv]), 'rows.csv');
    const res = await fetch(`${proxy.url}/graphql`, { method: 'POST', body: form, headers: { 'x-graphql-yoga-csrf': '1' } });
    expect(res.status).toBe(200);
    const job = (await res.json()).data.submitBatchJob;
    expect(job).toMatchObject({ status: 'QUEUED', total: 3 });
    expect((await Promise.all(replicas.map((r) => scalar(r, 'SELECT COUNT(*) FROM "BatchJob" WHERE "id" = $1', job.id)))).sort()).toEqual([0, 1]);
    // nginx warns "a client request body is buffered to a temporary file" when it spools one.
    expect(proxy.errorLog()).not.toContain('a client request body is buffered to a temporary file');
  });
});

describe.skipIf(!nginx)(`nginx (${GATEWAY_CONF}): what the replicas receive${skipped}`, () => {
  const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  const replica = createServer((req, res) => {
    seen.push({ url: req.url!, headers: req.headers });
    res.end('{}');
  });
  let proxy: RunningNginx;

  beforeAll(async () => {
    await new Promise<void>((resolve) => replica.listen(0, '127.0.0.1', resolve));
    proxy = await startNginx(nginx!, [`127.0.0.1:${(replica.address() as AddressInfo).port}`]);
  });
  afterAll(async () => {
    await proxy?.stop();
    replica.close();
  });

  it("forwards the client's X-Request-Id, sets one when there is none, and adds X-Forwarded-For", async () => {
    await fetch(`${proxy.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'trace-me-1' }, body: '{}' });
    await fetch(`${proxy.url}/readyz`);
    const [graphql, readyz] = seen;
    expect(graphql).toMatchObject({ url: '/graphql', headers: { 'x-request-id': 'trace-me-1', 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', host: new URL(proxy.url).host } });
    // nginx's $request_id: 32 hex digits (a sane id by the gateway's rule, so it keeps it).
    expect(readyz).toMatchObject({ url: '/readyz', headers: { 'x-forwarded-for': '127.0.0.1' } });
    expect(readyz!.headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
    expect(proxy.accessLog().find((line) => line.request.startsWith('POST /graphql '))).toMatchObject({ requestId: 'trace-me-1' });
  });

  it('answers 404 itself for paths the gateway does not serve', async () => {
    const before = seen.length;
    expect((await fetch(`${proxy.url}/metrics`)).status).toBe(404);
    expect(seen.length).toBe(before);
  });
});

describe.skipIf(!nginx)(`the committed ${GATEWAY_CONF}${skipped}`, () => {
  it('passes nginx -t as committed, with only the compose host names (gateway-1, gateway-2) made resolvable', () => {
    const committed = readFileSync(GATEWAY_CONF, 'utf8');
    // nginx resolves upstream names when it loads the file; outside compose they do not exist.
    const hostNames = /\bgateway-\d+(?=:4000;)/g;
    expect(committed.match(hostNames)).toEqual(['gateway-1', 'gateway-2']);
    const { ok, output } = checkNginxConf(nginx!, committed.replace(hostNames, '127.0.0.1'));
    expect(output).toContain('syntax is ok');
    expect(ok).toBe(true);
  });
});
