import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { Prng, host, expectKernelMatchesCpu } from './helpers';

type Pad = 'valid' | 'same' | 'explicit';
const KERNELS = [1, 3, 5, 7];
const STRIDES = [1, 2];
const PADS: Pad[] = ['valid', 'same', 'explicit'];
// cpu's reference Conv2DBackpropFilter is a scalar loop: keep each case under this many multiply-adds.
const MAX_MACS = 1.5e6;

interface ConvCase {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number;
  s: number;
  pad: 'valid' | 'same' | [[number, number], [number, number], [number, number], [number, number]];
  label: string;
}

function sampleCase(rng: Prng, k: number, s: number, padMode: Pad): ConvCase {
  for (;;) {
    const n = rng.int(1, 8);
    const h = rng.odd(k, k + 12);
    const w = rng.odd(k, k + 12);
    const ci = rng.int(1, 64);
    const co = rng.int(1, 64);
    let pad: ConvCase['pad'] = padMode === 'explicit' ? 'valid' : padMode;
    if (padMode === 'explicit') {
      // Asymmetric explicit padding up to k-1 per side (k//2 each side is what PyTorch's padding=k//2 means).
      pad = [
        [0, 0],
        [rng.int(0, k - 1), rng.int(0, k - 1)],
        [rng.int(0, k - 1), rng.int(0, k - 1)],
        [0, 0],
      ];
    }
    const info = tf.backend_util.computeConv2DInfo([n, h, w, ci], [k, k, ci, co], s, 1, pad);
    if (info.outHeight < 1 || info.outWidth < 1) continue;
    if (n * info.outHeight * info.outWidth * k * k * ci * co > MAX_MACS) continue;
    return {
      n,
      h,
      w,
      ci,
      co,
      k,
      s,
      pad,
      label: `x[${n},${h},${w},${ci}] k${k} s${s} co${co} pad ${JSON.stringify(pad)}`,
    };
  }
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

describe('Conv2DBackpropFilter / Conv2DBackpropInput on wasm match the cpu backend', () => {
  for (const k of KERNELS) {
    for (const s of STRIDES) {
      for (const padMode of PADS) {
        if (padMode === 'explicit' && k === 1) continue; // 1x1 has no padding to choose
        it(`k${k} s${s} ${padMode}`, () => {
          const rng = new Prng(1000 * k + 100 * s + PADS.indexOf(padMode));
          const c = sampleCase(rng, k, s, padMode);
          const info = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [c.k, c.k, c.ci, c.co], c.s, 1, c.pad);
          const m = c.n * info.outHeight * info.outWidth;
          const x = host([c.n, c.h, c.w, c.ci], rng.values(c.n * c.h * c.w * c.ci));
          // dy scaled so sums over M terms stay O(1); the tolerance is then meaningful for every entry.
          const dy = host([c.n, info.outHeight, info.outWidth, c.co], rng.values(m * c.co, 1 / Math.sqrt(m)));
          const filter = host(
            [c.k, c.k, c.ci, c.co],
            rng.values(c.k * c.k * c.ci * c.co, 1 / Math.sqrt(c.k * c.k * c.co)),
          );
          const common = { strides: [c.s, c.s], pad: c.pad, dataFormat: 'NHWC' };
          expectKernelMatchesCpu(
            'Conv2DBackpropFilter',
            { x, dy },
            { ...common, filterShape: [c.k, c.k, c.ci, c.co] },
            c.label,
          );
          expectKernelMatchesCpu(
            'Conv2DBackpropInput',
            { dy, filter },
            { ...common, inputShape: [c.n, c.h, c.w, c.ci] },
            c.label,
          );
        });
      }
    }
  }

  // Deep layers (few positions, many channels) take Conv2DBackpropInput's matMul + col2im form.
  const deep: [string, number[], number, number, ConvCase['pad']][] = [
    ['deep 3x3 s1 same', [2, 5, 5, 64], 3, 1, 'same'],
    [
      'deep 3x3 s2 explicit pad 1',
      [2, 7, 7, 48],
      3,
      2,
      [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ],
    ],
    ['deep 1x1 s2 valid', [3, 5, 5, 64], 1, 2, 'valid'],
    ['deep 5x5 s1 valid, asymmetric', [1, 6, 7, 40], 5, 1, 'valid'],
  ];
  for (const [label, xs, k, s, pad] of deep) {
    it(label, () => {
      const rng = new Prng(xs.reduce((a, b) => a * 3 + b, k));
      const co = 64;
      const [n, h, w, ci] = xs;
      const info = tf.backend_util.computeConv2DInfo([n, h, w, ci], [k, k, ci, co], s, 1, pad);
      const m = n * info.outHeight * info.outWidth;
      expect(2 * k * k * ci * co > 2 * m * co + k * k * ci * m).toBe(true); // really the col2im regime
      const dy = host([n, info.outHeight, info.outWidth, co], rng.values(m * co, 1 / Math.sqrt(m)));
      const filter = host([k, k, ci, co], rng.values(k * k * ci * co, 1 / Math.sqrt(k * k * co)));
      const attrs = { strides: [s, s], pad, dataFormat: 'NHWC', inputShape: xs };
      expectKernelMatchesCpu('Conv2DBackpropInput', { dy, filter }, attrs, label);
    });
  }

  it('rejects dilation and NCHW with a clear error', () => {
    tf.setBackend('wasm');
    const x = tf.zeros([1, 5, 5, 2]);
    const dy = tf.zeros([1, 3, 3, 4]);
    expect(() =>
      tf
        .engine()
        .runKernel(
          'Conv2DBackpropFilter',
          { x, dy },
          { strides: 1, pad: 'valid', dataFormat: 'NCHW', filterShape: [3, 3, 2, 4] },
        ),
    ).toThrow(/expected dataFormat 'NHWC'/);
    expect(() =>
      tf
        .engine()
        .runKernel(
          'Conv2DBackpropFilter',
          { x, dy },
          { strides: 1, pad: 'valid', dataFormat: 'NHWC', dilations: 2, filterShape: [3, 3, 2, 4] },
        ),
    ).toThrow(/only dilation 1/);
    tf.dispose([x, dy]);
  });

  it('conv2d weight and input gradients through tf.grads agree with cpu', () => {
    const rng = new Prng(7);
    const xv = rng.values(2 * 9 * 9 * 3);
    const fv = rng.values(3 * 3 * 3 * 5, 0.3);
    const grads = (backend: string) => {
      tf.setBackend(backend);
      return tf.tidy(() => {
        const x = tf.tensor4d(xv, [2, 9, 9, 3]);
        const f = tf.tensor4d(fv, [3, 3, 3, 5]);
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))),
        );
        return g([x, f]).map((t) => t.dataSync() as Float32Array);
      });
    };
    const before = tf.memory().numTensors;
    const [cx, cf] = grads('cpu');
    const [wx, wf] = grads('wasm');
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(wx).every(Number.isFinite)).toBe(true);
    for (let i = 0; i < cx.length; i++)
      expect(Math.abs(wx[i] - cx[i])).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(cx[i]));
    for (let i = 0; i < cf.length; i++)
      expect(Math.abs(wf[i] - cf[i])).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(cf[i]));
  });
});
