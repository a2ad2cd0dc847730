/**
 * Divergence is detected, never saved as a result: a real small ESR run (54 px, synthetic faces, wasm) with the
 * learning rate scaled by 1e6 stops with an error naming the last good checkpoint; the loss rule and the weight check
 * are also tested on their own.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { existsSync, promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { BASIC7_LABELS } from 'fer-core';
import { syntheticExpressions } from 'fer-datasets';
import { trainEsr } from '../src/recipes/esr';
import { esrGrowthPlan, type TrainingPlan } from '../src/schedule/plans';
import { createModel } from 'fer-models';
import { loadCheckpoint } from '../src/io/checkpoint';
import { DivergenceError, checkLoss, checkWeights } from '../src/guards';
import { Trainer } from '../src/trainer';
import { TinyEnsemble, tinyTrainerOptions } from './tiny';

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-divergence-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

describe('divergence rule and weight check', () => {
  it('a loss 100x above its running level is divergence, normal noise is not', () => {
    const level = { value: 0, steps: 0 };
    for (const l of [2.1, 1.9, 2.4, 1.7, 3.0]) expect(checkLoss(level, l)).toBeUndefined();
    expect(checkLoss(level, 8.7e7)).toMatch(/loss 8.70e\+7 is far above its running level 2\.\d+/);
  });

  it('names a variable holding NaN, and an exploded trainable one', async () => {
    await tf.setBackend('cpu');
    const ok = tf.variable(tf.tensor1d([1, -2]), true, 'ok');
    const nan = tf.variable(tf.tensor1d([1, NaN]), false, 'running_var');
    const big = tf.variable(tf.tensor1d([3e30, 0]), true, 'conv1/kernel');
    expect(await checkWeights([ok])).toBeUndefined();
    expect(await checkWeights([ok, nan, big])).toBe("variable 'running_var' holds non-finite values");
    expect(await checkWeights([ok, big])).toMatch(/variable 'conv1\/kernel' reached \|w\| = 3\.00e\+30/);
    tf.dispose([ok, nan, big]);
  });

  it('stops a run whose weights explode while the loss stays finite, before any bad checkpoint', async () => {
    await tf.setBackend('cpu');
    const dir = await tmp();
    const o = tinyTrainerOptions(dir);
    // Huge rates blow the weights up; the loss rule is off here so that only the weight check can catch it.
    const plan: TrainingPlan = {
      ...o.plan,
      stages: o.plan.stages.map((s) => ({
        ...s,
        baseLrs: Object.fromEntries(Object.entries(s.baseLrs).map(([k, v]) => [k, v * 1e5])),
      })),
    };
    const before = tf.memory().numTensors;
    const err = await new Trainer<TinyEnsemble>({
      ...o,
      plan,
      checkpointEverySteps: 1,
      divergence: { lossFactor: Infinity },
    })
      .run()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DivergenceError);
    expect((err as Error).message).toMatch(/weights exploded: variable '.+' reached \|w\| = /);
    // Checked before the step-2 checkpoint: step 1's is the last good one, and nothing bad was written.
    expect((err as Error).message).toContain(
      `The last good checkpoint is ${path.join(dir, 'checkpoints', 'last.safetensors')} (stage 1, epoch 1, step 1)`,
    );
    expect(tf.memory().numTensors).toBe(before);
    for (const f of await fs.readdir(path.join(dir, 'checkpoints'))) {
      const ck = await loadCheckpoint(path.join(dir, 'checkpoints', f));
      for (const v of ck.values) {
        const w = new Float32Array(v.data.buffer.slice(v.data.byteOffset, v.data.byteOffset + v.data.byteLength));
        expect(w.every((x) => Number.isFinite(x) && Math.abs(x) <= 1e6)).toBe(true);
      }
    }
  });
});

describe('divergence in a real ESR run', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
  });

  it('lr x 1e6 (fer demo --lr-scale 1e6): stops with the last good checkpoint named, saves no best or model', async () => {
    const dir = await tmp();
    const growth = esrGrowthPlan({ branches: 1, firstEpochs: 2, laterEpochs: 1, batchSize: 8 });
    const plan: TrainingPlan = {
      ...growth,
      evalBatchSize: 16,
      stages: growth.stages.map((s) => ({
        ...s,
        baseLrs: Object.fromEntries(Object.entries(s.baseLrs).map(([k, v]) => [k, v * 1e6])),
      })),
    };
    const data = (size: number, seed: number) => syntheticExpressions({ size, seed, imageSize: 54 });
    const before = tf.memory().numTensors;
    const err = await trainEsr({
      plan,
      train: data(32, 1),
      validation: data(14, 2),
      diversity: 'dpp',
      outDir: dir,
      seed: 1,
      plots: false,
      checkpointEverySteps: 1,
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
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DivergenceError);
    const last = path.join(dir, 'checkpoints', 'last.safetensors');
    const e = err as DivergenceError;
    expect(e.message).toMatch(/^Training diverged at stage 1, epoch 1, step 2: loss .* is far above its running level/);
    expect(e.message).toContain(`The last good checkpoint is ${last} (stage 1, epoch 1, step 1)`);
    expect((await loadCheckpoint(last)).meta.position).toEqual({ stage: 1, epoch: 0, step: 1, globalStep: 1 });
    expect(existsSync(path.join(dir, 'checkpoints', 'stage-1-best.safetensors'))).toBe(false);
    expect(existsSync(path.join(dir, 'model'))).toBe(false);
    expect(tf.memory().numTensors).toBe(before);
  });
});
