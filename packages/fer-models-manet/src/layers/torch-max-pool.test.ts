import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from 'fer-backend';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { TorchMaxPool2d } from './torch-max-pool';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

// x[i][j] = −(4i + j + 1) on a 4x4 map: every value is negative, so zero padding would show up as 0s.
const x = () => tf.neg(tf.reshape(tf.range(1, 17), [1, 4, 4, 1])) as tf.Tensor4D;

describe('TorchMaxPool2d (nn.MaxPool2d(3, 2, padding=1))', () => {
  test('padded taps never win (PyTorch pads with −inf): hand-derived windows', () => {
    const pool = new TorchMaxPool2d({ poolSize: 3, strides: 2, padding: 1 });
    const input = x();
    const y = pool.apply(input) as tf.Tensor;
    // Windows: rows/cols {0,1} and {1,2,3}: max = x[0][0], x[0][1], x[1][0], x[1][1].
    expect(y.shape).toEqual([1, 2, 2, 1]);
    expectArrayClose(y.dataSync(), [-1, -2, -5, -6], { rtol: 0, atol: 0 });
    tf.dispose([input, y]);
  });

  test('output size floor((H + 2p − k)/s) + 1: 112 -> 56 (a symbolic shape too)', () => {
    const pool = new TorchMaxPool2d({ poolSize: 3, strides: 2, padding: 1 });
    const sym = pool.apply(tfl.input({ shape: [112, 112, 64] })) as tfl.SymbolicTensor;
    expect(sym.shape).toEqual([null, 56, 56, 64]);
    const y = pool.apply(tf.zeros([1, 112, 112, 2])) as tf.Tensor;
    expect(y.shape).toEqual([1, 56, 56, 2]);
    y.dispose();
  });

  test('gradient on wasm routes to the winning taps', () => {
    const pool = new TorchMaxPool2d({ poolSize: 3, strides: 2, padding: 1 });
    const input = x();
    const g = tf.grad((v: tf.Tensor) => tf.sum(pool.apply(v) as tf.Tensor))(input);
    const want = new Array(16).fill(0);
    for (const i of [0, 1, 4, 5]) want[i] = 1;
    expectArrayClose(g.dataSync(), want, { rtol: 0, atol: 0 });
    tf.dispose([input, g]);
  });

  test('getConfig round trip, argument validation, no leak', async () => {
    const pool = new TorchMaxPool2d({ poolSize: 3, strides: 2, padding: 1, name: 'mp' });
    const copy = TorchMaxPool2d.fromConfig(TorchMaxPool2d, pool.getConfig()) as TorchMaxPool2d;
    expect([copy.poolSize, copy.strides, copy.padding, copy.name]).toEqual([3, 2, 1, 'mp']);
    expect(() => new TorchMaxPool2d({ poolSize: 3, strides: 2, padding: 2 })).toThrow(/at most half/);
    expect(() => new TorchMaxPool2d({ poolSize: 0, strides: 2, padding: 0 })).toThrow(/poolSize/);
    const input = x();
    await expectNoLeak(() => pool.apply(input) as tf.Tensor, { returned: 1 });
    input.dispose();
  });
});
