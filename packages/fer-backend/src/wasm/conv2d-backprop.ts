import * as tf from '@tensorflow/tfjs-core';
import { window2d } from './compose';

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
    throw new Error(`${kernel} on wasm (fer-backend): expected dataFormat 'NHWC', got '${dataFormat}'. Transpose NCHW tensors to NHWC first.`);
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
 * One non-transposed [Ci, M] x [M, Co] matMul per filter tap (M = N·Ho·Wo), so every product takes XNNPACK's fast
 * path; `x` is transposed once to [Ci, N, H, W] so each tap is a (strided) slice, not a transpose.
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
  // Rows the taps read: from -top to (ho-1)·sH + kh - 1 of x's index space (zero outside x).
  const hSpan = (ho - 1) * sH + kh;
  const wSpan = (wo - 1) * sW + kw;
  const xp = window2d(x, -info.padInfo.top, hSpan, -info.padInfo.left, wSpan);
  const xT = tf.transpose(xp, [3, 0, 1, 2]); // [Ci, N, Hs, Ws]
  const m = n * ho * wo;
  const dy2 = tf.reshape(dy, [m, co]);
  if (kh === 1 && kw === 1 && sH === 1 && sW === 1) {
    return tf.reshape(tf.matMul(tf.reshape(xT, [ci, m]), dy2), filterShape);
  }
  const taps: tf.Tensor[] = [];
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      const tap =
        sH === 1 && sW === 1
          ? tf.slice(xT, [0, 0, a, b], [ci, n, ho, wo])
          : tf.stridedSlice(xT, [0, 0, a, b], [ci, n, a + (ho - 1) * sH + 1, b + (wo - 1) * sW + 1], [1, 1, sH, sW]);
      const prod = tf.matMul(tf.reshape(tap, [ci, m]), dy2); // [Ci, Co]
      tap.dispose();
      taps.push(prod);
    }
  }
  return tf.reshape(tf.stack(taps), filterShape);
}

/**
 * dx by phase decomposition: input position q = s·m + r (in padded coordinates) receives dy[m - t] · W[r + s·t]
 * for t = 0..T_r-1, which is a stride-1 'valid' conv2d of a window of dy with the phase's sub-filter, rotated 180°
 * and with in/out channels swapped. Stride 1 is the single phase r = 0 with the whole filter. Every product runs on
 * XNNPACK's conv2d; phases are interleaved with one transpose. Total work equals the forward conv's.
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
  // Phase rows m cover padded positions [top, top + h).
  const mLoH = Math.floor(top / sH);
  const mCountH = Math.floor((top + h - 1) / sH) - mLoH + 1;
  const mLoW = Math.floor(left / sW);
  const mCountW = Math.floor((left + w - 1) / sW) - mLoW + 1;
  const phases: tf.Tensor4D[] = [];
  for (let ry = 0; ry < sH; ry++) {
    for (let rx = 0; rx < sW; rx++) {
      const tH = ry < kh ? Math.ceil((kh - ry) / sH) : 0;
      const tW = rx < kw ? Math.ceil((kw - rx) / sW) : 0;
      if (tH === 0 || tW === 0) {
        phases.push(tf.zeros([n, mCountH, mCountW, ci]));
        continue;
      }
      let sub: tf.Tensor4D = filter;
      if (sH !== 1 || sW !== 1) {
        sub = tf.stridedSlice(filter, [ry, rx, 0, 0], [kh, kw, ci, co], [sH, sW, 1, 1]) as tf.Tensor4D;
      }
      // Rotate 180° and swap channels: [tH, tW, Co, Ci].
      const rot = tf.transpose(tf.reverse(sub, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
      const win = window2d(dy, mLoH - (tH - 1), mCountH + tH - 1, mLoW - (tW - 1), mCountW + tW - 1);
      phases.push(tf.conv2d(win, rot, 1, 'valid'));
    }
  }
  if (phases.length === 1) {
    const p = phases[0];
    return top - mLoH === 0 && left - mLoW === 0 && mCountH === h && mCountW === w
      ? p
      : tf.slice(p, [0, top - mLoH, left - mLoW, 0], [n, h, w, ci]);
  }
  // [sH·sW, N, Mh, Mw, Ci] -> [N, Mh, sH, Mw, sW, Ci] -> [N, Mh·sH, Mw·sW, Ci]: row (m - mLo)·s + r is q - mLo·s.
  const stacked = tf.reshape(tf.stack(phases), [sH, sW, n, mCountH, mCountW, ci]);
  const inter = tf.reshape(tf.transpose(stacked, [2, 3, 0, 4, 1, 5]), [n, mCountH * sH, mCountW * sW, ci]);
  return tf.slice(inter, [0, top - mLoH * sH, left - mLoW * sW, 0], [n, h, w, ci]);
}
