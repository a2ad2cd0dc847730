import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { FER_ERROR_CODES } from '../errors';
import { FoldedConv2d } from './fold';
import { TorchBatchNorm } from './torch-batch-norm';
import { foldCases, maxAbs, unfolded } from '../../test/fold-helpers';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('FoldedConv2d (conv → eval-mode batch norm → ReLU as one fused conv)', () => {
  it('gives the hand-derived value of a 1×1 conv (w 2, b 1) → BN (γ 3, β 0.5, μ 2, σ² 4 − ε) → ReLU', () => {
    const conv = tfl.layers.conv2d({ filters: 1, kernelSize: 1, useBias: true });
    const bn = new TorchBatchNorm();
    const x = tf.tensor4d([4, -3, 0.5], [1, 1, 3, 1]);
    tf.tidy(() => bn.apply(conv.apply(x) as tf.Tensor) as tf.Tensor);
    tf.tidy(() => {
      conv.setWeights([tf.tensor4d([2], [1, 1, 1, 1]), tf.tensor1d([1])]);
      bn.setWeights([tf.tensor1d([3]), tf.tensor1d([0.5]), tf.tensor1d([2]), tf.tensor1d([4 - 1e-5]), tf.scalar(7)]);
    });
    const relu = new FoldedConv2d(conv, bn, 'relu');
    const linear = new FoldedConv2d(conv, bn, 'linear');
    // s = 3 / √4 = 1.5; x = 4: conv 9 → (9 − 2)·1.5 + 0.5 = 11; x = −3: conv −5 → −10 (ReLU: 0); x = 0.5: 2 → 0.5.
    expectArrayClose(relu.apply(x).dataSync(), [11, 0, 0.5], { rtol: 1e-6, atol: 1e-6 }, 'relu');
    expectArrayClose(linear.apply(x).dataSync(), [11, -10, 0.5], { rtol: 1e-6, atol: 1e-6 }, 'linear');
    relu.dispose();
    linear.dispose();
  });

  // Tolerance: the fold changes where the per-channel factor γ/√(σ²+ε) is applied (on W before the sum instead of on
  // the sum): a few float32 roundings (2^-24 ≈ 6e-8 each) per product and per accumulation step, relative to the
  // magnitude of the terms, i.e. ≤ ~1e-6 of max|y| for these fan-ins (≤ 5·5·24). 1e-5 of max|y| leaves a margin and
  // still fails any wrong formula (a missing ε or an unbiased/biased mix-up is ≥ 1e-3 here).
  it.each(foldCases())('equals conv → BN → act on random weights and statistics: %s', (_label, c) => {
    const { conv, bn, x } = c.build();
    const fold = new FoldedConv2d(conv, bn, c.activation);
    const got = fold.apply(x);
    const want = unfolded(conv, bn, c.activation, x);
    expect(got.shape).toEqual(want.shape);
    const w = want.dataSync();
    expectArrayClose(got.dataSync(), w, { rtol: 1e-5, atol: 1e-5 * maxAbs(w) }, c.label);
    tf.dispose([got, want, x]);
    fold.dispose();
    conv.dispose();
    bn.dispose();
  });

  it("never writes the layers' weights, folds again when they are reassigned, and leaks nothing", async () => {
    const c = foldCases()[0][1];
    const { conv, bn, x } = c.build();
    const before = [...conv.getWeights(), ...bn.getWeights()].map((w) => w.dataSync().slice());
    await expectNoLeak(() => {
      const fold = new FoldedConv2d(conv, bn, 'relu');
      tf.dispose(fold.apply(x));
      // New statistics (as training or a checkpoint load would write): the next apply must use them.
      tf.tidy(() => {
        const [g, b, m, v, n] = bn.getWeights();
        bn.setWeights([tf.mul(g, 2), tf.add(b, 1), tf.sub(m, 0.5), tf.mul(v, 3), tf.clone(n)]);
      });
      const got = fold.apply(x);
      const want = unfolded(conv, bn, 'relu', x);
      const w = want.dataSync();
      expectArrayClose(got.dataSync(), w, { rtol: 1e-5, atol: 1e-5 * maxAbs(w) }, 'after new statistics');
      tf.dispose([got, want]);
      fold.dispose();
      // Put the original statistics back, for the check below that the fold itself wrote nothing.
      tf.tidy(() => bn.setWeights(bn.getWeights().map((t, i) => tf.tensor(before[2 + i], t.shape))));
    });
    [...conv.getWeights(), ...bn.getWeights()].forEach((w, i) =>
      expect(Buffer.from(w.dataSync().buffer).equals(Buffer.from(before[i].buffer))).toBe(true),
    );
    tf.dispose(x);
  });

  it('refuses unusable statistics, an unbuilt batch norm and a disposed model with one FER_INPUT line', () => {
    const c = foldCases()[0][1];
    const { conv, bn, x } = c.build();
    const w = bn.getWeights().map((t) => tf.clone(t)); // getWeights() returns the variables themselves
    const refuse = (weights: tf.Tensor[], pattern: RegExp) => {
      bn.setWeights(weights);
      let err: unknown;
      try {
        new FoldedConv2d(conv, bn, 'relu', " in part 'base'").dispose();
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: FER_ERROR_CODES.input });
      expect((err as Error).message).toMatch(pattern);
      expect((err as Error).message).not.toContain('\n');
    };
    const bad = (i: number, v: number) =>
      w.map((t, j) => (j === i ? tf.tensor1d(Array.from({ length: t.size }, (_, k) => (k === 3 ? v : 1))) : t));
    refuse(bad(3, NaN), /batch norm '.*' in part 'base'.*running_var.*channel 3 holds NaN/);
    refuse(bad(3, -0.5), /running_var to be finite and non-negative, but channel 3 holds -0\.5/);
    refuse(bad(2, Infinity), /running_mean to be finite, but channel 3 holds Infinity/);
    expect(() => new FoldedConv2d(conv, new TorchBatchNorm({ name: 'fresh_bn' }), 'relu')).toThrow(
      /Batch norm 'fresh_bn' has no statistics yet/,
    );
    bn.setWeights(w);
    const fold = new FoldedConv2d(conv, bn, 'relu');
    bn.dispose();
    expect(() => fold.apply(x)).toThrow(/weights were disposed/);
    fold.dispose();
    conv.dispose();
    x.dispose();
  });
});
