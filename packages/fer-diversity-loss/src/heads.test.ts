import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import {
  disagreementRate,
  diversityMetric,
  esrChannelHeads,
  esrSpatialHeads,
  headsFrom,
  manetChannelHeads,
  manetGlobalHeads,
  manetSpatialHeads,
  meanPairwiseDistance,
  referenceFerPlusChannelHeads,
  similarityMatrix,
} from './index';

function read(f: () => tf.Tensor): number[] {
  const t = f();
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
}

/** Gradient of Σ w·f(x) for a fixed weight tensor (uses only the helper's own custom gradient). */
function gradOf(f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, outShape: number[]): number[] {
  return tf.tidy(() => {
    const w = tf.reshape(tf.range(1, outShape.reduce((a, b) => a * b, 1) + 1), outShape);
    return Array.from(tf.grad(f)(x, w).dataSync());
  });
}

describe.each(['cpu', 'wasm'])('head helpers and metric (%s)', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
  });

  it('headsFrom stacks per-branch tensors and routes gradients back to each branch', () => {
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const b = tf.tensor2d([
      [5, 6],
      [7, 8],
    ]);
    const h = headsFrom([a, b]);
    expect(h.shape).toEqual([2, 2, 2]);
    expectArrayClose(h.dataSync(), [1, 2, 3, 4, 5, 6, 7, 8], { rtol: 0, atol: 0 });
    const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => headsFrom([x, y]))(
      [a, b],
      tf.reshape(tf.range(1, 9), [2, 2, 2]),
    );
    expectArrayClose(ga.dataSync(), [1, 2, 3, 4], { rtol: 0, atol: 0 });
    expectArrayClose(gb.dataSync(), [5, 6, 7, 8], { rtol: 0, atol: 0 });
    expect(() => headsFrom([a, tf.zeros([2, 3])])).toThrow(/shape of head 0, \[2, 2\], but head 1 has \[2, 3\]/);
    expect(() => headsFrom([])).toThrow(/non-empty array/);
    tf.dispose([a, b, h, ga, gb]);
  });

  it('ESR helpers accept [n, B, h, w] (or NHWC [..., 1]) and [n, B, C]', () => {
    const sp = tf.randomUniform([3, 2, 6, 6, 1], 0, 1, 'float32', 1);
    const s = esrSpatialHeads(sp);
    expect(s.shape).toEqual([3, 2, 6, 6]);
    expectArrayClose(s.dataSync(), sp.dataSync(), { rtol: 0, atol: 0 });
    expect(gradOf((x) => esrSpatialHeads(x), sp, [3, 2, 6, 6])).toEqual(Array.from({ length: 216 }, (_, i) => i + 1));
    const ch = tf.zeros([3, 2, 512]);
    expect(esrChannelHeads(ch).shape).toEqual([3, 2, 512]);
    expect(() => esrChannelHeads(tf.zeros([3, 512]))).toThrow(/\[n, B, C\], but got \[3, 512\]/);
    expect(() => esrSpatialHeads(tf.zeros([3, 2, 6]))).toThrow(/\[n, B, h, w\]/);
    tf.dispose([sp, s, ch]);
  });

  it('MA-Net helpers: spatial = mean over channels, channel = mean over positions (NHWC)', () => {
    // [n 2, B 1, h 2, w 2, C 3] with value = 100·n + 10·(2h + w) + c.
    const vals: number[] = [];
    for (let n = 0; n < 2; n++) for (let p = 0; p < 4; p++) for (let c = 0; c < 3; c++) vals.push(100 * n + 10 * p + c);
    const x = tf.tensor(vals, [2, 1, 2, 2, 3]);
    const sp = manetSpatialHeads(x);
    expect(sp.shape).toEqual([2, 1, 2, 2]);
    expectArrayClose(sp.dataSync(), [1, 11, 21, 31, 101, 111, 121, 131], { rtol: 1e-6 });
    const ch = manetChannelHeads(x);
    expect(ch.shape).toEqual([2, 1, 3]);
    expectArrayClose(ch.dataSync(), [15, 16, 17, 115, 116, 117], { rtol: 1e-6 });
    // Gradients spread evenly: 1/C per channel, 1/(h·w) per position.
    expectArrayClose(
      gradOf((t) => manetSpatialHeads(t), x, [2, 1, 2, 2]),
      vals.map((_, i) => (Math.floor(i / 3) + 1) / 3),
      { rtol: 1e-6 },
    );
    expectArrayClose(
      gradOf((t) => manetChannelHeads(t), x, [2, 1, 3]),
      vals.map((_, i) => (Math.floor(i / 12) * 3 + (i % 3) + 1) / 4),
      { rtol: 1e-6 },
    );
    expect(manetGlobalHeads(tf.zeros([2, 1, 512])).shape).toEqual([2, 1, 512]);
    expect(() => manetSpatialHeads(tf.zeros([2, 1, 512, 7]))).toThrow(/\[n, B, h, w, C\] \(NHWC\).*transpose/);
    tf.dispose([x, sp, ch]);
  });

  it('referenceFerPlusChannelHeads reproduces the FER+ "channel on spatial maps" term (per-column distance, mean over B·w)', () => {
    const n = 3;
    const b = 2;
    const h = 3;
    const w = 4;
    const x = tf.tidy(() =>
      tf.sigmoid(
        tf.add(
          tf.randomNormal([1, b, h, w], 0, 1, 'float32', 4),
          tf.mul(tf.randomNormal([n, b, h, w], 0, 1, 'float32', 5), 0.1),
        ),
      ),
    );
    const v = Array.from(x.dataSync());
    const at = (i: number, s: number, r: number, c: number) => v[((i * b + s) * h + r) * w + c];
    // Independent restatement of BranchDiversity(attn_sp, 'channel'): d(s, col) = Σ_rows (x_i − x_j)², S = mean exp(−10
    // d).
    const expected: number[] = [];
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        if (i === j) {
          expected.push(0);
          continue;
        }
        let acc = 0;
        for (let s = 0; s < b; s++)
          for (let c = 0; c < w; c++) {
            let d = 0;
            for (let r = 0; r < h; r++) d += (at(i, s, r, c) - at(j, s, r, c)) ** 2;
            acc += Math.exp(-10 * d);
          }
        expected.push(acc / (b * w));
      }
    const heads = referenceFerPlusChannelHeads(x);
    expect(heads.shape).toEqual([n, b * w, h]);
    expectArrayClose(
      read(() => similarityMatrix(heads)),
      expected,
      { rtol: 1e-5, atol: 1e-7 },
    );
    // Its gradient is the inverse permutation.
    const g = gradOf((t) => referenceFerPlusChannelHeads(t), x, [n, b * w, h]);
    const idx = (i: number, s: number, c: number, r: number) => ((i * b + s) * w + c) * h + r + 1;
    const want: number[] = [];
    for (let i = 0; i < n; i++)
      for (let s = 0; s < b; s++) for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) want.push(idx(i, s, c, r));
    expect(g).toEqual(want);
    tf.dispose([x, heads]);
  });

  it('diversityMetric: mean pairwise distance and branch disagreement rate', async () => {
    const heads = tf.tensor3d([[[0, 0]], [[1, 0]], [[0, 2]]]); // n 3, B 1, F 2
    // Pair distances (mean over 2 entries): (0,1) 0.5, (0,2) 2, (1,2) 2.5 → mean 5/3; 'sum' doubles them.
    expectArrayClose(
      read(() => meanPairwiseDistance(heads)),
      [5 / 3],
      { rtol: 1e-6 },
    );
    expectArrayClose(
      read(() => meanPairwiseDistance(heads, 'sum')),
      [10 / 3],
      { rtol: 1e-6 },
    );
    // Predictions per branch over 2 samples: [0, 1], [0, 2], [1, 1] → pairs differ on 1, 2, 1 of 2 samples each.
    const logits = [
      tf.tensor2d([
        [5, 0, 0],
        [0, 5, 0],
      ]),
      tf.tensor2d([
        [5, 0, 0],
        [0, 0, 5],
      ]),
      tf.tensor2d([
        [0, 5, 0],
        [0, 5, 0],
      ]),
    ];
    expectArrayClose(
      read(() => disagreementRate(logits)),
      [4 / 6],
      { rtol: 1e-6 },
    );
    const m = await diversityMetric(heads, { logits });
    expect(m.meanPairwiseDistance).toBeCloseTo(5 / 3, 5);
    expect(m.disagreementRate).toBeCloseTo(4 / 6, 6);
    expect(await diversityMetric(heads)).toEqual({ meanPairwiseDistance: expect.any(Number) });
    expect(() => disagreementRate(tf.zeros([3, 4]))).toThrow(/\[n, B, classes\]/);
    tf.dispose([heads, ...logits]);
  });

  it('leaks nothing in any helper or the metric', async () => {
    const a = tf.ones([2, 6, 6]);
    const x5 = tf.ones([2, 2, 3, 3, 4]);
    const sp = tf.ones([3, 2, 6, 6]);
    const logits = tf.ones([3, 2, 8]);
    await expectNoLeak(() => headsFrom([a, a]));
    await expectNoLeak(() => tf.grads((p: tf.Tensor, q: tf.Tensor) => headsFrom([p, q]))([a, a]));
    await expectNoLeak(() => esrSpatialHeads(sp));
    await expectNoLeak(() => esrChannelHeads(logits));
    await expectNoLeak(() => manetSpatialHeads(x5));
    await expectNoLeak(() => tf.grad((t: tf.Tensor) => manetSpatialHeads(t))(x5));
    await expectNoLeak(() => manetChannelHeads(x5));
    await expectNoLeak(() => tf.grad((t: tf.Tensor) => manetChannelHeads(t))(x5));
    await expectNoLeak(() => manetGlobalHeads(logits));
    await expectNoLeak(() => referenceFerPlusChannelHeads(sp));
    await expectNoLeak(() => tf.grad((t: tf.Tensor) => referenceFerPlusChannelHeads(t))(sp));
    await expectNoLeak(() => disagreementRate(logits));
    await expectNoLeak(() => diversityMetric(sp, { logits }), { returned: 0 });
    tf.dispose([a, x5, sp, logits]);
  });
});
