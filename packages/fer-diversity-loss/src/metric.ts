/** A diversity metric for logs: how far apart the heads are, and how often the branches disagree. */
import * as tf from '@tensorflow/tfjs-core';
import { DiversityInputError, parseChoice } from './errors';
import { checkHeads, pairwiseDistances, DISTANCES, type Distance } from './similarity';

export interface DiversityMetricOptions {
  /** Per-branch logits, [n, B, K] or an array of n tensors [B, K]; enables `disagreementRate`. */
  logits?: tf.Tensor | readonly tf.Tensor[];
  /** 'mean' (default): squared distance per feature entry; 'sum': summed over entries, as the reference's d. */
  distance?: Distance;
}

export interface DiversityMetric {
  /** Mean over samples and unordered head pairs of the squared distance d_ij(b); 0 for a single head. */
  meanPairwiseDistance: number;
  /** Fraction of (sample, branch pair) whose predicted classes (argmax) differ; only when logits are given. */
  disagreementRate?: number;
}

/**
 * Mean pairwise squared distance of `heads` [n, B, ...features] as a scalar tensor (the caller owns it): the
 * mean over b and i < j of d_ij(b), with d summed ('sum') or averaged ('mean', default) over feature entries.
 */
export function meanPairwiseDistance(heads: tf.Tensor, distance: Distance = 'mean'): tf.Scalar {
  const { n, b, f } = checkHeads(heads);
  const dist = parseChoice('distance', distance, DISTANCES);
  return tf.tidy(() => {
    if (n < 2) return tf.scalar(0);
    const d = pairwiseDistances(tf.reshape(heads, [n, b, f]) as tf.Tensor3D, dist);
    return tf.div(tf.sum(d), tf.scalar(n * (n - 1) * b)) as tf.Scalar;
  });
}

/**
 * Fraction of (sample, unordered branch pair) whose argmax predictions differ, from logits [n, B, K] or n tensors
 * [B, K]. Returns a scalar tensor the caller owns (0 for a single branch).
 */
export function disagreementRate(logits: tf.Tensor | readonly tf.Tensor[]): tf.Scalar {
  const stacked = Array.isArray(logits);
  const l = stacked ? tf.stack(logits as tf.Tensor[]) : (logits as tf.Tensor);
  try {
    if (l.rank !== 3 || l.shape.some((d) => d < 1)) {
      throw new DiversityInputError(
        `Expected logits of shape [n, B, classes] (or n tensors [B, classes]), but got [${l.shape.join(', ')}].`,
      );
    }
    const [n, b] = l.shape;
    return tf.tidy(() => {
      if (n < 2) return tf.scalar(0);
      const pred = tf.argMax(l, 2); // [n, B]
      const differ = tf.cast(tf.notEqual(tf.expandDims(pred, 1), tf.expandDims(pred, 0)), 'float32');
      return tf.div(tf.sum(differ), tf.scalar(n * (n - 1) * b)) as tf.Scalar;
    });
  } finally {
    if (stacked) l.dispose();
  }
}

/** Both figures as plain numbers for logging; disposes everything it creates, never the inputs. */
export async function diversityMetric(
  heads: tf.Tensor,
  options: DiversityMetricOptions = {},
): Promise<DiversityMetric> {
  const dist = meanPairwiseDistance(heads, options.distance ?? 'mean');
  const dis = options.logits !== undefined ? disagreementRate(options.logits) : null;
  try {
    const out: DiversityMetric = { meanPairwiseDistance: (await dist.data())[0] };
    if (dis) out.disagreementRate = (await dis.data())[0];
    return out;
  } finally {
    tf.dispose([dist, ...(dis ? [dis] : [])]);
  }
}
