/**
 * Parity with ../shared/reference/manet (PyTorch 1.13, diversified_manet.py, analytic weights, batch 2 of 224x224):
 * the analytic weights' checksums, the eval-mode outputs, and loading the fixture's state dict.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import {
  REFERENCE_DIR,
  describeIfExists,
  expectArrayClose,
  expectTensorClose,
  loadFixture,
  type Fixture,
  testBackend,
} from 'fer-test-utils';
import { createManet, type Manet } from 'fer-models-manet';
import { loadTorchStateDict } from 'fer-models-manet/internal';
import { analyticEntries, analyticStateDict, checksum, type AnalyticEntry } from './analytic-weights';

const FIXTURE_DIR = path.join(REFERENCE_DIR, 'manet');

describeIfExists(FIXTURE_DIR, 'MA-Net parity (eval mode)', () => {
  let fx: Fixture;
  let entries: AnalyticEntry[];
  let manet: Manet;
  let x: tf.Tensor4D;

  beforeAll(async () => {
    await initBackend({ backend: testBackend() });
    fx = loadFixture('manet');
    entries = analyticEntries(7);
    manet = createManet({ numClasses: 7, convInit: 'zeros', seed: 3 });
    loadTorchStateDict(manet, analyticStateDict(entries), { source: 'analytic weights' });
    const nchw = await fx.tensor('data.safetensors', 'input/x');
    x = tf.transpose(nchw, [0, 2, 3, 1]) as tf.Tensor4D; // NCHW -> NHWC
    nchw.dispose();
  });

  afterAll(() => {
    manet?.dispose();
    x?.dispose();
  });

  test('the analytic weights match the fixture entry by entry (names, order, shapes, checksums)', () => {
    const ref = JSON.parse(readFileSync(path.join(FIXTURE_DIR, 'analytic_weights.json'), 'utf8')).entries as Array<{
      k: number;
      name: string;
      shape: number[];
      rule: string;
      fan_in?: number;
      sum?: number;
      sumsq?: number;
    }>;
    expect(entries.map((e) => e.entry.key)).toEqual(ref.map((r) => r.name));
    for (const [i, { entry, values }] of entries.entries()) {
      const r = ref[i];
      expect([entry.index, entry.shape]).toEqual([r.k, r.shape]);
      if (r.rule === 'zero') continue;
      expect(entry.fanIn).toBe(r.fan_in);
      const { sum, sumsq } = checksum(values);
      // float64 accumulation in another order (numpy is pairwise): 1e-9 leaves room for that and for a 1-ulp sin.
      expectArrayClose([sum, sumsq], [r.sum!, r.sumsq!], { rtol: 1e-9, atol: 1e-9 }, `checksum ${entry.key}`);
    }
  });

  test.each(['forward', 'fold'])(
    'eval outputs (%s): both logits, global features, local features (manifest tolerances)',
    async (path) => {
      const tol = (name: string) => fx.manifest.tensors.find((t: { name: string }) => t.name === name)!.tolerance;
      // 'fold': through manet.fold(), batch norms folded into the convs.
      const folded = path === 'fold' ? manet.fold() : null;
      const out = folded ? folded.forward(x) : manet.forward(x, { training: false });
      try {
        const ref = async (n: string) => fx.tensor('data.safetensors', n);
        const cmp = async (ours: tf.Tensor, name: string) => {
          const r = await ref(name);
          expectTensorClose(ours, r, tol(name), name);
          r.dispose();
        };
        await cmp(out.logits[0], 'eval/out1');
        await cmp(out.logits[1], 'eval/out2');
        await cmp(out.heads.globalFeatures, 'eval/global_feat');
        const localNchw = tf.transpose(out.heads.localFeatures, [0, 1, 4, 2, 3]); // [4,B,7,7,C] -> [4,B,C,7,7]
        await cmp(localNchw, 'eval/local_feat');
        localNchw.dispose();
      } finally {
        tf.dispose(out as unknown as tf.TensorContainer);
        folded?.dispose();
      }
    },
  );
});
