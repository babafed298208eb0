import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BadUserInputError } from '../src/errors.ts';
import { readMultipartOperation, Uploads, type MultipartOptions } from '../src/transport/multipart-upload.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

const BOUNDARY = '----gateway-test-7d1f';
const CONTENT_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;

type Part = { name: string; value: string } | { name: string; filename: string; type?: string; data: Buffer };

function partHead(part: Part): string {
  const file = 'filename' in part ? `; filename="${part.filename}"\r\ncontent-type: ${part.type ?? 'application/octet-stream'}` : '';
  return `--${BOUNDARY}\r\ncontent-disposition: form-data; name="${part.name}"${file}\r\n\r\n`;
}

/** A whole multipart body, parts in the order given. */
function multipart(parts: Part[]): Buffer {
  const chunks = parts.flatMap((p) => [Buffer.from(partHead(p)), 'data' in p ? p.data : Buffer.from(p.value), Buffer.from('\r\n')]);
  return Buffer.concat([...chunks, Buffer.from(`--${BOUNDARY}--\r\n`)]);
}

/**
 * POSTs a multipart body, with the gateway's CSRF prevention header; resolves the JSON answer
 * even when the server answers before reading it all.
 */
function post(url: string, body: Buffer): Promise<{ status: number; body: any }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { 'content-type': CONTENT_TYPE, 'x-graphql-yoga-csrf': '1' } });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => {
        try {
          resolve({ status: res.statusCode!, body: JSON.parse(text) });
        } catch {
          resolve({ status: res.statusCode!, body: text });
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const TOKEN = /^upload:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('readMultipartOperation on a real HTTP server', () => {
  let server: Server;
  let url: string;
  let options: MultipartOptions;
  /** What readMultipartOperation resolved for each request, in order. */
  let results: Array<Awaited<ReturnType<typeof readMultipartOperation>>>;

  beforeAll(async () => {
    server = createServer((req, res) => {
      readMultipartOperation(req, res, options).then(
        (operation) => {
          results.push(operation);
          if (operation) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(operation.body));
        },
        () => res.destroy(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    // A folder that does not exist yet: the reader creates it.
    options = { maxFileBytes: 8 * 1024 * 1024, maxFieldBytes: 64 * 1024, dir: join(mkdtempSync(join(tmpdir(), 'uploads-test-')), 'a', 'b') };
    results = [];
  });

  it('streams a file to a temp file with its bytes intact and puts its token at the mapped path', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const operations = { query: 'mutation ($input: JobInput!) { submit(input: $input) { id } }', variables: { input: { name: 'batch', file: null } } };
    const res = await post(
      url,
      multipart([
        { name: 'operations', value: JSON.stringify(operations) },
        { name: 'map', value: JSON.stringify({ 0: ['variables.input.file'] }) },
        { name: '0', filename: 'rows.jsonl', type: 'application/x-ndjson', data },
      ]),
    );
    expect(res.status).toBe(200);
    const token = res.body.variables.input.file;
    expect(token).toMatch(TOKEN);
    expect(res.body).toEqual({ ...operations, variables: { input: { name: 'batch', file: token } } });

    const file = results[0]!.uploads.take(token, ['input', 'file']);
    expect(file).toEqual({ filename: 'rows.jsonl', mimetype: 'application/x-ndjson', path: join(options.dir, readdirSync(options.dir)[0]!), size: data.length });
    expect(sha256(readFileSync(file.path))).toBe(sha256(data));
  });

  it('maps files into batched operations by index, one file to several places', async () => {
    const [a, b] = [randomBytes(1000), randomBytes(2000)];
    const res = await post(
      url,
      multipart([
        { name: 'operations', value: JSON.stringify([{ query: 'q1', variables: { file: null } }, { query: 'q2', variables: { files: [null, null] } }]) },
        { name: 'map', value: JSON.stringify({ a: ['0.variables.file'], b: ['1.variables.files.0', '1.variables.files.1'] }) },
        { name: 'a', filename: 'a.bin', data: a },
        { name: 'b', filename: 'b.bin', data: b },
      ]),
    );
    expect(res.status).toBe(200);
    const [first, second] = res.body as Array<{ variables: Record<string, any> }>;
    const uploads = results[0]!.uploads;
    expect(readFileSync(uploads.take(first!.variables.file).path)).toEqual(a);
    expect(second!.variables.files[0]).toBe(second!.variables.files[1]);
    expect(readFileSync(uploads.take(second!.variables.files[0]).path)).toEqual(b);
    expect(first!.variables.file).not.toBe(second!.variables.files[0]);
  });

  it('answers 413 as soon as the files together pass the limit, while the client is still sending, and deletes the temp files', async () => {
    options.maxFileBytes = 1024 * 1024;
    const target = new URL(url);
    const req = request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { 'content-type': CONTENT_TYPE } });
    req.on('error', () => {}); // The server closes the connection after answering.
    const answer = new Promise<{ status: number; body: string }>((resolve) => {
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode!, body: text }));
      });
    });
    expect(req.getHeader('content-length')).toBeUndefined(); // chunked
    req.write(partHead({ name: 'operations', value: '' }) + '{"query":"q","variables":{"a":null,"b":null}}\r\n');
    req.write(partHead({ name: 'map', value: '' }) + '{"a":["variables.a"],"b":["variables.b"]}\r\n');
    req.write(partHead({ name: 'a', filename: 'a', data: Buffer.alloc(0) }));
    req.write(Buffer.alloc(600 * 1024, 1));
    req.write('\r\n' + partHead({ name: 'b', filename: 'b', data: Buffer.alloc(0) }));
    req.write(Buffer.alloc(1024, 2));
    // Both temp files are on disk before the limit is passed.
    await expect.poll(() => (existsSync(options.dir) ? readdirSync(options.dir).length : 0)).toBe(2);

    // Keep sending file b and never end the request: only a reader counting as bytes stream can answer.
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 2);
    const pump = () => {
      while (sent < 4 * 1024 * 1024) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
    };
    pump();

    const res = await answer;
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toEqual({ errors: [{ message: 'Upload larger than 1048576 bytes', extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
    expect(req.writableEnded).toBe(false);
    expect(results).toEqual([undefined]);
    expect(readdirSync(options.dir)).toEqual([]);
    req.destroy();
  });

  it('deletes the temp files when the client goes away mid-file', async () => {
    const target = new URL(url);
    const req = request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { 'content-type': CONTENT_TYPE } });
    req.on('error', () => {});
    req.write(partHead({ name: 'operations', value: '' }) + '{"query":"q","variables":{"a":null}}\r\n');
    req.write(partHead({ name: 'map', value: '' }) + '{"a":["variables.a"]}\r\n');
    req.write(partHead({ name: 'a', filename: 'a', data: Buffer.alloc(0) }));
    req.write(Buffer.alloc(100 * 1024, 1));
    await expect.poll(() => (existsSync(options.dir) ? readdirSync(options.dir).length : 0)).toBe(1);
    req.destroy();
    await expect.poll(() => results).toEqual([undefined]);
    expect(readdirSync(options.dir)).toEqual([]);
  });

  it('answers 413 for an operations field over maxFieldBytes', async () => {
    options.maxFieldBytes = 1024;
    const res = await post(url, multipart([{ name: 'operations', value: JSON.stringify({ query: 'q', variables: { pad: 'x'.repeat(2000) } }) }, { name: 'map', value: '{}' }]));
    expect(res).toEqual({ status: 413, body: { errors: [{ message: 'Multipart field `operations` larger than 1024 bytes', extensions: { code: 'PAYLOAD_TOO_LARGE' } }] } });
    expect(results).toEqual([undefined]);
  });

  const operations = { name: 'operations', value: JSON.stringify({ query: 'q', variables: { file: null } }) };
  const map = { name: 'map', value: JSON.stringify({ 0: ['variables.file'] }) };
  const file = { name: '0', filename: 'f.txt', data: Buffer.from('hello') };
  it.each<[string, Part[], string]>([
    ['map is missing', [operations, file], 'files must follow the `map` field'],
    ['map is missing and no file is sent', [operations], 'map: missing'],
    ['operations is missing', [map, file], 'map: must follow the `operations` field'],
    ['operations is not JSON', [{ name: 'operations', value: '{query' }, map, file], 'operations: expected a JSON object'],
    ['operations is an empty object', [{ name: 'operations', value: '{}' }, map, file], 'operations: expected a JSON object'],
    ['a file in map is never sent', [operations, { name: 'map', value: JSON.stringify({ 0: ['variables.file'], 1: ['variables.other'] }) }, file], 'map.1: file `1` was never sent'],
    ['a map path is not in the operations', [operations, { name: 'map', value: JSON.stringify({ 0: ['variables.input.file'] }) }, file], 'path `variables.input.file` is not in the operations'],
    ['a map path reaches a prototype', [operations, { name: 'map', value: JSON.stringify({ 0: ['__proto__.polluted'] }) }, file], 'path `__proto__.polluted` is not in the operations'],
    ['a map path ends on a prototype', [operations, { name: 'map', value: JSON.stringify({ 0: ['variables.__proto__'] }) }, file], 'path `variables.__proto__` is not in the operations'],
    ['a map path is past the end of a list', [{ name: 'operations', value: '[{"query":"q"}]' }, { name: 'map', value: '{"0":["1.variables.file"]}' }, file], 'path `1.variables.file` is not in the operations'],
  ])('answers 400 BAD_USER_INPUT when %s, and keeps no file', async (_case, parts, message) => {
    const res = await post(url, multipart(parts));
    expect(res.status).toBe(400);
    expect(res.body.errors).toHaveLength(1);
    expect(res.body.errors[0].message).toContain(message);
    expect(res.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(results).toEqual([undefined]);
    expect(existsSync(options.dir) ? readdirSync(options.dir) : []).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('cleanup deletes the request\'s files, and again without failing after a resolver moved one away', async () => {
    const res = await post(
      url,
      multipart([
        { name: 'operations', value: JSON.stringify({ query: 'q', variables: { a: null, b: null } }) },
        { name: 'map', value: JSON.stringify({ a: ['variables.a'], b: ['variables.b'] }) },
        { name: 'a', filename: 'a', data: Buffer.from('aaa') },
        { name: 'b', filename: 'b', data: Buffer.from('bbb') },
      ]),
    );
    const uploads = results[0]!.uploads;
    const moved = join(mkdtempSync(join(tmpdir(), 'uploads-moved-')), 'kept');
    renameSync(uploads.take(res.body.variables.a).path, moved);
    expect(readdirSync(options.dir)).toHaveLength(1);

    await uploads.cleanup();
    expect(readdirSync(options.dir)).toEqual([]);
    await uploads.cleanup();
    expect(readFileSync(moved, 'utf8')).toBe('aaa');
  });

  it('take refuses anything but a token of this request: strings, objects with a path, other requests\' tokens', async () => {
    const res = await post(url, multipart([operations, map, file]));
    const token: string = res.body.variables.file;
    expect(results[0]!.uploads.take(token).size).toBe(5);

    // What a JSON request's context holds: an empty registry.
    const json = new Uploads();
    for (const forged of [token, `upload:${randomUUID()}`, '/etc/passwd', { path: '/etc/passwd', filename: 'x', mimetype: 'text/plain', size: 1 }, null, undefined, 42]) {
      expect(() => json.take(forged, ['input', 'file'])).toThrow(BadUserInputError);
    }
    try {
      json.take({ path: '/etc/passwd' }, ['input', 'file']);
      expect.unreachable();
    } catch (error) {
      expect((error as BadUserInputError).issues).toEqual([{ path: ['input', 'file'], message: 'expected a file sent with the GraphQL multipart request' }]);
    }
  });
});

describe('multipart requests through the gateway', () => {
  let gw: TestGateway;
  let uploadDir: string;
  beforeAll(async () => {
    uploadDir = join(mkdtempSync(join(tmpdir(), 'gateway-uploads-test-')), 'uploads');
    gw = await startGateway({ env: { MAX_UPLOAD_BYTES: String(1024 * 1024), UPLOAD_DIR: uploadDir } });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('reaches Yoga: a query with no files', async () => {
    const res = await post(`${gw.url}/graphql`, multipart([{ name: 'operations', value: '{"query":"{ __typename }"}' }, { name: 'map', value: '{}' }]));
    expect(res).toEqual({ status: 200, body: { data: { __typename: 'Query' } } });
  });

  it('runs an existing mutation with a file beside it, then deletes the file', async () => {
    const operations = {
      query: 'mutation ($features: [Float!]!) { predict(input: { model: "iris", features: $features }) { label } }',
      variables: { features: [6.7, 3.0, 5.2, 2.3], attachment: null },
    };
    const res = await post(
      `${gw.url}/graphql`,
      multipart([
        { name: 'operations', value: JSON.stringify(operations) },
        { name: 'map', value: JSON.stringify({ 0: ['variables.attachment'] }) },
        { name: '0', filename: 'notes.txt', data: randomBytes(100_000) },
      ]),
    );
    expect(res).toEqual({ status: 200, body: { data: { predict: { label: 'virginica' } } } });
    // The folder was made for the file, which is gone once the response has closed.
    await expect.poll(() => readdirSync(uploadDir)).toEqual([]);
  });

  it('answers 413 over MAX_UPLOAD_BYTES and keeps serving JSON requests', async () => {
    const res = await post(
      `${gw.url}/graphql`,
      multipart([
        { name: 'operations', value: '{"query":"{ __typename }","variables":{"f":null}}' },
        { name: 'map', value: '{"0":["variables.f"]}' },
        { name: '0', filename: 'big', data: Buffer.alloc(1024 * 1024 + 1) },
      ]),
    );
    expect(res).toEqual({ status: 413, body: { errors: [{ message: 'Upload larger than 1048576 bytes', extensions: { code: 'PAYLOAD_TOO_LARGE' } }] } });
    expect((await gw.gql('{ __typename }')).body).toEqual({ data: { __typename: 'Query' } });
  });
});
