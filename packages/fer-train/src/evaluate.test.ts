import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { expectNoLeak } from 'fer-test-utils';
import { evaluate } from './evaluate';
import { TinyEnsemble, tinyDataset } from '../test/tiny';

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
});
