/**
 * Batching, shuffling, cap redraws, workers and resources, on the synthetic source (no files) and on real PNGs.
 * Worker threads here load `src/pipeline/worker.ts` through tsx's require hook (see executor.ts).
 */
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { DATA_DIR, describeIfExists, expectNoLeak } from 'fer-test-utils';
import { BASIC7_LABELS, AFFECTNET_LABELS } from 'fer-core';
import { classFolders, liveWorkerCount, syntheticExpressions, type ImageDataset } from 'fer-datasets';

const quiet = { onWarning: () => {} };
const openFds = () => readdirSync('/proc/self/fd').length;

async function collect(
  ds: ImageDataset,
  opts: Parameters<ImageDataset['batches']>[0],
): Promise<{ images: Float32Array[]; labels: number[] }> {
  const images: Float32Array[] = [];
  const labels: number[] = [];
  for await (const b of ds.batches(opts)) {
    try {
      images.push((await b.images.data()) as Float32Array);
      labels.push(...((await b.labels.data()) as Int32Array));
    } finally {
      tf.dispose([b.images, b.labels]);
    }
  }
  return { images, labels };
}

describe('synthetic expressions', () => {
  test('deterministic by seed, balanced, 7 or 8 classes, values in [0, 1]', async () => {
    const a = syntheticExpressions({ size: 14, seed: 3, imageSize: 48, workers: 0 });
    const b = syntheticExpressions({ size: 14, seed: 3, imageSize: 48, workers: 0 });
    const c = syntheticExpressions({ size: 14, seed: 4, imageSize: 48, workers: 0 });
    expect(a.labels).toEqual(BASIC7_LABELS);
    expect(a.classCounts()).toEqual([2, 2, 2, 2, 2, 2, 2]);
    const [pa, pb, pc] = await Promise.all([a.sample(5), b.sample(5), c.sample(5)]);
    expect(Array.from(pa.image.data)).toEqual(Array.from(pb.image.data));
    expect(pa.image.data.some((v, i) => v !== pc.image.data[i])).toBe(true);
    expect(pa.image.data.every((v) => v >= 0 && v <= 1)).toBe(true);
    const eight = syntheticExpressions({ size: 16, seed: 1, classes: 8, workers: 0 });
    expect(eight.labels).toEqual(AFFECTNET_LABELS);
    expect(eight.classCounts()).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
    expect(() => syntheticExpressions({ size: 0, seed: 1 })).toThrow(/positive integer/);
  });
});

describe('batching', () => {
  test('shapes, dtypes, listing order without a seed, last partial batch kept or dropped', async () => {
    const ds = syntheticExpressions({ size: 10, seed: 1, imageSize: 32, workers: 0 });
    const shapes: number[][] = [];
    for await (const b of ds.batches({ batchSize: 4 })) {
      shapes.push(b.images.shape);
      expect(b.images.dtype).toBe('float32');
      expect(b.labels.dtype).toBe('int32');
      tf.dispose([b.images, b.labels]);
    }
    expect(shapes).toEqual([
      [4, 32, 32, 3],
      [4, 32, 32, 3],
      [2, 32, 32, 3],
    ]);
    expect((await collect(ds, { batchSize: 4 })).labels).toEqual([0, 1, 2, 3, 4, 5, 6, 0, 1, 2]);
    expect((await collect(ds, { batchSize: 4, dropRemainder: true })).labels).toHaveLength(8);
  });

  test('seeded shuffling and augmentation: same (seed, epoch) → same batches; new epoch → new order', async () => {
    const ds = syntheticExpressions({ size: 12, seed: 2, imageSize: 24, augment: true, workers: 0 });
    const a = await collect(ds, { batchSize: 5, seed: 7, epoch: 0 });
    const b = await collect(ds, { batchSize: 5, seed: 7, epoch: 0 });
    const c = await collect(ds, { batchSize: 5, seed: 7, epoch: 1 });
    expect(a.labels).toEqual(b.labels);
    a.images.forEach((x, i) => expect(Array.from(x)).toEqual(Array.from(b.images[i])));
    expect(c.labels).not.toEqual(a.labels);
    expect([...a.labels].sort()).toEqual([...c.labels].sort());
    // A batch's sample equals `sample(i)` with the same seed and epoch (augmentation is per sample, not per batch).
    const first = await collect(ds, { batchSize: 12, seed: 7, epoch: 0, shuffle: false });
    const s3 = await ds.sample(3, { seed: 7, epoch: 0 });
    expect(Array.from(first.images[0].subarray(3 * 24 * 24 * 3, 4 * 24 * 24 * 3))).toEqual(Array.from(s3.image.data));
  });

  test('cap redrawn every epoch with redrawCap: "epoch"', async () => {
    const ds = syntheticExpressions({ size: 70, seed: 2, imageSize: 8, cap: 3, redrawCap: 'epoch', workers: 0 });
    expect(ds.size).toBe(21);
    const e0 = await collect(ds, { batchSize: 32, epoch: 0 });
    const keys0 = ds.activeRecords().map((r) => r.synthetic!.seed);
    await collect(ds, { batchSize: 32, epoch: 1 });
    const keys1 = ds.activeRecords().map((r) => r.synthetic!.seed);
    await collect(ds, { batchSize: 32, epoch: 0 });
    expect(ds.activeRecords().map((r) => r.synthetic!.seed)).toEqual(keys0);
    expect(keys1).not.toEqual(keys0);
    expect(e0.labels).toHaveLength(21);
    expect(ds.classCounts()).toEqual([3, 3, 3, 3, 3, 3, 3]);
  });

  test('no tensors leak: a full epoch disposed batch by batch; an abandoned one keeps only the taken batch', async () => {
    const ds = syntheticExpressions({ size: 9, seed: 1, imageSize: 16, workers: 0 });
    await expectNoLeak(
      async () => {
        await collect(ds, { batchSize: 4, seed: 1 });
      },
      { returned: 0 },
    );
    await expectNoLeak(
      async () => {
        for await (const b of ds.batches({ batchSize: 4 })) return b; // caller owns the one batch it took
        return undefined;
      },
      { returned: 2 },
    );
  });
});

describe('workers and resources', () => {
  test('workers give exactly the in-process pixels; threads end with the iteration', async () => {
    const opts = { size: 10, seed: 5, imageSize: 32, augment: true } as const;
    const inProc = await collect(syntheticExpressions({ ...opts, workers: 0 }), { batchSize: 4, seed: 3, epoch: 2 });
    const ds = syntheticExpressions({ ...opts, workers: 2, ...quiet });
    const viaWorkers = await collect(ds, { batchSize: 4, seed: 3, epoch: 2 });
    expect(viaWorkers.labels).toEqual(inProc.labels);
    viaWorkers.images.forEach((x, i) => expect(Array.from(x)).toEqual(Array.from(inProc.images[i])));
    expect(liveWorkerCount()).toBe(0);
  });

  test('break, AbortSignal and errors release workers; no tensors leak', async () => {
    const ds = syntheticExpressions({ size: 40, seed: 5, imageSize: 16, workers: 1, prefetch: 3, ...quiet });
    const before = tf.memory().numTensors;
    for await (const b of ds.batches({ batchSize: 4 })) {
      tf.dispose([b.images, b.labels]);
      expect(liveWorkerCount()).toBe(1);
      break;
    }
    expect(liveWorkerCount()).toBe(0);

    const ac = new AbortController();
    let n = 0;
    for await (const b of ds.batches({ batchSize: 4, signal: ac.signal })) {
      tf.dispose([b.images, b.labels]);
      if (++n === 2) ac.abort();
    }
    expect(n).toBe(2);
    expect(liveWorkerCount()).toBe(0);

    const failing = async () => {
      for await (const b of ds.batches({ batchSize: 4 })) {
        tf.dispose([b.images, b.labels]);
        throw new Error('consumer failed');
      }
    };
    await expect(failing()).rejects.toThrow('consumer failed');
    expect(liveWorkerCount()).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describeIfExists(path.join(DATA_DIR, 'fer2013-test'), 'file handles on real images', () => {
  test('decoding through workers and in-process leaves no file descriptors open', async () => {
    const ds = await classFolders({ root: path.join(DATA_DIR, 'fer2013-test'), cap: 6, workers: 0, ...quiet });
    await collect(ds, { batchSize: 8, seed: 1 }); // warm-up: libvips opens its own descriptors once per process
    const fds = openFds();
    await collect(ds, { batchSize: 8, seed: 2 });
    for await (const b of ds.batches({ batchSize: 8 })) {
      tf.dispose([b.images, b.labels]);
      break;
    }
    expect(openFds()).toBe(fds);
    const withWorker = await classFolders({ root: path.join(DATA_DIR, 'fer2013-test'), cap: 6, workers: 1, ...quiet });
    const got = await collect(withWorker, { batchSize: 8, seed: 1 });
    expect(got.labels).toHaveLength(42);
    expect(liveWorkerCount()).toBe(0);
    expect(openFds()).toBe(fds);
  });
});
