import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeRawSse, subscribeSse, subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { onPublish, watchGenerations, watchSubscribers } from './helpers/observe.ts';

const CREATED = `subscription($model: String) { predictionCreated(model: $model) { id modelName label } }`;
const GENERATE_SUB = `subscription($input: GenerateInput!) { generate(input: $input) { index token text done finishReason predictionId } }`;
const GENERATE_MUT = `mutation($input: GenerateInput!) { generate(input: $input) { text tokens finishReason prediction { id prompt text finishReason } } }`;
const IRIS = [5.1, 3.5, 1.4, 0.2];
const DIABETES = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.86, 87];

let gw: TestGateway;
let ws: Client;
beforeAll(async () => {
  gw = await startGateway({ env: { MAX_GENERATIONS: '24' } });
  ws = wsClient(gw.url);
});
afterAll(async () => {
  await ws.dispose();
  await gw.close();
});

const predict = (model: string, features: number[]) =>
  gw.gql(`mutation($m: String!, $f: [Float!]!) { predict(input: { model: $m, features: $f }) { id } }`, { m: model, f: features });
const fortuneRuns = () => gw.app.models.get('fortune')!.versions[0]!.served!.stats.runs;
describe('predictionCreated', () => {
  it('delivers exactly the predictions made, filtered by model, over WebSocket and SSE', async () => {
    const subscribers = watchSubscribers(gw.app.bus);
    const irisWs = subscribeWs(ws, CREATED, { model: 'iris' });
    const allWs = subscribeWs(ws, CREATED);
    const irisSse = subscribeSse(gw.url, CREATED, { model: 'iris' });
    await subscribers.listening(2); // the two `model: "iris"` subscriptions share one execution
    subscribers.restore();

    const ids: Record<string, string[]> = { iris: [], diabetes: [] };
    for (let i = 0; i < 3; i++) ids.iris!.push((await predict('iris', IRIS)).body.data.predict.id);
    for (let i = 0; i < 2; i++) ids.diabetes!.push((await predict('diabetes', DIABETES)).body.data.predict.id);
    const failed = await predict('iris', [1, 2]); // BAD_USER_INPUT: nothing committed, nothing published
    expect(failed.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    // Events arrive in order: anything published for the failed request would come before this one.
    ids.iris!.push((await predict('iris', IRIS)).body.data.predict.id);

    await Promise.all([irisWs.waitFor(4), allWs.waitFor(6), irisSse.waitFor(4)]);
    expect(irisWs.events.map((e) => e.data!.predictionCreated.id)).toEqual(ids.iris);
    expect(irisSse.events.map((e) => e.data!.predictionCreated.id)).toEqual(ids.iris);
    expect(allWs.events.map((e) => e.data!.predictionCreated.id)).toEqual([...ids.iris!.slice(0, 3), ...ids.diabetes!, ids.iris![3]]);
    expect(irisWs.events[0]!.data!.predictionCreated).toMatchObject({ modelName: 'iris', label: 'setosa' });
    for (const s of [irisWs, allWs, irisSse]) s.unsubscribe();
  });

  it('publishes a prediction (generations included) only once its row is committed, read at the moment of publishing', async () => {
    // The read starts inside the publish call: on SQLite it is done there (synchronous
    // better-sqlite3); on PostgreSQL it is sent then, on a connection of the test's own.
    const published: Array<Promise<{ id: string; committed: boolean }>> = [];
    const stop = onPublish(gw.app.bus, (topic, p) => {
      if (topic !== 'prediction.created' && topic !== 'batch-job.progress') return;
      const { id } = p as { id: string };
      published.push(gw.query('SELECT 1 FROM "Prediction" WHERE "id" = $1', [id]).then((rows) => ({ id, committed: rows.length > 0 })));
    });
    try {
      const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => predict(i % 2 ? 'iris' : 'diabetes', i % 2 ? IRIS : DIABETES)));
      const alone = await predict('iris', IRIS);
      const generated = await gw.gql(GENERATE_MUT, { input: { model: 'fortune', prompt: 'The ', maxTokens: 3, seed: 1 } });
      const ids = [...burst, alone].map((r) => r.body.data.predict.id).concat(generated.body.data.generate.prediction.id);
      const seen = await Promise.all(published);
      expect(seen.map((p) => p.id).sort()).toEqual([...ids].sort());
      expect(seen.filter((p) => !p.committed)).toEqual([]);
    } finally {
      stop();
    }
  });
});

describe('generate', () => {
  const input = { model: 'fortune', prompt: 'The ', maxTokens: 40, temperature: 0.8, seed: 42 };

  it('streams tokens over SSE, then a final event with the stored prediction', async () => {
    const sub = subscribeRawSse(gw.url, GENERATE_SUB, { input });
    await sub.done;
    const events = sub.events.map((e) => e.data!.generate);
    expect(events).toHaveLength(41);
    events.slice(0, 40).forEach((e: any, i: number) => {
      expect(e).toMatchObject({ index: i, done: false, finishReason: null, predictionId: null });
      expect(e.token).toHaveLength(1);
      expect(e.text).toBe(events.slice(0, i + 1).map((x: any) => x.token).join(''));
    });
    const last = events.at(-1);
    expect(last).toMatchObject({ index: 40, token: '', done: true, finishReason: 'LENGTH', text: events[39].text });
    const stored = await gw.gql(`query($id: ID!) { prediction(id: $id) { modelName prompt text finishReason model { kind } } }`, { id: last.predictionId });
    expect(stored.body.data.prediction).toEqual({ modelName: 'fortune', prompt: 'The ', text: last.text, finishReason: 'LENGTH', model: { kind: 'GENERATOR' } });
  });

  it('gives the same text for the same seed over WebSocket and through the mutation, and another text for another seed', async () => {
    const sub = subscribeWs(ws, GENERATE_SUB, { input });
    await sub.done;
    const streamed = sub.events.at(-1)!.data.generate;
    const once = (await gw.gql(GENERATE_MUT, { input })).body.data.generate;
    expect(once).toMatchObject({ text: streamed.text, tokens: 40, finishReason: 'LENGTH' });
    expect(once.prediction).toMatchObject({ prompt: 'The ', text: streamed.text, finishReason: 'LENGTH' });
    const other = (await gw.gql(GENERATE_MUT, { input: { ...input, seed: 43 } })).body.data.generate;
    expect(other.text).not.toBe(streamed.text);
    const greedy = (await gw.gql(GENERATE_MUT, { input: { ...input, temperature: 0, seed: null } })).body.data.generate;
    const greedyAgain = (await gw.gql(GENERATE_MUT, { input: { ...input, temperature: 0, seed: 5 } })).body.data.generate;
    expect(greedy.text).toBe(greedyAgain.text);
  });

  it('stops at a stop sequence and cuts it from the text', async () => {
    const res = await gw.gql(GENERATE_MUT, { input: { model: 'fortune', prompt: 'Q: ', maxTokens: 400, temperature: 0, stop: ['\n'] } });
    const g = res.body.data.generate;
    expect(g.finishReason).toBe('STOP');
    expect(g.text).not.toContain('\n');
    expect(g.tokens).toBeLessThan(400);
    expect(g.text.length).toBe(g.tokens - 1);
  });

  it('rejects bad requests with BAD_USER_INPUT issues before decoding', async () => {
    const runs = fortuneRuns();
    const res = await gw.gql(GENERATE_MUT, { input: { model: 'fortune', prompt: 'Héllo ✓', maxTokens: 0, temperature: 2.5 } });
    expect(res.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(res.body.errors![0]!.extensions!.issues.map((i: any) => i.path)).toEqual([['input', 'maxTokens'], ['input', 'temperature']]);
    const chars = await gw.gql(GENERATE_MUT, { input: { model: 'fortune', prompt: 'Héllo ✓' } });
    expect(chars.body.errors![0]!.extensions!.issues).toEqual([
      { path: ['input', 'prompt'], message: 'characters not in the vocabulary of `fortune`: "é" at 1, "✓" at 6' },
    ]);
    const notGenerator = subscribeWs(ws, GENERATE_SUB, { input: { model: 'iris', prompt: 'x' } });
    await notGenerator.done;
    expect(notGenerator.events[0]!.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(fortuneRuns()).toBe(runs);
  });
});

describe('cancellation and fairness', () => {
  const long = { model: 'fortune', prompt: 'The '.repeat(300), maxTokens: 512, temperature: 1, seed: 1 };

  it.each(['WebSocket', 'SSE'])('stops decoding at the token under way when the %s client unsubscribes, and stores nothing', async (transport) => {
    const rowsBefore = await gw.countRows();
    const runsBefore = fortuneRuns();
    const server = watchGenerations(gw.app.generationService, fortuneRuns);
    try {
      const sub = transport === 'WebSocket' ? subscribeWs(ws, GENERATE_SUB, { input: long }) : subscribeRawSse(gw.url, GENERATE_SUB, { input: long });
      await sub.waitFor(3);
      sub.unsubscribe();
      const [stream] = server.streams;
      await stream!.released; // the transport returned the stream and its slot is free
      expect(gw.app.generationService.active).toBe(0);
      // Every run made a token the server handed on, but for the one under way when the client left.
      const runs = fortuneRuns() - runsBefore;
      expect(runs).toBeGreaterThanOrEqual(stream!.tokens);
      expect(runs).toBeLessThanOrEqual(stream!.tokens + 1);
      expect(stream!.tokens).toBeGreaterThanOrEqual(sub.events.length);
      expect(fortuneRuns()).toBe(stream!.runsAtReturn); // no run began after the transport's return()
    } finally {
      server.restore();
    }
    // Nothing decodes on for the listener that is gone: the next 20-token generation costs 20 runs.
    const runsBeforeNext = fortuneRuns();
    expect((await gw.gql(GENERATE_MUT, { input: { model: 'fortune', prompt: 'The ', maxTokens: 20, seed: 2 } })).body.data.generate.tokens).toBe(20);
    expect(fortuneRuns() - runsBeforeNext).toBe(20);
    expect(await gw.countRows()).toBe(rowsBefore + 1); // the abandoned generation is not stored; the finished one is
  });

  it('interleaves 20 generations token by token, and a predict never waits for them: each advances a few tokens during one', async () => {
    const subs = Array.from({ length: 20 }, (_, i) =>
      subscribeWs(ws, `subscription($input: GenerateInput!) { generate(input: $input) { index done } }`, {
        input: { model: 'fortune', prompt: 'A man '.repeat(50), maxTokens: 200, temperature: 1, seed: i },
      }),
    );
    await Promise.all(subs.map((s) => s.waitFor(1)));
    const runsDuringPredict: number[] = [];
    while (subs.some((s) => s.events.length < 150)) {
      const runs = fortuneRuns();
      const res = await predict('iris', IRIS);
      runsDuringPredict.push(fortuneRuns() - runs);
      expect(res.body.data.predict.id).toBeDefined();
    }
    // A predict takes a few event-loop turns, each worth at most a token of every generation
    // (measured: 3 to 4); a predict queued behind the generations would see thousands of runs.
    expect(Math.max(...runsDuringPredict)).toBeLessThanOrEqual(20 * 10);
    expect(runsDuringPredict.length).toBeGreaterThan(10);
    // Every generation was under way before any finished: they interleave.
    const firstFinished = Math.min(...subs.map((s) => s.events.findIndex((e) => e.data.generate.done)).filter((i) => i >= 0), Infinity);
    expect(firstFinished).toBe(Infinity);
    await Promise.all(subs.map((s) => s.done));
    for (const s of subs) expect(s.events.at(-1)!.data.generate).toEqual({ index: 200, done: true });
  });

  it('refuses generations beyond MAX_GENERATIONS with TOO_MANY_REQUESTS, and accepts again when one ends', async () => {
    const server = watchGenerations(gw.app.generationService, fortuneRuns);
    const subs = Array.from({ length: 24 }, () => subscribeWs(ws, GENERATE_SUB, { input: long }));
    await Promise.all(subs.map((s) => s.waitFor(1)));
    const extra = await gw.gql(GENERATE_MUT, { input: { ...long, maxTokens: 1 } });
    expect(extra.body.errors![0]!.extensions).toMatchObject({ code: 'TOO_MANY_REQUESTS', limit: 24 });
    const extraSub = subscribeRawSse(gw.url, GENERATE_SUB, { input: long });
    await extraSub.done;
    expect(extraSub.events[0]!.errors![0]!.extensions!.code).toBe('TOO_MANY_REQUESTS');
    subs[0]!.unsubscribe();
    await Promise.race(server.streams.map((s) => s.released));
    const again = await gw.gql(GENERATE_MUT, { input: { ...long, maxTokens: 1 } });
    expect(again.body.data.generate.tokens).toBe(1);
    for (const s of subs) s.unsubscribe();
    await Promise.all(server.streams.map((s) => s.released));
    server.restore();
    expect(gw.app.generationService.active).toBe(0);
  });
});
