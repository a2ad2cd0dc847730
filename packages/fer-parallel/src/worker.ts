/**
 * Worker entry: builds one replica from the task module and answers the engine's requests one at a time.
 * Runs from the TS sources (the engine bootstraps tsx) or from the built dist files.
 */
import { parentPort } from 'node:worker_threads';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { tfjsInternals } from 'fer-core';
import { moduleFile } from 'fer-core/node';
import type { Chunk, GradsReply, InferReply, InitReply, Reply, ReplyBody, Request } from './protocol';
import type { CreateReplica, Replica, ShardBatch, TaskSpec, WorkerMemory } from './types';

let replica: Replica | null = null;
let sizes: number[] = [];
let stateSizes: number[] = [];
let baselineTensors = 0;

async function loadTask(task: TaskSpec): Promise<CreateReplica> {
  const name = task.export ?? 'createReplica';
  let mod: Record<string, unknown>;
  // require first: under tsx (CJS hooks) it loads .ts files and resolves tsconfig paths; dist CJS too.
  const bases = [
    path.join(process.cwd(), 'noop.js'),
    moduleFile(typeof __filename === 'string' ? __filename : import.meta.url),
  ];
  let lastError: unknown;
  mod = undefined as never;
  for (const base of bases) {
    try {
      mod = createRequire(base)(task.module) as Record<string, unknown>;
      break;
    } catch (e) {
      lastError = e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ERR_REQUIRE_ESM') {
        const spec = path.isAbsolute(task.module) ? pathToFileURL(task.module).href : task.module;
        mod = (await import(spec)) as Record<string, unknown>;
        break;
      }
      if (code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  if (!mod) {
    throw new Error(
      `Could not load the task module '${task.module}' (${(lastError as Error)?.message?.split('\n')[0]}). ` +
        'Pass an absolute path or a package specifier resolvable from the working directory.',
    );
  }
  const fn = mod[name] ?? (mod.default as Record<string, unknown> | undefined)?.[name];
  if (typeof fn !== 'function') {
    const found = Object.keys(mod).filter((k) => typeof mod[k] === 'function');
    throw new Error(
      `The task module '${task.module}' has no function export '${name}'. Found: ${found.join(', ') || 'none'}. Set task.export.`,
    );
  }
  return fn as CreateReplica;
}

function wasmHeapBytes(): number | null {
  const b = tfjsInternals.wasmBackendInternals();
  return b ? b.wasm.HEAPU8.buffer.byteLength : null;
}

function need(): Replica {
  if (!replica) throw new Error('The worker has no replica (init failed or it was disposed).');
  return replica;
}

function setFlat(vars: tf.Variable[], flat: Float32Array, what: string): void {
  let off = 0;
  for (const v of vars) {
    if (off + v.size > flat.length)
      throw new Error(`Expected ${what} of at least ${off + v.size} values, but got ${flat.length}.`);
    const t = tf.tensor(flat.subarray(off, off + v.size), v.shape, 'float32');
    v.assign(v.dtype === 'float32' ? t : tf.cast(t, v.dtype));
    t.dispose();
    off += v.size;
  }
  if (off !== flat.length) throw new Error(`Expected ${what} of ${off} values, but got ${flat.length}.`);
}

async function readFlat(vars: tf.Variable[], total: number): Promise<Float32Array> {
  const out = new Float32Array(total);
  let off = 0;
  for (const v of vars) {
    out.set(await v.data(), off);
    off += v.size;
  }
  return out;
}

async function init(req: Extract<Request, { type: 'init' }>): Promise<InitReply> {
  const create = await loadTask(req.task);
  // Readable before any backend is set (tf.memory() is not).
  baselineTensors = tfjsInternals.liveTensorCount();
  replica = await create(req.task.config as never, { workerIndex: req.workerIndex, numWorkers: req.numWorkers });
  const r = replica;
  if (!r || !Array.isArray(r.variables) || typeof r.computeGradients !== 'function') {
    throw new Error(
      `The task's ${req.task.export ?? 'createReplica'} must return { variables: tf.Variable[], computeGradients(batch) }.`,
    );
  }
  if (r.groups && r.groups.length !== r.variables.length) {
    throw new Error(`Expected one group per variable (${r.variables.length}), but got ${r.groups.length}.`);
  }
  sizes = r.variables.map((v) => v.size);
  stateSizes = (r.state ?? []).map((v) => v.size);
  return {
    names: r.variables.map((v) => v.name),
    groups: r.groups ?? r.variables.map(() => 'all'),
    shapes: r.variables.map((v) => [...v.shape]),
    stateShapes: (r.state ?? []).map((v) => [...v.shape]),
    backend: tf.getBackend(),
  };
}

async function grads(req: Extract<Request, { type: 'grads' }>): Promise<GradsReply> {
  const r = need();
  const t0 = performance.now();
  if (req.state) setFlat(r.state ?? [], req.state, 'state');
  const total = sizes.reduce((a, b) => a + b, 0);
  const acc = req.out && req.out.length === total ? req.out : new Float32Array(total);
  const terms: Record<string, number> = {};
  let counts: number[] = [];
  let loss = 0;
  const [h, w, c] = req.image;
  const px = h * w * c;
  req.chunks.forEach((ch, i) => {
    if (i > 0 && req.chunks[i - 1].start + req.chunks[i - 1].count !== ch.start)
      throw new Error('Chunks must be contiguous.');
  });
  for (let k = 0; k < req.chunks.length; k++) {
    const ch: Chunk = req.chunks[k];
    const batch: ShardBatch = {
      images: req.images.subarray(ch.start * px, (ch.start + ch.count) * px),
      shape: [ch.count, h, w, c],
      labels: req.labels.subarray(ch.start, ch.start + ch.count),
    };
    const out = await r.computeGradients(batch);
    if (!out || !Array.isArray(out.grads) || out.grads.length !== sizes.length) {
      tf.dispose((out?.grads ?? []).filter((g): g is tf.Tensor => g instanceof tf.Tensor));
      throw new Error(
        `Expected computeGradients to return ${sizes.length} gradients (one per variable), but got ${out?.grads?.length}.`,
      );
    }
    let off = 0;
    try {
      for (let j = 0; j < out.grads.length; j++) {
        const g = out.grads[j];
        const vals = g instanceof tf.Tensor ? ((await g.data()) as Float32Array) : g;
        if (vals.length !== sizes[j])
          throw new Error(`Gradient ${j} has ${vals.length} values; its variable has ${sizes[j]}.`);
        const wgt = Math.fround(ch.weight);
        // acc = fl(acc + fl(w·g)): the same arithmetic the engine uses to sum workers, so 1 worker × 2 chunks and
        // 2 workers × 1 chunk give bit-identical sums.
        if (k === 0) for (let e = 0; e < vals.length; e++) acc[off + e] = wgt * vals[e];
        else for (let e = 0; e < vals.length; e++) acc[off + e] = acc[off + e] + Math.fround(wgt * vals[e]);
        off += vals.length;
      }
    } finally {
      tf.dispose(out.grads.filter((g): g is tf.Tensor => g instanceof tf.Tensor));
    }
    loss += ch.weight * out.loss;
    if (out.counts) {
      if (k > 0 && out.counts.length !== counts.length)
        throw new Error(`Expected ${counts.length} counts from every micro-batch, but got ${out.counts.length}.`);
      counts = k === 0 ? [...out.counts] : counts.map((v, i) => v + out.counts![i]);
    }
    for (const [n, v] of Object.entries(out.terms ?? {})) terms[n] = (terms[n] ?? 0) + ch.weight * v;
  }
  const state =
    r.state && r.state.length
      ? await readFlat(
          r.state,
          stateSizes.reduce((a, b) => a + b, 0),
        )
      : null;
  return { loss, terms, counts, flat: acc, state, ms: performance.now() - t0 };
}

async function infer(req: Extract<Request, { type: 'infer' }>): Promise<InferReply> {
  const r = need();
  if (typeof r.infer !== 'function')
    throw new Error("The task's replica has no infer(batch) method; add one to run inference in parallel.");
  const t0 = performance.now();
  if (req.state) setFlat(r.state ?? [], req.state, 'state');
  const [h, w, c] = req.image;
  const px = h * w * c;
  const parts: Float32Array[] = [];
  for (const ch of req.chunks) {
    const out = await r.infer({
      images: req.images.subarray(ch.start * px, (ch.start + ch.count) * px),
      shape: [ch.count, h, w, c],
      labels: req.labels.subarray(ch.start, ch.start + ch.count),
    });
    const vals = out instanceof tf.Tensor ? ((await out.data()) as Float32Array) : out;
    if (out instanceof tf.Tensor) out.dispose();
    if (vals.length % ch.count !== 0)
      throw new Error(`Expected infer() to return ${ch.count} equal rows, but got ${vals.length} values.`);
    parts.push(vals);
  }
  const flat = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    flat.set(p, off);
    off += p.length;
  }
  return { flat, ms: performance.now() - t0 };
}

async function handle(req: Request): Promise<ReplyBody> {
  switch (req.type) {
    case 'init':
      return init(req);
    case 'grads':
      return grads(req);
    case 'infer':
      return infer(req);
    case 'setWeights': {
      const r = need();
      if (req.flat) setFlat(r.variables, req.flat, 'weights');
      if (req.state) setFlat(r.state ?? [], req.state, 'state');
      return null;
    }
    case 'getWeights': {
      const r = need();
      return {
        flat: await readFlat(
          r.variables,
          sizes.reduce((a, b) => a + b, 0),
        ),
        state: await readFlat(
          r.state ?? [],
          stateSizes.reduce((a, b) => a + b, 0),
        ),
      };
    }
    case 'memory': {
      const m = tf.memory();
      const body: WorkerMemory = {
        worker: -1,
        backend: tf.getBackend(),
        numTensors: m.numTensors,
        numBytes: m.numBytes,
        wasmHeapBytes: wasmHeapBytes(),
      };
      return body;
    }
    case 'dispose': {
      replica?.dispose?.();
      replica = null;
      return { leaked: tfjsInternals.liveTensorCount() - baselineTensors };
    }
  }
}

function transferables(body: ReplyBody): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  const b = body as { flat?: Float32Array; state?: Float32Array | null } | null;
  for (const a of [b?.flat, b?.state]) if (a && a.buffer instanceof ArrayBuffer) out.push(a.buffer);
  return out;
}

const port = parentPort;
if (!port) throw new Error('fer-parallel/worker must run in a worker thread (the engine starts it).');
let queue: Promise<void> = Promise.resolve();
port.on('message', (req: Request) => {
  queue = queue.then(async () => {
    let reply: Reply;
    try {
      const body = await handle(req);
      reply = { id: req.id, ok: true, body };
      port.postMessage(reply, transferables(body));
    } catch (e) {
      // fer errors (a `FER_…` code, see fer-core's isFerError) keep their code and hint across the thread boundary.
      const err = e as { name?: string; message?: string; stack?: string; code?: unknown; hint?: string } | undefined;
      const fer = typeof err?.code === 'string' && err.code.startsWith('FER_');
      reply = {
        id: req.id,
        ok: false,
        error: {
          name: err?.name ?? 'Error',
          message: String(err?.message ?? e),
          stack: err?.stack,
          ...(fer ? { code: err!.code as string, hint: err!.hint } : {}),
        },
      };
      port.postMessage(reply);
    }
    if (req.type === 'dispose') port.close();
  });
});
