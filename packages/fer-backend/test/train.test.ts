import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { expectNoLeak } from 'fer-test-utils';
import { Prng } from './helpers';

/**
 * A small CNN (conv + BN + ReLU + max-pool, strided conv + BN + ReLU, dense) trained with plain SGD from the same
 * seeded weights and data on wasm and on cpu: the wasm losses fall and equal the cpu losses.
 */
const N = 8;
const SIZE = 12;
const CLASSES = 4;
const STEPS = 6;

interface Net {
  vars: tf.Variable[];
  loss(x: tf.Tensor4D, labels: tf.Tensor1D): tf.Scalar;
}

function buildNet(rng: Prng): Net {
  // tidy frees the initial values; variables survive it.
  const v = (shape: number[], init: number | ((n: number) => Float32Array)) =>
    tf.tidy(() => {
      const n = shape.reduce((a, b) => a * b, 1);
      return tf.variable(typeof init === 'number' ? tf.fill(shape, init) : tf.tensor(init(n), shape));
    });
  const w1 = v([3, 3, 3, 8], (n) => rng.values(n, 0.4));
  const g1 = v([8], 1);
  const b1 = v([8], 0);
  const w2 = v([3, 3, 8, 16], (n) => rng.values(n, 0.2));
  const g2 = v([16], 1);
  const b2 = v([16], 0);
  const wd = v([3 * 3 * 16, CLASSES], (n) => rng.values(n, 0.1));
  const bd = v([CLASSES], 0);
  const bnRelu = (x: tf.Tensor4D, g: tf.Tensor, b: tf.Tensor): tf.Tensor4D => {
    const m = tf.moments(x, [0, 1, 2]);
    return tf.relu(tf.batchNorm(x, m.mean, m.variance, b, g, 1e-5)) as tf.Tensor4D;
  };
  return {
    vars: [w1, g1, b1, w2, g2, b2, wd, bd],
    loss: (x, labels) =>
      tf.tidy(() => {
        let h = bnRelu(tf.conv2d(x, w1 as tf.Tensor4D, 1, 'same'), g1, b1); // [N, 12, 12, 8]
        h = tf.maxPool(h, 2, 2, 'valid'); // [N, 6, 6, 8]
        h = bnRelu(tf.conv2d(h, w2 as tf.Tensor4D, 2, 'same'), g2, b2); // [N, 3, 3, 16]
        const logits = tf.add(tf.matMul(tf.reshape(h, [N, -1]), wd), bd);
        return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, CLASSES), tf.logSoftmax(logits)), 1))) as tf.Scalar;
      }),
  };
}

async function train(backend: 'wasm' | 'cpu'): Promise<number[]> {
  await initBackend({ backend, quiet: true });
  const rng = new Prng(2024);
  const net = buildNet(rng);
  const labels = Int32Array.from({ length: N }, (_, i) => i % CLASSES);
  // Images carry a class-dependent pattern, so the net can learn something in a few steps.
  const pixels = rng
    .values(N * SIZE * SIZE * 3, 0.5)
    .map((v, i) => v + (labels[Math.floor(i / (SIZE * SIZE * 3))] === i % 4 ? 0.5 : 0));
  const x = tf.tensor4d(pixels, [N, SIZE, SIZE, 3]);
  const y = tf.tensor1d(labels, 'int32');
  const opt = tf.train.sgd(0.1);
  const losses: number[] = [];
  try {
    for (let step = 0; step < STEPS; step++) {
      const cost = opt.minimize(() => net.loss(x, y), true, net.vars)!;
      losses.push((await cost.data())[0]);
      cost.dispose();
    }
    // One more step under the leak check: a training step leaves nothing behind.
    await expectNoLeak(() => opt.minimize(() => net.loss(x, y), false, net.vars), { returned: 0 });
  } finally {
    opt.dispose();
    tf.dispose([x, y, ...net.vars]);
  }
  return losses;
}

describe('training a small CNN', () => {
  it('on wasm: the loss falls, and every step equals the cpu backend within 1e-4', async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    const before = tf.memory().numTensors;
    const wasm = await train('wasm');
    const cpu = await train('cpu');
    expect(tf.memory().numTensors).toBe(before);
    expect(wasm[STEPS - 1]).toBeLessThan(0.8 * wasm[0]);
    for (let i = 1; i < STEPS; i++) expect(wasm[i]).toBeLessThan(wasm[i - 1]);
    for (let i = 0; i < STEPS; i++) expect(Math.abs(wasm[i] - cpu[i])).toBeLessThanOrEqual(1e-4);
  });
});
