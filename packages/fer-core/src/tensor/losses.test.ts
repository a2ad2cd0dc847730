import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import { crossEntropy } from './losses';

describe('crossEntropy', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('equals the hand-computed mean −log softmax', () => {
    const logits = tf.tensor2d([
      [1, 2, 3],
      [0, 0, 0],
    ]);
    const labels = tf.tensor1d([2, 0], 'int32');
    const ce = crossEntropy(logits, labels);
    const l0 = -Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)));
    const l1 = Math.log(3);
    expect(ce.dataSync()[0]).toBeCloseTo((l0 + l1) / 2, 6);
    tf.dispose([logits, labels, ce]);
    expect(tf.memory().numTensors).toBe(0);
  });
});
