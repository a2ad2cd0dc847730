import * as tf from '@tensorflow/tfjs-core';
import type { FerDataset, FerModel } from 'fer-core';
import { stateVariables } from './state';
import {
  argmax,
  classificationReport,
  confusionMatrix,
  pluralityVote,
  type ClassificationReport,
} from './metrics/classification';

/** How branch or head outputs become one prediction. */
export type Combine = { kind: 'vote' } | { kind: 'weighted'; weights: number[] };

export interface EvaluateOptions {
  batchSize?: number;
  /** 0-based outputs that take part (default: all). */
  branches?: readonly number[];
  /** ESR: plurality vote of the branches (ties to the lowest class); MA-Net: argmax of Σ w_k·logits_k. */
  combine?: Combine;
  /** Head compared by the diversity metric (e.g. 'spatialAttention'); default: none. */
  diversityHead?: string;
  onBatch?: (done: number, total: number) => void;
  /**
   * Normalise with each batch's statistics instead of the BN running averages (train-mode forward); the model's
   * state is restored afterwards. For very short runs, where the running statistics (CBAM's BN moves them by only
   * 1% per step) are still far from the data. Default false (inference mode).
   */
  batchStatistics?: boolean;
}

export interface BranchEval {
  index: number;
  /** Mean cross-entropy over samples. */
  loss: number;
  accuracy: number;
}

export interface DiversityMetric {
  /** Mean over samples and branch pairs of the Euclidean distance between their heads. */
  meanPairwiseDistance: number;
  /** Fraction of (sample, branch pair) where the two branches predict different classes. */
  disagreement: number;
}

export interface EvalResult {
  size: number;
  branches: BranchEval[];
  /** The combined prediction's report (accuracy, per-class, macro-F1, confusion matrix). */
  ensemble: ClassificationReport;
  diversity?: DiversityMetric;
}

/**
 * Evaluates in inference mode (every branch, unlike the reference's evaluate(), docs/method.md#defect-10), without
 * gradients. Reads each batch's outputs once. Disposes every batch and intermediate.
 */
export async function evaluate(model: FerModel, data: FerDataset, o: EvaluateOptions = {}): Promise<EvalResult> {
  const K = data.labels.length;
  const truth: number[] = [];
  const combined: number[] = [];
  let sel: number[] | undefined = o.branches ? [...o.branches] : undefined;
  let lossSum: number[] = [];
  let hits: number[] = [];
  let distSum = 0;
  let pairSamples = 0;
  let disagree = 0;
  const total = Math.ceil(data.size / (o.batchSize ?? 32));
  let done = 0;
  const saved = o.batchStatistics ? stateVariables(model).map((v) => [v, tf.clone(v)] as const) : [];
  try {
    for await (const batch of data.batches({ batchSize: o.batchSize ?? 32, shuffle: false })) {
      try {
        const B = batch.labels.shape[0];
        const packed = tf.tidy(() => {
          const out = model.forward(batch.images, { training: o.batchStatistics === true });
          sel ??= out.logits.map((_, i) => i);
          const logits = tf.stack(sel.map((k) => out.logits[k])); // [n, B, K]
          const labels = tf.cast(batch.labels, 'int32');
          const onehot = tf.oneHot(labels, K);
          const ce = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), onehot), 2)); // [n, B]
          const parts: tf.Tensor[] = [
            tf.reshape(logits, [-1]),
            tf.reshape(ce, [-1]),
            tf.cast(tf.reshape(labels, [-1]), 'float32'),
          ];
          const head = o.diversityHead ? out.heads[o.diversityHead] : undefined;
          if (head && sel.length > 1) {
            const h = tf.reshape(tf.gather(head, tf.tensor1d(sel, 'int32'), 0), [sel.length, B, -1]);
            const d = tf.sqrt(tf.sum(tf.square(tf.sub(tf.expandDims(h, 1), tf.expandDims(h, 0))), 3)); // [n, n, B]
            parts.push(tf.reshape(tf.sum(d), [1]));
          }
          return tf.concat(parts);
        });
        const v = await packed.data();
        packed.dispose();
        const n = sel!.length;
        if (!lossSum.length) {
          lossSum = new Array(n).fill(0);
          hits = new Array(n).fill(0);
        }
        const ceOff = n * B * K;
        const lbOff = ceOff + n * B;
        for (let b = 0; b < B; b++) {
          const y = v[lbOff + b];
          truth.push(y);
          const preds = sel!.map((_, k) => argmax(v, (k * B + b) * K, K));
          preds.forEach((p, k) => {
            if (p === y) hits[k]++;
            lossSum[k] += v[ceOff + k * B + b];
          });
          for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (preds[i] !== preds[j]) disagree++;
          if (o.combine?.kind === 'weighted') {
            const w = o.combine.weights;
            const z = new Float64Array(K);
            for (let c = 0; c < K; c++) for (let k = 0; k < n; k++) z[c] += w[k] * v[(k * B + b) * K + c];
            combined.push(argmax(z));
          } else combined.push(pluralityVote(preds, K));
        }
        if (v.length > lbOff + B) {
          distSum += v[lbOff + B]; // both triangles
          pairSamples += n * (n - 1) * B;
        }
      } finally {
        tf.dispose([batch.images, batch.labels, ...(batch.soft ? [batch.soft] : [])]);
      }
      o.onBatch?.(++done, total);
    }
  } finally {
    for (const [v, value] of saved) {
      v.assign(value);
      value.dispose();
    }
  }
  const size = truth.length;
  const n = sel?.length ?? 0;
  const pairs = (n * (n - 1)) / 2;
  return {
    size,
    branches: (sel ?? []).map((index, k) => ({
      index,
      loss: lossSum[k] / Math.max(size, 1),
      accuracy: hits[k] / Math.max(size, 1),
    })),
    ensemble: classificationReport(confusionMatrix(truth, combined, K)),
    diversity:
      n > 1
        ? {
            meanPairwiseDistance: pairSamples > 0 ? distSum / pairSamples : NaN,
            disagreement: disagree / (pairs * Math.max(size, 1)),
          }
        : undefined,
  };
}
