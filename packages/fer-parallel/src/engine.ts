import * as path from 'node:path';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { FER_ERROR_CODES, FerError, FerInputError, assertPositiveInt, parseChoice } from 'fer-core';
import { findEntry, moduleFile, workerLaunch } from 'fer-core/node';
import type {
  Chunk,
  DisposeReply,
  GradsReply,
  InferReply,
  InitReply,
  Reply,
  ReplyBody,
  Request,
  RequestBody,
  WeightsReply,
  RemoteError,
} from './protocol';
import type { BatchGradients, HostBatch, StateSync, TaskSpec, VariableInfo, WorkerMemory } from './types';

export interface DataParallelOptions {
  /** The module that builds each worker's replica. */
  task: TaskSpec;
  /** Worker threads (default 2: one per core on the reference machine). */
  workers?: number;
  /**
   * Largest micro-batch a replica sees at once (default: its whole shard). Each worker runs its shard as
   * consecutive micro-batches and accumulates their weighted gradients, so the heap holds one micro-batch's
   * activations at a time.
   */
  microBatch?: number;
  /** How replicas' non-trainable state (BN running statistics) is reconciled after a step. Default 'mean'. */
  stateSync?: StateSync;
  /** Force (true) or forbid (false) the tsx bootstrap. Default: when the engine or the task module is a .ts file. */
  tsx?: boolean;
  /** Extra `execArgv` for the workers. */
  execArgv?: string[];
  /** Passed to each `Worker` (V8 heap limits; the wasm heap is separate and capped at 4 GB by wasm32). */
  resourceLimits?: ResourceLimits;
}

const STATE_SYNCS: readonly StateSync[] = ['mean', 'first', 'none'];

/**
 * Thrown in the main thread for a failure inside a worker. `cause` is the worker's error rebuilt (name, message,
 * stack, and a fer error's `code` and `hint`); the hint is also this error's.
 */
export class WorkerTaskError extends FerError {
  override name = 'WorkerTaskError';
  constructor(
    readonly worker: number,
    readonly operation: string,
    readonly remote: RemoteError,
  ) {
    const cause = Object.assign(new Error(remote.message), remote);
    super(
      FER_ERROR_CODES.workerTask,
      `fer-parallel worker ${worker} failed in ${operation}: ${remote.name}: ${remote.message}`,
      {
        hint: remote.hint,
        cause,
      },
    );
    this.stack = `${this.stack}\n--- worker ${worker} stack ---\n${remote.stack ?? '(none)'}`;
  }
}

interface Pending {
  resolve(body: ReplyBody): void;
  reject(e: Error): void;
  op: string;
}

let liveWorkers = 0;

/** Worker threads started by fer-parallel in this process that have not exited yet (diagnostics, tests). */
export function activeWorkerCount(): number {
  return liveWorkers;
}

/** One worker thread and its request/reply bookkeeping. */
class WorkerHandle {
  readonly pending = new Map<number, Pending>();
  private nextId = 1;
  dead: Error | null = null;
  readonly exited: Promise<number>;

  constructor(
    readonly index: number,
    readonly worker: Worker,
  ) {
    liveWorkers++;
    worker.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      // An idle worker does not keep the process alive (a forgotten dispose() cannot hang a script).
      if (this.pending.size === 0) worker.unref();
      if (reply.ok) p.resolve(reply.body);
      else p.reject(new WorkerTaskError(index, p.op, reply.error));
    });
    worker.on('error', (e) =>
      this.fail(
        new WorkerTaskError(index, 'an uncaught exception', { name: e.name, message: e.message, stack: e.stack }),
      ),
    );
    this.exited = new Promise((resolve) =>
      worker.on('exit', (code) => {
        liveWorkers--;
        this.fail(new Error(`fer-parallel worker ${index} exited (code ${code}) with requests pending.`));
        this.dead ??= new Error(`fer-parallel worker ${index} has exited (code ${code}).`);
        resolve(code);
      }),
    );
  }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  request<T extends ReplyBody>(msg: RequestBody, op: string): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (b: ReplyBody) => void, reject, op });
      this.worker.ref();
      this.worker.postMessage({ ...msg, id } as Request);
    });
  }
}

function startWorker(opts: DataParallelOptions): Worker {
  const self = moduleFile(typeof __filename === 'string' ? __filename : import.meta.url);
  const { entry, candidates } = findEntry(self, 'worker');
  if (!entry)
    throw new Error(
      `fer-parallel: worker entry not found at ${candidates[0]}. Rebuild the package (pnpm --filter fer-parallel build).`,
    );
  const common = { execArgv: opts.execArgv ?? [], resourceLimits: opts.resourceLimits, stdout: false, stderr: false };
  const tsx = opts.tsx ?? (entry.typescript || /\.[cm]?ts$/.test(opts.task.module));
  const launch = workerLaunch(entry, { tsx, resolveFrom: [process.cwd(), path.dirname(self)] });
  if (!launch)
    throw new Error(
      'fer-parallel: running TypeScript sources in workers needs tsx. Install it (pnpm add -D tsx) or build the package and use dist.',
    );
  return new Worker(launch.source, { ...common, eval: launch.eval, env: launch.env });
}

/** Splits n images over `workers` contiguous shards (sizes differ by at most 1, larger first), then micro-batches. */
export function planShards(n: number, workers: number, microBatch: number): Chunk[][] {
  const plan: Chunk[][] = [];
  let start = 0;
  for (let w = 0; w < workers; w++) {
    const size = Math.floor(n / workers) + (w < n % workers ? 1 : 0);
    const chunks: Chunk[] = [];
    for (let s = 0; s < size; s += microBatch) {
      const count = Math.min(microBatch, size - s);
      chunks.push({ start: start + s, count, weight: count / n });
    }
    plan.push(chunks);
    start += size;
  }
  return plan;
}

/**
 * Data-parallel gradients over worker threads. Each worker hosts a replica (its own tfjs backend and heap) built by
 * the task module; `computeGradients` splits a batch into one contiguous shard per worker (micro-batched), and sums
 * the workers' weighted gradients in worker order, so the result equals single-process gradient accumulation over
 * the same micro-batches up to float32 rounding of the sum (bit-identical when each worker runs one micro-batch).
 *
 * Create with `DataParallel.create`; always `dispose()` (it ends the threads).
 *
 * ```ts
 * const dp = await DataParallel.create({ task: ESR_TASK_SPEC({ branches: 1, seed: 1 }), workers: 2, microBatch: 16 });
 * const g = await dp.computeGradients({ images, shape: [32, 96, 96, 3], labels });
 * sgd.step(dp.weights, g.grads);           // any optimiser on the master weights
 * await dp.setWeights(dp.weights);         // broadcast
 * await dp.dispose();
 * ```
 */
export class DataParallel {
  /** Trainable variables in replica order, with their offsets in the flat vector. */
  readonly variables: VariableInfo[];
  /** Total trainable values. */
  readonly size: number;
  readonly stateShapes: number[][];
  readonly backend: string;
  /** Master copy of the weights (worker 0's at start; what `setWeights()` without arguments broadcasts). */
  readonly flatWeights: Float32Array;
  /** Views of `flatWeights`, one per variable. */
  readonly weights: Float32Array[];
  private pendingState: Float32Array | null = null;
  private shared: { images: Float32Array; labels: Int32Array } | null = null;
  private gradFlat: Float32Array;
  /** Per-worker gradient buffers in shared memory, reused every step (no per-step allocation or transfer). */
  private readonly workerGrads: Float32Array[];
  private disposed = false;

  private constructor(
    private readonly handles: WorkerHandle[],
    private readonly opts: Required<Pick<DataParallelOptions, 'stateSync'>> & DataParallelOptions,
    info: InitReply,
    init: WeightsReply,
  ) {
    let offset = 0;
    this.variables = info.names.map((name, i) => {
      const size = info.shapes[i].reduce((a, b) => a * b, 1);
      const v: VariableInfo = { name, group: info.groups[i], shape: info.shapes[i], size, offset };
      offset += size;
      return v;
    });
    this.size = offset;
    this.stateShapes = info.stateShapes;
    this.backend = info.backend;
    // The master weights live in shared memory: setWeights() hands the replicas a view, no copy.
    this.flatWeights = this.toShared(init.flat);
    this.weights = this.views(this.flatWeights);
    this.gradFlat = new Float32Array(this.size);
    this.workerGrads = handles.map(() => new Float32Array(new SharedArrayBuffer(this.size * 4)));
  }

  /**
   * Starts the workers, builds a replica in each, then copies worker 0's weights and state to the others so every
   * replica starts identical (whether or not the task seeds its initialisers).
   */
  static async create(options: DataParallelOptions): Promise<DataParallel> {
    if (!options || typeof options.task?.module !== 'string' || !options.task.module) {
      throw new FerInputError(
        "Expected options.task.module to be a module path or specifier, e.g. { task: { module: require.resolve('./my-task') } }.",
      );
    }
    const workers = options.workers ?? 2;
    assertPositiveInt('workers', workers);
    if (options.microBatch !== undefined) assertPositiveInt('microBatch', options.microBatch);
    const stateSync = parseChoice('stateSync', options.stateSync ?? 'mean', STATE_SYNCS);
    const opts = { ...options, stateSync };
    const handles: WorkerHandle[] = [];
    try {
      for (let i = 0; i < workers; i++) handles.push(new WorkerHandle(i, startWorker(opts)));
      const infos = await Promise.all(
        handles.map((h) =>
          h.request<InitReply>(
            { type: 'init', task: opts.task, workerIndex: h.index, numWorkers: workers },
            'init (createReplica)',
          ),
        ),
      );
      const first = JSON.stringify([infos[0].shapes, infos[0].stateShapes]);
      infos.forEach((inf, i) => {
        if (JSON.stringify([inf.shapes, inf.stateShapes]) !== first) {
          throw new Error(
            `fer-parallel: replica ${i} has different variable shapes from replica 0; the task must build the same model in every worker.`,
          );
        }
      });
      const init = await handles[0].request<WeightsReply>({ type: 'getWeights' }, 'getWeights');
      const engine = new DataParallel(handles, opts, infos[0], init);
      await Promise.all(
        handles
          .slice(1)
          .map((h) => h.request({ type: 'setWeights', flat: engine.flatWeights, state: init.state }, 'setWeights')),
      );
      return engine;
    } catch (e) {
      await Promise.all(handles.map((h) => h.worker.terminate()));
      throw e;
    }
  }

  /** Total state values (BN running statistics, counters) per replica. */
  get stateSize(): number {
    return this.stateShapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  }

  get numWorkers(): number {
    return this.handles.length;
  }

  /**
   * Gradient of the batch's mean loss: Σ_chunks (chunk size / batch size) · ∇(chunk mean loss), chunks being each
   * worker's micro-batches. Each worker's state (BN running statistics) is reconciled per `stateSync` before the
   * next request. The returned arrays are engine-owned and overwritten by the next call.
   */
  async computeGradients(batch: HostBatch): Promise<BatchGradients> {
    this.checkLive();
    const [n, h, w, c] = this.checkBatch(batch);
    const mb = this.opts.microBatch ?? Math.ceil(n / this.numWorkers);
    const plan = planShards(n, this.numWorkers, mb);
    const { images, labels } = this.stage(batch);
    const state = this.pendingState ?? undefined;
    this.pendingState = null;
    const active = this.handles.filter((_, i) => plan[i].length > 0);
    const replies = await Promise.all(
      active.map((hd) =>
        hd.request<GradsReply>(
          {
            type: 'grads',
            images,
            labels,
            image: [h, w, c],
            chunks: plan[hd.index],
            state,
            out: this.workerGrads[hd.index],
          },
          'computeGradients',
        ),
      ),
    );
    // Fixed order: worker 0 first, then 1, …; fl(a + b) per element, as the workers accumulate their chunks.
    const g = this.gradFlat;
    g.set(replies[0].flat);
    for (let r = 1; r < replies.length; r++) {
      const f = replies[r].flat;
      for (let e = 0; e < g.length; e++) g[e] = g[e] + f[e];
    }
    let loss = 0;
    const terms: Record<string, number> = {};
    for (const r of replies) {
      loss += r.loss;
      for (const [k, v] of Object.entries(r.terms)) terms[k] = (terms[k] ?? 0) + v;
    }
    const counts = replies[0].counts.map((_, i) => replies.reduce((a, r) => a + (r.counts[i] ?? 0), 0));
    this.reconcileState(
      replies,
      active.map((hd) => plan[hd.index].reduce((a, ch) => a + ch.count, 0) / n),
      active.length,
    );
    const after = this.pendingState ?? (this.opts.stateSync === 'none' ? null : replies[0].state);
    return {
      loss,
      terms,
      counts,
      state: after,
      grads: this.views(g),
      flat: g,
      count: n,
      workerMs: replies.map((r) => r.ms),
    };
  }

  /**
   * Inference with the replicas' `infer` (eval mode): the batch is sharded as in `computeGradients` and the
   * image-major outputs are concatenated in batch order. Returns a fresh array owned by the caller.
   */
  async infer(batch: HostBatch): Promise<{ outputs: Float32Array; rowSize: number; workerMs: number[] }> {
    this.checkLive();
    const [n, h, w, c] = this.checkBatch(batch);
    const plan = planShards(n, this.numWorkers, this.opts.microBatch ?? Math.ceil(n / this.numWorkers));
    const { images, labels } = this.stage(batch);
    const state = this.pendingState ?? undefined;
    this.pendingState = null;
    const active = this.handles.filter((_, i) => plan[i].length > 0);
    const replies = await Promise.all(
      active.map((hd) =>
        hd.request<InferReply>(
          { type: 'infer', images, labels, image: [h, w, c], chunks: plan[hd.index], state },
          'infer',
        ),
      ),
    );
    const outputs = new Float32Array(replies.reduce((a, r) => a + r.flat.length, 0));
    let off = 0;
    for (const r of replies) {
      outputs.set(r.flat, off);
      off += r.flat.length;
    }
    return { outputs, rowSize: outputs.length / n, workerMs: replies.map((r) => r.ms) };
  }

  /**
   * One optimiser step: batch gradients, `optimizer.step` on the master weights, broadcast. Returns the batch loss
   * and terms (read before the update).
   */
  async step(
    batch: HostBatch,
    optimizer: { step(weights: Float32Array[], grads: Float32Array[]): void },
  ): Promise<{ loss: number; terms: Record<string, number>; count: number }> {
    const g = await this.computeGradients(batch);
    optimizer.step(this.weights, g.grads);
    await this.setWeights();
    return { loss: g.loss, terms: g.terms, count: g.count };
  }

  /**
   * Sends weights to every replica: the given arrays (one per variable, or one flat vector), which also become the
   * master copy, or the master copy `weights` / `flatWeights` as it stands (e.g. after an optimiser step on it).
   * `state` (flat, `stateSize` values in `Replica.state` order) replaces the replicas' state, e.g. after a
   * checkpoint reload; without it they get the state reconciled after the last step (if not sent yet).
   */
  async setWeights(values?: Float32Array | Float32Array[], state?: Float32Array): Promise<void> {
    this.checkLive();
    if (values) this.copyIntoMaster(values);
    if (state !== undefined && state.length !== this.stateSize)
      throw new FerInputError(`Expected a flat state vector of ${this.stateSize} values, but got ${state.length}.`);
    const flat = this.flatWeights;
    state ??= this.pendingState ?? undefined;
    this.pendingState = null;
    await Promise.all(this.handles.map((h) => h.request({ type: 'setWeights', flat, state }, 'setWeights')));
  }

  /** Weights and state as replica 0 holds them (fresh copies owned by the caller). */
  async getWeights(): Promise<{ weights: Float32Array[]; state: Float32Array[] }> {
    this.checkLive();
    await this.flushState();
    const r = await this.handles[0].request<WeightsReply>({ type: 'getWeights' }, 'getWeights');
    return { weights: this.views(r.flat), state: this.splitState(r.state) };
  }

  /** Every replica's weights and state (fresh copies; for checking that the replicas agree). */
  async replicaSnapshots(): Promise<{ weights: Float32Array[]; state: Float32Array[] }[]> {
    this.checkLive();
    await this.flushState();
    const rs = await Promise.all(
      this.handles.map((h) => h.request<WeightsReply>({ type: 'getWeights' }, 'getWeights')),
    );
    return rs.map((r) => ({ weights: this.views(r.flat), state: this.splitState(r.state) }));
  }

  /** Each worker's tfjs memory (live tensors, wasm heap size). */
  async memory(): Promise<WorkerMemory[]> {
    this.checkLive();
    const ms = await Promise.all(this.handles.map((h) => h.request<WorkerMemory>({ type: 'memory' }, 'memory')));
    return ms.map((m, i) => ({ ...m, worker: i }));
  }

  /**
   * Disposes every replica, waits for the threads to end (terminating any that do not within `timeoutMs`) and
   * returns the tensors each replica left behind (0 when the task cleans up). Idempotent.
   */
  async dispose(timeoutMs = 10000): Promise<{ leaked: number[] }> {
    if (this.disposed) return { leaked: [] };
    this.disposed = true;
    const leaked = await Promise.all(
      this.handles.map(async (h) => {
        try {
          return (await h.request<DisposeReply>({ type: 'dispose' }, 'dispose')).leaked;
        } catch {
          return NaN;
        }
      }),
    );
    await Promise.all(
      this.handles.map(async (h) => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
        const code = await Promise.race([h.exited, timeout]);
        clearTimeout(timer);
        if (code === undefined) await h.worker.terminate();
      }),
    );
    return { leaked };
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('This DataParallel engine was disposed; create a new one.');
    const dead = this.handles.find((h) => h.dead);
    if (dead)
      throw new Error(
        `fer-parallel: worker ${dead.index} is no longer usable (${dead.dead!.message}). Dispose the engine and create a new one.`,
      );
  }

  private checkBatch(b: HostBatch): [number, number, number, number] {
    const s = b?.shape;
    if (!Array.isArray(s) || s.length !== 4 || s.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new FerInputError(
        `Expected batch.shape to be [n, height, width, channels] of positive integers, but got ${JSON.stringify(s)}.`,
      );
    }
    const [n, h, w, c] = s;
    if (!(b.images instanceof Float32Array) || b.images.length !== n * h * w * c) {
      throw new FerInputError(
        `Expected batch.images to be a Float32Array of ${n}×${h}×${w}×${c} = ${n * h * w * c} values, but got ${b.images?.length ?? typeof b.images}.`,
      );
    }
    if (!(b.labels instanceof Int32Array) || b.labels.length !== n) {
      throw new FerInputError(
        `Expected batch.labels to be an Int32Array of ${n} class indices, but got ${b.labels?.length ?? typeof b.labels}.`,
      );
    }
    return [n, h, w, c];
  }

  /** Puts the batch in shared memory once (reused across calls), so workers read their shards without copies. */
  private stage(b: HostBatch): { images: Float32Array; labels: Int32Array } {
    if (b.images.buffer instanceof SharedArrayBuffer && b.labels.buffer instanceof SharedArrayBuffer) return b;
    const cur = this.shared;
    const images =
      cur && cur.images.length === b.images.length
        ? cur.images
        : new Float32Array(new SharedArrayBuffer(b.images.byteLength));
    const labels =
      cur && cur.labels.length === b.labels.length
        ? cur.labels
        : new Int32Array(new SharedArrayBuffer(b.labels.byteLength));
    images.set(b.images);
    labels.set(b.labels);
    this.shared = { images, labels };
    return this.shared;
  }

  private toShared(flat: Float32Array): Float32Array {
    const s = new Float32Array(new SharedArrayBuffer(flat.byteLength));
    s.set(flat);
    return s;
  }

  private copyIntoMaster(values: Float32Array | Float32Array[]): void {
    if (values instanceof Float32Array) {
      if (values.length !== this.size)
        throw new FerInputError(`Expected a flat weight vector of ${this.size} values, but got ${values.length}.`);
      if (values !== this.flatWeights) this.flatWeights.set(values);
      return;
    }
    if (!Array.isArray(values) || values.length !== this.variables.length) {
      throw new FerInputError(
        `Expected ${this.variables.length} weight arrays (one per variable), but got ${Array.isArray(values) ? values.length : typeof values}.`,
      );
    }
    values.forEach((v, i) => {
      const info = this.variables[i];
      if (!(v instanceof Float32Array) || v.length !== info.size) {
        throw new FerInputError(
          `Expected weights for ${info.name} [${info.shape.join(', ')}] to be a Float32Array of ${info.size} values, but got ${v?.length}.`,
        );
      }
      if (v !== this.weights[i]) this.weights[i].set(v);
    });
  }

  private views(flat: Float32Array): Float32Array[] {
    return this.variables.map((v) => flat.subarray(v.offset, v.offset + v.size));
  }

  private splitState(flat: Float32Array): Float32Array[] {
    let off = 0;
    return this.stateShapes.map((s) => {
      const n = s.reduce((a, b) => a * b, 1);
      const v = flat.subarray(off, off + n);
      off += n;
      return v;
    });
  }

  private reconcileState(replies: GradsReply[], shares: number[], active: number): void {
    if (this.opts.stateSync === 'none' || !replies[0].state || (active === 1 && this.numWorkers === 1)) return;
    const len = replies[0].state.length;
    const out = new Float32Array(new SharedArrayBuffer(len * 4));
    if (this.opts.stateSync === 'first') out.set(replies[0].state);
    else {
      // Weighted mean in worker order (double accumulation, one rounding).
      for (let e = 0; e < len; e++) {
        let s = 0;
        for (let r = 0; r < replies.length; r++) s += shares[r] * replies[r].state![e];
        out[e] = s;
      }
    }
    this.pendingState = out;
  }

  private async flushState(): Promise<void> {
    if (!this.pendingState) return;
    const state = this.pendingState;
    this.pendingState = null;
    await Promise.all(this.handles.map((h) => h.request({ type: 'setWeights', state }, 'setState')));
  }
}
