import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from 'fer-backend';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { ChannelSlice } from './channel-slice';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('ChannelSlice (one group of torch.split along channels)', () => {
  test('takes channels [start, start + size) of NHWC', () => {
    const x = tf.reshape(tf.range(0, 16), [1, 2, 1, 8]); // channel c at pixel p holds 8p + c
    const y = new ChannelSlice({ start: 2, size: 2 }).apply(x) as tf.Tensor;
    expect(y.shape).toEqual([1, 2, 1, 2]);
    expectArrayClose(y.dataSync(), [2, 3, 10, 11], { rtol: 0, atol: 0 });
    tf.dispose([x, y]);
  });

  test('symbolic shape, range check, config round trip, no leak', async () => {
    const s = new ChannelSlice({ start: 4, size: 4 }).apply(tfl.input({ shape: [7, 7, 8] })) as tfl.SymbolicTensor;
    expect(s.shape).toEqual([null, 7, 7, 4]);
    expect(() => new ChannelSlice({ start: 6, size: 4 }).apply(tfl.input({ shape: [7, 7, 8] }))).toThrow(/exceed/);
    expect(() => new ChannelSlice({ start: 0, size: 0 })).toThrow(/size/);
    const layer = new ChannelSlice({ start: 1, size: 3, name: 'cs' });
    const copy = ChannelSlice.fromConfig(ChannelSlice, layer.getConfig()) as ChannelSlice;
    expect([copy.start, copy.size, copy.name]).toEqual([1, 3, 'cs']);
    const x = tf.ones([2, 3, 3, 4]);
    await expectNoLeak(() => layer.apply(x) as tf.Tensor, { returned: 1 });
    x.dispose();
  });
});
