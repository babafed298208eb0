import type { IncomingMessage, ServerResponse } from 'node:http';
import { PayloadTooLargeError, type GatewayError } from '../errors.ts';

/**
 * Reads a request body into one Buffer, counting bytes as they arrive, so a body with
 * no Content-Length (chunked) is refused as soon as it passes `limit` instead of being
 * read whole. Resolves undefined after answering 413 itself (the connection is then
 * closed: the rest of the body is never read).
 */
export function readBodyWithin(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer | undefined> {
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    refuseUnread(req, res, new PayloadTooLargeError(limit));
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.off('end', onEnd);
        refuseUnread(req, res, new PayloadTooLargeError(limit));
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => resolve(Buffer.concat(chunks, size));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
}

/**
 * Answers `error` as a GraphQL-style JSON body on its HTTP status, without reading the rest
 * of the request body: the connection is closed once the answer is out.
 */
export function refuseUnread(req: IncomingMessage, res: ServerResponse, error: GatewayError): void {
  req.pause();
  res.writeHead(error.httpStatus, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ errors: [{ message: error.message, extensions: { code: error.code, ...error.details } }] }));
  // Unread body bytes may still be on the way: drop the connection once the answer is out.
  res.once('finish', () => req.socket.destroySoon());
}
