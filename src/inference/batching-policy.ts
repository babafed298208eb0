import type { Manifest } from './manifest.ts';
import type { BatchingDecision, BatchingOptions, TensorSpec } from './types.ts';

export const DEFAULT_BATCHING: BatchingOptions = { maxBatchSize: 64, maxQueueDelayMs: 0 };

interface Shapes {
  inputs: readonly TensorSpec[];
  outputs: readonly TensorSpec[];
}

const tensorsOf = (shapes: Shapes) => [
  ...shapes.inputs.map((spec) => ({ role: 'input', spec })),
  ...shapes.outputs.map((spec) => ({ role: 'output', spec })),
];

/** The first tensor (inputs, then outputs) that cannot be stacked along its first dimension, and why. */
function unstackable(shapes: Shapes): string | undefined {
  if (shapes.inputs.length === 0) return 'the model has no inputs';
  for (const { role, spec } of tensorsOf(shapes)) {
    if (spec.shape.length === 0) return `${role} \`${spec.name}\` is a scalar`;
    if (spec.shape[0] !== -1) return `${role} \`${spec.name}\` has a fixed first dimension (${spec.shape[0]})`;
  }
  return undefined;
}

/**
 * The symbolic first dimension every input and output shares, or why there is none.
 * The candidate is the name most tensors start with, so the reason names the odd one out.
 */
function sharedBatchDimension(shapes: Shapes): { name: string } | { problem: string } {
  if (shapes.inputs.length === 0) return { problem: 'the model has no inputs' };
  const tensors = tensorsOf(shapes);
  const counts = new Map<string, number>();
  for (const { spec } of tensors) {
    const first = spec.dimNames[0];
    if (spec.shape[0] === -1 && first) counts.set(first, (counts.get(first) ?? 0) + 1);
  }
  const name = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  for (const { role, spec } of tensors) {
    const what = `${role} \`${spec.name}\``;
    const elsewhere = name === undefined ? -1 : spec.dimNames.indexOf(name);
    if (elsewhere > 0) return { problem: `${what} has its batch axis \`${name}\` at position ${elsewhere}, not first` };
    if (spec.shape.length === 0) return { problem: `${what} is a scalar` };
    if (spec.shape[0] !== -1) return { problem: `${what} has a fixed first dimension (${spec.shape[0]})` };
    const first = spec.dimNames[0];
    if (!first) return { problem: `${what} has an unnamed first dimension` };
    if (first !== name) return { problem: `${what} has first dimension \`${first}\`, not \`${name}\`` };
  }
  return { name: name! };
}

/**
 * Triton's rule for stacking concurrent requests, which must never change an answer:
 * - `enabledByConfig` false (BATCHING=false): off.
 * - model.json `batching.maxBatchSize` 0 or 1: off. Above 1: on, provided every input and
 *   output has a dynamic first dimension (else off, with a warning).
 * - no `batching` in model.json: on only when the first dimension of every input and output
 *   is the same symbolic name (e.g. `batch`), which promises that rows are independent.
 */
export function decideBatching(shapes: Shapes, manifest: Manifest['batching'], enabledByConfig: boolean): BatchingDecision {
  const shared = sharedBatchDimension(shapes);
  const problem = unstackable(shapes);
  const settings = { ...DEFAULT_BATCHING, ...manifest };
  const asked = manifest !== undefined && settings.maxBatchSize > 1;
  const rowsMustAgree = 'name' in shared || (asked && !problem);
  const warning = asked && problem ? `model.json asks for batching, but ${problem}` : undefined;
  const off = (reason: string): BatchingDecision => ({
    enabled: false,
    reason,
    maxBatchSize: 0,
    maxQueueDelayMs: 0,
    rowsMustAgree,
    ...(warning ? { warning } : {}),
  });

  if (!enabledByConfig) return off('BATCHING=false');
  if (manifest) {
    const setting = `model.json batching.maxBatchSize is ${settings.maxBatchSize}`;
    if (!asked) return off(setting);
    if (problem) return off(`${setting}, but ${problem}`);
    return { enabled: true, reason: setting, ...settings, rowsMustAgree };
  }
  if ('problem' in shared) return off(shared.problem);
  return { enabled: true, reason: `every input and output has first dimension \`${shared.name}\``, ...DEFAULT_BATCHING, rowsMustAgree };
}
