import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';

/**
 * The `Max` gradient override against a hand-built mask: dy flows to every position equal to the maximum of its
 * reduction group (ties included, as in tfjs core), and nowhere else; with and without keepDims.
 */
describe.each(['wasm', 'cpu'] as const)('Max gradient on %s', (backend) => {
  beforeAll(async () => {
    await initBackend({ backend, quiet: true });
  });

  it('routes dy to the maxima of each group (channel max of CBAM), ties included', () => {
    // [1, 2, 2, 3]: per position, max over the 3 channels; position (0,1) has a tie.
    const xs = [1, 5, 2, 7, 7, 0, -3, -1, -2, 0.5, 0.25, 0.5];
    const x = tf.tensor4d(xs, [1, 2, 2, 3]);
    const w = tf.tensor4d([2, 3, 5, 7], [1, 2, 2, 1]);
    const before = tf.memory().numTensors;
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.max(t, 3, true), w)))(x);
    const want = [0, 2, 0, 3, 3, 0, 0, 5, 0, 7, 0, 7];
    expect(Array.from(g.dataSync())).toEqual(want);
    g.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w]);
  });

  it('handles global max pooling over h, w without keepDims', () => {
    const x = tf.tensor4d([0, 9, 4, 1, 3, 8, 2, 9], [1, 2, 2, 2]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.max(t, [1, 2]), tf.tensor2d([[10, 100]]))))(x);
    // channel 0: values 0, 4, 3, 2 -> max 4 at index 1; channel 1: 9, 1, 8, 9 -> tie at indices 0 and 3.
    expect(Array.from(g.dataSync())).toEqual([0, 100, 10, 0, 0, 0, 0, 100]);
    tf.dispose([x, g]);
  });
});
