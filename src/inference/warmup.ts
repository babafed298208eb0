import * as ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { DATATYPES } from './datatypes.ts';
import type { Manifest } from './manifest.ts';
import type { TensorSpec, VersionDescriptor } from './types.ts';

type WarmupInput = NonNullable<Manifest['warmup']>['inputs'][number];

/** ONNX Runtime would print its own error line for a failed run; the gateway reports failures itself. */
const QUIET: ort.InferenceSession.RunOptions = { logSeverityLevel: 4 };

/**
 * One run before the version is READY, so the first request does not pay for lazy
 * initialisation (Triton's model_warmup).
 * - With model.json `warmup`, its inputs are checked against the session's and the run
 *   must succeed; otherwise this throws and the version is FAILED with the reason.
 * - Without, the run is on zeros with every dynamic dimension 1. A valid model may reject
 *   that (a reflect pad needs length >= 2), so a failure is only logged as a warning.
 */
export async function warmUp(session: ort.InferenceSession, entry: Pick<VersionDescriptor, 'name' | 'version' | 'inputs'>, warmup: Manifest['warmup'], log: Logger): Promise<void> {
  if (warmup) {
    const feeds = manifestFeeds(entry.inputs, warmup.inputs);
    try {
      await session.run(feeds, QUIET);
    } catch (error) {
      throw new Error(`model.json warmup: the run failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    return;
  }
  const feeds: Record<string, ort.Tensor> = {};
  for (const spec of entry.inputs) {
    const shape = spec.shape.map((d) => (d === -1 ? 1 : d));
    feeds[spec.name] = tensor(spec, shape, new Array<number>(product(shape)).fill(0));
  }
  try {
    await session.run(feeds, QUIET);
  } catch (error) {
    log.warn(
      { model: entry.name, version: entry.version, reason: error instanceof Error ? error.message : String(error) },
      'warm-up on zeros (dynamic dimensions 1) failed; the version is served anyway. Give model.json `warmup` inputs the model accepts',
    );
  }
}

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function tensor(spec: TensorSpec, shape: number[], values: number[]): ort.Tensor {
  const info = DATATYPES[spec.datatype];
  return new ort.Tensor(info.ort, info.create(values), shape);
}

/** The manifest's warm-up inputs as feeds; every mismatch with the session is listed in one error. */
function manifestFeeds(specs: readonly TensorSpec[], inputs: readonly WarmupInput[]): Record<string, ort.Tensor> {
  const problems: string[] = [];
  const feeds: Record<string, ort.Tensor> = {};
  for (const [i, input] of inputs.entries()) {
    const at = `warmup.inputs.${i}`;
    const spec = specs.find((s) => s.name === input.name);
    if (!spec) {
      problems.push(`${at}.name: \`${input.name}\` is not an input of the model (${specs.map((s) => `\`${s.name}\``).join(', ')})`);
      continue;
    }
    if (feeds[input.name]) problems.push(`${at}.name: input \`${input.name}\` is given more than once`);
    const fits = input.shape.length === spec.shape.length && spec.shape.every((d, k) => d === -1 || d === input.shape[k]);
    if (!fits) {
      problems.push(`${at}.shape: input \`${spec.name}\` has shape [${spec.shape.join(', ')}] (-1: any size), got [${input.shape.join(', ')}]`);
      continue;
    }
    const values = valuesOf(input, spec, `${at}.data`, problems);
    if (values) feeds[input.name] = tensor(spec, input.shape, values);
  }
  for (const spec of specs) {
    if (!inputs.some((input) => input.name === spec.name)) problems.push(`warmup.inputs: missing input \`${spec.name}\``);
  }
  if (problems.length > 0) throw new Error(`model.json ${problems.join('; ')}`);
  return feeds;
}

function valuesOf(input: WarmupInput, spec: TensorSpec, at: string, problems: string[]): number[] | undefined {
  const count = product(input.shape);
  const info = DATATYPES[spec.datatype];
  if (input.data === 'zeros') return new Array<number>(count).fill(0);
  if (input.data === 'random') {
    // Seeded, so every load warms up on the same values: [0, 1) for floats, 0 or 1 for integer types.
    let state = 0x2545f491;
    const next = () => (state = (state * 48271) % 2147483647) / 2147483647;
    return Array.from({ length: count }, () => (info.integer ? Math.round(next()) : next()));
  }
  if (input.data.length !== count) {
    problems.push(`${at}: shape [${input.shape.join(', ')}] holds ${count} values, got ${input.data.length}`);
    return undefined;
  }
  const bad = input.data.find((v) => info.integer && (!Number.isInteger(v) || v < info.min || v > info.max));
  if (bad !== undefined) {
    problems.push(`${at}: ${spec.datatype} takes whole numbers from ${info.min} to ${info.max}, got ${bad}`);
    return undefined;
  }
  return input.data;
}
