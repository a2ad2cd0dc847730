import * as tf from '@tensorflow/tfjs-core';
import type { NativeBackend } from './backend-type';
import { boolData, floatData, floatDataOrCopy, nativeKernel, nonEmpty, outputF32 } from './ops-common';

/**
 * Element-wise kernels on the addon (native/eltwise.cc): float32 unary ops, binary ops and comparisons with NumPy
 * broadcasting, Select and AddN, multi-threaded and bit-identical to tfjs-backend-cpu (see the C++ header comment).
 */

/** Op codes of native/eltwise.cc's `opsUnary`, with the cpu kernel each one replaces. */
const UNARY: Record<string, number> = {
  Relu: 0,
  Sigmoid: 1,
  Exp: 2,
  Sqrt: 3,
  Rsqrt: 4,
  Square: 5,
  Neg: 6,
  Step: 7,
  Abs: 8,
  Log: 9,
  Reciprocal: 10,
  Relu6: 11,
  Tanh: 12,
};

/** `opsBinary` codes (float32 result). */
const BINARY: Record<string, number> = {
  Add: 0,
  Sub: 1,
  Multiply: 2,
  RealDiv: 3,
  Maximum: 4,
  Minimum: 5,
  SquaredDifference: 6,
};

/** `opsCompare` codes (bool result). */
const COMPARE: Record<string, number> = {
  Equal: 0,
  NotEqual: 1,
  Greater: 2,
  GreaterEqual: 3,
  Less: 4,
  LessEqual: 5,
};

const unaryKernels = Object.entries(UNARY).map(([name, op]) =>
  nativeKernel(name, ({ inputs, backend, attrs }) => {
    const x = inputs.x;
    const xs = floatData(backend, x);
    if (!xs || !nonEmpty(x.shape)) return null;
    const out = outputF32(backend, xs.length);
    const alpha = name === 'Step' ? Number((attrs as { alpha?: number }).alpha ?? 0) : 0;
    backend.addon.opsUnary(op, xs, out, alpha);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  }),
);

function binaryKernel(name: string, op: number, compare: boolean): tf.KernelConfig {
  return nativeKernel(name, ({ inputs, backend }) => {
    const { a, b } = inputs;
    const av = floatData(backend, a);
    const bv = floatData(backend, b);
    if (!av || !bv) return null;
    const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    if (!nonEmpty(shape)) return null;
    const size = tf.util.sizeFromShape(shape);
    const out = compare ? new Uint8Array(size) : outputF32(backend, size);
    const fn = compare ? backend.addon.opsCompare : backend.addon.opsBinary;
    if (!fn(op, av, a.shape, bv, b.shape, out, shape)) {
      if (!compare) backend.pool.giveBack(out as Float32Array);
      return null;
    }
    return backend.makeTensorInfo(shape, compare ? 'bool' : 'float32', out);
  });
}

const binaryKernels = [
  ...Object.entries(BINARY).map(([name, op]) => binaryKernel(name, op, false)),
  ...Object.entries(COMPARE).map(([name, op]) => binaryKernel(name, op, true)),
];

/** Select with a condition of t's shape (tfjs-backend-cpu's row-wise rank-1 case stays with it). */
const selectKernel = nativeKernel('Select', ({ inputs, backend }) => {
  const { condition, t, e } = inputs;
  const c = boolData(backend, condition);
  const tv = floatData(backend, t);
  const ev = floatData(backend, e);
  if (!c || !tv || !ev || c.length !== tv.length || ev.length !== tv.length || !nonEmpty(t.shape)) return null;
  if (condition.shape.length === 1 && t.shape.length > 1) return null;
  const out = outputF32(backend, tv.length);
  backend.addon.opsSelect(c, tv, ev, out);
  return backend.makeTensorInfo(t.shape, 'float32', out);
});

const addNKernel = nativeKernel('AddN', ({ inputs, backend }) => {
  const ts = Object.values(inputs) as tf.TensorInfo[];
  const vs = ts.map((t) => floatData(backend, t));
  if (ts.length === 0 || vs.some((v) => v == null || v.length !== vs[0]!.length) || !nonEmpty(ts[0].shape)) return null;
  const out = outputF32(backend, vs[0]!.length);
  backend.addon.opsAddN(vs, out);
  return backend.makeTensorInfo(ts[0].shape, 'float32', out);
});

/**
 * `FerReluGrad` (inputs `{ dy, x }` of one shape): Relu's gradient dy·step(x) in one pass instead of Step then
 * Multiply, bit-identical to them. fer-backend's Relu gradient calls it when the active backend registers it.
 */
const reluGradKernel: tf.KernelConfig = {
  kernelName: 'FerReluGrad',
  backendName: 'native',
  kernelFunc: ({ inputs, backend: b }) => {
    const backend = b as NativeBackend;
    const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
    if (!tf.util.arraysEqual(dy.shape, x.shape)) {
      throw new Error(
        `fer-native FerReluGrad: expected dy and x of one shape, but got [${dy.shape.join(', ')}] and [${x.shape.join(', ')}].`,
      );
    }
    const d = floatDataOrCopy(backend, dy);
    const out = outputF32(backend, d.length);
    backend.addon.opsReluGrad(d, floatDataOrCopy(backend, x), out);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  },
};

/**
 * `FerMaxGrad` (inputs `{ dy, y, x }`; dy and y of x's shape with the reduced axes set to 1): `Max`'s gradient
 * dy·(1 − step(y − x)) in one pass instead of Sub, Step, Sub and Multiply over x's size, bit-identical to them.
 * fer-backend's Max gradient calls it when the active backend registers it.
 */
const maxGradKernel: tf.KernelConfig = {
  kernelName: 'FerMaxGrad',
  backendName: 'native',
  kernelFunc: ({ inputs, backend: b }) => {
    const backend = b as NativeBackend;
    const { dy, y, x } = inputs as { dy: tf.TensorInfo; y: tf.TensorInfo; x: tf.TensorInfo };
    const kept = dy.shape;
    if (
      !tf.util.arraysEqual(kept, y.shape) ||
      kept.length !== x.shape.length ||
      kept.some((d, i) => d !== 1 && d !== x.shape[i])
    ) {
      throw new Error(
        `fer-native FerMaxGrad: expected dy and y of x's shape [${x.shape.join(', ')}] with the reduced axes set to 1, ` +
          `but got [${dy.shape.join(', ')}] and [${y.shape.join(', ')}].`,
      );
    }
    const xs = floatDataOrCopy(backend, x);
    const out = outputF32(backend, xs.length);
    if (xs.length > 0)
      backend.addon.opsMaxGrad(floatDataOrCopy(backend, dy), floatDataOrCopy(backend, y), xs, x.shape, kept, out);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  },
};

export const eltwiseKernels: tf.KernelConfig[] = [
  ...unaryKernels,
  ...binaryKernels,
  selectKernel,
  addNKernel,
  reluGradKernel,
  maxGradKernel,
];
