import * as tf from '@tensorflow/tfjs-core';
import { FerInputError, type Batch, type FerDataset, type FerModel } from 'fer-core';
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
   * 1% per step) are still far from the data. A batch of one image has no batch statistics (train-mode batch norm
   * needs more than one value per channel): it is evaluated together with the batch before it (the trailing batch
   * of a set of k·batchSize + 1 images, or one left by unreadable images). Default false (inference mode).
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

function disposeBatch(b: Batch): void {
  tf.dispose([b.images, b.labels, ...(b.soft ? [b.soft] : [])]);
}

/** `a` followed by `b`, as one batch; disposes both. */
function joinBatches(a: Batch, b: Batch): Batch {
  const joined: Batch = {
    images: tf.concat([a.images, b.images]),
    labels: tf.concat([a.labels, b.labels]),
    ...(a.soft && b.soft ? { soft: tf.concat([a.soft, b.soft]) } : {}),
  };
  disposeBatch(a);
  disposeBatch(b);
  return joined;
}

/**
 * The batches of `data`, except that with batch statistics a batch of one image is joined to a neighbour (the one
 * before it, or after it when it comes first).
 * Yields each batch with the number of source batches it holds (for progress).
 */
async function* evaluationBatches(
  data: FerDataset,
  batchSize: number,
  batchStatistics: boolean,
): AsyncGenerator<[Batch, number]> {
  let held: [Batch, number] | null = null;
  try {
    for await (const batch of data.batches({ batchSize, shuffle: false })) {
      if (held && batchStatistics && (batch.labels.shape[0] === 1 || held[0].labels.shape[0] === 1)) {
        held = [joinBatches(held[0], batch), held[1] + 1];
        continue;
      }
      const out = held;
      held = [batch, 1];
      if (out) yield out;
    }
    if (held && batchStatistics && held[0].labels.shape[0] === 1)
      throw new FerInputError(
        `Expected at least 2 readable images to evaluate with batch statistics, but ${data.name} gave 1.`,
        'Evaluate in inference mode (batchStatistics: false) or with more images.',
      );
    const last = held;
    held = null;
    if (last) yield last;
  } finally {
    if (held) disposeBatch(held[0]);
  }
}

/**
 * Evaluates in inference mode (every branch, unlike the reference's evaluate(), docs/method.md#defect-10), without
 * gradients. Reads each batch's outputs once. Disposes every batch and intermediate.
 */
export async function evaluate(model: FerModel, data: FerDataset, o: EvaluateOptions = {}): Promise<EvalResult> {
  if (o.batchStatistics && data.size < 2)
    throw new FerInputError(
      `Expected at least 2 images to evaluate with batch statistics (batch norm needs more than one value per ` +
        `channel), but ${data.name} has ${data.size}.`,
      'Evaluate in inference mode (batchStatistics: false) or with more images.',
    );
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
    for await (const [batch, parts] of evaluationBatches(data, o.batchSize ?? 32, o.batchStatistics === true)) {
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
        disposeBatch(batch);
      }
      done += parts;
      o.onBatch?.(done, total);
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
