import * as tf from '@tensorflow/tfjs-core';
import { expectArrayClose } from 'fer-test-utils';

/** The acceptance tolerance: 1e-4 relative with a 1e-5 absolute floor. */
export const KERNEL_TOL = { rtol: 1e-4, atol: 1e-5 };

/** Small seeded generator (mulberry32) so every randomised case is reproducible from its seed. */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  odd(lo: number, hi: number): number {
    const v = this.int(lo, hi);
    return v % 2 === 1 ? v : v + 1;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  /** Uniform values in [-scale, scale). */
  values(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (this.next() * 2 - 1) * scale;
    return out;
  }
}

export interface HostTensor {
  shape: number[];
  values: Float32Array | Int32Array;
  dtype?: 'float32' | 'int32';
}

export function host(shape: number[], values: Float32Array | Int32Array): HostTensor {
  return { shape, values, dtype: values instanceof Int32Array ? 'int32' : 'float32' };
}

/** Runs one kernel on `backend` from host inputs; returns the output values and shape. Leaves no tensors behind. */
export function runKernelOn(
  backend: string,
  kernel: string,
  inputs: Record<string, HostTensor>,
  attrs: Record<string, unknown>,
): { shape: number[]; values: Float32Array } {
  tf.setBackend(backend);
  const ts: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(inputs)) ts[k] = tf.tensor(v.values, v.shape, v.dtype ?? 'float32');
  const before = tf.memory().numTensors;
  const out = tf.engine().runKernel(kernel, ts, attrs as tf.NamedAttrMap) as tf.Tensor;
  const res = { shape: out.shape.slice(), values: out.dataSync() as Float32Array };
  out.dispose();
  const after = tf.memory().numTensors;
  tf.dispose(Object.values(ts));
  if (after !== before) throw new Error(`${kernel} on ${backend} leaked ${after - before} tensors.`);
  return res;
}

/** Asserts the wasm kernel (fer-backend's) matches the cpu backend's stock kernel within KERNEL_TOL, leak-free. */
export function expectKernelMatchesCpu(
  kernel: string,
  inputs: Record<string, HostTensor>,
  attrs: Record<string, unknown>,
  label: string,
): void {
  const ref = runKernelOn('cpu', kernel, inputs, attrs);
  const got = runKernelOn('wasm', kernel, inputs, attrs);
  expect(got.shape).toEqual(ref.shape);
  expectArrayClose(got.values, ref.values, KERNEL_TOL, `${kernel} ${label}`);
}
