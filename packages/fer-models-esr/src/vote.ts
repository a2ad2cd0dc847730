import * as tf from '@tensorflow/tfjs-core';
import { FerInputError } from 'fer-core';

/**
 * Plurality vote of the branches (docs/method.md#esr-evaluation; upstream `cvision._predict`): each branch votes for
 * its argmax class, the class with most votes wins, ties go to the lowest class index.
 * @param logits one [B, K] tensor per branch
 * @returns [B] int32 class indices, owned by the caller
 */
export function vote(logits: readonly tf.Tensor2D[]): tf.Tensor1D {
  if (logits.length === 0)
    throw new FerInputError('Expected at least one branch to vote, but got none.', 'Call addBranch() first.');
  const [b, k] = logits[0].shape;
  for (const l of logits) {
    if (l.rank !== 2 || l.shape[0] !== b || l.shape[1] !== k) {
      throw new FerInputError(`Expected every branch's logits to be [${b}, ${k}], but got [${l.shape.join(', ')}].`);
    }
  }
  return tf.tidy(() => {
    // oneHot in int32 then cast: tfjs-backend-wasm 4.22's OneHot writes int bit patterns when asked for float32.
    const counts = tf.addN(logits.map((l) => tf.cast(tf.oneHot(tf.argMax(l, 1), k), 'float32')));
    // Subtracting index/(K+1) (< 1) never reorders different vote counts but makes the lowest index win a tie.
    const tieBreak = tf.div(tf.range(0, k, 1, 'float32'), k + 1);
    return tf.cast(tf.argMax(tf.sub(counts, tieBreak), 1), 'int32') as tf.Tensor1D;
  });
}
