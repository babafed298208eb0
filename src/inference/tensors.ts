import * as ort from 'onnxruntime-node';
import { BadUserInputError, type InputIssue } from '../errors.ts';
import { DATATYPES, datatypeFromOrt, toNumbers } from './datatypes.ts';
import type { Manifest } from './manifest.ts';
import type { TensorData, TensorSpec, VersionDescriptor } from './types.ts';

/** What request checking needs to know of a version. */
export type RequestTarget = Pick<VersionDescriptor, 'name' | 'inputs' | 'manifest'> & { readonly batching: Pick<VersionDescriptor['batching'], 'rowsMustAgree'> };

export interface PredictRequest {
  features?: readonly number[] | null;
  inputs?: ReadonlyArray<Readonly<TensorData>> | null;
}

/** More issues than this are not listed: the request is clearly wrong already. */
const MAX_ISSUES = 50;

class IssueList {
  readonly items: InputIssue[] = [];
  add(path: ReadonlyArray<string | number>, message: string): void {
    if (this.items.length < MAX_ISSUES) this.items.push({ path, message });
  }
  throwIfAny(): void {
    if (this.items.length > 0) throw new BadUserInputError(this.items);
  }
}

const list = (names: readonly string[]) => names.map((n) => `\`${n}\``).join(', ');
const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Turns a predict request into the model's input tensors, checked against what the
 * session reports and the manifest's feature ranges. Every problem found is listed
 * in one BadUserInputError; paths are relative to the mutation's arguments.
 */
export function requestTensors(version: RequestTarget, request: PredictRequest): TensorData[] {
  const { manifest } = version;
  const issues = new IssueList();
  const hasFeatures = request.features !== undefined && request.features !== null;
  const hasInputs = request.inputs !== undefined && request.inputs !== null;
  if (hasFeatures === hasInputs) {
    issues.add(['input'], 'give exactly one of `features` or `inputs`');
    issues.throwIfAny();
  }
  const tensors = hasFeatures
    ? featuresTensor(version, request.features!, issues)
    : inputTensors(version, request.inputs!, issues);
  issues.throwIfAny();

  if (hasInputs && version.batching.rowsMustAgree) checkBatchDimension(tensors, issues);
  for (const [index, tensor] of tensors.entries()) {
    const spec = version.inputs.find((s) => s.name === tensor.name)!;
    const dataPath = (k: number): Array<string | number> =>
      hasFeatures ? ['input', 'features', k] : ['input', 'inputs', index, 'data', k];
    checkValues(tensor, spec, manifest, dataPath, issues);
  }
  issues.throwIfAny();
  return tensors;
}

function featuresTensor(version: RequestTarget, features: readonly number[], issues: IssueList): TensorData[] {
  const path = ['input', 'features'];
  const [spec, ...others] = version.inputs;
  if (!spec || others.length > 0) {
    issues.add(path, `model \`${version.name}\` has ${version.inputs.length} inputs (${list(version.inputs.map((i) => i.name))}); send them through \`inputs\``);
    return [];
  }
  const rank = spec.shape.length;
  const leading = spec.shape.slice(0, -1);
  if (rank === 0 || rank > 2 || leading.some((d) => d !== -1 && d !== 1)) {
    issues.add(path, `input \`${spec.name}\` has shape [${spec.shape.join(', ')}], not one row of features; use \`inputs\``);
    return [];
  }
  const width = spec.shape.at(-1)!;
  if (width !== -1 && features.length !== width) {
    const names = spec.featureNames ? ` (${spec.featureNames.join(', ')})` : '';
    issues.add(path, `expected ${width} values${names}, got ${features.length}`);
    return [];
  }
  const shape = rank === 2 ? [1, features.length] : [features.length];
  return [{ name: spec.name, datatype: spec.datatype, shape, data: [...features] }];
}

function inputTensors(version: RequestTarget, inputs: ReadonlyArray<Readonly<TensorData>>, issues: IssueList): TensorData[] {
  const expected = version.inputs.map((i) => i.name);
  const seen = new Set<string>();
  for (const [index, tensor] of inputs.entries()) {
    const at = (field: string) => ['input', 'inputs', index, field];
    const spec = version.inputs.find((s) => s.name === tensor.name);
    if (!spec) {
      issues.add(at('name'), `unknown input \`${tensor.name}\`; model \`${version.name}\` takes ${list(expected)}`);
      continue;
    }
    if (seen.has(tensor.name)) issues.add(at('name'), `input \`${tensor.name}\` is given more than once`);
    seen.add(tensor.name);
    if (tensor.datatype !== spec.datatype) {
      issues.add(at('datatype'), `input \`${spec.name}\` is ${spec.datatype}, got ${tensor.datatype}`);
    }
    checkShape(tensor, spec, at('shape'), at('data'), issues);
  }
  for (const name of expected) {
    if (!seen.has(name) && !inputs.some((t) => t.name === name)) issues.add(['input', 'inputs'], `missing input \`${name}\``);
  }
  // The data arrays are the request's own (fresh from GraphQL's variable coercion): no copy.
  return inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...t.shape], data: t.data }));
}

function checkShape(tensor: Readonly<TensorData>, spec: TensorSpec, shapePath: Array<string | number>, dataPath: Array<string | number>, issues: IssueList): void {
  const expected = `[${spec.shape.join(', ')}]`;
  if (tensor.shape.some((d) => !Number.isInteger(d) || d < 0)) {
    issues.add(shapePath, `dimensions must be whole numbers >= 0, got [${tensor.shape.join(', ')}]`);
    return;
  }
  if (tensor.shape.length !== spec.shape.length) {
    issues.add(shapePath, `input \`${spec.name}\` has ${spec.shape.length} dimensions ${expected} (-1: any size), got [${tensor.shape.join(', ')}]`);
    return;
  }
  const mismatch = spec.shape.findIndex((d, i) => d !== -1 && d !== tensor.shape[i]);
  if (mismatch !== -1) {
    issues.add([...shapePath, mismatch], `input \`${spec.name}\` has shape ${expected} (-1: any size); dimension ${mismatch} must be ${spec.shape[mismatch]}, got ${tensor.shape[mismatch]}`);
    return;
  }
  const count = product(tensor.shape);
  if (count !== tensor.data.length) {
    issues.add(dataPath, `shape [${tensor.shape.join(', ')}] holds ${count} values, got ${tensor.data.length}`);
  }
}

/** A model that declares one batch dimension takes as many rows in every input as in the first. */
function checkBatchDimension(tensors: readonly TensorData[], issues: IssueList): void {
  const [first] = tensors;
  for (const [index, tensor] of tensors.entries()) {
    if (tensor.shape[0] === first!.shape[0]) continue;
    issues.add(
      ['input', 'inputs', index, 'shape', 0],
      `input \`${tensor.name}\` has ${tensor.shape[0]} rows but input \`${first!.name}\` has ${first!.shape[0]}: the first dimension is the model's batch dimension and must agree across inputs`,
    );
  }
}

function checkValues(
  tensor: TensorData,
  spec: TensorSpec,
  manifest: Manifest,
  dataPath: (k: number) => Array<string | number>,
  issues: IssueList,
): void {
  const info = DATATYPES[tensor.datatype];
  const features = spec.featureNames ? manifest.features : undefined;
  const width = tensor.shape.at(-1) ?? 1;
  const data = tensor.data;
  // An index loop: `entries()` would allocate a pair per element (megabytes for a big tensor).
  for (let k = 0; k < data.length; k++) {
    const value = data[k]!;
    if (!Number.isFinite(value)) {
      issues.add(dataPath(k), `expected a finite number, got ${value}`);
      continue;
    }
    if (info.integer && (!Number.isInteger(value) || value < info.min || value > info.max)) {
      issues.add(dataPath(k), `${tensor.datatype} takes whole numbers from ${info.min} to ${info.max}, got ${value}`);
      continue;
    }
    if (value < info.min || value > info.max) {
      issues.add(dataPath(k), `${tensor.datatype} takes numbers from ${info.min} to ${info.max}, got ${value}`);
      continue;
    }
    const feature = features?.[k % width];
    if (feature && ((feature.min !== undefined && value < feature.min) || (feature.max !== undefined && value > feature.max))) {
      issues.add(dataPath(k), `\`${feature.name}\` must be from ${feature.min ?? '-∞'} to ${feature.max ?? '∞'}, got ${value}`);
    }
  }
}

/** The request tensors as onnxruntime feeds. */
export function toFeeds(tensors: readonly TensorData[]): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const t of tensors) {
    const info = DATATYPES[t.datatype];
    feeds[t.name] = new ort.Tensor(info.ort, info.create(t.data), t.shape);
  }
  return feeds;
}

/** The session's results in the order the model declares its outputs. */
export function fromResults(version: Pick<VersionDescriptor, 'name' | 'outputs'>, results: ort.InferenceSession.ReturnType): TensorData[] {
  return version.outputs.map((spec) => {
    const tensor = results[spec.name];
    if (!tensor) throw new Error(`model \`${version.name}\` returned no output \`${spec.name}\``);
    return {
      name: spec.name,
      datatype: datatypeFromOrt(tensor.type) ?? spec.datatype,
      shape: [...tensor.dims],
      data: toNumbers(tensor.data),
    };
  });
}
