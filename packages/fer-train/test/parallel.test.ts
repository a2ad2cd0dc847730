/**
 * Data-parallel training (TrainerOptions.computeWorkers) on a small diversified ESR (2 branches, 56 px: the
 * smallest input ESR accepts) on wasm: a 2-worker step equals `trainStep` with the same micro-batches (weights,
 * loss terms, accuracy counts), batch-norm running statistics follow the documented rule, NaN stops the step before
 * any update, nothing leaks, and a whole Trainer run with ESR growth and a resume gives the single-process weights.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from 'fer-backend';
import { Rng, type Batch, type BatchOptions, type FerDataset, type LabelSet } from 'fer-core';
import { createEsr, type EsrEnsemble } from 'fer-models-esr';
import { expectArrayClose } from 'fer-test-utils';
import { DataParallelStep } from '../src/parallel/data-parallel';
import { esrAdapter, esrStageEvaluation, esrStageLoss } from '../src/recipes/esr';
import { esrGrowthPlan } from '../src/schedule/plans';
import { NonFiniteLossError, trainStep } from '../src/step';
import { Trainer, stageOptimizer, stateVariables } from '../src/trainer';
import { stateOf } from '../src/parallel/state';

const [B, S, K] = [4, 56, 8];
const PLAN = esrGrowthPlan({ branches: 2, firstEpochs: 1, laterEpochs: 1, batchSize: B });
const STAGE2 = PLAN.stages[1];
const LOSS = esrStageLoss(STAGE2, 'reference');

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

function images(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from(
    { length: n * S * S * 3 },
    (_, i) => 0.5 + 0.3 * Math.sin(0.011 * i + seed) + 0.1 * rng.normal(),
  );
}

function makeBatch(seed = 1, poison = false): Batch {
  const px = images(B, seed);
  if (poison) px[5] = NaN;
  return { images: tf.tensor4d(px, [B, S, S, 3]), labels: tf.tensor1d([0, 3, 5, 3], 'int32') };
}

/** Weights a step changes, as arrays (trainable variables in group order). */
async function trainable(m: EsrEnsemble): Promise<Float32Array[]> {
  return Promise.all(
    m
      .variableGroups()
      .flatMap((g) => g.variables)
      .map(async (v) => (await v.data()) as Float32Array),
  );
}

/** ‖a − b‖∞ ≤ rtol · ‖b‖∞ per variable: "within 1e-5 relative" for whole weight tensors. */
function expectWeightsClose(a: Float32Array[], b: Float32Array[], rtol: number): void {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => {
    const scale = b[i].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expectArrayClose(x, b[i], { rtol: 0, atol: rtol * scale + 1e-12 }, `variable ${i}`);
  });
}

describe('DataParallelStep (2 workers)', () => {
  it('equals trainStep over the same micro-batches for two steps; BN statistics are the shard mean; NaN stops before updating; no leaks', async () => {
    const single = createEsr('desr9-affectnet', { initialBranches: 2, seed: 3 });
    const multi = createEsr('desr9-affectnet', { initialBranches: 2, seed: 3 });
    const sgd1 = stageOptimizer(single, STAGE2);
    const sgd2 = stageOptimizer(multi, STAGE2);
    const par = await DataParallelStep.create(multi, LOSS, { workers: 2, microBatch: B / 2, backend: 'wasm' });
    try {
      expect(par.workers).toBe(2);
      // μ_k: per-channel mean of conv1's output over micro-batch k (what bn1 normalises with), from the start weights.
      const probe = tfl.model({
        inputs: single.base.inputs,
        outputs: single.base.getLayer('conv1').output as tfl.SymbolicTensor,
      });
      const b1 = makeBatch(1);
      const mu = tf.tidy(() =>
        [0, 1].map(
          (k) =>
            tf
              .mean(probe.predict(tf.slice(b1.images, [k * 2], [2])) as tf.Tensor, [0, 1, 2])
              .dataSync() as Float32Array,
        ),
      );
      tf.dispose([b1.images, b1.labels]);

      for (const seed of [1, 2]) {
        const b = makeBatch(seed);
        try {
          const r1 = await trainStep(single, sgd1, b, LOSS, { microBatch: B / 2 });
          const before = tf.memory().numTensors;
          const r2 = await par.step(sgd2, b);
          // Momentum buffers appear at the first update; afterwards a step leaves no tensor behind.
          if (seed === 2) expect(tf.memory().numTensors).toBe(before);
          expect(Object.keys(r2.terms).sort()).toEqual(['ce_branch_1', 'ce_branch_2', 'div_channel', 'div_spatial']);
          for (const k of Object.keys(r1.terms)) expect(r2.terms[k]).toBeCloseTo(r1.terms[k], 5);
          expect(r2.loss).toBeCloseTo(r1.loss, 5);
          expect(r2.correct).toEqual(r1.correct);
          expect(r2.count).toBe(B);
          expectWeightsClose(await trainable(multi), await trainable(single), 1e-5);
        } finally {
          tf.dispose([b.images, b.labels]);
        }
        if (seed === 1) {
          // bn1 running mean (init 0, momentum 0.1): the replicas' weighted mean 0.1·(μ₁ + μ₂)/2 here, while
          // single-process micro-batching chains the updates: 0.9·0.1·μ₁ + 0.1·μ₂.
          const rm = (m: EsrEnsemble) => m.base.getLayer('bn1').getWeights()[2].dataSync() as Float32Array;
          expectArrayClose(
            rm(multi),
            mu[0].map((v, c) => 0.05 * (v + mu[1][c])),
            { rtol: 1e-4, atol: 1e-6 },
            'parallel running mean',
          );
          expectArrayClose(
            rm(single),
            mu[0].map((v, c) => 0.09 * v + 0.1 * mu[1][c]),
            { rtol: 1e-4, atol: 1e-6 },
            'single running mean',
          );
        }
      }
      // The master's state is what the replicas hold (weighted mean of identical replicas' values = those values).
      expect(stateOf(multi).length).toBeGreaterThan(0);

      const w0 = await trainable(multi);
      const poisoned = makeBatch(3, true);
      try {
        await expect(par.step(sgd2, poisoned)).rejects.toBeInstanceOf(NonFiniteLossError);
      } finally {
        tf.dispose([poisoned.images, poisoned.labels]);
      }
      expectWeightsClose(await trainable(multi), w0, 0);
    } finally {
      expect((await par.dispose()).leaked).toEqual([0, 0]);
      [sgd1, sgd2].forEach((o) => o.dispose());
      single.dispose();
      multi.dispose();
    }
  });
});

/** `n` deterministic 56-px images; shuffling as the trainer asks. */
function faces(n: number, seed: number, name: string): FerDataset {
  const px = images(n, seed);
  const labels = Array.from({ length: n }, (_, i) => (i * 3) % K);
  return {
    name,
    size: n,
    labels: Array.from({ length: K }, (_, i) => `c${i}`) as unknown as LabelSet,
    async *batches(o: BatchOptions): AsyncIterable<Batch> {
      const order = labels.map((_, i) => i);
      if (o.shuffle) new Rng((o.seed ?? 0) * 31 + (o.epoch ?? 0)).shuffle(order);
      for (let s = 0; s < n; s += o.batchSize) {
        const idx = order.slice(s, s + o.batchSize);
        const out = new Float32Array(idx.length * S * S * 3);
        idx.forEach((k, j) => out.set(px.subarray(k * S * S * 3, (k + 1) * S * S * 3), j * S * S * 3));
        yield {
          images: tf.tensor4d(out, [idx.length, S, S, 3]),
          labels: tf.tensor1d(
            idx.map((k) => labels[k]),
            'int32',
          ),
        };
      }
    },
  } as FerDataset;
}

describe('Trainer with computeWorkers: 2', () => {
  it('stops after stage 1, resumes, grows the ensemble (replicas rebuilt per stage) and ends with the single-process weights', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-parallel-trainer-'));
    const run = async (dir: string, computeWorkers: number, extra: { maxSteps?: number; resume?: boolean } = {}) => {
      const trainer = new Trainer<EsrEnsemble>({
        plan: PLAN,
        model: esrAdapter(() => createEsr('desr9-affectnet', { initialBranches: 1, seed: 11 })),
        trainData: () => faces(B, 21, 'train'), // one step per epoch
        validation: faces(2, 22, 'val'),
        loss: (stage) => esrStageLoss(stage, 'reference'),
        evaluation: (stage) => esrStageEvaluation(stage),
        outDir: path.join(root, dir),
        seed: 4,
        microBatch: B / 2,
        computeWorkers,
        plots: false,
        ...extra,
      });
      return trainer.run();
    };
    try {
      const ref = await run('single', 1);
      const stopped = await run('resumed', 2, { maxSteps: 1 });
      expect(stopped.stopped).toBe(true);
      stopped.model.dispose();
      const resumed = await run('resumed', 2, { resume: true });
      try {
        // Stage 1 ran in one process, stage 2 (after growth and the reload of stage 1's best) in the resumed one.
        expect(resumed.model.numBranches).toBe(2);
        expectWeightsClose(await trainable(resumed.model), await trainable(ref.model), 1e-5);
        expect(resumed.history.epochs.map((e) => [e.stage, e.steps])).toEqual([
          [1, 1],
          [2, 1],
        ]);
        expect(resumed.history.epochs.map((e) => e.trainLoss)).toEqual(
          ref.history.epochs.map((e) => expect.closeTo(e.trainLoss, 4)),
        );
        expect(resumed.history.epochs[1].trainTerms.div_spatial).toBeCloseTo(
          ref.history.epochs[1].trainTerms.div_spatial,
          4,
        );
        // Running statistics differ slightly (documented) and are checkpointed with the weights.
        expect(stateVariables(resumed.model).length).toBe(stateVariables(ref.model).length);
      } finally {
        [ref, resumed].forEach((r) => r.model.dispose());
      }
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
