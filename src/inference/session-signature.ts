// What a loaded session declares, read into TensorSpecs and checked against the model's manifest.
import type * as ort from 'onnxruntime-node';
import { datatypeFromOrt } from './datatypes.ts';
import { checkGenerator } from './generator-interface.ts';
import type { Manifest } from './manifest.ts';
import type { TensorSpec } from './types.ts';

export function specOf(meta: ort.InferenceSession.ValueMetadata, role: 'input' | 'output'): TensorSpec {
  if (!meta.isTensor) throw new Error(`${role} \`${meta.name}\` is not a tensor`);
  const datatype = datatypeFromOrt(meta.type);
  if (!datatype) throw new Error(`${role} \`${meta.name}\` has element type ${meta.type}, which the gateway does not serve`);
  // ORT reports a fixed dimension as a number, a named one as its name, an unnamed one as "".
  return {
    name: meta.name,
    datatype,
    shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
    dimNames: meta.shape.map((d) => (typeof d === 'string' && d !== '' ? d : null)),
  };
}

/** Checks the manifest against what the session reports and attaches feature names to the input. */
export function applyManifest(manifest: Manifest, shapes: { inputs: TensorSpec[]; outputs: TensorSpec[] }): void {
  if (manifest.features) {
    const input = manifest.input
      ? shapes.inputs.find((i) => i.name === manifest.input)
      : shapes.inputs.length === 1
        ? shapes.inputs[0]
        : undefined;
    if (!input) throw new Error(`model.json: features need \`input\` to name one of the model's inputs`);
    const width = input.shape.at(-1);
    if (width !== undefined && width !== -1 && width !== manifest.features.length) {
      throw new Error(`model.json lists ${manifest.features.length} features but input \`${input.name}\` has ${width} columns`);
    }
    input.featureNames = manifest.features.map((f) => f.name);
  }
  if (manifest.output && !shapes.outputs.some((o) => o.name === manifest.output)) {
    throw new Error(`model.json: output \`${manifest.output}\` is not an output of the model`);
  }
  if (manifest.labels) {
    const output = shapes.outputs.find((o) => o.name === manifest.output) ?? shapes.outputs[0];
    const width = output?.shape.at(-1);
    if (width !== undefined && width !== -1 && width !== manifest.labels.length) {
      throw new Error(`model.json lists ${manifest.labels.length} labels but output \`${output?.name}\` has ${width} classes`);
    }
  }
  checkGenerator(manifest, shapes);
}
