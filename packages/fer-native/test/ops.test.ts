import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from 'fer-backend';
import { stagedMean } from 'fer-core';
import { NATIVE_BACKEND, loadAddon, registerNativeBackend, type NativeAddon } from 'fer-native';
import { describeNative } from './helpers';

/**
 * The element-wise, reduction, pooling and batch-norm kernels (native/{eltwise,reduce,pool,batchnorm}.cc) against
 * tfjs-backend-cpu's kernels on randomised shapes, broadcasting patterns, batch 1, odd sizes and edge values (NaN,
 * ±inf, ±0, huge and tiny). The tolerance is zero: every output must be bit-identical (NaN matching NaN), because
 * the C++ reproduces the cpu kernels' JS arithmetic (float32-exact ops, double accumulation in the same order).
 * Each case also checks that the addon ran (not a silent fallback) and that no tensor leaked.
 */

const OPS_FUNCTIONS = [
  'opsUnary',
  'opsBinary',
  'opsCompare',
  'opsSelect',
  'opsAddN',
  'opsReduce',
  'opsPool',
  'opsPoolGrad',
  'opsBatchNorm',
  'opsReluGrad',
  'opsMaxGrad',
  'opsMulSum',
  'opsMeanMaxGrad',
  'opsMeanMax',
  'opsTile',
  'opsTranspose',
  'opsConcat2d',
  'opsPad',
  'opsSlice',
];

/** Deterministic uniform [0, 1) (LCG), so a failure names a reproducible case. */
class Rng {
  constructor(private s: number) {}
  next(): number {
    this.s = (Math.imul(this.s, 1103515245) + 12345) >>> 0;
    return this.s / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
}

const SPECIALS = [NaN, Infinity, -Infinity, -0, 0, 1, -1, 1e-30, -3e38, 3e38, 0.5];

function values(rng: Rng, n: number, edge: boolean): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = edge && rng.next() < 0.1 ? rng.pick(SPECIALS) : (rng.next() * 2 - 1) * 3;
  return v;
}

const keptOf = (shape: number[], axes: number[]) => shape.map((d, i) => (axes.includes(i) ? 1 : d));
const size = (shape: number[], axes: number[]) => keptOf(shape, axes).reduce((a, b) => a * b, 1);

/** Index of the first element whose float32 bits differ (NaNs compare equal), or -1. */
function firstBitDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const fa = Float32Array.from(a);
  const fb = Float32Array.from(b);
  const ua = new Uint32Array(fa.buffer);
  const ub = new Uint32Array(fb.buffer);
  for (let i = 0; i < fa.length; i++) {
    if (ua[i] !== ub[i] && !(Number.isNaN(fa[i]) && Number.isNaN(fb[i]))) return i;
  }
  return -1;
}

describeNative('native element-wise, reduction, pooling and batch-norm kernels', () => {
  let addon: NativeAddon;
  const calls = new Map<string, number>();
  const originals = new Map<string, NativeAddon[string]>();
  const nativeCalls = () => [...calls.values()].reduce((a, b) => a + b, 0);

  beforeAll(async () => {
    await initBackend({ backend: 'cpu', quiet: true }); // registers tfjs' gradients (and fer-backend's overrides)
    expect(registerNativeBackend().ok).toBe(true);
    addon = loadAddon().addon!;
    for (const name of OPS_FUNCTIONS) {
      const fn = addon[name] as (...args: unknown[]) => unknown;
      originals.set(name, fn);
      addon[name] = (...args: unknown[]) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        return fn(...args);
      };
    }
  });
  afterAll(async () => {
    for (const [name, fn] of originals) addon[name] = fn;
    await tf.setBackend('cpu');
  });

  interface In {
    shape: number[];
    data: Float32Array;
  }

  /** Runs f on cpu and native; outputs must match bit for bit with the same shape and dtype, and nothing leaks. */
  async function expectSame(label: string, f: (...t: tf.Tensor[]) => tf.Tensor, inputs: In[], native = true) {
    const outs: { values: ArrayLike<number>; shape: number[]; dtype: string }[] = [];
    for (const backend of ['cpu', NATIVE_BACKEND]) {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      const callsBefore = nativeCalls();
      const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
      const y = tf.tidy(() => f(...xs));
      outs.push({ values: y.dataSync(), shape: y.shape, dtype: y.dtype });
      tf.dispose([...xs, y]);
      expect({ label, backend, leaked: tf.memory().numTensors - before }).toEqual({ label, backend, leaked: 0 });
      if (backend === NATIVE_BACKEND && native) {
        expect({ label, nativeRan: nativeCalls() > callsBefore }).toEqual({ label, nativeRan: true });
      }
    }
    const [ref, got] = outs;
    expect({ label, shape: got.shape, dtype: got.dtype }).toEqual({ label, shape: ref.shape, dtype: ref.dtype });
    const at = firstBitDifference(ref.values, got.values);
    if (at >= 0) throw new Error(`${label}: element ${at} is ${got.values[at]}, cpu gives ${ref.values[at]}`);
  }

  const shapeOf = (rng: Rng, rank: number, max = 7) => Array.from({ length: rank }, () => rng.int(1, max));
  const input = (rng: Rng, shape: number[], edge = true): In => ({
    shape,
    data: values(rng, tf.util.sizeFromShape(shape), edge),
  });

  it('unary ops equal cpu on edge values, small and multi-threaded sizes', async () => {
    const rng = new Rng(1);
    const ops: [string, (x: tf.Tensor) => tf.Tensor][] = [
      ['relu', tf.relu],
      ['relu6', tf.relu6],
      ['sigmoid', tf.sigmoid],
      ['exp', tf.exp],
      ['log', tf.log],
      ['tanh', tf.tanh],
      ['sqrt', tf.sqrt],
      ['rsqrt', tf.rsqrt],
      ['square', tf.square],
      ['neg', tf.neg],
      ['step', (x) => tf.step(x, 0.3)],
      ['abs', tf.abs],
      ['reciprocal', tf.reciprocal],
    ];
    for (const [name, f] of ops) {
      for (const shape of [[1], [3, 17], [2, 61, 67, 9]])
        await expectSame(`${name} [${shape}]`, f, [input(rng, shape)]);
    }
  });

  it("Relu's gradient (FerReluGrad, one pass) equals tfjs core's Step then Multiply, edge values included", async () => {
    const rng = new Rng(12);
    const reluGrad = (x: tf.Tensor, dy: tf.Tensor) => tf.grad((a: tf.Tensor) => tf.relu(a))(x, dy);
    for (const shape of [[1], [3, 17], [2, 61, 67, 9]]) {
      const before = calls.get('opsReluGrad') ?? 0;
      await expectSame(`reluGrad [${shape}]`, reluGrad, [input(rng, shape), input(rng, shape)]);
      expect({ shape, ran: (calls.get('opsReluGrad') ?? 0) - before }).toEqual({ shape, ran: 1 });
    }
  });

  it("Max's gradient (FerMaxGrad, one pass) equals fer-backend's dy·(1 − step(y − x)) on cpu: ties, NaN, ±inf", async () => {
    const rng = new Rng(14);
    const cases: [number[], number[]][] = [
      [[2, 9, 11, 16], [3]], // CBAM's max over channels
      [
        [2, 9, 11, 16],
        [1, 2],
      ], // CBAM's global max pool
      [[3, 7], [0]],
      [
        [4, 5, 6],
        [0, 2],
      ],
      [[2, 40, 41, 24], [3]], // parallel path
    ];
    for (const [shape, axes] of cases) {
      const x = input(rng, shape, true);
      x.data = x.data.map((v, i) => (i % 4 === 0 ? Math.round(v) : v)); // ties
      const before = calls.get('opsMaxGrad') ?? 0;
      const grad = (z: tf.Tensor) =>
        tf.grad((a: tf.Tensor) => {
          const w = tf.reshape(tf.sin(tf.range(1, 1 + size(shape, axes))), keptOf(shape, axes));
          return tf.sum(tf.mul(tf.max(a, axes, true), w));
        })(z);
      await expectSame(`maxGrad [${shape}] axes [${axes}]`, grad, [x]);
      expect({ shape, ran: (calls.get('opsMaxGrad') ?? 0) - before }).toEqual({ shape, ran: 1 });
    }
  });

  it('binary ops and comparisons equal cpu under every broadcasting pattern', async () => {
    const rng = new Rng(2);
    const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
      ['add', tf.add],
      ['sub', tf.sub],
      ['mul', tf.mul],
      ['div', tf.div],
      ['maximum', tf.maximum],
      ['minimum', tf.minimum],
      ['squaredDifference', tf.squaredDifference],
      ['equal', tf.equal],
      ['notEqual', tf.notEqual],
      ['greater', tf.greater],
      ['greaterEqual', tf.greaterEqual],
      ['less', tf.less],
      ['lessEqual', tf.lessEqual],
    ];
    for (const [name, f] of ops) {
      for (let t = 0; t < 10; t++) {
        const out = shapeOf(rng, rng.int(1, 5));
        // Each operand drops some size-1-able dims and some leading dims: scalar, row, column and mixed broadcasts.
        const a = out.map((d) => (rng.next() < 0.35 ? 1 : d)).slice(rng.int(0, 2));
        const b = out.map((d) => (rng.next() < 0.35 ? 1 : d)).slice(rng.int(0, 2));
        await expectSame(`${name} [${a}] [${b}]`, f, [input(rng, a), input(rng, b)]);
      }
      // The models' big shapes (parallel path): per-channel gate, spatial gate, scalar.
      await expectSame(`${name} gate`, f, [input(rng, [2, 20, 21, 48]), input(rng, [2, 1, 1, 48])]);
      await expectSame(`${name} spatial`, f, [input(rng, [2, 20, 21, 1]), input(rng, [2, 20, 21, 48])]);
      await expectSame(`${name} scalar`, f, [input(rng, []), input(rng, [3, 13001])]);
    }
  });

  it("Multiply's gradient (FerMulSum for the broadcast operand) equals tfjs core's Multiply then Sum, every pattern", async () => {
    const rng = new Rng(21);
    // Both operands' gradients, flattened into one tensor.
    const grads = (a: tf.Tensor, b: tf.Tensor, dy: tf.Tensor) => {
      const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.mul(x, y))([a, b], dy);
      return tf.concat([tf.reshape(ga, [-1]), tf.reshape(gb, [-1])]);
    };
    // [a, b, whether the kernel is called]
    const cases: [number[], number[], boolean][] = [
      [[2, 9, 11, 16], [2, 1, 1, 16], true], // CBAM's channel gate
      [[2, 9, 11, 16], [2, 9, 11, 1], true], // CBAM's spatial gate
      [[1, 5, 7, 3], [1, 1, 1, 3], true], // batch 1
      [[1, 5, 7, 3], [1, 5, 7, 1], true],
      [[3, 7, 5, 6], [6], true], // per-channel (bias-like)
      [[3, 13], [], true], // scalar
      [[3, 1, 5], [3, 4, 1], false], // both broadcast: core's formula
      [[4, 5, 6, 3], [1, 5, 1, 3], true], // axes 0 and 2: not one block, the kernel runs Multiply then Sum
      [[2, 40, 41, 24], [2, 1, 1, 24], true], // parallel paths
      [[2, 40, 41, 24], [2, 40, 41, 1], true],
    ];
    for (const [sa, sb, called] of cases) {
      const out = tf.broadcast_util.assertAndGetBroadcastShape(sa, sb);
      for (const [x, y] of [
        [sa, sb],
        [sb, sa],
      ]) {
        const before = calls.get('opsMulSum') ?? 0;
        await expectSame(`mul grad [${x}] [${y}]`, grads, [input(rng, x), input(rng, y), input(rng, out)]);
        const ran = (calls.get('opsMulSum') ?? 0) - before;
        expect({ x, y, ran: ran > 0 }).toEqual({ x, y, ran: called });
      }
    }
  });

  it('FerMeanMaxGrad (CBAM pools) equals the Mean gradient plus the Max gradient on cpu: ties, NaN, ±inf', async () => {
    const rng = new Rng(22);
    const cases: [number[], number[]][] = [
      [[2, 9, 11, 16], [3]], // CBAM's channel pools
      [
        [2, 9, 11, 16],
        [1, 2],
      ], // CBAM's global pools
      [[1, 5, 7, 3], [3]], // batch 1
      [
        [1, 5, 7, 3],
        [1, 2],
      ],
      [[3, 7], [0]],
      [
        [2, 1, 1, 8],
        [1, 2],
      ], // nothing to reduce
      [[2, 40, 41, 24], [3]], // parallel paths
      [
        [2, 40, 41, 24],
        [1, 2],
      ],
    ];
    for (const [shape, axes] of cases) {
      const kept = keptOf(shape, axes);
      const n = tf.util.sizeFromShape(shape) / tf.util.sizeFromShape(kept);
      const x = input(rng, shape, true);
      x.data = x.data.map((v, i) => (i % 4 === 0 ? Math.round(v) : v)); // ties
      const grad = (xt: tf.Tensor, dMean: tf.Tensor, dMax: tf.Tensor) => {
        const y = tf.max(xt, axes, true);
        if (tf.getBackend() === NATIVE_BACKEND)
          return tf.engine().runKernel('FerMeanMaxGrad', { x: xt, y, dMean, dMax }, { axis: axes }) as tf.Tensor;
        const maxTerm = tf.mul(dMax, tf.sub(tf.scalar(1), tf.step(tf.sub(y, xt))));
        return tf.add(tf.div(dMean, tf.scalar(n)), maxTerm);
      };
      const before = calls.get('opsMeanMaxGrad') ?? 0;
      await expectSame(`meanMaxGrad [${shape}] axes [${axes}]`, grad, [x, input(rng, kept), input(rng, kept)]);
      expect({ shape, ran: (calls.get('opsMeanMaxGrad') ?? 0) - before }).toEqual({ shape, ran: 1 });
    }
    await tf.setBackend(NATIVE_BACKEND);
    const [x, k] = [tf.ones([4, 5, 6]), tf.ones([1, 5, 1])];
    expect(() => tf.engine().runKernel('FerMeanMaxGrad', { x, y: k, dMean: k, dMax: k }, { axis: [0, 2] })).toThrow(
      /axes 0, 2 of \[4, 5, 6\] do not form one block/,
    );
    expect(() => tf.engine().runKernel('FerMeanMaxGrad', { x, y: k, dMean: k, dMax: k }, { axis: [0] })).toThrow(
      /expected y, dMean and dMax of shape \[1, 5, 6\].*but got \[1, 5, 1\]/,
    );
    tf.dispose([x, k]);
  });

  it("FerMeanMax (CBAM pools' forward, one pass) equals stagedMean / Mean and Max on cpu: NaN, ±inf, ±0", async () => {
    const rng = new Rng(23);
    const cases: [number[], number[], boolean][] = [
      [[2, 9, 11, 16], [1, 2], true], // CBAM's global pools (staged mean)
      [[2, 9, 11, 16], [3], false], // CBAM's channel pools
      [[1, 5, 7, 3], [1, 2], true], // batch 1
      [[1, 5, 7, 3], [3], false],
      [[3, 1, 5, 4], [1, 2], true], // one non-trivial reduced axis
      [[2, 1, 1, 8], [1, 2], true], // nothing to reduce (the branch's last 1×1 map at small inputs)
      [[2, 1, 1, 8], [3], false],
      [[2, 3, 4, 1], [1, 2], true], // one channel
      [[3, 7], [0], false],
      [[2, 40, 41, 24], [1, 2], true], // parallel paths
      [[2, 40, 41, 24], [3], false],
    ];
    for (const [shape, axes, staged] of cases) {
      const pools = (x: tf.Tensor) => {
        const [mean, max] =
          tf.getBackend() === NATIVE_BACKEND
            ? (tf.engine().runKernel('FerMeanMax', { x }, { axis: axes, staged }) as tf.Tensor[])
            : [staged ? stagedMean(x, axes, true) : tf.mean(x, axes, true), tf.max(x, axes, true)];
        return tf.concat([tf.reshape(mean, [-1]), tf.reshape(max, [-1])]);
      };
      const before = calls.get('opsMeanMax') ?? 0;
      await expectSame(`meanMax [${shape}] axes [${axes}] staged ${staged}`, pools, [input(rng, shape, true)]);
      await expectSame(`meanMax [${shape}] axes [${axes}] staged ${staged}, finite`, pools, [input(rng, shape, false)]);
      expect({ shape, ran: (calls.get('opsMeanMax') ?? 0) - before }).toEqual({ shape, ran: 2 });
    }
    await tf.setBackend(NATIVE_BACKEND);
    const x = tf.ones([4, 5, 6]);
    expect(() => tf.engine().runKernel('FerMeanMax', { x }, { axis: [0, 2], staged: false })).toThrow(
      /cannot reduce \[4, 5, 6\] over axes 0, 2/,
    );
    const x4 = tf.ones([2, 3, 4, 5]);
    expect(() => tf.engine().runKernel('FerMeanMax', { x: x4 }, { axis: [1, 2, 3], staged: true })).toThrow(
      /cannot reduce \[2, 3, 4, 5\] over axes 1, 2, 3 \(staged\)/,
    );
    tf.dispose([x, x4]);
  });

  it('Select and AddN equal cpu', async () => {
    const rng = new Rng(3);
    for (const shape of [[1], [2, 3, 5], [4, 97, 101]]) {
      await expectSame(`select [${shape}]`, (c, a, b) => tf.where(tf.greater(c, 0), a, b), [
        input(rng, shape, false),
        input(rng, shape),
        input(rng, shape),
      ]);
      await expectSame(`addN [${shape}]`, (a, b, c) => tf.addN([a, b, c]), [
        input(rng, shape),
        input(rng, shape),
        input(rng, shape),
      ]);
    }
  });

  it('Sum, Mean, Max and Min equal cpu over random axes, with and without keepDims', async () => {
    const rng = new Rng(4);
    const ops: [string, (x: tf.Tensor, axes: number[], keep: boolean) => tf.Tensor][] = [
      ['sum', tf.sum],
      ['mean', tf.mean],
      ['max', tf.max],
      ['min', tf.min],
    ];
    for (const [name, f] of ops) {
      for (let t = 0; t < 16; t++) {
        const shape = shapeOf(rng, rng.int(1, 4), 9);
        const axes = shape.map((_, i) => i).filter(() => rng.next() < 0.5);
        if (!axes.length) axes.push(rng.int(0, shape.length - 1));
        const keep = rng.next() < 0.5;
        // Axis sets that are not one block once size-1 dims are dropped fall back to cpu (still equal).
        await expectSame(
          `${name} [${shape}] axes [${axes}] keep ${keep}`,
          (x) => f(x, axes, keep),
          [input(rng, shape, t % 2 === 0)],
          false,
        );
      }
      // The models' reductions of an NHWC map, all native.
      for (const axes of [[0, 1, 2], [1, 2], [3], [2], [1], [0]]) {
        await expectSame(`${name} [2,24,23,40] axes [${axes}]`, (x) => f(x, axes, true), [
          input(rng, [2, 24, 23, 40], name === 'max' || name === 'min'),
        ]);
      }
    }
  });

  it('MaxPool, AvgPool and their gradients equal cpu (overlapping windows, padding, ties)', async () => {
    const rng = new Rng(5);
    for (let t = 0; t < 24; t++) {
      const shape = [rng.pick([1, 1, 2, 3]), rng.int(2, 13), rng.int(2, 13), rng.int(1, 9)];
      const k = rng.int(1, 3);
      const s = rng.int(1, 3);
      const pad = rng.pick(['valid', 'same', 0, 1] as const);
      if (typeof pad === 'number' && pad >= k) continue;
      if (k === 1 && s === 1) continue; // the cpu kernels' identity case (not native)
      const x = input(rng, shape, t % 3 === 0);
      if (t % 4 === 0) x.data = x.data.map(Math.round); // many ties
      const label = `[${shape}] k${k} s${s} pad ${pad}`;
      const pool4 = (z: tf.Tensor, kind: 'max' | 'avg') =>
        kind === 'max'
          ? tf.maxPool(z as tf.Tensor4D, k, s, pad as 'valid')
          : tf.avgPool(z as tf.Tensor4D, k, s, pad as 'valid');
      for (const kind of ['max', 'avg'] as const) {
        await expectSame(`${kind}Pool ${label}`, (z) => pool4(z, kind), [x]);
        // dy = sin(1..n): distinct weights, so a misrouted gradient shows.
        const grad = tf.grad((z: tf.Tensor) => {
          const y = pool4(z, kind);
          return tf.sum(tf.mul(y, tf.reshape(tf.sin(tf.range(1, 1 + y.size)), y.shape)));
        });
        await expectSame(`${kind}PoolGrad ${label}`, (z) => grad(z), [x]);
      }
    }
  });

  it('MaxPoolGrad with disjoint windows (one-pass path) equals cpu: odd sizes, gaps, padding, ties, big maps', async () => {
    const rng = new Rng(13);
    const cases: [number[], number, number, 'valid' | 'same' | number][] = [
      [[2, 9, 11, 5], 2, 2, 'valid'],
      [[2, 9, 11, 5], 2, 2, 'same'],
      [[1, 10, 7, 3], 2, 3, 'valid'], // stride > filter: cells between windows get 0
      [[1, 10, 7, 3], 3, 3, 'same'],
      [[3, 8, 8, 4], 1, 2, 'valid'],
      [[2, 8, 9, 6], 2, 2, 1],
      [[2, 40, 42, 32], 2, 2, 'valid'], // parallel path
    ];
    for (const [shape, k, s, pad] of cases) {
      const x = input(rng, shape, true);
      x.data = x.data.map((v, i) => (i % 3 === 0 ? Math.round(v) : v)); // ties
      const grad = tf.grad((z: tf.Tensor) => {
        const y = tf.maxPool(z as tf.Tensor4D, k, s, pad as 'valid');
        return tf.sum(tf.mul(y, tf.reshape(tf.sin(tf.range(1, 1 + y.size)), y.shape)));
      });
      await expectSame(`maxPoolGrad [${shape}] k${k} s${s} pad ${pad}`, (z) => grad(z), [x]);
    }
  });

  it('FusedBatchNorm equals cpu (per-channel, scalar and absent scale/offset)', async () => {
    const rng = new Rng(6);
    for (let t = 0; t < 8; t++) {
      const shape = shapeOf(rng, 4, 6);
      const c = shape[3];
      await expectSame(`batchNorm [${shape}]`, (x, m, v, g, b) => tf.batchNorm(x, m, tf.abs(v), b, g, 1e-5), [
        input(rng, shape, t % 2 === 0),
        input(rng, [c], false),
        input(rng, [c], false),
        input(rng, [c], false),
        input(rng, [c], false),
      ]);
      await expectSame(`batchNorm [${shape}] no scale/offset`, (x, m, v) => tf.batchNorm(x, m, tf.abs(v)), [
        input(rng, shape, false),
        input(rng, [c], false),
        input(rng, [c], false),
      ]);
    }
    // CBAM's one-channel spatial map, on the parallel path.
    await expectSame('batchNorm [4,48,47,1]', (x, m, v, g, b) => tf.batchNorm(x, m, tf.abs(v), b, g, 1e-5), [
      input(rng, [4, 48, 47, 1], false),
      input(rng, [1], false),
      input(rng, [1], false),
      input(rng, [1], false),
      input(rng, [1], false),
    ]);
  });

  it('Tile, Transpose, Concat, PadV2, Slice and SplitV equal cpu (float32 and int32)', async () => {
    const rng = new Rng(8);
    for (let t = 0; t < 12; t++) {
      const shape = shapeOf(rng, rng.int(2, 4), 6);
      const reps = shape.map(() => rng.int(1, 3));
      const perm = shape.map((_, i) => i).sort(() => rng.next() - 0.5);
      const pads = shape.map(() => [rng.int(0, 2), rng.int(0, 2)] as [number, number]);
      const axis = rng.int(0, shape.length - 1);
      const other = shape.map((d, i) => (i === axis ? rng.int(1, 4) : d));
      const x = input(rng, shape);
      await expectSame(`tile [${shape}] reps [${reps}]`, (a) => tf.tile(a, reps), [x]);
      await expectSame(`tile int32 [${shape}]`, (a) => tf.tile(tf.cast(tf.mul(a, 100), 'int32'), reps), [
        input(rng, shape, false),
      ]);
      await expectSame(`broadcastTo [${shape}]`, (a) => tf.broadcastTo(tf.sum(a, axis, true), shape), [x]);
      // tfjs skips the kernel for the identity permutation.
      const identity = perm.every((p, i) => p === i);
      await expectSame(`transpose [${shape}] perm [${perm}]`, (a) => tf.transpose(a, perm), [x], !identity);
      await expectSame(`concat [${shape}] [${other}] axis ${axis}`, (a, b) => tf.concat([a, b, a], axis), [
        x,
        input(rng, other),
      ]);
      await expectSame(`pad [${shape}] ${JSON.stringify(pads)}`, (a) => tf.pad(a, pads, t % 2 ? 0 : -1.5), [x]);
      // Strided (non-contiguous) slices and splits along the last axis, as CBAM's concat gradient runs.
      const inner = [...shape.slice(0, -1), shape[shape.length - 1] + 3];
      const begin = inner.map(() => 0);
      begin[inner.length - 1] = 1;
      const size = inner.map((d, i) => (i === inner.length - 1 ? 2 : d));
      // A contiguous slice is cpu's zero-copy view (not native).
      const strided = !tf.slice_util.isSliceContinous(inner, begin, size);
      await expectSame(`slice [${inner}]`, (a) => tf.slice(a, begin, size), [input(rng, inner)], strided);
      const pieces = (a: tf.Tensor) => tf.split(a, [1, inner[inner.length - 1] - 1], -1);
      const flat = (a: tf.Tensor) => tf.concat(pieces(a).map((p) => tf.reshape(p, [-1])));
      await expectSame(`split [${inner}]`, flat, [input(rng, inner)], strided);
    }
  });

  it('falls back to cpu for float32 tensors without Float32Array data and for other dtypes', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const before = tf.memory().numTensors;
    const callsBefore = nativeCalls();
    const got = tf.tidy(() => {
      // cpu's Cast int32 -> float32 keeps the Int32Array: a float32 tensor without float data.
      const i = tf.cast(tf.tensor1d([1, -2, 3], 'int32'), 'float32');
      return [tf.add(i, tf.scalar(0.5)).arraySync(), tf.relu(tf.tensor1d([-1, 4], 'int32')).arraySync()];
    });
    expect(got).toEqual([
      [1.5, -1.5, 3.5],
      [0, 4],
    ]);
    expect(nativeCalls()).toBe(callsBefore);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gives bit-identical results with 1 and 2 threads (fixed partition, fixed summation order)', async () => {
    const rng = new Rng(7);
    await tf.setBackend(NATIVE_BACKEND);
    const x = tf.tensor(values(rng, 4 * 40 * 41 * 64, false), [4, 40, 41, 64]);
    const run = () =>
      tf.tidy(() => {
        const g = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(z as tf.Tensor4D, 3, 2, 'same'), 1.3)))(x);
        return [tf.sum(x, [0, 1, 2]), tf.mean(x, 3), tf.max(x, [1, 2]), g, tf.sigmoid(x)].map((t) => t.dataSync());
      });
    const threads = addon.info().threads as number;
    try {
      addon.setThreads(1);
      const one = run();
      addon.setThreads(2);
      const two = run();
      one.forEach((v, i) => expect(firstBitDifference(v, two[i])).toBe(-1));
    } finally {
      addon.setThreads(threads);
      x.dispose();
    }
  });
});
