import type * as tf from '@tensorflow/tfjs-core';

/**
 * Which module builds a replica inside each worker. `module` is an absolute path (`.ts` sources run through tsx) or
 * a package specifier resolvable from the worker (fer-train's `trainTaskSpec` gives its training task's path);
 * `export` names a `CreateReplica` function (default `createReplica`); `config` is passed to it and must be
 * JSON-serialisable (structured clone).
 */
export interface TaskSpec<C = unknown> {
  module: string;
  export?: string;
  config?: C;
}

/**
 * A (micro-)batch as a replica receives it. `images` is a view of `shape` = [n, h, w, c] float32 values (NHWC);
 * it may alias shared memory that is reused by the next call, so copy it (e.g. `tf.tensor4d(images, shape)`) rather
 * than keep it.
 */
export interface ShardBatch {
  images: Float32Array;
  shape: [number, number, number, number];
  labels: Int32Array;
}

/**
 * What a replica returns for one (micro-)batch: the loss *averaged over that batch* (the engine weights each
 * micro-batch by its share of the whole batch), optional named terms (same convention), and one gradient per
 * variable in `Replica.variables` order. Tensors returned here are read and disposed by the worker.
 */
export interface ReplicaGradients {
  loss: number;
  terms?: Record<string, number>;
  /**
   * Optional counts over the micro-batch (e.g. correct predictions per head): summed as they are, over micro-batches
   * and workers, not weighted. Every call must return the same number of counts.
   */
  counts?: number[];
  grads: Array<Float32Array | tf.Tensor>;
}

/** The model side of a task: built once per worker by the task module's `CreateReplica`. */
export interface Replica {
  /** Trainable variables, in a fixed order (the order of gradients and weights everywhere). */
  variables: tf.Variable[];
  /** Optional optimiser group per variable (e.g. 'base', 'branch_1'); default 'all'. */
  groups?: string[];
  /**
   * Non-trainable state updated by training-mode forwards (batch-norm running statistics, counters). After each
   * step the engine makes it identical on every replica (see `StateSync`).
   */
  state?: tf.Variable[];
  /** Gradients of the mean loss over `batch` with respect to `variables`. */
  computeGradients(batch: ShardBatch): ReplicaGradients | Promise<ReplicaGradients>;
  /**
   * Optional inference (eval mode) on `batch`: `shape[0]` rows of equal length, image-major (e.g. logits
   * [n, K] flattened). Tensors returned are read and disposed by the worker.
   */
  infer?(batch: ShardBatch): Float32Array | tf.Tensor | Promise<Float32Array | tf.Tensor>;
  /** Releases the replica's tensors (the worker then checks for leaks). */
  dispose?(): void;
}

/** Where a replica runs: its worker index among `numWorkers`. */
export interface ReplicaContext {
  workerIndex: number;
  numWorkers: number;
}

/** The function a task module exports. */
export type CreateReplica<C = unknown> = (config: C, ctx: ReplicaContext) => Replica | Promise<Replica>;

/**
 * How replicas' `state` is made identical after a step: `mean` averages it weighted by each worker's share of the
 * batch (exact for batch-norm running means with equal shards), `first` copies worker 0's, `none` leaves each
 * replica with its own (they drift apart; only for experiments).
 */
export type StateSync = 'mean' | 'first' | 'none';

/** A whole batch as the engine receives it (host memory; the engine splits it into shards). */
export interface HostBatch {
  /** [n, h, w, c] float32, NHWC. A `SharedArrayBuffer`-backed array avoids one copy. */
  images: Float32Array;
  shape: [number, number, number, number];
  /** [n] int32 class indices. */
  labels: Int32Array;
}

/** Describes one trainable variable of the replicas. */
export interface VariableInfo {
  name: string;
  group: string;
  shape: number[];
  size: number;
  /** Offset in the flat parameter vector. */
  offset: number;
}

/** The batch gradient: Σ over micro-batches of (micro-batch size / batch size) · gradient of its mean loss. */
export interface BatchGradients {
  /** Batch loss (micro-batch losses weighted by their share). */
  loss: number;
  terms: Record<string, number>;
  /** One view per variable into `flat` (engine-owned; valid until the next `computeGradients`). */
  grads: Float32Array[];
  flat: Float32Array;
  /** Images in the batch. */
  count: number;
  /** Σ of the replicas' `counts` over the batch (empty when the task returns none). */
  counts: number[];
  /**
   * The replicas' state after this step as `stateSync` reconciled it (flat, in `Replica.state` order; what every
   * replica holds from the next request on), or null with `stateSync: 'none'`. Engine-owned, like `flat`.
   */
  state: Float32Array | null;
  /** Wall time per worker for its shard, ms (compute only, measured in the worker). */
  workerMs: number[];
}

/** Memory of one worker: its tfjs backend's heap and live tensors. */
export interface WorkerMemory {
  worker: number;
  backend: string;
  numTensors: number;
  numBytes: number;
  /** Size of the wasm heap (it never shrinks, so this is its peak), or null on other backends. */
  wasmHeapBytes: number | null;
}
