/**
 * ../shared/reference/manet: FeatDiversity on the train-mode global features [2, N, 512] (the only MA-Net diversity
 * input the fixture stores). At these weights the kernel underflows: direct 0, −det −0, −logdet +inf — asserted
 * exactly, with the gradient pattern the diversity fixture's underflow cases show (−det: all zeros; −logdet: all NaN).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as path from 'node:path';
import { describeIfExists, loadFixture, REFERENCE_DIR } from 'fer-test-utils';
import { diversityLoss, manetGlobalHeads } from '../src';

const BACKEND = process.env.FER_BACKEND === 'cpu' ? 'cpu' : 'wasm';

describeIfExists(path.join(REFERENCE_DIR, 'manet'), `MA-Net feature diversity parity (${BACKEND})`, () => {
  const fx = loadFixture('manet');
  const read = async (name: string) => {
    const t = await fx.tensor('data.safetensors', name);
    const v = Array.from(t.dataSync());
    t.dispose();
    return v;
  };

  beforeAll(async () => {
    await tf.setBackend(BACKEND);
    await tf.ready();
  });

  it('train/fdiv_{direct,neg_det,neg_logdet} and loss_fdiv_det', async () => {
    const feat = await fx.tensor('data.safetensors', 'train/global_feat');
    const heads = manetGlobalHeads(feat);
    const got = (reduction: 'sum' | 'negDet' | 'negLogDet') => {
      const v = diversityLoss(heads, { preset: 'reference', reduction });
      const out = v.dataSync()[0];
      v.dispose();
      return out;
    };
    const ref = {
      direct: (await read('train/fdiv_direct'))[0],
      negDet: (await read('train/fdiv_neg_det'))[0],
      negLogDet: (await read('train/fdiv_neg_logdet'))[0],
      loss: (await read('train/loss_fdiv_det'))[0],
    };
    expect(ref).toEqual({ direct: 0, negDet: -0, negLogDet: Infinity, loss: -0 });
    expect(Object.is(got('sum'), ref.direct)).toBe(true);
    expect(Object.is(got('negDet'), ref.negDet)).toBe(true);
    expect(got('negLogDet')).toBe(ref.negLogDet);
    const gDet = tf.grad((h: tf.Tensor) => diversityLoss(h, { preset: 'reference' }))(heads);
    expect(Array.from(gDet.dataSync()).every((v) => v === 0)).toBe(true);
    const gLog = tf.grad((h: tf.Tensor) => diversityLoss(h, { preset: 'reference', reduction: 'negLogDet' }))(heads);
    expect(Array.from(gLog.dataSync()).every(Number.isNaN)).toBe(true);
    tf.dispose([feat, heads, gDet, gLog]);
  });
});
