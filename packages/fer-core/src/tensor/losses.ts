import * as tf from '@tensorflow/tfjs-core';

/**
 * Mean softmax cross-entropy over the batch, as PyTorch's `nn.CrossEntropyLoss()` (log-softmax + NLL).
 * @param logits [B, K] float32
 * @param labels [B] int32 class indices
 * @returns scalar, owned by the caller
 */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const k = logits.shape[1];
    const logp = tf.logSoftmax(logits);
    const onehot = tf.oneHot(tf.cast(labels, 'int32'), k);
    return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), 1))) as tf.Scalar;
  });
}

/**
 * Σ_k CE(logits_k, labels): the reference ESR classification loss (docs/method.md#total-loss). Scalar, owned by the
 * caller.
 */
export function sumCrossEntropy(logits: readonly tf.Tensor2D[], labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.addN(logits.map((l) => crossEntropy(l, labels))) as tf.Scalar);
}
