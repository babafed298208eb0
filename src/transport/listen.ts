import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** `host:port` as a URL authority (IPv6 addresses in brackets). */
export const authority = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** The one fatal log line for an address that cannot be bound. */
export function cannotListen(error: NodeJS.ErrnoException, host: string, port: number): string {
  const why = error.code === 'EADDRINUSE' ? 'the address is already in use' : error.code === 'EADDRNOTAVAIL' ? 'no such local address' : error.message;
  return `cannot listen on ${authority(host, port)}: ${why}`;
}

/**
 * Answers a request Node's HTTP parser cannot read (a bad request line, a forbidden byte in a
 * header, headers over Node's 16 KB) with a JSON body and a documented code, as every other
 * refusal has, instead of Node's bare `400 Bad Request`: 431 for headers too large, 400
 * otherwise, code BAD_REQUEST; the connection is closed. Sockets already torn down (a reset, a
 * timeout) are only destroyed, as Node does.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const reason = status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
    const message = status === 431 ? 'Request headers are too large' : 'Malformed HTTP request';
    const body = JSON.stringify({ errors: [{ message, extensions: { code: 'BAD_REQUEST' } }] });
    socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
}
