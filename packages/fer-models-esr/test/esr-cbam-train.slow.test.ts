import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { initBackend } from 'fer-backend';
import { toFloat32 } from 'fer-torch';
import {
  REFERENCE_DIR,
  describeIfExists,
  expectArrayClose,
  loadFixture,
  type Fixture,
  testBackend,
} from 'fer-test-utils';
import { esrKeyMap } from 'fer-models-esr/internal';
import { toTorchStateDicts, type EsrEnsemble } from 'fer-models-esr';
import { TorchSgd, labels, nhwc, referenceEnsemble, referenceLoss, tolerance, toTorchLayout } from './helpers';

const DATA = 'data.safetensors';
const AFTER = 'after_sgd.safetensors';

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

/** Variable of `part` holding PyTorch key `key`, plus the layout transform. */
function variableOf(esr: EsrEnsemble, part: string, key: string) {
  const model = esr.parts().find((p) => p.name === part)!.model;
  const entry = esrKeyMap(part === 'base' ? 'base' : 'branch', esr.config).find((e) => e.torch === key)!;
  const lv = model.weights.find((w) => w.originalName === entry.tfjs)!;
  return { variable: lv.read() as tf.Variable, transform: entry.transform };
}

describeIfExists(
  path.join(REFERENCE_DIR, 'esr_cbam'),
  'ESR + CBAM training parity with esr_cbam: gradients and two SGD steps (wasm)',
  () => {
    let fx: Fixture;
    let esr: EsrEnsemble;
    let grads1: tf.NamedTensorMap;
    let groups: { lr: number; variables: tf.Variable[] }[];
    const sgd = new TorchSgd(0.9);

    beforeAll(async () => {
      await initBackend({ backend: testBackend(), quiet: true });
      fx = loadFixture('esr_cbam');
      esr = await referenceEnsemble(fx, 3);
      const g = Object.fromEntries(esr.variableGroups().map((v) => [v.name, v.variables]));
      // esr_affectnet.py with 3 branches: base 0.01, newest branch 0.1, older branches 0.01.
      groups = [
        { lr: 0.01, variables: g.base },
        { lr: 0.1, variables: g.branch_3 },
        { lr: 0.01, variables: g.branch_1 },
        { lr: 0.01, variables: g.branch_2 },
      ];
    });
    afterAll(() => {
      tf.dispose(grads1);
      sgd.dispose();
      esr.dispose();
    });

    /** One training step on a fixture batch; returns the loss before the update. */
    async function step(xName: string, yName: string): Promise<{ loss: number; grads: tf.NamedTensorMap }> {
      const x = await nhwc(fx, DATA, xName);
      const y = await labels(fx, DATA, yName);
      const { value, grads } = tf.variableGrads(() => {
        const out = esr.forward(x, { training: true });
        return referenceLoss(out, y).total;
      }, esr.trainableVariables());
      const loss = (await value.data())[0];
      tf.dispose([x, y, value]);
      return { loss, grads };
    }

    it('step 1: loss and every stored gradient of train/loss_total', async () => {
      const { loss, grads } = await step('input/x', 'input/labels');
      grads1 = grads;
      expectArrayClose(
        [loss],
        [fx.manifest.sgd.step_losses[0].total],
        tolerance(fx, DATA, 'sgd/loss_step1'),
        'sgd/loss_step1',
      );
      const names = (await fx.names(DATA)).filter((n) => n.startsWith('grad/'));
      expect(names.length).toBe(19);
      for (const n of names) {
        const [, part, key] = n.split('/');
        const { variable, transform } = variableOf(esr, part, key);
        const g = toTorchLayout(grads[variable.name], transform);
        const ref = (await fx.tensor(DATA, n)).dataSync();
        const gd = g.dataSync();
        if (key.startsWith('conv') && key.endsWith('.bias')) {
          // A conv bias feeding a train-mode BN is cancelled by the BN: its true gradient is 0 and the stored values
          // are rounding noise (../shared/bench's restatement checks these with atol 1e-5 too).
          expectArrayClose(gd, ref, { rtol: 0, atol: 1e-5 }, n);
        } else if (part === 'base') {
          // Train mode is ill-conditioned here: ReLU and max-pool choices at near-ties (within float32 noise) flip
          // between float32 implementations, and one flip moves a base gradient by ~1e-3 of its max.
          // esr-cbam-float64.slow.test.ts proves it against float64: replaying our choices there, our gradients are
          // as close to the truth as PyTorch's. Base gradients, which pass through every branch's BNs and max-pools,
          // get atol 1 % of max|ref| (measured ≤ 0.5 %) and must point the same way.
          expectArrayClose(gd, ref, { rtol: 1e-3, atol: 1e-2 * maxAbs(ref) }, n);
          expect(cosine(gd, ref)).toBeGreaterThan(0.9999);
        } else {
          expectArrayClose(gd, ref, tolerance(fx, DATA, n, ref), n);
        }
        g.dispose();
      }
      // Every trainable variable gets a gradient.
      for (const v of esr.trainableVariables()) expect(grads[v.name]).toBeDefined();
    });

    it('step 2 after an SGD update with the reference parameter groups; parameters and BN buffers after two steps', async () => {
      sgd.step(groups, grads1);
      const { loss, grads } = await step('input/x_step2', 'input/labels_step2');
      expectArrayClose(
        [loss],
        [fx.manifest.sgd.step_losses[1].total],
        tolerance(fx, DATA, 'sgd/loss_step2'),
        'sgd/loss_step2',
      );
      sgd.step(groups, grads);
      tf.dispose(grads);
      const dicts = new Map(
        toTorchStateDicts(esr).map(({ file, stateDict }) => [
          file.startsWith('Net-Base') ? 'base' : `branch_${file.match(/_(\d+)\.pt$/)![1]}`,
          stateDict,
        ]),
      );
      const names = await fx.names(AFTER);
      let checked = 0;
      for (const n of names) {
        const [kind, part, key] = n.split('/');
        const got = toFloat32(dicts.get(part)!.get(key)!);
        const ref = (await fx.tensor(AFTER, n)).dataSync();
        // `sample/` holds the C-order flattened tensor taken every 31st element.
        const vals = kind === 'sample' ? got.filter((_, i) => i % 31 === 0) : got;
        // Parameters move by lr·(momentum buffer). The base and the branches' early layers inherit the train-mode
        // ill-conditioning described above, so single entries may deviate by a sizeable fraction of the update.
        // Checked: every entry within max(manifest atol, 25 % of the reference's largest update) and, for tensors of
        // 16+ entries, the update as a whole within 10 % (relative L2). Counters are exact; running statistics get rtol
        // 1e-3 (manifest 1e-4): their second update comes from a forward with the step-1 weights, which carry those
        // deviations (measured 1.1e-3 on one base bn3 mean).
        const buffer = /running_(mean|var)$|num_batches_tracked$/.test(key);
        const init = buffer ? null : toFloat32(await fx.raw(`weights_init/${part}.safetensors`, key));
        const initVals = init && kind === 'sample' ? init.filter((_, i) => i % 31 === 0) : init;
        let update = 0;
        let errSq = 0;
        let updSq = 0;
        for (let i = 0; i < ref.length && initVals; i++) {
          update = Math.max(update, Math.abs(ref[i] - initVals[i]));
          errSq += (vals[i] - ref[i]) ** 2;
          updSq += (ref[i] - initVals[i]) ** 2;
        }
        const tol = tolerance(fx, AFTER, n);
        const entryTol = buffer
          ? { rtol: key.endsWith('num_batches_tracked') ? 0 : 1e-3, atol: tol.atol }
          : { rtol: tol.rtol, atol: Math.max(tol.atol, 0.25 * update) };
        expectArrayClose(vals, ref, entryTol, n);
        // (Conv biases before a train-mode BN get only rounding noise as gradient: no meaningful update to compare.)
        const noiseOnly = /^conv\d\.bias$/.test(key);
        if (updSq > 0 && !noiseOnly && ref.length >= 16)
          expect([n, Math.sqrt(errSq / updSq) < 0.1 ? 'ok' : Math.sqrt(errSq / updSq)]).toEqual([n, 'ok']);
        checked++;
      }
      expect(checked).toBe(278);
    });
  },
);
