import { createServer as createTcpServer, connect, type AddressInfo } from 'node:net';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { spawnGateway, startGatewayProcess, waitFor } from './helpers/process.ts';

const ready = (url: string) => waitFor(async () => (await fetch(`${url}/readyz`)).status === 200);

/** A graphql-transport-ws connection spoken by hand, so the test can also send WebSocket pings. */
async function openGraphqlWs(url: string) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
  const messages: any[] = [];
  // Text frames arrive as one Buffer (ws's default binaryType).
  socket.on('message', (data) => messages.push(JSON.parse((data as Buffer).toString())));
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(JSON.stringify({ type: 'connection_init' }));
  await waitFor(async () => messages.some((m) => m.type === 'connection_ack'));
  return { socket, messages };
}

describe('shutdown', () => {
  it('lets a predict in flight over WebSocket finish (answer sent, row committed) before sessions and the database close', async () => {
    // iris whose batcher holds a request for a whole second waiting for company: the
    // predict is in flight, with the event loop free, when the signal arrives.
    const repo = mkdtempSync(join(tmpdir(), 'shutdown-'));
    cpSync('models/iris', join(repo, 'iris'), { recursive: true });
    const manifest = JSON.parse(readFileSync(join(repo, 'iris', 'model.json'), 'utf8'));
    writeFileSync(join(repo, 'iris', 'model.json'), JSON.stringify({ ...manifest, batching: { maxBatchSize: 8, maxQueueDelayMs: 1000 } }));
    const gw = await startGatewayProcess({ MODEL_REPOSITORY: repo });
    await ready(gw.url);
    const { socket, messages } = await openGraphqlWs(gw.url);
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));

    socket.send(JSON.stringify({ id: 'p', type: 'subscribe', payload: { query: 'mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id label } }' } }));
    // The pong comes back once the server has read the frames before it: the predict is queued.
    socket.ping();
    await new Promise((resolve) => socket.once('pong', resolve));
    gw.child.kill('SIGTERM');

    expect(await closed).toBe(1001); // closed by the server, after the answer
    const answer = messages.find((m) => m.id === 'p' && m.type === 'next');
    expect(answer?.payload.errors).toBeUndefined();
    const id = answer.payload.data.predict.id;
    expect(messages.filter((m) => m.id === 'p').map((m) => m.type)).toEqual(['next', 'complete']);
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    expect(await gw.query('SELECT "id" FROM "Prediction"')).toEqual([{ id }]);
  });

  it('past SHUTDOWN_TIMEOUT_MS logs what it abandons and exits 1 instead of hanging on a stalled WebSocket', async () => {
    const gw = await startGatewayProcess({ SHUTDOWN_TIMEOUT_MS: '1500' });
    await ready(gw.url);
    // A client that completes the WebSocket handshake and then never answers anything,
    // not even the server's close frame.
    const { port } = new URL(gw.url);
    const stalled = connect(Number(port), '127.0.0.1');
    await new Promise((resolve) => stalled.once('connect', resolve));
    stalled.write(
      'GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n',
    );
    await new Promise((resolve) => stalled.once('data', resolve)); // 101 Switching Protocols
    stalled.pause();

    gw.child.kill('SIGTERM');
    const exit = await gw.exited;
    stalled.destroy();
    expect(exit).toEqual({ code: 1, signal: null });
    const last = gw.lines.at(-1)!;
    expect(last).toMatchObject({ level: 50, msg: 'shutdown deadline passed: abandoning work in flight', timeoutMs: 1500 });
    expect(last.abandoned).toEqual({ generations: 0, webSocketOperations: 0, webSockets: 1 });
  });
});

describe('listening', () => {
  it('a port already in use is one clear log line and exit 1', async () => {
    const blocker = createTcpServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const dbFile = join(mkdtempSync(join(tmpdir(), 'inuse-')), 'h.db');
      const { child, exited, stderr } = spawnGateway({ PORT: String(port), DATABASE_URL: `file:${dbFile}` });
      let stdout = '';
      child.stdout!.on('data', (chunk) => (stdout += chunk));
      expect((await exited).code).toBe(1);
      const fatal = stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.level >= 50);
      expect(fatal).toEqual([expect.objectContaining({ msg: `cannot listen on 127.0.0.1:${port}: the address is already in use`, code: 'EADDRINUSE' })]);
      expect(stderr()).toBe('');
    } finally {
      blocker.close();
    }
  });

  it('serves on HOST=::1 (IPv6 loopback) and logs a usable URL', async () => {
    const gw = await startGatewayProcess({ HOST: '::1' });
    const listening = gw.lines.find((l) => l.msg === 'listening')!;
    expect(listening.url).toBe(`http://[::1]:${listening.port}/graphql`);
    const res = await fetch(listening.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ models { name } }' }),
    });
    expect(res.status).toBe(200);
    gw.child.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
  });
});
