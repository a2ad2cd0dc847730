/**
 * Runs batch jobs either in-process (`workers: 0`) or on a pool of worker threads. Workers are created per
 * iteration and terminated when it ends or is abandoned; they are `unref`'d so a forgotten iterator never keeps
 * the process alive.
 *
 * Loading the worker script (fer-core/node's `findEntry` and `workerLaunch`): from the built package it is
 * `dist/worker.js` (or `.mjs`); from TypeScript sources (jest, tsx) `worker.ts`, through tsx. When neither is
 * available the executor falls back to in-process work and says so once.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { findEntry, moduleFile, workerLaunch, type WorkerLaunch } from 'fer-core/node';
import { processJob, type ItemSpec, type JobResult, type PipelineConfig } from './process';

export interface Executor {
  readonly kind: 'in-process' | 'workers';
  readonly workers: number;
  run(items: ItemSpec[]): Promise<JobResult>;
  /** Terminates workers and rejects unfinished jobs. Idempotent. */
  close(): Promise<void>;
}

let live = 0;

/** Worker threads currently alive across all pipelines (for leak tests and diagnostics). */
export function liveWorkerCount(): number {
  return live;
}

let launchCache: WorkerLaunch | null | undefined;

/** How to start a worker from wherever this module was loaded (worker.ts / dist worker.js); null when impossible. */
function launch(): WorkerLaunch | null {
  if (launchCache !== undefined) return launchCache;
  const self = moduleFile(typeof __filename === 'string' ? __filename : import.meta.url);
  const { entry } = findEntry(self, 'worker');
  launchCache = entry && workerLaunch(entry, { resolveFrom: [path.dirname(self)] });
  return launchCache;
}

let warnedFallback = false;

export function createExecutor(cfg: PipelineConfig, workers: number, warn: (msg: string) => void): Executor {
  if (workers > 0) {
    const how = launch();
    if (how) return new WorkerExecutor(cfg, workers, how);
    if (!warnedFallback) {
      warnedFallback = true;
      warn(
        'fer-datasets: worker threads unavailable (running from TypeScript sources without tsx, or dist/worker.js ' +
          'missing); decoding in the main thread instead. Install tsx or build the package to use workers.',
      );
    }
  }
  // In-process jobs cannot be interrupted; closing waits for those in flight so no file stays open afterwards.
  const running = new Set<Promise<unknown>>();
  let closed = false;
  return {
    kind: 'in-process',
    workers: 0,
    run: (items) => {
      if (closed) return Promise.reject(new Error('fer-datasets pipeline is closed.'));
      const p = processJob(items, cfg);
      running.add(p);
      const forget = () => running.delete(p);
      p.then(forget, forget);
      return p;
    },
    close: async () => {
      closed = true;
      await Promise.allSettled([...running]);
    },
  };
}

/** How long `close()` lets a worker finish its current job (so its open files are closed) before terminating it. */
const DRAIN_MS = 10_000;

interface Pending {
  id: number;
  items: ItemSpec[];
  resolve: (r: JobResult) => void;
  reject: (e: Error) => void;
  /** Settles when the job's answer arrives (or it fails). */
  settled: Promise<void>;
}

class WorkerExecutor implements Executor {
  readonly kind = 'workers';
  private readonly pool: { worker: Worker; job: Pending | null }[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 0;
  private closed = false;
  private failure: Error | null = null;

  constructor(
    cfg: PipelineConfig,
    readonly workers: number,
    launch: WorkerLaunch,
  ) {
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(launch.source, { eval: launch.eval, env: launch.env, workerData: { config: cfg } });
      worker.unref();
      live++;
      const slot = { worker, job: null as Pending | null };
      worker.on('message', (msg: { id: number; images?: Float32Array; errors?: string[]; fatal?: string }) => {
        const job = slot.job;
        slot.job = null;
        if (job && job.id === msg.id) {
          if (msg.fatal) job.reject(new Error(`fer-datasets worker failed: ${msg.fatal}`));
          else job.resolve({ images: msg.images!, errors: msg.errors! });
        }
        this.dispatch();
      });
      worker.on('error', (e) => this.fail(new Error(`fer-datasets worker crashed: ${e.message}`)));
      worker.once('exit', () => {
        live--;
      });
      this.pool.push(slot);
    }
  }

  run(items: ItemSpec[]): Promise<JobResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('fer-datasets pipeline is closed.'));
    return new Promise((resolve, reject) => {
      let done!: () => void;
      const settled = new Promise<void>((r) => (done = r));
      this.queue.push({
        id: this.nextId++,
        items,
        resolve: (r) => (done(), resolve(r)),
        reject: (e) => (done(), reject(e)),
        settled,
      });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.pool) {
      if (slot.job || !this.queue.length || this.closed) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.postMessage({ id: job.id, items: job.items });
    }
  }

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    for (const slot of this.pool) {
      slot.job?.reject(e);
      slot.job = null;
    }
    for (const j of this.queue.splice(0)) j.reject(e);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('fer-datasets pipeline is closed.');
    for (const j of this.queue.splice(0)) j.reject(err);
    // Let each busy worker finish its job (terminating mid-read could strand a file descriptor), then stop it.
    const busy = this.pool.filter((s) => s.job).map((s) => s.job!.settled);
    if (busy.length && !this.failure) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(busy), new Promise((r) => (timer = setTimeout(r, DRAIN_MS)))]);
      clearTimeout(timer);
    }
    for (const slot of this.pool) {
      slot.job?.reject(err);
      slot.job = null;
    }
    await Promise.all(this.pool.map((s) => s.worker.terminate()));
  }
}
