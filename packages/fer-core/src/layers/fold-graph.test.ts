import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { FER_ERROR_CODES } from '../errors';
import { FoldedGraph } from './fold-graph';
import { TorchBatchNorm } from './torch-batch-norm';
import { Cbam } from './cbam';
import { maxAbs, values } from '../../test/fold-helpers';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

type Sym = tfl.SymbolicTensor;

/**
 * A small functional model with every pattern the fold must tell apart:
 * a: conv → BN → ReLU (fold + ReLU); b: conv → BN read by an add and a ReLU (fold, linear: two readers);
 * c: conv → BN → ReLU returned as a model output (fold + ReLU); d: conv read twice (no fold);
 * e: conv → CBAM (no batch norm after it: no fold); f: conv → BN returned (fold, linear); a ReLU6 after a BN (linear);
 * h: conv → BN built with `relu: true` (fold + ReLU, no ReLU layer).
 */
function graph(): { model: tfl.LayersModel; bns: string[] } {
  const conv = (x: Sym, name: string, k = 3, stride = 1, bias = true) =>
    tfl.layers
      .conv2d({ name, filters: 8, kernelSize: k, strides: stride, padding: 'same', useBias: bias })
      .apply(x) as Sym;
  const bn = (x: Sym, name: string) => new TorchBatchNorm({ name }).apply(x) as Sym;
  const relu = (x: Sym, name: string, maxValue?: number) => tfl.layers.reLU({ name, maxValue }).apply(x) as Sym;
  const input = tfl.input({ shape: [9, 9, 4] });
  const a = relu(bn(conv(input, 'conv_a'), 'bn_a'), 'relu_a');
  const bOut = bn(conv(a, 'conv_b', 3, 2, false), 'bn_b');
  const b = tfl.layers.add({ name: 'add_b' }).apply([relu(bOut, 'relu_b'), bOut]) as Sym;
  const c = relu(bn(conv(b, 'conv_c', 1), 'bn_c'), 'relu_c');
  const dConv = conv(c, 'conv_d');
  const d = tfl.layers.add({ name: 'add_d' }).apply([dConv, relu(dConv, 'relu_d')]) as Sym;
  const e = (new Cbam({ name: 'cbam_e', reduction: 4 }).apply(conv(d, 'conv_e')) as Sym[])[0];
  const f = bn(conv(e, 'conv_f'), 'bn_f');
  const g = relu(bn(conv(f, 'conv_g'), 'bn_g'), 'relu6_g', 6);
  const h = new TorchBatchNorm({ name: 'bn_h', relu: true }).apply(conv(g, 'conv_h')) as Sym;
  const pooled = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as Sym;
  const model = tfl.model({ inputs: input, outputs: [pooled, c, f] });
  return { model, bns: ['bn_a', 'bn_b', 'bn_c', 'bn_f', 'bn_g', 'bn_h'] };
}

function randomize(model: tfl.LayersModel, seed: number): void {
  let s = seed;
  for (const w of model.weights) {
    const shape = w.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    const name = w.originalName;
    const [lo, hi] = /running_var$/.test(name)
      ? [0.05, 2]
      : /gamma$/.test(name)
        ? [-1.5, 1.5]
        : /running_mean$|beta$/.test(name)
          ? [-0.5, 0.5]
          : [-0.3, 0.3];
    const t = tf.tensor(values(n, s++, lo, hi), shape);
    w.write(t);
    t.dispose();
  }
}

describe('FoldedGraph (a functional model with conv → BN (→ ReLU) folded)', () => {
  it('folds exactly the conv → BN pairs whose conv and BN have one reader, fusing a plain ReLU only', () => {
    const { model } = graph();
    const g = new FoldedGraph(model);
    expect(g.folded).toEqual([
      { conv: 'conv_a', bn: 'bn_a', activation: 'relu' },
      { conv: 'conv_b', bn: 'bn_b', activation: 'linear' },
      { conv: 'conv_c', bn: 'bn_c', activation: 'relu' },
      { conv: 'conv_f', bn: 'bn_f', activation: 'linear' },
      { conv: 'conv_g', bn: 'bn_g', activation: 'linear' },
      { conv: 'conv_h', bn: 'bn_h', activation: 'relu' },
    ]);
    g.dispose();
    model.dispose();
  });

  // Tolerance as fold.test.ts (a few float32 roundings moved per folded layer): 1e-5 of max|y|.
  it("gives the model's eval-mode outputs on random weights and statistics; follows new weights; no leaks", async () => {
    const { model } = graph();
    randomize(model, 1);
    const x = tf.tensor4d(values(2 * 9 * 9 * 4, 77, -1, 1), [2, 9, 9, 4]);
    const expectOutputs = (g: FoldedGraph, label: string) => {
      const got = g.apply(x);
      const want = model.apply(x, { training: false }) as tf.Tensor[];
      expect(got.map((t) => t.shape)).toEqual(want.map((t) => t.shape));
      got.forEach((t, i) => {
        const w = want[i].dataSync();
        expect(maxAbs(w)).toBeGreaterThan(1e-3); // not vacuous
        expectArrayClose(t.dataSync(), w, { rtol: 1e-5, atol: 1e-5 * maxAbs(w) }, `${label} output ${i}`);
      });
      tf.dispose([...got, ...want]);
    };
    await expectNoLeak(() => {
      const g = new FoldedGraph(model);
      expectOutputs(g, 'first weights');
      randomize(model, 2);
      expectOutputs(g, 'after new weights');
      g.dispose();
    });
    x.dispose();
    model.dispose();
  });

  it('refuses a batch norm without usable statistics, naming it, and frees what it folded', () => {
    const { model } = graph();
    const bn = model.getLayer('bn_f');
    tf.tidy(() => {
      const w = bn.getWeights().map((t) => tf.clone(t));
      w[3] = tf.fill(w[3].shape, -1);
      bn.setWeights(w);
    });
    const n = tf.memory().numTensors;
    let err: unknown;
    try {
      new FoldedGraph(model, ' in the test model').dispose();
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: FER_ERROR_CODES.input });
    expect((err as Error).message).toMatch(
      /^Cannot fold batch norm 'bn_f' in the test model: expected running_var to be finite and non-negative, but channel 0 holds -1\./,
    );
    expect(tf.memory().numTensors).toBe(n);
    model.dispose();
  });
});
