/**
 * End-to-end through the trainer with the real data pipelines (../shared/data) and a tiny model, so it runs in
 * seconds: a few steps on FER+ and RAF-DB (mini) and evaluation on fer2013-test. The real ESR goes through the same
 * code in cli.slow.test.ts.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import { DATA_DIR, describeIfExists } from 'fer-test-utils';
import { classFolders, ferPlus, rafDb } from 'fer-datasets';
import type { FerDataset } from 'fer-core';
import { Trainer } from '../src/trainer';
import { evaluate } from '../src/evaluate';
import { esrLoss } from '../src/loss';
import { esrGrowthPlan } from '../src/schedule/plans';
import { esrStageEvaluation } from '../src/recipes/esr';
import { TinyEnsemble } from './tiny';

const S = 24; // image side for the tiny model

beforeAll(async () => {
  await tf.setBackend('cpu');
});

async function run(
  train: FerDataset,
  validation: FerDataset,
  o: { epochs: number; branches?: number; maxSteps?: number; batch?: number; hidden?: number; lrScale?: number },
) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-e2e-'));
  const K = train.labels.length;
  const base = esrGrowthPlan({
    branches: o.branches ?? 2,
    firstEpochs: o.epochs,
    laterEpochs: 1,
    batchSize: o.batch ?? 16,
  });
  // a plan is data: the tiny dense model wants smaller steps than ESR's 0.1
  const scale = o.lrScale ?? 1;
  const plan = {
    ...base,
    stages: base.stages.map((s) => ({
      ...s,
      baseLrs: Object.fromEntries(Object.entries(s.baseLrs).map(([k, v]) => [k, v * scale])),
    })),
  };
  const steps: number[] = [];
  const res = await new Trainer<TinyEnsemble>({
    plan,
    model: {
      create: () =>
        new TinyEnsemble(3, 1, { inputDim: S * S * 3, classes: K, hidden: o.hidden ?? 32, labels: train.labels }),
      addBranch: (m, seed) => m.addBranch(seed),
    },
    trainData: () => train,
    validation,
    loss: (stage) => (out, y) =>
      esrLoss(out, y, { diversity: 'dpp', ceBranches: stage.ceBranches, diversityBranches: stage.diversityBranches }),
    evaluation: esrStageEvaluation,
    outDir: dir,
    seed: 1,
    maxSteps: o.maxSteps,
    onEvent: (e) => e.type === 'step' && steps.push(e.loss),
  }).run();
  return { res, dir, steps };
}

describeIfExists(DATA_DIR, 'trainer end-to-end on real data (tiny model)', () => {
  it('FER+ (test split images, official labels): a few steps, finite losses, a checkpoint', async () => {
    const root = path.join(DATA_DIR, 'ferplus');
    const train = await ferPlus({ root, split: 'test', imageSize: S, augment: true, cap: 6, workers: 0 });
    const val = await ferPlus({ root, split: 'test', imageSize: S, cap: 4, workers: 0 });
    expect(train.labels).toHaveLength(8);
    const { res, dir, steps } = await run(train, val, { epochs: 1, maxSteps: 3 });
    expect(res.stopped).toBe(true);
    expect(steps).toHaveLength(3);
    expect(steps.every(Number.isFinite)).toBe(true);
    await expect(fs.stat(path.join(dir, 'checkpoints', 'last.safetensors'))).resolves.toBeDefined();
    res.model.dispose();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('RAF-DB mini (release layout): one short run with validation on its test split and a history', async () => {
    const root = path.join(DATA_DIR, 'rafdb-mini', 'basic');
    const train = await rafDb({ root, split: 'train', imageSize: S, augment: true, workers: 0 });
    const val = await rafDb({ root, split: 'test', imageSize: S, workers: 0 });
    const { res, dir } = await run(train, val, { epochs: 1, branches: 1 });
    expect(res.history.epochs).toHaveLength(1);
    expect(res.validation!.size).toBe(val.size);
    const csv = await fs.readFile(path.join(dir, 'history.csv'), 'utf8');
    expect(csv.split('\n')[0]).toContain('val_ensemble_acc');
    await expect(fs.stat(path.join(dir, 'plots', 'confusion.png'))).resolves.toBeDefined();
    res.model.dispose();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('evaluates on fer2013-test (class folders): confusion matrix and reports are consistent', async () => {
    const ds = await classFolders({ root: path.join(DATA_DIR, 'fer2013-test'), imageSize: S, cap: 10, workers: 0 });
    const m = new TinyEnsemble(5, 3, { inputDim: S * S * 3, classes: ds.labels.length, labels: ds.labels });
    const r = await evaluate(m, ds, { batchSize: 16, combine: { kind: 'vote' }, diversityHead: 'spatialAttention' });
    expect(r.size).toBe(ds.size);
    expect(r.ensemble.confusion.flat().reduce((a, b) => a + b, 0)).toBe(ds.size);
    expect(r.ensemble.perClass.map((c) => c.support)).toEqual(
      r.ensemble.confusion.map((row) => row.reduce((a, b) => a + b, 0)),
    );
    expect(r.branches).toHaveLength(3);
    expect(r.diversity!.disagreement).toBeGreaterThanOrEqual(0);
    m.dispose();
  });
});
