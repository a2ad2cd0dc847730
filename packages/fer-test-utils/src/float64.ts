/**
 * Float64 truth for the train-mode parity tests (ESR and MA-Net): runs scripts/float64-truth.py with Debian's PyTorch
 * and compares float32 results (the fixture, PyTorch re-run here, ours) against it.
 */
import * as path from 'node:path';
import * as os from 'node:os';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { readSafetensors } from 'fer-torch/node';
import { type RawTensor } from 'fer-torch';
import { REPO_ROOT, SHARED_DIR } from './paths';

export const PYTHON = '/usr/bin/python3';
export const TRUTH_SCRIPT = path.join(REPO_ROOT, 'scripts', 'float64-truth.py');

/** True when Debian's python3 can import torch (find_spec: no import, which takes seconds). */
export const hasTorch =
  existsSync(PYTHON) &&
  spawnSync(PYTHON, ['-c', 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("torch") else 1)'], {
    timeout: 60_000,
  }).status === 0;

/** `describe` when torch and `dir` exist, else a skipped block whose title says what is missing. */
export function describeIfTorch(dir: string, name: string, fn: () => void): void {
  if (hasTorch && existsSync(dir)) {
    describe(name, fn);
    return;
  }
  const why = !hasTorch
    ? `${PYTHON} has no torch; apt-get install -y python3-torch to run`
    : `${dir} not found (fixtures live in ../shared)`;
  describe(name, () => {
    it.skip(`skipped: ${why}`, () => undefined);
  });
}

/**
 * Runs scripts/float64-truth.py for `model` (`--dtype`, optional `--routing` file, `--threads`) and resolves with
 * its tensors by fixture name, as float64. The output folder is removed afterwards.
 */
export async function runTruth(
  model: 'esr' | 'manet',
  opts: { dtype?: 'float64' | 'float32'; routing?: string; threads?: number } = {},
): Promise<Map<string, Float64Array>> {
  const dtype = opts.dtype ?? 'float64';
  const out = mkdtempSync(path.join(os.tmpdir(), `fer-${model}-truth-`));
  const args = [
    TRUTH_SCRIPT,
    '--model',
    model,
    '--dtype',
    dtype,
    '--out',
    out,
    '--threads',
    String(opts.threads ?? 1),
    '--reference',
    path.join(SHARED_DIR, 'reference'),
    '--bench',
    path.join(SHARED_DIR, 'bench'),
  ];
  if (opts.routing) args.push('--routing', opts.routing);
  try {
    await new Promise<void>((resolve, reject) => {
      const p = spawn(PYTHON, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      p.on('error', reject);
      p.on('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`${PYTHON} ${args.join(' ')} exited with ${code}:\n${err}`)),
      );
    });
    const file = await readSafetensors(path.join(out, `${model}-${dtype}${opts.routing ? '-routed' : ''}.safetensors`));
    return new Map([...file.tensors].map(([k, t]) => [k, float64(t)]));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Values of an F64 or F32 raw tensor as a Float64Array. */
export function float64(t: RawTensor): Float64Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = new Float64Array(n);
  if (t.dtype === 'float64') for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
  else if (t.dtype === 'float32') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
  else throw new Error(`float64(): expected a float32 or float64 tensor, got ${t.dtype}`);
  return out;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max|x − truth| / scale (scale > 0), after a length check. */
export function relErr(x: ArrayLike<number>, truth: ArrayLike<number>, scale: number, label: string): number {
  if (x.length !== truth.length) throw new Error(`${label}: expected ${truth.length} values, got ${x.length}`);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - truth[i]));
  return m / scale;
}

/** max|truth − init|: the size of a parameter's update. */
export function updateScale(truth: ArrayLike<number>, init: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < truth.length; i++) m = Math.max(m, Math.abs(truth[i] - init[i]));
  return m;
}

export interface ErrorRow {
  name: string;
  /** What the errors are relative to: 'max' (max|truth|), 'update' (max|truth − init|), 'w-…' (the layer's weight). */
  scale: string;
  /** The fixture (PyTorch float32) against the plain float64 run. */
  fixture: number;
  /** Ours against the plain float64 run. */
  ours: number;
  /** Ours against float64 replaying our ReLU masks and max-pool choices (ESR). */
  oursRouted?: number;
}

/** Fixed-width table of rows (for the test log and the README). */
export function formatRows(rows: ErrorRow[]): string {
  const f = (v: number) => v.toExponential(2).padStart(9);
  const w = Math.max(...rows.map((r) => r.name.length), 4);
  const routed = rows.some((r) => r.oursRouted !== undefined);
  const lines = rows.map(
    (r) =>
      `${r.name.padEnd(w)}  ${r.scale.padEnd(7)} ${f(r.fixture)} ${f(r.ours)}${routed ? ` ${f(r.oursRouted ?? NaN)}` : ''}`,
  );
  return [`${'name'.padEnd(w)}  scale     fixture      ours${routed ? '  ours-rt' : ''}`, ...lines].join('\n');
}
