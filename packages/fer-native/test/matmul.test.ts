import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { NATIVE_BACKEND } from 'fer-native';
import { expectArrayClose } from 'fer-test-utils';
import { KERNEL_TOL, Prng, host, runKernelOn, type HostTensor } from '../../fer-backend/test/helpers';
import { describeNative } from './helpers';

function expectNativeMatchesCpu(
  kernel: string,
  inputs: Record<string, HostTensor>,
  attrs: Record<string, unknown>,
  label: string,
) {
  const ref = runKernelOn('cpu', kernel, inputs, attrs);
  const got = runKernelOn(NATIVE_BACKEND, kernel, inputs, attrs);
  expect(got.shape).toEqual(ref.shape);
  expectArrayClose(got.values, ref.values, KERNEL_TOL, `${kernel} ${label}`);
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function operand(rng: Prng, outer: number[], rows: number, cols: number, transposed: boolean, scale = 1): HostTensor {
  const shape = [...outer, ...(transposed ? [cols, rows] : [rows, cols])];
  return host(shape, rng.values(size(shape), scale));
}

describeNative('native matmul kernels match the cpu backend', () => {
  beforeAll(async () => {
    expect((await initBackend({ backend: 'native', quiet: true })).name).toBe('native');
  });

  it('BatchMatMul: 2-D and batched, every transpose, batch broadcasts, odd sizes', () => {
    const rng = new Prng(31);
    const outers: [number[], number[]][] = [
      [[], []],
      [[3], [3]],
      [
        [2, 3],
        [2, 3],
      ],
      [[4], []],
      [[], [5]],
      [[1], [2]],
      [[1, 1, 1], [2]],
      [
        [2, 1],
        [1, 3],
      ], // a true two-sided broadcast: cpu's kernel
    ];
    for (const [oa, ob] of outers) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          const m = rng.int(1, 17);
          const k = rng.int(1, 40);
          const n = rng.int(1, 17);
          const a = operand(rng, oa, m, k, ta);
          const b = operand(rng, ob, k, n, tb, 1 / Math.sqrt(k));
          const label = `a${JSON.stringify(a.shape)} b${JSON.stringify(b.shape)} ta${ta} tb${tb}`;
          expectNativeMatchesCpu('BatchMatMul', { a, b }, { transposeA: ta, transposeB: tb }, label);
        }
      }
    }
  });

  it('_FusedMatMul: bias with each activation, prelu composed, no bias', () => {
    const rng = new Prng(32);
    for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu']) {
      const [m, k, n] = [rng.int(1, 33), rng.int(1, 64), rng.int(1, 20)];
      const ta = rng.pick([false, true]);
      const tb = rng.pick([false, true]);
      const inputs: Record<string, HostTensor> = {
        a: operand(rng, [], m, k, ta, 3),
        b: operand(rng, [], k, n, tb, 1 / Math.sqrt(k)),
        bias: host([n], rng.values(n)),
      };
      if (activation === 'prelu') inputs.preluActivationWeights = host([n], rng.values(n, 0.5));
      const attrs = { transposeA: ta, transposeB: tb, activation, leakyreluAlpha: 0.1 };
      expectNativeMatchesCpu('_FusedMatMul', inputs, attrs, `${activation} ${m}x${k}x${n}`);
    }
    const a = operand(rng, [2], 5, 7, false);
    const b = operand(rng, [2], 7, 3, false);
    expectNativeMatchesCpu(
      '_FusedMatMul',
      { a, b },
      { transposeA: false, transposeB: false, activation: 'relu' },
      'no bias',
    );
  });

  it('differentiates a dense layer like cpu, leaving no tensors', () => {
    const rng = new Prng(33);
    const [xv, wv, bv] = [rng.values(6 * 10), rng.values(10 * 4, 0.3), rng.values(4)];
    const grads = (backend: string) => {
      tf.setBackend(backend);
      return tf.tidy(() => {
        const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.square(tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias: b, activation: 'relu' })));
        const args = [tf.tensor2d(xv, [6, 10]), tf.tensor2d(wv, [10, 4]), tf.tensor1d(bv)];
        return tf
          .grads(f as (...a: tf.Tensor[]) => tf.Tensor)(args)
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
