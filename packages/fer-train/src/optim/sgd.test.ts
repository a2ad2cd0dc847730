import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { Sgd } from './sgd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Scalar restatement of torch.optim.SGD's update (sgd.py, _single_tensor_sgd), for hand comparison. */
function torchSgd(
  w: number[],
  grads: number[][],
  o: { lr: number; momentum: number; wd: number; nesterov?: boolean; dampening?: number },
): number[] {
  const buf: (number | undefined)[] = w.map(() => undefined);
  const out = [...w];
  for (const g of grads) {
    for (let i = 0; i < out.length; i++) {
      let d = g[i] + o.wd * out[i];
      if (o.momentum !== 0) {
        buf[i] = buf[i] === undefined ? d : o.momentum * buf[i]! + (1 - (o.dampening ?? 0)) * d;
        d = o.nesterov ? d + o.momentum * buf[i]! : buf[i]!;
      }
      out[i] -= o.lr * d;
    }
  }
  return out;
}

describe('Sgd (PyTorch semantics)', () => {
  it('matches the hand-computed momentum + weight-decay trajectory over three steps', async () => {
    const v = tf.variable(tf.tensor1d([1, -2, 0.5]), true, 'sgd_test_a');
    const opt = new Sgd([{ name: 'g', variables: [v], lr: 0.1, momentum: 0.9, weightDecay: 1e-2 }]);
    const grads = [
      [0.5, -1, 2],
      [0.1, 0.2, -0.3],
      [-1, 0, 1],
    ];
    for (const g of grads) {
      const t = tf.tensor1d(g);
      opt.applyGradients({ [v.name]: t });
      t.dispose();
    }
    // first step: buffer = d (no (1-τ) factor, no 0.9·0): w1 = w0 − lr·(g + wd·w0)
    expectArrayClose(await v.data(), torchSgd([1, -2, 0.5], grads, { lr: 0.1, momentum: 0.9, wd: 1e-2 }), {
      rtol: 1e-6,
      atol: 1e-7,
    });
    expect(opt.stepCount).toBe(3);
    opt.dispose();
    v.dispose();
  });

  it('keeps per-group learning rates and supports nesterov and dampening', async () => {
    const a = tf.variable(tf.tensor1d([1, 2]), true, 'sgd_test_b');
    const b = tf.variable(tf.tensor1d([3]), true, 'sgd_test_c');
    const opt = new Sgd([
      { name: 'base', variables: [a], lr: 0.01, momentum: 0.9 },
      { name: 'branch_1', variables: [b], lr: 0.1, momentum: 0.5, nesterov: true, dampening: 0 },
    ]);
    const ga = [
      [1, 1],
      [2, -1],
    ];
    const gb = [[0.5], [0.25]];
    for (let s = 0; s < 2; s++) {
      const [ta, tb] = [tf.tensor1d(ga[s]), tf.tensor1d(gb[s])];
      opt.applyGradients({ [a.name]: ta, [b.name]: tb });
      tf.dispose([ta, tb]);
    }
    expectArrayClose(await a.data(), torchSgd([1, 2], ga, { lr: 0.01, momentum: 0.9, wd: 0 }), { rtol: 1e-6 });
    expectArrayClose(await b.data(), torchSgd([3], gb, { lr: 0.1, momentum: 0.5, wd: 0, nesterov: true }), {
      rtol: 1e-6,
    });
    opt.setLearningRates({ base: 0.5 });
    expect(opt.learningRates()).toEqual({ base: 0.5, branch_1: 0.1 });
    opt.dispose();
    tf.dispose([a, b]);
  });

  it('skips variables that never had a gradient, then steps them with zero gradients (zero_grad semantics)', async () => {
    const a = tf.variable(tf.tensor1d([1]), true, 'sgd_test_d');
    const b = tf.variable(tf.tensor1d([1]), true, 'sgd_test_e');
    const opt = new Sgd([{ name: 'g', variables: [a, b], lr: 1, momentum: 0.5 }]);
    const g = tf.tensor1d([1]);
    opt.applyGradients({ [a.name]: g }); // b: no gradient yet -> untouched
    expect((await b.data())[0]).toBe(1);
    expect((await a.data())[0]).toBe(0); // 1 - 1·1
    opt.applyGradients({}); // a keeps moving on momentum: buf = 0.5
    expect((await a.data())[0]).toBeCloseTo(-0.5, 7);
    expect((await b.data())[0]).toBe(1);
    g.dispose();
    opt.dispose();
    tf.dispose([a, b]);
  });

  it('round-trips its state so a restored optimizer continues identically', async () => {
    const mk = (name: string) => tf.variable(tf.tensor1d([0.3, -0.7]), true, name);
    const [a, b] = [mk('sgd_test_f'), mk('sgd_test_g')];
    const o1 = new Sgd([{ name: 'g', variables: [a], lr: 0.1, momentum: 0.9, weightDecay: 1e-4 }]);
    const o2 = new Sgd([{ name: 'g', variables: [b], lr: 0.7, momentum: 0.1 }]);
    const step = (o: Sgd, v: tf.Variable, x: number[]) => {
      const t = tf.tensor1d(x);
      o.applyGradients({ [v.name]: t });
      t.dispose();
    };
    step(o1, a, [1, 2]);
    step(o2, b, [1, 2]);
    const state = await o1.getState();
    o2.setState(state);
    b.assign(a);
    step(o1, a, [-1, 0.5]);
    step(o2, b, [-1, 0.5]);
    expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
    expect(() => new Sgd([{ name: 'x', variables: [a, b], lr: 1 }]).setState(state)).toThrow(/does not fit/);
    o1.dispose();
    o2.dispose();
    tf.dispose([a, b]);
  });

  it('rejects a variable in two groups and leaks no tensors per step', async () => {
    const a = tf.variable(tf.tensor1d([1]), true, 'sgd_test_h');
    expect(
      () =>
        new Sgd([
          { name: 'x', variables: [a], lr: 1 },
          { name: 'y', variables: [a], lr: 1 },
        ]),
    ).toThrow(/more than one parameter group/);
    const opt = new Sgd([{ name: 'x', variables: [a], lr: 1, momentum: 0.9, weightDecay: 0.1 }]);
    const g = tf.tensor1d([1]);
    opt.applyGradients({ [a.name]: g }); // creates the buffer
    await expectNoLeak(() => opt.applyGradients({ [a.name]: g }), { returned: 0 });
    g.dispose();
    opt.dispose();
    a.dispose();
  });
});
