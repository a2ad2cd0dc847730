import * as tf from '@tensorflow/tfjs-core';
import { FER_ERROR_CODES, FerError } from 'fer-core';
import type { TrainingPosition } from './io/checkpoint';

/** Thrown when training diverges (loss far above its running level, or non-finite or exploded weights). */
export class DivergenceError extends FerError {
  override name = 'DivergenceError';
  constructor(
    /** What was found, e.g. `loss 7.1e6 is 3.6e6x its running level 1.95`. */
    readonly reason: string,
    readonly position: TrainingPosition,
    /** The last checkpoint written before the divergence (every written checkpoint passed the weight check). */
    readonly lastGood: { file: string; position: TrainingPosition } | undefined,
  ) {
    const at = `stage ${position.stage}, epoch ${position.epoch + 1}, step ${position.step}`;
    const good = lastGood
      ? `The last good checkpoint is ${lastGood.file} (stage ${lastGood.position.stage}, epoch ${lastGood.position.epoch + 1}, step ${lastGood.position.step}); nothing after it was saved.`
      : 'No checkpoint had been written yet.';
    super(FER_ERROR_CODES.diverged, `Training diverged at ${at}: ${reason}. ${good}`, {
      hint: 'Lower the learning rate and start again (a resume with the same options diverges the same way).',
    });
  }
}

export interface DivergenceOptions {
  /** A step loss above `level + lossFactor * max(|level|, 1)` is divergence (default 100). */
  lossFactor?: number;
  /** A trainable weight with |w| above this has exploded (default 1e6; trained FER weights stay far below 100). */
  maxWeight?: number;
  /** Check the weights every N optimizer steps (default 10), and always before writing a checkpoint. */
  weightCheckEvery?: number;
}

/** The running level of the step loss: an exponential moving average over roughly the last 10 steps of a stage. */
export interface LossLevel {
  value: number;
  steps: number;
}

const ALPHA = 0.1;
/** Steps a stage's level needs before the loss rule applies: one (a blow-up can come at the second step). */
const WARMUP = 1;

/** Updates `level` with a step loss; returns why the loss counts as divergence, or undefined. */
export function checkLoss(level: LossLevel, loss: number, factor = 100): string | undefined {
  if (level.steps >= WARMUP) {
    const limit = level.value + factor * Math.max(Math.abs(level.value), 1);
    if (loss > limit)
      return `loss ${fmt(loss)} is far above its running level ${fmt(level.value)} (limit ${fmt(limit)})`;
  }
  level.value = level.steps === 0 ? loss : (1 - ALPHA) * level.value + ALPHA * loss;
  level.steps++;
  return undefined;
}

const fmt = (x: number) => (Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toFixed(4));

/**
 * Checks every variable with one device read: all must be finite, and trainable ones must stay within
 * `maxWeight`. Returns the problem (naming the variable) or undefined.
 */
export async function checkWeights(variables: readonly tf.Variable[], maxWeight = 1e6): Promise<string | undefined> {
  const floats = variables.filter((v) => v.dtype === 'float32' && v.size > 0);
  if (floats.length === 0) return undefined;
  const stats = tf.tidy(() =>
    tf.stack(floats.flatMap((v) => [tf.cast(tf.all(tf.isFinite(v)), 'float32'), tf.max(tf.abs(v))])),
  );
  const r = await stats.data();
  stats.dispose();
  for (let i = 0; i < floats.length; i++) {
    if (r[2 * i] !== 1) return `variable '${floats[i].name}' holds non-finite values`;
  }
  for (let i = 0; i < floats.length; i++) {
    if (floats[i].trainable && r[2 * i + 1] > maxWeight)
      return `weights exploded: variable '${floats[i].name}' reached |w| = ${fmt(r[2 * i + 1])} (limit ${fmt(maxWeight)})`;
  }
  return undefined;
}

/** Non-finite values in a loaded model's weights (e.g. a corrupt weights.bin). */
export class NonFiniteWeightsError extends FerError {
  override name = 'NonFiniteWeightsError';
  constructor(source: string, variable: string, count: number, size: number) {
    super(
      FER_ERROR_CODES.nonFiniteWeights,
      `The model in ${source} has non-finite weights: ${count} of ${size} values of '${variable}' are NaN or infinite.`,
      { hint: 'The weight files are corrupt or come from a diverged run: save or convert the model again.' },
    );
  }
}

/** Checks a loaded model's weights (one device read) and names the first variable with NaN or infinite values. */
export async function assertFiniteWeights(variables: readonly tf.Variable[], source: string): Promise<void> {
  const floats = variables.filter((v) => v.dtype === 'float32' && v.size > 0);
  if (floats.length === 0) return;
  const bad = tf.tidy(() => tf.stack(floats.map((v) => tf.sum(tf.cast(tf.logicalNot(tf.isFinite(v)), 'float32')))));
  const counts = await bad.data();
  bad.dispose();
  const i = counts.findIndex((c) => c > 0);
  if (i >= 0) throw new NonFiniteWeightsError(source, floats[i].name, counts[i], floats[i].size);
}
