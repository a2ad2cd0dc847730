import * as tf from '@tensorflow/tfjs-core';
import { floatData, nativeKernel, outputF32 } from './ops-common';

/**
 * MaxPool, AvgPool and their gradients on the addon (native/pool.cc), NHWC float32, with tfjs-backend-cpu's
 * semantics (first maximum of a window, NaN never wins; padding excluded from averages; see the C++ comments).
 */

type PoolAttrs = tf.MaxPoolAttrs & { dimRoundingMode?: 'floor' | 'round' | 'ceil' };

function geometry(xShape: number[], attrs: PoolAttrs): { info: tf.backend_util.Conv2DInfo; geo: number[] } | null {
  if (xShape.length !== 4) return null;
  const info = tf.backend_util.computePool2DInfo(
    xShape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1 || tf.util.sizeFromShape(info.outShape) === 0) return null;
  if (tf.util.sizeFromShape(xShape) === 0) return null;
  // A 1x1 pool that keeps the shape is the cpu kernel's identity (it keeps NaN and -0 where a pool would not).
  if (info.filterHeight === 1 && info.filterWidth === 1 && tf.util.arraysEqual(info.inShape, info.outShape))
    return null;
  const geo = [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
    info.outHeight,
    info.outWidth,
  ];
  return { info, geo };
}

const pool = (name: string, kind: number) =>
  nativeKernel(name, ({ inputs, backend, attrs }) => {
    const x = inputs.x;
    const xs = floatData(backend, x);
    const g = xs && geometry(x.shape, attrs as unknown as PoolAttrs);
    if (!xs || !g) return null;
    const out = outputF32(backend, tf.util.sizeFromShape(g.info.outShape));
    backend.addon.opsPool(kind, xs, g.geo, out);
    return backend.makeTensorInfo(g.info.outShape, 'float32', out);
  });

const poolGrad = (name: string, kind: number) =>
  nativeKernel(name, ({ inputs, backend, attrs }) => {
    const { dy, input } = inputs;
    const dys = floatData(backend, dy);
    const xs = kind === 0 ? floatData(backend, input) : null;
    const g = dys && geometry(input.shape, attrs as unknown as PoolAttrs);
    if (!dys || !g || (kind === 0 && !xs)) return null;
    if (!tf.util.arraysEqual(dy.shape, g.info.outShape)) return null;
    const out = outputF32(backend, tf.util.sizeFromShape(input.shape));
    backend.addon.opsPoolGrad(kind, dys, xs, g.geo, out);
    return backend.makeTensorInfo(input.shape, 'float32', out);
  });

export const poolKernels: tf.KernelConfig[] = [
  pool('MaxPool', 0),
  pool('AvgPool', 1),
  poolGrad('MaxPoolGrad', 0),
  poolGrad('AvgPoolGrad', 1),
];
