import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface Subscription<T = any> {
  /** Every `next` payload, as it arrives. */
  events: Array<{ data?: T; errors?: Array<{ message: string; extensions?: Record<string, any> }> }>;
  /** Settles when the server completes the stream (or it errors). */
  done: Promise<void>;
  /** Resolves once `count` events have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  unsubscribe(): void;
}

function collector<T>(): Pick<Subscription<T>, 'events' | 'waitFor'> & { push(e: any): void } {
  const events: Subscription<T>['events'] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  return {
    events,
    push(event) {
      events.push(event);
      for (const w of waiters.filter((w) => events.length >= w.count)) w.resolve();
    },
    waitFor(count, timeoutMs = 15_000) {
      if (events.length >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${events.length} of ${count} events arrived`)), timeoutMs);
        waiters.push({ count, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
  };
}

/** graphql-ws's own client over a real WebSocket; `connectionParams` is the connection_init payload (API keys). */
export function wsClient(url: string, connectionParams?: Record<string, unknown>): Client {
  return createWsClient({ url: url.replace(/^http/, 'ws') + '/graphql', webSocketImpl: WebSocket, retryAttempts: 0, lazy: true, connectionParams });
}

export function subscribeWs<T = any>(client: Client, query: string, variables?: Record<string, unknown>): Subscription<T> {
  const c = collector<T>();
  let unsubscribe = () => {};
  const done = new Promise<void>((resolve, reject) => {
    unsubscribe = client.subscribe<T>(
      { query, variables },
      { next: (e) => c.push(e), error: (e) => (Array.isArray(e) ? (c.push({ errors: e }), resolve()) : reject(e instanceof Error ? e : new Error('subscription failed', { cause: e }))), complete: resolve },
    );
  });
  return { ...c, done, unsubscribe };
}

/** graphql-sse's client (distinct connections mode), which Yoga speaks on /graphql. */
export function subscribeSse<T = any>(url: string, query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Subscription<T> {
  const client = createSseClient({ url: `${url}/graphql`, retryAttempts: 0, headers });
  const c = collector<T>();
  let unsubscribe = () => {};
  const done = new Promise<void>((resolve, reject) => {
    unsubscribe = client.subscribe<T>({ query, variables }, { next: (e) => c.push(e), error: reject, complete: resolve });
  });
  return { ...c, done, unsubscribe: () => (unsubscribe(), client.dispose()) };
}

/**
 * A raw `fetch` reading text/event-stream, the way curl or a browser's fetch would.
 * `pause()` stops reading the body (a slow client); `resume()` reads again.
 */
export function subscribeRawSse<T = any>(url: string, query: string, variables?: Record<string, unknown>) {
  const c = collector<T>();
  const abort = new AbortController();
  let paused: (() => void) | null = null;
  let gate: Promise<void> = Promise.resolve();
  const connected = fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query, variables }),
    signal: abort.signal,
  });
  const done = (async () => {
    const res = await connected;
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      await gate;
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event === 'next' && data) c.push(JSON.parse(data));
        if (event === 'complete') return;
      }
    }
  })().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  return {
    ...c,
    connected,
    done,
    unsubscribe: () => abort.abort(),
    pause: () => {
      gate = new Promise((resolve) => (paused = resolve));
    },
    resume: () => paused?.(),
  };
}

/** A raw WebSocket upgrade to /graphql, as a browser sends it; resolves with the status line's code and body. */
export function upgrade(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({
      host: hostname,
      port,
      path: '/graphql',
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        'sec-websocket-protocol': 'graphql-transport-ws',
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode!, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
