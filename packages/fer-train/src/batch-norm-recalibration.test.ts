import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { Cbam, Rng, TorchBatchNorm, type Batch, type FerDataset, type FerModel, type LabelSet } from 'fer-core';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { findBatchNorms, recalibrateBatchNorm } from './batch-norm-recalibration';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const EPS = 1e-5;
const [H, W, C] = [3, 3, 2];
const G1 = [2, 0.5];
const B1 = [0.5, -1];
const G2 = [1.5, 1];
const B2 = [0.2, 0.6];

/** x -> bn1 -> bn2 -> CBAM (channel gate fixed at 0.5, spatial conv = the channel-mean map), as a FerModel. */
class Chain implements FerModel {
  labels = ['neutral'] as unknown as LabelSet;
  readonly numBranches = 1;
  constructor(readonly model: tfl.LayersModel) {}
  forward(images: tf.Tensor4D, opts: { training: boolean }) {
    return tf.tidy(() => {
      const out = this.model.apply(images, { training: opts.training }) as tf.Tensor; // [n, 3, 3, 2]
      return { logits: [tf.reshape(out, [images.shape[0], -1]) as tf.Tensor2D], heads: {} };
    });
  }
  trainableVariables() {
    return this.model.trainableWeights.map((w) => w.read() as tf.Variable);
  }
  variableGroups() {
    return [{ name: 'all', variables: this.trainableVariables() }];
  }
  dispose() {
    this.model.dispose();
  }
}

function chain(shared = false): Chain {
  const input = tfl.input({ shape: [H, W, C] });
  const bn1 = new TorchBatchNorm({ name: 'bn1' });
  let y = bn1.apply(input) as tfl.SymbolicTensor;
  y = (shared ? bn1 : new TorchBatchNorm({ name: 'bn2' })).apply(y) as tfl.SymbolicTensor;
  const cbam = new Cbam({ name: 'cbam', reduction: 16, seed: 1 });
  const outs = cbam.apply(y) as tfl.SymbolicTensor[];
  const model = tfl.model({ inputs: input, outputs: outs[0] });
  const rng = new Rng(3);
  const rand = (shape: number[], lo: number, hi: number) =>
    tf.tensor(
      Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(lo, hi)),
      shape,
    );
  // Arbitrary stale running statistics: recalibration must not depend on them.
  const bnWeights = (g: number[], b: number[]) => [
    tf.tensor1d(g),
    tf.tensor1d(b),
    rand([C], -3, 3),
    rand([C], 0.5, 4),
    tf.scalar(7),
  ];
  bn1.setWeights(bnWeights(G1, B1));
  if (!shared) model.getLayer('bn2').setWeights(bnWeights(G2, B2));
  const kernel = tf.buffer([7, 7, 2, 1]);
  kernel.set(1, 3, 3, 1, 0); // centre tap on the channel-mean plane
  // mlp1 [C, 1], mlp1_bias [1], mlp2 [1, C], mlp2_bias [C] all zero -> channel attention sigmoid(0) = 0.5
  cbam.setWeights([
    tf.zeros([C, 1]),
    tf.zeros([1]),
    tf.zeros([1, C]),
    tf.zeros([C]),
    kernel.toTensor(),
    tf.ones([1]),
    tf.zeros([1]),
    rand([1], -1, 1),
    rand([1], 1, 2),
    tf.scalar(7),
  ]);
  return new Chain(model);
}

/** Per-channel mean and biased variance of rows [n][c] in float64. */
function stats(rows: number[][]): { mean: number[]; variance: number[] } {
  const c = rows[0].length;
  const mean = Array.from({ length: c }, (_, k) => rows.reduce((s, r) => s + r[k], 0) / rows.length);
  const variance = mean.map((m, k) => rows.reduce((s, r) => s + (r[k] - m) ** 2, 0) / rows.length);
  return { mean, variance };
}

const bnTrain = (rows: number[][], g: number[], b: number[]) => {
  const { mean, variance } = stats(rows);
  return {
    out: rows.map((r) => r.map((v, k) => (g[k] * (v - mean[k])) / Math.sqrt(variance[k] + EPS) + b[k])),
    mean,
    unbiased: variance.map((v) => (v * rows.length) / (rows.length - 1)),
  };
};

/** The expected running statistics: per batch, a float64 train-mode forward of the chain; then the plain average. */
function expectedStats(batches: number[][][]) {
  const acc = [
    [
      [0, 0],
      [0, 0],
    ],
    [
      [0, 0],
      [0, 0],
    ],
    [[0], [0]],
  ];
  for (const rows of batches) {
    const l1 = bnTrain(rows, G1, B1);
    const l2 = bnTrain(l1.out, G2, B2);
    // CBAM: x·0.5, then the 7x7 conv reads only the centre of the channel-mean plane: mean_c(0.5·x) per pixel.
    const l3 = bnTrain(
      l2.out.map((r) => [(0.5 * (r[0] + r[1])) / 2]),
      [1],
      [0],
    );
    [l1, l2, l3].forEach((l, i) => {
      l.mean.forEach((m, k) => (acc[i][0][k] += m / batches.length));
      l.unbiased.forEach((v, k) => (acc[i][1][k] += v / batches.length));
    });
  }
  return acc;
}

function memoryDataset(batches: number[][][]): FerDataset {
  return {
    name: 'memory',
    size: (batches.length * batches[0].length) / (H * W),
    labels: ['neutral'] as unknown as LabelSet,
    async *batches(): AsyncIterable<Batch> {
      // Fixed order (the shuffle seed is ignored): each batch is rows of pixels, n = images·H·W.
      for (const rows of batches) {
        const n = rows.length / (H * W);
        yield { images: tf.tensor4d(rows.flat(), [n, H, W, C]), labels: tf.zeros([n], 'int32') as tf.Tensor1D };
      }
    },
  };
}

function randomBatches(count: number, images: number, seed: number): number[][][] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, b) =>
    Array.from({ length: images * H * W }, () => [rng.normal() * 2 + b, rng.uniform(-1, 3)]),
  );
}

async function read(v: tfl.LayerVariable): Promise<number[]> {
  return Array.from(await v.read().data());
}

describe('recalibrateBatchNorm', () => {
  it('finds TorchBatchNorm layers and CBAM spatial gates', () => {
    const m = chain();
    expect(findBatchNorms(m).map((b) => [b.name, b.momentum])).toEqual([
      ['bn1', 0.1],
      ['bn2', 0.1],
      ['cbam/spatial_bn', 0.01],
    ]);
    m.dispose();
  });

  it('sets running mean and unbiased variance to the average over the batches of a train-mode forward', async () => {
    const m = chain();
    const data = randomBatches(3, 2, 11);
    const weightsBefore = await Promise.all(m.trainableVariables().map((v) => v.data()));
    const r = await recalibrateBatchNorm(m, memoryDataset(data), { batches: 3, batchSize: 2 });
    expect(r).toEqual({ layers: 3, batches: 3, images: 6 });
    const want = expectedStats(data);
    const bns = findBatchNorms(m);
    for (let i = 0; i < 3; i++) {
      expectArrayClose(
        await read(bns[i].runningMean),
        want[i][0],
        { rtol: 1e-5, atol: 1e-5 },
        `${bns[i].name} running mean`,
      );
      expectArrayClose(
        await read(bns[i].runningVar),
        want[i][1],
        { rtol: 1e-5, atol: 1e-6 },
        `${bns[i].name} running var`,
      );
      expect(await read(bns[i].numBatchesTracked)).toEqual([10]);
    }
    // bn2 sees bn1's train-mode output: its mean is bn1's beta exactly, its variance G1²·σ²/(σ²+ε)·n/(n−1) ≈ G1²·18/17.
    expectArrayClose(await read(bns[1].runningMean), B1, { atol: 1e-5 }, 'bn2 mean = beta1');
    expectArrayClose(
      await read(bns[1].runningVar),
      G1.map((g) => (g * g * 18) / 17),
      { rtol: 1e-3 },
      'bn2 var',
    );
    const weightsAfter = await Promise.all(m.trainableVariables().map((v) => v.data()));
    weightsAfter.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(weightsBefore[i])));
    m.dispose();
  });

  it('uses only the first `batches` batches', async () => {
    const m = chain();
    const data = randomBatches(4, 2, 5);
    const r = await recalibrateBatchNorm(m, memoryDataset(data), { batches: 2, batchSize: 2 });
    expect(r.batches).toBe(2);
    expectArrayClose(await read(findBatchNorms(m)[0].runningMean), expectedStats(data.slice(0, 2))[0][0], {
      rtol: 1e-5,
      atol: 1e-5,
    });
    m.dispose();
  });

  it('leaks no tensor', async () => {
    const m = chain();
    const ds = memoryDataset(randomBatches(2, 2, 1));
    // first call builds nothing new, but warm up anyway
    await recalibrateBatchNorm(m, ds, { batches: 2, batchSize: 2 });
    await expectNoLeak(() => recalibrateBatchNorm(m, ds, { batches: 2, batchSize: 2 }), { returned: 0 });
    m.dispose();
  });

  it('refuses a batch norm that runs twice per forward and restores the previous statistics', async () => {
    const m = chain(true);
    const bn = findBatchNorms(m)[0];
    const before = [await read(bn.runningMean), await read(bn.runningVar), await read(bn.numBatchesTracked)];
    await expect(
      recalibrateBatchNorm(m, memoryDataset(randomBatches(1, 2, 2)), { batches: 1, batchSize: 2 }),
    ).rejects.toThrow(/ran 2 times/);
    expect([await read(bn.runningMean), await read(bn.runningVar), await read(bn.numBatchesTracked)]).toEqual(before);
    m.dispose();
  });

  it('rejects bad options with the fix', async () => {
    const m = chain();
    await expect(recalibrateBatchNorm(m, memoryDataset(randomBatches(1, 2, 2)), { batches: 0 })).rejects.toThrow(
      /Expected batches to be a positive integer, but got 0/,
    );
    await expect(
      recalibrateBatchNorm(m, memoryDataset(randomBatches(1, 2, 2)), { batches: 1, batchSize: 1 }),
    ).rejects.toThrow(/batchSize to be an integer ≥ 2/);
    m.dispose();
  });
});
