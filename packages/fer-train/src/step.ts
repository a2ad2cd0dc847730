import * as tf from '@tensorflow/tfjs-core';
import { FER_ERROR_CODES, FerError, assertPositiveInt, tfjsInternals, type Batch, type FerModel } from 'fer-core';
import type { LossFn } from './loss-types';
import type { Sgd } from './optim/sgd';

/** Thrown when a loss term or a gradient is NaN or ±Inf; no update has been applied. */
export class NonFiniteLossError extends FerError {
  override name = 'NonFiniteLossError';
  constructor(
    /** The offending loss terms (or 'gradient of <variable>'). */
    readonly terms: string[],
    readonly values: Record<string, number>,
  ) {
    // One line even when every gradient is NaN: the first few names and how many more.
    const shown = terms.slice(0, 3);
    const more = terms.length > 3 ? ` and ${terms.length - 3} more` : '';
    super(
      FER_ERROR_CODES.nonFiniteLoss,
      `Training stopped: non-finite ${shown.join(', ')}${more} (${shown.map((t) => `${t} = ${values[t]}`).join(', ')}). ` +
        'The last good checkpoint was left untouched.',
      { hint: 'Lower the learning rate, check the input data, or use the dpp diversity loss.' },
    );
  }
}

export interface StepOptions {
  /**
   * Largest micro-batch that goes through forward + backward at once (default: the whole batch). The gradient is
   * accumulated as Σ (m_i / B)·∇L(micro-batch i), which equals the full-batch gradient for the batch-mean CE; batch
   * norm normalises each micro-batch with its own statistics and updates its running statistics once per micro-batch,
   * and the batch-mean inside the diversity terms is taken per micro-batch.
   */
  microBatch?: number;
}

export interface StepResult {
  /** Full-batch loss (micro-batch losses weighted by their share of the batch). */
  loss: number;
  terms: Record<string, number>;
  /** Correct predictions per logits entry (branch or head) in this batch. */
  correct: number[];
  count: number;
}

/**
 * One optimizer step on `batch` with PyTorch semantics: forward in training mode, loss, backward, `opt` update.
 * Reads the loss once per micro-batch. Does not dispose `batch`. Throws `NonFiniteLossError` before updating when a
 * term or gradient is not finite.
 */
export async function trainStep(
  model: FerModel,
  opt: Sgd,
  batch: Batch,
  loss: LossFn,
  o: StepOptions = {},
): Promise<StepResult> {
  const B = batch.images.shape[0];
  const mb = Math.min(o.microBatch ?? B, B);
  assertPositiveInt('microBatch', mb);
  const vars = opt.variables().filter((v) => v.trainable);
  let acc: Record<string, tf.Tensor> = {};
  const terms: Record<string, number> = {};
  let total = 0;
  let correct: number[] = [];
  try {
    for (let start = 0; start < B; start += mb) {
      const m = Math.min(mb, B - start);
      const share = m / B;
      const x = m === B ? batch.images : tf.slice(batch.images, [start, 0, 0, 0], [m, -1, -1, -1]);
      const y = m === B ? batch.labels : tf.slice(batch.labels, [start], [m]);
      let names: string[] = [];
      let readout: tf.Tensor | undefined;
      const { value, grads } = tfjsInternals.variableGradsReleasing(() => {
        const out = model.forward(x, { training: true });
        const l = loss(out, y);
        names = Object.keys(l.terms);
        const yi = tf.cast(y, 'int32');
        const hits = out.logits.map((lg) =>
          tf.sum(tf.cast(tf.equal(tf.cast(tf.argMax(lg, 1), 'int32'), yi), 'float32')),
        );
        readout = tf.keep(tf.concat([tf.stack([l.total, ...names.map((n) => l.terms[n])]), tf.stack(hits)]));
        return tf.mul(l.total, share) as tf.Scalar;
      }, vars);
      value.dispose();
      if (x !== batch.images) tf.dispose([x, y]);
      const r = await readout!.data();
      readout!.dispose();
      const bad = ['total', ...names].filter((_, i) => !Number.isFinite(r[i]));
      if (bad.length > 0) {
        tf.dispose(grads);
        const values = Object.fromEntries(['total', ...names].map((n, i) => [n, r[i]]));
        throw new NonFiniteLossError(
          bad.filter((t) => t !== 'total').length ? bad.filter((t) => t !== 'total') : bad,
          values,
        );
      }
      total += share * r[0];
      names.forEach((n, i) => (terms[n] = (terms[n] ?? 0) + share * r[i + 1]));
      const hits = Array.from(r.slice(names.length + 1));
      correct = correct.length ? correct.map((c, i) => c + hits[i]) : hits;
      const next: Record<string, tf.Tensor> = {};
      for (const [k, g] of Object.entries(grads)) {
        if (acc[k]) {
          next[k] = tf.add(acc[k], g);
          tf.dispose([acc[k], g]);
        } else next[k] = g;
      }
      acc = next;
    }
    const names = Object.keys(acc);
    const finite = tf.tidy(() => tf.stack(names.map((k) => tf.all(tf.isFinite(acc[k])))));
    const ok = await finite.data();
    finite.dispose();
    const badGrads = names.filter((_, i) => !ok[i]);
    if (badGrads.length > 0) {
      const labels = badGrads.map((n) => `gradient of ${n}`);
      throw new NonFiniteLossError(labels, Object.fromEntries(labels.map((l) => [l, NaN])));
    }
    opt.applyGradients(acc);
  } finally {
    tf.dispose(Object.values(acc));
  }
  return { loss: total, terms, correct, count: B };
}
