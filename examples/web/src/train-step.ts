/**
 * One ESR training step, written as a user of the packages would in their own tfjs project: the ensemble's
 * cross-entropy summed over branches plus the diversity loss on the last CBAM's spatial and channel attention
 * (spec §3.3, as fer-train's `esrLoss` composes it), differentiated with `tf.variableGrads`, then one SGD update.
 * DOM-free: the page runs it on WebGL and the Node test runs it on wasm.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BASIC7_LABELS, Rng, crossEntropy } from 'fer-core';
import { diversityLoss } from 'fer-diversity-loss';
import { createEsr, type EsrEnsemble } from 'fer-models-esr';

export interface StepSpec {
  seed: number;
  batch: number;
  /** Square input side (ESR uses 96). */
  inputSize: number;
  branches: number;
  diversity: 'dpp' | 'reference';
  learningRate: number;
}

export const DEFAULT_STEP: StepSpec = {
  seed: 11,
  batch: 2,
  inputSize: 64,
  branches: 2,
  diversity: 'dpp',
  learningRate: 0.01,
};

/** A seeded problem: the same weights, images and labels on every backend. The caller owns all three. */
export function stepProblem(s: StepSpec): { esr: EsrEnsemble; images: tf.Tensor4D; labels: tf.Tensor1D } {
  const esr = createEsr(
    { base: 'desr9-affectnet', inputSize: s.inputSize, numClasses: 7, labels: BASIC7_LABELS },
    { initialBranches: s.branches, seed: s.seed },
  );
  const rng = new Rng(s.seed);
  const px = new Float32Array(s.batch * s.inputSize * s.inputSize * 3);
  for (let i = 0; i < px.length; i++) px[i] = rng.next();
  const y = Array.from({ length: s.batch }, () => rng.int(7));
  return {
    esr,
    images: tf.tensor4d(px, [s.batch, s.inputSize, s.inputSize, 3]),
    labels: tf.tensor1d(y, 'int32'),
  };
}

/** Σ_k CE(logits_k, y) + div(spatial attention) + div(channel attention), in train mode. Terms by name. */
export function stepLoss(
  esr: EsrEnsemble,
  images: tf.Tensor4D,
  labels: tf.Tensor1D,
  diversity: StepSpec['diversity'],
): Record<string, tf.Scalar> {
  const out = esr.forward(images, { training: true });
  const terms: Record<string, tf.Scalar> = {};
  out.logits.forEach((l, k) => (terms[`ce_branch_${k + 1}`] = crossEntropy(l, labels)));
  terms.div_spatial = diversityLoss(out.heads.spatialAttention, { preset: diversity }) as tf.Scalar;
  terms.div_channel = diversityLoss(out.heads.channelAttention, { preset: diversity }) as tf.Scalar;
  return terms;
}

export interface StepResult {
  backend: string;
  loss: number;
  terms: Record<string, number>;
  /** Per trainable variable, keyed `<part>#<index>` (e.g. `branch_2#5`): the gradient of the total loss. */
  grads: Record<string, Float32Array>;
  /** The total loss after one SGD step, recomputed on the same batch (train mode). */
  lossAfter: number;
  /** Tensors alive after the step minus before (0: nothing leaked). */
  leaked: number;
}

/** Runs one step on the active backend and reports loss, terms, gradients and leaked tensors. */
export async function runTrainingStep(s: StepSpec = DEFAULT_STEP): Promise<StepResult> {
  const before = tf.memory().numTensors;
  const r = await step(s);
  return { ...r, backend: tf.getBackend(), leaked: tf.memory().numTensors - before };
}

async function step(s: StepSpec): Promise<Omit<StepResult, 'backend' | 'leaked'>> {
  const { esr, images, labels } = stepProblem(s);
  const opt = tf.train.sgd(s.learningRate);
  try {
    const named: Record<string, tf.Variable> = {};
    for (const g of esr.variableGroups()) g.variables.forEach((v, i) => (named[`${g.name}#${i}`] = v));
    const vars = Object.values(named);
    const termValues: Record<string, number> = {};
    const { value, grads } = tf.variableGrads(() => {
      const terms = stepLoss(esr, images, labels, s.diversity);
      for (const [k, t] of Object.entries(terms)) termValues[k] = t.dataSync()[0];
      return tf.addN(Object.values(terms)) as tf.Scalar;
    }, vars);
    const loss = (await value.data())[0];
    const out: Record<string, Float32Array> = {};
    for (const [key, v] of Object.entries(named)) out[key] = (await grads[v.name].data()) as Float32Array;
    opt.applyGradients(grads);
    tf.dispose([value, ...Object.values(grads)]);
    const after = tf.tidy(() => tf.addN(Object.values(stepLoss(esr, images, labels, s.diversity))));
    const lossAfter = (await after.data())[0];
    after.dispose();
    return { loss, terms: termValues, grads: out, lossAfter };
  } finally {
    opt.dispose();
    esr.dispose();
    tf.dispose([images, labels]);
  }
}
