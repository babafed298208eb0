import type { Manifest } from './manifest.ts';
import type { ReplayAgreement } from './model-events.ts';
import type { ServedVersion, TensorData } from './types.ts';

/** A stored request and the answer that was served for it (from the history). */
export interface ServedExample {
  inputs: TensorData[];
  outputs: TensorData[];
}

/**
 * Runs `examples` on `candidate` (in its bulk lane: online traffic of the same version goes
 * first) and compares its answers with the served ones: per row, the index of the largest
 * number of the main output (classifiers' label), and every output number present in both
 * under the same name. A request that fails on the candidate counts as a disagreement on each
 * of its rows, and adds nothing to the mean difference. Throws when every request failed.
 */
export async function replayAgreement(candidate: ServedVersion, examples: readonly ServedExample[]): Promise<ReplayAgreement> {
  const classifier = candidate.manifest.kind === 'CLASSIFIER';
  const output = candidate.manifest.output ?? candidate.outputs[0]?.name;
  let rows = 0;
  let agreeing = 0;
  let differenceSum = 0;
  let numbers = 0;
  let failures = 0;
  let firstFailure: unknown;
  await Promise.all(
    examples.map(async (example) => {
      const served = example.outputs.find((o) => o.name === output) ?? example.outputs[0];
      const width = served?.shape.at(-1) ?? 1;
      const exampleRows = served ? Math.max(1, served.data.length / Math.max(1, width)) : 1;
      rows += exampleRows;
      let replayed: TensorData[];
      try {
        replayed = await candidate.run(example.inputs, { priority: 'bulk' });
      } catch (error) {
        failures++;
        firstFailure ??= error;
        return;
      }
      for (const before of example.outputs) {
        const after = replayed.find((o) => o.name === before.name);
        if (!after || after.data.length !== before.data.length) continue;
        for (let i = 0; i < before.data.length; i++) differenceSum += Math.abs(after.data[i]! - before.data[i]!);
        numbers += before.data.length;
      }
      if (classifier && served) {
        const after = replayed.find((o) => o.name === served.name);
        if (!after) return;
        for (let r = 0; r < exampleRows; r++) if (argmax(served.data, r * width, width) === argmax(after.data, r * width, width)) agreeing++;
      }
    }),
  );
  if (examples.length > 0 && failures === examples.length) {
    throw new Error(`every replayed request failed on the new version: ${firstFailure instanceof Error ? firstFailure.message : String(firstFailure)}`);
  }
  return {
    replayed: examples.length,
    labelAgreement: classifier && rows > 0 ? agreeing / rows : null,
    meanAbsoluteDifference: numbers === 0 ? 0 : differenceSum / numbers,
  };
}

function argmax(data: readonly number[], start: number, width: number): number {
  let best = 0;
  for (let i = 1; i < width; i++) if (data[start + i]! > data[start + best]!) best = i;
  return best;
}

/** Why a replay's figures keep a version out of traffic under model.json `verify`; undefined when they pass. */
export function verificationFailure(verify: Manifest['verify'], agreement: ReplayAgreement): string | undefined {
  if (!verify) return undefined;
  if (verify.minAgreement !== undefined && agreement.labelAgreement !== null && agreement.labelAgreement < verify.minAgreement) {
    return `replay agreement ${round(agreement.labelAgreement)} on ${agreement.replayed} stored requests is below verify.minAgreement ${verify.minAgreement}`;
  }
  if (verify.maxMeanAbsoluteDifference !== undefined && agreement.meanAbsoluteDifference > verify.maxMeanAbsoluteDifference) {
    return `replay mean absolute difference ${round(agreement.meanAbsoluteDifference)} on ${agreement.replayed} stored requests is above verify.maxMeanAbsoluteDifference ${verify.maxMeanAbsoluteDifference}`;
  }
  return undefined;
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;
