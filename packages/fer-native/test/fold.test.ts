import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from 'fer-backend';
import { FoldedConv2d } from 'fer-core';
import { createEsr } from 'fer-models-esr';
import { NATIVE_BACKEND } from 'fer-native';
import { expectArrayClose, expectNoLeak, expectOutputsClose } from 'fer-test-utils';
import { foldCases, maxAbs, unfolded } from '../../fer-core/test/fold-helpers';
import { randomizeBatchNorms, testImages } from '../../fer-models-esr/test/fold-helpers';
import { describeNative } from './helpers';

/** Values of `fn` on one backend, as a plain array. */
async function on(backend: string, fn: () => tf.Tensor): Promise<{ shape: number[]; values: Float32Array }> {
  await tf.setBackend(backend);
  const t = fn();
  const out = { shape: t.shape, values: t.dataSync() as Float32Array };
  t.dispose();
  return out;
}

// Inference-time batch-norm folding runs as FusedConv2D with oneDNN's bias + ReLU post-op (fer-core FoldedConv2d).
// Tolerance as fer-core's fold test: a few float32 roundings moved, ≤ 1e-5 of max|y| (oneDNN's blocked summation
// order adds its own last-bit differences, within fer-backend's kernel tolerance).
describeNative('batch-norm folding on native (FusedConv2D + bias + ReLU)', () => {
  beforeAll(async () => {
    expect((await initBackend({ backend: 'native', quiet: true })).name).toBe(NATIVE_BACKEND);
  });

  it.each(foldCases())('%s: folded on native = unfolded on native and on cpu', async (_label, c) => {
    await tf.setBackend(NATIVE_BACKEND);
    const { conv, bn, x } = c.build();
    const fold = new FoldedConv2d(conv, bn, c.activation);
    const got = await on(NATIVE_BACKEND, () => fold.apply(x));
    for (const ref of [NATIVE_BACKEND, 'cpu']) {
      const want = await on(ref, () => unfolded(conv, bn, c.activation, x));
      expect(got.shape).toEqual(want.shape);
      expectArrayClose(
        got.values,
        want.values,
        { rtol: 1e-5, atol: 1e-5 * maxAbs(want.values) },
        `${c.label} vs ${ref}`,
      );
    }
    await tf.setBackend(NATIVE_BACKEND);
    fold.dispose();
    tf.dispose([x]);
    conv.dispose();
    bn.dispose();
  });

  it('ESR (CBAM, 2 branches, 96 px): fold() gives the eval-mode outputs, and fold + predict + dispose leaks nothing', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 3 });
    randomizeBatchNorms(esr, 3);
    const x = testImages(4, 96, 9);
    const want = esr.forward(x, { training: false });
    await expectNoLeak(() => {
      const folded = esr.fold();
      const got = folded.forward(x);
      const pairs: [string, tf.Tensor, tf.Tensor][] = [
        ['logits 0', got.logits[0], want.logits[0]],
        ['logits 1', got.logits[1], want.logits[1]],
        ['spatialAttention', got.heads.spatialAttention, want.heads.spatialAttention],
        ['channelAttention', got.heads.channelAttention, want.heads.channelAttention],
      ];
      expectOutputsClose(pairs);
      tf.dispose([...got.logits, ...Object.values(got.heads)]);
      tf.dispose(folded.predict(x));
      folded.dispose();
    });
    tf.dispose([x, ...want.logits, ...Object.values(want.heads)]);
    esr.dispose();
  });
});
