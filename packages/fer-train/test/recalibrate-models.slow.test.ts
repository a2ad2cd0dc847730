/**
 * `recalibrateBatchNorm` on the real models (wasm): it finds every batch norm of an ESR ensemble (each conv's BN and
 * each CBAM spatial gate) and of an MA-Net, and the statistics it writes are exactly the per-batch average:
 * recalibrating over batches [A, B] gives the mean of recalibrating over [A] and over [B] (train-mode statistics do
 * not depend on the running ones), whatever the starting statistics. After recalibration on a batch, inference mode
 * on that batch lands near train mode (the gap left is the unbiased/biased variance factor n/(n−1)).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { BASIC7_LABELS, Cbam, Rng, TorchBatchNorm, type Batch, type FerDataset, type FerModel } from 'fer-core';
import { createEsr } from 'fer-models-esr';
import { createManet } from 'fer-models-manet';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { findBatchNorms, recalibrateBatchNorm } from '../src';

jest.setTimeout(5 * 60_000);

function randomImages(n: number, size: number, seed: number): tf.Tensor4D {
  const rng = new Rng(seed);
  return tf.tensor4d(
    Float32Array.from({ length: n * size * size * 3 }, () => rng.uniform(0, 1)),
    [n, size, size, 3],
  );
}

/** Yields clones of the given image batches in order (the shuffle seed is ignored). */
function fixedBatches(images: tf.Tensor4D[]): FerDataset {
  return {
    name: 'fixed',
    size: images.reduce((s, x) => s + x.shape[0], 0),
    labels: BASIC7_LABELS,
    async *batches(): AsyncIterable<Batch> {
      for (const x of images) yield { images: tf.clone(x), labels: tf.zeros([x.shape[0]], 'int32') as tf.Tensor1D };
    },
  };
}

async function statistics(model: FerModel): Promise<number[][]> {
  return Promise.all(
    findBatchNorms(model)
      .flatMap((b) => [b.runningMean, b.runningVar])
      .map(async (v) => Array.from(await v.read().data())),
  );
}

async function maxLogitGap(model: FerModel, x: tf.Tensor4D): Promise<number> {
  const gap = tf.tidy(() => {
    const ev = model.forward(x, { training: false }).logits;
    const snapshot = findBatchNorms(model).map((b) => [
      tf.clone(b.runningMean.read()),
      tf.clone(b.runningVar.read()),
      tf.clone(b.numBatchesTracked.read()),
    ]);
    const tr = model.forward(x, { training: true }).logits;
    findBatchNorms(model).forEach((b, i) => {
      b.runningMean.write(snapshot[i][0]);
      b.runningVar.write(snapshot[i][1]);
      b.numBatchesTracked.write(snapshot[i][2]);
    });
    return tf.max(tf.stack(ev.map((e, k) => tf.max(tf.abs(tf.sub(e, tr[k]))))));
  });
  const v = (await gap.data())[0];
  gap.dispose();
  return v;
}

async function checkModel(model: FerModel, a: tf.Tensor4D, b: tf.Tensor4D, expectedLayers: number): Promise<void> {
  expect(findBatchNorms(model)).toHaveLength(expectedLayers);
  const gapBefore = await maxLogitGap(model, a);
  const r = await expectNoLeak(
    () => recalibrateBatchNorm(model, fixedBatches([a]), { batches: 1, batchSize: a.shape[0] }),
    { returned: 0 },
  );
  expect(r).toEqual({ layers: expectedLayers, batches: 1, images: a.shape[0] });
  const sa = await statistics(model);
  const gapAfter = await maxLogitGap(model, a);
  expect(gapAfter).toBeLessThan(gapBefore / 4);
  await recalibrateBatchNorm(model, fixedBatches([b]), { batches: 1, batchSize: b.shape[0] });
  const sb = await statistics(model);
  await recalibrateBatchNorm(model, fixedBatches([a, b]), { batches: 2, batchSize: a.shape[0] });
  const sab = await statistics(model);
  sab.forEach((s, i) =>
    expectArrayClose(
      s,
      sa[i].map((v, k) => (v + sb[i][k]) / 2),
      { rtol: 1e-4, atol: 1e-6 },
      `statistic ${i}`,
    ),
  );
}

const countLayers = (layers: unknown[], cls: abstract new (...a: never[]) => unknown) =>
  layers.filter((l) => l instanceof cls).length;

describe('recalibrateBatchNorm on ESR and MA-Net (wasm)', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
  });

  it('ESR (CBAM, 2 branches, 64 px): every conv BN and CBAM spatial gate', async () => {
    const esr = createEsr(
      { base: 'desr9-affectnet', numClasses: 7, labels: BASIC7_LABELS, inputSize: 64 },
      { initialBranches: 2, seed: 3 },
    );
    const layers = esr.parts().flatMap((p) => p.model.layers);
    const expected = countLayers(layers, TorchBatchNorm) + countLayers(layers, Cbam);
    expect(countLayers(layers, Cbam)).toBeGreaterThanOrEqual(2); // CBAM in each branch
    const [a, b] = [randomImages(4, 64, 1), randomImages(4, 64, 2)];
    await checkModel(esr, a, b, expected);
    tf.dispose([a, b]);
    esr.dispose();
  });

  it('MA-Net (224 px): every BN of the stem, the local and the multi-scale paths', async () => {
    const manet = createManet({ numClasses: 7, seed: 5 });
    const expected = countLayers(manet.model.layers, TorchBatchNorm) + countLayers(manet.model.layers, Cbam);
    expect(countLayers(manet.model.layers, TorchBatchNorm)).toBeGreaterThan(20);
    const [a, b] = [randomImages(2, 224, 3), randomImages(2, 224, 4)];
    await checkModel(manet, a, b, expected);
    tf.dispose([a, b]);
    manet.dispose();
  });
});
