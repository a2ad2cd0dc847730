import * as tf from '@tensorflow/tfjs-core';
import { floatData, nativeKernel, nonEmpty, outputF32 } from './ops-common';

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
    const out = outputF32(tf.util.sizeFromShape(outShape));
    if (!backend.addon.opsReduce(op, xs, x.shape, axes, out)) return null;
    const shape = a.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
    return backend.makeTensorInfo(shape, 'float32', out);
  }),
);
