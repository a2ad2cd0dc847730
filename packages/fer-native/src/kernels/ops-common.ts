import * as tf from '@tensorflow/tfjs-core';
import type { NativeBackend } from './backend-type';

/**
 * Helpers of the element-wise, reduction, pooling and batch-norm groups. Their kernels run natively only on float32
 * tensors whose data is a Float32Array (a float32 tensor can hold an Int32Array or Uint8Array: tfjs' Cast to
 * float32 keeps the data) and on shapes the addon covers; otherwise they run tfjs-backend-cpu's kernel, unchanged.
 */

/** The tensor's Float32Array, or null when it has none (other dtype, or other data behind a float32 dtype). */
export function floatData(backend: NativeBackend, t: tf.TensorInfo | undefined | null): Float32Array | null {
  if (t == null || t.dtype !== 'float32') return null;
  const values = backend.data.get(t.dataId)?.values;
  return values instanceof Float32Array ? values : null;
}

/** The float32 data of t, copied into a Float32Array when the backend holds it in another typed array. */
export function floatDataOrCopy(backend: NativeBackend, t: tf.TensorInfo): Float32Array {
  return floatData(backend, t) ?? Float32Array.from(backend.data.get(t.dataId).values as ArrayLike<number>);
}

/** The tensor's Uint8Array when it is a bool tensor (a comparison's output). */
export function boolData(backend: NativeBackend, t: tf.TensorInfo): Uint8Array | null {
  if (t.dtype !== 'bool') return null;
  const values = backend.data.get(t.dataId)?.values;
  return values instanceof Uint8Array ? values : null;
}

/**
 * An uninitialised Float32Array of n elements for a kernel that writes every element, from the backend's pool (a
 * zeroed fresh feature map costs many times the kernel: pages faulted in and cleared on every step).
 */
export function outputF32(backend: NativeBackend, n: number): Float32Array {
  return backend.pool.float32(n);
}

/** Non-empty tensors only: empty shapes are rare and the cpu kernels already handle them. */
export function nonEmpty(shape: number[]): boolean {
  return tf.util.sizeFromShape(shape) > 0;
}

/** The named inputs of the kernels in these groups (each kernel reads its own; tfjs core validated them). */
export interface KernelInputs {
  x: tf.TensorInfo;
  a: tf.TensorInfo;
  b: tf.TensorInfo;
  dy: tf.TensorInfo;
  input: tf.TensorInfo;
  condition: tf.TensorInfo;
  t: tf.TensorInfo;
  e: tf.TensorInfo;
  mean: tf.TensorInfo;
  variance: tf.TensorInfo;
  scale?: tf.TensorInfo;
  offset?: tf.TensorInfo;
}

type NativeAttempt = (args: {
  inputs: KernelInputs & tf.NamedTensorInfoMap;
  backend: NativeBackend;
  attrs: tf.NamedAttrMap;
}) => tf.TensorInfo | null;

/**
 * A 'native' kernel that tries `attempt` (which returns null for what it does not cover) and otherwise runs
 * tfjs-backend-cpu's kernel of the same name on this backend (it is a MathBackendCPU).
 */
export function nativeKernel(kernelName: string, attempt: NativeAttempt): tf.KernelConfig {
  let fallback: tf.KernelFunc | undefined;
  return {
    kernelName,
    backendName: 'native',
    kernelFunc: (args) => {
      const backend = args.backend as NativeBackend;
      const inputs = args.inputs as KernelInputs & tf.NamedTensorInfoMap;
      const out = attempt({ inputs, backend, attrs: args.attrs ?? {} });
      if (out) return out;
      fallback ??= tf.getKernel(kernelName, 'cpu')?.kernelFunc;
      if (!fallback) throw new Error(`fer-native: tfjs-backend-cpu has no '${kernelName}' kernel to fall back to`);
      return fallback(args);
    },
  };
}
