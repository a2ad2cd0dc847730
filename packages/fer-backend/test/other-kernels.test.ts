import * as tf from '@tensorflow/tfjs-core';
import { initBackend, leanBatchNormGradConfig, meanGradConfig, sumGradConfig } from 'fer-backend';
import { expectArrayClose } from 'fer-test-utils';
import { Prng, host, expectKernelMatchesCpu, runKernelOn, KERNEL_TOL, type HostTensor } from './helpers';

// Captured before initBackend re-registers fer-backend's override: importing fer-backend imported tfjs-layers,
// which registered tfjs' stock gradients.
const stockBatchNormGrad = tf.getGradient('FusedBatchNorm');
const stockGrads: Record<string, tf.GradConfig> = { Sum: tf.getGradient('Sum'), Mean: tf.getGradient('Mean') };

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

describe('MaxPoolGrad on wasm matches the cpu backend', () => {
  const cases: { k: number; s: number; pad: 'valid' | 'same' | number }[] = [
    { k: 2, s: 2, pad: 'valid' }, // ESR
    { k: 3, s: 2, pad: 1 }, // MA-Net stem (PyTorch padding=1)
    { k: 3, s: 2, pad: 'same' },
    { k: 3, s: 1, pad: 'same' }, // overlapping windows accumulate
    { k: 2, s: 1, pad: 'valid' },
    { k: 5, s: 2, pad: 2 },
  ];
  for (const { k, s, pad } of cases) {
    it(`${k}x${k}/${s} pad ${pad}`, () => {
      const rng = new Prng(31 * k + s);
      const n = rng.int(1, 8);
      const h = rng.odd(k + 2, 21);
      const w = rng.odd(k + 2, 21);
      const c = rng.int(1, 64);
      const info = tf.backend_util.computePool2DInfo([n, h, w, c], k, s, 1, pad);
      const x = host([n, h, w, c], rng.values(n * h * w * c));
      const dy = host([n, info.outHeight, info.outWidth, c], rng.values(n * info.outHeight * info.outWidth * c));
      // The kernel reads only x and dy; `output` is part of its signature, so pass the true forward output.
      tf.setBackend('cpu');
      const y = tf.tidy(() =>
        tf.maxPool(tf.tensor4d(x.values, x.shape as [number, number, number, number]), k, s, pad),
      );
      const output = host(y.shape, y.dataSync() as Float32Array);
      y.dispose();
      expectKernelMatchesCpu(
        'MaxPoolGrad',
        { dy, input: x, output },
        { filterSize: k, strides: s, pad },
        `x[${n},${h},${w},${c}]`,
      );
    });
  }

  it('routes ties to the first maximum, as cpu does', () => {
    const x = host([1, 2, 2, 1], new Float32Array([1, 1, 1, 1]));
    const dy = host([1, 1, 1, 1], new Float32Array([5]));
    const output = host([1, 1, 1, 1], new Float32Array([1]));
    expectKernelMatchesCpu(
      'MaxPoolGrad',
      { dy, input: x, output },
      { filterSize: 2, strides: 2, pad: 'valid' },
      'ties',
    );
  });
});

describe('UnsortedSegmentSum on wasm matches the cpu backend', () => {
  for (const seed of [1, 2, 3]) {
    it(`random ids, seed ${seed}`, () => {
      const rng = new Prng(seed);
      const count = rng.int(1, 40);
      const inner = [rng.int(1, 8), rng.int(1, 8)];
      const numSegments = rng.int(1, 12);
      const ids = Int32Array.from({ length: count }, () => rng.int(0, numSegments - 1));
      const x = host([count, ...inner], rng.values(count * inner[0] * inner[1]));
      expectKernelMatchesCpu(
        'UnsortedSegmentSum',
        { x, segmentIds: host([count], ids) },
        { numSegments },
        `seed ${seed}`,
      );
    });
  }

  it('gives gather its gradient on wasm', () => {
    tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const g = tf.tidy(() => {
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
      const idx = tf.tensor1d([2, 0, 2], 'int32');
      return Array.from(
        tf
          .grad((t: tf.Tensor) => tf.sum(tf.gather(t, idx)))(x)
          .dataSync(),
      );
    });
    expect(g).toEqual([1, 1, 0, 0, 2, 2]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('lean FusedBatchNorm gradient', () => {
  const shapes: { x: number[]; param: number[] }[] = [
    { x: [4, 7, 5, 16], param: [16] },
    { x: [8, 3, 3, 64], param: [64] },
    { x: [6, 1, 1, 10], param: [10] }, // tf.batchNorm runs rank-2 input as [n, 1, 1, c]
    { x: [2, 5, 5, 3], param: [2, 5, 5, 3] }, // per-element statistics: nothing to reduce
  ];
  for (const { x: xs, param } of shapes) {
    it(`x[${xs}] params[${param}] on wasm equals the stock gradient on cpu`, () => {
      const rng = new Prng(xs.reduce((a, b) => a * 31 + b, 7));
      const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
      const vals = {
        x: rng.values(size(xs)),
        dy: rng.values(size(xs)),
        mean: rng.values(size(param), 0.2),
        variance: Float32Array.from(rng.values(size(param)), (v) => 0.5 + Math.abs(v)),
        scale: rng.values(size(param)),
      };
      const grads = (backend: string, cfg: tf.GradConfig) => {
        tf.setBackend(backend);
        const before = tf.memory().numTensors;
        const out = tf.tidy(() => {
          const saved = [
            tf.tensor(vals.x, xs),
            tf.tensor(vals.mean, param),
            tf.tensor(vals.variance, param),
            tf.tensor(vals.scale, param),
          ];
          const fns = cfg.gradFunc(tf.tensor(vals.dy, xs), saved, { varianceEpsilon: 1e-5 });
          return Object.fromEntries(
            Object.entries(fns).map(([k, f]) => [k, (f as () => tf.Tensor)().dataSync() as Float32Array]),
          );
        });
        expect(tf.memory().numTensors).toBe(before);
        return out;
      };
      const ref = grads('cpu', stockBatchNormGrad);
      const got = grads('wasm', leanBatchNormGradConfig);
      expect(Object.keys(got).sort()).toEqual(['mean', 'offset', 'scale', 'variance', 'x']);
      for (const k of Object.keys(got)) expectArrayClose(got[k], ref[k], KERNEL_TOL, `d${k}`);
    });
  }

  it('is what initBackend registered, and tf.batchNorm differentiates with it on wasm', () => {
    expect(tf.getGradient('FusedBatchNorm')).toBe(leanBatchNormGradConfig);
    tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const g = tf.tidy(() => {
      const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2, 1]);
      const f = (t: tf.Tensor) => {
        const m = tf.moments(t, [0, 1, 2]);
        // tfjs saves `scale` for the backward pass, so differentiating tf.batchNorm needs one (stock or lean).
        return tf.sum(tf.square(tf.batchNorm(t, m.mean, m.variance, tf.zeros([1]), tf.ones([1]), 1e-5)));
      };
      return Array.from(tf.grad(f)(x).dataSync());
    });
    // Σ xhat² = n·var/(var+eps) is nearly constant in x, so its gradient is ~0 (exactly 0 at eps = 0).
    for (const v of g) expect(Math.abs(v)).toBeLessThan(1e-4);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('Sum / Mean / Max over non-innermost axes on wasm match the cpu backend', () => {
  const cases: { shape: number[]; axis: number[]; keepDims: boolean }[] = [
    { shape: [5, 9, 7, 33], axis: [0, 1, 2], keepDims: false }, // batch-norm statistics
    { shape: [3, 11, 9, 64], axis: [1, 2], keepDims: true }, // global pooling
    { shape: [4, 7, 5, 6], axis: [0], keepDims: false },
    { shape: [4, 7, 5, 6], axis: [1], keepDims: true },
    { shape: [4, 7, 5, 6], axis: [3], keepDims: true }, // innermost: delegated to the stock kernel
    { shape: [4, 7, 5, 6], axis: [0, 2], keepDims: false }, // not contiguous: delegated
  ];
  for (const kernel of ['Sum', 'Mean', 'Max']) {
    for (const { shape, axis, keepDims } of cases) {
      it(`${kernel} x[${shape}] axis [${axis}] keepDims ${keepDims}`, () => {
        const rng = new Prng(shape.length * 97 + axis[0] * 13 + axis.length);
        const x = host(shape, rng.values(shape.reduce((a, b) => a * b, 1)));
        const attrs = kernel === 'Max' ? { reductionIndices: axis, keepDims } : { axis, keepDims };
        expectKernelMatchesCpu(kernel, { x }, attrs, `x[${shape}]`);
      });
    }
  }

  it('Max propagates NaN like cpu', () => {
    const x = host([3, 2], new Float32Array([1, NaN, 5, 2, 3, 4]));
    expectKernelMatchesCpu('Max', { x }, { reductionIndices: [0], keepDims: false }, 'NaN');
  });
});

describe('Identity on wasm', () => {
  it('returns the input values without copying them, and frees them only with the last reference', () => {
    tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    const y = tf.engine().runKernel('Identity', { x }, {}) as tf.Tensor;
    expect(y.dataId).toBe(x.dataId);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('Tile and Cast on wasm match the cpu backend', () => {
  const tiles: { shape: number[]; reps: number[] }[] = [
    { shape: [1, 1, 1, 17], reps: [5, 7, 3, 1] }, // Mean/Sum gradient over [0, 1, 2]
    { shape: [3, 1, 1, 8], reps: [1, 9, 5, 1] }, // global-pool gradient
    { shape: [4, 5, 1], reps: [1, 1, 6] }, // innermost broadcast
    { shape: [2, 3], reps: [2, 2] }, // a genuine tile: delegated to the stock kernel
  ];
  for (const { shape, reps } of tiles) {
    it(`Tile x[${shape}] reps [${reps}]`, () => {
      const rng = new Prng(reps.reduce((a, b) => a * 7 + b, 3));
      const x = host(shape, rng.values(shape.reduce((a, b) => a * b, 1)));
      expectKernelMatchesCpu('Tile', { x }, { reps }, `x[${shape}]`);
    });
  }

  const casts: [string, 'float32' | 'int32' | 'bool', HostTensor][] = [
    ['float32 -> float32', 'float32', host([4, 3], new Float32Array([1.5, -2.25, 0, 3, 4, 5, 6, 7, 8, 9, 10, -11]))],
    ['float32 -> int32', 'int32', host([5], new Float32Array([1.7, -2.7, 0, 3.2, -0.5]))],
    ['float32 -> bool', 'bool', host([4], new Float32Array([0, -0, 2, Number.NaN]))],
    ['int32 -> float32', 'float32', host([3], new Int32Array([-3, 0, 7]))],
  ];
  for (const [label, dtype, x] of casts) {
    it(`Cast ${label}`, () => {
      const ref = runKernelOn('cpu', 'Cast', { x }, { dtype });
      const got = runKernelOn('wasm', 'Cast', { x }, { dtype });
      expect(got.shape).toEqual(ref.shape);
      expect(Array.from(got.values)).toEqual(Array.from(ref.values));
    });
  }
});

describe('Sum and Mean gradients', () => {
  const cases: [string, string, Record<string, unknown>, number[]][] = [
    ['sum over [0, 1, 2]', 'Sum', { axis: [0, 1, 2], keepDims: false }, [6]],
    ['mean over [1, 2], keepDims', 'Mean', { axis: [1, 2], keepDims: true }, [3, 1, 1, 6]],
    ['mean of all', 'Mean', { axis: [0, 1, 2, 3], keepDims: false }, []],
  ];
  for (const [name, kernel, attrs, dyShape] of cases) {
    it(`${name}: fer-backend's broadcast gradient on wasm equals tfjs' stock gradient on cpu`, () => {
      const rng = new Prng(name.length);
      const xv = rng.values(3 * 5 * 4 * 6);
      const dyv = rng.values(dyShape.reduce((a, b) => a * b, 1));
      const grad = (backend: string, cfg: tf.GradConfig) => {
        tf.setBackend(backend);
        const before = tf.memory().numTensors;
        const out = tf.tidy(() => {
          const fns = cfg.gradFunc(tf.tensor(dyv, dyShape), [tf.tensor4d(xv, [3, 5, 4, 6])], attrs as tf.NamedAttrMap);
          return (fns.x as () => tf.Tensor)().dataSync() as Float32Array;
        });
        expect(tf.memory().numTensors).toBe(before);
        return out;
      };
      const mine = kernel === 'Sum' ? sumGradConfig : meanGradConfig;
      expect(tf.getGradient(kernel)).toBe(mine);
      expectArrayClose(grad('wasm', mine), grad('cpu', stockGrads[kernel]), KERNEL_TOL, name);
    });
  }
});

describe('broadcasting comparisons on wasm match the cpu backend', () => {
  const cases: [string, number[], number[]][] = [
    ['channel max map', [3, 7, 5, 16], [3, 7, 5, 1]], // Max gradient of a channel max (CBAM)
    ['global max', [3, 7, 5, 16], [3, 1, 1, 16]], // Max gradient of global max pooling
    ['lower rank, left operand small', [16], [4, 5, 16]],
    ['both broadcast: delegated', [3, 1, 5], [1, 4, 5]],
  ];
  for (const kernel of ['Equal', 'Greater', 'LessEqual']) {
    for (const [label, aShape, bShape] of cases) {
      it(`${kernel}: ${label}`, () => {
        const rng = new Prng(aShape.length * 11 + bShape.length + kernel.length);
        const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
        // Values on a coarse grid so Equal has true entries too.
        const grid = (n: number) => Float32Array.from(rng.values(n), (v) => Math.round(v * 2) / 2);
        const a = host(aShape, grid(size(aShape)));
        const b = host(bShape, grid(size(bShape)));
        const ref = runKernelOn('cpu', kernel, { a, b }, {});
        const got = runKernelOn('wasm', kernel, { a, b }, {});
        expect(got.shape).toEqual(ref.shape);
        expect(Array.from(got.values)).toEqual(Array.from(ref.values));
      });
    }
  }
});
