import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from 'fer-backend';
import { Cbam, MEAN_MAX_GRAD_KERNEL, MEAN_MAX_KERNEL, useFusedCbamPools } from 'fer-core';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { NATIVE_BACKEND, loadAddon, registerNativeBackend, type NativeAddon } from 'fer-native';
import { describeNative } from './helpers';

/**
 * fer-core's CBAM on the native backend with its pools as one op each (FerMeanMax forward, FerMeanMaxGrad backward)
 * against the same layer with those two kernels unregistered (the stock ops: stagedMean / mean, max, their stock
 * gradients): the same forward bits, and gradients that differ only by the order the engine adds x's three terms.
 * Inference (no gradient recorded) never takes the fused path; nor does anything unless `useFusedCbamPools(true)`.
 */

function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, (_, i) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const v = (s / 4294967296) * 4 - 2;
    return i % 5 === 0 ? Math.round(v) : v; // ties for the max pools
  });
}

describeNative('CBAM on native: fused mean/max pools', () => {
  let addon: NativeAddon;
  const calls = { forward: 0, backward: 0 };
  const originals = new Map<string, NativeAddon[string]>();
  const FUSED = [MEAN_MAX_KERNEL, MEAN_MAX_GRAD_KERNEL];

  beforeAll(async () => {
    await initBackend({ backend: 'cpu', quiet: true });
    expect(registerNativeBackend().ok).toBe(true);
    addon = loadAddon().addon!;
    for (const [name, key] of [
      ['opsMeanMax', 'forward'],
      ['opsMeanMaxGrad', 'backward'],
    ] as const) {
      const fn = addon[name];
      originals.set(name, fn);
      addon[name] = (...args: unknown[]) => {
        calls[key]++;
        return fn(...args);
      };
    }
    await tf.setBackend(NATIVE_BACKEND);
    useFusedCbamPools(true);
  });
  afterAll(async () => {
    useFusedCbamPools(false);
    for (const [name, fn] of originals) addon[name] = fn;
    await tf.setBackend('cpu');
  });

  /** Runs f with the fused pools' kernels unregistered for the native backend (stock ops instead). */
  function withoutFused<T>(f: () => T): T {
    const saved = FUSED.map((k) => tf.getKernel(k, NATIVE_BACKEND)!);
    FUSED.forEach((k) => tf.unregisterKernel(k, NATIVE_BACKEND));
    try {
      return f();
    } finally {
      saved.forEach((k) => tf.registerKernel(k));
    }
  }

  /** [out, a_ch, a_sp, dx, d(each weight)] of a seeded CBAM under a weighted-sum loss, training mode. */
  function run(shape: number[], seed: number): Float32Array[] {
    return tf.tidy(() => {
      const layer = new Cbam({ reduction: 4, seed });
      const x = tf.tensor(values(tf.util.sizeFromShape(shape), seed), shape);
      const w = tf.tensor(values(tf.util.sizeFromShape(shape), seed + 1), shape);
      const outs = layer.apply(x, { training: false }) as tf.Tensor[]; // builds the layer
      const trainable = layer.trainableWeights.map((v) => v.read() as tf.Variable);
      const loss = (xi: tf.Tensor) => {
        const [out, ch, sp] = layer.apply(xi, { training: true }) as tf.Tensor[];
        return tf.addN([tf.sum(tf.mul(out, w)), tf.sum(tf.square(ch)), tf.sum(tf.mul(sp, 0.5))]);
      };
      const { grads } = tf.variableGrads(() => loss(x) as tf.Scalar, trainable);
      const dx = tf.grad(loss)(x);
      const fwd = layer.apply(x, { training: true }) as tf.Tensor[];
      const result = [...fwd, ...outs, dx, ...trainable.map((v) => grads[v.name])].map(
        (t) => t.dataSync() as Float32Array,
      );
      layer.dispose();
      return result;
    });
  }

  it.each([
    ['[2, 9, 11, 16]', [2, 9, 11, 16]],
    ['batch 1, odd [1, 7, 5, 12]', [1, 7, 5, 12]],
    ['1×1 map [3, 1, 1, 8]', [3, 1, 1, 8]],
    ['multi-threaded [2, 24, 23, 32]', [2, 24, 23, 32]],
  ])('%s: forward bit-identical to the stock ops, gradients within 1e-5', (_label, shape) => {
    const before = { ...calls };
    const fused = run(shape, 7);
    expect(calls.forward - before.forward).toBeGreaterThan(0);
    expect(calls.backward - before.backward).toBeGreaterThan(0);
    const stock = withoutFused(() => run(shape, 7));
    // 3 training outputs, 3 inference outputs: the same bits.
    for (let i = 0; i < 6; i++)
      expect(Buffer.compare(Buffer.from(fused[i].buffer), Buffer.from(stock[i].buffer))).toBe(0);
    for (let i = 6; i < fused.length; i++)
      expectArrayClose(fused[i], stock[i], { rtol: 1e-5, atol: 1e-6 }, `gradient ${i - 6} of [${shape}]`);
  });

  it('is off unless opted in', () => {
    useFusedCbamPools(false);
    const before = { ...calls };
    try {
      run([2, 5, 6, 8], 5);
    } finally {
      useFusedCbamPools(true);
    }
    expect(calls).toEqual(before);
  });

  it('inference does not take the fused path, and nothing leaks', async () => {
    const layer = new Cbam({ reduction: 4, seed: 3 });
    const x = tf.tensor(values(2 * 6 * 5 * 8, 3), [2, 6, 5, 8]);
    tf.dispose(layer.apply(x, { training: false }) as tf.Tensor[]);
    const before = { ...calls };
    await expectNoLeak(() => tf.dispose(layer.apply(x, { training: true }) as tf.Tensor[]), { returned: 0 });
    expect(calls).toEqual(before);
    await expectNoLeak(
      () => tf.dispose(tf.grad((xi: tf.Tensor) => tf.sum((layer.apply(xi, { training: true }) as tf.Tensor[])[0]))(x)),
      {
        returned: 0,
      },
    );
    expect(calls.forward).toBeGreaterThan(before.forward);
    layer.dispose();
    x.dispose();
  });
});
