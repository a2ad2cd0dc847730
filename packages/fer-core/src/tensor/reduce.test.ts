import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { stagedMean, stagedSum } from './reduce';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('stagedSum / stagedMean', () => {
  it('reduce axis by axis: same shape as tf.sum, and exact where a flat float32 sum drifts', () => {
    const x = tf.tensor3d([
      [
        [1, 2],
        [3, 4],
      ],
      [
        [5, 6],
        [7, 8],
      ],
    ]);
    expect(Array.from(stagedSum(x, [0, 1]).dataSync())).toEqual([16, 20]);
    expect(stagedSum(x, [0, 2], true).shape).toEqual([1, 2, 1]);
    expect(Array.from(stagedMean(x, [1, 2]).dataSync())).toEqual([2.5, 6.5]);
    // 2^24 + 1 + 1 + ...: a flat float32 running sum (wasm) loses every +1 after 2^24; row sums first keep them.
    const n = 64;
    const big = tf.tensor2d(
      Array.from({ length: n * n }, (_, i) => (i === 0 ? 2 ** 24 : 1)),
      [n, n],
    );
    expect(stagedSum(big, [0, 1]).dataSync()[0]).toBe(Math.fround(2 ** 24 + n * n - 1));
    tf.dispose([x, big]);
  });
});
