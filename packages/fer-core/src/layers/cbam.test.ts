import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { Cbam, applyCbam } from './cbam';
import { Rng } from '../random';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const sig = (v: number) => 1 / (1 + Math.exp(-v));

/**
 * Loop-by-loop restatement of the reference CBAM (docs/method.md#cbam) in NHWC, eval-mode BN; independent of tfjs ops.
 */
function naiveCbam(x: Float32Array, [n, h, w, c]: number[], p: Record<string, Float32Array>, hid: number, k: number) {
  const at = (b: number, i: number, j: number, ch: number) => ((b * h + i) * w + j) * c + ch;
  const mlp = (v: number[]) => {
    const hidden = Array.from({ length: hid }, (_, o) =>
      Math.max(
        0,
        v.reduce((s, vi, i) => s + vi * p.k1[i * hid + o], p.b1[o]),
      ),
    );
    return Array.from({ length: c }, (_, o) => hidden.reduce((s, hv, i) => s + hv * p.k2[i * c + o], p.b2[o]));
  };
  const chAtt: number[][] = [];
  const xc = new Float64Array(x.length);
  for (let b = 0; b < n; b++) {
    const avg = new Array(c).fill(0);
    const max = new Array(c).fill(-Infinity);
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++)
        for (let ch = 0; ch < c; ch++) {
          avg[ch] += x[at(b, i, j, ch)] / (h * w);
          max[ch] = Math.max(max[ch], x[at(b, i, j, ch)]);
        }
    const ma = mlp(avg);
    const mm = mlp(max);
    const a = ma.map((v, i) => sig(v + mm[i]));
    chAtt.push(a);
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) for (let ch = 0; ch < c; ch++) xc[at(b, i, j, ch)] = x[at(b, i, j, ch)] * a[ch];
  }
  const spAtt = new Float64Array(n * h * w);
  const out = new Float64Array(x.length);
  const r = (k - 1) / 2;
  const [gamma, beta, rm, rv] = [p.gamma[0], p.beta[0], p.rm[0], p.rv[0]];
  for (let b = 0; b < n; b++) {
    const pooled = (i: number, j: number, q: number) => {
      if (i < 0 || j < 0 || i >= h || j >= w) return 0;
      let mx = -Infinity;
      let mean = 0;
      for (let ch = 0; ch < c; ch++) {
        mx = Math.max(mx, xc[at(b, i, j, ch)]);
        mean += xc[at(b, i, j, ch)] / c;
      }
      return q === 0 ? mx : mean;
    };
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        let s = 0;
        for (let di = 0; di < k; di++)
          for (let dj = 0; dj < k; dj++)
            for (let q = 0; q < 2; q++) {
              s += pooled(i + di - r, j + dj - r, q) * p.ks[(di * k + dj) * 2 + q];
            }
        const a = sig(((s - rm) / Math.sqrt(rv + 1e-5)) * gamma + beta);
        spAtt[(b * h + i) * w + j] = a;
        for (let ch = 0; ch < c; ch++) out[at(b, i, j, ch)] = xc[at(b, i, j, ch)] * a;
      }
  }
  return { out, chAtt: chAtt.flat(), spAtt };
}

describe('Cbam', () => {
  it('matches a loop-by-loop restatement of the reference (eval mode, random weights)', () => {
    const rng = new Rng(7);
    const shape = [2, 5, 4, 32];
    const [hid, k] = [2, 3];
    const rand = (len: number, s = 1) => Float32Array.from({ length: len }, () => (rng.next() * 2 - 1) * s);
    const p = {
      k1: rand(32 * hid),
      b1: rand(hid, 0.1),
      k2: rand(hid * 32),
      b2: rand(32, 0.1),
      ks: rand(k * k * 2),
      gamma: Float32Array.of(1.3),
      beta: Float32Array.of(-0.2),
      rm: Float32Array.of(0.1),
      rv: Float32Array.of(2.5),
      nbt: Float32Array.of(0),
    };
    const xv = rand(2 * 5 * 4 * 32);
    const layer = new Cbam({ name: 'cbam_naive', reduction: 16, spatialKernelSize: k });
    const x = tf.tensor4d(xv, shape as [number, number, number, number]);
    tf.dispose(layer.apply(x) as tf.Tensor[]);
    layer.setWeights([
      tf.tensor2d(p.k1, [32, hid]),
      tf.tensor1d(p.b1),
      tf.tensor2d(p.k2, [hid, 32]),
      tf.tensor1d(p.b2),
      tf.tensor4d(p.ks, [k, k, 2, 1]),
      tf.tensor1d(p.gamma),
      tf.tensor1d(p.beta),
      tf.tensor1d(p.rm),
      tf.tensor1d(p.rv),
      tf.scalar(0),
    ]);
    const got = applyCbam(layer, x, false);
    const want = naiveCbam(xv, shape, p, hid, k);
    expect(got.output.shape).toEqual(shape);
    expect(got.channelAttention.shape).toEqual([2, 32]);
    expect(got.spatialAttention.shape).toEqual([2, 5, 4, 1]);
    expectArrayClose(got.channelAttention.dataSync(), want.chAtt, { rtol: 1e-5, atol: 1e-6 }, 'channel attention');
    expectArrayClose(got.spatialAttention.dataSync(), want.spAtt, { rtol: 1e-5, atol: 1e-6 }, 'spatial attention');
    expectArrayClose(got.output.dataSync(), want.out, { rtol: 1e-5, atol: 1e-6 }, 'output');
    tf.dispose([x, got.output, got.channelAttention, got.spatialAttention]);
    layer.dispose();
  });

  it('has the reference parameter counts (C = 64, 128, 256, 512 → 680, 2284, 8564, 33412)', () => {
    for (const [c, want] of [
      [64, 680],
      [128, 2284],
      [256, 8564],
      [512, 33412],
    ]) {
      const layer = new Cbam({ name: `cbam_count_${c}` });
      layer.apply(tfl.input({ shape: [6, 6, c] }));
      // PyTorch counts parameters only (not running stats or the counter).
      expect(layer.trainableWeights.reduce((s, w) => s + w.shape.reduce((a, b) => a! * b!, 1)!, 0)).toBe(want);
    }
  });

  it('train mode moves the spatial BN running stats with momentum 0.01 and the unbiased variance', () => {
    const layer = new Cbam({ name: 'cbam_train', seed: 3, spatialKernelSize: 3 });
    const shape: [number, number, number, number] = [2, 3, 3, 16];
    const x = tf.randomUniform(shape, 0, 1, 'float32', 5) as tf.Tensor4D;
    tf.dispose(layer.apply(x) as tf.Tensor[]);
    // Spatial kernel = centre tap on the channel-mean map, so the conv output is mean_C(x · a_ch).
    const w = layer.getWeights();
    const ks = new Float32Array(3 * 3 * 2);
    ks[(1 * 3 + 1) * 2 + 1] = 1;
    w[4] = tf.tensor4d(ks, [3, 3, 2, 1]);
    layer.setWeights(w);
    const out = applyCbam(layer, x, true);
    const xv = x.dataSync();
    const ch = out.channelAttention.dataSync();
    const v: number[] = [];
    for (let p = 0; p < 2 * 9; p++) {
      let s = 0;
      for (let c = 0; c < 16; c++) s += xv[p * 16 + c] * ch[Math.floor(p / 9) * 16 + c];
      v.push(s / 16);
    }
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const unbiased = v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1);
    const after = layer.getWeights();
    expectArrayClose(after[7].dataSync(), [0.01 * mean], { rtol: 1e-5, atol: 1e-8 }, 'running_mean');
    expectArrayClose(after[8].dataSync(), [0.99 + 0.01 * unbiased], { rtol: 1e-6, atol: 1e-8 }, 'running_var');
    expect(after[9].dataSync()[0]).toBe(1);
    tf.dispose([x, out.output, out.channelAttention, out.spatialAttention, w[4]]);
    layer.dispose();
  });

  it("routes the channel gate's max gradient to one position per channel, the first maximum (as max_pool2d)", () => {
    // Channel 0 ties at its maximum 0.8 at (1, 2) and (2, 0) (row-major: (1, 2) first); channel 1 is constant 0.5
    // (every position ties, (0, 0) first). The reference's F.max_pool2d sends d/dmax to the first maximum only, so
    // the gradient must equal the one for the same input with the ties broken in favour of that position.
    const [h, w, c] = [3, 4, 2];
    const tied = new Float32Array(h * w * c);
    for (let p = 0; p < h * w; p++) {
      tied[p * c] = 0.1 + 0.05 * p;
      tied[p * c + 1] = 0.5;
    }
    tied[(1 * w + 2) * c] = 0.8;
    tied[(2 * w + 0) * c] = 0.8;
    const broken = tied.slice();
    broken[(2 * w + 0) * c] = 0.8 - 1e-3;
    for (let p = 1; p < h * w; p++) broken[p * c + 1] = 0.5 - 1e-3;
    const layer = new Cbam({ name: 'cbam_ties', seed: 4, reduction: 1 });
    tf.dispose(layer.apply(tf.zeros([1, h, w, c])) as tf.Tensor[]);
    // MLP = identity (no bias): both pools reach the sigmoid, so d/dmax is not zero.
    const wts = layer.getWeights();
    const eye = tf.eye(c);
    const zero = tf.zeros([c]);
    layer.setWeights([eye, zero, eye, zero, ...wts.slice(4)]);
    tf.dispose([eye, zero]);
    const r = tf.tensor2d([[0.7, -1.3]]);
    // Only the channel attention (a function of the two pools) enters the loss.
    const grad = (v: Float32Array) =>
      tf.tidy(() =>
        tf
          .grad((t: tf.Tensor) => tf.sum(tf.mul(applyCbam(layer, t as tf.Tensor4D, true).channelAttention, r)))(
            tf.tensor4d(v, [1, h, w, c]),
          )
          .dataSync(),
      );
    const g = grad(tied);
    const want = grad(broken);
    expectArrayClose(g, want, { rtol: 1e-2, atol: 1e-5 }, 'gradient with ties');
    // The max's share is not negligible here, so a gradient to every tie would fail the check above.
    const first1 = (1 * w + 2) * c;
    const other1 = (2 * w + 0) * c;
    expect(Math.abs(g[first1] - g[other1])).toBeGreaterThan(100 * Math.abs(g[other1] - g[(0 * w + 0) * c]) + 1e-4);
    expect(Math.abs(g[1] - g[(1 * w + 1) * c + 1])).toBeGreaterThan(1e-4);
    r.dispose();
    layer.dispose();
  });

  it('getConfig round trip and model serialization', () => {
    const layer = new Cbam({ name: 'cbam_cfg', reduction: 8, spatialKernelSize: 5 });
    const copy = Cbam.fromConfig(Cbam, layer.getConfig()) as Cbam;
    expect(copy.reduction).toBe(8);
    expect(copy.spatialKernelSize).toBe(5);
    const inp = tfl.input({ shape: [6, 6, 32] });
    const outs = layer.apply(inp) as tfl.SymbolicTensor[];
    expect(outs.map((o) => o.shape)).toEqual([
      [null, 6, 6, 32],
      [null, 32],
      [null, 6, 6, 1],
    ]);
    const model = tfl.model({ inputs: inp, outputs: outs });
    const json = model.toJSON(null, false) as { config: { layers: { class_name: string }[] } };
    expect(json.config.layers[1].class_name).toBe('Cbam');
    model.dispose();
  });

  it('rejects a bad reduction', () => {
    expect(() => new Cbam({ reduction: 0 })).toThrow(/reduction/);
  });

  it('does not leak (eval, train, gradient)', async () => {
    const layer = new Cbam({ name: 'cbam_leak', seed: 1 });
    const x = tf.randomUniform([2, 4, 4, 16]) as tf.Tensor4D;
    tf.dispose(layer.apply(x) as tf.Tensor[]);
    await expectNoLeak(() => layer.apply(x, { training: false }) as tf.Tensor[], { returned: 3 });
    await expectNoLeak(() => layer.apply(x, { training: true }) as tf.Tensor[], { returned: 3 });
    await expectNoLeak(
      () => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum((layer.apply(t, { training: true }) as tf.Tensor[])[0]))(x)),
      { returned: 1 },
    );
    x.dispose();
    layer.dispose();
  });
});
