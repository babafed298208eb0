/**
 * Memory cost of big requests: starts the gateway as `npm start` runs it, sends `concurrency`
 * big requests of one form at once, and reports how much its peak RSS rose above the RSS just
 * before, divided by the bytes in flight (the request bodies). Peak RSS is the kernel's VmHWM,
 * reset before each form through /proc/<pid>/clear_refs, so earlier forms do not hide later ones.
 *
 *   npx tsx bench/amplification.ts   (standalone), or as a section of `npm run bench`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readMemoryKb, startServer, stopServer } from './processes.ts';

export interface AmplificationFigure {
  form: string;
  concurrency: number;
  bodyBytes: number;
  rssBeforeMb: number;
  peakMb: number;
  responseBytes: number;
  /** (peak RSS − RSS before) / (concurrency × (bodyBytes + responseBytes)): the median of `runs` bursts, each in a fresh process. */
  amplification: number;
  runs: number[];
  ok: number;
}

interface Form {
  name: string;
  body: () => string;
  /** Requests in the burst; forms with small bodies send more, so every burst carries a similar number of bytes. */
  concurrency: number;
}

const ROWS = 56_000; // iris rows: 224,000 numbers, about 1.8 MB of JSON
const irisData = () => Array.from({ length: ROWS * 4 }, (_, i) => Math.round(([5.1, 3.5, 1.4, 0.2][i % 4]! + (i % 7) * 0.013) * 1000) / 1000);

const FORMS: Form[] = [
  {
    name: '`inputs` in variables (iris, 56,000 rows)',
    body: () =>
      JSON.stringify({
        query: 'mutation($i: [TensorInput!]!) { predict(input: { model: "iris", inputs: $i }) { id label } }',
        variables: { i: [{ name: 'features', datatype: 'FP32', shape: [ROWS, 4], data: irisData() }] },
      }),
    concurrency: 6,
  },
  {
    name: '`inputs` in variables, every output selected',
    body: () =>
      JSON.stringify({
        query: 'mutation($i: [TensorInput!]!) { predict(input: { model: "iris", inputs: $i }) { id outputs { data } } }',
        variables: { i: [{ name: 'features', datatype: 'FP32', shape: [ROWS, 4], data: irisData() }] },
      }),
    concurrency: 6,
  },
  {
    // Literals count as tokens (20,000 at most), so an inline tensor is small.
    name: '`inputs` inline in the query (iris, 4,500 rows)',
    body: () => {
      const data = irisData().slice(0, 4_500 * 4);
      return JSON.stringify({
        query: `mutation { predict(input: { model: "iris", inputs: [{ name: "features", datatype: FP32, shape: [4500, 4], data: [${data.join(',')}] }] }) { id label } }`,
      });
    },
    concurrency: 72,
  },
];

const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;

/** Each form `runs` times, each time in a fresh gateway process; the median is reported. */
export async function runAmplificationBench(repoRoot: string, script: string, nodeArgs: string[], runs = 3): Promise<AmplificationFigure[]> {
  const figures: AmplificationFigure[] = [];
  for (const form of FORMS) {
    const measured: AmplificationFigure[] = [];
    for (let i = 0; i < runs; i++) measured.push(await measureForm(repoRoot, script, nodeArgs, form));
    measured.sort((a, b) => a.amplification - b.amplification);
    const median = measured[Math.floor(measured.length / 2)]!;
    figures.push({ ...median, runs: measured.map((m) => m.amplification) });
  }
  return figures;
}

async function measureForm(repoRoot: string, script: string, nodeArgs: string[], form: Form): Promise<AmplificationFigure> {
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-amplification-'));
  const server = await startServer({
    name: 'gateway (amplification)',
    script,
    cwd: repoRoot,
    env: { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', DATABASE_URL: `file:${join(dir, 'bench.db')}` },
    readyPath: '/readyz',
    nodeArgs,
  });
  try {
    const post = (body: string) =>
      fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(async (res) => {
        const text = await res.text();
        return { ok: res.status === 200 && !text.includes('"errors"'), bytes: Buffer.byteLength(text) };
      });
    const body = form.body();
    // Steady state: one request of the same form first (V8 sizes its young generation and
    // compiles the path on it), then the burst.
    await post(body);
    await new Promise((r) => setTimeout(r, 500));
    writeFileSync(`/proc/${server.pid}/clear_refs`, '5'); // VmHWM := current RSS
    const before = readMemoryKb(server.pid)!.rssKb;
    const results = await Promise.all(Array.from({ length: form.concurrency }, () => post(body)));
    const peak = readMemoryKb(server.pid)!.hwmKb;
    const bodyBytes = Buffer.byteLength(body);
    const responseBytes = results[0]!.bytes;
    return {
      form: form.name,
      concurrency: form.concurrency,
      bodyBytes,
      responseBytes,
      rssBeforeMb: mb(before),
      peakMb: mb(peak),
      amplification: Math.round(((peak - before) * 1024 * 100) / (form.concurrency * (bodyBytes + responseBytes))) / 100,
      runs: [],
      ok: results.filter((r) => r.ok).length,
    };
  } finally {
    await stopServer(server);
    rmSync(dir, { recursive: true, force: true });
  }
}

export function renderAmplification(figures: AmplificationFigure[]): string[] {
  return [
    'Each form in a fresh gateway process started as `npm start` runs it: one request of the form (warm-up), then a burst of them at once. Bytes in flight = request bodies + response bodies of the burst; amplification = (peak RSS during the burst − RSS just before it) / bytes in flight, the median of 3 processes (all 3 listed). Target: at most 10×.',
    '',
    '| request form | body bytes | response bytes | at once | RSS before MB | peak MB | amplification (median) | runs | ok |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...figures.map(
      (f) => `| ${f.form} | ${f.bodyBytes} | ${f.responseBytes} | ${f.concurrency} | ${f.rssBeforeMb} | ${f.peakMb} | ${f.amplification}× | ${f.runs.map((r) => `${r}×`).join(', ')} | ${f.ok}/${f.concurrency} |`,
    ),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Standalone: the bundle `npm start` runs must exist (`npm run build`).
  const root = fileURLToPath(new URL('..', import.meta.url));
  const tsx = process.argv.includes('--tsx');
  const figures = await runAmplificationBench(root, tsx ? 'src/main.ts' : 'dist/gateway/main.mjs', tsx ? ['--import', 'tsx'] : []);
  console.log(renderAmplification(figures).join('\n'));
}
