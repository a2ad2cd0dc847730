/**
 * The batch-averaged RBF similarity between heads (docs/method.md#similarity), vectorised over all pairs with an
 * explicit gradient whose arithmetic mirrors PyTorch autograd through the reference's per-pair loop.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op';
import { DiversityInputError, expected, parseChoice } from './errors';

export type Diagonal = 'zero' | 'one';
export type Distance = 'sum' | 'mean';

export interface SimilarityOptions {
  /** RBF width γ in exp(−γ·d). Default 10 (the reference's hard-coded value). */
  gamma?: number;
  /** S_ii: 'zero' (the reference) or 'one' (a proper kernel Gram matrix). Default 'zero'. */
  diagonal?: Diagonal;
  /**
   * d = squared Euclidean distance 'sum'med over all feature entries (the reference), or its 'mean' over the
   * entries, which makes γ independent of the feature size. Default 'sum'.
   */
  distance?: Distance;
}

export const DIAGONALS: readonly Diagonal[] = ['zero', 'one'];
export const DISTANCES: readonly Distance[] = ['sum', 'mean'];

/** Checks `heads` is [n, B, ...features] float32 with every dimension ≥ 1; returns n, B and the feature count. */
export function checkHeads(heads: unknown, what = 'heads'): { n: number; b: number; f: number } {
  if (!(heads instanceof tf.Tensor)) throw expected(what, 'a tf.Tensor of shape [n, batch, ...features]', heads);
  const s: number[] = heads.shape;
  if (s.length < 3 || s.some((d) => d < 1)) {
    throw new DiversityInputError(
      `Expected ${what} of shape [n, batch, ...features] (rank ≥ 3, no empty dimension), but got [${s.join(', ')}]. ` +
        'Stack per-branch tensors with headsFrom([...]) or use a head helper (esrSpatialHeads, manetChannelHeads, ...).',
    );
  }
  if (heads.dtype !== 'float32') {
    throw new DiversityInputError(
      `Expected ${what} to be float32, but got ${heads.dtype}. Cast with tf.cast(x, 'float32').`,
    );
  }
  return { n: s[0], b: s[1], f: s.slice(2).reduce((p, d) => p * d, 1) };
}

export interface ResolvedSimilarity {
  gamma: number;
  diagonal: Diagonal;
  distance: Distance;
}

export function resolveSimilarity(o: SimilarityOptions, defaults: ResolvedSimilarity): ResolvedSimilarity {
  const gamma = o.gamma ?? defaults.gamma;
  if (typeof gamma !== 'number' || !Number.isFinite(gamma) || gamma <= 0) {
    throw expected(
      'gamma',
      'a finite number > 0',
      gamma,
      'The reference uses 10 (sum distance); the dpp preset uses 1 (mean distance).',
    );
  }
  return {
    gamma,
    diagonal: parseChoice('diagonal', o.diagonal ?? defaults.diagonal, DIAGONALS),
    distance: parseChoice('distance', o.distance ?? defaults.distance, DISTANCES),
  };
}

/** Pairwise squared distances d [n, n, B] of x [n, B, F] (direct differences: no cancellation for close heads). */
export function pairwiseDistances(x: tf.Tensor3D, distance: Distance): tf.Tensor3D {
  return tf.tidy(() => {
    const diff = tf.sub(tf.expandDims(x, 1), tf.expandDims(x, 0)); // [n, n, B, F]: x_i − x_j
    const d = tf.sum(tf.square(diff), -1);
    return (distance === 'mean' ? tf.div(d, x.shape[2]) : d) as tf.Tensor3D;
  });
}

/**
 * Similarity matrix S [n, n] of `heads` [n, B, ...features]: S_ij = (1/B) Σ_b exp(−γ·d_ij(b)) for i ≠ j, and
 * S_ii = 0 or 1 (`diagonal`). Differentiable with respect to `heads` without any registered gradient (custom
 * gradient; the diagonal is a constant). Defaults are the reference's (γ 10, zero diagonal, summed distance).
 * The caller owns the result.
 */
export function similarityMatrix(heads: tf.Tensor, options: SimilarityOptions = {}): tf.Tensor2D {
  const { n, b, f } = checkHeads(heads);
  const o = resolveSimilarity(options, { gamma: 10, diagonal: 'zero', distance: 'sum' });
  return customOp([heads], ([h], save) => {
    const x = tf.reshape(h, [n, b, f]) as tf.Tensor3D;
    const k = tf.tidy(() => tf.exp(tf.mul(pairwiseDistances(x, o.distance), tf.scalar(-o.gamma)))); // [n, n, B]
    const value = tf.tidy(() => {
      const eye = tf.cast(tf.eye(n), 'bool');
      const s = tf.div(tf.sum(k, -1), tf.scalar(b));
      return tf.where(eye, tf.scalar(o.diagonal === 'one' ? 1 : 0), s);
    });
    save([x, k]);
    tf.dispose([x, k]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sx, sk] = saved as [tf.Tensor3D, tf.Tensor3D];
          // Same order as autograd through mean → exp → (−γ·) → sum → square → sub in the reference loop; the
          // diagonal is selected away (not multiplied by 0), so ±inf upstream gradients stay where PyTorch has them.
          const eye = tf.cast(tf.eye(n), 'bool');
          const g = tf.where(eye, tf.scalar(0), dy);
          let w = tf.mul(tf.expandDims(tf.div(g, tf.scalar(b)), -1), sk); // [n, n, B]
          w = tf.mul(w, tf.scalar(-o.gamma));
          if (o.distance === 'mean') w = tf.div(w, tf.scalar(f));
          const diff = tf.sub(tf.expandDims(sx, 1), tf.expandDims(sx, 0));
          const g4 = tf.mul(tf.expandDims(w, -1), tf.mul(diff, tf.scalar(2))); // [n, n, B, F]
          // x_i is the first argument of pair (i, j) and the second of pair (j, i).
          return tf.reshape(tf.sub(tf.sum(g4, 1), tf.sum(g4, 0)), h.shape);
        }),
    };
  }) as tf.Tensor2D;
}
