import * as tf from '@tensorflow/tfjs-core';
import type { NativeBackend } from './backend-type';
import { floatData, floatDataOrCopy, nativeKernel, nonEmpty, outputF32 } from './ops-common';

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
    const out = outputF32(backend, xs.length);
    if (!backend.addon.opsBatchNorm(xs, m, v, s, o, eps, out)) return null;
    return backend.makeTensorInfo(x.shape, 'float32', out);
  }),
];

/** [..., C] x and the channel count its [C] parameters agree on, or a clear error. */
function channels(kernel: string, x: tf.TensorInfo, ...params: tf.TensorInfo[]): number {
  const c = x.shape[x.shape.length - 1];
  const bad = params.find((p) => tf.util.sizeFromShape(p.shape) !== c);
  if (x.shape.length < 2 || bad || tf.util.sizeFromShape(x.shape) < 2 * c) {
    throw new Error(
      `fer-native ${kernel}: expected x of shape [..., C] with at least 2 values per channel and [C] parameters, ` +
        `but got x [${x.shape.join(', ')}] and a parameter of shape [${(bad ?? x).shape.join(', ')}].`,
    );
  }
  return c;
}

/**
 * fer-core's train-mode batch norm (`layers/batch-norm-train.ts` defines the contract), on the addon. Forward: the
 * statistics and y bit-identical to fer-core's composite (staged sums), three passes; attr `relu` applies Relu in
 * the last one. Backward: sums in double over a fixed chunking (independent of the thread count), two passes; input
 * `reluY` (the fused ReLU's output) masks dy as Relu's gradient would, inside them.
 */
export const batchNormTrainKernels: tf.KernelConfig[] = [
  {
    kernelName: 'FerBatchNormTrain',
    backendName: 'native',
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const backend = b as NativeBackend;
      const { x, scale, offset } = inputs as { x: tf.TensorInfo; scale: tf.TensorInfo; offset: tf.TensorInfo };
      const c = channels('FerBatchNormTrain', x, scale, offset);
      const y = outputF32(backend, tf.util.sizeFromShape(x.shape));
      const mean = new Float32Array(c);
      const variance = new Float32Array(c);
      const { epsilon: eps, relu } = attrs as unknown as { epsilon: number; relu?: boolean };
      backend.addon.opsBatchNormTrain(
        floatDataOrCopy(backend, x),
        x.shape,
        floatDataOrCopy(backend, scale),
        floatDataOrCopy(backend, offset),
        eps,
        y,
        mean,
        variance,
        relu === true,
      );
      return [
        backend.makeTensorInfo(x.shape, 'float32', y),
        backend.makeTensorInfo([c], 'float32', mean),
        backend.makeTensorInfo([c], 'float32', variance),
      ];
    },
  },
  {
    kernelName: 'FerBatchNormTrainGrad',
    backendName: 'native',
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const backend = b as NativeBackend;
      const { x, dy, mean, variance, scale, reluY } = inputs as Record<string, tf.TensorInfo | undefined>;
      const c = channels('FerBatchNormTrainGrad', x!, mean!, variance!, scale!);
      for (const [name, t] of [['dy', dy!], ...(reluY ? [['reluY', reluY] as const] : [])] as const) {
        if (!tf.util.arraysEqual(t.shape, x!.shape)) {
          throw new Error(
            `fer-native FerBatchNormTrainGrad: expected ${name} of x's shape [${x!.shape.join(', ')}], but got [${t.shape.join(', ')}].`,
          );
        }
      }
      const dx = outputF32(backend, tf.util.sizeFromShape(x!.shape));
      const dScale = new Float32Array(c);
      const dOffset = new Float32Array(c);
      const eps = (attrs as unknown as { epsilon: number }).epsilon;
      backend.addon.opsBatchNormTrainGrad(
        floatDataOrCopy(backend, x!),
        floatDataOrCopy(backend, dy!),
        floatDataOrCopy(backend, mean!),
        floatDataOrCopy(backend, variance!),
        floatDataOrCopy(backend, scale!),
        eps,
        dx,
        dScale,
        dOffset,
        reluY ? floatDataOrCopy(backend, reluY) : null,
      );
      return [
        backend.makeTensorInfo(x!.shape, 'float32', dx),
        backend.makeTensorInfo([c], 'float32', dScale),
        backend.makeTensorInfo([c], 'float32', dOffset),
      ];
    },
  },
];
