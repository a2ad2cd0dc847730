/**
 * The fer-parallel task module behind `TrainerOptions.computeWorkers`: each worker thread builds a replica of the
 * trainer's model from a `ReplicaModelSpec` and differentiates the trainer's own loss (`lossFromSpec`), so a
 * data-parallel step computes exactly what `trainStep` computes on the same micro-batches. Loaded by path in the
 * workers (`trainTaskSpec`); the trainer sends the weights and state before every step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { parseChoice, tfjsInternals, type FerModel } from 'fer-core';
import { createEsr, type EsrConfig } from 'fer-models-esr';
import { createManet, type ResolvedManetConfig } from 'fer-models-manet';
import type { Replica, ReplicaGradients, ShardBatch } from 'fer-parallel';
import { lossFromSpec } from '../loss';
import type { LossSpec } from '../loss-types';
import { stateOf } from './state';

/** The trainer's model as plain data: enough to build a replica with the same variables in the same order. */
export type ReplicaModelSpec =
  | {
      kind: 'esr';
      config: EsrConfig;
      branches: number;
      /** Parts built frozen (`setTrainable(part, false)`): 'base' or 1-based branch indices. */
      frozen: Array<'base' | number>;
    }
  | { kind: 'manet'; config: ResolvedManetConfig };

export type ComputeBackend = 'native' | 'wasm' | 'cpu' | 'auto';

/** Config of the training task (structured-cloneable). */
export interface TrainTaskConfig {
  model: ReplicaModelSpec;
  loss: LossSpec;
  /** The workers' tfjs backend (default 'wasm'). */
  backend?: ComputeBackend;
}

function buildModel(spec: ReplicaModelSpec): FerModel & { fold(): FerModel } {
  if (spec.kind === 'esr') {
    // Seeded init is irrelevant (the trainer's weights arrive before the first step); a seed keeps it cheap and stable.
    const esr = createEsr(spec.config, { initialBranches: spec.branches, seed: 0 });
    for (const part of spec.frozen) esr.setTrainable(part, false);
    return esr;
  }
  const { numClasses, labels, msScaleOrder, name } = spec.config;
  return createManet({ numClasses, labels: labels ?? undefined, msScaleOrder, name, seed: 0, convInit: 'zeros' });
}

/** Builds one worker's replica (called by fer-parallel's worker with the config from `trainTaskSpec`). */
export async function createReplica(config: TrainTaskConfig): Promise<Replica> {
  await initBackend({
    backend: parseChoice('backend', config.backend ?? 'wasm', ['native', 'wasm', 'cpu', 'auto'] as const),
    quiet: true,
  });
  const model = buildModel(config.model);
  const loss = lossFromSpec(config.loss);
  const groups = model.variableGroups();
  const variables = groups.flatMap((g) => g.variables);
  // Inference runs with the batch norms folded into the convs (`fold()`, made on first use, folded again whenever the
  // weights sent since have changed); training never touches the fold.
  let folded: FerModel | null = null;
  const inference = (): FerModel => (folded ??= model.fold());
  return {
    variables,
    groups: groups.flatMap((g) => g.variables.map(() => g.name)),
    state: stateOf(model),
    computeGradients: (batch) => replicaGradients(model, variables, loss, batch),
    infer: (batch) => replicaLogits(inference(), batch),
    dispose: () => {
      folded?.dispose();
      model.dispose();
    },
  };
}

/**
 * Forward (training mode), the trainer's loss and backward on one micro-batch, as `trainStep` does: gradients of the
 * micro-batch mean loss, its terms, and correct predictions per logits entry as `counts`.
 */
async function replicaGradients(
  model: FerModel,
  variables: tf.Variable[],
  loss: ReturnType<typeof lossFromSpec>,
  batch: ShardBatch,
): Promise<ReplicaGradients> {
  const x = tf.tensor4d(batch.images, batch.shape);
  const y = tf.tensor1d(batch.labels, 'int32');
  let names: string[] = [];
  let heads = 0;
  let readout: tf.Tensor | undefined;
  try {
    const { value, grads } = tfjsInternals.variableGradsReleasing(() => {
      const out = model.forward(x, { training: true });
      const l = loss(out, y);
      names = Object.keys(l.terms);
      heads = out.logits.length;
      const hits = out.logits.map((lg) => tf.sum(tf.cast(tf.equal(tf.cast(tf.argMax(lg, 1), 'int32'), y), 'float32')));
      readout = tf.keep(tf.concat([tf.stack([l.total, ...names.map((n) => l.terms[n])]), tf.stack(hits)]));
      return l.total;
    }, variables);
    value.dispose();
    const r = await readout!.data();
    // counts: correct predictions per logits entry, then 1 per variable the loss reaches. An unreached variable gets a
    // zero gradient here; the trainer passes it to the optimizer as "no gradient", as trainStep does (PyTorch: None).
    const hits = Array.from(r.subarray(names.length + 1, names.length + 1 + heads));
    return {
      loss: r[0],
      terms: Object.fromEntries(names.map((n, i) => [n, r[i + 1]])),
      counts: [...hits, ...variables.map((v) => (grads[v.name] ? 1 : 0))],
      grads: variables.map((v) => grads[v.name] ?? tf.zerosLike(v)),
    };
  } finally {
    tf.dispose([x, y, ...(readout ? [readout] : [])]);
  }
}

/**
 * Eval-mode forward on one shard: every branch's or head's logits, image-major [B, heads, K] (flattened by the
 * worker, which reads and disposes the returned tensor). Used for data-parallel inference (`DataParallel.infer`).
 */
function replicaLogits(model: FerModel, batch: ShardBatch): tf.Tensor {
  return tf.tidy(() => {
    const out = model.forward(tf.tensor4d(batch.images, batch.shape), { training: false });
    return tf.stack(out.logits, 1);
  });
}
