/**
 * The built-in MA-Net task: a diversified MA-Net replica for `DataParallel` (load it with `manetTask(config)`).
 * Loss as `manet_*.py` and `torch_bench.py`: β·CE(fc_1) + (1 − β)·CE(fc_2) + −det patch-spatial, patch-channel and
 * global-feature diversity terms (preset 'reference').
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { crossEntropy, parseChoice, type ForwardResult } from 'fer-core';
import { diversityLoss, manetChannelHeads, manetSpatialHeads } from 'fer-diversity-loss';
import { createManet } from 'fer-models-manet';
import type { Replica, ReplicaContext } from '../types';
import { gradientsOf, logitsOf, type TaskLoss } from './replica-utils';
import type { ManetTaskConfig, TaskDiversity } from './specs';

const DIVERSITIES: readonly TaskDiversity[] = ['reference', 'dpp', 'none'];

/** Terms: `ce_1`, `ce_2` (unweighted), `div_patch_spatial`, `div_patch_channel`, `div_global`. */
export function manetTaskLoss(out: ForwardResult, labels: tf.Tensor1D, diversity: TaskDiversity, beta = 0.6): TaskLoss {
  const terms: Record<string, tf.Scalar> = { ce_1: crossEntropy(out.logits[0], labels), ce_2: crossEntropy(out.logits[1], labels) };
  const parts: tf.Scalar[] = [tf.mul(terms.ce_1, beta), tf.mul(terms.ce_2, 1 - beta)];
  if (diversity !== 'none') {
    const local = out.heads.localFeatures;
    terms.div_patch_spatial = diversityLoss(manetSpatialHeads(local), { preset: diversity });
    terms.div_patch_channel = diversityLoss(manetChannelHeads(local), { preset: diversity });
    terms.div_global = diversityLoss(out.heads.globalFeatures, { preset: diversity });
    parts.push(terms.div_patch_spatial, terms.div_patch_channel, terms.div_global);
  }
  return { total: tf.addN(parts) as tf.Scalar, terms };
}

export async function createReplica(config: ManetTaskConfig = {}, _ctx?: ReplicaContext): Promise<Replica> {
  await initBackend({ backend: config.backend ?? 'wasm', quiet: true });
  const diversity = parseChoice('diversity', config.diversity ?? 'reference', DIVERSITIES);
  const manet = createManet({ numClasses: config.numClasses ?? 7, seed: config.seed ?? 0 });
  const variables = manet.trainableVariables();
  return {
    variables,
    groups: variables.map(() => 'manet'),
    state: manet.nonTrainableVariables(),
    computeGradients: (batch) => gradientsOf(batch, variables, (x) => manet.forward(x, { training: true }), (out, y) => manetTaskLoss(out, y, diversity, config.beta ?? 0.6)),
    infer: (batch) => logitsOf(batch, (x) => manet.forward(x, { training: false })),
    dispose: () => manet.dispose(),
  };
}
