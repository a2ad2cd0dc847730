/** Shared by fer-models-esr's and fer-native's fold tests. */
import * as tf from '@tensorflow/tfjs-core';
import type { EsrEnsemble } from 'fer-models-esr';

/** Deterministic values in [lo, hi) (LCG). */
function values(n: number, seed: number, lo: number, hi: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return lo + ((hi - lo) * s) / 4294967296;
  });
}

/**
 * Gives every batch norm of the ensemble (blocks and CBAM spatial gates) statistics far from the fresh defaults
 * (γ 1, β 0, μ 0, σ² 1), so that a fold which dropped or misplaced any term would show: γ ∈ [0.5, 1.5),
 * β ∈ [−0.1, 0.1), μ ∈ [−0.05, 0.05), σ² ∈ [0.02, 0.5).
 */
export function randomizeBatchNorms(esr: EsrEnsemble, seed: number): void {
  const ranges: [RegExp, number, number][] = [
    [/gamma$/, 0.5, 1.5],
    [/beta$/, -0.1, 0.1],
    [/running_mean$/, -0.05, 0.05],
    [/running_var$/, 0.02, 0.5],
  ];
  let s = seed;
  for (const { model } of esr.parts()) {
    for (const w of model.weights) {
      const r = ranges.find(([re]) => re.test(w.originalName));
      if (!r) continue;
      const shape = w.shape as number[];
      const t = tf.tensor(
        values(
          shape.reduce((a, b) => a * b, 1),
          s++,
          r[1],
          r[2],
        ),
        shape,
      );
      w.write(t);
      t.dispose();
    }
  }
}

/** Deterministic images in [0, 1). Caller owns. */
export function testImages(n: number, size: number, seed: number): tf.Tensor4D {
  return tf.tensor4d(values(n * size * size * 3, seed, 0, 1), [n, size, size, 3]);
}
