import * as tf from '@tensorflow/tfjs-core';
import { FerInputError, type Batch, type FerModel } from 'fer-core';
import { findEntry, moduleFile } from 'fer-core/node';
import { EsrEnsemble } from 'fer-models-esr';
import { Manet } from 'fer-models-manet';
import { DataParallel, type TaskSpec } from 'fer-parallel';
import type { LossFn } from '../loss-types';
import type { Sgd } from '../optim/sgd';
import { NonFiniteLossError, type StepResult } from '../step';
import { stateOf } from './state';
import type { ComputeBackend, ReplicaModelSpec, TrainTaskConfig } from './task';

/**
 * The task module path: src/parallel/task.ts under tsx/jest; dist/parallel/task.{js,mjs} when built, this code being
 * bundled into dist/index or dist/cli/main.
 */
function taskModule(): string {
  const self = moduleFile(typeof __filename === 'string' ? __filename : import.meta.url);
  const { entry, candidates } = findEntry(self, 'task', ['.', 'parallel', '../parallel']);
  if (!entry)
    throw new Error(
      `fer-train: the data-parallel task module was not found (looked for ${candidates.join(', ')}). Rebuild fer-train.`,
    );
  return entry.file;
}

/** fer-parallel task spec of the training task (the trainer's model and loss, rebuilt in each worker). */
export function trainTaskSpec(config: TrainTaskConfig): TaskSpec<TrainTaskConfig> {
  return { module: taskModule(), export: 'createReplica', config };
}

/** Describes a model for the workers; ESR ensembles and MA-Net are supported. */
export function replicaModelSpec(model: FerModel): ReplicaModelSpec {
  if (model instanceof EsrEnsemble) {
    const frozen = model.parts().flatMap((p, i) => (p.model.trainable ? [] : [i === 0 ? ('base' as const) : i]));
    return { kind: 'esr', config: model.config, branches: model.numBranches, frozen };
  }
  if (model instanceof Manet) return { kind: 'manet', config: model.config };
  throw new FerInputError(
    'Expected an ESR ensemble or an MA-Net for data-parallel training (computeWorkers ≥ 2), but got another model.',
    'Use computeWorkers: 1 for other models.',
  );
}

export interface DataParallelStepOptions {
  /** Worker threads (≥ 1; each its own tfjs backend and heap). */
  workers: number;
  /** Largest micro-batch a worker runs at once (as `StepOptions.microBatch`); default: its whole shard. */
  microBatch?: number;
  /** The workers' backend; default the main thread's when it is 'wasm' or 'cpu', else 'wasm'. */
  backend?: ComputeBackend;
}

/**
 * `trainStep` computed by fer-parallel workers. Each step sends the master model's weights and state to the
 * replicas, splits the batch into one contiguous shard per worker (micro-batched as `microBatch`), sums the
 * workers' gradients weighted by their share of the batch, and applies the trainer's own `Sgd` to the master
 * variables. With the same micro-batches, the gradient equals `trainStep`'s up to float32 summation order.
 *
 * Batch-norm running statistics: each replica updates its own from its shards; after the step the master gets their
 * mean weighted by shard size. Single-process micro-batching chains the updates instead (m ← 0.9·(0.9·m + 0.1·μ₁) +
 * 0.1·μ₂), so the running statistics differ slightly (not the weights). The normalisation itself uses each
 * micro-batch's statistics in both paths.
 *
 * Create per model shape (ESR growth changes the variables: create a new one per stage) and always `dispose()`.
 */
export class DataParallelStep {
  /**
   * Wall time of the last `step`, ms: sending weights and state, the workers' compute (slowest worker), the whole
   * gradient request, and the update with the trainer's optimizer (engine overhead = total − workers' compute).
   */
  lastTimings = { push: 0, workers: 0, gradients: 0, update: 0, total: 0 };

  private constructor(
    private readonly dp: DataParallel,
    private readonly variables: tf.Variable[],
    private readonly state: tf.Variable[],
    private readonly stateFlat: Float32Array,
  ) {}

  static async create(model: FerModel, loss: LossFn, o: DataParallelStepOptions): Promise<DataParallelStep> {
    if (!loss.spec) {
      throw new FerInputError(
        'Expected a loss built with lossFromSpec (the recipes do) for data-parallel training, but got a plain function: workers cannot rebuild it.',
        'Build the loss with lossFromSpec({ kind, options }) or use computeWorkers: 1.',
      );
    }
    const current = tf.getBackend();
    const backend = o.backend ?? (current === 'native' || current === 'wasm' || current === 'cpu' ? current : 'wasm');
    const variables = model.variableGroups().flatMap((g) => g.variables);
    const state = stateOf(model);
    const dp = await DataParallel.create({
      task: trainTaskSpec({ model: replicaModelSpec(model), loss: loss.spec, backend }),
      workers: o.workers,
      microBatch: o.microBatch,
      stateSync: 'mean',
    });
    try {
      const shapes = (vs: { shape: readonly number[] }[]) => JSON.stringify(vs.map((v) => [...v.shape]));
      if (shapes(dp.variables) !== shapes(variables) || JSON.stringify(dp.stateShapes) !== shapes(state)) {
        throw new Error(
          "fer-train: the workers' replicas do not have the model's variables (shapes or order differ); data-parallel training cannot continue.",
        );
      }
    } catch (e) {
      await dp.dispose();
      throw e;
    }
    return new DataParallelStep(dp, variables, state, new Float32Array(dp.stateSize));
  }

  get workers(): number {
    return this.dp.numWorkers;
  }

  /**
   * One optimizer step on `batch` (not disposed), as `trainStep`: throws `NonFiniteLossError` before updating when a
   * loss term or a gradient is not finite.
   */
  async step(opt: Sgd, batch: Batch): Promise<StepResult> {
    const t0 = performance.now();
    await this.pushWeights();
    const t1 = performance.now();
    const [n, h, w, c] = batch.images.shape;
    const images = (await batch.images.data()) as Float32Array;
    const raw = await batch.labels.data();
    const labels = raw instanceof Int32Array ? raw : Int32Array.from(raw);
    const g = await this.dp.computeGradients({ images, shape: [n, h, w, c], labels });
    const t2 = performance.now();

    const names = ['total', ...Object.keys(g.terms)];
    const values = [g.loss, ...Object.values(g.terms)];
    const bad = names.filter((_, i) => !Number.isFinite(values[i]));
    if (bad.length > 0) {
      const named = bad.filter((t) => t !== 'total');
      throw new NonFiniteLossError(named.length ? named : bad, Object.fromEntries(names.map((k, i) => [k, values[i]])));
    }
    const nv = this.variables.length;
    const correct = g.counts.slice(0, g.counts.length - nv);
    const reached = g.counts.slice(g.counts.length - nv);
    const badGrads = this.variables
      .filter((v, i) => reached[i] > 0 && !g.grads[i].every(Number.isFinite))
      .map((v) => `gradient of ${v.name}`);
    if (badGrads.length > 0) throw new NonFiniteLossError(badGrads, Object.fromEntries(badGrads.map((l) => [l, NaN])));

    const grads: Record<string, tf.Tensor> = {};
    try {
      this.variables.forEach((v, i) => {
        if (reached[i] > 0) grads[v.name] = tf.tensor(g.grads[i], v.shape, 'float32');
      });
      opt.applyGradients(grads);
    } finally {
      tf.dispose(Object.values(grads));
    }
    if (g.state) this.pullState(g.state);
    const t3 = performance.now();
    this.lastTimings = {
      push: t1 - t0,
      workers: Math.max(...g.workerMs),
      gradients: t2 - t1,
      update: t3 - t2,
      total: t3 - t0,
    };
    return { loss: g.loss, terms: g.terms, correct, count: n };
  }

  /** Ends the worker threads; returns tensors each replica left behind (0 expected). */
  async dispose(): Promise<{ leaked: number[] }> {
    return this.dp.dispose();
  }

  /** Master weights and state to every replica (the trainer may have changed them: step, reload, resume). */
  private async pushWeights(): Promise<void> {
    const reads = await Promise.all([...this.variables, ...this.state].map((v) => v.data()));
    this.variables.forEach((_, i) => this.dp.weights[i].set(reads[i] as Float32Array));
    let off = 0;
    for (let i = 0; i < this.state.length; i++) {
      const r = reads[this.variables.length + i];
      this.stateFlat.set(r, off);
      off += r.length;
    }
    await this.dp.setWeights(this.dp.flatWeights, this.stateFlat);
  }

  private pullState(flat: Float32Array): void {
    let off = 0;
    for (const v of this.state) {
      const vals = flat.subarray(off, off + v.size);
      off += v.size;
      tf.tidy(() =>
        v.assign(
          v.dtype === 'float32'
            ? tf.tensor(vals, v.shape, 'float32')
            : tf.cast(tf.tensor(vals, v.shape, 'float32'), v.dtype),
        ),
      );
    }
  }
}
