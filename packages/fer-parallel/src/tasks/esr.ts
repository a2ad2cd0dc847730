/**
 * The built-in ESR task: a diversified ESR replica for `DataParallel` (load it with `esrTask(config)`).
 * Loss as the reference `esr_affectnet.py` and `torch_bench.py`: Σ_k CE(branch k) + (n ≥ 2) −det spatial and
 * −det channel diversity terms of the last CBAM attention (preset 'reference': γ 10, zero diagonal).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from 'fer-backend';
import { crossEntropy, parseChoice, type ForwardResult } from 'fer-core';
import { diversityLoss } from 'fer-diversity-loss';
import { createEsr, type EsrConfigName } from 'fer-models-esr';
import type { Replica, ReplicaContext } from '../types';
import { gradientsOf, logitsOf, type TaskLoss } from './replica-utils';
import type { EsrTaskConfig, TaskDiversity } from './specs';

const DIVERSITIES: readonly TaskDiversity[] = ['reference', 'dpp', 'none'];

/** Σ_k CE_k, plus `div_spatial` and `div_channel` when there are ≥ 2 branches. Terms: `ce_branch_<k>` (1-based). */
export function esrTaskLoss(out: ForwardResult, labels: tf.Tensor1D, diversity: TaskDiversity): TaskLoss {
  const terms: Record<string, tf.Scalar> = {};
  out.logits.forEach((lg, k) => (terms[`ce_branch_${k + 1}`] = crossEntropy(lg, labels)));
  if (diversity !== 'none' && out.logits.length >= 2) {
    terms.div_spatial = diversityLoss(out.heads.spatialAttention, { preset: diversity });
    terms.div_channel = diversityLoss(out.heads.channelAttention, { preset: diversity });
  }
  return { total: tf.addN(Object.values(terms)) as tf.Scalar, terms };
}

/** Every non-trainable weight of the ensemble's parts (BN running statistics and counters), in part order. */
function stateOf(parts: tfl.LayersModel[]): tf.Variable[] {
  return parts.flatMap((m) => m.nonTrainableWeights.map((w) => w.read() as tf.Variable));
}

export async function createReplica(config: EsrTaskConfig = {}, _ctx?: ReplicaContext): Promise<Replica> {
  await initBackend({ backend: config.backend ?? 'wasm', quiet: true });
  const diversity = parseChoice('diversity', config.diversity ?? 'reference', DIVERSITIES);
  const esr = createEsr((config.esr ?? 'desr9-affectnet') as EsrConfigName, { initialBranches: config.branches ?? 1, seed: config.seed ?? 0 });
  const groups = esr.variableGroups();
  const variables = groups.flatMap((g) => g.variables);
  return {
    variables,
    groups: groups.flatMap((g) => g.variables.map(() => g.name)),
    state: stateOf(esr.parts().map((p) => p.model)),
    computeGradients: (batch) =>
      gradientsOf(batch, variables, (x) => esr.forward(x, { training: true }), (out, y) => esrTaskLoss(out, y, diversity)),
    infer: (batch) => logitsOf(batch, (x) => esr.forward(x, { training: false })),
    dispose: () => esr.dispose(),
  };
}
