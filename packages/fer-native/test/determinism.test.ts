import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { createEsr } from 'fer-models-esr';
import { esrGrowthPlan, esrStageLoss, stageOptimizer, trainStep } from 'fer-train';
import { describeNative } from './helpers';

/** Two SGD steps of a seeded ESR (base + 2 branches, CBAM, diversity loss) on a fixed batch; all weights after. */
async function twoSteps(): Promise<Float32Array[]> {
  const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 3 });
  const stage = esrGrowthPlan().stages[1];
  const opt = stageOptimizer(esr, stage);
  const loss = esrStageLoss(stage, 'reference');
  const n = 6;
  const images = tf.tidy(() => tf.randomUniform([n, 96, 96, 3], 0, 1, 'float32', 11) as tf.Tensor4D);
  const labels = tf.tensor1d([0, 1, 2, 3, 4, 5], 'int32');
  for (let s = 0; s < 2; s++) await trainStep(esr, opt, { images, labels }, loss);
  const weights = esr
    .variableGroups()
    .flatMap((g) => g.variables)
    .map((v) => v.dataSync() as Float32Array);
  tf.dispose([images, labels]);
  opt.dispose();
  esr.dispose();
  return weights;
}

describeNative('native training is deterministic', () => {
  beforeAll(async () => {
    expect((await initBackend({ backend: 'native', quiet: true })).name).toBe('native');
  });

  it('two identical seeded training runs give bit-identical weights, and leave no tensors', async () => {
    const before = tf.memory().numTensors;
    const a = await twoSteps();
    const b = await twoSteps();
    expect(tf.memory().numTensors).toBe(before);
    expect(a.length).toBe(b.length);
    let differing = 0;
    for (let i = 0; i < a.length; i++) {
      const x = new Uint32Array(a[i].buffer, a[i].byteOffset, a[i].length);
      const y = new Uint32Array(b[i].buffer, b[i].byteOffset, b[i].length);
      if (x.length !== y.length || x.some((v, j) => v !== y[j])) differing++;
    }
    expect(differing).toBe(0);
    // The steps did train: finite weights, moved away from the fresh seeded model's.
    expect(a.every((w) => w.every((v) => Number.isFinite(v)))).toBe(true);
    const fresh = createEsr('desr9-affectnet', { initialBranches: 2, seed: 3 });
    const init = fresh
      .variableGroups()
      .flatMap((g) => g.variables)
      .map((v) => v.dataSync() as Float32Array);
    fresh.dispose();
    expect(init.some((w, i) => w.some((v, j) => v !== a[i][j]))).toBe(true);
  });
});
