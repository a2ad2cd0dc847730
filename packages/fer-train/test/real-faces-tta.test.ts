/**
 * The real-faces evaluation's probabilities and flip test-time augmentation on a fresh 2-branch CBAM ESR (no data
 * needed: seeded random faces in memory). Flip must equal the mean of two independent passes (the faces, and the
 * faces mirrored here in plain arrays); a mirror-symmetric face must score the same with and without it; every
 * public path must leave no tensor behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { BASIC7_LABELS, Rng, type Batch, type BatchOptions, type FerDataset } from 'fer-core';
import type { EsrEnsemble } from 'fer-models-esr';
import {
  preciseBn,
  predictBranches,
  pretrainedEsr,
  scoreOf,
  scoreRealFaces,
  type BranchPredictions,
} from '../src/experiments/real-faces';

const S = 64;
const K = BASIC7_LABELS.length;

/** In-memory faces [S, S, 3] (NHWC), served in order. */
function memoryDataset(name: string, faces: Float32Array[], labels: number[]): FerDataset {
  return {
    name,
    size: faces.length,
    labels: BASIC7_LABELS,
    async *batches(o: BatchOptions): AsyncIterable<Batch> {
      for (let s = 0; s < faces.length; s += o.batchSize) {
        const part = faces.slice(s, s + o.batchSize);
        const px = new Float32Array(part.length * S * S * 3);
        part.forEach((f, j) => px.set(f, j * S * S * 3));
        yield {
          images: tf.tensor4d(px, [part.length, S, S, 3]),
          labels: tf.tensor1d(labels.slice(s, s + o.batchSize), 'int32'),
        };
      }
    },
  };
}

/** The face mirrored left-right, in plain arrays (independent of tf.reverse). */
function mirror(face: Float32Array): Float32Array {
  const out = new Float32Array(face.length);
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++)
      for (let c = 0; c < 3; c++) out[(y * S + x) * 3 + c] = face[(y * S + (S - 1 - x)) * 3 + c];
  return out;
}

describe('real-faces probabilities and flip TTA (fresh ESR, in-memory faces)', () => {
  let esr: EsrEnsemble;
  let faces: Float32Array[];
  const labels = [0, 3, 6, 2, 5];
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    esr = pretrainedEsr(null, S, 3).esr;
    esr.addBranch();
    const rng = new Rng(11);
    // Left-right asymmetric faces in 0-255 (a ramp plus noise), so the mirror really differs.
    faces = labels.map(() =>
      Float32Array.from({ length: S * S * 3 }, (_, i) => ((i / 3) % S) * 3 + 60 * rng.uniform(0, 1)),
    );
    // Fresh running statistics (mean 0, variance 1) saturate on 0-255 faces: every face then gets the same output.
    await preciseBn(esr, memoryDataset('plain', faces, labels), { bnBatches: 2, batch: 2 }, 1);
  });
  afterAll(() => esr?.dispose());

  const row = (p: BranchPredictions, k: number, i: number) => Array.from(p.probs![k].subarray(i * K, (i + 1) * K));

  it('returns each branch softmax per face: rows sum to 1 and their argmax is the branch prediction', async () => {
    const p = await predictBranches(esr, memoryDataset('plain', faces, labels), 2);
    expect(p.truth).toEqual(labels);
    expect(p.probs).toHaveLength(2);
    for (let k = 0; k < 2; k++) {
      expect(p.probs![k]).toHaveLength(labels.length * K);
      for (let i = 0; i < labels.length; i++) {
        const r = row(p, k, i);
        expect(r.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
        expect(r.indexOf(Math.max(...r))).toBe(p.preds[k][i]);
      }
    }
    // The rules exist exactly when probabilities do; the faithful vote is unchanged by them.
    const s = scoreOf(p);
    expect(s.rules).toBeDefined();
    expect(scoreOf({ ...p, probs: undefined })).toMatchObject({ accuracy: s.accuracy, rules: undefined });
  });

  it('flip: each branch probability is the exact mean of the face pass and the mirrored-face pass', async () => {
    const plain = await predictBranches(esr, memoryDataset('plain', faces, labels), 2);
    const mirrored = await predictBranches(esr, memoryDataset('mirrored', faces.map(mirror), labels), 2);
    const flip = await predictBranches(esr, memoryDataset('plain', faces, labels), 2, { tta: 'flip' });
    let moved = 0;
    for (let k = 0; k < 2; k++) {
      for (let i = 0; i < labels.length * K; i++) {
        expect(flip.probs![k][i]).toBeCloseTo((plain.probs![k][i] + mirrored.probs![k][i]) / 2, 6);
        moved = Math.max(moved, Math.abs(plain.probs![k][i] - mirrored.probs![k][i]));
      }
      for (let i = 0; i < labels.length; i++) {
        const r = row(flip, k, i);
        expect(flip.preds[k][i]).toBe(r.indexOf(Math.max(...r)));
      }
    }
    expect(moved).toBeGreaterThan(1e-4); // the mirror did change the probabilities
    expect(flip.pairDistance).toEqual(plain.pairDistance); // the attention distance stays the unflipped face's
  });

  it('flip changes nothing on mirror-symmetric faces', async () => {
    const sym = faces.map((f) => {
      const m = mirror(f);
      return f.map((v, i) => (v + m[i]) / 2);
    });
    const plain = await predictBranches(esr, memoryDataset('sym', sym, labels), 5);
    const flip = await predictBranches(esr, memoryDataset('sym', sym, labels), 5, { tta: 'flip' });
    for (let k = 0; k < 2; k++)
      for (let i = 0; i < labels.length * K; i++) expect(flip.probs![k][i]).toBeCloseTo(plain.probs![k][i], 6);
    expect(flip.preds).toEqual(plain.preds);
  });

  it('refuses an unknown TTA in one line', async () => {
    await expect(
      predictBranches(esr, memoryDataset('plain', faces, labels), 2, { tta: 'rotate' as never }),
    ).rejects.toThrow("Expected test-time augmentation none or flip, but got 'rotate'.");
  });

  it('leaves no tensor behind (predictBranches with and without flip, scoreRealFaces)', async () => {
    const ds = memoryDataset('plain', faces, labels);
    await predictBranches(esr, ds, 2, { tta: 'flip' }); // warm-up: kernels may cache on first use
    const before = tf.memory().numTensors;
    await predictBranches(esr, ds, 2);
    await predictBranches(esr, ds, 3, { tta: 'flip' });
    const scores = await scoreRealFaces(esr, { test: ds, ckplus: ds, jaffe: null, holdout: ds }, null, 'flip');
    expect(tf.memory().numTensors).toBe(before);
    expect(Object.keys(scores).sort()).toEqual(['ckplus', 'holdout', 'test']);
    expect(scores.test!.size).toBe(labels.length);
  });
});
