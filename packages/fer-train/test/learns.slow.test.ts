/**
 * "Accuracy clearly above chance after a short run" (issue 8): a diversified ESR grown to 2 branches through the
 * public API (`esrGrowthPlan` + `trainEsr`, the demo's shortened settings) on synthetic faces, then precise BN
 * (`recalibrateBatchNorm`) and an inference-mode evaluation on held-out faces drawn from another seed.
 *
 * Threshold: see README "Learning on synthetic faces" for the measured runs (seeds, accuracies, times) it was
 * chosen from. MA-Net is not trained here: at 224 px (the only size it takes) it trains at well under 1 image/s on
 * a loaded 2-core machine, so a run that fits this file's budget sees too few images to leave chance.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { promises as fs } from 'node:fs';
import { initBackend } from 'fer-backend';
import { BASIC7_LABELS } from 'fer-core';
import { syntheticExpressions } from 'fer-datasets';
import { createEsr } from 'fer-models-esr';
import { esrGrowthPlan, esrStageEvaluation, evaluate, recalibrateBatchNorm, trainEsr, type TrainingPlan } from '../src';

jest.setTimeout(10 * 60_000);

const CHANCE = 1 / 7;
const IMAGE_SIZE = 64;
const BATCH = 16;
const TRAIN = 210;
const THRESHOLD = 0.2;

describe('ESR learns synthetic expressions (wasm, short run)', () => {
  let dir = '';
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-learns-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it(`grows a 2-branch ESR whose held-out ensemble accuracy is above ${THRESHOLD} (chance ${CHANCE.toFixed(3)})`, async () => {
    const seed = 1;
    const mk = (size: number, s: number) => syntheticExpressions({ size, seed: s, imageSize: IMAGE_SIZE, workers: 0 });
    const train = mk(TRAIN, seed * 3 + 1);
    const validation = mk(35, seed * 3 + 2);
    const test = mk(140, seed * 3 + 3);
    const growth = esrGrowthPlan({ branches: 2, firstEpochs: 3, laterEpochs: 1, batchSize: BATCH });
    // The demo's learning rates (reference × 0.1): at 0.1 a few-epoch run stays at ln 7.
    const plan: TrainingPlan = {
      ...growth,
      evalBatchSize: 35,
      stages: growth.stages.map((s) => ({
        ...s,
        baseLrs: Object.fromEntries(Object.entries(s.baseLrs).map(([k, v]) => [k, v * 0.1])),
      })),
    };
    const tensorsBefore = tf.memory().numTensors;
    const res = await trainEsr({
      plan,
      train,
      validation,
      diversity: 'dpp',
      outDir: dir,
      seed,
      plots: false,
      evaluateWithBatchStatistics: true,
      createModel: () =>
        createEsr(
          { base: 'desr9-affectnet', numClasses: 7, labels: BASIC7_LABELS, inputSize: IMAGE_SIZE },
          { initialBranches: 1, seed },
        ),
    });
    try {
      expect(res.history.epochs.map((e) => e.stage)).toEqual([1, 1, 1, 2]);
      const first = res.history.epochs[0].trainLoss;
      const lastStage1 = res.history.epochs[2].trainLoss;
      expect(first).toBeLessThan(Math.log(7) + 0.05); // starts near ln 7 ...
      expect(lastStage1).toBeLessThan(first); // ... and falls

      const bn = await recalibrateBatchNorm(res.model, train, {
        batches: Math.floor(TRAIN / BATCH),
        batchSize: BATCH,
        seed,
      });
      expect(bn.batches).toBe(Math.floor(TRAIN / BATCH));
      const ev = await evaluate(res.model, test, { ...esrStageEvaluation(plan.stages[1]), batchSize: 35 });
      expect(ev.size).toBe(140);
      expect(ev.branches).toHaveLength(2);
      expect(ev.ensemble.accuracy).toBeGreaterThan(THRESHOLD);
    } finally {
      res.model.dispose();
    }
    // The whole run (growth, snapshots, optimizer state, evaluation, recalibration) leaves no tensor behind.
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});
