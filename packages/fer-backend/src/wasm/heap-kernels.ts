import * as tf from '@tensorflow/tfjs-core';
import { wasmBackend } from './heap';

/**
 * MaxPoolGrad over the wasm heap in JS. The stock wasm kernel gives wrong values for some shapes (seen on 2x2/2 and
 * 3x3/2 pools); this one routes each dy entry to the first maximum of its window in row-major order, as the cpu
 * backend does (ties and all), and accumulates where windows overlap. Padding cells never win.
 */
export const maxPoolGradWasm: tf.KernelConfig = {
  kernelName: 'MaxPoolGrad',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as tf.MaxPoolGradAttrs;
    const info = tf.backend_util.computePool2DInfo(
      input.shape as [number, number, number, number],
      filterSize,
      strides,
      1,
      pad,
      dimRoundingMode,
    );
    if (dy.shape[1] !== info.outHeight || dy.shape[2] !== info.outWidth) {
      throw new Error(
        `MaxPoolGrad: dy has shape [${dy.shape.join(', ')}], expected spatial ${info.outHeight}x${info.outWidth}.`,
      );
    }
    const b = wasmBackend(backend);
    // Allocate first: a heap allocation may grow (and detach) the heap buffer that the views below read.
    const out = b.makeOutput(input.shape, 'float32');
    const x = b.typedArrayFromHeap(input) as Float32Array;
    const g = b.typedArrayFromHeap(dy) as Float32Array;
    const dx = b.typedArrayFromHeap(out) as Float32Array;
    dx.fill(0);
    const [n, h, w, c] = input.shape;
    const { outHeight: ho, outWidth: wo, strideHeight: sh, strideWidth: sw } = info;
    const { filterHeight: kh, filterWidth: kw } = info;
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    if (kh === 2 && kw === 2 && sh === 2 && sw === 2 && top === 0 && left === 0) {
      maxPoolGrad2x2(x, g, dx, n, h, w, c, ho, wo);
      return out;
    }
    for (let bn = 0; bn < n; bn++) {
      const xb = bn * h * w * c;
      for (let oy = 0; oy < ho; oy++) {
        const ya = Math.max(0, oy * sh - top);
        const yb = Math.min(h, oy * sh - top + kh);
        for (let ox = 0; ox < wo; ox++) {
          const xa = Math.max(0, ox * sw - left);
          const xe = Math.min(w, ox * sw - left + kw);
          const gb = ((bn * ho + oy) * wo + ox) * c;
          for (let ch = 0; ch < c; ch++) {
            let bv = -Infinity;
            let bi = -1;
            for (let iy = ya; iy < yb; iy++) {
              let p = xb + (iy * w + xa) * c + ch;
              for (let ix = xa; ix < xe; ix++, p += c) {
                const v = x[p];
                if (bi < 0 || v > bv) {
                  bv = v;
                  bi = p;
                }
              }
            }
            if (bi >= 0) dx[bi] += g[gb + ch];
          }
        }
      }
    }
    return out;
  },
};

/** The 2x2, stride-2, unpadded case (ESR's pools): windows never overlap, so each dy lands on one cell. */
function maxPoolGrad2x2(
  x: Float32Array,
  g: Float32Array,
  dx: Float32Array,
  n: number,
  h: number,
  w: number,
  c: number,
  ho: number,
  wo: number,
): void {
  const row = w * c;
  for (let bn = 0; bn < n; bn++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        const p00 = ((bn * h + 2 * oy) * w + 2 * ox) * c;
        const gb = ((bn * ho + oy) * wo + ox) * c;
        for (let ch = 0; ch < c; ch++) {
          // First maximum in row-major window order, as cpu: ties keep the earlier cell.
          let bi = p00 + ch;
          let bv = x[bi];
          const i01 = bi + c;
          if (x[i01] > bv) {
            bv = x[i01];
            bi = i01;
          }
          const i10 = p00 + ch + row;
          if (x[i10] > bv) {
            bv = x[i10];
            bi = i10;
          }
          const i11 = i10 + c;
          if (x[i11] > bv) bi = i11;
          dx[bi] += g[gb + ch];
        }
      }
    }
  }
}

/**
 * UnsortedSegmentSum (the gradient of gather) over the wasm heap: out[s, ...] = Σ_{i: ids[i] = s} x[i, ...].
 * `segmentIds` indexes x's leading axis (the only form tfjs' gather gradient produces); ids outside
 * [0, numSegments) are dropped, as in TensorFlow.
 */
export const unsortedSegmentSumWasm: tf.KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
    const { numSegments } = attrs as unknown as tf.UnsortedSegmentSumAttrs;
    if (x.dtype !== 'float32' && x.dtype !== 'int32') {
      throw new Error(
        `UnsortedSegmentSum on wasm (fer-backend): expected x of dtype float32 or int32, got ${x.dtype}.`,
      );
    }
    const idsShape = segmentIds.shape;
    if (idsShape.length > x.shape.length || idsShape.some((d, i) => d !== x.shape[i])) {
      throw new Error(
        `UnsortedSegmentSum: segmentIds shape [${idsShape.join(', ')}] must be a prefix of x's shape [${x.shape.join(', ')}].`,
      );
    }
    const b = wasmBackend(backend);
    const inner = x.shape.slice(idsShape.length).reduce((p, d) => p * d, 1);
    const outShape = [numSegments, ...x.shape.slice(idsShape.length)];
    const out = b.makeOutput(outShape, x.dtype);
    const xs = b.typedArrayFromHeap(x);
    const ids = b.typedArrayFromHeap(segmentIds);
    const o = b.typedArrayFromHeap(out);
    o.fill(0);
    const count = ids.length;
    for (let i = 0; i < count; i++) {
      const s = ids[i];
      if (s < 0 || s >= numSegments) continue;
      const src = i * inner;
      const dst = s * inner;
      for (let j = 0; j < inner; j++) o[dst + j] += xs[src + j];
    }
    return out;
  },
};
