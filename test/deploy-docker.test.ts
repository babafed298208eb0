import { existsSync, readFileSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../src/config.ts';

// deploy/Dockerfile, .dockerignore and deploy/compose.yaml, read and checked against each
// other and against the code. Docker cannot run on the development and CI machines: these
// files are validated here, never built or started.

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions in order (comments dropped, `\` continuations joined), split by stage. */
function dockerfileStages(text: string): Instruction[][] {
  const logical = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const stages: Instruction[][] = [];
  for (const line of logical.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s+(.*\S)\s*$/.exec(line);
    if (!match) continue;
    const instruction = { keyword: match[1]!.toUpperCase(), args: match[2]!.replace(/\s+/g, ' ') };
    if (instruction.keyword === 'FROM') stages.push([]);
    stages.at(-1)!.push(instruction);
  }
  return stages;
}

/** Whether .dockerignore keeps `path` (relative to the repository root) out of the build context. */
function dockerIgnores(rules: string[], path: string): boolean {
  const segments = path.split('/');
  const prefixes = segments.map((_, k) => segments.slice(0, k + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    const negated = rule.startsWith('!');
    const pattern = (negated ? rule.slice(1) : rule).replace(/^\/|\/$/g, '');
    const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\0').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\0/g, '.*')}$`);
    // A rule that matches a folder matches everything in it; the last matching rule wins.
    if (prefixes.some((prefix) => regex.test(prefix))) ignored = !negated;
  }
  return ignored;
}

const dockerfile = dockerfileStages(readFileSync('deploy/Dockerfile', 'utf8'));
const ignoreRules = readFileSync('.dockerignore', 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));
const compose = parse(readFileSync('deploy/compose.yaml', 'utf8')) as { services: Record<string, any> };
const nginxConf = readFileSync('deploy/nginx/gateway.conf', 'utf8');

/** The SHUTDOWN_TIMEOUT_MS a gateway with this environment runs with (config.ts's default when unset). */
const shutdownTimeoutMs = (env: Record<string, string>) => loadConfig({ SHUTDOWN_TIMEOUT_MS: env.SHUTDOWN_TIMEOUT_MS }).shutdownTimeoutMs;

/** A compose duration (`15s`, `1m30s`, `500ms`) in milliseconds. */
function durationMs(text: string): number {
  const units: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h)/g)];
  expect(parts.map((p) => p[0]).join(''), `duration ${text}`).toBe(text);
  return parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]!]!, 0);
}

/** A service's environment, from either the map or the `KEY=value` list form. */
function environmentOf(service: any): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  return Object.fromEntries(env.map((entry: string) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
}

describe('deploy/Dockerfile', () => {
  const [build, runtime] = [dockerfile[0]!, dockerfile.at(-1)!];
  const args = (stage: Instruction[], keyword: string) => stage.filter((i) => i.keyword === keyword).map((i) => i.args);

  it('builds in one node:20-bookworm-slim stage and runs in another', () => {
    expect(dockerfile.length).toBeGreaterThanOrEqual(2);
    expect(args(build, 'FROM')[0]).toBe('node:20-bookworm-slim AS build');
    expect(args(runtime, 'FROM')[0]).toBe('node:20-bookworm-slim');
  });

  it('installs with npm ci after ONNXRUNTIME_NODE_INSTALL=skip, and builds the bundle npm start runs', () => {
    const ci = build.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
    const skip = build.findIndex((i) => i.keyword === 'ENV' && /\bONNXRUNTIME_NODE_INSTALL=skip\b/.test(i.args));
    expect(ci).toBeGreaterThan(-1);
    expect(skip).toBeGreaterThan(-1);
    expect(skip).toBeLessThan(ci);
    expect(args(build, 'RUN').some((run) => run.includes('npm run build'))).toBe(true);

    // The CMD is what `npm start` runs after building, in exec form: node is PID 1 and gets SIGTERM.
    const start = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
    expect(JSON.parse(args(runtime, 'CMD')[0]!)).toEqual(start.split(' '));
    expect(args(runtime, 'STOPSIGNAL')).toEqual(['SIGTERM']);
  });

  it('runs as a numeric non-root user, exposes 4000 and checks /healthz', () => {
    const [user] = args(runtime, 'USER');
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(Number(user!.split(':')[0])).toBeGreaterThan(0);
    expect(args(runtime, 'EXPOSE')).toEqual(['4000']);
    const [healthcheck] = args(runtime, 'HEALTHCHECK');
    expect(healthcheck).toMatch(/ CMD /);
    expect(healthcheck).toContain('/healthz');
  });

  it('ships the models and the migrations the server applies at start', () => {
    const copies = args(runtime, 'COPY').filter((a) => !a.startsWith('--from'));
    expect(copies).toContain('models ./models');
    // src/store/database.ts reads ../../prisma/migrations from the bundle in dist/gateway/.
    expect(readFileSync('src/store/database.ts', 'utf8')).toContain("new URL('../../prisma/migrations', import.meta.url)");
    expect(copies).toContain('prisma/migrations ./prisma/migrations');
  });

  it('copies only what exists and is in the build context, which .dockerignore keeps small', () => {
    const sources = dockerfile
      .flat()
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(' ').filter((word) => !word.startsWith('--')).slice(0, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      expect(existsSync(source), `${source} exists`).toBe(true);
      expect(dockerIgnores(ignoreRules, normalize(source)), `${source} is in the build context`).toBe(false);
    }
    for (const left of ['node_modules/vitest/package.json', 'dist/gateway/main.mjs', 'data/gateway.db', '.env', '.git/HEAD', 'test/predict.test.ts', 'src/generated/prisma/client.ts']) {
      expect(dockerIgnores(ignoreRules, left), `${left} stays out`).toBe(true);
    }
  });
});

describe('deploy/compose.yaml', () => {
  const services = compose.services;
  const gateways = Object.keys(services).filter((name) => name.startsWith('gateway-'));

  it('runs two gateways, PostgreSQL 16, Redis 7 and nginx', () => {
    expect(Object.keys(services).sort()).toEqual(['gateway-1', 'gateway-2', 'nginx', 'postgres', 'redis']);
    expect(services.postgres.image).toBe('postgres:16');
    expect(services.redis.image).toMatch(/^redis:7\b/);
    expect(services.postgres.healthcheck.test).toContain('pg_isready');
    expect(services.redis.healthcheck.test).toContain('ping');
  });

  it.each(['gateway-1', 'gateway-2'])('%s: built from deploy/Dockerfile, on PostgreSQL and Redis, stopping within its grace period', (name) => {
    const gateway = services[name];
    expect(normalize(join('deploy', gateway.build.context, gateway.build.dockerfile))).toBe('deploy/Dockerfile');
    const env = environmentOf(gateway);
    expect(env.DATABASE_URL).toMatch(/^postgresql:\/\/[^@/]+@postgres:5432\/\w+$/);
    expect(env.REDIS_URL).toBe('redis://redis:6379');
    expect(env.HOST).toBe('0.0.0.0');
    // Docker's SIGKILL must come after the gateway's own shutdown deadline.
    expect(durationMs(gateway.stop_grace_period)).toBeGreaterThan(shutdownTimeoutMs(env));
    expect(gateway.depends_on).toEqual({ postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
  });

  it("nginx mounts the committed config where the image's nginx.conf includes it, and balances over exactly the gateway services", () => {
    const nginx = services.nginx;
    const [mount] = (nginx.volumes as string[]).map((v) => v.split(':'));
    expect(normalize(join('deploy', mount![0]!))).toBe('deploy/nginx/gateway.conf');
    expect(mount![1]).toBe('/etc/nginx/conf.d/default.conf');

    const listen = /^\s*listen\s+(\d+);/m.exec(nginxConf)![1];
    expect(nginx.ports).toEqual([`8080:${listen}`]);
    const upstreams = [...nginxConf.matchAll(/^\s*server\s+([\w-]+):(\d+);/gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(upstreams.sort()).toEqual(gateways.map((g) => `${g}:${environmentOf(services[g]).PORT ?? '4000'}`).sort());

    // service_healthy needs a health check: the gateways get theirs from the image.
    expect(nginx.depends_on).toEqual(Object.fromEntries(gateways.map((g) => [g, { condition: 'service_healthy' }])));
    expect(gateways.every((g) => services[g].healthcheck === undefined)).toBe(true);
    expect(dockerfile.at(-1)!.some((i) => i.keyword === 'HEALTHCHECK')).toBe(true);
  });
});
