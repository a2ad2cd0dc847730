/** `fer eval` matches a model's classes to a dataset's by name (item 5 of issue 17). */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { FerInputError, type LabelSet } from 'fer-core';
import { evaluate } from '../src/evaluate';
import { evaluateByLabel } from '../src/label-map';
import { TinyEnsemble, tinyDataset } from './tiny';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const labels = (xs: string[]) => xs as unknown as LabelSet;

/** A copy of `m` whose classifier columns (and labels) are in `order` (indices into m's classes). */
function permuted(m: TinyEnsemble, order: number[], names: string[]): TinyEnsemble {
  const p = new TinyEnsemble(7, m.numBranches, { labels: labels(names), classes: order.length });
  p.base.forEach((v, i) => v.assign(m.base[i]));
  p.branches.forEach(([w, b], k) => {
    w.assign(tf.gather(m.branches[k][0], order, 1));
    b.assign(tf.gather(m.branches[k][1], order));
  });
  return p;
}

describe('evaluateByLabel', () => {
  const data = tinyDataset(30, 3); // neutral, happy, sad

  it('the same classes in another order: outputs matched by name give the original accuracy', async () => {
    const m = new TinyEnsemble(7, 2);
    const p = permuted(m, [2, 0, 1], ['sad', 'neutral', 'happy']);
    const want = await evaluate(m, data, { combine: { kind: 'vote' } });
    const got = await evaluateByLabel(p, data, { combine: { kind: 'vote' } });
    expect(got.result.ensemble.accuracy).toBe(want.ensemble.accuracy);
    expect(got.result.branches.map((b) => b.accuracy)).toEqual(want.branches.map((b) => b.accuracy));
    expect(got.note).toMatch(/orders its classes differently .* matched by name/);
    m.dispose();
    p.dispose();
  });

  it('partly different classes (4 vs 3): reports over the shared ones, says so, no broadcast error', async () => {
    const m = new TinyEnsemble(7, 1, { classes: 4, labels: labels(['happy', 'angry', 'neutral', 'fear']) });
    const before = tf.memory().numTensors;
    const got = await evaluateByLabel(m, data, { combine: { kind: 'vote' } });
    expect(tf.memory().numTensors).toBe(before);
    // Independent count: images of neutral/happy, predicted by argmax over the model's neutral and happy outputs.
    let n = 0;
    let correct = 0;
    for await (const b of data.batches({ batchSize: 8 })) {
      const logits = await m.forward(b.images, { training: false }).logits[0].array();
      const y = await b.labels.array();
      y.forEach((c, i) => {
        if (c === 2) return; // sad: not a model class
        n++;
        const pred = logits[i][2] >= logits[i][0] ? 0 : 1; // ties to the dataset's first shared class (neutral)
        if (pred === c) correct++;
      });
      tf.dispose([b.images, b.labels]);
    }
    expect(got.labels).toEqual(['neutral', 'happy']);
    expect(got.result.size).toBe(n);
    expect(got.result.ensemble.accuracy).toBeCloseTo(correct / n, 10);
    expect(got.note).toBe(
      "the model's and the dataset's classes differ: results are over the 2 shared classes (neutral, happy); 10 image(s) of sad (not in the model) were left out; predictions ignore the model's angry, fear.",
    );
    m.dispose();
  });

  it('no shared class: one clear error', async () => {
    const m = new TinyEnsemble(7, 1, { labels: labels(['angry', 'fear', 'disgust']) });
    const err = await evaluateByLabel(m, data).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FerInputError);
    expect((err as Error).message).toBe(
      "The model's classes (angry, fear, disgust) and the dataset's (neutral, happy, sad) have no class in common. Evaluate on a dataset with the classes the model was trained on.",
    );
    m.dispose();
  });
});
