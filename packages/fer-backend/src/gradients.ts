import * as tf from '@tensorflow/tfjs-core';
import { tfjsInternals } from 'fer-core';

/**
 * A lean gradient for `FusedBatchNorm` (what `tf.batchNorm` runs). tfjs core's version tiles rsqrt(var + eps) to
 * the activation's full size and keeps several full-size temporaries alive; this one broadcasts per-channel factors
 * and reduces as it goes. Values match the stock gradient (same formulas):
 *   k = scale / sqrt(var + eps);  dx = dy·k;  dOffset = Σ dy;  dMean = −k·Σ dy;
 *   S = Σ dy·(x − mean);  dScale = S / sqrt(var + eps);  dVariance = −½·scale·S·(var + eps)^(−3/2)
 * (Σ over the axes `mean` is broadcast along; S and Σ dy are computed once and shared). Unlike the stock gradient
 * it also reduces correctly when `mean` has the input's rank with size-1 axes.
 */
export const leanBatchNormGradConfig: tf.GradConfig = {
  kernelName: tf.FusedBatchNorm,
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const g = dy as tf.Tensor;
    const eps = (attrs as unknown as tf.FusedBatchNormAttrs).varianceEpsilon;
    const [x, mean, variance, scale] = saved;
    const paramShape = mean.shape;
    const axes = tf.backend_util.getReductionAxes(paramShape, x.shape);
    // Σ over broadcast axes, back in the parameter's shape.
    const reduce = (t: tf.Tensor): tf.Tensor => (axes.length ? tf.reshape(tf.sum(t, axes), paramShape) : t);
    // The per-channel sums every parameter's gradient shares, computed once here (when training, every input's
    // gradient is requested). Only the small [C] results outlive this tidy; they are freed with the backward pass.
    const [sumDy, sumDyXc] = tf.tidy(() => {
      const xc = tf.sub(x, mean);
      const p = tf.mul(g, xc);
      xc.dispose();
      return [reduce(g), reduce(p)];
    });
    const rstd = () => tf.rsqrt(tf.add(variance, tf.scalar(eps)));
    const scaleOr1 = () => (scale == null ? tf.scalar(1) : scale);
    const k = () => tf.mul(rstd(), scaleOr1());
    return {
      x: () => tf.mul(g, k()),
      mean: () => tf.neg(tf.mul(sumDy, k())),
      variance: () => {
        const r = rstd();
        return tf.mul(tf.mul(sumDyXc, scaleOr1()), tf.mul(tf.mul(tf.mul(r, r), r), tf.scalar(-0.5)));
      },
      scale: () => tf.mul(sumDyXc, rstd()),
      offset: () => tf.clone(sumDy), // a handle of its own: the engine disposes each returned gradient
    };
  },
};

/** dy of a reduction over `axis` of x, broadcast back to x's shape and scaled: no full-size `ones` tensor. */
function reductionGrad(dy: tf.Tensor, x: tf.Tensor, axis: unknown, scaleBySize: boolean): tf.Tensor {
  const axes = tf.util.parseAxisParam((axis ?? x.shape.map((_, i) => i)) as number | number[], x.shape);
  const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const size = axes.reduce((p, a) => p * x.shape[a], 1);
  const g = tf.reshape(dy, expanded);
  return tf.broadcastTo(scaleBySize ? tf.div(g, tf.scalar(size)) : g, x.shape);
}

/**
 * `Sum` and `Mean` gradients that broadcast dy with one Tile instead of building a full-size `ones` tensor in
 * JavaScript and multiplying (and, for Mean, dividing) by it, as tfjs core's versions do; same values.
 */
export const sumGradConfig: tf.GradConfig = {
  kernelName: tf.Sum,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => ({
    x: () => reductionGrad(dy as tf.Tensor, saved[0], (attrs as unknown as tf.SumAttrs).axis, false),
  }),
};
export const meanGradConfig: tf.GradConfig = {
  kernelName: tf.Mean,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => ({
    x: () => reductionGrad(dy as tf.Tensor, saved[0], (attrs as unknown as tf.MeanAttrs).axis, true),
  }),
};

/**
 * Optional kernel a backend may register (fer-native does): `Max`'s gradient below in one pass, inputs `{ dy, y, x }`
 * with dy and y in x's shape with the reduced axes set to 1, bit-identical to the Sub, Step, Sub and Multiply it
 * replaces (four passes over x's size).
 */
export const MAX_GRAD_KERNEL = 'FerMaxGrad';

/**
 * `Max` gradient (CBAM's channel max pooling) as dy · (1 − step(y − x)) instead of tfjs core's dy · cast(equal(x, y)):
 * the same mask (y − x is exactly 0 where x equals the max, positive elsewhere; ties all receive dy, as in core),
 * with cheaper kernels: stock wasm's broadcasting `Equal` and bool → float `Cast` were measured at 23 % of an
 * ESR-CBAM step; with this package's faster comparisons the override still saves ~2 % of a step (3.03 vs 3.09
 * CPU-s at batch 8). Differs from core only where the max is ±inf. Runs {@link MAX_GRAD_KERNEL} when the backend
 * has it.
 */
export const maxGradConfig: tf.GradConfig = {
  kernelName: tf.Max,
  inputsToSave: ['x'],
  outputsToSave: [true],
  gradFunc: (dy, saved, attrs) => {
    const [x, y] = saved;
    const axes = tf.util.parseAxisParam((attrs as unknown as tf.MaxAttrs).reductionIndices, x.shape);
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return {
      x: () => {
        const g = tf.reshape(dy as tf.Tensor, kept);
        const yk = tf.reshape(y, kept);
        if (tfjsInternals.hasKernel(MAX_GRAD_KERNEL) && [g, yk, x].every((t) => t.dtype === 'float32'))
          return tfjsInternals.runKernel(MAX_GRAD_KERNEL, { dy: g, y: yk, x }, {});
        const mask = tf.sub(tf.scalar(1), tf.step(tf.sub(yk, x)));
        return tf.mul(g, mask);
      },
    };
  },
};

/**
 * Optional kernel a backend may register (fer-native does): Relu's gradient dy·step(x) in one pass, inputs
 * `{ dy, x }` of one shape, bit-identical to tfjs core's Step then Multiply.
 */
export const RELU_GRAD_KERNEL = 'FerReluGrad';

/** `Relu` gradient: {@link RELU_GRAD_KERNEL} when the active backend has it, otherwise tfjs core's formula. */
export const reluGradConfig: tf.GradConfig = {
  kernelName: tf.Relu,
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => {
    const [x] = saved;
    const g = dy as tf.Tensor;
    return {
      x: () =>
        tfjsInternals.hasKernel(RELU_GRAD_KERNEL) && x.dtype === 'float32' && g.dtype === 'float32'
          ? tfjsInternals.runKernel(RELU_GRAD_KERNEL, { dy: g, x }, {})
          : tf.mul(g, tf.cast(tf.step(x), 'float32')),
    };
  },
};

/**
 * Optional kernel a backend may register (fer-native does): sum(a·b, axis) for a and b of one shape in one pass,
 * bit-identical to Multiply then Sum. Inputs `{ a, b }`, attrs `{ axis }`.
 */
export const MUL_SUM_KERNEL = 'FerMulSum';

/**
 * `Multiply` gradient: tfjs core's formulas (dA = dy·b summed over the axes a was broadcast along; dB likewise), with
 * the broadcast operand's product and sum as one {@link MUL_SUM_KERNEL} pass when the backend has it (CBAM's gates
 * x·a_ch and x·a_sp: the full-size product is never written). The same values as core's in every case.
 */
export const mulGradConfig: tf.GradConfig = {
  kernelName: tf.Multiply,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved) => {
    const [a, b] = saved;
    const g = dy as tf.Tensor;
    const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const der = (self: tf.Tensor, other: tf.Tensor) => () => {
      const axes = tf.broadcast_util.getReductionAxes(self.shape, outShape);
      if (axes.length === 0) return tf.mul(g, tf.cast(other, 'float32'));
      if (
        tfjsInternals.hasKernel(MUL_SUM_KERNEL) &&
        g.dtype === 'float32' &&
        other.dtype === 'float32' &&
        tf.util.arraysEqual(other.shape, outShape)
      )
        return tf.reshape(tfjsInternals.runKernel(MUL_SUM_KERNEL, { a: g, b: other }, { axis: axes }), self.shape);
      return tf.reshape(tf.sum(tf.mul(g, tf.cast(other, 'float32')), axes), self.shape);
    };
    return { a: der(a, b), b: der(b, a) };
  },
};

const OVERRIDES: readonly tf.GradConfig[] = [
  leanBatchNormGradConfig,
  sumGradConfig,
  meanGradConfig,
  maxGradConfig,
  reluGradConfig,
  mulGradConfig,
];
/** The gradients the overrides replaced (tfjs' stock ones), to put back. */
const stockGradients = new Map<string, tf.GradConfig | undefined>();

/**
 * (Re)registers fer-backend's gradient overrides (`FusedBatchNorm`, `Sum`, `Mean`, `Max`, `Relu`, `Multiply`) into
 * tfjs' global gradient registry: they apply to every model and backend in the process, with the stock gradients'
 * values and less memory or time. Call it after anything that registers the stock gradients (importing
 * `@tensorflow/tfjs-layers` does, at import): `initBackend` does so unless `gradientOverrides: false`. Returns the
 * kernel names.
 */
export function registerGradientOverrides(): string[] {
  for (const g of OVERRIDES) {
    const previous = tfjsInternals.replaceGradient(g);
    if (!OVERRIDES.includes(previous as tf.GradConfig)) stockGradients.set(g.kernelName, previous);
  }
  return OVERRIDES.map((g) => g.kernelName);
}

/**
 * Puts tfjs' stock gradients back where fer-backend's overrides are registered (`initBackend` with `gradientOverrides:
 * false`).
 */
export function restoreStockGradients(): void {
  for (const g of OVERRIDES) {
    if (tf.getGradient(g.kernelName) === g && stockGradients.has(g.kernelName))
      tfjsInternals.restoreGradient(g.kernelName, stockGradients.get(g.kernelName));
  }
}
