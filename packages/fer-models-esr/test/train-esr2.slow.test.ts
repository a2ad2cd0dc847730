import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { initBackend } from 'fer-backend';
import {
  REFERENCE_DIR,
  describeIfExists,
  expectArrayClose,
  loadFixture,
  nearDuplicateStateDict,
  type Fixture,
} from 'fer-test-utils';
import { createEsr, type EsrEnsemble } from 'fer-models-esr';
import { esrKeyMap, loadTorchStateDict } from 'fer-models-esr/internal';
import { TorchSgd, fixtureStateDict, labels, nhwc, referenceLoss, tolerance } from './helpers';

const DATA = 'data.safetensors';

describeIfExists(
  path.join(REFERENCE_DIR, 'train_esr2'),
  'train_esr2: three SGD steps of base + 2 CBAM branches (wasm)',
  () => {
    let fx: Fixture;
    let init: Fixture;

    beforeAll(async () => {
      await initBackend({ backend: 'wasm', quiet: true });
      fx = loadFixture('train_esr2');
      init = loadFixture('esr_cbam');
    });

    async function ensemble(variant: 'fresh' | 'near_duplicate'): Promise<EsrEnsemble> {
      const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 2 });
      const base = await fixtureStateDict(init, 'base');
      const b1 = await fixtureStateDict(init, 'branch_1');
      const b2 = await fixtureStateDict(init, 'branch_2');
      const dicts = [base, b1, variant === 'fresh' ? b2 : nearDuplicateStateDict(b1, b2)];
      esr
        .parts()
        .forEach((p, i) => loadTorchStateDict(p.model, dicts[i], esrKeyMap(i === 0 ? 'base' : 'branch', esr.config)));
      return esr;
    }

    for (const variant of ['fresh', 'near_duplicate'] as const) {
      it(`${variant}: losses and their terms at steps 1-3 (Σ CE + −det spatial + −det channel)`, async () => {
        const esr = await ensemble(variant);
        const g = Object.fromEntries(esr.variableGroups().map((v) => [v.name, v.variables]));
        // esr_affectnet.py with 2 branches: base 0.01, newest (branch_2) 0.1, branch_1 0.01, momentum 0.9.
        const groups = [
          { lr: 0.01, variables: g.base },
          { lr: 0.1, variables: g.branch_2 },
          { lr: 0.01, variables: g.branch_1 },
        ];
        const sgd = new TorchSgd(0.9);
        try {
          for (let s = 1; s <= 3; s++) {
            const x = await nhwc(fx, DATA, `input/x_step${s}`);
            const y = await labels(fx, DATA, `input/labels_step${s}`);
            let terms: number[] = [];
            const lossFn = () => {
              const r = referenceLoss(esr.forward(x, { training: true }), y);
              terms = r.terms.map((t) => t.dataSync()[0]);
              return r.total;
            };
            if (s < 3) {
              const { value, grads } = tf.variableGrads(lossFn, esr.trainableVariables());
              terms.push(value.dataSync()[0]);
              sgd.step(groups, grads);
              tf.dispose([value, grads]);
            } else {
              const total = tf.tidy(lossFn);
              terms.push(total.dataSync()[0]);
              total.dispose();
            }
            const names = [
              `ce_branch_1_step${s}`,
              `ce_branch_2_step${s}`,
              `div_sp_det_step${s}`,
              `div_ch_det_step${s}`,
              `loss_step${s}`,
            ];
            names.forEach((n, i) => {
              const want =
                fx.manifest.variants[variant].steps[s - 1][
                  ['ce_branch_1', 'ce_branch_2', 'div_sp_det', 'div_ch_det', 'total'][i]
                ];
              expectArrayClose([terms[i]], [want], tolerance(fx, DATA, `${variant}/${n}`), `${variant}/${n}`);
            });
            tf.dispose([x, y]);
          }
        } finally {
          sgd.dispose();
          esr.dispose();
        }
      });
    }
  },
);
