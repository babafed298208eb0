import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upgrade } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

describe('WebSocket upgrades and their Origin (default: same host only)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw?.close());

  it('refuses an upgrade from a page of another site with 403, and logs it', async () => {
    const res = await upgrade(gw.url, { origin: 'https://evil.example' });
    expect(res.status).toBe(403);
    expect(res.body).toBe('ORIGIN_NOT_ALLOWED: WebSocket connections from https://evil.example are not allowed (ALLOWED_ORIGINS)');
    expect(gw.logs.find((l) => l.msg === 'websocket upgrade refused: origin not allowed')).toMatchObject({ level: 40, origin: 'https://evil.example' });
  });

  it('refuses the same host on another port, and the opaque origin `null` (sandboxed frames, file: pages)', async () => {
    const { port } = new URL(gw.url);
    expect((await upgrade(gw.url, { origin: `http://127.0.0.1:${Number(port) + 1}` })).status).toBe(403);
    expect((await upgrade(gw.url, { origin: 'null' })).status).toBe(403);
  });

  it("takes an upgrade from the gateway's own pages (Origin's host:port = Host, whatever the scheme or case), and one without Origin (not a browser)", async () => {
    const host = new URL(gw.url).host;
    expect((await upgrade(gw.url, { origin: gw.url })).status).toBe(101);
    expect((await upgrade(gw.url, { origin: `https://${host.toUpperCase()}` })).status).toBe(101);
    expect((await upgrade(gw.url, {})).status).toBe(101);
  });

  it('checks against the Host a proxy passes on: an origin matching it is taken', async () => {
    expect((await upgrade(gw.url, { origin: 'https://gateway.example.com', host: 'gateway.example.com' })).status).toBe(101);
    expect((await upgrade(gw.url, { origin: 'https://gateway.example.com', host: 'other.example.com' })).status).toBe(403);
  });
});

describe('ALLOWED_ORIGINS', () => {
  let listed: TestGateway;
  let any: TestGateway;
  beforeAll(async () => {
    [listed, any] = await Promise.all([startGateway({ env: { ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:5173' } }), startGateway({ env: { ALLOWED_ORIGINS: '*' } })]);
  });
  afterAll(() => Promise.all([listed?.close(), any?.close()]));

  it('takes the listed origins (and the own host), refuses the others', async () => {
    expect((await upgrade(listed.url, { origin: 'https://app.example.com' })).status).toBe(101);
    expect((await upgrade(listed.url, { origin: 'http://localhost:5173' })).status).toBe(101);
    expect((await upgrade(listed.url, { origin: listed.url })).status).toBe(101);
    expect((await upgrade(listed.url, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await upgrade(listed.url, { origin: 'http://app.example.com' })).status).toBe(403);
  });

  it('* takes any origin', async () => {
    expect((await upgrade(any.url, { origin: 'https://evil.example' })).status).toBe(101);
  });

  it('drive CORS the same way: a preflight from a listed origin is granted (no credentials), from another is not', async () => {
    const preflight = (gw: TestGateway, origin: string) =>
      fetch(`${gw.url}/graphql`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
    const granted = await preflight(listed, 'https://app.example.com');
    expect(granted.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(granted.headers.get('access-control-allow-credentials')).toBeNull();
    expect((await preflight(listed, 'https://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
    const anyOrigin = await preflight(any, 'https://evil.example');
    expect(anyOrigin.headers.get('access-control-allow-origin')).toBe('https://evil.example'); // Yoga echoes the origin for *
    expect(anyOrigin.headers.get('access-control-allow-credentials')).toBeNull();
  });
});

describe('CORS without ALLOWED_ORIGINS', () => {
  it('grants no other origin a preflight, so a page elsewhere cannot POST JSON (Yoga alone would grant any, with credentials)', async () => {
    const gw = await startGateway();
    try {
      const res = await fetch(`${gw.url}/graphql`, {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    } finally {
      await gw.close();
    }
  });
});
