import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { subscribeRawSse } from './helpers/clients.ts';
import { spawnGateway, startGatewayProcess, waitFor } from './helpers/process.ts';

describe('process lifecycle', () => {
  it('a bad variable stops start-up with one line naming it', async () => {
    const { exited, stderr } = spawnGateway({ PORT: 'abc' });
    expect((await exited).code).toBe(1);
    expect(stderr().trim().split('\n')).toEqual(['Invalid configuration: PORT: expected an integer from 0 to 65535, got "abc"']);
  });

  it('on SIGTERM stops accepting, finishes the request in flight, and exits 0', async () => {
    const gw = await startGatewayProcess();
    await waitFor(async () => (await fetch(`${gw.url}/readyz`)).status === 200);

    // A predict whose body is only half sent when the signal arrives.
    const body = JSON.stringify({ query: 'mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id label } }' });
    const { port } = new URL(gw.url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let response = '';
    socket.on('data', (chunk) => (response += String(chunk)));
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    // `Expect: 100-continue`: the server answers 100 once it has the request, so the signal
    // below certainly finds it in flight.
    const continued = new Promise<void>((resolve) => socket.on('data', () => response.startsWith('HTTP/1.1 100 Continue\r\n\r\n') && resolve()));
    socket.write(
      `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`,
    );
    await continued;
    socket.write(body.slice(0, 20));

    gw.child.kill('SIGTERM');
    await waitFor(async () => gw.lines.some((l) => l.msg?.startsWith('shutting down')));
    // No new connections once shutdown has begun.
    await expect(fetch(`${gw.url}/healthz`)).rejects.toThrow();

    socket.write(body.slice(20));
    await ended;
    response = response.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '');
    expect(response).toMatch(/^HTTP\/1\.1 200/);
    const json = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4).replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, ''));
    expect(json.data.predict.label).toBe('setosa');

    expect(await gw.exited).toEqual({ code: 0, signal: null });
    if (gw.lines.at(-1)!.msg !== 'stopped') console.log('last log lines of the gateway:', JSON.stringify(gw.lines.slice(-8).map((l) => l.msg)));
    expect(gw.lines.at(-1)!.msg).toBe('stopped');
    expect(await gw.query('SELECT "id" FROM "Prediction"')).toEqual([{ id: json.data.predict.id }]);
  });
});

describe('shutdown during a generation', () => {
  it('ends the stream with a CANCELLED event whose prediction is stored, then exits 0', async () => {
    const gw = await startGatewayProcess();
    await waitFor(async () => (await fetch(`${gw.url}/readyz`)).status === 200);
    const sub = subscribeRawSse(gw.url, `subscription($input: GenerateInput!) { generate(input: $input) { index done finishReason predictionId text } }`, {
      input: { model: 'fortune', prompt: 'The '.repeat(500), maxTokens: 512, temperature: 1, seed: 3 },
    });
    await sub.waitFor(5);
    gw.child.kill('SIGTERM');
    await sub.done;
    const last = sub.events.at(-1)!.data.generate;
    expect(last).toMatchObject({ done: true, finishReason: 'CANCELLED' });
    expect(last.index).toBeLessThan(512);
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    const [row] = await gw.query<{ generation: string }>('SELECT "generation" FROM "Prediction" WHERE "id" = $1', [last.predictionId]);
    expect(JSON.parse(row!.generation)).toMatchObject({ finishReason: 'CANCELLED', text: last.text, tokens: last.index });
  });

  it('completes open subscriptions on SIGTERM: `event: complete` over SSE, a `complete` message over WebSocket before the 1001 close, then exits 0', async () => {
    const gw = await startGatewayProcess();
    await waitFor(async () => (await fetch(`${gw.url}/readyz`)).status === 200);
    const sse = subscribeRawSse(gw.url, 'subscription { predictionCreated { id } }');
    await sse.connected;
    const socket = new WebSocket(gw.url.replace('http', 'ws') + '/graphql', 'graphql-transport-ws');
    const messages: Array<{ id?: string; type: string }> = [];
    socket.on('message', (data) => messages.push(JSON.parse((data as Buffer).toString('utf8'))));
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init' }));
    await waitFor(async () => messages.some((m) => m.type === 'connection_ack'));
    socket.send(JSON.stringify({ id: 's', type: 'subscribe', payload: { query: 'subscription { predictionCreated { id } }' } }));
    // Both are listening once a prediction reaches them.
    await waitFor(async () => {
      await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id } }' }) });
      return sse.events.length > 0 && messages.some((m) => m.id === 's' && m.type === 'next');
    });

    gw.child.kill('SIGTERM');
    await sse.done; // returns on `event: complete` (a cut connection would throw)
    expect(await closed).toBe(1001);
    expect(messages.filter((m) => m.id === 's').at(-1)).toEqual({ id: 's', type: 'complete' });
    expect(await gw.exited).toEqual({ code: 0, signal: null });
  });
});
