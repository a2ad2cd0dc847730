import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { TorchBatchNorm } from './torch-batch-norm';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// x: [N=2, H=1, W=2, C=2]; channel 0 values 1, 2, 3, 6; channel 1 values 0, 0, 4, 4.
const X = [1, 0, 2, 0, 3, 4, 6, 4];

describe('TorchBatchNorm', () => {
  it('train mode: biased batch variance for output, unbiased variance and momentum 0.1 for running stats', () => {
    const bn = new TorchBatchNorm({ name: 'bn_t' });
    const x = tf.tensor4d(X, [2, 1, 2, 2]);
    const y = bn.apply(x, { training: true }) as tf.Tensor;
    // channel 0: mean 3, biased var (4+1+0+9)/4 = 3.5, unbiased 14/3; channel 1: mean 2, biased var 4, unbiased 16/3
    const eps = 1e-5;
    const want = X.map((v, i) => (i % 2 === 0 ? (v - 3) / Math.sqrt(3.5 + eps) : (v - 2) / Math.sqrt(4 + eps)));
    expectArrayClose(y.dataSync(), want, { rtol: 1e-6, atol: 1e-6 }, 'y');
    const [, , rm, rv, nbt] = bn.getWeights();
    expectArrayClose(rm.dataSync(), [0.1 * 3, 0.1 * 2], { rtol: 1e-6, atol: 1e-7 }, 'running_mean');
    expectArrayClose(
      rv.dataSync(),
      [0.9 + 0.1 * (14 / 3), 0.9 + 0.1 * (16 / 3)],
      { rtol: 1e-6, atol: 1e-7 },
      'running_var',
    );
    expect(nbt.dataSync()[0]).toBe(1);
    tf.dispose([x, y]);
    bn.dispose();
  });

  it('eval mode uses running statistics and leaves them alone; momentum is PyTorch-sense', () => {
    const bn = new TorchBatchNorm({ name: 'bn_e', momentum: 0.01 });
    const x = tf.tensor4d(X, [2, 1, 2, 2]);
    bn.apply(x, { training: false });
    bn.setWeights([tf.tensor1d([2, 3]), tf.tensor1d([1, -1]), tf.tensor1d([1, 2]), tf.tensor1d([4, 9]), tf.scalar(7)]);
    const y = bn.apply(x, { training: false }) as tf.Tensor;
    const want = X.map((v, i) =>
      i % 2 === 0 ? (2 * (v - 1)) / Math.sqrt(4 + 1e-5) + 1 : (3 * (v - 2)) / Math.sqrt(9 + 1e-5) - 1,
    );
    expectArrayClose(y.dataSync(), want, { rtol: 1e-6, atol: 1e-6 }, 'y');
    bn.apply(x, { training: true });
    expectArrayClose(
      bn.getWeights()[2].dataSync(),
      [0.99 * 1 + 0.01 * 3, 0.99 * 2 + 0.01 * 2],
      { rtol: 1e-6 },
      'running_mean',
    );
    expect(bn.getWeights()[4].dataSync()[0]).toBe(8);
    bn.dispose();
    tf.dispose([x, y]);
  });

  it('refuses a training batch with one value per channel', () => {
    const bn = new TorchBatchNorm({ name: 'bn_1' });
    const x = tf.ones([1, 1, 1, 3]);
    expect(() => bn.apply(x, { training: true })).toThrow(/more than 1 value per channel/);
    x.dispose();
    bn.dispose();
  });

  it('getConfig round trip and serialization through a model', async () => {
    const bn = new TorchBatchNorm({ name: 'bn_cfg', epsilon: 1e-3, momentum: 0.2 });
    const cfg = bn.getConfig();
    expect(cfg).toMatchObject({ epsilon: 1e-3, momentum: 0.2, name: 'bn_cfg' });
    const copy = TorchBatchNorm.fromConfig(TorchBatchNorm, cfg) as TorchBatchNorm;
    expect(copy.epsilon).toBe(1e-3);
    expect(copy.momentum).toBe(0.2);
    const inp = tfl.input({ shape: [null, null, 2] });
    const model = tfl.model({ inputs: inp, outputs: bn.apply(inp) as tfl.SymbolicTensor });
    const json = JSON.parse(JSON.stringify(model.toJSON(null, false)));
    expect(json.config.layers[1].class_name).toBe('TorchBatchNorm');
    model.dispose();
  });

  it('relu: true returns exactly relu(batch norm) in train and eval mode, and its gradient; saved in the config', () => {
    const plain = new TorchBatchNorm({ name: 'bn_plain' });
    const fused = new TorchBatchNorm({ name: 'bn_relu', relu: true });
    // Values on both sides of the mean, so the ReLU clips some outputs and passes others.
    const x = tf.tensor4d([1, 0, 2, 0, 3, 4, 6, 4, 3, -2, 0.5, 2], [3, 1, 2, 2]);
    for (const bn of [plain, fused]) {
      bn.apply(x); // build
      bn.setWeights([
        tf.tensor1d([1.5, -0.5]),
        tf.tensor1d([0, 0.25]),
        tf.tensor1d([1, 2]),
        tf.tensor1d([4, 9]),
        tf.scalar(0),
      ]);
    }
    for (const training of [true, false]) {
      const want = tf.relu(plain.apply(x, { training }) as tf.Tensor);
      const got = fused.apply(x, { training }) as tf.Tensor;
      expect(Array.from(got.dataSync())).toEqual(Array.from(want.dataSync()));
      expect(Math.min(...want.dataSync())).toBe(0); // the ReLU clips something: not vacuous
      const loss = (bn: TorchBatchNorm, relu: boolean) => (t: tf.Tensor) => {
        const y = bn.apply(t, { training }) as tf.Tensor;
        return tf.sum(tf.mul(relu ? tf.relu(y) : y, tf.reshape(tf.range(0, 12), [3, 1, 2, 2])));
      };
      const gWant = tf.grad(loss(plain, true))(x);
      const gGot = tf.grad(loss(fused, false))(x);
      expect(Array.from(gGot.dataSync())).toEqual(Array.from(gWant.dataSync()));
      tf.dispose([want, got, gWant, gGot]);
    }
    expect(fused.getConfig()).toMatchObject({ relu: true });
    expect(plain.getConfig()).not.toHaveProperty('relu'); // configs saved before the option stay unchanged
    expect((TorchBatchNorm.fromConfig(TorchBatchNorm, fused.getConfig()) as TorchBatchNorm).relu).toBe(true);
    tf.dispose(x);
    plain.dispose();
    fused.dispose();
  });

  it('does not leak in train or eval mode', async () => {
    const bn = new TorchBatchNorm({ name: 'bn_leak' });
    const x = tf.tensor4d(X, [2, 1, 2, 2]);
    bn.apply(x); // build
    await expectNoLeak(() => bn.apply(x, { training: true }) as tf.Tensor, { returned: 1 });
    await expectNoLeak(() => bn.apply(x, { training: false }) as tf.Tensor, { returned: 1 });
    const g = await expectNoLeak(
      () =>
        tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.square(bn.apply(t, { training: true }) as tf.Tensor)))(x)),
      { returned: 1 },
    );
    expect(g.shape).toEqual([2, 1, 2, 2]);
    x.dispose();
    bn.dispose();
  });
});
