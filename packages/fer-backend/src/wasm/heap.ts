import * as tf from '@tensorflow/tfjs-core';
import { tfjsInternals } from 'fer-core';

/** The slice of BackendWasm that fer-backend uses (tfjs-backend-wasm does not export the class type). */
export type WasmHeapBackend = tfjsInternals.WasmBackendInternals;

/** `backend` (default: the active one) as the wasm backend, whose heap the kernels here read and write. */
export function wasmBackend(backend: unknown = tf.backend()): WasmHeapBackend {
  const b = tfjsInternals.wasmBackendInternals(backend);
  if (!b) throw new Error(`fer-backend: a wasm kernel ran while the active backend is '${tf.getBackend()}'.`);
  return b;
}

/**
 * The rows conv filter taps read from `x` [n, h, w, c] (already padded so that the window starts at (0, 0)): for each
 * tap (a, b) in `taps`, x[:, a + s_h·y, b + s_w·x, :] for y < outH, x < outW, as consecutive
 * [n·outH·outW, c] blocks of one fresh [taps·n·outH·outW, c] tensor. Copies contiguous runs on the wasm heap
 * (whole output rows when the width stride is 1), far cheaper than tfjs' Slice/StridedSlice here. Caller owns it.
 */
export function tapRows(
  x: tf.Tensor4D,
  taps: readonly (readonly [number, number])[],
  sH: number,
  sW: number,
  outH: number,
  outW: number,
): tf.Tensor2D {
  const [n, h, w, c] = x.shape;
  for (const [a, b] of taps) {
    if (a + sH * (outH - 1) >= h || b + sW * (outW - 1) >= w) {
      throw new Error(`tapRows: tap (${a}, ${b}) with ${outH}x${outW} outputs reads outside a ${h}x${w} input.`);
    }
  }
  const be = wasmBackend();
  const out = be.makeOutput([taps.length * n * outH * outW, c], 'float32');
  // After the allocation: it may have grown (and replaced) the heap buffer.
  const heap = new Float32Array(be.wasm.HEAPU8.buffer);
  const src = be.dataIdMap.get(x.dataId).memoryOffset / 4;
  let dst = be.dataIdMap.get(out.dataId).memoryOffset / 4;
  const rowLen = outW * c;
  for (const [a, b] of taps) {
    for (let bn = 0; bn < n; bn++) {
      for (let y = 0; y < outH; y++) {
        const rowStart = src + ((bn * h + a + sH * y) * w + b) * c;
        if (sW === 1 && rowLen >= 512) {
          heap.copyWithin(dst, rowStart, rowStart + rowLen);
          dst += rowLen;
        } else if (sW === 1) {
          // Short runs: a typed loop beats copyWithin's per-call overhead.
          for (let k = 0; k < rowLen; k++) heap[dst + k] = heap[rowStart + k];
          dst += rowLen;
        } else if (c >= 64) {
          for (let xx = 0; xx < outW; xx++) {
            const p = rowStart + sW * xx * c;
            heap.copyWithin(dst, p, p + c);
            dst += c;
          }
        } else {
          for (let xx = 0; xx < outW; xx++) {
            const p = rowStart + sW * xx * c;
            for (let k = 0; k < c; k++) heap[dst++] = heap[p + k];
          }
        }
      }
    }
  }
  return tfjsInternals.tensorFromInfo<tf.Tensor2D>(out);
}

/**
 * The sub-filter of `filter` [kh, kw, Ci, Co] for output phase (ry, rx) of a stride-(sH, sW) conv, rotated 180°
 * and with in/out channels swapped: out[t, u, o, i] = filter[ry + sH·(tH−1−t), rx + sW·(tW−1−u), i, o], shape
 * [tH, tW, Co, Ci]. One pass over the heap instead of stridedSlice + reverse + transpose. Caller owns the result.
 */
export function rotatedSubFilter(filter: tf.Tensor4D, ry: number, rx: number, sH: number, sW: number): tf.Tensor4D {
  const [kh, kw, ci, co] = filter.shape;
  const tH = Math.ceil((kh - ry) / sH);
  const tW = Math.ceil((kw - rx) / sW);
  const be = wasmBackend();
  const out = be.makeOutput([tH, tW, co, ci], 'float32');
  const heap = new Float32Array(be.wasm.HEAPU8.buffer);
  const src = be.dataIdMap.get(filter.dataId).memoryOffset / 4;
  const dst = be.dataIdMap.get(out.dataId).memoryOffset / 4;
  const block = ci * co;
  for (let t = 0; t < tH; t++) {
    for (let u = 0; u < tW; u++) {
      const from = src + ((ry + sH * (tH - 1 - t)) * kw + (rx + sW * (tW - 1 - u))) * block;
      const to = dst + (t * tW + u) * block;
      for (let i = 0; i < ci; i++) {
        const row = from + i * co;
        for (let o = 0; o < co; o++) heap[to + o * ci + i] = heap[row + o];
      }
    }
  }
  return tfjsInternals.tensorFromInfo<tf.Tensor4D>(out);
}

/**
 * Assembles a strided conv's input gradient from its phases: phase (ry, rx) [n, mH, mW, c] holds padded positions
 * q = (mLoH + i)·sH + ry, p = (mLoW + j)·sW + rx; input row y = q − top, column x = p − left. `null` phases are
 * all zero. One pass writing channel runs straight to their place, instead of stack + 6-D transpose + slice.
 * Caller owns the result.
 */
export function interleavePhases(
  phases: (tf.Tensor4D | null)[],
  sH: number,
  sW: number,
  outShape: [number, number, number, number],
  mLoH: number,
  mLoW: number,
  top: number,
  left: number,
): tf.Tensor4D {
  const [n, h, w, c] = outShape;
  const be = wasmBackend();
  const out = be.makeOutput(outShape, 'float32');
  const heap = new Float32Array(be.wasm.HEAPU8.buffer);
  const dst = be.dataIdMap.get(out.dataId).memoryOffset / 4;
  if (phases.some((p) => p == null)) heap.fill(0, dst, dst + n * h * w * c);
  for (let ry = 0; ry < sH; ry++) {
    for (let rx = 0; rx < sW; rx++) {
      const ph = phases[ry * sW + rx];
      if (!ph) continue;
      const [, mH, mW] = ph.shape;
      const src = be.dataIdMap.get(ph.dataId).memoryOffset / 4;
      for (let bn = 0; bn < n; bn++) {
        for (let i = 0; i < mH; i++) {
          const y = (mLoH + i) * sH + ry - top;
          if (y < 0 || y >= h) continue;
          for (let j = 0; j < mW; j++) {
            const x = (mLoW + j) * sW + rx - left;
            if (x < 0 || x >= w) continue;
            const from = src + ((bn * mH + i) * mW + j) * c;
            const to = dst + ((bn * h + y) * w + x) * c;
            for (let k = 0; k < c; k++) heap[to + k] = heap[from + k];
          }
        }
      }
    }
  }
  return tfjsInternals.tensorFromInfo<tf.Tensor4D>(out);
}

/**
 * col2im for a conv's input gradient: `cols` [kh·kw·Ci, M] (M = n·outH·outW) holds, per filter tap and input
 * channel, the contribution to the input pixel that tap reads at each output position; they are summed into a
 * zeroed [n, h, w, Ci] at y·s + a − top, x·s + b − left. Caller owns the result.
 */
export function col2im(
  cols: tf.Tensor2D,
  outShape: [number, number, number, number],
  kh: number,
  kw: number,
  sH: number,
  sW: number,
  top: number,
  left: number,
  outH: number,
  outW: number,
): tf.Tensor4D {
  const [n, h, w, ci] = outShape;
  const m = n * outH * outW;
  const be = wasmBackend();
  const out = be.makeOutput(outShape, 'float32');
  const heap = new Float32Array(be.wasm.HEAPU8.buffer);
  const src = be.dataIdMap.get(cols.dataId).memoryOffset / 4;
  const dst = be.dataIdMap.get(out.dataId).memoryOffset / 4;
  heap.fill(0, dst, dst + n * h * w * ci);
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      const tapRow = src + (a * kw + b) * ci * m;
      for (let bn = 0; bn < n; bn++) {
        for (let y = 0; y < outH; y++) {
          const iy = y * sH + a - top;
          if (iy < 0 || iy >= h) continue;
          for (let x = 0; x < outW; x++) {
            const ix = x * sW + b - left;
            if (ix < 0 || ix >= w) continue;
            const to = dst + ((bn * h + iy) * w + ix) * ci;
            const from = tapRow + (bn * outH + y) * outW + x;
            for (let c = 0; c < ci; c++) heap[to + c] += heap[from + c * m];
          }
        }
      }
    }
  }
  return tfjsInternals.tensorFromInfo<tf.Tensor4D>(out);
}
