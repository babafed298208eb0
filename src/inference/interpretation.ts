import type { Manifest, ModelKind } from './manifest.ts';
import type { TensorData } from './types.ts';

/**
 * What a prediction's outputs meant when it was made: the manifest's kind, the output
 * that carries probabilities or the value, and the class labels. Stored with the
 * prediction, so editing model.json later never changes what the history says.
 */
export interface Interpretation {
  kind: ModelKind;
  /** The main output's name (model.json `output`, else the model's first output). */
  output: string | null;
  /** Class labels in output order (classifiers with labels). */
  labels: string[] | null;
}

export interface ClassScore {
  label: string;
  index: number;
  probability: number;
}

/** The interpretation a manifest gives to a version whose first output is `firstOutput`. */
export function interpretationOf(manifest: Manifest, firstOutput: string | undefined): Interpretation {
  return { kind: manifest.kind, output: manifest.output ?? firstOutput ?? null, labels: manifest.labels ?? null };
}

function mainOutput(outputs: readonly TensorData[], meaning: Interpretation): TensorData | undefined {
  return outputs.find((o) => o.name === meaning.output) ?? outputs[0];
}

/** Classifiers: the classes of the first row, highest probability first; null for other kinds. */
export function classScores(outputs: readonly TensorData[], meaning: Interpretation): ClassScore[] | null {
  if (meaning.kind !== 'CLASSIFIER') return null;
  const output = mainOutput(outputs, meaning);
  if (!output) return null;
  const width = output.shape.at(-1) ?? output.data.length;
  return output.data
    .slice(0, width)
    .map((probability, index) => ({ label: meaning.labels?.[index] ?? String(index), index, probability }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index);
}

/** Regressors: the first value of the main output; null for other kinds. */
export function regressionValue(outputs: readonly TensorData[], meaning: Interpretation): number | null {
  if (meaning.kind !== 'REGRESSOR') return null;
  return mainOutput(outputs, meaning)?.data[0] ?? null;
}

/** What a prediction's outputs say, decided once from its interpretation. */
export interface Outcome {
  /** Classifiers: the most probable class. */
  label: string | null;
  /** Classifiers: every class, highest probability first. */
  scores: ClassScore[] | null;
  /** Regressors: the predicted value. */
  value: number | null;
}

export function outcomeOf(outputs: readonly TensorData[], meaning: Interpretation): Outcome {
  const scores = classScores(outputs, meaning);
  return { label: scores?.[0]?.label ?? null, scores, value: regressionValue(outputs, meaning) };
}
