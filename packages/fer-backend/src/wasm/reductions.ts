import * as tf from '@tensorflow/tfjs-core';
import { wasmBackend } from './heap';

type Reducer = 'sum' | 'mean' | 'max';

/**
 * Sum, Mean and Max over a contiguous block of axes that is not innermost (e.g. [0, 1, 2] of NHWC: per-channel
 * batch statistics; [1, 2]: global pooling): out[o, i] = reduce_m x[o, m, i]. The stock wasm kernels first
 * transpose the whole input so the axes become innermost; this is one JS pass over the heap, accumulating
 * in float64 as the cpu backend does. (A ones[1, m] x x[m, i] matMul is faster only when x is reused: XNNPACK
 * packs its weights operand on every new tensor, which costs more than the sum.) Other cases (innermost axes,
 * non-float32) go to the stock kernel, captured at registration.
 */
export function reductionKernel(kind: Reducer, stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x as tf.TensorInfo;
    // Max names its axes `reductionIndices`; Sum and Mean name them `axis`.
    const a = attrs as unknown as { axis?: number | number[]; reductionIndices?: number | number[]; keepDims: boolean };
    const axis = kind === 'max' ? a.reductionIndices : a.axis;
    const keepDims = a.keepDims;
    const rank = x.shape.length;
    const axes = tf.util
      .parseAxisParam(axis ?? x.shape.map((_, i) => i), x.shape)
      .slice()
      .sort((p, q) => p - q);
    const contiguous = axes.length > 0 && axes.every((a, i) => i === 0 || a === axes[i - 1] + 1);
    const last = axes[axes.length - 1];
    if (x.dtype !== 'float32' || !contiguous || last === rank - 1 || tf.util.sizeFromShape(x.shape) === 0) {
      return stock(args);
    }
    const outer = x.shape.slice(0, axes[0]).reduce((p, d) => p * d, 1);
    const mid = x.shape.slice(axes[0], last + 1).reduce((p, d) => p * d, 1);
    const inner = x.shape.slice(last + 1).reduce((p, d) => p * d, 1);
    const outShape = keepDims
      ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !axes.includes(i));
    const be = wasmBackend(backend);
    const out = be.makeOutput(outShape, 'float32');
    const xs = be.typedArrayFromHeap(x) as Float32Array;
    const o = be.typedArrayFromHeap(out) as Float32Array;
    const acc = new Float64Array(inner);
    for (let p = 0; p < outer; p++) {
      const base = p * mid * inner;
      if (kind === 'max') {
        for (let i = 0; i < inner; i++) acc[i] = xs[base + i];
        for (let m = 1; m < mid; m++) {
          const row = base + m * inner;
          for (let i = 0; i < inner; i++) {
            const v = xs[row + i];
            if (v > acc[i] || v !== v) acc[i] = v;
          }
        }
      } else {
        acc.fill(0);
        let m = 0;
        for (; m + 4 <= mid; m += 4) {
          const r = base + m * inner;
          const r2 = r + 2 * inner;
          for (let i = 0; i < inner; i++) acc[i] += xs[r + i] + xs[r + inner + i] + (xs[r2 + i] + xs[r2 + inner + i]);
        }
        for (; m < mid; m++) {
          const row = base + m * inner;
          for (let i = 0; i < inner; i++) acc[i] += xs[row + i];
        }
        if (kind === 'mean') for (let i = 0; i < inner; i++) acc[i] /= mid;
      }
      o.set(acc, p * inner);
    }
    return out;
  };
}

/** Identity without a copy: tfjs tensors are immutable, so the output can share the input's heap buffer. */
export const identityWasm: tf.KernelConfig = {
  kernelName: 'Identity',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => {
    const x = inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') throw new Error('Identity (fer-backend, wasm): string tensors are not supported.');
    wasmBackend(backend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  },
};

/**
 * Cast without the stock kernel's same-buffer `TypedArray.set` (slow in V8 when source and target share the wasm
 * heap): same dtype shares the buffer like Identity; numeric conversions are one typed loop, with the semantics
 * of `TypedArray.set` (truncation for int32, 0/1 for bool inputs). Other dtypes go to the stock kernel.
 */
export function castKernel(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x as tf.TensorInfo;
    const dtype = (attrs as unknown as { dtype: tf.DataType }).dtype;
    const be = wasmBackend(backend);
    if (dtype === x.dtype && dtype !== 'string' && dtype !== 'complex64') {
      be.incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype };
    }
    const numeric = (d: tf.DataType) => d === 'float32' || d === 'int32' || d === 'bool';
    if (!numeric(dtype) || !numeric(x.dtype)) return stock(args);
    const out = be.makeOutput(x.shape, dtype);
    const src = be.typedArrayFromHeap(x);
    const dst = be.typedArrayFromHeap(out);
    const n = src.length;
    if (dtype === 'bool') for (let i = 0; i < n; i++) dst[i] = src[i] !== 0 ? 1 : 0;
    else for (let i = 0; i < n; i++) dst[i] = src[i];
    return out;
  };
}

/**
 * Tile for the broadcast case (every tiled axis has size 1 and the tiled axes are contiguous, as when a reduction's
 * gradient broadcasts dy back): per outer block, the inner row is written once and then doubled with
 * `copyWithin`, i.e. a few memmoves. The stock wasm Tile computes every element's source index and was the
 * slowest kernel of a training step. Other cases go to the stock kernel.
 */
export function tileKernel(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x as tf.TensorInfo;
    const reps = (attrs as unknown as { reps: number[] }).reps;
    const tiled = reps.map((r, i) => (r !== 1 ? i : -1)).filter((i) => i >= 0);
    const contiguous = tiled.every((a, i) => i === 0 || a === tiled[i - 1] + 1);
    if (
      x.dtype !== 'float32' ||
      tiled.length === 0 ||
      !contiguous ||
      tiled.some((a) => x.shape[a] !== 1) ||
      tf.util.sizeFromShape(x.shape) === 0
    ) {
      return stock(args);
    }
    const outShape = x.shape.map((d, i) => d * reps[i]);
    const first = tiled[0];
    const last = tiled[tiled.length - 1];
    const outer = x.shape.slice(0, first).reduce((p, d) => p * d, 1);
    const mid = reps.slice(first, last + 1).reduce((p, d) => p * d, 1);
    const inner = x.shape.slice(last + 1).reduce((p, d) => p * d, 1);
    const be = wasmBackend(backend);
    const out = be.makeOutput(outShape, 'float32');
    const heap = new Float32Array(be.wasm.HEAPU8.buffer);
    const src = be.dataIdMap.get(x.dataId).memoryOffset / 4;
    const dst = be.dataIdMap.get(out.dataId).memoryOffset / 4;
    const block = mid * inner;
    for (let o = 0; o < outer; o++) {
      const d = dst + o * block;
      if (block <= 256) {
        // Small blocks (e.g. a channel-max map broadcast over channels): a typed loop beats memmove calls.
        const s0 = src + o * inner;
        for (let k = 0; k < block; k++) heap[d + k] = heap[s0 + (k % inner)];
        continue;
      }
      heap.copyWithin(d, src + o * inner, src + (o + 1) * inner);
      for (let filled = inner; filled < block; filled *= 2) {
        heap.copyWithin(d + filled, d, d + Math.min(filled, block - filled));
      }
    }
    return out;
  };
}

/**
 * Comparisons (Equal, Greater, ...) whose operands broadcast: the stock wasm kernels' broadcasting path is ~20x
 * slower than their same-shape path (it dominated an ESR-CBAM training step through the Max gradient's
 * `equal(x, max)`). The smaller operand is broadcast first with the fast Tile path, then the stock kernel runs on
 * equal shapes. Cases the Tile path cannot take go to the stock kernel unchanged.
 */
export function comparisonKernel(stock: tf.KernelFunc, tile: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, backend } = args;
    const a = inputs.a as tf.TensorInfo;
    const b = inputs.b as tf.TensorInfo;
    if (a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i])) return stock(args);
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const big = tf.util.sizeFromShape(outShape);
    const full = (t: tf.TensorInfo) => tf.util.sizeFromShape(t.shape) === big && t.shape.length === outShape.length;
    const small = full(a) ? b : full(b) ? a : null;
    if (!small || small.dtype !== 'float32') return stock(args);
    // Same rank as the output (a view of the same buffer), then tiled to the output's shape.
    const padded = [...new Array(outShape.length - small.shape.length).fill(1), ...small.shape];
    const view: tf.TensorInfo = { dataId: small.dataId, shape: padded, dtype: small.dtype };
    const reps = outShape.map((d, i) => d / padded[i]);
    const wide = tile({ inputs: { x: view }, backend, attrs: { reps } as unknown as tf.NamedAttrMap }) as tf.TensorInfo;
    try {
      const wideInputs = small === a ? { a: wide, b } : { a, b: wide };
      return stock({ ...args, inputs: wideInputs });
    } finally {
      (backend as unknown as { disposeData(id: tf.DataId): void }).disposeData(wide.dataId);
    }
  };
}
