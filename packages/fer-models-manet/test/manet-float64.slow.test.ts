/**
 * Issue 6: MA-Net train mode against a float64 truth. scripts/float64-truth.py reruns the manet fixture's
 * computation (analytic weights, batch 2, train-mode forward, β = 0.6 loss with the three −det terms, one SGD step:
 * lr 0.01, momentum 0.9, weight decay 1e-4) with PyTorch in float64.
 *
 * Finding (README, "Parity"): with these weights train mode is chaotic, and PyTorch's own float32 fixture is far
 * from float64 — outputs by 3-16 % of max, the stem, multi-scale and CBAM gradients by 37-300 % (noise), the head
 * gradients by 2e-4 (fc_1 bias) … 2e-1 (fc_2 weight). Ours is at a comparable distance (0.3-2.4x the fixture's),
 * so no float32 implementation can be expected to match the fixture there. The first BN statistics agree to 1e-7.
 * This test pins that down: for every stored output, loss, BN statistic, gradient and post-step parameter,
 * err(ours vs float64) ≤ K · max(err(fixture vs float64), floor).
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { crossEntropy } from 'fer-core';
import { diversityLoss, manetChannelHeads, manetGlobalHeads, manetSpatialHeads } from 'fer-diversity-loss';
import { initBackend } from 'fer-backend';
import { toFloat32 } from 'fer-torch';
import { createManet, type Manet } from 'fer-models-manet';
import { loadTorchStateDict, tfjsToTorch, torchParameter } from 'fer-models-manet/internal';
import { analyticEntries, analyticStateDict, type AnalyticEntry } from './analytic-weights';
import {
  REFERENCE_DIR,
  describeIfTorch,
  formatRows,
  loadFixture,
  maxAbs,
  relErr,
  runTruth,
  updateScale,
  type ErrorRow,
  type Fixture,
} from 'fer-test-utils';

const DATA = 'data.safetensors';
const BETA = 0.6;
const LR = 0.01;
const WEIGHT_DECAY = 1e-4;

/**
 * K = 4 as in fer-models-esr's float64 test: two float32 implementations land at comparable, not equal, distances
 * from the truth; in the chaotic quantities the distance itself is a random draw (one float32 ulp in conv1.weight
 * moves our own outputs by 1-15 %, parity-train.slow.test.ts), so K also covers that spread (measured ours/fixture
 * ≤ 2.4 where the fixture error is above the floor). FLOOR = 2e-5 of max (≈ 170 float32 ulps): quantities the
 * fixture matches to 1e-7 need not match identically. For post-step parameters the floor is 1e-3 of the update
 * (the parameter is stored in float32).
 */
const K = 4;
const FLOOR_VALUE = 2e-5;
const FLOOR_UPDATE = 1e-3;

describeIfTorch(path.join(REFERENCE_DIR, 'manet'), 'MA-Net train mode against a float64 truth (issue 6)', () => {
  let fx: Fixture;
  let entries: AnalyticEntry[];
  let truth: Map<string, Float64Array>;
  const ours = new Map<string, Float64Array>();
  const rows: ErrorRow[] = [];

  beforeAll(async () => {
    const pending = runTruth('manet', { threads: 1 });
    pending.catch(() => undefined); // awaited below; no unhandled rejection meanwhile
    await initBackend({ backend: 'wasm', quiet: true });
    fx = loadFixture('manet');
    entries = analyticEntries(7);
    const manet: Manet = createManet({ numClasses: 7, convInit: 'zeros' });
    try {
      loadTorchStateDict(manet, analyticStateDict(entries), { source: 'analytic weights' });
      const nchw = await fx.tensor(DATA, 'input/x');
      const x = tf.transpose(nchw, [0, 2, 3, 1]) as tf.Tensor4D;
      const lab = await fx.tensor(DATA, 'input/labels');
      const labels = tf.cast(lab, 'int32') as tf.Tensor1D;
      tf.dispose([nchw, lab]);
      const kept: Record<string, tf.Tensor> = {};
      // manet_rafdb.py: β·CE1 + (1 − β)·CE2 + three −det terms (γ 10).
      const { value, grads } = tf.variableGrads(() => {
        const out = manet.forward(x, { training: true });
        const ce1 = crossEntropy(out.logits[0], labels);
        const ce2 = crossEntropy(out.logits[1], labels);
        const ceWeighted = tf.add(tf.mul(BETA, ce1), tf.mul(1 - BETA, ce2));
        const { localFeatures, globalFeatures } = out.heads;
        const divs = [
          manetSpatialHeads(localFeatures),
          manetChannelHeads(localFeatures),
          manetGlobalHeads(globalFeatures),
        ].map((h) => diversityLoss(h, { preset: 'reference' }));
        Object.assign(kept, {
          'train/out1': out.logits[0],
          'train/out2': out.logits[1],
          'train/global_feat': globalFeatures,
          'train/loss_ce_1': ce1,
          'train/loss_ce_2': ce2,
          'train/loss_ce_weighted': ceWeighted,
        });
        for (const t of Object.values(kept)) tf.keep(t);
        return tf.addN([ceWeighted, ...divs]) as tf.Scalar;
      }, manet.trainableVariables());
      ours.set('train/loss_total', Float64Array.from(await value.data()));
      for (const [k, t] of Object.entries(kept)) ours.set(k, Float64Array.from(await t.data()));
      const names = await fx.names(DATA);
      for (const n of names.filter((m) => m.startsWith('train/bn_after_forward/'))) {
        const { variable, entry } = torchParameter(manet, n.slice('train/bn_after_forward/'.length));
        const t = tfjsToTorch(variable, entry.transform);
        ours.set(n, Float64Array.from(await t.data()));
        t.dispose();
      }
      const init = new Map(entries.map((e) => [e.entry.key, e.values]));
      for (const n of names.filter((m) => m.startsWith('grad/'))) {
        const key = n.slice('grad/'.length);
        const { variable, entry } = torchParameter(manet, key);
        const g = tfjsToTorch(grads[variable.name], entry.transform);
        const gv = Float64Array.from(await g.data());
        g.dispose();
        ours.set(n, gv);
        // PyTorch SGD's first step (no momentum history yet): buf = g + wd·p; p ← p − lr·buf, in float32.
        const p = init.get(key)!;
        ours.set(
          `after_sgd1/${key}`,
          Float64Array.from(p, (v, i) =>
            Math.fround(v - Math.fround(LR * Math.fround(gv[i] + Math.fround(WEIGHT_DECAY * v)))),
          ),
        );
      }
      tf.dispose([x, labels, value, grads, kept]);
    } finally {
      manet.dispose();
    }
    truth = await pending;
  });
  afterAll(() => {
    if (rows.length) console.log(`errors against float64 (max|x − f64| / scale)\n${formatRows(rows)}`);
  });

  function check(name: string, scaleName: string, scale: number, fixture: ArrayLike<number>, floor: number): string[] {
    const t = truth.get(name);
    if (!t) throw new Error(`float64-truth.py wrote no '${name}'`);
    const row = {
      name,
      scale: scaleName,
      fixture: relErr(fixture, t, scale, name),
      ours: relErr(ours.get(name)!, t, scale, name),
    };
    rows.push(row);
    const bound = K * Math.max(row.fixture, floor);
    return row.ours <= bound
      ? []
      : [
          `${name}: ours ${row.ours.toExponential(2)} of ${scaleName} from float64, fixture ${row.fixture.toExponential(2)}, bound ${bound.toExponential(2)}`,
        ];
  }
  const fixtureValues = async (name: string) => toFloat32(await fx.raw(DATA, name));

  it('the float64 run computes the fixture computation: the first BN statistics agree to float32 rounding', async () => {
    for (const n of ['train/bn_after_forward/bn1.running_mean', 'train/bn_after_forward/bn1.running_var']) {
      expect(relErr(await fixtureValues(n), truth.get(n)!, maxAbs(truth.get(n)!), n)).toBeLessThan(1e-6);
    }
  });

  it('outputs, losses and BN statistics after the forward: ours as close to float64 as the fixture', async () => {
    const failures: string[] = [];
    const names = [
      'train/out1',
      'train/out2',
      'train/global_feat',
      'train/loss_ce_1',
      'train/loss_ce_2',
      'train/loss_ce_weighted',
      'train/loss_total',
      ...(await fx.names(DATA)).filter((n) => n.startsWith('train/bn_after_forward/')),
    ];
    for (const n of names)
      failures.push(...check(n, 'max', maxAbs(truth.get(n)!), await fixtureValues(n), FLOOR_VALUE));
    expect(failures).toEqual([]);
  });

  it('every stored gradient and the parameters after one SGD step: ours as close to float64 as the fixture', async () => {
    const failures: string[] = [];
    const init = new Map(entries.map((e) => [e.entry.key, e.values]));
    const grads = (await fx.names(DATA)).filter((n) => n.startsWith('grad/'));
    expect(grads).toHaveLength(13);
    for (const n of grads) {
      const key = n.slice('grad/'.length);
      failures.push(...check(n, 'max', maxAbs(truth.get(n)!), await fixtureValues(n), FLOOR_VALUE));
      const a = `after_sgd1/${key}`;
      failures.push(
        ...check(a, 'update', updateScale(truth.get(a)!, init.get(key)!), await fixtureValues(a), FLOOR_UPDATE),
      );
    }
    expect(failures).toEqual([]);
  });
});
