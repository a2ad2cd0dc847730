import * as tf from '@tensorflow/tfjs-core';

/**
 * A lean gradient for `FusedBatchNorm` (what `tf.batchNorm` runs). tfjs core's version tiles rsqrt(var + eps) to
 * the activation's full size and keeps several full-size temporaries alive; this one broadcasts per-channel factors
 * and reduces as it goes. Values match the stock gradient (same formulas):
 *   k = scale / sqrt(var + eps);  dx = dy·k;  dOffset = Σ dy;  dMean = −k·Σ dy;
 *   S = Σ dy·(x − mean);  dScale = S / sqrt(var + eps);  dVariance = −½·scale·S·(var + eps)^(−3/2)
 * (Σ over the axes `mean` is broadcast along). Unlike the stock gradient it also reduces correctly when `mean` has
 * the input's rank with size-1 axes.
 */
export const leanBatchNormGradConfig: tf.GradConfig = {
  kernelName: 'FusedBatchNorm',
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const g = dy as tf.Tensor;
    const eps = (attrs as unknown as { varianceEpsilon: number }).varianceEpsilon;
    const [x, mean, variance, scale] = saved;
    const paramShape = mean.shape;
    const axes = tf.backend_util.getReductionAxes(paramShape, x.shape);
    // Σ over broadcast axes, back in the parameter's shape.
    const reduce = (t: tf.Tensor): tf.Tensor => (axes.length ? tf.reshape(tf.sum(t, axes), paramShape) : t);
    const rstd = () => tf.rsqrt(tf.add(variance, tf.scalar(eps)));
    const scaleOr1 = () => (scale == null ? tf.scalar(1) : scale);
    const k = () => tf.mul(rstd(), scaleOr1());
    const sumDyXc = () =>
      tf.tidy(() => {
        const xc = tf.sub(x, mean);
        const p = tf.mul(g, xc);
        xc.dispose();
        return reduce(p);
      });
    return {
      x: () => tf.mul(g, k()),
      mean: () => tf.neg(tf.mul(reduce(g), k())),
      variance: () => {
        const r = rstd();
        return tf.mul(tf.mul(sumDyXc(), scaleOr1()), tf.mul(tf.mul(tf.mul(r, r), r), tf.scalar(-0.5)));
      },
      scale: () => tf.mul(sumDyXc(), rstd()),
      offset: () => reduce(g),
    };
  },
};

/**
 * (Re)registers fer-backend's gradient overrides into tfjs' global gradient registry. Call it after anything that
 * registers the stock gradients (importing `@tensorflow/tfjs-layers` does, at import): `initBackend` does so.
 */
export function registerGradientOverrides(): string[] {
  tf.registerGradient(leanBatchNormGradConfig);
  return [leanBatchNormGradConfig.kernelName];
}
