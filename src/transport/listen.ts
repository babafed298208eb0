/** `host:port` as a URL authority (IPv6 addresses in brackets). */
export const authority = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** The one fatal log line for an address that cannot be bound. */
export function cannotListen(error: NodeJS.ErrnoException, host: string, port: number): string {
  const why = error.code === 'EADDRINUSE' ? 'the address is already in use' : error.code === 'EADDRNOTAVAIL' ? 'no such local address' : error.message;
  return `cannot listen on ${authority(host, port)}: ${why}`;
}
