import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from 'fer-backend';
import { applyTorchBatchNorm } from 'fer-core';
import { bnTrainForward64, bnTrainGradFD64, expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { NATIVE_BACKEND, loadAddon, registerNativeBackend, type NativeAddon } from 'fer-native';
import { describeNative } from './helpers';

/**
 * fer-core's train-mode batch norm on the native kernels (FerBatchNormTrain / FerBatchNormTrainGrad, in
 * native/batchnorm.cc) against a float64 definition with finite-difference gradients, and against fer-core's
 * composite of stock ops on the cpu backend; thread-count independence, the kernels actually running, no leaks.
 */

function values(n: number, seed: number, lo = -2, hi = 2): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return lo + ((hi - lo) * s) / 4294967296;
  });
}

const EPS = 1e-5;

/** Index of the first element whose float32 bits differ, or -1. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (ua.length !== ub.length) return 0;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

interface Case {
  shape: number[];
  x: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  w: Float32Array;
}

function makeCase(shape: number[], seed: number, lo = -2, hi = 2): Case {
  const c = shape[shape.length - 1];
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    shape,
    x: values(size, seed, lo, hi),
    gamma: values(c, seed + 1, 0.5, 1.5),
    beta: values(c, seed + 2),
    w: values(size, seed + 3),
  };
}

/**
 * [y, mean, variance, dx, dGamma, dBeta] through fer-core's op (TorchBatchNorm's train path) on the active backend.
 * `relu`: 'fused' passes `relu: true` (one op on native), 'after' applies tf.relu to the op's output.
 */
function run(k: Case, relu: 'none' | 'fused' | 'after' = 'none'): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor(k.x, k.shape);
    const w = tf.tensor(k.w, k.shape);
    const bn = {
      gamma: tf.variable(tf.tensor1d(k.gamma)),
      beta: tf.variable(tf.tensor1d(k.beta)),
      runningMean: tf.variable(tf.zeros([k.gamma.length])),
      runningVar: tf.variable(tf.ones([k.gamma.length])),
      numBatchesTracked: tf.variable(tf.scalar(0)),
    };
    const layerVar = (v: tf.Variable) => ({ read: () => v, write: (t: tf.Tensor) => v.assign(t) });
    const weights = Object.fromEntries(Object.entries(bn).map(([n, v]) => [n, layerVar(v)])) as never;
    const bnOp = (xi: tf.Tensor, momentum?: number) => {
      const y = applyTorchBatchNorm(xi, weights, { training: true, epsilon: EPS, momentum, relu: relu === 'fused' });
      return relu === 'after' ? tf.relu(y) : y;
    };
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(bnOp(x), w)), [bn.gamma, bn.beta]);
    const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(bnOp(xi), w)))(x);
    const y = bnOp(x, 1);
    // momentum 1: the running mean is the batch mean; the running variance the unbiased batch variance.
    const n = x.size / k.gamma.length;
    const variance = tf.mul(bn.runningVar, (n - 1) / n);
    const out = [y, bn.runningMean, variance, dx, grads[bn.gamma.name], grads[bn.beta.name]].map(
      (t) => t.dataSync() as Float32Array,
    );
    tf.dispose(Object.values(bn));
    return out;
  });
}

describeNative('native train-mode batch norm (FerBatchNormTrain, FerBatchNormTrainGrad)', () => {
  let addon: NativeAddon;
  let calls = 0;
  const wrapped = ['opsBatchNormTrain', 'opsBatchNormTrainGrad'];
  const originals = new Map<string, NativeAddon[string]>();

  beforeAll(async () => {
    await initBackend({ backend: 'cpu', quiet: true });
    expect(registerNativeBackend().ok).toBe(true);
    addon = loadAddon().addon!;
    for (const name of wrapped) {
      const fn = addon[name];
      originals.set(name, fn);
      addon[name] = (...args: unknown[]) => {
        calls++;
        return fn(...args);
      };
    }
  });
  afterAll(async () => {
    for (const [name, fn] of originals) addon[name] = fn;
    addon.setThreads(2);
    await tf.setBackend('cpu');
  });

  async function on(backend: string, k: Case): Promise<Float32Array[]> {
    await tf.setBackend(backend);
    return run(k);
  }

  const NAMES = ['y', 'mean', 'variance', 'dx', 'dGamma', 'dBeta'];

  it.each([
    ['NHWC [2,3,4,5]', [2, 3, 4, 5], 1],
    ['one channel, widened lanes [4,8,8,1]', [4, 8, 8, 1], 2],
    ['rank 2 [6,3], mean ~100', [6, 3], 3],
  ])('%s: equals the float64 definition and finite differences', async (_label, shape, seed) => {
    const large = seed === 3;
    const k = makeCase(shape as number[], seed as number, large ? 99 : -2, large ? 101 : 2);
    const before = calls;
    const [y, mean, variance, dx, dGamma, dBeta] = await on(NATIVE_BACKEND, k);
    expect(calls - before).toBeGreaterThanOrEqual(4); // forward ×3 (two of them differentiated) and backward ×2
    const p = { x: k.x, channels: k.gamma.length, gamma: k.gamma, beta: k.beta, eps: EPS };
    const ref = bnTrainForward64(p);
    const fd = bnTrainGradFD64(p, k.w);
    // Staged float32 sums (fer-core's stagedMean) for the statistics; y from them; the backward in double.
    expectArrayClose(mean, ref.mean, { rtol: 1e-6, atol: 1e-6 }, 'mean');
    expectArrayClose(variance, ref.variance, { rtol: 1e-5, atol: 1e-6 }, 'variance');
    expectArrayClose(y, ref.y, { rtol: 1e-5, atol: large ? 5e-5 : 1e-5 }, 'y');
    expectArrayClose(dx, fd.dx, { rtol: 1e-4, atol: 1e-5 }, 'dx');
    expectArrayClose(dGamma, fd.dGamma, { rtol: 1e-4, atol: 1e-4 }, 'dGamma');
    expectArrayClose(dBeta, fd.dBeta, { rtol: 1e-6, atol: 1e-6 }, 'dBeta');
  });

  it('equals the composite on cpu (forward bit for bit) on multi-threaded sizes, bit-identical across thread counts', async () => {
    for (const [shape, seed] of [
      [[8, 32, 32, 8], 4],
      [[3, 40, 41, 3], 5],
      [[16, 24, 24, 1], 6],
    ] as [number[], number][]) {
      const k = makeCase(shape, seed);
      const cpu = await on('cpu', k);
      addon.setThreads(1);
      const one = await on(NATIVE_BACKEND, k);
      addon.setThreads(2);
      const two = await on(NATIVE_BACKEND, k);
      NAMES.forEach((name, i) => {
        // The forward (y and the statistics) reproduces the composite bit for bit; the backward sums in double.
        if (i < 3) expect({ name, shape, bits: firstBitDifference(two[i], cpu[i]) }).toEqual({ name, shape, bits: -1 });
        else expectArrayClose(two[i], cpu[i], { rtol: 1e-4, atol: 1e-5 }, `${name} [${shape}] native vs composite`);
        expect({ name, shape, same: Buffer.compare(Buffer.from(one[i].buffer), Buffer.from(two[i].buffer)) }).toEqual({
          name,
          shape,
          same: 0,
        });
      });
    }
  });

  it('with a fused ReLU: the same bits as tf.relu after it (native and cpu), across thread counts; no Relu kernel runs', async () => {
    for (const [shape, seed] of [
      [[1, 5, 7, 3], 11],
      [[2, 3], 12],
      [[8, 32, 32, 8], 13],
      [[3, 40, 41, 3], 14],
      [[16, 24, 24, 1], 15],
    ] as [number[], number][]) {
      // Values on a coarse grid: many ties, and y lands on both sides of 0 in every channel.
      const k = makeCase(shape, seed);
      k.x = k.x.map((v) => Math.round(v * 4) / 4);
      await tf.setBackend('cpu');
      const cpuAfter = run(k, 'after');
      const cpuFused = run(k, 'fused'); // no fused kernels on cpu: fer-core applies tf.relu itself
      await tf.setBackend(NATIVE_BACKEND);
      const after = run(k, 'after');
      addon.setThreads(1);
      const fused1 = run(k, 'fused');
      addon.setThreads(2);
      const fused = run(k, 'fused');
      NAMES.forEach((name, i) => {
        for (const [label, a, b] of [
          ['native: fused vs relu after', fused, after],
          ['native fused: 1 vs 2 threads', fused1, fused],
          ['cpu: fused vs relu after', cpuFused, cpuAfter],
        ] as const) {
          expect({ label, name, shape, bits: firstBitDifference(a[i], b[i]) }).toEqual({
            label,
            name,
            shape,
            bits: -1,
          });
        }
        if (i < 3)
          expect({ name, shape, bits: firstBitDifference(fused[i], cpuAfter[i]) }).toEqual({ name, shape, bits: -1 });
        else expectArrayClose(fused[i], cpuAfter[i], { rtol: 1e-4, atol: 1e-5 }, `${name} [${shape}] fused vs cpu`);
      });
      expect(fused[0].some((v) => v === 0) && fused[0].some((v) => v > 0)).toBe(true);
    }
    const k = makeCase([2, 4, 4, 3], 16);
    const kernels = async (relu: 'fused' | 'after') =>
      (await tf.profile(() => run(k, relu))).kernelNames.filter((n) => n === 'Relu' || n.startsWith('FerReluGrad'));
    expect(await kernels('fused')).toEqual([]);
    expect(await kernels('after')).not.toEqual([]);
  });

  it('does not leak (forward, backward; with and without a fused ReLU)', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const k = makeCase([2, 5, 5, 4], 9);
    await expectNoLeak(() => run(k), { returned: 0 });
    await expectNoLeak(() => run(k, 'fused'), { returned: 0 });
  });

  it('rejects a reluY that does not match x, in one line', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const x = tf.ones([2, 2, 3]);
    const p = tf.ones([3]);
    const r = tf.ones([2, 3]);
    expect(() =>
      tf.engine().runKernel(
        'FerBatchNormTrainGrad',
        { x, dy: x, mean: p, variance: p, scale: p, reluY: r },
        {
          epsilon: EPS,
        },
      ),
    ).toThrow(/expected reluY of x's shape \[2, 2, 3\], but got \[2, 3\]/);
    tf.dispose([x, p, r]);
  });

  it('rejects parameters that do not match the channel count, in one line', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const x = tf.ones([2, 2, 3]);
    const p = tf.ones([2]);
    expect(() => tf.engine().runKernel('FerBatchNormTrain', { x, scale: p, offset: p }, { epsilon: EPS })).toThrow(
      /expected x of shape \[\.\.\., C\].*got x \[2, 2, 3\] and a parameter of shape \[2\]/,
    );
    tf.dispose([x, p]);
  });
});
