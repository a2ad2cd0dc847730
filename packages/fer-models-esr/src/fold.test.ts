import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from 'fer-backend';
import { FER_ERROR_CODES, type ForwardResult } from 'fer-core';
import { expectArrayClose, expectNoLeak, testBackend } from 'fer-test-utils';
import { createEsr, type EsrEnsemble } from './index';
import { randomizeBatchNorms, testImages } from '../test/fold-helpers';

const maxAbs = (v: ArrayLike<number>) => Array.from(v).reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * Folded against unfolded eval-mode outputs, every output tensor. Tolerance: the fold moves γ/√(σ²+ε) from after the
 * conv's sum to its weights: a few float32 roundings per layer (~6e-8 relative each), through ESR's eight conv
 * blocks, CBAM gates and the classifier. Measured on cpu, wasm and native: ≤ 2e-6 of max|y| (3 branches, 96 px).
 * The bound is 2e-5 of max|y| (+ 1e-5 relative). Deliberately wrong folds, measured the same way on wasm: without ε
 * 3e-5 … 9e-4 of max|y|, without the running mean 3e-2 … 3e-1.
 */
function expectSameOutputs(got: ForwardResult, want: ForwardResult, label: string): void {
  expect(got.logits.length).toBe(want.logits.length);
  expect(Object.keys(got.heads).sort()).toEqual(Object.keys(want.heads).sort());
  const pairs: [string, tf.Tensor, tf.Tensor][] = [
    ...got.logits.map((l, i) => [`logits ${i}`, l, want.logits[i]] as [string, tf.Tensor, tf.Tensor]),
    ...Object.keys(want.heads).map((k) => [k, got.heads[k], want.heads[k]] as [string, tf.Tensor, tf.Tensor]),
  ];
  for (const [name, g, w] of pairs) {
    expect([name, g.shape]).toEqual([name, w.shape]);
    const wv = w.dataSync();
    expectArrayClose(g.dataSync(), wv, { rtol: 1e-5, atol: 2e-5 * maxAbs(wv) }, `${label} ${name}`);
  }
}

const disposeOut = (o: ForwardResult) => tf.dispose([...o.logits, ...Object.values(o.heads)]);

function compare(esr: EsrEnsemble, x: tf.Tensor4D, label: string): void {
  const want = esr.forward(x, { training: false });
  const folded = esr.fold();
  const got = folded.forward(x);
  expectSameOutputs(got, want, label);
  // Not vacuous: the logits vary across images and classes.
  const spread = tf.tidy(() => tf.moments(want.logits[0]).variance.dataSync()[0]);
  expect(spread).toBeGreaterThan(1e-6);
  disposeOut(want);
  disposeOut(got);
  folded.dispose();
}

describe.each(['cpu', testBackend()])('EsrEnsemble.fold() on %s', (backend) => {
  beforeAll(async () => {
    if (backend === 'cpu') await tf.setBackend('cpu');
    else await initBackend({ backend: backend as 'wasm' | 'native', quiet: true });
  });

  it('desr9 (CBAM, 2 branches): same logits and attention maps as the eval-mode forward, non-trivial statistics', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 11 });
    randomizeBatchNorms(esr, 5);
    const x = testImages(2, 54, 7);
    compare(esr, x, 'desr9');
    x.dispose();
    esr.dispose();
  });

  it('esr9 (original, valence/arousal head) and RAF-DB normalisation: same outputs', () => {
    for (const [name, seed] of [
      ['esr9-affectnet', 12],
      ['desr9-rafdb', 13],
    ] as const) {
      const esr = createEsr(name, { initialBranches: 2, seed });
      randomizeBatchNorms(esr, seed);
      const x = tf.tidy(() => tf.sub(testImages(2, 60, seed), 0.5) as tf.Tensor4D);
      compare(esr, x, name);
      x.dispose();
      esr.dispose();
    }
  });
});

describe(`EsrEnsemble.fold(): ownership, staleness and refusals (${testBackend()})`, () => {
  beforeAll(async () => {
    await initBackend({ backend: testBackend(), quiet: true });
  });

  it('fold + forward + predict + dispose leaves no tensor behind and never writes the weights', async () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 21 });
    randomizeBatchNorms(esr, 21);
    const x = testImages(2, 54, 3);
    const before = esr.snapshot();
    const want = esr.predict(x);
    await expectNoLeak(() => {
      const folded = esr.fold();
      disposeOut(folded.forward(x, { training: false }));
      const labels = folded.predict(x);
      expect(Array.from(labels.dataSync())).toEqual(Array.from(want.dataSync()));
      labels.dispose();
      folded.dispose();
    });
    const after = esr.snapshot();
    after.parts.forEach((part, p) =>
      part.forEach((t, i) =>
        expect(Buffer.from(t.dataSync().buffer).equals(Buffer.from(before.parts[p][i].dataSync().buffer))).toBe(true),
      ),
    );
    tf.dispose([x, want, before.parts, after.parts]);
    esr.dispose();
  });

  it('follows the ensemble: new weights (restore), a new branch, a dropped branch (resetClassifier)', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 1, seed: 31 });
    const x = testImages(2, 54, 4);
    const folded = esr.fold();
    disposeOut(folded.forward(x)); // folded with the fresh statistics
    randomizeBatchNorms(esr, 31); // reassigns the variables: the next call must fold again
    esr.addBranch();
    const check = (label: string) => {
      const got = folded.forward(x);
      const want = esr.forward(x, { training: false });
      expectSameOutputs(got, want, label);
      disposeOut(got);
      disposeOut(want);
    };
    check('after new statistics and addBranch');
    const n = tf.memory().numTensors;
    esr.resetClassifier(esr.labels.slice(0, 7) as unknown as typeof esr.labels, { seed: 1 }); // replaces the branches
    check('after resetClassifier');
    // The replaced branches' folds were freed and the new ones folded: as many tensors as before.
    expect(tf.memory().numTensors).toBe(n);
    folded.dispose();
    x.dispose();
    esr.dispose();
  });

  it('refuses training mode and unusable statistics with one FER_INPUT line', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 1, seed: 41 });
    const x = testImages(2, 54, 5);
    const oneLine = (fn: () => unknown, pattern: RegExp) => {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: FER_ERROR_CODES.input });
      expect((err as Error).message).toMatch(pattern);
      expect((err as Error).message).not.toContain('\n');
    };
    const folded = esr.fold();
    const n = tf.memory().numTensors;
    oneLine(() => folded.forward(x, { training: true }), /Expected training: false .* but got training: true/);
    oneLine(() => folded.forward(x, { branchesTraining: true }), /but got branchesTraining: true/);
    expect(tf.memory().numTensors).toBe(n);
    folded.dispose();
    // A NaN running variance in branch 1's third block (what a corrupted or partial checkpoint leaves).
    const bn = esr.branch(1).getLayer('bn3');
    const w = bn.getWeights();
    tf.tidy(() => bn.setWeights([w[0], w[1], w[2], tf.fill(w[3].shape, NaN), w[4]].map((t) => tf.clone(t))));
    const m = tf.memory().numTensors;
    oneLine(() => esr.fold(), /batch norm 'bn3' in ESR part 'branch_1'.*running_var.*channel 0 holds NaN/);
    expect(tf.memory().numTensors).toBe(m); // the parts folded before the failure were freed
    x.dispose();
    esr.dispose();
  });
});
