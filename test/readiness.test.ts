import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const readyz = async (url: string) => {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.json() };
};

describe('/readyz', () => {
  it('answers 503 with JSON naming the LOADING version, then 200 with every version once loaded (FAILED counts as settled)', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'ready-'));
    cpSync('models/iris', join(repo, 'iris'), { recursive: true });
    mkdirSync(join(repo, 'broken', '1'), { recursive: true });
    execFileSync('cp', ['/dev/null', join(repo, 'broken', '1', 'model.onnx')]);
    mkdirSync(join(repo, 'slow', '1'), { recursive: true });
    const fifo = join(repo, 'slow', '1', 'model.onnx');
    execFileSync('mkfifo', [fifo]); // loading blocks until the test writes the model into the pipe
    gw = await startGateway({ modelRepository: repo, waitForModels: false });

    const loading = await readyz(gw.url);
    expect(loading).toMatchObject({ status: 503, type: expect.stringContaining('application/json') });
    expect(loading.body).toMatchObject({ status: 'not_ready', database: 'ok' });
    expect(loading.body.models).toContainEqual({ name: 'slow', version: 1, status: 'LOADING', error: null });

    const pipe = await open(fifo, 'w');
    await pipe.write(readFileSync('models/iris/1/model.onnx'));
    await pipe.close();
    await gw.app.modelsLoaded;
    const ready = await readyz(gw.url);
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      status: 'ready',
      database: 'ok',
      models: [
        { name: 'broken', version: 1, status: 'FAILED', error: expect.any(String) },
        { name: 'iris', version: 1, status: 'READY', error: null },
        { name: 'slow', version: 1, status: 'READY', error: null },
      ],
    });
  });

  it('answers 503 with database "unavailable" when the history table does not answer, and keeps the error itself in the log', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'ready-'));
    cpSync('models/iris', join(repo, 'iris'), { recursive: true });
    gw = await startGateway({ modelRepository: repo });
    expect((await readyz(gw.url)).status).toBe(200);

    await gw.query('ALTER TABLE "Prediction" RENAME TO "Moved"');
    try {
      const res = await fetch(`${gw.url}/readyz`);
      const text = await res.text();
      expect(res.status).toBe(503);
      expect(JSON.parse(text)).toMatchObject({ status: 'not_ready', database: 'unavailable' });
      expect(text).not.toMatch(/no such table|does not exist|Prediction|sqlite|postgres/i);
      // SQLite: "no such table: Prediction"; PostgreSQL: `relation "Prediction" does not exist`.
      expect(gw.logs.some((l) => l.msg === 'readiness: the database does not answer' && /no such table|does not exist/.test(JSON.stringify(l.err)))).toBe(true);
    } finally {
      await gw.query('ALTER TABLE "Moved" RENAME TO "Prediction"');
    }
    expect((await readyz(gw.url)).status).toBe(200);
  });
});
