import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from 'fer-backend';
import { expectArrayClose } from 'fer-test-utils';
import { ManetBuilder } from './blocks';
import type { MsScaleOrder } from './configs';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

/** A one-block model: [6, 6, 8] -> MulScaleBlock(8 -> 8, stride 1, identity shortcut), eval mode. */
function multiScaleModel(order: MsScaleOrder): tfl.LayersModel {
  const b = new ManetBuilder(7);
  const input = tfl.input({ shape: [6, 6, 8] });
  const model = tfl.model({ inputs: input, outputs: b.mulScaleBlock(input, 'blk', 8, 1, order) });
  // Non-trivial BN parameters and statistics, so a swapped BN would show.
  let k = 1;
  for (const w of model.weights) {
    if (/bn|running/.test(w.originalName) && !w.originalName.endsWith('num_batches_tracked')) {
      const base = w.originalName.endsWith('running_var') || w.originalName.endsWith('gamma') ? 1 : 0;
      w.write(tf.add(base, tf.mul(0.3, tf.sin(tf.add(tf.range(0, w.shape[0]!), k++)))));
    }
  }
  return model;
}

/**
 * The block restated with plain ops from docs/method.md#manet (seed) and docs/method.md#upstream-manet (upstream 2023
 * reverse order): t = ReLU(BN(conv(x))), groups s0..s3; y_j = BN_j(conv_j(ReLU(y_prev) + s_j)); out = ReLU(P1 + P2 +
 * x).
 */
function restated(model: tfl.LayersModel, x: tf.Tensor4D, order: MsScaleOrder): tf.Tensor {
  const w = (name: string) => model.weights.find((v) => v.originalName === name)!.read();
  const conv = (y: tf.Tensor, layer: string) =>
    tf.conv2d(y as tf.Tensor4D, w(`${layer}/kernel`) as tf.Tensor4D, 1, 'same');
  const bn = (y: tf.Tensor, layer: string) =>
    tf.add(
      tf.mul(
        tf.div(tf.sub(y, w(`${layer}/running_mean`)), tf.sqrt(tf.add(w(`${layer}/running_var`), 1e-5))),
        w(`${layer}/gamma`),
      ),
      w(`${layer}/beta`),
    );
  return tf.tidy(() => {
    const t = tf.relu(bn(conv(x, 'blk.conv1'), 'blk.bn1'));
    const s = tf.split(t, 4, 3);
    const path = (p: number, chain: number[]) => {
      const ys: tf.Tensor[] = [];
      let prev: tf.Tensor | null = null;
      for (const j of chain) {
        const input: tf.Tensor = prev === null ? s[j] : tf.add(tf.relu(prev), s[j]);
        prev = bn(conv(input, `blk.conv${p}_2_${j + 1}`), `blk.bn${p}_2_${j + 1}`);
        ys[j] = prev;
      }
      return tf.concat(ys, 3);
    };
    return tf.relu(
      tf.add(tf.add(path(1, [0, 1, 2, 3]), path(2, order === 'forward' ? [0, 1, 2, 3] : [3, 2, 1, 0])), x),
    );
  });
}

describe('ManetBuilder.mulScaleBlock', () => {
  test.each(['forward', 'reverse'] as const)('%s order equals the restated block', (order) => {
    const model = multiScaleModel(order);
    const x = tf.randomNormal([2, 6, 6, 8], 0, 1, 'float32', 5) as tf.Tensor4D;
    const ours = model.apply(x, { training: false }) as tf.Tensor;
    const want = restated(model, x, order);
    expectArrayClose(ours.dataSync(), want.dataSync(), { rtol: 1e-5, atol: 1e-5 }, `MulScaleBlock ${order}`);
    // And the two orders really differ.
    const other = restated(model, x, order === 'forward' ? 'reverse' : 'forward');
    expect(tf.max(tf.abs(tf.sub(other, want))).dataSync()[0]).toBeGreaterThan(1e-3);
    tf.dispose([x, ours, want, other]);
    model.dispose();
  });

  test('PyTorch padding: stride-2 convs pad explicitly, stride-1 3x3 use symmetric "same"', () => {
    const b = new ManetBuilder(null);
    const input = tfl.input({ shape: [28, 28, 128] });
    const y = b.basicBlock(input, 'blk', 256, 2, false);
    const model = tfl.model({ inputs: input, outputs: y });
    expect(y.shape).toEqual([null, 14, 14, 256]);
    const pads = model.layers.filter((l) => l.getClassName() === 'ZeroPadding2D').map((l) => l.name);
    expect(pads).toEqual(['blk.conv1.pad']); // the 1x1/2 projection needs none
    model.dispose();
  });
});
