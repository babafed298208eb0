import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { subscribeRawSse } from './helpers/clients.ts';
import { startGatewayProcess, waitFor, type GatewayProcess } from './helpers/process.ts';

/**
 * One real gateway process, thrown at with what attackers and broken clients send, then
 * checked: it still answers a normal predict correctly, its resident memory is bounded, the
 * history holds exactly the rows of the requests it accepted, and every error it answered
 * carried a code from README's "Errors" section.
 */

/** The codes README documents: its Errors table, and the graphql-yoga codes named under it. */
function documentedCodes(): Set<string> {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('\n## Errors\n'), readme.indexOf('\n## Limits\n'));
  const codes = new Set([...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]!));
  for (const m of section.matchAll(/keep graphql-yoga's codes\s+\(`([A-Z_]+)`, `([A-Z_]+)`\)/g)) codes.add(m[1]!).add(m[2]!);
  return codes;
}
const DOCUMENTED = documentedCodes();

const PREDICT = 'mutation ($f: [Float!]) { predict(input: { model: "iris", features: $f }) { id label } }';
const SETOSA = [5.1, 3.5, 1.4, 0.2];
const VIRGINICA = [6.7, 3.0, 5.2, 2.3];

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** Bounded client-side concurrency: at most this many sockets to the server at once. */
const SOCKETS = 256;
const agent = new Agent({ keepAlive: true, maxSockets: SOCKETS });

let gw: GatewayProcess;
/** Every error code any response carried, and every error response that carried none. */
const seen = new Map<string, number>();
const uncoded: string[] = [];
/** Ids of the predictions the server accepted (answered with an id). */
const accepted = new Set<string>();
let rowsAtStart: Set<string>;
let rssBefore: number;

const rssOf = (pid: number) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const hwmOf = (pid: number) => Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const ids = async () => new Set((await gw.query<{ id: string }>('SELECT "id" FROM "Prediction"')).map((r) => r.id));

/** One HTTP exchange on the shared agent (or a fresh socket with `fresh`). Resolves with the answer even if the server then drops the connection. */
function send(options: { method?: string; path?: string; headers?: Record<string, string | number>; body?: string | Buffer; fresh?: boolean }): Promise<Answer> {
  const url = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname,
      port: url.port,
      path: options.path ?? '/graphql',
      method: options.method ?? 'POST',
      headers: options.headers,
      agent: options.fresh ? false : agent,
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
      res.on('error', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * A POST on a raw socket that sends `bytes` of body and never ends it; resolves with the
 * answer (Content-Length framed) once the server has answered or closed.
 */
function unfinished(headers: string, bytes: number): Promise<Answer> {
  const url = new URL(gw.url);
  const socket = connect(Number(url.port), url.hostname);
  let received = '';
  socket.setEncoding('latin1').on('data', (d: string) => (received += d));
  socket.on('error', () => undefined);
  socket.write(`POST /graphql HTTP/1.1\r\nHost: x\r\n${headers}\r\n`);
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let sent = 0;
  const pump = () => {
    while (sent < bytes && !socket.destroyed && !received) {
      sent += chunk.length;
      if (!socket.write(chunk)) return void socket.once('drain', pump);
    }
  };
  pump();
  return new Promise((resolve) => {
    const done = () => {
      const [head, ...rest] = received.split('\r\n\r\n');
      const fields = head!.split('\r\n').slice(1).map((line) => line.split(/:\s*/, 2) as [string, string]);
      const headers = Object.fromEntries(fields.map(([k, v]) => [k.toLowerCase(), v]));
      let text = rest.join('\r\n\r\n');
      // Chunked: `size\r\ndata\r\n` … `0\r\n\r\n`.
      if (headers['transfer-encoding'] === 'chunked') text = [...text.matchAll(/([0-9a-f]+)\r\n/gy)].length ? decodeChunked(text) : text;
      resolve({ status: Number(head!.split(' ')[1]), headers, text });
      socket.destroy();
    };
    socket.on('close', done);
  });
}

function decodeChunked(text: string): string {
  let out = '';
  for (let at = 0; ; ) {
    const eol = text.indexOf('\r\n', at);
    const size = parseInt(text.slice(at, eol), 16);
    if (!size) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

/** Writes `raw` on a fresh socket and reads the answer until the server closes it. */
function rawRequest(raw: string): Promise<Answer> {
  const url = new URL(gw.url);
  const socket = connect(Number(url.port), url.hostname);
  let received = '';
  socket.setEncoding('latin1').on('data', (d: string) => (received += d));
  socket.on('error', () => undefined);
  socket.write(raw);
  return new Promise((resolve) =>
    socket.on('close', () => {
      const [head, ...rest] = received.split('\r\n\r\n');
      const lines = head!.split('\r\n');
      const headers = Object.fromEntries(lines.slice(1).map((line) => line.split(/:\s*/, 2)).map(([k, v]) => [k!.toLowerCase(), v!]));
      const answer = { status: Number(lines[0]!.split(' ')[1]), headers, text: rest.join('\r\n\r\n') };
      resolve(answer);
    }),
  );
}

const json = (body: unknown, headers: Record<string, string> = {}) =>
  send({ headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...headers }, body: JSON.stringify(body) });

/**
 * Records what an answer carried: each error's code (or that it had none), and the id of an
 * accepted prediction. Returns the parsed JSON body (SSE: the `next` payloads).
 */
function note(label: string, answer: Answer): { data?: any; errors?: Array<{ message: string; extensions?: Record<string, any> }> } {
  const type = String(answer.headers['content-type'] ?? '');
  let bodies: any[] = [];
  if (type.includes('text/event-stream')) bodies = [...answer.text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!)).filter((b) => b.data || b.errors);
  else if (type.includes('json')) bodies = [JSON.parse(answer.text)];
  if (bodies.length === 0 && answer.status >= 400) uncoded.push(`${label}: HTTP ${answer.status} with ${type || 'no'} content type, no JSON body`);
  for (const body of bodies) {
    for (const error of body.errors ?? []) {
      const code = error.extensions?.code;
      if (typeof code !== 'string') uncoded.push(`${label}: ${JSON.stringify(error).slice(0, 200)}`);
      else seen.set(code, (seen.get(code) ?? 0) + 1);
    }
    const id = body.data?.predict?.id;
    if (typeof id === 'string') accepted.add(id);
  }
  const body = bodies[0] ?? {};
  if (type.includes('text/event-stream')) return { data: bodies.find((b) => b.data)?.data, errors: bodies.flatMap((b) => b.errors ?? []) };
  return body;
}

/** The codes of an answer's errors. */
const codes = (body: { errors?: Array<{ extensions?: Record<string, any> }> }) => (body.errors ?? []).map((e) => e.extensions?.code);

/** Runs `tasks` with at most `limit` in flight. */
async function pool<T>(tasks: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}

/** A client-to-server WebSocket frame (masked unless `mask: false`). */
function frame(opcode: number, payload: Buffer, { mask = true, fin = true } = {}): Buffer {
  const head = [(fin ? 0x80 : 0) | opcode];
  const len = payload.length;
  const maskBit = mask ? 0x80 : 0;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 255);
  else head.push(maskBit | 127, 0, 0, 0, 0, (len >>> 24) & 255, (len >> 16) & 255, (len >> 8) & 255, len & 255);
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  return Buffer.concat([Buffer.from(head), key, Buffer.from(payload.map((b, i) => b ^ key[i % 4]!))]);
}

/** A raw TCP socket upgraded to graphql-transport-ws; resolves once the 101 has arrived. */
async function rawWebSocket(): Promise<{ socket: Socket; received: () => Buffer; closed: Promise<void> }> {
  const url = new URL(gw.url);
  const socket = connect(Number(url.port), url.hostname);
  let received = Buffer.alloc(0);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  const upgraded = new Promise<void>((resolve, reject) => {
    socket.on('data', (d) => {
      received = Buffer.concat([received, d]);
      if (received.includes('\r\n\r\n')) resolve();
    });
    void closed.then(() => reject(new Error('closed before the upgrade')));
  });
  socket.write(
    'GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n`,
  );
  await upgraded;
  expect(received.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
  return { socket, received: () => received.subarray(received.indexOf('\r\n\r\n') + 4), closed };
}

/** The close code of the server's close frame among `bytes` (server frames are unmasked). */
function closeCode(bytes: Buffer): number | undefined {
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f;
    let len = bytes[at + 1]! & 0x7f;
    let start = at + 2;
    if (len === 126) {
      len = bytes.readUInt16BE(start);
      start += 2;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(start));
      start += 8;
    }
    if (opcode === 8) return len >= 2 ? bytes.readUInt16BE(start) : 1005;
    at = start + len;
  }
  return undefined;
}

/** A `ws` client speaking graphql-transport-ws by hand; resolves with the messages it got and its close code. */
async function wsExchange(messages: Array<string | Buffer>, { init = true, settleMs = 300 } = {}): Promise<{ messages: any[]; code: number | undefined }> {
  const socket = new WebSocket(`${gw.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
  const got: any[] = [];
  let code: number | undefined;
  const closed = new Promise<void>((resolve) => socket.on('close', (c) => ((code = c), resolve())));
  socket.on('error', () => undefined);
  socket.on('message', (m: Buffer) => got.push(JSON.parse(m.toString('utf8'))));
  await new Promise((resolve) => socket.once('open', resolve));
  if (init) {
    socket.send(JSON.stringify({ type: 'connection_init' }));
    await waitFor(async () => got.some((m) => m.type === 'connection_ack'));
  }
  for (const m of messages) socket.send(m);
  await Promise.race([closed, new Promise((r) => setTimeout(r, settleMs))]);
  // Wait for complete/error messages of every subscribe sent (or the close).
  await Promise.race([closed, waitFor(async () => got.filter((m) => m.type === 'complete' || m.type === 'error').length >= messages.length, 10_000).catch(() => undefined)]);
  socket.close();
  await closed;
  for (const m of got) if (m.type === 'error' || m.type === 'next') note('ws', { status: 200, headers: { 'content-type': 'application/json' }, text: JSON.stringify(m.type === 'error' ? { errors: m.payload } : m.payload) });
  return { messages: got, code };
}

beforeAll(async () => {
  // Rate limits off (and no Redis): this file is about what each request is, not how many.
  gw = await startGatewayProcess({ RATE_LIMITS: '', REDIS_URL: '' });
  await waitFor(async () => (await fetch(`${gw.url}/readyz`)).status === 200, 60_000);
  // Warm every path once (the first predict, the first error, a subscription), so the
  // baseline counts what the server allocates once, not what it leaks.
  for (let i = 0; i < 200; i++) note('warm-up', await json({ query: PREDICT, variables: { f: i % 2 ? SETOSA : VIRGINICA } }));
  note('warm-up', await json({ query: PREDICT, variables: { f: [1] } }));
  await new Promise((r) => setTimeout(r, 2000));
  rssBefore = rssOf(gw.child.pid!);
  rowsAtStart = await ids();
  accepted.clear();
}, 120_000);

afterAll(async () => {
  agent.destroy();
  gw?.child.kill('SIGTERM');
  await gw?.exited;
});

describe('a gateway under hostile input', () => {
  it('refuses malformed JSON, wrong content types and odd bodies with a documented code, storing nothing', async () => {
    const cases: Array<[string, Record<string, string>, string | Buffer, number, string]> = [
      ['truncated JSON', { 'content-type': 'application/json' }, '{"query": "{ models { name } }"', 400, 'BAD_REQUEST'],
      ['not JSON at all', { 'content-type': 'application/json' }, 'query=mutation', 400, 'BAD_REQUEST'],
      ['NaN in JSON', { 'content-type': 'application/json' }, `{"query":${JSON.stringify(PREDICT)},"variables":{"f":[NaN,1,1,1]}}`, 400, 'BAD_REQUEST'],
      ['an empty JSON body', { 'content-type': 'application/json' }, '', 400, 'BAD_REQUEST'],
      ['JSON null', { 'content-type': 'application/json' }, 'null', 400, 'BAD_REQUEST'],
      ['a JSON string', { 'content-type': 'application/json' }, '"{ models { name } }"', 400, 'BAD_REQUEST'],
      ['an object without a query', { 'content-type': 'application/json' }, '{}', 400, 'BAD_REQUEST'],
      ['a query that is a number', { 'content-type': 'application/json' }, '{"query":42}', 400, 'BAD_REQUEST'],
      ['variables that are a string', { 'content-type': 'application/json' }, `{"query":${JSON.stringify(PREDICT)},"variables":"f"}`, 400, 'BAD_REQUEST'],
      ['a batched array', { 'content-type': 'application/json' }, JSON.stringify([{ query: PREDICT, variables: { f: SETOSA } }]), 400, 'BAD_REQUEST'],
      ['invalid UTF-8', { 'content-type': 'application/json' }, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), 400, 'BAD_REQUEST'],
      ['a form', { 'content-type': 'application/x-www-form-urlencoded' }, new URLSearchParams({ query: PREDICT }).toString(), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['text/plain', { 'content-type': 'text/plain' }, JSON.stringify({ query: PREDICT, variables: { f: SETOSA } }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['no content type', {}, JSON.stringify({ query: PREDICT, variables: { f: SETOSA } }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['a garbage content type', { 'content-type': ';;;/ x' }, '{}', 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['an image', { 'content-type': 'image/png' }, randomBytes(100), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['multipart without the CSRF header', { 'content-type': 'multipart/form-data; boundary=x' }, '--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{}\r\n--x--\r\n', 403, 'CSRF_HEADER_REQUIRED'],
    ];
    for (const [label, headers, body, status, code] of cases) {
      const answer = await send({ headers: { accept: 'application/graphql-response+json', ...headers }, body });
      const parsed = note(label, answer);
      expect({ label, status: answer.status, codes: codes(parsed) }).toEqual({ label, status, codes: [code] });
    }
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      const answer = await send({ method, headers: { 'content-type': 'application/json', 'content-length': 2 }, body: '{}' });
      expect({ method, status: answer.status, codes: codes(note(method, answer)) }).toEqual({ method, status: 405, codes: ['BAD_REQUEST'] });
    }
    // Requests Node's HTTP parser cannot read: a bad request line, a NUL in a header, 20 KB of headers.
    const malformed: Array<[string, string, number]> = [
      ['a bad request line', 'GARBAGE\r\n\r\n', 400],
      ['a NUL in a header', 'POST /graphql HTTP/1.1\r\nHost: x\r\nX-A: \u0000\r\n\r\n', 400],
      ['20 KB of headers', `GET /graphql HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ];
    for (const [label, raw, status] of malformed) {
      const answer = await rawRequest(raw);
      expect({ label, status: answer.status, codes: codes(note(label, answer)) }).toEqual({ label, status, codes: ['BAD_REQUEST'] });
    }
    const get = await send({ method: 'GET', path: `/graphql?query=${encodeURIComponent('mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id } }')}`, headers: { accept: 'application/json' } });
    expect(codes(note('mutation over GET', get))).toEqual(['BAD_REQUEST']);
  });

  it('refuses bodies over 4 MB, declared or chunked, with 413 PAYLOAD_TOO_LARGE', async () => {
    // Both requests stay unfinished: only a server that answers before reading the whole body answers them.
    const declared = await unfinished(`content-type: application/json\r\ncontent-length: ${4 * 1024 * 1024 + 1}\r\n`, 1024);
    expect({ status: declared.status, codes: codes(note('declared over 4 MB', declared)) }).toEqual({ status: 413, codes: ['PAYLOAD_TOO_LARGE'] });
    // Chunked, one 6 MB chunk of which 4 MB + 64 KB are sent (what is sent is all read: no reset loses the answer).
    const chunked = await unfinished(`content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${(6 * 1024 * 1024).toString(16)}`, 4 * 1024 * 1024 + 64 * 1024);
    expect({ status: chunked.status, codes: codes(note('chunked over 4 MB', chunked)) }).toEqual({ status: 413, codes: ['PAYLOAD_TOO_LARGE'] });
  });

  it('refuses depth, alias, token, directive and fragment bombs before anything runs', async () => {
    const ofType = (n: number): string => (n === 0 ? 'name' : `ofType { ${ofType(n - 1)} }`);
    const bombs: Array<[string, string]> = [
      ['depth bomb', `{ __type(name: "Query") { fields { type { ${ofType(30)} } } } }`],
      ['alias bomb', `{ ${Array.from({ length: 1000 }, (_, i) => `a${i}: models { name versions { version } }`).join(' ')} }`],
      ['token bomb', `{ models { ${'name '.repeat(30_000)} } }`],
      ['directive bomb', `{ models { name ${'@include(if: true) '.repeat(200)} } }`],
      ['fragment cycle', '{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }'],
      ['cost bomb', `{ ${Array.from({ length: 40 }, (_, i) => `p${i}: predictions(first: 100) { edges { node { model { versions { inputs { name } } } } } }`).join(' ')} }`],
      ['nested brackets', `{ models { name(${'['.repeat(5000)}) } }`],
      ['unknown field', '{ models { name secretKey } }'],
      ['unknown root field', 'mutation { dropDatabase }'],
      ['unknown input field', 'mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2], admin: true }) { id } }'],
      ['syntax error', 'mutation { predict(input: { model: "iris" '],
    ];
    for (const [label, query] of bombs) {
      const parsed = note(label, await json({ query }));
      expect(parsed.data ?? null, label).toBeNull();
      expect(codes(parsed).length, label).toBeGreaterThan(0);
      for (const code of codes(parsed)) expect(['GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_PARSE_FAILED', 'QUERY_TOO_COMPLEX'], label).toContain(code);
    }
  });

  it('refuses bad numbers, huge pages, oversized and inconsistent tensors, unknown models with a documented code', async () => {
    // Variables as an object, or as raw JSON text (JSON cannot say Infinity; 1e999 is how a client's JSON ends up holding it).
    const badInputs: Array<[string, string, Record<string, unknown> | string | undefined]> = [
      ['NaN literal', 'mutation { predict(input: { model: "iris", features: [NaN, 1, 1, 1] }) { id } }', undefined],
      ['Infinity literal', 'mutation { predict(input: { model: "iris", features: [Infinity, 1, 1, 1] }) { id } }', undefined],
      ['1e999 literal', 'mutation { predict(input: { model: "iris", features: [1e999, 1, 1, 1] }) { id } }', undefined],
      ['string literal', 'mutation { predict(input: { model: "iris", features: ["5.1", 1, 1, 1] }) { id } }', undefined],
      ['nested list literal', 'mutation { predict(input: { model: "iris", features: [[5.1], 1, 1, 1] }) { id } }', undefined],
      ['null literal', 'mutation { predict(input: { model: "iris", features: [null, 1, 1, 1] }) { id } }', undefined],
      ['1e999 variable (JSON Infinity)', PREDICT, '{"f":[1e999,1,1,1]}'],
      ['string variable', PREDICT, { f: ['5.1', 1, 1, 1] }],
      ['nested array variable', PREDICT, { f: [[5.1, 3.5], [1.4, 0.2]] }],
      ['null element variable', PREDICT, { f: [null, 1, 1, 1] }],
      ['object variable', PREDICT, { f: { length: 4 } }],
      ['boolean variable', PREDICT, { f: [true, 1, 1, 1] }],
      ['long variable list', PREDICT, { f: Array.from({ length: 5000 }, () => 1) }],
      ['long variable list with a string in it', PREDICT, { f: [...Array.from({ length: 5000 }, () => 1), 'x'] }],
      ['deeply nested variable', PREDICT, `{"f":${'['.repeat(100_000)}${']'.repeat(100_000)}}`],
      ['wrong feature count', PREDICT, { f: [1, 2, 3] }],
      ['feature out of range', PREDICT, { f: [1e30, 1, 1, 1] }],
      ['negative zero and huge', PREDICT, { f: [-0, 1, 1, 3.5e38] }],
      ['huge first literal', '{ predictions(first: 1000000000) { edges { node { id } } } }', undefined],
      ['first beyond Int literal', '{ predictions(first: 99999999999999) { edges { node { id } } } }', undefined],
      ['first beyond Int variable', 'query ($n: Int) { predictions(first: $n) { edges { node { id } } } }', { n: 99999999999999 }],
      ['negative first', '{ predictions(first: -1) { edges { node { id } } } }', undefined],
      ['first as a string', 'query ($n: Int) { predictions(first: $n) { edges { node { id } } } }', { n: '100' }],
      ['foreign cursor', '{ predictions(after: "AAAA") { edges { node { id } } } }', undefined],
      ['bad since', '{ predictions(since: "yesterday") { edges { node { id } } } }', undefined],
      ['unknown model', 'mutation { predict(input: { model: "no-such-model", features: [1, 1, 1, 1] }) { id } }', undefined],
      ['unknown version', 'mutation { predict(input: { model: "iris", version: 999, features: [5.1, 3.5, 1.4, 0.2] }) { id } }', undefined],
      ['model name of 100 kB', 'mutation ($m: String!) { predict(input: { model: $m, features: [1, 1, 1, 1] }) { id } }', { m: 'x'.repeat(100_000) }],
      ['unknown variable field', 'mutation ($i: PredictInput!) { predict(input: $i) { id } }', { i: { model: 'iris', features: SETOSA, admin: true } }],
      ['features and inputs', 'mutation ($i: PredictInput!) { predict(input: $i) { id } }', { i: { model: 'iris', features: SETOSA, inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: SETOSA }] } }],
    ];
    const TENSOR = 'mutation ($t: [TensorInput!]) { predict(input: { model: "iris", inputs: $t }) { id } }';
    const tensor = (shape: number[], data: unknown[], extra: Record<string, unknown> = {}) => ({ t: [{ name: 'features', datatype: 'FP32', shape, data, ...extra }] });
    badInputs.push(
      ['shape wider than the model', TENSOR, tensor([1, 5], [1, 1, 1, 1, 1])],
      ['digits-sized tensor for iris', TENSOR, tensor([1, 64], Array.from({ length: 64 }, () => 1))],
      ['shape and data disagree', TENSOR, tensor([2, 4], SETOSA)],
      ['a billion rows declared, one sent', TENSOR, tensor([1_000_000_000, 4], SETOSA)],
      ['shape product beyond 2^53', TENSOR, tensor([2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1], SETOSA)],
      ['negative dimension', TENSOR, tensor([-1, 4], SETOSA)],
      ['rank 5', TENSOR, tensor([1, 1, 1, 1, 4], SETOSA)],
      ['wrong datatype', TENSOR, tensor([1, 4], SETOSA, { datatype: 'INT64' })],
      ['unknown datatype', TENSOR, tensor([1, 4], SETOSA, { datatype: 'FP128' })],
      ['unknown input name', TENSOR, { t: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: SETOSA }] }],
      ['the same input twice', TENSOR, { t: [tensor([1, 4], SETOSA).t[0], tensor([1, 4], SETOSA).t[0]] }],
      ['a million-element tensor of the wrong width', TENSOR, tensor([200_000, 5], Array.from({ length: 1_000_000 }, () => 1))],
      ['1e999 in tensor data', TENSOR, '{"t":[{"name":"features","datatype":"FP32","shape":[1,4],"data":[1e999,1,1,1]}]}'],
    );
    for (const [label, query, variables] of badInputs) {
      const body = typeof variables === 'string' ? `{"query":${JSON.stringify(query)},"variables":${variables}}` : JSON.stringify({ query, variables });
      const answer = await send({ headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' }, body });
      const parsed = note(label, answer);
      expect(parsed.data?.predict ?? null, label).toBeNull();
      expect(codes(parsed).length, `${label}: ${answer.text.slice(0, 300)}`).toBeGreaterThan(0);
      expect(codes(parsed).every((c) => ['BAD_USER_INPUT', 'MODEL_NOT_FOUND', 'GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_PARSE_FAILED', 'BAD_REQUEST'].includes(c)), `${label}: ${answer.text.slice(0, 300)}`).toBe(true);
    }
  });

  it('answers prediction(id) with null for ids that are not UUIDs, without an error', async () => {
    for (const id of ['', 'not-a-uuid', "' OR 1=1 --", '00000000-0000-0000-0000-000000000000', '\u0000', 'é'.repeat(10_000), '%', '*']) {
      const parsed = note('prediction(id)', await json({ query: 'query ($id: ID!) { prediction(id: $id) { id } }', variables: { id } }));
      expect(parsed).toEqual({ data: { prediction: null } });
    }
    // In one request with a real id: a NUL beside it must not fail the batch they are read in.
    const real = note('prediction(id) real', await json({ query: PREDICT, variables: { f: SETOSA } })).data.predict.id;
    const both = note('prediction(id) pair', await json({ query: 'query ($a: ID!, $b: ID!) { a: prediction(id: $a) { id } b: prediction(id: $b) { id } }', variables: { a: real, b: '\u0000' } }));
    expect(both).toEqual({ data: { a: { id: real }, b: null } });
    expect(note('batchJob(id)', await json({ query: 'query ($id: ID!) { batchJob(id: $id) { id } }', variables: { id: 'x\u0000' } }))).toEqual({ data: { batchJob: null } });
    const notAnId = note('prediction(id: object)', await json({ query: 'query ($id: ID!) { prediction(id: $id) { id } }', variables: { id: { $ne: null } } }));
    expect(codes(notAnId)).toEqual(['BAD_USER_INPUT']);
  });

  it('closes WebSockets that send garbage frames or break the protocol, with the protocol close codes', async () => {
    // Frames the WebSocket layer refuses: 1002 protocol error, 1007 bad UTF-8 text.
    const frames: Array<[string, Buffer, number]> = [
      ['random bytes', randomBytes(64), 1002],
      ['an unmasked frame', frame(1, Buffer.from('{"type":"connection_init"}'), { mask: false }), 1002],
      ['a reserved opcode', frame(3, Buffer.from('x')), 1002],
      ['a text frame of invalid UTF-8', frame(1, Buffer.from([0xff, 0xfe, 0xfd])), 1007],
      ['a fragmented control frame', frame(9, Buffer.from('ping'), { fin: false }), 1002],
    ];
    for (const [label, bytes, code] of frames) {
      const ws = await rawWebSocket();
      ws.socket.write(bytes);
      await ws.closed;
      expect({ label, code: closeCode(ws.received()) }).toEqual({ label, code });
    }
    // Messages graphql-ws refuses: 4400 bad message, 4401 before connection_init, 4409 a duplicate id, 4429 a second init.
    expect((await wsExchange(['not json'])).code).toBe(4400);
    expect((await wsExchange([JSON.stringify({ type: 'subscribe', id: '1', payload: { query: 42 } })])).code).toBe(4400);
    expect((await wsExchange([JSON.stringify({ type: 'nonsense' })])).code).toBe(4400);
    expect((await wsExchange([JSON.stringify({ type: 'subscribe', id: '1', payload: { query: '{ models { name } }' } })], { init: false })).code).toBe(4401);
    expect((await wsExchange([JSON.stringify({ type: 'connection_init' })])).code).toBe(4429);
    const slow = 'subscription { predictionCreated { id } }';
    expect((await wsExchange([JSON.stringify({ type: 'subscribe', id: 'a', payload: { query: slow } }), JSON.stringify({ type: 'subscribe', id: 'a', payload: { query: slow } })])).code).toBe(4409);
    // Operations that fail get their error with a documented code; the socket stays open
    // for the next one (a GraphQL Armor limit used to close it with 4500, a syntax error came without a code).
    const failed = await wsExchange([
      JSON.stringify({ type: 'subscribe', id: '1', payload: { query: 'subscription { generate(input: { model: "fortune", prompt: "\u0000\u0001", maxTokens: 0 }) { token } }' } }),
      JSON.stringify({ type: 'subscribe', id: '2', payload: { query: PREDICT, variables: { f: ['x'] } } }),
      JSON.stringify({ type: 'subscribe', id: '3', payload: { query: '{ models { name' } }),
      JSON.stringify({ type: 'subscribe', id: '4', payload: { query: `{ __type(name: "Query") { fields { type { ${'ofType { '.repeat(30)}name${' }'.repeat(30)} } } } }` } }),
      JSON.stringify({ type: 'subscribe', id: '5', payload: { query: `{ models { ${'name '.repeat(30_000)} } }` } }),
      JSON.stringify({ type: 'subscribe', id: '6', payload: { query: '{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }' } }),
    ]);
    expect(failed.code).toBe(1005); // closed by us, with no code
    const errorsOf = (id: string) => failed.messages.filter((m) => m.id === id && (m.type === 'error' || m.payload?.errors)).flatMap((m) => (m.type === 'error' ? m.payload : m.payload.errors));
    expect(['1', '2', '3', '4', '5', '6'].map((id) => [id, [...new Set(errorsOf(id).map((e: any) => e.extensions?.code))]])).toEqual([
      ['1', ['BAD_USER_INPUT']],
      ['2', ['BAD_USER_INPUT']],
      ['3', ['GRAPHQL_PARSE_FAILED']],
      ['4', ['GRAPHQL_VALIDATION_FAILED']],
      ['5', ['GRAPHQL_PARSE_FAILED']], // as over HTTP: the token limit stops the parser
      ['6', ['GRAPHQL_VALIDATION_FAILED']],
    ]);
  });

  it('stays correct, bounded and honest through thousands of concurrent requests with slow subscribers', async () => {
    const pid = gw.child.pid!;
    // Slow readers: an SSE client that stops reading, a WebSocket that never reads; both
    // select the whole tensors, so every big prediction is megabytes they do not take.
    const SELECT = 'subscription { predictionCreated { id inputs { data } outputs { data } } }';
    const sse = subscribeRawSse(gw.url, SELECT);
    const res = await sse.connected;
    expect(res.status).toBe(200);
    sse.pause();
    const stalled = await rawWebSocket();
    stalled.socket.write(frame(1, Buffer.from(JSON.stringify({ type: 'connection_init' }))));
    await waitFor(async () => stalled.received().length > 0);
    stalled.socket.write(frame(1, Buffer.from(JSON.stringify({ type: 'subscribe', id: '1', payload: { query: SELECT } }))));
    await new Promise((r) => setTimeout(r, 200));
    stalled.socket.pause(); // never reads again

    // 2,000 requests at once through SOCKETS sockets: good predicts among every kind of bad one.
    const rows = 10_000;
    const bigTensor = { t: [{ name: 'features', datatype: 'FP32', shape: [rows, 4], data: Array.from({ length: rows }, (_, i) => (i % 2 ? SETOSA : VIRGINICA)).flat() }] };
    const BIG = 'mutation ($t: [TensorInput!]) { predict(input: { model: "iris", inputs: $t }) { id label } }';
    const good: Array<{ features: number[]; label: string }> = [
      { features: SETOSA, label: 'setosa' },
      { features: VIRGINICA, label: 'virginica' },
    ];
    const bad: Array<() => Promise<Answer>> = [
      () => send({ headers: { 'content-type': 'application/json' }, body: '{"query":' }),
      () => send({ headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ query: PREDICT, variables: { f: SETOSA } }) }),
      () => send({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `query=${encodeURIComponent(PREDICT)}` }),
      () => json({ query: PREDICT, variables: { f: [1, 2] } }),
      () => json({ query: PREDICT, variables: { f: ['NaN', 1, 1, 1] } }),
      () => json({ query: 'mutation { predict(input: { model: "iris", features: [Infinity, 1, 1, 1] }) { id } }' }),
      () => json({ query: 'mutation { predict(input: { model: "ghost", features: [1, 1, 1, 1] }) { id } }' }),
      () => json({ query: '{ predictions(first: 100000) { edges { node { id } } } }' }),
      () => json({ query: `{ ${Array.from({ length: 60 }, (_, i) => `a${i}: __typename`).join(' ')} }` }),
      () => json({ query: 'mutation ($t: [TensorInput!]) { predict(input: { model: "iris", inputs: $t }) { id } }', variables: { t: [{ name: 'features', datatype: 'FP32', shape: [3, 4], data: SETOSA }] } }),
      () => json({ query: 'query ($id: ID!) { prediction(id: $id) { id } }', variables: { id: 'x'.repeat(1000) } }),
    ];
    const acceptedBefore = accepted.size;
    const expected = new Map<number, string>();
    const tasks: Array<() => Promise<Answer>> = [];
    for (let i = 0; i < 2000; i++) {
      if (i % 100 === 0) {
        expected.set(i, 'virginica'); // row 0 of the big tensor
        tasks.push(() => json({ query: BIG, variables: bigTensor }));
      } else if (i % 3 === 0) {
        const g = good[i % 2]!;
        expected.set(i, g.label);
        tasks.push(() => json({ query: PREDICT, variables: { f: g.features } }));
      } else tasks.push(bad[i % bad.length]!);
    }
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 50);
    const answers = await pool(tasks, SOCKETS);
    clearInterval(sampler);
    for (const [i, answer] of answers.entries()) {
      const parsed = note(`flood #${i}`, answer);
      if (expected.has(i)) expect({ i, label: parsed.data?.predict?.label }).toEqual({ i, label: expected.get(i) });
      else expect(parsed.data?.predict ?? null).toBeNull();
    }
    expect(accepted.size - acceptedBefore).toBe(expected.size);

    // Still answers a normal predict, correctly, while the slow readers are still connected.
    const after = note('after', await json({ query: PREDICT, variables: { f: SETOSA } }));
    expect(after.data.predict.label).toBe('setosa');
    expect(stalled.socket.destroyed).toBe(false);

    // The paused SSE reader is still served: resumed, it gets a later prediction.
    sse.resume();
    const last = note('last', await json({ query: PREDICT, variables: { f: VIRGINICA } }));
    await waitFor(async () => sse.events.some((e) => e.data?.predictionCreated?.id === last.data.predict.id), 30_000);
    sse.unsubscribe();
    stalled.socket.destroy();

    // Memory: RSS after a settle, against the baseline taken after warm-up, after this flood
    // and after two more of the same (6,000 requests in all). The heap and malloc arenas grow
    // to a working size over the first floods and stay there; a leak would keep adding.
    const settled = async () => {
      await new Promise((r) => setTimeout(r, 3000));
      return rssOf(pid);
    };
    const rss = [await settled()];
    for (let round = 2; round <= 3; round++) {
      for (const [i, answer] of (await pool(tasks, SOCKETS)).entries()) note(`flood ${round} #${i}`, answer);
      rss.push(await settled());
    }
    const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
    console.log(`hostile suite RSS: before ${mb(rssBefore)}, peak sampled in the first flood ${mb(peak)}, VmHWM ${mb(hwmOf(pid))}, after each of three floods ${rss.map(mb).join(', ')}`);
    // Measured on 2 cores (2026-12-03): after each of three floods +63/+87, +112/+130, +168/+190 MB (ranges over three
    // runs, SQLite and PostgreSQL); one run of six floods: 317 MB before, then 376, ~450, 502, 441, 458, 461 MB, level
    // from the second flood on. The bound leaves room for this machine's noise, not for a leak of
    // 20 KB per request (+120 MB over these floods on top of the working size).
    for (const after of rss) expect(after).toBeLessThan(rssBefore + 250 * 2 ** 20);
  }, 300_000);

  it('wrote a history row for every accepted prediction and none for any rejected request', async () => {
    // Group commit: every answered predict is committed before its answer, so no wait is needed.
    const now = await ids();
    const added = [...now].filter((id) => !rowsAtStart.has(id));
    expect(added.length).toBe(accepted.size);
    expect(new Set(added)).toEqual(accepted);
    expect(accepted.size).toBeGreaterThan(600);
  });

  it('gave every error a code from the README Errors table', () => {
    console.log(`hostile suite codes seen: ${JSON.stringify(Object.fromEntries(seen))}`);
    expect(DOCUMENTED.size).toBeGreaterThan(10);
    expect(uncoded).toEqual([]);
    expect([...seen.keys()].filter((code) => !DOCUMENTED.has(code))).toEqual([]);
  });
});
