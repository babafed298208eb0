import { randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, resolve as resolvePath } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { BadUserInputError, PayloadTooLargeError, type GatewayError } from '../errors.ts';
import { refuseUnread } from './body-limit.ts';

/** A file sent with a GraphQL multipart request, already written whole to a temp file. */
export interface UploadedFile {
  /** As the client named it (no directories); '' when it sent none. */
  filename: string;
  /** The part's Content-Type, as the client declared it (not checked). */
  mimetype: string;
  /** Absolute path of the temp file; deleted when the response ends unless moved away before. */
  path: string;
  /** Bytes on disk. */
  size: number;
}

const SPEC = 'https://github.com/jaydenseric/graphql-multipart-request-spec';

/**
 * The files of one request. Each file sits in the operation's variables as an opaque
 * token (`upload:` and a random UUID) at the place the client's `map` named; a resolver
 * turns the token back into the file with `take`. Tokens of other requests, and anything
 * a JSON client can write (strings, objects with a `path`), are refused: only this
 * request's multipart body can put a file here.
 */
export class Uploads {
  private readonly files = new Map<string, UploadedFile>();

  /** Registers a file written for this request; returns its token. Called by the transport. */
  add(file: UploadedFile): string {
    const token = `upload:${randomUUID()}`;
    this.files.set(token, file);
    return token;
  }

  /** The file a token stands for, or undefined (never throws: for looking before the resolver takes it). */
  peek(token: unknown): UploadedFile | undefined {
    return typeof token === 'string' ? this.files.get(token) : undefined;
  }

  /**
   * The file a token stands for; the same file every time it is asked for (a file mapped to
   * several places has one token). Throws BAD_USER_INPUT at `path` (the argument's path in
   * the operation) for anything that is not a token of this request.
   */
  take(token: unknown, path: ReadonlyArray<string | number> = []): UploadedFile {
    const file = this.peek(token);
    if (!file) throw new BadUserInputError([{ path, message: 'expected a file sent with the GraphQL multipart request' }]);
    return file;
  }

  /**
   * Deletes the temp files still at their paths. Safe to call more than once, and after a
   * resolver moved or deleted a file itself.
   */
  async cleanup(): Promise<void> {
    await Promise.all([...this.files.values()].map((file) => rm(file.path, { force: true })));
  }
}

/** True for `multipart/form-data` requests (the GraphQL multipart request spec's only form). */
export function isMultipart(req: IncomingMessage): boolean {
  return /^multipart\/form-data\s*(;|$)/i.test(req.headers['content-type'] ?? '');
}

export interface MultipartOptions {
  /** Bytes of all files of the request together; one byte more and it gets 413. */
  maxFileBytes: number;
  /** Bytes of the `operations` field, and separately of `map`; one more gets 413. */
  maxFieldBytes: number;
  /** Folder for the temp files; created if missing. */
  dir: string;
}

type Operations = Record<string, unknown> | unknown[];

/**
 * Reads a GraphQL multipart request (`operations`, then `map`, then the files): each file
 * streams to its own temp file in `dir`, with back-pressure (a slow disk slows the client,
 * memory holds one chunk per file), and its token replaces the value at every path `map`
 * gives for it. Resolves the operations (object, or array for a batch) with the tokens in,
 * ready for Yoga as a parsed JSON body, and the request's Uploads; the caller owns the temp
 * files from then on (`uploads.cleanup()`).
 *
 * Resolves undefined when it answered the request itself, with no temp file left behind:
 * 413 as soon as the files together pass `maxFileBytes` (while the client is still sending;
 * the connection is then closed) or when `operations` or `map` passes `maxFieldBytes`
 * (known once that field has been read through, never held whole); 400 for a request the
 * spec does not allow (misordered or missing fields, invalid JSON, a `map` path that is not
 * in the operations, a file in `map` never sent). Also undefined when the client went away.
 * Rejects only on a server-side failure (the disk), after deleting what it wrote.
 */
export async function readMultipartOperation(
  req: IncomingMessage,
  res: ServerResponse,
  options: MultipartOptions,
): Promise<{ body: Operations; uploads: Uploads } | undefined> {
  const dir = resolvePath(options.dir);
  await mkdir(dir, { recursive: true });

  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: req.headers,
      defParamCharset: 'utf8',
      // busboy flags a field that reaches fieldSize as truncated, so one byte of room.
      limits: { fieldSize: options.maxFieldBytes + 1 },
    });
  } catch (error) {
    refuseUnread(req, res, badRequest(['content-type'], (error as Error).message));
    return undefined;
  }

  return new Promise((resolve, reject) => {
    let operations: Operations | undefined;
    /** Field name of each file → the operation paths it goes to. */
    let map: Map<string, string[][]> | undefined;
    const received = new Map<string, UploadedFile>();
    const written: Array<{ stream: WriteStream; closed: Promise<void> }> = [];
    const parts: Array<Promise<void>> = [];
    let fileBytes = 0;
    let settled = false;
    const tooLarge = new PayloadTooLargeError(options.maxFileBytes, `Upload larger than ${options.maxFileBytes} bytes`);

    /** Stops reading and deletes every temp file; the request's body is left unread. */
    const discard = async () => {
      settled = true;
      req.unpipe(parser);
      req.pause();
      parser.destroy();
      for (const { stream } of written) stream.destroy();
      await Promise.all(written.map(({ closed }) => closed));
      await Promise.all(written.map(({ stream }) => rm(stream.path, { force: true })));
    };
    const refuse = (error: GatewayError) => {
      if (settled) return;
      void discard().then(() => {
        refuseUnread(req, res, error);
        resolve(undefined);
      }, reject);
    };
    const fail = (error: unknown) => {
      if (settled) return;
      void discard().then(() => reject(error as Error), reject);
    };

    /** Counts every file byte of the request (mapped or not) against maxFileBytes. */
    async function* counted(source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        fileBytes += chunk.length;
        if (fileBytes > options.maxFileBytes) throw tooLarge;
        yield chunk;
      }
    }
    const onPartError = (error: unknown) => (error === tooLarge ? refuse(tooLarge) : fail(error));

    parser.on('field', (name, value, info) => {
      if (settled) return;
      if (name !== 'operations' && name !== 'map') return; // Not in the spec: ignored.
      if (info.valueTruncated) {
        refuse(new PayloadTooLargeError(options.maxFieldBytes, `Multipart field \`${name}\` larger than ${options.maxFieldBytes} bytes`));
        return;
      }
      if (name === 'operations') {
        if (operations) return refuse(badRequest(['operations'], 'sent twice'));
        const parsed = parseJson(value);
        if (!isOperations(parsed)) return refuse(badRequest(['operations'], 'expected a JSON object (one operation) or a non-empty array of them (a batch)'));
        operations = parsed;
        return;
      }
      if (!operations) return refuse(badRequest(['map'], `must follow the \`operations\` field (${SPEC})`));
      if (map) return refuse(badRequest(['map'], 'sent twice'));
      const parsed = readMap(parseJson(value), operations);
      if (typeof parsed === 'string') return refuse(badRequest(['map'], parsed));
      map = parsed;
    });

    parser.on('file', (name, stream: Readable, info) => {
      // Destroyed with an error when the reading stops; nobody else listens to this one.
      const drop = () => void stream.on('error', () => {}).resume();
      if (settled) return drop();
      if (!map) return void (drop(), refuse(badRequest([name], `files must follow the \`map\` field (${SPEC})`)));
      if (!map.has(name) || received.has(name)) {
        // Not asked for (or sent twice): read through, not kept, still counted.
        parts.push(pipeline(stream, counted, new Writable({ write: (_chunk, _encoding, done) => done() })).catch(onPartError));
        return;
      }
      const path = join(dir, randomUUID());
      const file = createWriteStream(path, { flags: 'wx', mode: 0o600 });
      written.push({ stream: file, closed: new Promise((closed) => file.once('close', () => closed())) });
      const entry: UploadedFile = { filename: info.filename ?? '', mimetype: info.mimeType, path, size: 0 };
      received.set(name, entry);
      parts.push(
        pipeline(stream, counted, file).then(() => {
          entry.size = file.bytesWritten;
        }, onPartError),
      );
    });

    parser.on('error', (error) => {
      if (!settled) refuse(badRequest([], `malformed multipart body: ${(error as Error).message}`));
    });

    parser.on('close', () => {
      if (settled) return;
      if (!operations) return refuse(badRequest(['operations'], `missing (${SPEC})`));
      if (!map) return refuse(badRequest(['map'], `missing (${SPEC})`));
      const complete = map;
      void Promise.all(parts).then(() => {
        if (settled) return;
        const missing = [...complete.keys()].filter((name) => !received.has(name));
        if (missing.length > 0) {
          refuse(new BadUserInputError(missing.map((name) => ({ path: ['map', name], message: `file \`${name}\` was never sent` }))));
          return;
        }
        settled = true;
        const uploads = new Uploads();
        for (const [name, paths] of complete) {
          const token = uploads.add(received.get(name)!);
          for (const path of paths) place(operations!, path, token);
        }
        resolve({ body: operations!, uploads });
      });
    });

    // The client went away before the body ended: nobody to answer.
    req.on('close', () => {
      if (settled || req.complete) return;
      void discard().then(() => {
        res.destroy();
        resolve(undefined);
      }, reject);
    });
    req.on('error', () => {});
    req.pipe(parser);
  });
}

function badRequest(path: string[], message: string): BadUserInputError {
  return new BadUserInputError([{ path, message }]);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** An empty object is refused too: whatwg-node would not take it as an already-parsed body. */
function isOperations(value: unknown): value is Operations {
  if (Array.isArray(value)) return value.length > 0 && value.every((op) => isRecord(op) && Object.keys(op).length > 0);
  return isRecord(value) && Object.keys(value).length > 0;
}

/** The parsed `map`, or what is wrong with it. Every path must lead into `operations`. */
function readMap(value: unknown, operations: Operations): Map<string, string[][]> | string {
  if (!isRecord(value)) return 'expected a JSON object of file field names to arrays of operation paths';
  const map = new Map<string, string[][]>();
  for (const [name, paths] of Object.entries(value)) {
    if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p) => typeof p === 'string')) {
      return `\`${name}\`: expected a non-empty array of operation paths such as "variables.file"`;
    }
    const split = paths.map((p) => p.split('.'));
    const wrong = split.findIndex((segments) => containerAt(operations, segments) === undefined);
    if (wrong >= 0) return `\`${name}\`: path \`${paths[wrong]}\` is not in the operations`;
    map.set(name, split);
  }
  return map;
}

/** Keys that would reach an object's prototype instead of its own data. */
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * The object or array holding the last segment of `segments`, walking own properties only;
 * undefined if the path leaves the operations (or names an array slot that is not there).
 */
function containerAt(operations: Operations, segments: string[]): Record<string, unknown> | unknown[] | undefined {
  let container: unknown = operations;
  for (let i = 0; i < segments.length; i++) {
    const key = segments[i]!;
    if (FORBIDDEN.has(key)) return undefined;
    if (Array.isArray(container)) {
      if (!/^\d+$/.test(key) || Number(key) >= container.length) return undefined;
    } else if (!isRecord(container) || (i < segments.length - 1 && !Object.hasOwn(container, key))) {
      return undefined;
    }
    if (i === segments.length - 1) return container;
    container = (container as Record<string, unknown>)[key];
  }
  return undefined;
}

function place(operations: Operations, segments: string[], token: string): void {
  const container = containerAt(operations, segments) as Record<string, unknown>;
  container[segments[segments.length - 1]!] = token;
}
