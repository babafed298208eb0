import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

function files(root: string, dir = root): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(root, path) : [relative(root, path)];
  });
}

describe('models:build', () => {
  it('rebuilds byte-for-byte the models committed in models/', { timeout: 180_000 }, () => {
    const out = mkdtempSync(join(tmpdir(), 'models-build-'));
    execFileSync(process.execPath, ['--import', 'tsx', 'scripts/models/build.ts', '--out', out], { stdio: 'pipe' });
    const built = files(out).sort();
    expect(built).toEqual(files('models').sort());
    for (const file of built) expect(readFileSync(join(out, file)).equals(readFileSync(join('models', file))), file).toBe(true);
  });
});
