import * as tf from '@tensorflow/tfjs-core';
import { tfjsInternals } from 'fer-core';

/** A kernel body written with tfjs ops; it runs on the active backend (wasm) inside the caller's kernel scope. */
export type ComposedKernel = (inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>) => tf.Tensor;

/** The Tensor behind a kernel input (a bare TensorInfo only arrives from direct runKernel calls). */
export function asTensor(info: tf.TensorInfo): tf.Tensor {
  // The engine passes the op's own Tensor objects; a bare TensorInfo only arrives from direct runKernel calls.
  if ((info as tf.Tensor).rank != null && typeof (info as tf.Tensor).dispose === 'function') return info as tf.Tensor;
  return tfjsInternals.tensorFromInfo(info);
}

/**
 * Wraps a kernel body written with tfjs ops as a `KernelConfig` for `backendName`. The body runs inside `tf.tidy`:
 * intermediates are freed, the returned tensor becomes the kernel's output. Nested ops run with the tape off (the
 * engine's kernel depth is > 0), so they never appear in a gradient tape.
 */
export function composedKernel(kernelName: string, backendName: string, body: ComposedKernel): tf.KernelConfig {
  return {
    kernelName,
    backendName,
    kernelFunc: ({ inputs, attrs }) => {
      const wrapped: Record<string, tf.Tensor> = {};
      const made: tf.Tensor[] = [];
      for (const [k, v] of Object.entries(inputs)) {
        if (v == null) continue;
        const t = asTensor(v);
        if (t !== v) made.push(t);
        wrapped[k] = t;
      }
      try {
        return tf.tidy(() => body(wrapped, attrs as Record<string, unknown>));
      } finally {
        tf.dispose(made);
      }
    },
  };
}

/**
 * `x` [n, h, w, c] cut or zero-extended so that rows [top, top + height) and columns [left, left + width) of the
 * original index space become the result's [0, height) x [0, width). Indices outside `x` read as zero.
 */
export function window2d(x: tf.Tensor4D, top: number, height: number, left: number, width: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const r0 = Math.max(0, top);
  const r1 = Math.min(h, top + height);
  const c0 = Math.max(0, left);
  const c1 = Math.min(w, left + width);
  if (r1 <= r0 || c1 <= c0) return tf.zeros([n, height, width, c]);
  let y = x;
  if (r0 !== 0 || r1 !== h || c0 !== 0 || c1 !== w) y = tf.slice(x, [0, r0, c0, 0], [n, r1 - r0, c1 - c0, c]);
  const pt = r0 - top;
  const pb = top + height - r1;
  const pl = c0 - left;
  const pr = left + width - c1;
  if (pt || pb || pl || pr)
    y = tf.pad(y, [
      [0, 0],
      [pt, pb],
      [pl, pr],
      [0, 0],
    ]);
  return y;
}
