import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { bnTrainForward64, bnTrainGradFD64, expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { batchNormTrain } from './batch-norm-train';
import { stagedMean } from '../tensor/reduce';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Deterministic values in [lo, hi) (LCG). */
function values(n: number, seed: number, lo = -2, hi = 2): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return lo + ((hi - lo) * s) / 4294967296;
  });
}

const EPS = 1e-5;

/** The op's y and the gradients of Σ w·y w.r.t. x, gamma and beta. */
function run(shape: number[], x: Float32Array, gamma: Float32Array, beta: Float32Array, w: Float32Array) {
  return tf.tidy(() => {
    const xs = tf.tensor(x, shape);
    const ws = tf.tensor(w, shape);
    const g = tf.tensor1d(gamma);
    const b = tf.tensor1d(beta);
    const { value, grads } = tf.valueAndGrads((xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) => {
      const r = batchNormTrain(xi, gi, bi, EPS);
      tf.dispose([r.mean, r.variance]);
      return tf.sum(tf.mul(r.y, ws));
    })([xs, g, b]);
    value.dispose();
    const r = batchNormTrain(xs, g, b, EPS);
    return [r.y, r.mean, r.variance, ...grads].map((t) => t.dataSync());
  });
}

describe('batchNormTrain (composite, no backend kernel)', () => {
  // [label, shape, seed, y's atol]. A mean of ~100 over a spread of ~1 costs y a few float32 ulps of the mean.
  const cases: [string, number[], number, number][] = [
    ['NHWC [2,3,4,5]', [2, 3, 4, 5], 1, 1e-5],
    ['one channel [3,5,5,1]', [3, 5, 5, 1], 2, 1e-5],
    ['rank 2 [6,3] with a large mean', [6, 3], 3, 5e-5],
  ];
  for (const [label, shape, seed, yAtol] of cases) {
    it(`${label}: y, statistics and gradients match float64 definition and finite differences`, () => {
      const c = shape[shape.length - 1];
      const size = shape.reduce((a, b) => a * b, 1);
      const x = values(size, seed, seed === 3 ? 99 : -2, seed === 3 ? 101 : 2);
      const gamma = values(c, seed + 10, 0.5, 1.5);
      const beta = values(c, seed + 20);
      const w = values(size, seed + 30);
      const [y, mean, variance, dx, dGamma, dBeta] = run(shape, x, gamma, beta, w);
      const p = { x, channels: c, gamma, beta, eps: EPS };
      const ref = bnTrainForward64(p);
      const fd = bnTrainGradFD64(p, w);
      expectArrayClose(y, ref.y, { rtol: 1e-5, atol: yAtol }, 'y');
      expectArrayClose(mean, ref.mean, { rtol: 1e-6, atol: 1e-6 }, 'mean');
      expectArrayClose(variance, ref.variance, { rtol: 1e-4, atol: 1e-6 }, 'variance');
      expectArrayClose(dx, fd.dx, { rtol: 1e-3, atol: 1e-4 }, 'dx');
      expectArrayClose(dGamma, fd.dGamma, { rtol: 1e-4, atol: 1e-4 }, 'dGamma');
      expectArrayClose(dBeta, fd.dBeta, { rtol: 1e-5, atol: 1e-5 }, 'dBeta');
    });
  }

  it('matches autodiff through the mean/variance/batchNorm graph it replaces', () => {
    const shape = [4, 6, 6, 3];
    const size = shape.reduce((a, b) => a * b, 1);
    const x = values(size, 7);
    const gamma = values(3, 8, 0.5, 1.5);
    const beta = values(3, 9);
    const w = values(size, 10);
    const graph = tf.tidy(() => {
      const ws = tf.tensor(w, shape);
      const grads = tf.grads((xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) => {
        const axes = [0, 1, 2];
        const mean = stagedMean(xi, axes);
        const variance = stagedMean(tf.square(tf.sub(xi, mean)), axes);
        return tf.sum(tf.mul(tf.batchNorm(xi, mean, variance, bi, gi, EPS), ws));
      })([tf.tensor(x, shape), tf.tensor1d(gamma), tf.tensor1d(beta)]);
      return grads.map((t) => t.dataSync());
    });
    const ours = run(shape, x, gamma, beta, w).slice(3);
    ['dx', 'dGamma', 'dBeta'].forEach((name, i) =>
      expectArrayClose(ours[i], graph[i], { rtol: 1e-4, atol: 1e-5 }, name),
    );
  });

  it('does not leak: forward alone, and forward + backward', async () => {
    const x = tf.tensor(values(2 * 3 * 3 * 4, 11), [2, 3, 3, 4]);
    const g = tf.tensor1d(values(4, 12));
    const b = tf.tensor1d(values(4, 13));
    await expectNoLeak(() => batchNormTrain(x, g, b, EPS), { returned: 3 });
    await expectNoLeak(
      () =>
        tf.grads((xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) => {
          const r = batchNormTrain(xi, gi, bi, EPS);
          tf.dispose([r.mean, r.variance]);
          return tf.sum(tf.square(r.y));
        })([x, g, b]),
      { returned: 3 },
    );
    tf.dispose([x, g, b]);
  });
});
