/**
 * Train-mode parity with ../shared/reference/manet (analytic weights, batch 2 of 224x224) on wasm: one training
 * forward, the reference loss (β = 0.6), the stored gradients and one SGD step (lr 0.01, momentum 0.9, weight decay
 * 1e-4, PyTorch semantics).
 *
 * Conditioning. With these weights and batch 2, train mode is chaotic: every train-mode BN divides by small batch
 * standard deviations, so float32 rounding is amplified layer after layer. The bench README measured that a float64
 * recomputation moves the global features by 0.41 of 2.5. Here, perturbing only conv1.weight by one float32 ulp
 * (relative 1.2e-7) moved our own out1 by 1.5e-3 (of 0.18), out2 by 0.04 (of 0.57), the global features by 0.38 (of
 * 2.5), and left our own gradients correlated with their unperturbed values by only 0.06 (conv1.weight), 0.19
 * (layer1.0.conv1), 0.20 (layer3_2.0.conv1_2_1), 0.50 (bn1.weight), 0.88 (a CBAM MLP), 0.96 (layer4_1_p4.1.bn2) and
 * 0.998 (fc_2). XNNPACK's accumulation order differs from oneDNN's in every conv, so those quantities cannot match
 * PyTorch to the manifest's 1e-3. The test therefore:
 * - checks the well-conditioned quantities at the manifest tolerances: BN running statistics of the early layers and
 *   of the local branch, the loss formula on the reference's logits, the fc_1 bias gradient, and the SGD update rule;
 * - checks the chaotic ones against bounds set from that measured sensitivity (stated next to each).
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { crossEntropy } from 'fer-core';
import {
  diversityLoss,
  manetChannelHeads,
  manetGlobalHeads,
  manetSpatialHeads,
  type DiversityReduction,
} from 'fer-diversity-loss';
import { initBackend } from 'fer-backend';
import {
  REFERENCE_DIR,
  describeIfExists,
  expectTensorClose,
  loadFixture,
  type Fixture,
  testBackend,
} from 'fer-test-utils';
import { createManet, type Manet } from 'fer-models-manet';
import { loadTorchStateDict, tfjsToTorch, torchParameter } from 'fer-models-manet/internal';
import { analyticEntries, analyticStateDict, type AnalyticEntry } from './analytic-weights';

const FIXTURE_DIR = path.join(REFERENCE_DIR, 'manet');
const BETA = 0.6;
const LR = 0.01;
const WEIGHT_DECAY = 1e-4;

interface Tol {
  rtol?: number;
  atol?: number;
  atol_rel_max?: number;
}

/** Pearson correlation of two equally long arrays. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) {
    ma += a[i] / a.length;
    mb += b[i] / a.length;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

describeIfExists(FIXTURE_DIR, 'MA-Net parity (train mode, one SGD step)', () => {
  let fx: Fixture;
  let entries: AnalyticEntry[];
  let manet: Manet;
  let x: tf.Tensor4D;
  let labels: tf.Tensor1D;
  const ours: Record<string, tf.Tensor> = {};
  let grads: tf.NamedTensorMap = {};
  let vars: tf.Variable[] = [];

  const manifestTol = (name: string): Tol =>
    fx.manifest.tensors.find((t: { name: string }) => t.name === name)!.tolerance;
  // Scalars come back from the fixture loader as [1]; compare them as [].
  const ref = async (name: string) => {
    const t = await fx.tensor('data.safetensors', name);
    if (
      t.rank === 1 &&
      t.size === 1 &&
      fx.manifest.tensors.find((d: { name: string }) => d.name === name)?.shape.length === 0
    ) {
      const s = tf.reshape(t, []);
      t.dispose();
      return s;
    }
    return t;
  };
  const compare = async (actual: tf.Tensor, name: string, tol: Tol = manifestTol(name)) => {
    const r = await ref(name);
    try {
      const atol = tol.atol_rel_max !== undefined ? tol.atol_rel_max * maxAbs(r.dataSync()) : (tol.atol ?? 0);
      expectTensorClose(actual, r, { rtol: tol.rtol ?? 0, atol }, name);
    } finally {
      r.dispose();
    }
  };
  /** For chaotic quantities: max error below `frac`·max|ref| and correlation at least `minCorr`. */
  const compareLoosely = async (actual: tf.Tensor, name: string, frac: number, minCorr: number) => {
    const r = await ref(name);
    const a = actual.dataSync();
    const e = r.dataSync();
    r.dispose();
    expect(actual.shape).toEqual(r.shape);
    let err = 0;
    for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - e[i]));
    expect({ name, err: err <= frac * maxAbs(e) }).toEqual({ name, err: true });
    if (a.length > 2) expect({ name, corr: correlation(a, e) >= minCorr }).toEqual({ name, corr: true });
  };
  const gradOf = (key: string) => {
    const { variable, entry } = torchParameter(manet, key);
    return tfjsToTorch(grads[variable.name], entry.transform);
  };

  beforeAll(async () => {
    await initBackend({ backend: testBackend() });
    fx = loadFixture('manet');
    entries = analyticEntries(7);
    manet = createManet({ numClasses: 7, convInit: 'zeros' });
    loadTorchStateDict(manet, analyticStateDict(entries), { source: 'analytic weights' });
    const nchw = await ref('input/x');
    x = tf.transpose(nchw, [0, 2, 3, 1]) as tf.Tensor4D;
    nchw.dispose();
    const lab = await ref('input/labels');
    labels = tf.cast(lab, 'int32') as tf.Tensor1D;
    lab.dispose();

    // One training step's forward + backward, as manet_rafdb.py: loss = β·CE1 + (1 − β)·CE2 + three −det terms.
    vars = manet.trainableVariables();
    const step = tf.variableGrads(() => {
      const out = manet.forward(x, { training: true });
      const ce1 = crossEntropy(out.logits[0], labels);
      const ce2 = crossEntropy(out.logits[1], labels);
      const ceWeighted = tf.add(tf.mul(BETA, ce1), tf.mul(1 - BETA, ce2));
      // BranchDiversity(local, 'spatial'), BranchDiversity(local, 'channel'), FeatDiversity(global): −det, γ 10.
      const { localFeatures, globalFeatures } = out.heads;
      const bdivSpatial = diversityLoss(manetSpatialHeads(localFeatures), { preset: 'reference' });
      const bdivChannel = diversityLoss(manetChannelHeads(localFeatures), { preset: 'reference' });
      const fdiv = diversityLoss(manetGlobalHeads(globalFeatures), { preset: 'reference' });
      const keep = {
        out1: out.logits[0],
        out2: out.logits[1],
        global: globalFeatures,
        local: localFeatures,
        ce1,
        ce2,
        ceWeighted,
        bdivSpatial,
        bdivChannel,
        fdiv,
      };
      for (const [k, t] of Object.entries(keep)) ours[k] = tf.keep(t);
      return tf.addN([ceWeighted, bdivSpatial, bdivChannel, fdiv]) as tf.Scalar;
    }, vars);
    ours.total = step.value;
    grads = step.grads;
  });

  afterAll(() => {
    manet?.dispose();
    tf.dispose([x, labels, ...Object.values(ours), ...Object.values(grads)]);
  });

  test('well-conditioned: BN running statistics after the forward (manifest tolerance)', async () => {
    // bn1, layer1, the CBAM spatial BN and layer4_1_p1's last BN variance agree to ~1e-9..1e-6; the multi-scale
    // branch's layer4_2.1.bn2_2_4 and layer4_1_p1.1.bn2's mean sit downstream of the chaos (checked loosely).
    const tight = [
      'bn1.running_mean',
      'bn1.running_var',
      'layer1.0.bn1.running_mean',
      'layer1.0.bn1.running_var',
      'layer3_1_p1.0.cbam.SpatialGate.spatial.bn.running_mean',
      'layer3_1_p1.0.cbam.SpatialGate.spatial.bn.running_var',
      'layer4_1_p1.1.bn2.running_var',
    ];
    const stored = (await fx.names('data.safetensors')).filter((n) => n.startsWith('train/bn_after_forward/'));
    expect(stored).toHaveLength(10);
    for (const name of stored) {
      const key = name.slice('train/bn_after_forward/'.length);
      const { variable, entry } = torchParameter(manet, key);
      const t = tfjsToTorch(variable, entry.transform);
      if (tight.includes(key)) await compare(t, name);
      else await compareLoosely(t, name, 0.05, 0.999); // measured max error / max|ref|: 1.5e-4 .. 1.0e-2
      t.dispose();
    }
    // num_batches_tracked went 0 -> 1 in every BN.
    const { variable } = torchParameter(manet, 'layer4_2.1.bn2_2_4.num_batches_tracked');
    expect(variable.dataSync()[0]).toBe(1);
  });

  test('loss formula: CE and β-weighting on the reference logits reproduce the reference terms (1e-5)', async () => {
    const out1 = (await ref('train/out1')) as tf.Tensor2D;
    const out2 = (await ref('train/out2')) as tf.Tensor2D;
    const ce1 = crossEntropy(out1, labels);
    const ce2 = crossEntropy(out2, labels);
    const weighted = tf.add(tf.mul(BETA, ce1), tf.mul(1 - BETA, ce2));
    await compare(ce1, 'train/loss_ce_1');
    await compare(ce2, 'train/loss_ce_2');
    await compare(weighted, 'train/loss_ce_weighted');
    await compare(weighted, 'train/loss_total'); // + three −0 terms (next test)
    tf.dispose([out1, out2, ce1, ce2, weighted]);
  });

  test('diversity terms as the reference composes them: the underflow edge values (−0, +inf) reproduced', async () => {
    // Our train-mode features are as far from PyTorch's as the chaos allows, but the patches and the two branches
    // stay far apart, so every kernel exp(−10·d) underflows (or nearly) exactly as in the reference.
    for (const name of ['bdivSpatial', 'bdivChannel', 'fdiv'])
      expect(Object.is(ours[name].dataSync()[0], -0)).toBe(true);
    const loss = (name: string) => fx.manifest.loss.values[name];
    expect(
      [loss('bdiv_spatial_det'), loss('bdiv_channel_det'), loss('fdiv_det')].every((v: number) => Object.is(v, -0)),
    ).toBe(true);
    const term = (heads: tf.Tensor, reduction: DiversityReduction) => {
      const v = diversityLoss(heads, { preset: 'reference', reduction });
      const out = v.dataSync()[0];
      tf.dispose([v, heads]);
      return out;
    };
    const local = ours.local;
    const all = fx.manifest.loss.all_diversity_values;
    // channel and global: every kernel is exactly 0 -> direct 0, −det −0, −logdet +inf (torch: log 0 = −inf).
    expect(term(manetChannelHeads(local), 'sum')).toBe(0);
    expect(term(manetChannelHeads(local), 'negLogDet')).toBe(Infinity);
    expect(term(manetGlobalHeads(ours.global), 'sum')).toBe(0);
    expect(term(manetGlobalHeads(ours.global), 'negLogDet')).toBe(Infinity);
    expect([all.bdiv_channel_direct, all.bdiv_channel_neg_logdet, all.fdiv_direct, all.fdiv_neg_logdet]).toEqual([
      0,
      'Infinity',
      0,
      'Infinity',
    ]);
    // spatial: S holds subnormal-to-tiny kernels (direct 1.8e-18), det underflows to 0 but −logdet stays finite
    // (209.15). Both depend on the chaotic features through exp(−10·d), so only their scale can agree.
    const direct = term(manetSpatialHeads(local), 'sum');
    const negLogDet = term(manetSpatialHeads(local), 'negLogDet');
    expect(Math.abs(Math.log10(direct) - Math.log10(all.bdiv_spatial_direct))).toBeLessThan(3);
    expect(
      Number.isFinite(negLogDet) &&
        Math.abs(negLogDet - all.bdiv_spatial_neg_logdet) < 0.25 * all.bdiv_spatial_neg_logdet,
    ).toBe(true);
    await compare(tf.tensor(Object.is(ours.bdivSpatial.dataSync()[0], -0) ? -0 : NaN), 'train/bdiv_spatial_neg_det');
  });

  test('chaotic: train-mode outputs and losses within the measured float32 sensitivity', async () => {
    // Bounds ≈ 3x the 1-ulp sensitivity above; measured errors: out1 2.9%, out2 2.5%, global 9.4% of max|ref|.
    await compareLoosely(ours.out1, 'train/out1', 0.06, 0.99);
    await compareLoosely(ours.out2, 'train/out2', 0.4, 0.95);
    await compareLoosely(ours.global, 'train/global_feat', 0.4, 0.9);
    await compareLoosely(ours.ce1, 'train/loss_ce_1', 0.01, 0);
    await compareLoosely(ours.ce2, 'train/loss_ce_2', 0.1, 0);
    await compareLoosely(ours.total, 'train/loss_total', 0.05, 0);
    expect(ours.local.shape).toEqual([4, 2, 7, 7, 512]);
  });

  test('gradients: every variable gets a finite one; head and local-branch gradients track PyTorch', async () => {
    for (const v of vars) {
      const g = grads[v.name];
      expect(g?.shape).toEqual(v.shape);
      expect(tf.all(tf.isFinite(g)).dataSync()[0]).toBe(1);
    }
    const fcBias = gradOf('fc_1.bias');
    await compare(fcBias, 'grad/fc_1.bias'); // well-conditioned: depends only on softmax(out1)
    fcBias.dispose();
    // Downstream of little chaos: correlation with PyTorch's gradient (measured 0.9999, 0.987, 0.975, 0.997; our
    // own 1-ulp sensitivity allows down to ~0.96, 0.88 and 0.998 for the last three).
    for (const [key, minCorr] of [
      ['fc_1.weight', 0.999],
      ['layer4_1_p4.1.bn2.weight', 0.9],
      ['layer3_1_p1.0.cbam.ChannelGate.mlp.1.weight', 0.8],
      ['fc_2.weight', 0.98],
    ] as const) {
      const g = gradOf(key);
      const r = await ref(`grad/${key}`);
      expect({ key, corr: correlation(g.dataSync(), r.dataSync()) >= minCorr }).toEqual({ key, corr: true });
      tf.dispose([g, r]);
    }
    // The stem and multi-scale gradients (|g| up to 1e5) are dominated by amplified rounding noise, in PyTorch too
    // (the bench README saw 13-18% moves from reordering one sum; one ulp in conv1 decorrelates ours, see above);
    // only their scale is comparable.
    for (const key of ['conv1.weight', 'bn1.weight', 'layer1.0.conv1.weight', 'layer3_2.0.conv1_2_1.weight']) {
      const g = gradOf(key);
      const r = await ref(`grad/${key}`);
      const ratio = maxAbs(g.dataSync()) / maxAbs(r.dataSync());
      expect({ key, ratio: ratio > 0.2 && ratio < 5 }).toEqual({ key, ratio: true });
      tf.dispose([g, r]);
    }
  });

  test('one SGD step with PyTorch semantics (momentum buffer = d_p on the first step, decay on every parameter)', async () => {
    // PyTorch SGD, first step: d = g + wd·p; buf = d; p ← p − lr·buf. Applied (a) to the reference's gradients and
    // initial weights, which must give after_sgd1 at the manifest tolerance, and (b) to our fc_1 bias.
    const sgd = (p: tf.Tensor, g: tf.Tensor) =>
      tf.tidy(() => tf.sub(p, tf.mul(LR, tf.add(g, tf.mul(WEIGHT_DECAY, p)))));
    const initial = new Map(entries.map((e) => [e.entry.key, e]));
    const stepped = (await fx.names('data.safetensors')).filter((n) => n.startsWith('after_sgd1/'));
    expect(stepped).toHaveLength(13);
    for (const name of stepped) {
      const key = name.slice('after_sgd1/'.length);
      const e = initial.get(key)!;
      const p = tf.tensor(e.values, e.entry.shape);
      const g = await ref(`grad/${key}`);
      const after = sgd(p, g);
      await compare(after, name);
      tf.dispose([p, g, after]);
    }
    const { variable, entry } = torchParameter(manet, 'fc_1.bias');
    const p = tfjsToTorch(variable, entry.transform);
    const g = gradOf('fc_1.bias');
    const after = sgd(p, g);
    await compare(after, 'after_sgd1/fc_1.bias');
    tf.dispose([p, g, after]);
  });
});
