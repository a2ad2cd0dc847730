/** Helpers for the batch-norm folding tests of fer-core, fer-models-esr, fer-models-manet and fer-native. */
import * as tf from '@tensorflow/tfjs-core';

/** Deterministic values in [lo, hi) (LCG): cheap, seedable and the same on every backend. */
export function lcgValues(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return lo + ((hi - lo) * s) / 4294967296;
  });
}

/** What a tfjs-layers `LayerVariable` offers that the randomiser needs. */
export interface WritableWeight {
  readonly originalName: string;
  /** Concrete for a built layer's weight (tfjs-layers types it as a `Shape`, which allows null). */
  readonly shape: readonly (number | null)[];
  write(value: tf.Tensor): unknown;
}

/**
 * Gives every batch norm among `weights` statistics far from the fresh defaults (γ 1, β 0, μ 0, σ² 1), so that a
 * fold which dropped or misplaced any term would show: γ ∈ [0.5, 1.5), β ∈ [−0.1, 0.1), μ ∈ [−0.05, 0.05) and σ² in
 * `variance`. Each tensor gets its own seed, counting up from `seed`.
 */
export function randomizeBatchNormWeights(
  weights: Iterable<WritableWeight>,
  seed: number,
  variance: [number, number],
): void {
  const ranges: [RegExp, number, number][] = [
    [/gamma$/, 0.5, 1.5],
    [/beta$/, -0.1, 0.1],
    [/running_mean$/, -0.05, 0.05],
    [/running_var$/, variance[0], variance[1]],
  ];
  let s = seed;
  for (const w of weights) {
    const r = ranges.find(([re]) => re.test(w.originalName));
    if (!r) continue;
    const shape = w.shape.map((d) => d ?? 0);
    const t = tf.tensor(
      lcgValues(
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
