import * as tf from '@tensorflow/tfjs-core';
import type { ForwardResult } from 'fer-core';
import type { ReplicaGradients, ShardBatch } from '../types';

/** A scalar loss and its named terms (all owned by the caller). */
export interface TaskLoss {
  total: tf.Scalar;
  terms: Record<string, tf.Scalar>;
}

/**
 * Forward in training mode on one (micro-)batch, loss, backward: the gradient of the loss with respect to
 * `variables` (in their order) plus the loss and its terms read with one `data()` call. Leaves no tensors
 * behind other than the returned gradients, which the worker reads and disposes.
 */
export async function gradientsOf(
  batch: ShardBatch,
  variables: tf.Variable[],
  forward: (x: tf.Tensor4D) => ForwardResult,
  loss: (out: ForwardResult, labels: tf.Tensor1D) => TaskLoss,
): Promise<ReplicaGradients> {
  const x = tf.tensor4d(batch.images, batch.shape);
  const y = tf.tensor1d(batch.labels, 'int32');
  let names: string[] = [];
  let readout: tf.Tensor | null = null;
  try {
    const { value, grads } = tf.variableGrads(() => {
      const out = forward(x);
      const l = loss(out, y);
      names = Object.keys(l.terms);
      readout = tf.keep(tf.stack([l.total, ...names.map((n) => l.terms[n])]));
      return l.total;
    }, variables);
    value.dispose();
    const r = await readout!.data();
    const terms = Object.fromEntries(names.map((n, i) => [n, r[i + 1]]));
    // A variable the loss does not reach gets a zero gradient (PyTorch leaves .grad None; SGD then skips it,
    // which a zero gradient without weight decay matches).
    return { loss: r[0], terms, grads: variables.map((v) => grads[v.name] ?? tf.zerosLike(v)) };
  } finally {
    tf.dispose([x, y, ...(readout ? [readout] : [])]);
  }
}

/**
 * Eval-mode forward on one batch: the logits of every branch or head, image-major [B, heads, K] (flattened).
 * The caller (the worker) reads and disposes the returned tensor.
 */
export function logitsOf(batch: ShardBatch, forward: (x: tf.Tensor4D) => ForwardResult): tf.Tensor {
  return tf.tidy(() => {
    const out = forward(tf.tensor4d(batch.images, batch.shape));
    return tf.stack(out.logits, 1);
  });
}
