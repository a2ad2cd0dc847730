/** The README's "use with any tfjs model" snippet, with tfjs-core + tfjs-layers standing in for @tensorflow/tfjs. */
import * as tfc from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-wasm';
import { expectNoLeak } from 'fer-test-utils';
import { diversityLoss, headsFrom, meanPairwiseDistance } from '../src';

const tf = { ...tfc, layers: tfl.layers, initializers: tfl.initializers };

/** README snippet; `weight` 0 turns the diversity term off for comparison. Returns the heads' output spread. */
async function train(weight: number, steps: number): Promise<number> {
  const heads = [0, 1, 2].map((i) =>
    tf.layers.dense({ units: 10, inputShape: [64], kernelInitializer: tf.initializers.glorotNormal({ seed: 10 + i }) }),
  );
  heads.forEach((h) => h.build([null, 64])); // create the weights before minimize() lists the variables
  const optimizer = tf.train.adam(1e-2);
  function trainStep(x: tfc.Tensor2D, labels: tfc.Tensor2D): number {
    const loss = optimizer.minimize(() => {
      const logits = heads.map((h) => h.apply(x) as tfc.Tensor2D);
      const ce = tf.addN(logits.map((l) => tf.losses.softmaxCrossEntropy(labels, l)));
      const div = diversityLoss(headsFrom(logits.map((l) => tf.softmax(l))));
      return tf.add(ce, tf.mul(weight, div)) as tfc.Scalar;
    }, true)!;
    const value = loss.dataSync()[0];
    loss.dispose();
    return value;
  }
  const x = tf.randomNormal([8, 64], 0, 1, 'float32', 1) as tfc.Tensor2D;
  const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10) as tfc.Tensor2D;
  trainStep(x, labels); // first step creates the optimizer's slots
  for (let i = 1; i < steps; i++) {
    const v = await expectNoLeak(() => trainStep(x, labels), { returned: 0 });
    expect(Number.isFinite(v)).toBe(true);
  }
  const spread = tf.tidy(
    () => meanPairwiseDistance(tf.stack(heads.map((h) => tf.softmax(h.apply(x) as tfc.Tensor)))).dataSync()[0],
  );
  tf.dispose([x, labels]);
  optimizer.dispose();
  heads.forEach((h) => h.weights.forEach((w) => w.dispose())); // Layer.dispose() needs a symbolic apply first
  return spread;
}

describe('README example: an unrelated tfjs model', () => {
  beforeAll(async () => {
    await tfc.setBackend('wasm');
    await tfc.ready();
  });

  it('trains three dense heads with the dpp term without leaking; the term spreads their outputs', async () => {
    const withTerm = await train(1, 5);
    const without = await train(0, 5);
    expect(withTerm).toBeGreaterThan(without);
  });
});
