// Loaders for the bundled data sets in `datasets/` (see datasets/README.md for
// sources and formats). Only `datasets/` is read: the build must work from a
// clean checkout of this repository alone.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** Repository-relative so the build works from any cwd. */
export const DATASETS_DIR = new URL('../../datasets/', import.meta.url);

export interface ClassificationData {
  /** Input column names, in the order the model's `features` tensor expects. */
  featureNames: string[];
  /** Class names; `y[i]` indexes into this. */
  labels: string[];
  x: number[][];
  y: number[];
}

export interface RegressionData {
  featureNames: string[];
  x: number[][];
  y: number[];
}

function readText(file: string): string {
  const buf = readFileSync(new URL(file, DATASETS_DIR));
  return (file.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8');
}

function parseRows(text: string, separator: RegExp): number[][] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) =>
      line.split(separator).map((cell) => {
        const v = Number(cell);
        if (!Number.isFinite(v)) throw new Error(`not a number: ${JSON.stringify(cell)}`);
        return v;
      }),
    );
}

/**
 * scikit-learn style CSV: header `rows,features,label0,label1,...`, then one row
 * per sample with the features followed by the integer class.
 */
function loadHeaderedClassCsv(file: string, featureNames: string[]): ClassificationData {
  const text = readText(file);
  const newline = text.indexOf('\n');
  const header = text.slice(0, newline).trim().split(',');
  const rowCount = Number(header[0]);
  const featureCount = Number(header[1]);
  const labels = header.slice(2);
  if (featureCount !== featureNames.length) {
    throw new Error(`${file}: header says ${featureCount} features, expected ${featureNames.length}`);
  }
  return splitClassColumn(file, parseRows(text.slice(newline + 1), /,/), rowCount, featureNames, labels);
}

function splitClassColumn(
  file: string,
  rows: number[][],
  rowCount: number,
  featureNames: string[],
  labels: string[],
): ClassificationData {
  if (rows.length !== rowCount) throw new Error(`${file}: ${rows.length} rows, expected ${rowCount}`);
  const x: number[][] = [];
  const y: number[] = [];
  for (const row of rows) {
    if (row.length !== featureNames.length + 1) throw new Error(`${file}: row has ${row.length} columns`);
    const cls = row[featureNames.length]!;
    if (!Number.isInteger(cls) || cls < 0 || cls >= labels.length) throw new Error(`${file}: bad class ${cls}`);
    x.push(row.slice(0, featureNames.length));
    y.push(cls);
  }
  return { featureNames, labels, x, y };
}

export function loadIris(): ClassificationData {
  return loadHeaderedClassCsv('iris.csv', ['sepal_length_cm', 'sepal_width_cm', 'petal_length_cm', 'petal_width_cm']);
}

const BREAST_CANCER_MEASURES = [
  'radius',
  'texture',
  'perimeter',
  'area',
  'smoothness',
  'compactness',
  'concavity',
  'concave_points',
  'symmetry',
  'fractal_dimension',
];

/** Column order as in scikit-learn: 10 means, 10 standard errors, 10 worst values. */
export const BREAST_CANCER_FEATURES = [
  ...BREAST_CANCER_MEASURES.map((m) => `mean_${m}`),
  ...BREAST_CANCER_MEASURES.map((m) => `${m}_error`),
  ...BREAST_CANCER_MEASURES.map((m) => `worst_${m}`),
];

export function loadBreastCancer(): ClassificationData {
  return loadHeaderedClassCsv('breast_cancer.csv', BREAST_CANCER_FEATURES);
}

/** Raw (unscaled) Efron et al. columns; sex is coded 1/2. */
export const DIABETES_FEATURES = ['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6'];

export function loadDiabetes(): RegressionData {
  const x = parseRows(readText('diabetes_data_raw.csv.gz'), /\s+/);
  const y = parseRows(readText('diabetes_target.csv.gz'), /\s+/).map((row) => row[0]!);
  if (x.length !== 442 || y.length !== 442) throw new Error(`diabetes: ${x.length} × ${y.length} rows, expected 442`);
  for (const row of x) if (row.length !== DIABETES_FEATURES.length) throw new Error('diabetes: bad row width');
  return { featureNames: DIABETES_FEATURES, x, y };
}

/** Row-major 8×8 image: pixel_<row>_<col>, each 0..16. */
export const DIGITS_FEATURES = Array.from({ length: 64 }, (_, i) => `pixel_${Math.floor(i / 8)}_${i % 8}`);

export function loadDigits(): ClassificationData {
  const labels = Array.from({ length: 10 }, (_, d) => String(d));
  return splitClassColumn('digits.csv.gz', parseRows(readText('digits.csv.gz'), /,/), 1797, DIGITS_FEATURES, labels);
}

/** The BSD fortune(6) files in datasets/fortunes/, in the order their entries are returned. */
export const FORTUNE_FILES = ['fortunes', 'literature', 'riddles'] as const;

/**
 * fortune(6) text files: entries separated by lines holding only `%`. Returns the
 * raw entries (no normalisation) in file order, each ending with its last newline;
 * blank entries are skipped.
 */
export function loadFortunes(): string[] {
  const entries: string[] = [];
  for (const file of FORTUNE_FILES) {
    let lines: string[] = [];
    const flush = () => {
      if (lines.some((line) => line.trim().length > 0)) entries.push(`${lines.join('\n')}\n`);
      lines = [];
    };
    const text = readText(`fortunes/${file}`);
    // split('\n') leaves one empty string after the final newline; it is not a line.
    for (const line of text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n')) {
      if (line === '%') flush();
      else lines.push(line);
    }
    flush();
  }
  return entries;
}
