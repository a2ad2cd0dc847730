import * as path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors } from 'fer-torch/node';
import { toFloat32, type RawTensor } from 'fer-torch';

import { REFERENCE_DIR } from './paths';
import { maxAbs } from './float64';

export { REPO_ROOT, SHARED_DIR, REFERENCE_DIR, DATA_DIR } from './paths';
export {
  PYTHON,
  TRUTH_SCRIPT,
  hasTorch,
  describeIfTorch,
  runTruth,
  float64,
  maxAbs,
  relErr,
  updateScale,
  formatRows,
} from './float64';
export type { ErrorRow } from './float64';
export { nearDuplicateStateDict } from './fixture-rules';
export { bnTrainForward64, bnTrainGradFD64 } from './batch-norm-reference';
export { lcgValues, randomizeBatchNormWeights } from './fold';
export type { WritableWeight } from './fold';
export type { BnReferenceInput } from './batch-norm-reference';

/**
 * `describe` when `dir` exists, otherwise a skipped `describe` that says why, so a checkout without ../shared
 * still passes and tells the reader what did not run.
 */
export function describeIfExists(dir: string, name: string, fn: () => void): void {
  if (existsSync(dir)) {
    describe(name, fn);
  } else {
    // Jest runs the body of a skipped describe to collect its tests, and bodies read fixtures: never call `fn`.
    describe(name, () => {
      it.skip(`skipped: ${dir} not found (fixtures and data live in ../shared next to the repo)`, () => undefined);
    });
  }
}

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/**
 * Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, after checking shape. On failure the message
 * names the worst entry, its index and the error.
 */
export function expectArrayClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance = {},
  label = 'tensor',
): void {
  const rtol = tol.rtol ?? 1e-5;
  const atol = tol.atol ?? 1e-6;
  if (actual.length !== expected.length) {
    throw new Error(`${label}: expected ${expected.length} values, got ${actual.length}.`);
  }
  let worst = -1;
  let worstExcess = 0;
  let failures = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (!Number.isFinite(e) && a === e) continue;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0)) {
      failures++;
      if (worst < 0 || excess > worstExcess || Number.isNaN(excess)) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (failures > 0) {
    throw new Error(
      `${label}: ${failures}/${actual.length} entries outside rtol=${rtol}, atol=${atol}; worst at flat index ${worst}: ` +
        `actual ${actual[worst]}, expected ${expected[worst]} (|diff| ${Math.abs(actual[worst] - expected[worst])}).`,
    );
  }
}

/** Shape check then `expectArrayClose`. Does not dispose `actual`. */
export function expectTensorClose(
  actual: tf.Tensor,
  expected: tf.Tensor | { shape: number[]; values: ArrayLike<number> },
  tol: Tolerance = {},
  label = 'tensor',
): void {
  const eShape = expected.shape;
  if (actual.shape.length !== eShape.length || actual.shape.some((d, i) => d !== eShape[i])) {
    throw new Error(`${label}: expected shape [${eShape.join(', ')}], got [${actual.shape.join(', ')}].`);
  }
  const eVals = expected instanceof tf.Tensor ? expected.dataSync() : expected.values;
  expectArrayClose(actual.dataSync() as Float32Array, eVals, tol, label);
}

/**
 * Asserts each `[name, got, want]` has want's shape and values within rtol 1e-5 and an absolute tolerance of
 * `relAtol` × max|want| (a few float32 roundings moved per folded layer). Disposes nothing.
 */
export function expectOutputsClose(pairs: [string, tf.Tensor, tf.Tensor][], relAtol = 2e-5): void {
  for (const [name, got, want] of pairs) {
    expect([name, got.shape]).toEqual([name, want.shape]);
    const wv = want.dataSync();
    // A near-zero reference would make the check vacuous.
    expect([name, maxAbs(wv) > 1e-3]).toEqual([name, true]);
    expectArrayClose(got.dataSync(), wv, { rtol: 1e-5, atol: relAtol * maxAbs(wv) }, name);
  }
}

/**
 * Runs `fn` and asserts that it leaves exactly `returned` new tensors alive (those it returns), then disposes
 * what it returned. Works for sync and async functions.
 */
export async function expectNoLeak<T>(fn: () => T | Promise<T>, opts: { returned?: number } = {}): Promise<T> {
  const before = tf.memory().numTensors;
  const out = await fn();
  const after = tf.memory().numTensors;
  const returned = opts.returned ?? countTensors(out);
  if (after - before !== returned) {
    throw new Error(`Tensor leak: ${after - before} new tensors alive, expected ${returned} (the returned ones).`);
  }
  tf.dispose(out as unknown as tf.TensorContainer);
  if (tf.memory().numTensors !== before) {
    throw new Error(`Tensor leak: ${tf.memory().numTensors - before} tensors alive after disposing the result.`);
  }
  return out;
}

function countTensors(x: unknown, seen = new Set<unknown>()): number {
  if (x instanceof tf.Tensor) {
    if (seen.has(x)) return 0;
    seen.add(x);
    return 1;
  }
  if (Array.isArray(x)) return x.reduce((n: number, y) => n + countTensors(y, seen), 0);
  if (x && typeof x === 'object') return Object.values(x).reduce((n: number, y) => n + countTensors(y, seen), 0);
  return 0;
}

/** Tolerance of one fixture tensor (numpy allclose semantics; `atol_rel_max` scales atol by the tensor's max |x|). */
export interface FixtureTolerance {
  rtol: number;
  atol: number;
  atol_rel_max?: number;
}

/** One tensor of a fixture's manifest.json. */
export interface FixtureTensor {
  name: string;
  file: string;
  shape: number[];
  tolerance: FixtureTolerance;
}

/** Per-step values of a recorded training run (`loss_step<s>` terms and `total`). */
type StepValues = Record<string, number>;

/**
 * A fixture's manifest.json: the tensor list plus the fields some fixtures carry (the generator scripts in
 * ../shared/reference define them; a test reads only the fields its fixture has).
 */
export interface FixtureManifest {
  tensors: FixtureTensor[];
  /** The diversity fixture's input cases (their shape is that fixture's; its test types them). */
  cases: unknown[];
  /** Recorded SGD steps of a training fixture. */
  sgd: { step_losses: StepValues[] };
  /** Training fixtures with several variants (e.g. loss presets). */
  variants: Record<string, { steps: StepValues[] }>;
  /** MA-Net training fixture: loss terms and every diversity reduction. */
  loss: { values: Record<string, number>; all_diversity_values: Record<string, number> };
  [field: string]: unknown;
}

/** A fixture folder's manifest plus lazy access to its safetensors files as float32 tfjs tensors. */
export interface Fixture {
  dir: string;
  manifest: FixtureManifest;
  /** Raw tensor `name` of `file` (relative to the fixture folder). */
  raw(file: string, name: string): Promise<RawTensor>;
  /** A float32 tfjs tensor; the caller owns it. */
  tensor(file: string, name: string): Promise<tf.Tensor>;
  /** All tensor names of `file`. */
  names(file: string): Promise<string[]>;
}

export function loadFixture(name: string): Fixture {
  const dir = path.join(REFERENCE_DIR, name);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as FixtureManifest;
  const cache = new Map<string, ReturnType<typeof readSafetensors>>();
  const file = (f: string) => {
    if (!cache.has(f)) cache.set(f, readSafetensors(path.join(dir, f)));
    return cache.get(f)!;
  };
  const raw = async (f: string, n: string) => {
    const t = (await file(f)).tensors.get(n);
    if (!t) throw new Error(`Fixture ${name}/${f} has no tensor '${n}'.`);
    return t;
  };
  return {
    dir,
    manifest,
    raw,
    async tensor(f, n) {
      const t = await raw(f, n);
      return tf.tensor(toFloat32(t), t.shape, 'float32');
    },
    async names(f) {
      return [...(await file(f)).tensors.keys()];
    },
  };
}

/**
 * The backend the parity, trajectory and leak suites run on: 'native' when `FER_BACKEND=native` (CI runs them once
 * more that way when fer-native's addon is built), else 'wasm', the default path.
 */
export function testBackend(): 'wasm' | 'native' {
  return process.env.FER_BACKEND === 'native' ? 'native' : 'wasm';
}
