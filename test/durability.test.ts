import { describe, expect, it } from 'vitest';
import { startGatewayProcess, waitFor } from './helpers/process.ts';

const PREDICT = JSON.stringify({
  query: 'mutation($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id } }',
  variables: { f: [5.1, 3.5, 1.4, 0.2] },
});

describe('group commit under SIGKILL', () => {
  it('every prediction a client received an answer for is in the history after a kill -9 and restart', { timeout: 60_000 }, async () => {
    const first = await startGatewayProcess();
    await waitFor(async () => (await fetch(`${first.url}/readyz`)).status === 200);

    const acknowledged: string[] = [];
    let failures = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        try {
          const res = await fetch(`${first.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: PREDICT });
          const body = await res.json();
          if (body.data?.predict?.id) acknowledged.push(body.data.predict.id);
        } catch {
          failures++; // in flight when the process died: never acknowledged
        }
      }
    };
    const workers = Array.from({ length: 32 }, worker);
    await waitFor(async () => acknowledged.length >= 1500);
    first.child.kill('SIGKILL');
    await first.exited;
    stop = true;
    await Promise.all(workers);

    // Batches really formed: more than one row per commit on average (the log has no stats; the count of rows does).
    const second = await startGatewayProcess({ DATABASE_URL: first.databaseUrl });
    await waitFor(async () => (await fetch(`${second.url}/readyz`)).status === 200);
    const check = await fetch(`${second.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `query($id: ID!) { prediction(id: $id) { id } }`, variables: { id: acknowledged.at(-1) } }),
    });
    expect((await check.json()).data.prediction.id).toBe(acknowledged.at(-1));
    second.child.kill('SIGTERM');
    await second.exited;

    const stored = new Set((await first.query<{ id: string }>('SELECT "id" FROM "Prediction"')).map((r) => r.id));
    const missing = acknowledged.filter((id) => !stored.has(id));
    expect(acknowledged.length).toBeGreaterThanOrEqual(1500);
    expect(missing).toEqual([]);
    expect(stored.size).toBeGreaterThanOrEqual(acknowledged.length);
    expect(stored.size - acknowledged.length).toBeLessThanOrEqual(32 + failures); // only requests in flight at the kill
  });
});
