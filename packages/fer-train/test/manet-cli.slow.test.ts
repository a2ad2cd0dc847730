/**
 * MA-Net end to end through the `fer` commands on wasm (issue 8): `fer train manet --dataset synthetic` (224 px, the
 * only size the architecture takes) writes checkpoints, history and a saved model; with `--bn-batches` the model is
 * selected with batch statistics, its BN statistics are recomputed before the final evaluation and saved with it, so
 * `fer eval` on the reloaded model reproduces that final (inference-mode) test evaluation. Tiny sizes: this checks the
 * plumbing, not learning (an MA-Net trains at well under 1 image/s here, see README "Learning on synthetic faces").
 */
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, promises as fs } from 'node:fs';
import { initBackend } from 'fer-backend';
import { testBackend } from 'fer-test-utils';
import { runTrain } from '../src/cli/commands/train';
import { runEval } from '../src/cli/commands/eval';
import { Output } from '../src/cli/output';
import { loadCheckpoint } from '../src';

jest.setTimeout(10 * 60_000);

describe('fer train manet --dataset synthetic -> fer eval (wasm)', () => {
  let dir = '';
  const out = new Output('quiet');
  const sizes = [16, 8, 8];

  beforeAll(async () => {
    await initBackend({ backend: testBackend(), quiet: true });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-manet-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('rejects an input size MA-Net cannot take, before loading data', async () => {
    await expect(
      runTrain(
        'manet',
        { dataset: 'synthetic', out: dir, diversity: 'dpp', imageSize: 112, seed: 0, plots: false },
        out,
      ),
    ).rejects.toThrow(/MA-Net needs 224x224 inputs .* but got --image-size 112\. Drop --image-size or pass 224\./);
  });

  it('trains one epoch, checkpoints, recalibrates BN, saves a model that `fer eval` reloads with the same test result', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const { result } = await runTrain(
      'manet',
      {
        dataset: 'synthetic',
        syntheticSize: sizes,
        out: dir,
        diversity: 'dpp',
        epochs: 1,
        batch: 8,
        microBatch: 4,
        seed: 0,
        plots: false,
        workers: 0,
        bnBatches: 2,
      },
      out,
    );
    expect(result.stopped).toBe(false);
    expect(result.history.script).toBe('manet_rafdb');
    expect(result.history.epochs).toHaveLength(1);
    expect(result.history.epochs[0].steps).toBe(2);
    expect(result.history.epochs[0].lrs).toEqual({ manet: 0.01 });
    // two heads (fc_1, fc_2), combined 0.6 / 0.4; diversity on the two global features
    expect(result.test!.branches).toHaveLength(2);
    expect(result.test!.size).toBe(8);
    expect(result.test!.diversity!.meanPairwiseDistance).toBeGreaterThan(0);
    for (const f of [
      'model/model.json',
      'model/weights.bin',
      'history.json',
      'history.csv',
      'checkpoints/last.safetensors',
      'checkpoints/stage-1-best.safetensors',
    ]) {
      expect(existsSync(path.join(dir, f))).toBe(true);
    }
    const history = JSON.parse(await fs.readFile(path.join(dir, 'history.json'), 'utf8'));
    expect(history.final.map((f: { split: string; accuracy: number }) => [f.split, f.accuracy])).toEqual([
      ['validation', result.validation!.ensemble.accuracy],
      ['test', result.test!.ensemble.accuracy],
    ]);
    // The batch-statistics evaluations that selected the model are kept beside the recalibrated ones.
    expect(history.finalBatchStatistics.map((f: { split: string }) => f.split)).toEqual(['validation', 'test']);
    for (const f of history.finalBatchStatistics)
      expect(f.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(
        f.split === 'test' ? 8 : result.validation!.size,
      );
    const last = await loadCheckpoint(path.join(dir, 'checkpoints', 'last.safetensors'));
    expect(last.meta.position).toEqual({ stage: 2, epoch: 0, step: 0, globalStep: 2 });
    result.model.dispose();

    const r = await runEval(
      { model: path.join(dir, 'model'), dataset: 'synthetic', syntheticSize: sizes, batch: 8, seed: 0, workers: 0 },
      out,
    );
    expect(r.size).toBe(8);
    expect(r.ensemble.accuracy).toBe(result.test!.ensemble.accuracy);
    r.branches.forEach((b, k) => expect(b.loss).toBeCloseTo(result.test!.branches[k].loss, 4));
    // Training, recalibration and `fer eval` (which loads and disposes its own model) leave no tensor behind.
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});
