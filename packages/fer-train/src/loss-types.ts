import type * as tf from '@tensorflow/tfjs-core';
import type { ForwardResult } from 'fer-core';
import type { LossSpec } from './loss';

/**
 * Which diversity loss enters training: `reference` reproduces the scripts (zero-diagonal similarity, γ = 10, −det;
 * docs/method.md#diversity-loss), `dpp` is the corrected determinantal loss (unit diagonal, −logdet), `none` trains without it (ablation).
 */
export type DiversityMode = 'reference' | 'dpp' | 'none';
export const DIVERSITY_MODES: readonly DiversityMode[] = ['reference', 'dpp', 'none'];

/** A total loss and its named terms (all scalars owned by the caller). */
export interface LossTerms {
  total: tf.Scalar;
  terms: Record<string, tf.Scalar>;
}

/**
 * What a trainer calls per (micro-)batch. A loss built by `lossFromSpec` (as the recipes build theirs) carries its
 * `spec`, plain data that data-parallel workers use to rebuild the very same loss.
 */
export type LossFn = ((out: ForwardResult, labels: tf.Tensor1D) => LossTerms) & { readonly spec?: LossSpec };
