import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeRawSse, subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

const BUFFER_BYTES = 2 * 1024 * 1024;
let gw: TestGateway;
let ws: Client;
beforeAll(async () => {
  gw = await startGateway({ eventBus: { bufferBytes: BUFFER_BYTES } });
  ws = wsClient(gw.url);
});
afterAll(async () => {
  await ws.dispose();
  await gw.close();
});

const queues = () => gw.app.sharedSubscriptions().subscribers;
/** Resolves once the server holds `n` prediction subscribers (checked every 5 ms). */
async function subscribers(n: number): Promise<void> {
  while (queues().length !== n) await new Promise((r) => setTimeout(r, 5));
}

describe('subscribers at scale', () => {
  it('serves 1,000 identical predictionCreated subscriptions from one execution (one bus subscriber), without a MaxListenersExceeded warning, each getting the event', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const subs = Array.from({ length: 1000 }, () => subscribeWs(ws, `subscription { predictionCreated(model: "iris") { id } }`));
      await subscribers(1000);
      expect(gw.app.bus.queues('prediction.created')).toHaveLength(1);
      expect(gw.app.sharedSubscriptions().executions).toBe(1);
      const res = await gw.gql(`mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id } }`);
      await Promise.all(subs.map((s) => s.waitFor(1)));
      expect(subs.every((s) => s.events[0]!.data!.predictionCreated.id === res.body.data.predict.id)).toBe(true);
      for (const s of subs) s.unsubscribe();
      await subscribers(0);
      expect(gw.app.sharedSubscriptions().executions).toBe(0);
      await new Promise((r) => setImmediate(r)); // process warnings are emitted on the next tick
      expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a stalled SSE subscriber overflows its byte-bounded buffer (oldest dropped) while every predict is answered', async () => {
    const rows = 10_000;
    const data = Array.from({ length: rows * 4 }, (_, i) => [5.1, 3.5, 1.4, 0.2][i % 4]!);
    const stalled = subscribeRawSse(gw.url, `subscription { predictionCreated { id inputs { data } outputs { data } } }`);
    await stalled.connected;
    await subscribers(1);
    stalled.pause();
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await gw.gql(`mutation($d: [Float!]!) { predict(input: { model: "iris", inputs: [{ name: "features", datatype: FP32, shape: [${rows}, 4], data: $d }] }) { id } }`, { d: data });
      ids.push(res.body.data.predict.id);
    }
    // Every predict was answered while the subscriber read nothing; its queue dropped the oldest events.
    const [queue] = queues();
    expect(queue!.dropped).toBeGreaterThan(0);
    // Sizes of results as JSON text: about 18 characters per number.
    const oneEvent = (rows * 4 + rows * 3) * 24 + 512;
    expect(queue!.peakBytes).toBeLessThanOrEqual(BUFFER_BYTES + oneEvent);
    stalled.resume();
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (stalled.events.at(-1)?.data?.predictionCreated.id === ids.at(-1)) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    const received = stalled.events.map((e) => e.data!.predictionCreated.id);
    expect(received.length).toBeLessThan(ids.length);
    expect(received).toEqual(ids.filter((id) => received.includes(id))); // in order, a subset ending with the newest
    stalled.unsubscribe();
  });
});
