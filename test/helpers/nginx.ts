import { spawn, spawnSync } from 'node:child_process';
import { accessSync, chmodSync, closeSync, constants, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { waitFor } from './process.ts';

/** The committed config, as compose mounts it. */
export const GATEWAY_CONF = 'deploy/nginx/gateway.conf';

/** The nginx executable on PATH, or undefined. Tests that need it skip without it. */
export function findNginx(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'nginx');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

/**
 * The committed config with its upstream `server` lines and its `listen` replaced, and
 * nothing else touched: what is tested is the committed file. Throws when the file no
 * longer has the lines this rewrite expects, rather than test something else.
 */
export function renderGatewayConf(committed: string, { upstreams, listen }: { upstreams?: string[]; listen?: string }): string {
  let text = committed;
  if (upstreams) {
    const servers = /^([ \t]*)server[ \t]+gateway-\d+:4000;[ \t]*\n/gm;
    const found = text.match(servers) ?? [];
    if (found.length === 0) throw new Error(`${GATEWAY_CONF}: no \`server gateway-N:4000;\` lines in the upstream block`);
    let first = true;
    text = text.replace(servers, (_line, indent: string) => {
      if (!first) return '';
      first = false;
      return upstreams.map((address) => `${indent}server ${address};\n`).join('');
    });
  }
  if (listen) {
    const listens = text.match(/^[ \t]*listen[ \t]+8080;/gm) ?? [];
    if (listens.length !== 1) throw new Error(`${GATEWAY_CONF}: expected one \`listen 8080;\` line, found ${listens.length}`);
    text = text.replace(/^([ \t]*)listen[ \t]+8080;/m, `$1listen ${listen};`);
  }
  return text;
}

/**
 * A main config around the http-context gateway config (`dir`/gateway.conf), with every path
 * nginx writes (pid, logs, temp files) inside `dir`, so nginx runs without root and without
 * /etc/nginx. One worker; the bench's fan-out needs more connections than the tests' 256.
 */
export function mainConf(dir: string, workerConnections = 256): string {
  return `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections ${workerConnections}; }
http {
  client_body_temp_path ${dir}/client_body_temp;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  include ${dir}/gateway.conf;
}
`;
}

/** A folder holding `gateway.conf` and the main config around it; nginx's prefix. */
function prefixWith(gatewayConf: string): { dir: string; conf: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nginx-'));
  // When the test runs as root, nginx's workers run as `nobody` and must reach the temp folders.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'gateway.conf'), gatewayConf);
  writeFileSync(join(dir, 'nginx.conf'), mainConf(dir));
  return { dir, conf: join(dir, 'nginx.conf') };
}

const nginxArgs = (dir: string, conf: string) => ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf];

/** `nginx -t` on a gateway config: whether nginx accepts it, and what it said. */
export function checkNginxConf(nginx: string, gatewayConf: string): { ok: boolean; output: string } {
  const { dir, conf } = prefixWith(gatewayConf);
  // stdout not a socket: the config opens /dev/stdout, which Linux refuses for a socket.
  const run = spawnSync(nginx, [...nginxArgs(dir, conf), '-t'], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  return { ok: run.status === 0, output: run.stderr };
}

/** A TCP port free right now on 127.0.0.1 (nginx binds it a moment later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface RunningNginx {
  url: string;
  /** The access log so far (the config's `gateway` JSON format, written to stdout), parsed. */
  accessLog(): Array<Record<string, any>>;
  errorLog(): string;
  stop(): Promise<void>;
}

/**
 * nginx in the foreground (`daemon off`) serving the committed config, rendered for the
 * given upstream addresses on a free local port. Resolves once it answers HTTP.
 */
export async function startNginx(nginx: string, upstreams: string[]): Promise<RunningNginx> {
  const port = await freePort();
  const gatewayConf = renderGatewayConf(readFileSync(GATEWAY_CONF, 'utf8'), { upstreams, listen: `127.0.0.1:${port}` });
  const { dir, conf } = prefixWith(gatewayConf);
  // stdout is a file: the config logs to /dev/stdout, which Linux will not open on the
  // socket a pipe from Node would be.
  const stdout = join(dir, 'stdout.log');
  const stdoutFd = openSync(stdout, 'a');
  const child = spawn(nginx, [...nginxArgs(dir, conf), '-g', 'daemon off;'], { stdio: ['ignore', stdoutFd, 'pipe'] });
  closeSync(stdoutFd);
  const accessLog = () =>
    readFileSync(stdout, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, any>);
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const errorLog = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const url = `http://127.0.0.1:${port}`;
  const failed = exited.then((code) => {
    throw new Error(`nginx exited with ${code}: ${stderr}${errorLog()}`);
  });
  // Any answer (a 404 here) means it listens.
  await Promise.race([waitFor(async () => (await fetch(`${url}/nginx-is-up`), true)), failed]);
  return {
    url,
    accessLog,
    errorLog,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
