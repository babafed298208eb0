// A model version's drift: its recent stored inputs, binned against the training reference
// histograms in its model.json (features[].reference). Reads the history through a reader
// passed in (one query), computes in memory (psi.ts).
import type { TensorData, VersionDescriptor } from '../inference/types.ts';
import { binValues, psi, type ReferenceHistogram } from './psi.ts';

export interface FeatureDrift {
  name: string;
  /** Population stability index of the sampled values against the reference; null when nothing was sampled. */
  psi: number | null;
  /** Share of sampled values outside the training range (the reference's first and last edge); null when nothing was sampled. */
  outOfRangeShare: number | null;
}

export interface ModelDrift {
  model: string;
  version: number;
  /** Stored predictions asked for (the newest ones of this version). */
  window: number;
  /** Feature rows found in them (a prediction of n rows counts n). */
  sampled: number;
  /** The features that have a reference, in model.json order. */
  features: FeatureDrift[];
}

/** The input tensors of the newest `limit` stored predictions of a model version, newest first. */
export type RecentInputs = (model: string, version: number, limit: number) => Promise<TensorData[][]>;

type Descriptor = Pick<VersionDescriptor, 'name' | 'version' | 'manifest' | 'inputs'>;

interface Referenced {
  /** The tabular input the features describe. */
  input: string;
  width: number;
  features: Array<{ name: string; column: number; reference: ReferenceHistogram }>;
}

/** The tabular input and its features that carry a reference; undefined when none does. */
export function referencedFeatures(version: Descriptor): Referenced | undefined {
  const features = version.manifest.features;
  const input = version.inputs.find((i) => i.featureNames);
  if (!features || !input) return undefined;
  const referenced = features.flatMap((f, column) => (f.reference ? [{ name: f.name, column, reference: f.reference }] : []));
  return referenced.length ? { input: input.name, width: features.length, features: referenced } : undefined;
}

/**
 * Drift of the newest `window` stored predictions of `version`, or null when its manifest
 * has no reference. Predictions without the tabular input (none today: it is required) are skipped.
 */
export async function measureDrift(read: RecentInputs, version: Descriptor, window: number): Promise<ModelDrift | null> {
  const referenced = referencedFeatures(version);
  if (!referenced) return null;
  const stored = await read(version.name, version.version, window);
  const { width } = referenced;
  const columns = referenced.features.map((): number[] => []);
  let sampled = 0;
  for (const tensors of stored) {
    const data = tensors.find((t) => t.name === referenced.input)?.data;
    if (!data) continue;
    const rows = Math.floor(data.length / width);
    for (let r = 0; r < rows; r++) {
      referenced.features.forEach((f, k) => columns[k]!.push(data[r * width + f.column]!));
    }
    sampled += rows;
  }
  return {
    model: version.name,
    version: version.version,
    window,
    sampled,
    features: referenced.features.map((f, k) => {
      if (sampled === 0) return { name: f.name, psi: null, outOfRangeShare: null };
      const binned = binValues(f.reference, columns[k]!);
      return { name: f.name, psi: psi(f.reference.proportions, binned.counts), outOfRangeShare: binned.outOfRange / binned.total };
    }),
  };
}
