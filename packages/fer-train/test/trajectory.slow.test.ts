/**
 * Trajectory parity through the trainer's step function: the reference's SGD steps on fixed batches
 * (../shared/reference/train_esr2: base + 2 branches, 3 steps, two variants; esr_cbam: base + 3 branches, 2 steps).
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import {
  describeIfExists,
  expectArrayClose,
  loadFixture,
  nearDuplicateStateDict,
  REFERENCE_DIR,
  testBackend,
} from 'fer-test-utils';
import { readSafetensors } from 'fer-torch/node';
import { toFloat32, type RawTensor } from 'fer-torch';
import { fromTorchStateDicts, toTorchStateDicts, type EsrEnsemble } from 'fer-models-esr';
import { esrStageLoss } from '../src/recipes/esr';
import { esrGrowthPlan } from '../src/schedule/plans';
import { stageOptimizer } from '../src/trainer';
import { trainStep } from '../src/step';

const INIT = path.join(REFERENCE_DIR, 'esr_cbam', 'weights_init');

beforeAll(async () => {
  await initBackend({ backend: testBackend(), quiet: true });
});

async function stateDict(part: string): Promise<Map<string, RawTensor>> {
  return (await readSafetensors(path.join(INIT, `${part}.safetensors`))).tensors;
}

function nhwc(x: tf.Tensor): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D);
}

function torchState(esr: EsrEnsemble): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const { file, stateDict: sd } of toTorchStateDicts(esr)) {
    const part = file.startsWith('Net-Base') ? 'base' : `branch_${/Branch_(\d+)/.exec(file)![1]}`;
    for (const [k, t] of sd) out.set(`${part}/${k}`, toFloat32(t));
  }
  return out;
}

describeIfExists(path.join(REFERENCE_DIR, 'train_esr2'), 'ESR trajectory parity through trainStep', () => {
  const fx = loadFixture('train_esr2');

  for (const variant of ['fresh', 'near_duplicate'] as const) {
    describe(variant, () => {
      const losses: { total: number; terms: Record<string, number> }[] = [];
      let ours = new Map<string, Float32Array>();
      beforeAll(async () => {
        const [base, b1, b2raw] = await Promise.all(['base', 'branch_1', 'branch_2'].map(stateDict));
        const b2 = variant === 'fresh' ? b2raw : nearDuplicateStateDict(b1, b2raw);
        const { esr } = fromTorchStateDicts(base, [b1, b2]);
        const stage = esrGrowthPlan().stages[1]; // ensemble of 2: base .01, branch_2 (newest) .1, branch_1 .01
        const opt = stageOptimizer(esr, stage);
        expect(opt.learningRates()).toEqual({ base: 0.01, branch_1: 0.01, branch_2: 0.1 });
        const loss = esrStageLoss(stage, 'reference');
        for (let s = 1; s <= 3; s++) {
          const x = nhwc(await fx.tensor('data.safetensors', `input/x_step${s}`));
          const labels = tf.tensor1d(
            Array.from(toFloat32(await fx.raw('data.safetensors', `input/labels_step${s}`))),
            'int32',
          );
          const r = await trainStep(esr, opt, { images: x, labels }, loss);
          tf.dispose([x, labels]);
          losses.push({ total: r.loss, terms: r.terms });
        }
        ours = torchState(esr);
        opt.dispose();
        esr.dispose();
      });

      it('loss and every term at each of the 3 steps (tolerance ×10 per step)', () => {
        const steps = fx.manifest.variants[variant].steps;
        for (let s = 1; s <= 3; s++) {
          const tol = { rtol: 1e-5 * 10 ** (s - 1), atol: 1e-6 };
          const want = steps[s - 1];
          const got = losses[s - 1];
          expectArrayClose([got.total], [want.total], tol, `${variant} loss step ${s}`);
          expectArrayClose(
            [got.terms.ce_branch_1, got.terms.ce_branch_2],
            [want.ce_branch_1, want.ce_branch_2],
            tol,
            `${variant} CE step ${s}`,
          );
          expectArrayClose(
            [got.terms.div_spatial, got.terms.div_channel],
            [want.div_sp_det, want.div_ch_det],
            tol,
            `${variant} diversity step ${s}`,
          );
        }
      });

      // branch_2 (lr 0.1) amplifies the upstream gradient gap below: only branch_1's classifier is checked here.
      it('the older branch classifier after 3 steps (branch_1 fc weight and bias)', async () => {
        for (const key of ['branch_1/fc.weight', 'branch_1/fc.bias']) {
          const t = fx.manifest.tensors.find((m: { name: string }) => m.name === `${variant}/final/${key}`)!;
          expectArrayClose(
            ours.get(key)!,
            toFloat32(await fx.raw('data.safetensors', t.name)),
            { rtol: t.tolerance.rtol, atol: t.tolerance.atol },
            `${variant} ${key}`,
          );
        }
      });

      // Known gap: train mode at batch 4 is ill-conditioned. ReLU and max-pool choices at float32 near-ties flip
      // differently on XNNPACK than on oneDNN, and one flip moves a whole gradient by 1e-3..1e-2 of its max
      // (fer-models-esr/test/esr-cbam-float64.slow.test.ts measures this against a float64 truth), so tensors miss
      // the manifest's strict tolerances after the lr-0.1 updates. `failing` turns into an error if they ever meet it.
      it.failing('every stored tensor after 3 steps (base and branches, BN buffers)', async () => {
        const finals = fx.manifest.tensors.filter((t: { name: string }) => t.name.startsWith(`${variant}/final/`));
        for (const t of finals) {
          const key = t.name.slice(`${variant}/final/`.length);
          if (key.endsWith('num_batches_tracked')) continue;
          expectArrayClose(
            ours.get(key)!,
            toFloat32(await fx.raw('data.safetensors', t.name)),
            { rtol: t.tolerance.rtol, atol: t.tolerance.atol },
            `${variant} ${key}`,
          );
        }
      });
    });
  }
});

describeIfExists(
  path.join(REFERENCE_DIR, 'esr_cbam'),
  'esr_cbam: 2 SGD steps with the 3-branch stage optimizer through trainStep',
  () => {
    const fx = loadFixture('esr_cbam');

    const got: { total: number; terms: Record<string, number> }[] = [];
    let ours = new Map<string, Float32Array>();
    /** The same two steps written out by hand (tf.variableGrads + PyTorch's momentum rule), not through fer-train. */
    let byHand = new Map<string, Float32Array>();
    const stage = esrGrowthPlan().stages[2];
    const LRS: Record<string, number> = { base: 0.01, branch_1: 0.01, branch_2: 0.01, branch_3: 0.1 };
    const batches = [
      ['input/x', 'input/labels'],
      ['input/x_step2', 'input/labels_step2'],
    ];
    const readBatch = async (xs: string, ys: string) => ({
      images: nhwc(await fx.tensor('data.safetensors', xs)),
      labels: tf.tensor1d(Array.from(toFloat32(await fx.raw('data.safetensors', ys))), 'int32'),
    });
    const fixtureEnsemble = async () => {
      const sds = await Promise.all(['base', 'branch_1', 'branch_2', 'branch_3'].map(stateDict));
      return fromTorchStateDicts(sds[0], sds.slice(1)).esr;
    };
    beforeAll(async () => {
      const esr = await fixtureEnsemble();
      const opt = stageOptimizer(esr, stage);
      expect(opt.learningRates()).toEqual(LRS);
      for (const [xs, ys] of batches) {
        const batch = await readBatch(xs, ys);
        const r = await trainStep(esr, opt, batch, esrStageLoss(stage, 'reference'));
        tf.dispose([batch.images, batch.labels]);
        got.push({ total: r.loss, terms: r.terms });
      }
      ours = torchState(esr);
      opt.dispose();
      esr.dispose();

      // SGD with momentum 0.9, no dampening or weight decay, as torch.optim.SGD: buf = g (first step), then
      // buf = 0.9·buf + g; p -= lr·buf.
      const ref = await fixtureEnsemble();
      const loss = esrStageLoss(stage, 'reference');
      const bufs = new Map<tf.Variable, tf.Tensor>();
      for (const [xs, ys] of batches) {
        const batch = await readBatch(xs, ys);
        const vars = ref.variableGroups().flatMap((g) => g.variables);
        const { value, grads } = tf.variableGrads(
          () => loss(ref.forward(batch.images, { training: true }), batch.labels).total,
          vars,
        );
        for (const g of ref.variableGroups()) {
          for (const v of g.variables) {
            const grad = grads[v.name];
            const prev = bufs.get(v);
            const buf = prev ? tf.tidy(() => tf.add(tf.mul(prev, 0.9), grad)) : tf.clone(grad);
            prev?.dispose();
            bufs.set(v, buf);
            v.assign(tf.tidy(() => tf.sub(v, tf.mul(buf, LRS[g.name]))));
          }
        }
        tf.dispose([value, batch.images, batch.labels, ...Object.values(grads)]);
      }
      tf.dispose([...bufs.values()]);
      byHand = torchState(ref);
      ref.dispose();
    });

    // The trainer adds nothing of its own to a step: its parameters after two steps equal the hand-written step's to
    // float32 rounding. (How close that step is to PyTorch: fer-models-esr/test/esr-cbam-float64.slow.test.ts proves
    // it is as close to a float64 computation as the fixture is, once float32 near-ties in ReLU/max-pool are replayed.)
    it('trainStep + stageOptimizer equal a hand-written SGD step on every parameter and BN buffer', () => {
      expect([...ours.keys()].sort()).toEqual([...byHand.keys()].sort());
      for (const [k, want] of byHand) {
        if (k.endsWith('num_batches_tracked')) continue;
        expectArrayClose(ours.get(k)!, want, { rtol: 1e-5, atol: 1e-6 }, k);
      }
    });

    it('losses of both steps (sgd/loss_step1, loss_step2) and their CE terms', () => {
      const want = fx.manifest.sgd.step_losses;
      for (let s = 0; s < 2; s++) {
        const tol = { rtol: 1e-5 * 10 ** s, atol: 1e-6 };
        expectArrayClose([got[s].total], [want[s].total], tol, `loss step ${s + 1}`);
        expectArrayClose(
          [1, 2, 3].map((k) => got[s].terms[`ce_branch_${k}`]),
          [1, 2, 3].map((k) => want[s][`ce_branch_${k}`]),
          tol,
          `CE step ${s + 1}`,
        );
      }
    });

    it('every branch classifier after two steps', async () => {
      for (const b of [1, 2, 3]) {
        for (const k of ['fc.weight', 'fc.bias']) {
          const t = fx.manifest.tensors.find((m: { name: string }) => m.name === `full/branch_${b}/${k}`)!;
          expectArrayClose(
            ours.get(`branch_${b}/${k}`)!,
            toFloat32(await fx.raw('after_sgd.safetensors', t.name)),
            { rtol: t.tolerance.rtol, atol: t.tolerance.atol },
            t.name,
          );
        }
      }
    });

    // Same known gap as train_esr2: float32 near-ties in ReLU / max-pool choices (margins ≤ 1.4e-6 of the compared
    // tensor) flip differently on XNNPACK than on oneDNN and move whole gradients by 1e-3..1e-2 of their max; the
    // float64-truth test in fer-models-esr shows each such choice is a near-tie and that, replaying our choices,
    // float64 agrees with us as closely as with the fixture. `failing` turns into an error if these ever meet the
    // manifest.
    it.failing('every parameter and BN buffer after two steps (full and sampled)', async () => {
      const after = fx.manifest.tensors.filter((t: { file: string }) => t.file === 'after_sgd.safetensors');
      for (const t of after) {
        const [kind, part, ...rest] = t.name.split('/');
        const mine = ours.get(`${part}/${rest.join('/')}`)!;
        const ref = toFloat32(await fx.raw('after_sgd.safetensors', t.name));
        const vals = kind === 'sample' ? Float32Array.from(ref, (_, i) => mine[i * 31]) : mine;
        expectArrayClose(vals, ref, { rtol: t.tolerance.rtol, atol: t.tolerance.atol }, `after_sgd ${t.name}`);
      }
    });
  },
);
