import * as tf from '@tensorflow/tfjs-core';

/**
 * Sum over `axes`, one axis at a time (last listed first), instead of one flat sequential float32 accumulation.
 * tfjs backends add a flattened reduction in order, so a sum over 4·92·92 values loses ~1e-5 relative; reducing axis
 * by axis keeps partial sums short (≈ the accuracy of PyTorch's vectorised reductions), which the train-mode parity of
 * batch norm and CBAM's global pools needs. Caller owns the result.
 */
export function stagedSum(x: tf.Tensor, axes: readonly number[], keepDims = false): tf.Tensor {
  return tf.tidy(() => {
    const sorted = [...axes].map((a) => (a < 0 ? a + x.rank : a)).sort((a, b) => b - a);
    let y = x;
    for (const a of sorted) y = tf.sum(y, a, true);
    if (keepDims) return y;
    const shape = x.shape.filter((_, i) => !sorted.includes(i));
    return tf.reshape(y, shape);
  });
}

/** Mean over `axes` with `stagedSum`'s accuracy. Caller owns the result. */
export function stagedMean(x: tf.Tensor, axes: readonly number[], keepDims = false): tf.Tensor {
  const n = axes.reduce((p, a) => p * x.shape[a < 0 ? a + x.rank : a], 1);
  return tf.tidy(() => tf.div(stagedSum(x, axes, keepDims), n));
}
