// The shipped models: data, split, hyper-parameters and manifest text.
// build.ts trains from these; verify.ts uses them to rebuild the held-out rows.
// MODELS are the four tabular models; GENERATORS the text generators.
import type { CharNgramOptions } from './charlm.ts';
import { loadBreastCancer, loadDiabetes, loadDigits, loadFortunes, loadIris } from './datasets.ts';
import { generousRanges, type FeatureBounds } from './manifest.ts';
import { randomSplit, stratifiedSplit, type Split } from './split.ts';
import type { SgdOptions } from './train.ts';

export const SEED = 42;
export const TEST_FRACTION = 0.2;

export interface LoadedData {
  featureNames: string[];
  /** Present for classifiers. */
  labels?: string[];
  x: number[][];
  y: number[];
}

export interface ModelSpec {
  /** Directory name under models/ and the graph name. */
  name: string;
  kind: 'CLASSIFIER' | 'REGRESSOR';
  description: string;
  load: () => LoadedData;
  sgd: Omit<SgdOptions, 'seed'>;
  ranges: (data: LoadedData) => FeatureBounds[];
}

/** Stratified for classifiers (keeps class balance), plain shuffle for regression. */
export function splitFor(spec: ModelSpec, data: LoadedData, seed: number): Split {
  return spec.kind === 'CLASSIFIER'
    ? stratifiedSplit(data.y, TEST_FRACTION, seed)
    : randomSplit(data.y.length, TEST_FRACTION, seed);
}

const defaultRanges = (d: LoadedData) => generousRanges(d.featureNames, d.x);

export const MODELS: readonly ModelSpec[] = [
  {
    name: 'iris',
    kind: 'CLASSIFIER',
    description:
      "Fisher's iris flowers: predicts the species (setosa, versicolor or virginica) from sepal and petal " +
      'length and width in cm. Softmax regression on standardised features, trained with mini-batch ' +
      'momentum SGD on a stratified 80% split.',
    load: loadIris,
    sgd: { epochs: 300, batchSize: 16, learningRate: 0.05, momentum: 0.9, l2: 1e-4 },
    ranges: defaultRanges,
  },
  {
    name: 'breast_cancer',
    kind: 'CLASSIFIER',
    description:
      'Wisconsin diagnostic breast cancer: predicts whether a breast mass is malignant or benign from 30 ' +
      'measurements of cell nuclei in a fine-needle aspirate image (mean, standard error and worst value of ' +
      '10 properties). Softmax regression on standardised features, trained with mini-batch momentum SGD on ' +
      'a stratified 80% split.',
    load: loadBreastCancer,
    sgd: { epochs: 200, batchSize: 32, learningRate: 0.01, momentum: 0.9, l2: 1e-3 },
    ranges: defaultRanges,
  },
  {
    name: 'diabetes',
    kind: 'REGRESSOR',
    description:
      'Diabetes progression (Efron et al. 2004): predicts a quantitative measure of disease progression one ' +
      'year after baseline from age (years), sex (coded 1/2), BMI, average blood pressure and six blood serum ' +
      'measurements s1..s6, all in raw units. Least-squares linear regression on standardised features, ' +
      'trained with full-batch momentum gradient descent on a random 80% split.',
    load: loadDiabetes,
    sgd: { epochs: 2000, batchSize: Number.MAX_SAFE_INTEGER, learningRate: 0.05, momentum: 0.9, l2: 0 },
    ranges: (d) =>
      defaultRanges(d).map((r) => {
        if (r.name === 'age') return { ...r, max: 120 };
        if (r.name === 'sex') return { ...r, min: 1, max: 2 };
        return r;
      }),
  },
  {
    name: 'digits',
    kind: 'CLASSIFIER',
    description:
      'Handwritten digits (UCI optical recognition, 8x8 images): predicts the digit 0-9 from 64 pixel ' +
      'intensities 0..16 in row-major order. Softmax regression on standardised pixels, trained with ' +
      'mini-batch momentum SGD on a stratified 80% split.',
    load: loadDigits,
    sgd: { epochs: 60, batchSize: 32, learningRate: 0.01, momentum: 0.9, l2: 1e-3 },
    ranges: (d) => d.featureNames.map((name) => ({ name, min: 0, max: 16 })),
  },
];

export interface GeneratorSpec {
  /** Directory name under models/ and the graph name. */
  name: string;
  kind: 'GENERATOR';
  description: string;
  /** Raw text entries; whole entries are held out. */
  load: () => string[];
  testFraction: number;
  ngram: CharNgramOptions;
}

export const GENERATORS: readonly GeneratorSpec[] = [
  {
    name: 'fortune',
    kind: 'GENERATOR',
    description:
      'Character-level 6-gram language model (interpolated modified Kneser-Ney, pruned; predicts the next ' +
      'character from the previous five) trained on the BSD fortune corpus of fortunes, literature quotes and ' +
      'riddles; writes English-looking nonsense.',
    load: loadFortunes,
    testFraction: 0.1,
    ngram: {
      order: 6,
      minCharCount: 2,
      minContextCount: [1, 1, 1, 1, 2, 3],
      logitStepBits: 0.1,
      hashLoad: 0.45,
    },
  },
];
