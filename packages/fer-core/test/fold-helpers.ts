/** Shared by fer-core's and fer-native's fold tests: random conv → batch-norm cases and the unfolded reference. */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { TorchBatchNorm, type FoldActivation } from 'fer-core';

import { lcgValues as values, maxAbs } from 'fer-test-utils';

export { values, maxAbs };

export interface FoldCase {
  label: string;
  activation: FoldActivation;
  /** A built conv and batch norm with random weights and non-trivial statistics, and an input. Caller disposes. */
  build(): { conv: tfl.layers.Layer; bn: TorchBatchNorm; x: tf.Tensor4D };
}

interface Geometry {
  n: number;
  size: number;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  padding: 'same' | 'valid';
  dilation: number;
  bias: boolean;
  activation: FoldActivation;
}

function makeCase(label: string, g: Geometry, seed: number): FoldCase {
  return {
    label,
    activation: g.activation,
    build() {
      const conv = tfl.layers.conv2d({
        filters: g.cout,
        kernelSize: g.k,
        strides: g.stride,
        padding: g.padding,
        dilationRate: g.dilation,
        useBias: g.bias,
      });
      const bn = new TorchBatchNorm({ epsilon: 1e-5 });
      const x = tf.tensor4d(values(g.n * g.size * g.size * g.cin, seed, 0, 1), [g.n, g.size, g.size, g.cin]);
      tf.tidy(() => bn.apply(conv.apply(x) as tf.Tensor) as tf.Tensor);
      const fanIn = g.k * g.k * g.cin;
      const bound = 1 / Math.sqrt(fanIn);
      const c = g.cout;
      tf.tidy(() => {
        conv.setWeights([
          tf.tensor4d(values(g.k * g.k * g.cin * c, seed + 1, -bound, bound), [g.k, g.k, g.cin, c]),
          ...(g.bias ? [tf.tensor1d(values(c, seed + 2, -bound, bound))] : []),
        ]);
        // Statistics far from the defaults: negative and small scales, shifted means, variances from 0 (ε alone) to 4.
        const variance = values(c, seed + 6, 0, 4);
        variance[0] = 0;
        bn.setWeights([
          tf.tensor1d(values(c, seed + 3, -2, 2)),
          tf.tensor1d(values(c, seed + 4, -1, 1)),
          tf.tensor1d(values(c, seed + 5, -0.5, 0.5)),
          tf.tensor1d(variance),
          tf.scalar(123),
        ]);
      });
      return { conv, bn, x };
    },
  };
}

/** `[label, case]` rows for `it.each`: ESR's and MA-Net's geometries and a few others. */
export function foldCases(): [string, FoldCase][] {
  const base: Geometry = {
    n: 2,
    size: 11,
    cin: 8,
    cout: 16,
    k: 3,
    stride: 1,
    padding: 'valid',
    dilation: 1,
    bias: true,
    activation: 'relu',
  };
  const cases: [string, Geometry][] = [
    ['ESR block: 3×3 valid, bias, ReLU', base],
    ['ESR stem: 5×5 valid on 3 channels, bias, ReLU', { ...base, cin: 3, k: 5, size: 13 }],
    ['ESR last block: 3×3 same, bias, ReLU', { ...base, padding: 'same' }],
    ['MA-Net: 3×3 same stride 2, no bias, ReLU, batch 1, odd size', { ...base, n: 1, stride: 2, bias: false }],
    ['MA-Net shortcut: 1×1 stride 2, no bias, linear', { ...base, k: 1, stride: 2, bias: false, activation: 'linear' }],
    ['3×3 same dilation 2, bias, linear, 24 channels', { ...base, cin: 24, dilation: 2, activation: 'linear' }],
  ];
  return cases.map(([label, g], i) => [label, makeCase(label, g, 100 + 17 * i)]);
}

/** The unfolded reference: the conv layer, the batch norm in eval mode, then the activation. Caller owns. */
export function unfolded(
  conv: tfl.layers.Layer,
  bn: TorchBatchNorm,
  activation: FoldActivation,
  x: tf.Tensor4D,
): tf.Tensor4D {
  return tf.tidy(() => {
    const y = bn.apply(conv.apply(x), { training: false }) as tf.Tensor4D;
    return activation === 'relu' ? tf.relu(y) : y;
  });
}
