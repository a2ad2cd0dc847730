import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { variableGradsReleasing } from './tfjs-internals';

/**
 * `variableGradsReleasing` against `tf.variableGrads`: the same gradients to the bit on graphs that stress what it
 * disposes early (a tensor with several consumers, a custom gradient handing its dy on as both inputs' gradients,
 * an input off the path to the loss, a loss that also depends on a variable directly), no leak, and a backward pass
 * that holds far fewer bytes.
 */

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + k) * 2);

/** dy for both inputs, as is: the case where one gradient object is two inputs' gradient. */
const passBoth = tf.customGrad(((a: tf.Tensor, b: tf.Tensor) => ({
  value: tf.add(a, b),
  gradFunc: (dy: tf.Tensor) => [dy, dy],
})) as never) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

function loss(w1: tf.Variable, w2: tf.Variable, x: tf.Tensor): tf.Scalar {
  const h = tf.relu(tf.matMul(x, w1)); // h feeds several consumers below
  const g = tf.sigmoid(tf.matMul(h, w2));
  const both = passBoth(g, tf.square(h));
  const off = tf.mul(h, tf.fill(h.shape, 3)); // the constant input is off every variable's path: tfjs prunes it
  const out = tf.add(tf.mean(tf.mul(both, h)), tf.mul(tf.sum(w2), 0.01));
  return tf.add(out, tf.mul(tf.mean(off), 0.5)) as tf.Scalar;
}

describe('variableGradsReleasing', () => {
  it('gives tf.variableGrads’ gradients to the bit, and leaks nothing', () => {
    const w1 = tf.variable(tf.tensor2d(values(24 * 16, 1), [24, 16]), true, 'rel_w1');
    const w2 = tf.variable(tf.tensor2d(values(16 * 16, 2), [16, 16]), true, 'rel_w2');
    const x = tf.tensor2d(values(8 * 24, 3), [8, 24]);
    const before = tf.memory().numTensors;
    const plain = tf.variableGrads(() => loss(w1, w2, x), [w1, w2]);
    const lean = variableGradsReleasing(() => loss(w1, w2, x), [w1, w2]);
    expect(lean.value.dataSync()).toEqual(plain.value.dataSync());
    for (const name of ['rel_w1', 'rel_w2']) {
      expect(Array.from(lean.grads[name].dataSync())).toEqual(Array.from(plain.grads[name].dataSync()));
      expect(lean.grads[name].isDisposed).toBe(false);
    }
    tf.dispose([plain.value, lean.value, ...Object.values(plain.grads), ...Object.values(lean.grads)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([w1, w2, x]);
  });

  it('holds a fraction of the bytes at the end of the backward pass', () => {
    // A deep chain of wide activations: tfjs keeps every saved input and every intermediate gradient until the end.
    const w = tf.variable(tf.fill([256, 256], 0.01), true, 'rel_deep');
    const x = tf.tensor2d(values(64 * 256, 4), [64, 256]);
    const deep = (probe: (b: number) => void) => {
      const spy = tf.customGrad(((v: tf.Tensor) => ({
        value: tf.clone(v),
        gradFunc: (dy: tf.Tensor) => {
          probe(tf.memory().numBytes);
          return [dy];
        },
      })) as never) as (v: tf.Tensor) => tf.Tensor;
      const w0 = spy(w); // recorded first, so its gradient runs last
      let h: tf.Tensor = x;
      for (let i = 0; i < 20; i++) h = tf.tanh(tf.matMul(h, w0));
      return tf.mean(h) as tf.Scalar;
    };
    let plainBytes = 0;
    let leanBytes = 0;
    const before = tf.memory().numTensors;
    const plain = tf.variableGrads(() => deep((b) => (plainBytes = b)), [w]);
    const lean = variableGradsReleasing(() => deep((b) => (leanBytes = b)), [w]);
    expect(Array.from(lean.grads.rel_deep.dataSync())).toEqual(Array.from(plain.grads.rel_deep.dataSync()));
    const activation = 64 * 256 * 4;
    const weight = 256 * 256 * 4; // 4 activations
    // Plain: per layer the saved matmul input and tanh output, their gradients and w's per-layer gradient, all held.
    expect(plainBytes).toBeGreaterThan(20 * (2 * activation + weight));
    // Releasing: x, w, the plain run's gradient of w, w's running sum and its newest addend, and one activation
    // gradient in flight.
    expect(leanBytes).toBeLessThanOrEqual(2 * activation + 4 * weight + 4096);
    tf.dispose([plain.value, lean.value, plain.grads.rel_deep, lean.grads.rel_deep]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([w, x]);
  });

  it('is tf.variableGrads unchanged inside an enclosing gradient', () => {
    const v = tf.variable(tf.scalar(1.5), true, 'rel_nested');
    // d/dv of (d/dv v³) = 6v: the inner gradient's saved tensors must survive for the outer one.
    const outer = tf.grad((a: tf.Tensor) => {
      const { grads, value } = variableGradsReleasing(() => tf.mul(tf.mul(a, v), tf.mul(v, v)) as tf.Scalar, [v]);
      value.dispose();
      return grads.rel_nested;
    });
    const g = outer(tf.scalar(2));
    expect(g.dataSync()[0]).toBeCloseTo(3 * 1.5 * 1.5, 5);
    tf.dispose([g, v]);
  });
});
