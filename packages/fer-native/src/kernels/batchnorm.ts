import * as tf from '@tensorflow/tfjs-core';
import { floatData, nativeKernel, nonEmpty, outputF32 } from './ops-common';

/**
 * FusedBatchNorm (tf.batchNorm, train and eval mode) on the addon (native/batchnorm.cc): bit-identical to
 * tfjs-backend-cpu's kernel for per-channel (or scalar) parameters; other parameter shapes fall back to it.
 */
export const batchNormKernels: tf.KernelConfig[] = [
  nativeKernel('FusedBatchNorm', ({ inputs, backend, attrs }) => {
    const { x, mean, variance, scale, offset } = inputs;
    const xs = floatData(backend, x);
    const m = floatData(backend, mean);
    const v = floatData(backend, variance);
    const s = scale ? floatData(backend, scale) : null;
    const o = offset ? floatData(backend, offset) : null;
    if (!xs || !m || !v || (scale && !s) || (offset && !o) || !nonEmpty(x.shape)) return null;
    const eps = (attrs as { varianceEpsilon?: number }).varianceEpsilon ?? 0.001;
    const out = outputF32(xs.length);
    if (!backend.addon.opsBatchNorm(xs, m, v, s, o, eps, out)) return null;
    return backend.makeTensorInfo(x.shape, 'float32', out);
  }),
];
