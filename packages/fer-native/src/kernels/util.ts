import * as tf from '@tensorflow/tfjs-core';
import type { NativeBackend } from './backend-type';

/** The float32 data of a tensor held by the native backend (the cpu backend's typed array: no copy). */
export function f32(backend: NativeBackend, t: tf.TensorInfo): Float32Array {
  const values = backend.data.get(t.dataId).values;
  if (!(values instanceof Float32Array)) {
    throw new Error(`fer-native: expected a float32 tensor with data on the native backend, got dtype ${t.dtype}`);
  }
  return values;
}

/**
 * A float32 output of `shape` on the native backend, and its buffer for the addon to fill: from the backend's pool,
 * uninitialised (the oneDNN primitives write every element).
 */
export function output(backend: NativeBackend, shape: number[]): { info: tf.TensorInfo; values: Float32Array } {
  const values = backend.pool.float32(tf.util.sizeFromShape(shape));
  return { info: backend.makeTensorInfo(shape, 'float32', values), values };
}

/** True when every input is float32 (the addon's kernels are float32 only; others fall back to cpu's kernel). */
export function allFloat32(...ts: (tf.TensorInfo | undefined)[]): boolean {
  return ts.every((t) => t == null || t.dtype === 'float32');
}

/** tfjs-backend-cpu's kernel function for `name`, for fallbacks on attributes the native kernel does not take. */
export function cpuKernel(name: string): tf.KernelFunc {
  const cfg = tf.getKernel(name, 'cpu');
  if (!cfg) throw new Error(`fer-native: tfjs-backend-cpu has no '${name}' kernel to fall back to`);
  return cfg.kernelFunc as tf.KernelFunc;
}
