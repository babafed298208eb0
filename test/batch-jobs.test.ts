import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServedVersion } from '../src/inference/served-version.ts';
import { subscribeSse, subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

/** The 150 iris rows (features only) from the repository's data set. */
const IRIS: number[][] = readFileSync('datasets/iris.csv', 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split(',').slice(0, 4).map(Number));

const JOB_FIELDS = 'id status total processed failed error version modelName createdAt startedAt finishedAt';

const SUBMIT = `mutation ($input: BatchJobInput!) { submitBatchJob(input: $input) { ${JOB_FIELDS} } }`;
const JOB = `query ($id: ID!) { batchJob(id: $id) { ${JOB_FIELDS} } }`;
const RESULTS = `query ($id: ID!, $first: Int, $after: String) {
  batchJob(id: $id) { results(first: $first, after: $after) {
    edges { cursor node { index error { code message } prediction { id label scores { label probability } outputs { name data } } } }
    pageInfo { hasNextPage endCursor }
  } }
}`;

async function waitForStatus(gw: TestGateway, id: string, statuses: string[], timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await gw.gql(JOB, { id })).body.data?.batchJob;
    if (job && statuses.includes(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} is ${job?.status}, not ${statuses.join('/')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function allResults(gw: TestGateway, id: string, first = 40) {
  const nodes: any[] = [];
  let after: string | null = null;
  for (;;) {
    const page: any = (await gw.gql(RESULTS, { id, first, after })).body.data.batchJob.results;
    nodes.push(...page.edges.map((e: any) => e.node));
    if (!page.pageInfo.hasNextPage) return nodes;
    after = page.pageInfo.endCursor;
  }
}

/** A multipart request (GraphQL multipart request spec) submitting `text` as the job's file. */
async function upload(gw: TestGateway, text: string, filename: string, input: Record<string, unknown> = {}) {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: SUBMIT, variables: { input: { model: 'iris', file: null, ...input } } }));
  form.set('map', JSON.stringify({ 0: ['variables.input.file'] }));
  form.set('0', new Blob([text]), filename);
  const res = await fetch(`${gw.url}/graphql`, { method: 'POST', body: form, headers: { accept: 'application/graphql-response+json', 'x-graphql-yoga-csrf': '1' } });
  return { status: res.status, body: (await res.json()) };
}


/** The one value `sql` selects (a COUNT), through a connection of the test's own. */
const count = async (gw: TestGateway, sql: string) => Object.values((await gw.query(sql))[0]!)[0] as number;

describe('batch jobs against a real server', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { BATCH_CHUNK_ROWS: '16', MAX_BATCH_ROWS: '500', BATCH_NOTIFY_TIMEOUT_MS: '500', BATCH_NOTIFY_ATTEMPTS: '3', MAX_UPLOAD_BYTES: '100000' } });
  });
  afterAll(() => gw.close());

  it('submits rows, streams progress per committed chunk over WebSocket to SUCCEEDED, and answers like predict', async () => {
    const rows = IRIS.slice(0, 100);
    const submitted = await gw.gql(SUBMIT, { input: { model: 'iris', rows } });
    const job = submitted.body.data.submitBatchJob;
    expect(job).toMatchObject({ status: 'QUEUED', total: 100, processed: 0, failed: 0, version: 1, modelName: 'iris' });

    const client = wsClient(gw.url);
    const progress = subscribeWs(client, `subscription ($id: ID!) { batchJobProgress(id: $id) { status processed total } }`, { id: job.id });
    await progress.done;
    await client.dispose();
    const events = progress.events.map((e) => e.data!.batchJobProgress);
    expect(events.at(-1)).toEqual({ status: 'SUCCEEDED', processed: 100, total: 100 });
    // Never backwards, and (unless the subscription came late) one event per 16-row chunk.
    const processed = events.map((e) => e.processed);
    expect(processed).toEqual([...processed].sort((a, b) => a - b));
    expect(new Set(processed).size).toBeGreaterThan(1);

    const results = await allResults(gw, job.id, 30);
    expect(results.map((r) => r.index)).toEqual(rows.map((_, i) => i));
    for (const k of [0, 57, 99]) {
      const online = (await gw.gql(`mutation ($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { label scores { label probability } } }`, { f: rows[k] })).body.data.predict;
      expect(results[k].prediction.label).toBe(online.label);
      expect(results[k].prediction.scores).toEqual(online.scores);
    }
    const done = (await gw.gql(JOB, { id: job.id })).body.data.batchJob;
    expect(done.finishedAt).not.toBeNull();
    expect(await count(gw, `SELECT COUNT(*) FROM "BatchRow" r JOIN "Prediction" p ON p."id" = r."predictionId" WHERE r."jobId" = '${job.id}'`)).toBe(100);
  });

  it('takes a CSV upload with a header through the multipart request, scores every line, and streams progress over SSE to the end', async () => {
    const csv = 'sepal_length,sepal_width,petal_length,petal_width\n' + IRIS.slice(0, 30).map((r) => r.join(',')).join('\n') + '\n\n';
    const { status, body } = await upload(gw, csv, 'rows.csv');
    expect(status).toBe(200);
    const job = body.data.submitBatchJob;
    expect(job).toMatchObject({ status: 'QUEUED', total: 30 });
    const sse = subscribeSse(gw.url, `subscription ($id: ID!) { batchJobProgress(id: $id) { status processed } }`, { id: job.id });
    await sse.done;
    expect(sse.events.at(-1)!.data!.batchJobProgress).toEqual({ status: 'SUCCEEDED', processed: 30 });
    const done = await waitForStatus(gw, job.id, ['SUCCEEDED']);
    expect(done).toMatchObject({ processed: 30, failed: 0 });
    const results = await allResults(gw, job.id);
    expect(results[0].prediction.label).toBe('setosa');
  });

  it('takes a JSON Lines upload (arrays and objects) and detects the format from the file name', async () => {
    const jsonl = [JSON.stringify(IRIS[0]), JSON.stringify({ features: IRIS[60] }), JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: IRIS[120] }] })].join('\n');
    const { body } = await upload(gw, jsonl, 'rows.jsonl');
    const job = body.data.submitBatchJob;
    const done = await waitForStatus(gw, job.id, ['SUCCEEDED']);
    expect(done).toMatchObject({ total: 3, processed: 3 });
    const results = await allResults(gw, job.id);
    expect(results.map((r) => r.error)).toEqual([null, null, results[2].error]);
    expect(results.map((r) => r.prediction?.label ?? r.error.message).slice(0, 2)).toEqual(['setosa', 'versicolor']);
  });

  it('fails bad rows alone, each with its reason, and finishes the job', async () => {
    const lines = [
      IRIS[0]!.join(','), // ok
      '5.1,3.5,1.4', // wrong length
      '5.1,NaN,1.4,0.2', // non-finite
      '5.1,3.5,99,0.2', // out of the manifest's range
      '5.1,abc,1.4,0.2', // unparsable
      IRIS[149]!.join(','), // ok
    ];
    const { body } = await upload(gw, lines.join('\n'), 'mixed.csv');
    const done = await waitForStatus(gw, body.data.submitBatchJob.id, ['SUCCEEDED', 'FAILED']);
    expect(done).toMatchObject({ status: 'SUCCEEDED', total: 6, processed: 6, failed: 4, error: null });
    const results = await allResults(gw, done.id);
    expect(results.map((r) => (r.error ? r.error.code : r.prediction.label))).toEqual(['setosa', 'BAD_USER_INPUT', 'BAD_USER_INPUT', 'BAD_USER_INPUT', 'BAD_USER_INPUT', 'virginica']);
    expect(results[1].error.message).toMatch(/expected 4 values/);
    expect(results[2].error.message).toMatch(/not a finite number/);
    expect(results[3].error.message).toMatch(/petal_length_cm|at most|range|14/);
    expect(results[4].error.message).toMatch(/`abc` is not a number/);
  });

  it('refuses a job over MAX_BATCH_ROWS before anything is queued (rows and upload)', async () => {
    const before = await count(gw, 'SELECT COUNT(*) FROM "BatchJob"');
    const inline = await gw.gql(SUBMIT, { input: { model: 'iris', rows: Array.from({ length: 501 }, () => IRIS[0]) } });
    expect(inline.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(inline.body.errors?.[0]?.message).toMatch(/more than 500 rows/);
    const file = await upload(gw, Array.from({ length: 501 }, () => IRIS[0]!.join(',')).join('\n'), 'big.csv');
    expect(file.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(await count(gw, 'SELECT COUNT(*) FROM "BatchJob"')).toBe(before);
    expect(await count(gw, `SELECT COUNT(*) FROM "BatchRow" WHERE "jobId" NOT IN (SELECT "id" FROM "BatchJob")`)).toBe(0);
  });

  it('refuses an upload over MAX_UPLOAD_BYTES with 413 before anything is queued', async () => {
    const before = await count(gw, 'SELECT COUNT(*) FROM "BatchJob"');
    const big = Array.from({ length: 8000 }, () => IRIS[0]!.join(',')).join('\n'); // ~120 KB
    const { status, body } = await upload(gw, big, 'big.csv');
    expect(status).toBe(413);
    expect(body.errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
    expect(await count(gw, 'SELECT COUNT(*) FROM "BatchJob"')).toBe(before);
    expect((await gw.gql('{ __typename }')).status).toBe(200);
  });

  it('refuses both rows and file, neither, an unknown model and a bad notifyUrl with clear codes', async () => {
    const neither = await gw.gql(SUBMIT, { input: { model: 'iris' } });
    expect(neither.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
    const unknown = await gw.gql(SUBMIT, { input: { model: 'nope', rows: [IRIS[0]] } });
    expect(unknown.body.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_FOUND');
    const badUrl = await gw.gql(SUBMIT, { input: { model: 'iris', rows: [IRIS[0]], notifyUrl: 'ftp://x' } });
    expect(badUrl.body.errors?.[0]?.extensions?.issues).toEqual([{ path: ['input', 'notifyUrl'], message: 'expected an http or https URL' }]);
    const forged = await gw.gql(SUBMIT, { input: { model: 'iris', file: 'upload:00000000-0000-0000-0000-000000000000' } });
    expect(forged.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('returns the same job for the same idempotencyKey, and refuses the key for another model', async () => {
    const input = { model: 'iris', rows: IRIS.slice(0, 5), idempotencyKey: 'nightly-2026-12-02' };
    const first = (await gw.gql(SUBMIT, { input })).body.data.submitBatchJob;
    const again = (await gw.gql(SUBMIT, { input })).body.data.submitBatchJob;
    expect(again.id).toBe(first.id);
    expect(await count(gw, `SELECT COUNT(*) FROM "BatchJob" WHERE "idempotencyKey" = 'nightly-2026-12-02'`)).toBe(1);
    const other = await gw.gql(SUBMIT, { input: { ...input, model: 'diabetes', rows: [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]] } });
    expect(other.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('lists jobs newest first, by status, with cursors', async () => {
    const page1 = (await gw.gql(`{ batchJobs(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`)).body.data.batchJobs;
    expect(page1.edges).toHaveLength(2);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    const page2 = (await gw.gql(`query ($after: String) { batchJobs(first: 2, after: $after) { edges { node { id } } } }`, { after: page1.pageInfo.endCursor })).body.data.batchJobs;
    const ids = [...page1.edges, ...page2.edges].map((e: any) => e.node.id);
    expect(ids).toEqual([...ids].sort().reverse());
    const succeeded = (await gw.gql(`{ batchJobs(status: SUCCEEDED, first: 100) { edges { node { status } } } }`)).body.data.batchJobs.edges;
    expect(succeeded.length).toBeGreaterThan(0);
    expect(new Set(succeeded.map((e: any) => e.node.status))).toEqual(new Set(['SUCCEEDED']));
    expect((await gw.gql(JOB, { id: 'nope' })).body.data.batchJob).toBeNull();
  });

  it('downloads the whole results as CSV and JSON Lines, streamed, in row order', async () => {
    const rows = [...IRIS.slice(0, 40), [1, 2, 3]];
    const job = (await gw.gql(SUBMIT, { input: { model: 'iris', rows } })).body.data.submitBatchJob;
    await waitForStatus(gw, job.id, ['SUCCEEDED']);
    const csv = await fetch(`${gw.url}/batch-jobs/${job.id}/results.csv`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trimEnd().split('\n');
    expect(lines[0]).toBe('index,status,prediction_id,label,value,p_setosa,p_versicolor,p_virginica,error_code,error_message,outputs');
    expect(lines).toHaveLength(42);
    expect(lines[1]).toMatch(/^0,ok,[0-9a-f-]{36},setosa,,0\.9/);
    expect(lines[41]).toMatch(/^40,error,,,,,,,BAD_USER_INPUT,/);
    const jsonl = (await (await fetch(`${gw.url}/batch-jobs/${job.id}/results.jsonl`)).text()).trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(jsonl.map((r) => r.index)).toEqual(rows.map((_, i) => i));
    expect(jsonl[0]).toMatchObject({ index: 0, label: 'setosa' });
    expect(jsonl[40].error.code).toBe('BAD_USER_INPUT');
    const missing = await fetch(`${gw.url}/batch-jobs/nope/results.csv`);
    expect(missing.status).toBe(404);
  });

  it('cancels a running job after its chunk in flight: processed rows stay, nothing more is done', async () => {
    const rows = Array.from({ length: 480 }, (_, i) => IRIS[i % 150]!);
    const job = (await gw.gql(SUBMIT, { input: { model: 'iris', rows } })).body.data.submitBatchJob;
    const client = wsClient(gw.url);
    const progress = subscribeWs(client, `subscription ($id: ID!) { batchJobProgress(id: $id) { status processed } }`, { id: job.id });
    await progress.waitFor(3); // QUEUED/RUNNING, then at least one committed chunk
    const cancelled = (await gw.gql(`mutation ($id: ID!) { cancelBatchJob(id: $id) { status processed finishedAt } }`, { id: job.id })).body.data.cancelBatchJob;
    expect(cancelled.status).toBe('CANCELLED');
    await progress.done;
    await client.dispose();
    expect(progress.events.at(-1)!.data!.batchJobProgress.status).toBe('CANCELLED');
    await new Promise((r) => setTimeout(r, 300));
    const after = (await gw.gql(JOB, { id: job.id })).body.data.batchJob;
    expect(after.status).toBe('CANCELLED');
    expect(after.processed).toBe(cancelled.processed);
    expect(after.processed).toBeLessThan(480);
    expect(await count(gw, `SELECT COUNT(*) FROM "BatchRow" WHERE "jobId" = '${job.id}' AND "predictionId" IS NOT NULL`)).toBe(after.processed);
    const again = await gw.gql(`mutation ($id: ID!) { cancelBatchJob(id: $id) { status } }`, { id: job.id });
    expect(again.body.data.cancelBatchJob.status).toBe('CANCELLED');
    const unknown = await gw.gql(`mutation { cancelBatchJob(id: "nope") { status } }`);
    expect(unknown.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  describe('notifyUrl', () => {
    let receiver: Server;
    let receiverUrl: string;
    const received: Array<{ path: string; body: any }> = [];
    let failuresLeft = 0;
    beforeAll(async () => {
      receiver = createServer((req: IncomingMessage, res) => {
        let text = '';
        req.on('data', (c) => (text += c));
        req.on('end', () => {
          if (failuresLeft > 0) {
            failuresLeft--;
            res.writeHead(500).end();
            return;
          }
          received.push({ path: req.url!, body: JSON.parse(text) });
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

    it('POSTs the JSON summary when the job ends, retrying a failed attempt', async () => {
      failuresLeft = 1;
      const job = (await gw.gql(SUBMIT, { input: { model: 'iris', rows: IRIS.slice(0, 3), notifyUrl: `${receiverUrl}/hooks/batch` } })).body.data.submitBatchJob;
      await waitForStatus(gw, job.id, ['SUCCEEDED']);
      await gw.app.notifier.idle();
      expect(failuresLeft).toBe(0);
      expect(received).toEqual([
        { path: '/hooks/batch', body: { event: 'batchJob.finished', job: expect.objectContaining({ id: job.id, model: 'iris', status: 'SUCCEEDED', total: 3, processed: 3, failed: 0 }) } },
      ]);
      expect(await count(gw, `SELECT COUNT(*) FROM "BatchJob" WHERE "id" = '${job.id}' AND "notifiedAt" IS NOT NULL`)).toBe(1);
    });

    it('logs a notification that never gets through and still finishes the job', async () => {
      const job = (await gw.gql(SUBMIT, { input: { model: 'iris', rows: IRIS.slice(0, 2), notifyUrl: 'http://127.0.0.1:1/unreachable' } })).body.data.submitBatchJob;
      const done = await waitForStatus(gw, job.id, ['SUCCEEDED', 'FAILED']);
      expect(done.status).toBe('SUCCEEDED');
      await gw.app.notifier.idle();
      const lines = gw.logs.filter((l) => l.job === job.id && /notification/.test(l.msg));
      expect(lines.filter((l) => l.msg === 'batch job notification failed')).toHaveLength(3);
      expect(lines.at(-1)!.msg).toBe('batch job notification given up');
    });
  });
});

describe('batch jobs when their model version changes under them', () => {
  const ROWS = Array.from({ length: 3000 }, (_, i) => IRIS[i % 150]!);

  async function runningJob(gw: TestGateway) {
    const job = (await gw.gql(SUBMIT, { input: { model: 'iris', rows: ROWS } })).body.data.submitBatchJob;
    const deadline = Date.now() + 20_000;
    for (;;) {
      const now = (await gw.gql(JOB, { id: job.id })).body.data.batchJob;
      if (now.processed > 0) return now;
      if (Date.now() > deadline) throw new Error('the job never started');
      await new Promise((r) => setImmediate(r));
    }
  }

  it('ends FAILED with the reason when the version fails mid-way; the rows done stay', async () => {
    const gw = await startGateway({ env: { BATCH_CHUNK_ROWS: '10' } });
    try {
      const job = await runningJob(gw);
      await gw.app.models.fail('iris', 1, 'the disk is on fire');
      const done = await waitForStatus(gw, job.id, ['FAILED', 'SUCCEEDED']);
      expect(done.status).toBe('FAILED');
      expect(done.error).toMatch(/the disk is on fire/);
      expect(done.processed).toBeLessThan(ROWS.length);
      expect(await count(gw, `SELECT COUNT(*) FROM "BatchRow" WHERE "jobId" = '${job.id}' AND "predictionId" IS NOT NULL`)).toBe(done.processed);
    } finally {
      await gw.close();
    }
  });

  it('goes on with the new session when the version is swapped mid-way, every row done once', async () => {
    const gw = await startGateway({ env: { BATCH_CHUNK_ROWS: '10' } });
    try {
      const job = await runningJob(gw);
      const current = gw.app.models.resolve('iris', 1);
      const fresh = await loadServedVersion({ name: 'iris', version: 1, path: 'models/iris/1/model.onnx', manifest: current.manifest }, { log: pino({ level: 'silent' }) });
      await gw.app.models.swap('iris', 1, fresh);
      const done = await waitForStatus(gw, job.id, ['FAILED', 'SUCCEEDED']);
      expect(done).toMatchObject({ status: 'SUCCEEDED', processed: ROWS.length, failed: 0 });
      expect(fresh.stats.rows).toBeGreaterThan(0); // the rest ran on the new session
      expect(await count(gw, `SELECT COUNT(DISTINCT "predictionId") FROM "BatchRow" WHERE "jobId" = '${job.id}'`)).toBe(ROWS.length);
    } finally {
      await gw.close();
    }
  });
});

describe('uploads a stopped process never finished', () => {
  it('are deleted with their rows once older than the cut-off; younger ones (another replica\'s, in progress) stay', async () => {
    const gw = await startGateway();
    try {
      await gw.app.batchWorkerStarted; // its own sweep at start must not race this test's
      const insert = `INSERT INTO "BatchJob" ("id", "modelName", "version", "status", "format", "total", "createdAt") VALUES ($1, 'iris', 1, 'UPLOADING', 'CSV', 0, $2)`;
      await gw.query(insert, ['old-upload', '2026-01-01T00:00:00.000+00:00']);
      await gw.query(insert, ['young-upload', new Date().toISOString().replace('Z', '+00:00')]);
      await gw.query(`INSERT INTO "BatchRow" ("jobId", "index", "input") VALUES ('old-upload', 0, '1,2,3,4'), ('young-upload', 0, '1,2,3,4')`);
      expect(await gw.app.batchJobStore.deleteUnfinishedUploads(new Date(Date.now() - 60_000))).toBe(1);
      expect(Number(await count(gw, `SELECT COUNT(*) FROM "BatchJob" WHERE "id" = 'young-upload'`))).toBe(1);
      expect(Number(await count(gw, `SELECT COUNT(*) FROM "BatchJob" WHERE "id" = 'old-upload'`))).toBe(0);
      expect(Number(await count(gw, `SELECT COUNT(*) FROM "BatchRow" WHERE "jobId" = 'old-upload'`))).toBe(0);
      expect((await gw.gql(JOB, { id: 'young-upload' })).body.data.batchJob).toBeNull(); // invisible while uploading
    } finally {
      await gw.close();
    }
  });
});
