import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from 'fer-backend';
import { BASIC7_LABELS, FerInputError, type Batch, type BatchOptions, type FerDataset } from 'fer-core';
import { syntheticExpressions } from 'fer-datasets';
import { createModel } from 'fer-models';
import { expectNoLeak } from 'fer-test-utils';
import { evaluate } from './evaluate';
import { TinyEnsemble, tinyDataset } from '../test/tiny';

/** Yields the batches of `inner` cut to the given sizes (as unreadable images would leave them). */
function cutTo(inner: FerDataset, sizes: number[]): FerDataset {
  return {
    name: inner.name,
    size: sizes.reduce((a, b) => a + b, 0),
    labels: inner.labels,
    async *batches(o: BatchOptions): AsyncIterable<Batch> {
      let k = 0;
      for await (const b of inner.batches(o)) {
        const n = sizes[k++];
        yield { images: tf.slice(b.images, 0, n), labels: tf.slice(b.labels, 0, n) };
        tf.dispose([b.images, b.labels]);
      }
    },
  };
}

/** Records the batch sizes the model's forward sees. */
function recordBatchSizes(m: TinyEnsemble): number[] {
  const sizes: number[] = [];
  const forward = m.forward.bind(m);
  m.forward = (x, opts) => {
    sizes.push(x.shape[0]);
    return forward(x, opts);
  };
  return sizes;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('evaluate', () => {
  it('reports per-branch accuracy and the vote consistently with the confusion matrix, without leaks', async () => {
    const m = new TinyEnsemble(1, 3);
    const ds = tinyDataset(12, 3);
    const r = await expectNoLeak(
      () => evaluate(m, ds, { batchSize: 5, combine: { kind: 'vote' }, diversityHead: 'channelAttention' }),
      { returned: 0 },
    );
    expect(r.size).toBe(12);
    expect(r.branches.map((b) => b.index)).toEqual([0, 1, 2]);
    const diag = r.ensemble.confusion.reduce((s, row, i) => s + row[i], 0);
    expect(r.ensemble.accuracy).toBeCloseTo(diag / 12, 12);
    expect(r.diversity!.meanPairwiseDistance).toBeGreaterThan(0);
    m.dispose();
  });

  it('with batch statistics, runs the train-mode forward and restores the running statistics afterwards', async () => {
    const m = new TinyEnsemble(2, 2);
    const before = Array.from(await m.running.data());
    const ds = tinyDataset(9, 4);
    const a = await evaluate(m, ds, { batchSize: 4, batchStatistics: true, branches: [1] });
    expect(Array.from(await m.running.data())).toEqual(before);
    expect(a.branches).toHaveLength(1);
    expect(a.diversity).toBeUndefined();
    m.dispose();
  });

  it('with batch statistics, joins a batch of one image to its neighbour (trailing, mid-set or first), without leaks', async () => {
    const m = new TinyEnsemble(1, 2);
    const sizes = recordBatchSizes(m);
    for (const cut of [
      [4, 4, 1],
      [4, 1, 4],
      [1, 4, 4],
    ]) {
      sizes.length = 0;
      const r = await expectNoLeak(
        () => evaluate(m, cutTo(tinyDataset(12, 5), cut), { batchSize: 4, batchStatistics: true }),
        {
          returned: 0,
        },
      );
      expect(r.size).toBe(9);
      expect(sizes).toEqual(cut[0] === 1 ? [5, 4] : cut[1] === 1 ? [5, 4] : [4, 5]);
    }
    // Inference mode keeps the batches as they come.
    sizes.length = 0;
    await evaluate(m, cutTo(tinyDataset(12, 5), [4, 4, 1]), { batchSize: 4 });
    expect(sizes).toEqual([4, 4, 1]);
    m.dispose();
  });

  it('with batch statistics, refuses a set of one image before any work, and one left with one readable image', async () => {
    const m = new TinyEnsemble(1, 2);
    const sizes = recordBatchSizes(m);
    await expect(evaluate(m, tinyDataset(1, 5), { batchStatistics: true })).rejects.toThrow(FerInputError);
    await expect(evaluate(m, tinyDataset(1, 5), { batchStatistics: true })).rejects.toThrow(/at least 2 images/);
    expect(sizes).toEqual([]);
    const before = tf.memory().numTensors;
    await expect(evaluate(m, { ...cutTo(tinyDataset(4, 5), [1]), size: 4 }, { batchStatistics: true })).rejects.toThrow(
      /at least 2 readable images/,
    );
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('a real ESR evaluates 9 images in batches of 8 with batch statistics as one batch of 9 (no batch-norm error)', async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    try {
      const esr = createModel('desr-9', {
        labels: BASIC7_LABELS,
        inputSize: 54,
        seed: 1,
        branches: 2,
        colorOrder: 'rgb',
        normalization: null,
      });
      const data = syntheticExpressions({ size: 9, seed: 3, imageSize: 54, workers: 0 });
      const split = await evaluate(esr, data, { batchSize: 8, batchStatistics: true });
      const whole = await evaluate(esr, data, { batchSize: 9, batchStatistics: true });
      esr.dispose();
      expect(split.size).toBe(9);
      // The trailing image joined the first 8: the same batch statistics, so the same losses and predictions.
      split.branches.forEach((b, k) => expect(b.loss).toBeCloseTo(whole.branches[k].loss, 5));
      expect(split.ensemble.confusion).toEqual(whole.ensemble.confusion);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});
