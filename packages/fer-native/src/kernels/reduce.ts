import * as tf from '@tensorflow/tfjs-core';
import type { NativeBackend } from './backend-type';
import { floatData, floatDataOrCopy, nativeKernel, nonEmpty, outputF32 } from './ops-common';

/**
 * Sum, Mean, Max and Min on the addon (native/reduce.cc) for every axis set that is one block once size-1 dims are
 * ignored (spatial, channel, batch, all-but-channel...): no transpose, threads over outputs, each output added in
 * the cpu kernel's order in double, so results are bit-identical to tfjs-backend-cpu's.
 */

const OPS: [kernel: string, op: number, axisAttr: 'axis' | 'reductionIndices'][] = [
  ['Sum', 0, 'axis'],
  ['Mean', 1, 'axis'],
  ['Max', 2, 'reductionIndices'],
  ['Min', 3, 'axis'],
];

export const reduceKernels: tf.KernelConfig[] = OPS.map(([name, op, axisAttr]) =>
  nativeKernel(name, ({ inputs, backend, attrs }) => {
    const x = inputs.x;
    const xs = floatData(backend, x);
    if (!xs || !nonEmpty(x.shape)) return null;
    const a = attrs as { keepDims?: boolean } & Record<string, unknown>;
    const axes = tf.util.parseAxisParam(a[axisAttr] as number | number[], x.shape);
    const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    const out = outputF32(backend, tf.util.sizeFromShape(outShape));
    if (!backend.addon.opsReduce(op, xs, x.shape, axes, out)) {
      backend.pool.giveBack(out);
      return null;
    }
    const shape = a.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
    return backend.makeTensorInfo(shape, 'float32', out);
  }),
);

/** The kernel `name` registered for this backend (every one here is). */
function kernelOf(name: string): tf.KernelFunc {
  const k = tf.getKernel(name, 'native');
  if (!k) throw new Error(`fer-native: no '${name}' kernel is registered for the native backend`);
  return k.kernelFunc;
}

/**
 * `FerMulSum` (inputs `{ a, b }` of one shape, attr `axis`): sum(a·b, axis) in one read pass, bit-identical to
 * Multiply then Sum (each product rounded to float32, each output added in the cpu kernel's order in double). What
 * fer-backend's Multiply gradient runs for the broadcast operand (CBAM's gates: Σ over H, W or over C). Axis sets
 * that are not one block, other dtypes and non-Float32Array data run the Multiply and Sum kernels.
 */
const mulSumKernel: tf.KernelConfig = {
  kernelName: 'FerMulSum',
  backendName: 'native',
  kernelFunc: (args) => {
    const backend = args.backend as NativeBackend;
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (!tf.util.arraysEqual(a.shape, b.shape)) {
      throw new Error(
        `fer-native FerMulSum: expected a and b of one shape, but got [${a.shape.join(', ')}] and [${b.shape.join(', ')}].`,
      );
    }
    const axes = tf.util.parseAxisParam((args.attrs as { axis: number[] }).axis, a.shape);
    const [outShape] = tf.backend_util.computeOutAndReduceShapes(a.shape, axes);
    const as = floatData(backend, a);
    const bs = floatData(backend, b);
    if (as && bs && nonEmpty(a.shape)) {
      const out = outputF32(backend, tf.util.sizeFromShape(outShape));
      if (backend.addon.opsMulSum(as, bs, a.shape, axes, out)) return backend.makeTensorInfo(outShape, 'float32', out);
      backend.pool.giveBack(out);
    }
    const prod = kernelOf('Multiply')({ inputs: { a, b }, backend, attrs: {} }) as tf.TensorInfo;
    const out = kernelOf('Sum')({ inputs: { x: prod }, backend, attrs: { axis: axes, keepDims: false } });
    backend.disposeIntermediateTensorInfo(prod);
    return out;
  },
};

/**
 * `FerMeanMaxGrad` (inputs `{ x, y, dMean, dMax }`, attr `axis`; y = max(x, axis) and the two gradients in x's shape
 * with the reduced axes set to 1): the gradient of a mean and a max over the same axes in one pass,
 * dx = dMean / n + dMax·(1 − step(y − x)) (n the reduced count), bit-identical to the sum of the Mean gradient
 * (RealDiv, broadcast) and fer-backend's Max gradient. fer-core's CBAM runs its two pooling pairs through it. The
 * axes must form one block once size-1 dims are ignored (any single axis, or H and W of NHWC).
 */
const meanMaxGradKernel: tf.KernelConfig = {
  kernelName: 'FerMeanMaxGrad',
  backendName: 'native',
  kernelFunc: (args) => {
    const backend = args.backend as NativeBackend;
    const { x, y, dMean, dMax } = args.inputs as Record<string, tf.TensorInfo>;
    const axes = tf.util.parseAxisParam((args.attrs as { axis: number[] }).axis, x.shape);
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const bad = [y, dMean, dMax].find((t) => !tf.util.arraysEqual(t.shape, kept));
    if (bad) {
      throw new Error(
        `fer-native FerMeanMaxGrad: expected y, dMean and dMax of shape [${kept.join(', ')}] (x's [${x.shape.join(', ')}] ` +
          `with axes ${axes.join(', ')} set to 1), but got [${bad.shape.join(', ')}].`,
      );
    }
    const xs = floatDataOrCopy(backend, x);
    const out = outputF32(backend, xs.length);
    if (
      xs.length > 0 &&
      !backend.addon.opsMeanMaxGrad(
        xs,
        x.shape,
        axes,
        floatDataOrCopy(backend, y),
        floatDataOrCopy(backend, dMean),
        floatDataOrCopy(backend, dMax),
        out,
      )
    ) {
      throw new Error(
        `fer-native FerMeanMaxGrad: axes ${axes.join(', ')} of [${x.shape.join(', ')}] do not form one block; ` +
          'reduce over a single axis or adjacent axes (size-1 axes are ignored).',
      );
    }
    return backend.makeTensorInfo(x.shape, 'float32', out);
  },
};

/**
 * `FerMeanMax` (input `{ x }`, attrs `{ axis, staged }`): [mean, max] of x over `axis` with keepDims, in one read
 * pass. The mean is fer-core's `stagedMean` when `staged` (Sum over the last reduced axis, then over the other, each in
 * double rounded to float32, then ÷ n) and otherwise the Mean kernel's; the max the Max kernel's: both bit-identical
 * to those ops. CBAM's pools (H, W staged; C plain). Other axis sets throw: the axes must form one block once size-1
 * dims are ignored, and a staged mean spans at most two axes larger than 1.
 */
const meanMaxKernel: tf.KernelConfig = {
  kernelName: 'FerMeanMax',
  backendName: 'native',
  kernelFunc: (args) => {
    const backend = args.backend as NativeBackend;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { axis, staged } = args.attrs as unknown as { axis: number[]; staged: boolean };
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const n = tf.util.sizeFromShape(kept);
    const mean = outputF32(backend, n);
    const max = outputF32(backend, n);
    const xs = floatDataOrCopy(backend, x);
    if (xs.length === 0 || !backend.addon.opsMeanMax(xs, x.shape, axes, staged === true, mean, max)) {
      throw new Error(
        `fer-native FerMeanMax: cannot reduce [${x.shape.join(', ')}] over axes ${axes.join(', ')}${staged ? ' (staged)' : ''}: ` +
          'expected a non-empty x and axes forming one block (size-1 axes ignored), and a staged mean over at most ' +
          'two axes larger than 1.',
      );
    }
    return [backend.makeTensorInfo(kept, 'float32', mean), backend.makeTensorInfo(kept, 'float32', max)];
  },
};

export const fusedReduceGradKernels: tf.KernelConfig[] = [mulSumKernel, meanMaxGradKernel, meanMaxKernel];
