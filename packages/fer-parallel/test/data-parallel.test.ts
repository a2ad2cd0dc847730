/**
 * The engine on a tiny conv net (cpu backend in the workers): gradients equal the main thread's full-batch
 * gradients (no batch norm), replicas stay identical after steps, state sync, errors, leaks and thread shutdown.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { expectArrayClose } from 'fer-test-utils';
import { DataParallel, FlatSgd, WorkerTaskError, activeWorkerCount } from '../src';
import { tinyLoss, type TinyConfig } from './tasks/tiny';

const TINY = path.join(__dirname, 'tasks', 'tiny.ts');
const [N, H, W, C, K] = [6, 5, 5, 2, 3];

function makeBatch(n = N) {
  const images = new Float32Array(n * H * W * C).map((_, i) => Math.sin(0.37 * i) + 0.1 * Math.cos(1.3 * i));
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 2) % K);
  return { images, shape: [n, H, W, C] as [number, number, number, number], labels };
}

const tiny = (config: Partial<TinyConfig> = {}) => ({ module: TINY, config: { channels: C, classes: K, ...config } });

/** Full-batch gradient in this thread, from the given weights (order w1, b1, [gamma, beta], w2, b2). */
function mainThreadGrads(
  weights: Float32Array[],
  shapes: number[][],
  bn: boolean,
): { loss: number; grads: Float32Array[] } {
  return tf.tidy(() => {
    const vars = weights.map((w, i) => tf.variable(tf.tensor(w, shapes[i]), true));
    const [w1, b1, ...rest] = vars;
    const p = bn
      ? { w1, b1, gamma: rest[0], beta: rest[1], w2: rest[2], b2: rest[3] }
      : { w1, b1, w2: rest[0], b2: rest[1] };
    const b = makeBatch();
    const x = tf.tensor4d(b.images, b.shape);
    const y = tf.tensor1d(b.labels, 'int32');
    const { value, grads } = tf.variableGrads(() => tinyLoss(p, x, y, K).loss, vars);
    const out = { loss: value.dataSync()[0], grads: vars.map((v) => grads[v.name].dataSync() as Float32Array) };
    vars.forEach((v) => v.dispose());
    return out;
  });
}

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

describe('DataParallel (tiny task)', () => {
  it('2 workers: batch gradient equals the full-batch gradient in the main thread; replicas stay identical; no leaks; threads end', async () => {
    const before = activeWorkerCount();
    const dp = await DataParallel.create({ task: tiny({ seed: 3 }), workers: 2 });
    try {
      expect(dp.numWorkers).toBe(2);
      expect(activeWorkerCount()).toBe(before + 2);
      expect(dp.variables.map((v) => [v.group, v.shape])).toEqual([
        ['conv', [3, 3, C, 4]],
        ['conv', [4]],
        ['rest', [4, K]],
        ['rest', [K]],
      ]);
      // Workers seed differently (3 and 4): create() must have copied worker 0's weights to worker 1.
      const snap0 = await dp.replicaSnapshots();
      snap0[1].weights.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(snap0[0].weights[i])));
      expect(Array.from(dp.flatWeights)).toEqual(Array.from(snap0[0].weights.flatMap((w) => Array.from(w))));

      const g = await dp.computeGradients(makeBatch());
      const ref = mainThreadGrads(
        dp.weights,
        dp.variables.map((v) => v.shape),
        false,
      );
      expect(g.count).toBe(N);
      expect(g.loss).toBeCloseTo(ref.loss, 5);
      expect(g.terms.ce).toBeCloseTo(ref.loss, 5);
      g.grads.forEach((gr, i) => expectArrayClose(gr, ref.grads[i], { rtol: 1e-5, atol: 1e-7 }, dp.variables[i].name));
      expect(g.grads.every((gr) => gr.some((v) => v !== 0))).toBe(true);

      const sgd = new FlatSgd(dp.variables, {
        conv: { lr: 0.05, momentum: 0.9 },
        rest: { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 },
      });
      const mem0 = await dp.memory();
      for (let s = 0; s < 2; s++) await dp.step(makeBatch(), sgd);
      const mem1 = await dp.memory();
      expect(mem1.map((m) => m.numTensors)).toEqual(mem0.map((m) => m.numTensors));
      expect(mem1.every((m) => m.backend === 'cpu' && m.wasmHeapBytes === null)).toBe(true);
      const snap = await dp.replicaSnapshots();
      for (const s of snap) s.weights.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(dp.weights[i])));
      expect(Array.from(snap[0].weights[0])).not.toEqual(Array.from(snap0[0].weights[0]));
    } finally {
      const { leaked } = await dp.dispose();
      expect(leaked).toEqual([0, 0]);
    }
    expect(activeWorkerCount()).toBe(before);
    await expect(dp.computeGradients(makeBatch())).rejects.toThrow('was disposed');
  });

  it('batch norm: 2 workers × 1 shard equal 1 worker accumulating the same 2 micro-batches bit for bit; running stats are the shard mean', async () => {
    const task = tiny({ batchNorm: true, seed: 5 });
    const single = await DataParallel.create({ task, workers: 1, microBatch: N / 2 });
    let g1: Float32Array;
    let init: { weights: Float32Array[]; state: Float32Array[] };
    try {
      init = await single.getWeights();
      g1 = Float32Array.from((await single.computeGradients(makeBatch())).flat);
    } finally {
      await single.dispose();
    }
    const dp = await DataParallel.create({ task, workers: 2 });
    try {
      const start = await dp.getWeights();
      start.weights.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(init.weights[i])));
      const g2 = await dp.computeGradients(makeBatch());
      // Same micro-batches, same kernels, same summation arithmetic: identical.
      expect(Array.from(g2.flat)).toEqual(Array.from(g1));
      // With BN the full-batch gradient differs (per-shard batch statistics): document that it is not that.
      const full = mainThreadGrads(
        g2.grads.map((_, i) => start.weights[i]),
        dp.variables.map((v) => v.shape),
        true,
      );
      expect(Math.max(...full.grads[0].map((v, i) => Math.abs(v - g2.grads[0][i])))).toBeGreaterThan(1e-6);

      // Expected running stats: 0.9·init + 0.1·mean over shards of each shard's (mean, unbiased var).
      const stats = tf.tidy(() => {
        const [w1, b1] = start.weights.slice(0, 2).map((w, i) => tf.tensor(w, dp.variables[i].shape));
        const b = makeBatch();
        const x = tf.tensor4d(b.images, b.shape);
        const h = tf.add(tf.conv2d(x, w1 as tf.Tensor4D, 1, 'same'), b1);
        const halves = [tf.slice(h, [0], [N / 2]), tf.slice(h, [N / 2], [N / 2])];
        const n = (N / 2) * H * W;
        const ms = halves.map((hh) => tf.moments(hh, [0, 1, 2]));
        const mean = tf.mul(tf.add(ms[0].mean, ms[1].mean), 0.5);
        const varU = tf.mul(tf.add(ms[0].variance, ms[1].variance), (0.5 * n) / (n - 1));
        return [tf.add(0.0, tf.mul(mean, 0.1)).dataSync(), tf.add(0.9, tf.mul(varU, 0.1)).dataSync()];
      });
      const snaps = await dp.replicaSnapshots();
      // What computeGradients reported as the reconciled state is what every replica now holds; no counts from tiny.
      expect(g2.counts).toEqual([]);
      expect(Array.from(g2.state!)).toEqual([...Array.from(snaps[0].state[0]), ...Array.from(snaps[0].state[1])]);
      for (const s of snaps) {
        expectArrayClose(s.state[0], stats[0], { rtol: 1e-5, atol: 1e-7 }, 'running_mean');
        expectArrayClose(s.state[1], stats[1], { rtol: 1e-5, atol: 1e-7 }, 'running_var');
      }
    } finally {
      expect((await dp.dispose()).leaked).toEqual([0, 0]);
    }
  });

  it('a failure inside a worker surfaces in the main thread with its message; the engine still disposes cleanly', async () => {
    const before = activeWorkerCount();
    const dp = await DataParallel.create({ task: tiny({ failOn: 'compute' }), workers: 2 });
    const err = await dp.computeGradients(makeBatch()).catch((e) => e);
    expect(err).toBeInstanceOf(WorkerTaskError);
    expect(err.message).toMatch(
      /^fer-parallel worker [01] failed in computeGradients: Error: tiny task: cannot handle a batch of 3$/,
    );
    expect(err.stack).toContain('tiny.ts');
    expect((await dp.dispose()).leaked).toEqual([0, 0]);
    expect(activeWorkerCount()).toBe(before);
  });

  it('create() fails clearly for a failing, missing or malformed task and leaves no threads', async () => {
    const before = activeWorkerCount();
    await expect(DataParallel.create({ task: tiny({ failOn: 'create' }), workers: 2 })).rejects.toThrow(
      /worker [01] failed in init \(createReplica\): RangeError: tiny task refused to start in worker [01]/,
    );
    await expect(
      DataParallel.create({ task: { module: path.join(__dirname, 'tasks', 'nope.ts') }, workers: 1 }),
    ).rejects.toThrow(/Could not load the task module '.*nope\.ts'/);
    await expect(DataParallel.create({ task: { module: TINY, export: 'makeIt' }, workers: 1 })).rejects.toThrow(
      "has no function export 'makeIt'. Found: createReplica, tinyLoss. Set task.export.",
    );
    await expect(DataParallel.create({ task: tiny(), workers: 0 })).rejects.toThrow(
      'Expected workers to be a positive integer',
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(activeWorkerCount()).toBe(before);
  });

  it('rejects malformed batches before any work, and reports tensors a replica leaks', async () => {
    const dp = await DataParallel.create({ task: tiny({ leak: true }), workers: 1 });
    try {
      const b = makeBatch();
      await expect(dp.computeGradients({ ...b, labels: new Int32Array(2) })).rejects.toThrow(
        'Expected batch.labels to be an Int32Array of 6 class indices, but got 2.',
      );
      await expect(dp.computeGradients({ ...b, shape: [6, 5, 5, 3] })).rejects.toThrow(
        'Expected batch.images to be a Float32Array of 6×5×5×3 = 450 values, but got 300.',
      );
      await expect(dp.setWeights([new Float32Array(1)])).rejects.toThrow(
        'Expected 4 weight arrays (one per variable), but got 1.',
      );
      await expect(dp.setWeights(undefined, new Float32Array(1))).rejects.toThrow(
        'Expected a flat state vector of 0 values, but got 1.',
      );
      await dp.computeGradients(b);
    } finally {
      expect((await dp.dispose()).leaked).toEqual([1]);
    }
  });
});
