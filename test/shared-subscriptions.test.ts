import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeSse, subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.close());

describe('shared subscription executions', () => {
  it('shares one execution between identical broadcast subscriptions, one per distinct variables', async () => {
    const client = wsClient(gw.url);
    const q = `subscription ($m: String) { predictionCreated(model: $m) { id label } }`;
    const iris = [subscribeWs(client, q, { m: 'iris' }), subscribeSse(gw.url, q, { m: 'iris' }), subscribeWs(client, q, { m: 'iris' })];
    const all = subscribeWs(client, q, {});
    while (gw.app.sharedSubscriptions().subscribers.length < 4) await new Promise((r) => setTimeout(r, 5));
    expect(gw.app.sharedSubscriptions().executions).toBe(2);
    const id = (await gw.gql(`mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id } }`)).body.data.predict.id;
    await Promise.all([...iris, all].map((s) => s.waitFor(1)));
    for (const s of [...iris, all]) expect(s.events[0]!.data!.predictionCreated).toEqual({ id, label: 'setosa' });
    iris[0]!.unsubscribe();
    const second = (await gw.gql(`mutation { predict(input: { model: "iris", features: [6.7, 3.0, 5.2, 2.3] }) { id } }`)).body.data.predict.id;
    await Promise.all([iris[1]!, iris[2]!].map((s) => s.waitFor(2)));
    expect(iris[2]!.events[1]!.data!.predictionCreated.id).toBe(second); // the others go on when one member leaves
    for (const s of [...iris.slice(1), all]) s.unsubscribe();
    while (gw.app.sharedSubscriptions().executions > 0) await new Promise((r) => setTimeout(r, 5));
    expect(gw.app.bus.queues('prediction.created')).toEqual([]);
    await client.dispose();
  });

  it('never shares a generation: two identical generate subscriptions each decode and store their own', async () => {
    const client = wsClient(gw.url);
    const q = `subscription { generate(input: { model: "fortune", prompt: "The ", maxTokens: 8, seed: 7 }) { done predictionId } }`;
    const [a, b] = [subscribeWs(client, q), subscribeWs(client, q)];
    await Promise.all([a.done, b.done]);
    const ids = [a, b].map((s) => s.events.at(-1)!.data!.generate.predictionId);
    expect(ids[0]).toBeTruthy();
    expect(ids[1]).toBeTruthy();
    expect(ids[0]).not.toBe(ids[1]);
    await client.dispose();
  });

  it('gives every subscriber its own refusal (an unknown batch job id)', async () => {
    const client = wsClient(gw.url);
    const q = `subscription { batchJobProgress(id: "nope") { status } }`;
    const [a, b] = [subscribeWs(client, q), subscribeWs(client, q)];
    await Promise.all([a.done, b.done]);
    for (const s of [a, b]) expect(s.events[0]!.errors![0]!.extensions!.code).toBe('NOT_FOUND');
    expect(gw.app.sharedSubscriptions().executions).toBe(0);
    await client.dispose();
  });
});
