import * as tf from '@tensorflow/tfjs-core';
import { window2d } from './compose';
import { col2im, interleavePhases, rotatedSubFilter, tapRows } from './heap';

type Pad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];

interface ConvGeometry {
  info: tf.backend_util.Conv2DInfo;
  sH: number;
  sW: number;
}

function geometry(
  kernel: string,
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: Record<string, unknown>,
): ConvGeometry {
  const dataFormat = (attrs.dataFormat as string | undefined) ?? 'NHWC';
  if (dataFormat !== 'NHWC') {
    throw new Error(
      `${kernel} on wasm (fer-backend): expected dataFormat 'NHWC', got '${dataFormat}'. Transpose NCHW tensors to NHWC first.`,
    );
  }
  const dil = attrs.dilations as number | [number, number] | undefined;
  if (dil != null && (Array.isArray(dil) ? dil.some((d) => d !== 1) : dil !== 1)) {
    throw new Error(`${kernel} on wasm (fer-backend): only dilation 1 is supported, got ${JSON.stringify(dil)}.`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs.strides as number | [number, number],
    1,
    attrs.pad as Pad,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    false,
    'channelsLast',
  );
  return { info, sH: info.strideHeight, sW: info.strideWidth };
}

/**
 * dW[a, b, i, o] = Σ_{n, y, x} xpad[n, y·sH + a, x·sW + b, i] · dy[n, y, x, o].
 * `x` is transposed once to [Ci, N, H, W]; per filter tap, the tap's window is copied out as [Ci, M]
 * (M = N·Ho·Wo; row runs on the wasm heap) and multiplied by dy [M, Co]. Both matMul operands are non-transposed
 * (XNNPACK's fast path) and dy, the packed "weights" operand, is the same tensor for every tap. No buffer is
 * larger than the input.
 */
export function conv2dBackpropFilterBody(inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): tf.Tensor {
  const x = inputs.x as tf.Tensor4D;
  const dy = inputs.dy as tf.Tensor4D;
  const filterShape = attrs.filterShape as [number, number, number, number];
  const { info, sH, sW } = geometry('Conv2DBackpropFilter', x.shape, filterShape, attrs);
  const [kh, kw, ci, co] = filterShape;
  const [n, ho, wo] = dy.shape;
  if (ho !== info.outHeight || wo !== info.outWidth || dy.shape[3] !== co) {
    throw new Error(
      `Conv2DBackpropFilter: dy has shape [${dy.shape.join(', ')}], expected [${n}, ${info.outHeight}, ${info.outWidth}, ${co}] for this input, filter, stride and padding.`,
    );
  }
  const m = n * ho * wo;
  const dy2 = tf.reshape(dy, [m, co]);
  // Rows the taps read: from -top to (ho-1)·sH + kh - 1 of x's index space (zero outside x).
  const hs = (ho - 1) * sH + kh;
  const ws = (wo - 1) * sW + kw;
  const xp = window2d(x, -info.padInfo.top, hs, -info.padInfo.left, ws);
  if (kh === 1 && kw === 1 && sH === 1 && sW === 1) {
    return tf.reshape(tf.matMul(tf.transpose(tf.reshape(xp, [m, ci])), dy2), filterShape);
  }
  // [Ci·N, Hs, Ws, 1]: each (channel, image) plane is one single-channel "image" for tapRows.
  const planes = tf.reshape(tf.transpose(xp, [3, 0, 1, 2]), [ci * n, hs, ws, 1]) as tf.Tensor4D;
  // Taps are grouped so one matMul has up to ~256 rows: a 3-channel first layer becomes one [kh·kw·3, M] x [M, Co]
  // product instead of kh·kw products with 3 rows each (XNNPACK is inefficient below a few rows).
  const all: [number, number][] = [];
  for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) all.push([a, b]);
  const group = Math.max(
    1,
    Math.min(all.length, Math.floor(TAP_GROUP_ROWS / ci), Math.floor(TAP_GROUP_FLOATS / (ci * m))),
  );
  const parts: tf.Tensor[] = [];
  for (let t = 0; t < all.length; t += group) {
    const taps = all.slice(t, t + group);
    const rows = tapRows(planes, taps, sH, sW, ho, wo); // [taps·Ci·M, 1]
    parts.push(tf.matMul(tf.reshape(rows, [taps.length * ci, m]), dy2)); // [taps·Ci, Co]
    rows.dispose();
  }
  return tf.reshape(parts.length === 1 ? parts[0] : tf.concat(parts, 0), filterShape);
}

/** Largest col2im buffer (floats) for the matMul form of Conv2DBackpropInput. */
const COL2IM_MAX_FLOATS = 16 * 2 ** 20;

/** Rows per backprop-filter matMul (taps are grouped up to this many rows, and this many floats of copies). */
const TAP_GROUP_ROWS = 256;
const TAP_GROUP_FLOATS = 16 * 2 ** 20;

/**
 * dx by phase decomposition: input position q = s·m + r (in padded coordinates) receives dy[m - t] · W[r + s·t]
 * for t = 0..T_r-1, which is a stride-1 'valid' conv2d of a window of dy with the phase's sub-filter, rotated 180°
 * and with in/out channels swapped. Stride 1 is the single phase r = 0 with the whole filter. Every product runs on
 * XNNPACK's conv2d; phases are written to their strided places in one heap pass. Total work equals the forward conv's.
 */
export function conv2dBackpropInputBody(inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): tf.Tensor {
  const dy = inputs.dy as tf.Tensor4D;
  const filter = inputs.filter as tf.Tensor4D;
  const inputShape = attrs.inputShape as [number, number, number, number];
  const { info, sH, sW } = geometry('Conv2DBackpropInput', inputShape, filter.shape, attrs);
  const [kh, kw, ci, co] = filter.shape;
  const [n, h, w] = inputShape;
  if (dy.shape[1] !== info.outHeight || dy.shape[2] !== info.outWidth || dy.shape[3] !== co) {
    throw new Error(
      `Conv2DBackpropInput: dy has shape [${dy.shape.join(', ')}], expected [${n}, ${info.outHeight}, ${info.outWidth}, ${co}] for this input, filter, stride and padding.`,
    );
  }
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const m = n * info.outHeight * info.outWidth;
  const taps = kh * kw * ci;
  // Deep layers (big filter, few positions): rotating and re-packing the filter for a conv costs more than the
  // conv. Then cols = W [kh·kw·Ci, Co] x dyᵀ [Co, M] (the filter is used as it is) and col2im sums them in place.
  if (2 * taps * co > 2 * m * co + taps * m && taps * m <= COL2IM_MAX_FLOATS) {
    const dyT = tf.transpose(tf.reshape(dy, [m, co])); // [Co, M]
    const cols = tf.matMul(tf.reshape(filter, [taps, co]), dyT) as tf.Tensor2D; // [kh·kw·Ci, M]
    return col2im(cols, [n, h, w, ci], kh, kw, sH, sW, top, left, info.outHeight, info.outWidth);
  }
  // Phase rows m cover padded positions [top, top + h).
  const mLoH = Math.floor(top / sH);
  const mCountH = Math.floor((top + h - 1) / sH) - mLoH + 1;
  const mLoW = Math.floor(left / sW);
  const mCountW = Math.floor((left + w - 1) / sW) - mLoW + 1;
  const phases: (tf.Tensor4D | null)[] = [];
  for (let ry = 0; ry < sH; ry++) {
    for (let rx = 0; rx < sW; rx++) {
      const tH = ry < kh ? Math.ceil((kh - ry) / sH) : 0;
      const tW = rx < kw ? Math.ceil((kw - rx) / sW) : 0;
      if (tH === 0 || tW === 0) {
        phases.push(null); // no filter tap lands on this phase: its positions get zero
        continue;
      }
      const rot = rotatedSubFilter(filter, ry, rx, sH, sW); // [tH, tW, Co, Ci]
      phases.push(convOverWindow(dy, rot, mLoH - (tH - 1), mCountH + tH - 1, mLoW - (tW - 1), mCountW + tW - 1));
      rot.dispose();
    }
  }
  if (sH === 1 && sW === 1) {
    const p = phases[0]!;
    return top - mLoH === 0 && left - mLoW === 0 && mCountH === h && mCountW === w
      ? p
      : tf.slice(p, [0, top - mLoH, left - mLoW, 0], [n, h, w, ci]);
  }
  return interleavePhases(phases, sH, sW, [n, h, w, ci], mLoH, mLoW, top, left);
}

/**
 * A stride-1 'valid' conv2d over rows [top, top + height) x columns [left, left + width) of `x`, reading zeros
 * outside it: the part inside is sliced (only when the window cuts into x), the part outside becomes the conv's
 * own explicit padding, so XNNPACK pads on the fly instead of tfjs copying a padded tensor.
 */
function convOverWindow(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  top: number,
  height: number,
  left: number,
  width: number,
): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [fh, fw, , co] = filter.shape;
  const r0 = Math.max(0, top);
  const r1 = Math.min(h, top + height);
  const c0 = Math.max(0, left);
  const c1 = Math.min(w, left + width);
  if (r1 <= r0 || c1 <= c0) return tf.zeros([n, height - fh + 1, width - fw + 1, co]);
  const inside =
    r0 !== 0 || r1 !== h || c0 !== 0 || c1 !== w ? tf.slice(x, [0, r0, c0, 0], [n, r1 - r0, c1 - c0, c]) : x;
  const pad: [[number, number], [number, number], [number, number], [number, number]] = [
    [0, 0],
    [r0 - top, top + height - r1],
    [c0 - left, left + width - c1],
    [0, 0],
  ];
  return tf.conv2d(inside, filter, 1, pad);
}
