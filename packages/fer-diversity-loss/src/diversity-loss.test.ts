import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import {
  DIVERSITY_PRESETS,
  DiversityInputError,
  diversityLoss,
  meanPairwiseDistance,
  reduceSimilarity,
  resolveDiversityOptions,
  similarityMatrix,
  type DiversityOptions,
} from './index';

function read(f: () => tf.Tensor): number[] {
  const t = f();
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
}

// docs/method.md#numerics worked examples (computed with the original classes).
const EX1 = () => tf.tensor4d([[[[0, 0]]], [[[0.1, 0.2]]]]); // n 2, B 1, maps 1×2
const EX2 = () =>
  tf.tensor3d([
    [
      [0, 0],
      [1, 0],
    ],
    [
      [0.1, 0],
      [1, 0.2],
    ],
    [
      [0, 0.3],
      [0.8, 0],
    ],
  ]); // n 3, B 2, vectors of length 2

/** Heads near each other: sigmoid(2z + noise·ε_i), z shared. */
function nearbyHeads(n: number, b: number, f: number, noise: number, seed: number): tf.Tensor3D {
  return tf.tidy(() => {
    const z = tf.randomNormal([1, b, f], 0, 1, 'float32', seed);
    const e = tf.randomNormal([n, b, f], 0, 1, 'float32', seed + 1);
    return tf.sigmoid(tf.add(tf.mul(z, 2), tf.mul(e, noise))) as tf.Tensor3D;
  });
}

/** Mean pairwise distance before and after one normalised gradient-descent step on the loss. */
function distanceChange(
  heads: tf.Tensor,
  options: DiversityOptions,
  lr = 1e-3,
): { before: number; after: number; gradMax: number } {
  return tf.tidy(() => {
    const g = tf.grad((h: tf.Tensor) => diversityLoss(h, options))(heads);
    const gradMax = tf.max(tf.abs(g)).dataSync()[0];
    const stepped = tf.sub(heads, tf.mul(g, lr / gradMax));
    return {
      before: meanPairwiseDistance(heads).dataSync()[0],
      after: meanPairwiseDistance(stepped).dataSync()[0],
      gradMax,
    };
  });
}

describe('diversity options', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    await tf.ready();
  });

  it('defaults to the dpp preset and lets explicit options override the preset', () => {
    expect(resolveDiversityOptions()).toEqual({ preset: 'dpp', ...DIVERSITY_PRESETS.dpp });
    expect(DIVERSITY_PRESETS.reference).toEqual({
      gamma: 10,
      diagonal: 'zero',
      distance: 'sum',
      reduction: 'negDet',
      epsilon: 0,
      detGradient: 'torch',
    });
    expect(resolveDiversityOptions({ preset: 'reference', gamma: 1, reduction: 'negLogDet', epsilon: 0.5 })).toEqual({
      preset: 'reference',
      gamma: 1,
      diagonal: 'zero',
      distance: 'sum',
      reduction: 'negLogDet',
      epsilon: 0.5,
      detGradient: 'torch',
    });
    expect(resolveDiversityOptions({ diagonal: 'zero', epsilon: 0 })).toMatchObject({
      preset: 'dpp',
      diagonal: 'zero',
      epsilon: 0,
      gamma: 1,
    });
  });

  it('rejects bad options and heads with messages that say what to do', () => {
    expect(() => resolveDiversityOptions({ preset: 'paper' as never })).toThrow(
      "Unknown diversity preset 'paper'. Valid: reference, dpp.",
    );
    expect(() => resolveDiversityOptions({ reduction: 'det' as never })).toThrow(/Valid: negDet, negLogDet, sum/);
    expect(() => resolveDiversityOptions({ gamma: 0 })).toThrow(/gamma to be a finite number > 0, but got 0/);
    expect(() => resolveDiversityOptions({ epsilon: -1 })).toThrow(/epsilon to be a finite number ≥ 0/);
    expect(() => resolveDiversityOptions({ distance: 'l2' as never })).toThrow(DiversityInputError);
    const flat = tf.zeros([3, 4]);
    expect(() => diversityLoss(flat)).toThrow(/\[n, batch, \.\.\.features\].*\[3, 4\].*headsFrom/);
    flat.dispose();
  });
});

describe.each(['cpu', 'wasm'])('similarity matrix and diversity loss (%s)', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
  });

  it('reproduces the docs/method.md#numerics worked examples (reference semantics, and with a unit diagonal)', () => {
    const e1 = EX1();
    expectArrayClose(
      read(() => similarityMatrix(e1)),
      [0, 0.60653, 0.60653, 0],
      { rtol: 1e-5 },
    );
    const ref = (o: DiversityOptions) => read(() => diversityLoss(e1, { preset: 'reference', ...o }))[0];
    expectArrayClose([ref({ reduction: 'sum' }), ref({}), ref({ reduction: 'negLogDet' })], [1.21306, 0.36788, NaN], {
      rtol: 1e-5,
    });
    expectArrayClose(
      [ref({ diagonal: 'one' }), ref({ diagonal: 'one', reduction: 'negLogDet' })],
      [-0.632121, 0.458675],
      { rtol: 1e-5 },
    );
    const e2 = EX2();
    const s2 = read(() => similarityMatrix(e2));
    expectArrayClose([s2[1], s2[2], s2[5], s2[3], s2[0]], [0.787579, 0.538445, 0.408604, 0.787579, 0], { rtol: 1e-5 });
    const ref2 = (o: DiversityOptions) => read(() => diversityLoss(e2, { preset: 'reference', ...o }))[0];
    expectArrayClose(
      [
        ref2({ reduction: 'sum' }),
        ref2({}),
        ref2({ reduction: 'negLogDet' }),
        ref2({ diagonal: 'one' }),
        ref2({ diagonal: 'one', reduction: 'negLogDet' }),
      ],
      [3.469255, -0.346552, 1.059723, -0.269391, 1.311591],
      { rtol: 1e-5 },
    );
    tf.dispose([e1, e2]);
  });

  it("'mean' distance equals 'sum' with γ divided by the feature count; 'one' puts 1 on the diagonal", () => {
    const h = nearbyHeads(4, 3, 10, 0.3, 7);
    const a = read(() => similarityMatrix(h, { gamma: 2, distance: 'mean', diagonal: 'one' }));
    const b = read(() => similarityMatrix(h, { gamma: 0.2, distance: 'sum', diagonal: 'one' }));
    expectArrayClose(a, b, { rtol: 1e-5 });
    expect([a[0], a[5], a[10], a[15]]).toEqual([1, 1, 1, 1]);
    expectArrayClose(
      a,
      [a[0], a[4], a[8], a[12], a[1], a[5], a[9], a[13], a[2], a[6], a[10], a[14], a[3], a[7], a[11], a[15]],
      { rtol: 0, atol: 0 },
    );
    h.dispose();
  });

  it('gradients of every reduction agree with finite differences (both presets)', () => {
    const h = nearbyHeads(3, 2, 4, 0.5, 11);
    const base = Array.from(h.dataSync());
    const cases: DiversityOptions[] = [
      { preset: 'dpp' },
      { preset: 'dpp', reduction: 'negDet' },
      { preset: 'dpp', reduction: 'sum' },
      { preset: 'reference', gamma: 1 },
      { preset: 'reference', gamma: 1, reduction: 'negLogDet' },
    ];
    for (const o of cases) {
      const g = read(() => tf.grad((x: tf.Tensor) => diversityLoss(x, o))(h));
      const eps = 1e-2;
      for (const i of [0, 5, 13, 22]) {
        const p = [...base];
        const m = [...base];
        p[i] += eps;
        m[i] -= eps;
        const fp = read(() => diversityLoss(tf.tensor(p, h.shape), o))[0];
        const fm = read(() => diversityLoss(tf.tensor(m, h.shape), o))[0];
        const fd = (fp - fm) / (2 * eps);
        expect(Math.abs(g[i] - fd)).toBeLessThanOrEqual(3e-3 * Math.max(1, Math.abs(fd)));
      }
    }
    h.dispose();
  });

  // Every n on wasm (the training backend); a spread of n on the slow pure-JS cpu backend.
  const NS = backend === 'wasm' ? Array.from({ length: 14 }, (_, i) => i + 2) : [2, 3, 8, 15];
  it(`'dpp': one gradient step on nearby heads increases their mean pairwise distance for n = ${backend === 'wasm' ? '2..15' : '2, 3, 8, 15'}`, () => {
    for (const n of NS) {
      const h = nearbyHeads(n, 4, 36, 0.1, 100 + n);
      const { before, after, gradMax } = distanceChange(h, { preset: 'dpp' });
      h.dispose();
      expect(Number.isFinite(gradMax) && gradMax > 0).toBe(true);
      expect(after).toBeGreaterThan(before);
    }
  });

  it("'reference' (defect, docs/method.md#numerics): for n = 3 the same step makes the heads *more similar*", () => {
    const h = nearbyHeads(3, 4, 36, 0.1, 103);
    const ref = distanceChange(h, { preset: 'reference' });
    expect(ref.gradMax).toBeGreaterThan(0);
    expect(ref.after).toBeLessThan(ref.before);
    // n = 2 points the intended way (−det = S12² ≥ 0).
    const h2 = nearbyHeads(2, 4, 36, 0.1, 102);
    const ref2 = distanceChange(h2, { preset: 'reference' });
    expect(ref2.after).toBeGreaterThan(ref2.before);
    tf.dispose([h, h2]);
  });

  it("'dpp' still has non-zero finite gradients on 512-d sigmoid heads where the reference underflows to exactly 0", () => {
    const h = tf.tidy(() => tf.sigmoid(tf.mul(tf.randomNormal([3, 4, 512], 0, 1, 'float32', 5), 2)));
    const refValue = read(() => diversityLoss(h, { preset: 'reference' }))[0];
    const refGrad = read(() => tf.grad((x: tf.Tensor) => diversityLoss(x, { preset: 'reference' }))(h));
    expect(refValue === 0).toBe(true);
    expect(refGrad.every((v) => v === 0)).toBe(true);
    const s = read(() => similarityMatrix(h));
    expect(s.every((v) => v === 0)).toBe(true); // exp(−10·d) underflows for every pair
    const dppValue = read(() => diversityLoss(h))[0];
    const dppGrad = read(() => tf.grad((x: tf.Tensor) => diversityLoss(x))(h));
    expect(Number.isFinite(dppValue)).toBe(true);
    expect(dppGrad.every(Number.isFinite)).toBe(true);
    expect(dppGrad.filter((v) => v !== 0).length).toBeGreaterThan(dppGrad.length / 2);
    h.dispose();
  });

  it('handles n up to 15 and a single head', () => {
    const h = nearbyHeads(15, 2, 8, 0.5, 9);
    const v = read(() => diversityLoss(h))[0];
    expect(Number.isFinite(v)).toBe(true);
    const one = nearbyHeads(1, 2, 8, 0.5, 9);
    expectArrayClose(
      read(() => diversityLoss(one)),
      [-Math.log(1 + 1e-3)],
      { rtol: 1e-4 },
    );
    expectArrayClose(
      read(() => meanPairwiseDistance(one)),
      [0],
      { rtol: 0, atol: 0 },
    );
    tf.dispose([h, one]);
  });

  it('leaks nothing: similarityMatrix, reduceSimilarity, diversityLoss and their gradients', async () => {
    const h = nearbyHeads(4, 3, 6, 0.2, 1);
    await expectNoLeak(() => similarityMatrix(h));
    const sumOf = (s: tf.Tensor2D) => reduceSimilarity(s, { reduction: 'sum', epsilon: 0, detGradient: 'torch' });
    await expectNoLeak(() => tf.grad((x: tf.Tensor) => sumOf(similarityMatrix(x, { diagonal: 'one' })))(h));
    for (const o of [
      {},
      { preset: 'reference' as const },
      { reduction: 'negDet' as const },
      { reduction: 'sum' as const },
      { preset: 'reference' as const, reduction: 'negLogDet' as const },
    ]) {
      await expectNoLeak(() => diversityLoss(h, o));
      await expectNoLeak(() => tf.grad((x: tf.Tensor) => diversityLoss(x, o))(h));
    }
    const s = tf.tensor2d([
      [1, 0.5],
      [0.5, 1],
    ]);
    await expectNoLeak(() => reduceSimilarity(s, { reduction: 'negLogDet', epsilon: 0, detGradient: 'adjugate' }));
    await expectNoLeak(() => meanPairwiseDistance(h));
    tf.dispose([h, s]);
  });
});
