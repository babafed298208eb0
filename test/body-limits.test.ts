import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

const LIMIT = 4 * 1024 * 1024;
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  await gw.close();
});

describe('the 4 MB limit counts bytes as they arrive', () => {
  it('answers 413 to a chunked POST (no Content-Length) as soon as it passes 4 MB, while the client is still sending', async () => {
    const url = new URL(`${gw.url}/graphql`);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      expect(req.getHeader('content-length')).toBeUndefined(); // chunked transfer encoding
      req.write('{"query":"{ models { name } }","pad":"');
      // Send 6 MB, then hold the request open without ending it: only a server that counts
      // bytes as they stream can answer now. One that reads the body whole waits forever.
      const pump = () => {
        while (sent < 6 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
      };
      pump();
    });
    expect(status).toBe(413);
    // And the server is still serving.
    expect((await gw.gql('{ models { name } }')).body.data.models.length).toBeGreaterThan(0);
  });

  it('still serves bodies under the limit sent chunked', async () => {
    const url = new URL(`${gw.url}/graphql`);
    const body = JSON.stringify({ query: '{ models { name } }', variables: { pad: 'y'.repeat(1024 * 1024) } });
    const answer = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      for (let i = 0; i < body.length; i += 100_000) req.write(body.slice(i, i + 100_000));
      req.end();
    });
    expect(answer.status).toBe(200);
    expect(answer.body.data.models.map((m: { name: string }) => m.name)).toContain('iris');
  });

  it('closes a WebSocket that sends a message over 4 MB with code 1009, and keeps serving', async () => {
    const socket = new WebSocket(`${gw.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init' }));
    await new Promise((resolve) => socket.once('message', resolve)); // connection_ack
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    socket.send(
      JSON.stringify({ id: '1', type: 'subscribe', payload: { query: '{ models { name } }', variables: { pad: 'z'.repeat(LIMIT + 1) } } }),
    );
    expect(await closed).toBe(1009);
    expect((await gw.gql('{ models { name } }')).status).toBe(200);
  });
});
