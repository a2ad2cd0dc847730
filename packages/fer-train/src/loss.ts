import * as tf from '@tensorflow/tfjs-core';
import { crossEntropy, expected, type ForwardResult } from 'fer-core';
import { diversityLoss, manetChannelHeads, manetSpatialHeads, referenceFerPlusChannelHeads } from 'fer-diversity-loss';

import type { DiversityMode, EsrLossOptions, LossFn, LossSpec, LossTerms, ManetLossOptions } from './loss-types';

function pick(x: tf.Tensor, idx: readonly number[]): tf.Tensor {
  if (idx.length === x.shape[0] && idx.every((v, i) => v === i)) return x;
  return tf.gather(x, tf.tensor1d(idx as number[], 'int32'), 0);
}

function div(heads: tf.Tensor, mode: Exclude<DiversityMode, 'none'>): tf.Scalar {
  return diversityLoss(heads, { preset: mode }) as tf.Scalar;
}

/**
 * The ESR training loss (docs/method.md#total-loss): Σ_k CE(logits_k, y) over `ceBranches`, plus the spatial and
 * channel diversity terms on the last CBAM's attention of `diversityBranches` (when there are at least two).
 * Terms: `ce_branch_<k>` (1-based), `div_spatial`, `div_channel`.
 */
export function esrLoss(out: ForwardResult, labels: tf.Tensor1D, o: EsrLossOptions): LossTerms {
  const n = out.logits.length;
  const ce = o.ceBranches ?? Array.from({ length: n }, (_, i) => i);
  const dv = o.diversityBranches ?? (n > 1 ? Array.from({ length: n }, (_, i) => i) : []);
  for (const k of [...ce, ...dv]) if (!(k >= 0 && k < n)) throw expected('a branch index', `in 0..${n - 1}`, k);
  const terms: Record<string, tf.Scalar> = {};
  for (const k of ce) terms[`ce_branch_${k + 1}`] = crossEntropy(out.logits[k], labels);
  if (o.diversity !== 'none' && dv.length >= 2) {
    const w = o.diversityWeight ?? 1;
    const sp = out.heads.spatialAttention;
    const ch = out.heads.channelAttention;
    if (!sp || !ch)
      throw new Error('esrLoss needs heads.spatialAttention and heads.channelAttention from the ESR forward.');
    terms.div_spatial = tf.tidy(() => tf.mul(div(pick(sp, dv), o.diversity as 'reference'), w) as tf.Scalar);
    terms.div_channel = tf.tidy(() => {
      let heads: tf.Tensor = pick(ch, dv);
      // torch: attn_sp[i] is [B, h, w] and "sum over dim 1" sums rows only: [n, B, h, w] -> [n, B·w, h]
      if (o.channelTermOnSpatial) heads = referenceFerPlusChannelHeads(pick(sp, dv));
      return tf.mul(div(heads, o.diversity as 'reference'), w) as tf.Scalar;
    });
  }
  const total = tf.tidy(() => tf.addN(Object.values(terms)) as tf.Scalar);
  return { total, terms };
}

/**
 * The MA-Net training loss (docs/method.md#total-loss): β·CE(o1) + (1−β)·CE(o2) + the three diversity terms: patch
 * "spatial" (local features averaged over channels), patch "channel" (averaged over positions) and the two global
 * features. Terms: `ce_1`, `ce_2` (unweighted), `div_patch_spatial`, `div_patch_channel`, `div_global`.
 */
export function manetLoss(out: ForwardResult, labels: tf.Tensor1D, o: ManetLossOptions): LossTerms {
  const beta = o.beta ?? 0.6;
  const terms: Record<string, tf.Scalar> = {
    ce_1: crossEntropy(out.logits[0], labels),
    ce_2: crossEntropy(out.logits[1], labels),
  };
  const weighted: tf.Scalar[] = [];
  if (o.diversity !== 'none') {
    const w = o.diversityWeight ?? 1;
    const local = out.heads.localFeatures; // [4, B, 7, 7, C]
    const global = out.heads.globalFeatures; // [2, B, C]
    if (!local || !global)
      throw new Error('manetLoss needs heads.localFeatures and heads.globalFeatures from the MA-Net forward.');
    const mode = o.diversity;
    terms.div_patch_spatial = tf.tidy(() => tf.mul(div(manetSpatialHeads(local), mode), w) as tf.Scalar);
    terms.div_patch_channel = tf.tidy(() => tf.mul(div(manetChannelHeads(local), mode), w) as tf.Scalar);
    terms.div_global = tf.tidy(() => tf.mul(div(global, mode), w) as tf.Scalar);
    weighted.push(terms.div_patch_spatial, terms.div_patch_channel, terms.div_global);
  }
  const total = tf.tidy(
    () => tf.addN([tf.mul(terms.ce_1, beta), tf.mul(terms.ce_2, 1 - beta), ...weighted]) as tf.Scalar,
  );
  return { total, terms };
}

/** The `LossFn` a spec describes, carrying the spec (so data-parallel workers can rebuild the same loss). */
export function lossFromSpec(spec: LossSpec): LossFn {
  const fn =
    spec.kind === 'esr'
      ? (out: ForwardResult, labels: tf.Tensor1D) => esrLoss(out, labels, spec.options)
      : (out: ForwardResult, labels: tf.Tensor1D) => manetLoss(out, labels, spec.options);
  return Object.assign(fn, { spec });
}
