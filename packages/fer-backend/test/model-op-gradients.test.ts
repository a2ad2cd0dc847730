import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { expectArrayClose } from 'fer-test-utils';
import { Prng, KERNEL_TOL } from './helpers';

/**
 * Every op ESR (CBAM) and MA-Net differentiate through, checked end to end: the gradient of a weighted sum of the
 * op's output with respect to every input, on wasm (with fer-backend's kernels) against the cpu backend.
 */
type Op = (...xs: tf.Tensor[]) => tf.Tensor;
const four = (t: tf.Tensor) => t as tf.Tensor4D;
const bn = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
  const m = tf.moments(x, [0, 1, 2]);
  return tf.batchNorm(x, m.mean, m.variance, b, g, 1e-5);
};
const CASES: [string, number[][], Op][] = [
  [
    'conv 5x5 valid (ESR base)',
    [
      [2, 11, 11, 3],
      [5, 5, 3, 6],
    ],
    (x, f) => tf.conv2d(four(x), four(f), 1, 'valid'),
  ],
  [
    'conv 7x7/2 explicit pad 3 (MA-Net stem)',
    [
      [1, 17, 17, 3],
      [7, 7, 3, 4],
    ],
    (x, f) =>
      tf.conv2d(
        four(
          tf.pad(x, [
            [0, 0],
            [3, 3],
            [3, 3],
            [0, 0],
          ]),
        ),
        four(f),
        2,
        'valid',
      ),
  ],
  [
    'conv 3x3/2 pad 1',
    [
      [2, 9, 9, 4],
      [3, 3, 4, 5],
    ],
    (x, f) =>
      tf.conv2d(four(x), four(f), 2, [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ]),
  ],
  [
    'conv 1x1/2 projection',
    [
      [2, 9, 9, 4],
      [1, 1, 4, 6],
    ],
    (x, f) => tf.conv2d(four(x), four(f), 2, 'valid'),
  ],
  [
    'fused conv + bias + relu, same',
    [[2, 7, 7, 3], [3, 3, 3, 4], [4]],
    (x, f, b) => tf.fused.conv2d({ x: four(x), filter: four(f), bias: b, activation: 'relu', strides: 1, pad: 'same' }),
  ],
  ['maxPool 2x2/2', [[2, 9, 9, 3]], (x) => tf.maxPool(four(x), 2, 2, 'valid')],
  ['maxPool 3x3/2 pad 1', [[2, 11, 11, 3]], (x) => tf.maxPool(four(x), 3, 2, 1)],
  ['avgPool 2x2/2', [[2, 8, 8, 3]], (x) => tf.avgPool(four(x), 2, 2, 'valid')],
  ['batch norm (batch statistics)', [[4, 5, 5, 6], [6], [6]], bn],
  ['relu', [[3, 5, 5, 6]], (x) => tf.relu(x)],
  ['sigmoid', [[3, 5, 5, 6]], (x) => tf.sigmoid(x)],
  ['global avg pool (mean over h, w)', [[3, 5, 5, 6]], (x) => tf.mean(x, [1, 2])],
  ['global max pool (max over h, w)', [[3, 5, 5, 6]], (x) => tf.max(x, [1, 2])],
  ['channel max / mean maps, concat', [[3, 5, 5, 6]], (x) => tf.concat([tf.max(x, 3, true), tf.mean(x, 3, true)], 3)],
  [
    'channel gate: broadcasting multiply',
    [
      [3, 5, 5, 6],
      [3, 1, 1, 6],
    ],
    (x, a) => tf.mul(x, a),
  ],
  [
    'spatial gate: broadcasting multiply',
    [
      [3, 5, 5, 6],
      [3, 5, 5, 1],
    ],
    (x, a) => tf.mul(x, a),
  ],
  ['dense + bias', [[4, 8], [8, 5], [5]], (x, w, b) => tf.add(tf.matMul(x, w), b)],
  [
    'fused dense + relu',
    [[4, 8], [8, 5], [5]],
    (x, w, b) => tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias: b, activation: 'relu' }),
  ],
  [
    'patch slices (MA-Net local branches)',
    [[2, 8, 8, 3]],
    (x) => tf.concat([tf.slice(x, [0, 0, 4, 0], [2, 4, 4, 3]), tf.slice(x, [0, 4, 0, 0], [2, 4, 4, 3])], 0),
  ],
  [
    'split channels + concat (multi-scale)',
    [[2, 4, 4, 6]],
    (x) => {
      const [a, b] = tf.split(x, 2, 3);
      return tf.concat([tf.relu(b), a], 3);
    },
  ],
  [
    'stack + reshape + transpose',
    [
      [2, 3, 4],
      [2, 3, 4],
    ],
    (x, y) => tf.transpose(tf.reshape(tf.stack([x, y]), [2, 2, 12]), [2, 0, 1]),
  ],
  [
    'log-softmax cross entropy',
    [[4, 7]],
    (x) => tf.mul(tf.oneHot(tf.tensor1d([1, 2, 3, 0], 'int32'), 7), tf.logSoftmax(x)),
  ],
  ['gather rows', [[6, 3]], (x) => tf.gather(x, tf.tensor1d([0, 2, 2, 5, 1], 'int32'))],
  [
    'exp / log / sqrt / square / div',
    [[5], [5]],
    (x, y) => tf.div(tf.sqrt(tf.add(tf.exp(x), tf.square(y))), tf.add(tf.log(tf.add(tf.abs(y), 1)), 1)),
  ],
];

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

describe('model ops differentiate on wasm and match cpu', () => {
  CASES.forEach(([name, shapes, op], i) => {
    it(name, () => {
      const rng = new Prng(100 + i);
      const data = shapes.map((s) => rng.values(s.reduce((a, b) => a * b, 1)));
      const grads = (backend: string) => {
        tf.setBackend(backend);
        const before = tf.memory().numTensors;
        const out = tf.tidy(() => {
          const xs = data.map((d, j) => tf.tensor(d, shapes[j]));
          const f = (...a: tf.Tensor[]) => {
            const y = op(...a);
            // A non-uniform weighting so every output entry's gradient path is distinguishable.
            return tf.sum(tf.mul(y, tf.reshape(tf.linspace(0.5, 1.5, y.size), y.shape)));
          };
          return tf
            .grads(f)(xs)
            .map((t) => t.dataSync() as Float32Array);
        });
        expect(tf.memory().numTensors).toBe(before);
        return out;
      };
      const ref = grads('cpu');
      const got = grads('wasm');
      got.forEach((g, j) => expectArrayClose(g, ref[j], KERNEL_TOL, `${name}: d input ${j}`));
    });
  });
});
