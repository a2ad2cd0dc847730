/**
 * A training batch of one image is dropped (batch norm cannot normalise a single image in training mode): the
 * trailing batch of a set whose size is 1 more than a multiple of the batch size, or one left by unreadable images.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { BASIC7_LABELS, type Batch, type BatchOptions, type FerDataset } from 'fer-core';
import { syntheticExpressions } from 'fer-datasets';
import { trainEsr } from '../src/recipes/esr';
import { esrGrowthPlan } from '../src/schedule/plans';
import { createModel } from 'fer-models';
import { Trainer, type TrainEvent } from '../src/trainer';
import { TinyEnsemble, tinyDataset, tinyTrainerOptions } from './tiny';

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-trailing-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

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

describe('training batches of one image', () => {
  it('a batch of one left in mid-epoch is skipped with one notice, the others are trained', async () => {
    await tf.setBackend('cpu');
    const dir = await tmp();
    const events: TrainEvent[] = [];
    const o = tinyTrainerOptions(dir);
    const res = await new Trainer<TinyEnsemble>({
      ...o,
      plan: esrGrowthPlan({ branches: 1, firstEpochs: 2, laterEpochs: 1, batchSize: 4 }),
      trainData: (_s, seed) => cutTo(tinyDataset(12, seed), [4, 1, 4]),
      onEvent: (e) => events.push(e),
    }).run();
    res.model.dispose();
    expect(res.history.epochs.map((e) => e.steps)).toEqual([2, 2]);
    const notices = events.filter((e) => e.type === 'notice');
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ message: expect.stringMatching(/dropped a training batch of 1 image/) });
  });

  it('a real ESR at 54 px trains on 9 images with batch 8 (the trailing one is dropped, not a batch-norm error)', async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    const dir = await tmp();
    const data = (size: number, seed: number) => syntheticExpressions({ size, seed, imageSize: 54 });
    const res = await trainEsr({
      plan: { ...esrGrowthPlan({ branches: 1, firstEpochs: 1, laterEpochs: 1, batchSize: 8 }), evalBatchSize: 8 },
      train: data(9, 1),
      validation: data(7, 2),
      diversity: 'dpp',
      outDir: dir,
      seed: 1,
      plots: false,
      evaluateWithBatchStatistics: true,
      createModel: () =>
        createModel('desr-9', {
          labels: BASIC7_LABELS,
          inputSize: 54,
          seed: 1,
          branches: 1,
          colorOrder: 'rgb',
          normalization: null,
        }),
    });
    res.model.dispose();
    expect(res.history.epochs[0].steps).toBe(1);
  });
});
