import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifierOnnx } from '../scripts/models/graphs.ts';

/** `npm run models:verify` (scripts/models/verify.ts), on `dir` or the committed models/. */
function verify(dir?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/models/verify.ts', ...(dir ? ['--dir', dir] : [])]);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** A copy of models/ to damage; the committed files are never touched. */
function modelsCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'models-verify-'));
  cpSync('models', dir, { recursive: true });
  return dir;
}

describe('models:verify', () => {
  it('passes on the committed models: every held-out score through ONNX Runtime matches model.json', { timeout: 60_000 }, async () => {
    const { code, stdout, stderr } = await verify();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/verify OK: 5 models/);
  });

  it('fails when a model scores lower than its model.json says (iris replaced by one that always answers virginica)', { timeout: 60_000 }, async () => {
    const dir = modelsCopy();
    const constant = classifierOnnx(
      { inputs: 4, outputs: 3, mean: [0, 0, 0, 0], std: [1, 1, 1, 1], weights: new Array(12).fill(0), bias: [0, 0, 1] },
      { name: 'iris', docString: 'always virginica' },
      ['setosa', 'versicolor', 'virginica'],
    );
    writeFileSync(join(dir, 'iris', '1', 'model.onnx'), constant);
    const { code, stderr } = await verify(dir);
    expect(code).toBe(1);
    expect(stderr).toMatch(/iris: held-out metric 0\.3\d* != manifest 0\.9667/);
    expect(stderr).not.toMatch(/breast_cancer|diabetes|digits|fortune/);
  });

  it('fails when a manifest is wrong (two iris labels swapped)', { timeout: 60_000 }, async () => {
    const dir = modelsCopy();
    const file = join(dir, 'iris', 'model.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    manifest.labels = [manifest.labels[1], manifest.labels[0], manifest.labels[2]];
    writeFileSync(file, JSON.stringify(manifest));
    const { code, stderr } = await verify(dir);
    expect(code).toBe(1);
    expect(stderr).toMatch(/iris: labels/);
  });

  it('fails when a training reference is not the training split\'s histogram (two diabetes bmi proportions swapped)', { timeout: 60_000 }, async () => {
    const dir = modelsCopy();
    const file = join(dir, 'diabetes', 'model.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    const bmi = manifest.features.find((f: { name: string }) => f.name === 'bmi').reference;
    bmi.proportions = [bmi.proportions[1], bmi.proportions[0], ...bmi.proportions.slice(2)];
    writeFileSync(file, JSON.stringify(manifest));
    const { code, stderr } = await verify(dir);
    expect(code).toBe(1);
    expect(stderr).toMatch(/diabetes: reference histograms differ from the training split's: bmi\n/);
  });
});
