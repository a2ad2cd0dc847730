import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from 'fer-backend';
import { NATIVE_BACKEND } from 'fer-native';
import { expectArrayClose } from 'fer-test-utils';
// The randomised-case helpers fer-backend's wasm kernel tests use, so both packs meet the same bar.
import { KERNEL_TOL, Prng, host, runKernelOn, type HostTensor } from '../../fer-backend/test/helpers';
import { describeNative } from './helpers';

type Pad = 'valid' | 'same' | [[number, number], [number, number], [number, number], [number, number]];

function expectNativeMatchesCpu(
  kernel: string,
  inputs: Record<string, HostTensor>,
  attrs: Record<string, unknown>,
  label: string,
): void {
  const ref = runKernelOn('cpu', kernel, inputs, attrs);
  const got = runKernelOn(NATIVE_BACKEND, kernel, inputs, attrs);
  expect(got.shape).toEqual(ref.shape);
  expectArrayClose(got.values, ref.values, KERNEL_TOL, `${kernel} ${label}`);
}

interface Case {
  x: number[];
  f: number[];
  s: [number, number];
  d: [number, number];
  pad: Pad;
  info: tf.backend_util.Conv2DInfo;
  label: string;
}

/** A random conv: batch 1..5 (1 often), odd and even sizes, kernel k, stride s, dilation d, the padding mode. */
function sample(rng: Prng, k: number, s: number, d: number, mode: 'valid' | 'same' | 'explicit'): Case {
  for (;;) {
    const n = rng.pick([1, 1, 2, 3, 5]);
    const h = rng.int(k, k + 13);
    const w = rng.int(k, k + 13);
    const ci = rng.int(1, 40);
    const co = rng.int(1, 40);
    const pad: Pad =
      mode === 'explicit'
        ? [
            [0, 0],
            [rng.int(0, k - 1), rng.int(0, k - 1)],
            [rng.int(0, k - 1), rng.int(0, k - 1)],
            [0, 0],
          ]
        : mode;
    const info = tf.backend_util.computeConv2DInfo([n, h, w, ci], [k, k, ci, co], [s, s], [d, d], pad);
    if (info.outHeight < 1 || info.outWidth < 1) continue;
    // cpu's reference Conv2DBackpropFilter is a scalar loop: keep each case small.
    if (n * info.outHeight * info.outWidth * k * k * ci * co > 1.5e6) continue;
    const label = `x[${n},${h},${w},${ci}] k${k} s${s} d${d} co${co} pad ${JSON.stringify(pad)}`;
    return { x: [n, h, w, ci], f: [k, k, ci, co], s: [s, s], d: [d, d], pad, info, label };
  }
}

const NHWC1 = { strides: 1, dilations: 1, dataFormat: 'NHWC' };
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

describeNative('native conv kernels match the cpu backend', () => {
  beforeAll(async () => {
    // Registers tfjs' gradients too (the tf.grad case below).
    expect((await initBackend({ backend: 'native', quiet: true })).name).toBe('native');
  });

  for (const k of [1, 3, 5, 7]) {
    for (const s of [1, 2]) {
      for (const mode of ['valid', 'same', 'explicit'] as const) {
        if (mode === 'explicit' && k === 1) continue;
        it(`k${k} s${s} ${mode}: Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter`, () => {
          const rng = new Prng(7000 + 100 * k + 10 * s + ['valid', 'same', 'explicit'].indexOf(mode));
          const c = sample(rng, k, s, 1, mode);
          const m = c.info.batchSize * c.info.outHeight * c.info.outWidth;
          const x = host(c.x, rng.values(size(c.x)));
          const filter = host(c.f, rng.values(size(c.f), 1 / Math.sqrt(k * k * c.x[3])));
          const dy = host(c.info.outShape, rng.values(size(c.info.outShape), 1 / Math.sqrt(m)));
          const common = { strides: c.s, pad: c.pad, dataFormat: 'NHWC' };
          expectNativeMatchesCpu('Conv2D', { x, filter }, { ...common, dilations: c.d }, c.label);
          expectNativeMatchesCpu('Conv2DBackpropInput', { dy, filter }, { ...common, inputShape: c.x }, c.label);
          expectNativeMatchesCpu('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: c.f }, c.label);
        });
      }
    }
  }

  it('Conv2D with dilation 2 and 3 (same and valid)', () => {
    const rng = new Prng(7777);
    for (const [k, d, mode] of [
      [3, 2, 'same'],
      [3, 3, 'valid'],
      [5, 2, 'same'],
    ] as const) {
      const c = sample(rng, k, 1, d, mode);
      const x = host(c.x, rng.values(size(c.x)));
      const filter = host(c.f, rng.values(size(c.f), 0.2));
      const attrs = { strides: 1, pad: c.pad, dilations: d, dataFormat: 'NHWC' };
      expectNativeMatchesCpu('Conv2D', { x, filter }, attrs, c.label);
    }
  });

  it('FusedConv2D: bias with each activation (prelu composed), and no bias', () => {
    const rng = new Prng(4242);
    for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu']) {
      const c = sample(rng, 3, rng.pick([1, 2]), 1, rng.pick(['same', 'valid'] as const));
      const co = c.f[3];
      const x = host(c.x, rng.values(size(c.x), 3));
      const filter = host(c.f, rng.values(size(c.f), 0.5));
      const bias = host([co], rng.values(co));
      const preluActivationWeights = host([co], rng.values(co, 0.5));
      const inputs: Record<string, HostTensor> = { x, filter, bias };
      if (activation === 'prelu') inputs.preluActivationWeights = preluActivationWeights;
      const attrs = { strides: c.s, pad: c.pad, dataFormat: 'NHWC', dilations: 1, activation, leakyreluAlpha: 0.3 };
      expectNativeMatchesCpu('FusedConv2D', inputs, attrs, `${activation} ${c.label}`);
    }
    const c = sample(rng, 5, 1, 1, 'same');
    const x = host(c.x, rng.values(size(c.x)));
    const filter = host(c.f, rng.values(size(c.f), 0.3));
    expectNativeMatchesCpu('FusedConv2D', { x, filter }, { ...NHWC1, pad: 'same', activation: 'relu' }, 'no bias');
  });

  it('falls back to the cpu kernel for what oneDNN is not given (NCHW, a broadcast bias)', () => {
    const rng = new Prng(99);
    const x = host([2, 3, 7, 6], rng.values(2 * 3 * 7 * 6)); // NCHW: 3 channels of 7x6
    const filter = host([3, 3, 3, 4], rng.values(108, 0.3));
    expectNativeMatchesCpu('Conv2D', { x, filter }, { ...NHWC1, pad: 'same', dataFormat: 'NCHW' }, 'NCHW');
    const xh = host([2, 7, 6, 3], rng.values(2 * 3 * 7 * 6));
    const bias = host([1], rng.values(1)); // a scalar bias broadcast over every channel
    expectNativeMatchesCpu(
      'FusedConv2D',
      { x: xh, filter, bias },
      { ...NHWC1, pad: 'same', activation: 'relu' },
      'scalar bias',
    );
  });

  it('trains a conv through tf.grad on native with the same gradients as cpu, leaving no tensors', async () => {
    const rng = new Prng(5);
    const xv = rng.values(2 * 9 * 9 * 3);
    const wv = rng.values(3 * 3 * 3 * 8, 0.3);
    const bv = rng.values(8, 0.1);
    const grads = (backend: string) => {
      tf.setBackend(backend);
      return tf.tidy(() => {
        const x = tf.tensor4d(xv, [2, 9, 9, 3]);
        const w = tf.tensor4d(wv, [3, 3, 3, 8]);
        const b = tf.tensor1d(bv);
        const f = (xx: tf.Tensor4D, ww: tf.Tensor4D, bb: tf.Tensor1D) =>
          tf.sum(
            tf.square(tf.fused.conv2d({ x: xx, filter: ww, bias: bb, strides: 2, pad: 'same', activation: 'relu' })),
          );
        return tf
          .grads(f as (...a: tf.Tensor[]) => tf.Tensor)([x, w, b])
          .map((g) => g.dataSync() as Float32Array);
      });
    };
    const before = tf.memory().numTensors;
    const ref = grads('cpu');
    const got = grads(NATIVE_BACKEND);
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < 3; i++) expectArrayClose(got[i], ref[i], KERNEL_TOL, `grad ${i}`);
  });
});
