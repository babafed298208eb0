import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EMPTY_MANIFEST, manifestSchema, type Manifest } from './manifest.ts';

/** A version folder as found on disk. */
export interface ScannedVersion {
  /** `<root>/<name>/<version>/model.onnx`. */
  path: string;
  /** Modification time and size of model.onnx (a changed file reloads the version); null when it is missing. */
  stamp: string | null;
}

/** A model folder as found on disk: `<root>/<name>/` with numeric version folders and an optional model.json. */
export interface ScannedModel {
  name: string;
  /** The parsed model.json (EMPTY_MANIFEST when absent or invalid). */
  manifest: Manifest;
  /** Why model.json was refused; the model's versions cannot load while it stands. */
  manifestError: string | undefined;
  /** Modification time and size of model.json ('' when absent): a change re-reads it. */
  manifestStamp: string;
  /** Version folders by number, ascending. */
  versions: Map<number, ScannedVersion>;
}

function stampOf(path: string): string | null {
  try {
    const s = statSync(path);
    return `${s.mtimeMs}:${s.size}`;
  } catch {
    return null;
  }
}

/**
 * The model folders under `root` (only those named in `only`, when given). A folder is a
 * model when it holds a model.json or a numeric version folder; dot-folders are skipped.
 */
export function scanRepository(root: string, only?: readonly string[]): Map<string, ScannedModel> {
  const models = new Map<string, ScannedModel>();
  if (!existsSync(root)) return models;
  for (const name of readdirSync(root).sort()) {
    if (name.startsWith('.') || (only && !only.includes(name))) continue;
    const model = scanModel(root, name);
    if (model) models.set(name, model);
  }
  return models;
}

/** One model folder, or undefined when `<root>/<name>` is not a model folder (or is gone). */
export function scanModel(root: string, name: string): ScannedModel | undefined {
  const dir = join(root, name);
  try {
    if (!statSync(dir).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  const manifestPath = join(dir, 'model.json');
  const manifestStamp = stampOf(manifestPath) ?? '';
  let manifest = EMPTY_MANIFEST;
  let manifestError: string | undefined;
  if (manifestStamp) {
    try {
      const parsed = manifestSchema.safeParse(JSON.parse(readFileSync(manifestPath, 'utf8')));
      if (parsed.success) manifest = parsed.data;
      else manifestError = `model.json: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`;
    } catch (error) {
      manifestError = `model.json: ${(error as Error).message}`;
    }
  }
  const versions = new Map<number, ScannedVersion>();
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return undefined;
  }
  const numbers = entries
    .filter((v) => /^[1-9]\d*$/.test(v) && statSync(join(dir, v), { throwIfNoEntry: false })?.isDirectory())
    .map(Number)
    .sort((a, b) => a - b);
  for (const version of numbers) {
    const path = join(dir, String(version), 'model.onnx');
    versions.set(version, { path, stamp: stampOf(path) });
  }
  if (versions.size === 0 && !manifestStamp) return undefined;
  return { name, manifest, manifestError, manifestStamp, versions };
}
