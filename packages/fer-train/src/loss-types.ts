import type * as tf from '@tensorflow/tfjs-core';
import type { ForwardResult } from 'fer-core';

/**
 * Which diversity loss enters training: `reference` reproduces the scripts (zero-diagonal similarity, γ = 10, −det;
 * docs/method.md#diversity-loss), `dpp` is the corrected determinantal loss (unit diagonal, −logdet), `none` trains
 * without it (ablation).
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

export interface EsrLossOptions {
  diversity: DiversityMode;
  /** 0-based branches whose CE enters (default: all). */
  ceBranches?: readonly number[];
  /** 0-based branches compared by the diversity terms (default: all when there are ≥ 2). */
  diversityBranches?: readonly number[];
  /**
   * Faithful to `esr_ferplus.py` / `esr_rafdb.py`: their "channel" term is computed on the spatial maps
   * (docs/method.md#defect-5). Default false: the channel term compares channel attention, as `esr_affectnet.py` does.
   */
  channelTermOnSpatial?: boolean;
  /** Weight of each diversity term (reference 1). */
  diversityWeight?: number;
}

export interface ManetLossOptions {
  diversity: DiversityMode;
  /** Head-1 weight β (reference 0.6); head 2 gets 1 − β. */
  beta?: number;
  diversityWeight?: number;
}

/** A training loss as plain (structured-cloneable) data: which loss and its options. */
export type LossSpec = { kind: 'esr'; options: EsrLossOptions } | { kind: 'manet'; options: ManetLossOptions };
