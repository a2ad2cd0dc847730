import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from 'fer-backend';
import { expectNoLeak, expectTensorClose } from 'fer-test-utils';
import { useLazyInputGradient } from './input-conv';

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

/** Kernels run by `f`, by name. */
async function kernelNames(f: () => tf.TensorContainer): Promise<string[]> {
  const info = await tf.profile(() => f());
  return info.kernels.map((k) => k.name);
}

describe('useLazyInputGradient', () => {
  const make = (lazy: boolean) => {
    const layer = tfl.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, kernelInitializer: tfl.initializers.glorotNormal({ seed: 3 }) });
    if (lazy) useLazyInputGradient(layer);
    const input = tfl.input({ shape: [9, 9, 3] });
    return { layer, model: tfl.model({ inputs: input, outputs: layer.apply(input) as tfl.SymbolicTensor }) };
  };

  it('gives the stock forward and kernel gradient, without computing the input gradient; no leak', async () => {
    const stock = make(false);
    const lazy = make(true);
    lazy.layer.setWeights(stock.layer.getWeights());
    const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 2 * 9 * 9 * 3), [2, 9, 9, 3])));
    const grad = (m: tfl.LayersModel) => {
      const v = m.trainableWeights[0].read() as tf.Variable;
      return tf.variableGrads(() => tf.sum(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar, [v]);
    };
    const a = grad(stock.model);
    const b = grad(lazy.model);
    expectTensorClose(b.value, a.value, { rtol: 1e-6, atol: 1e-6 });
    expectTensorClose(Object.values(b.grads)[0], Object.values(a.grads)[0], { rtol: 1e-5, atol: 1e-6 });
    tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);

    // The stock fused conv's custom gradient differentiates the image too; the lazy one does not.
    const run = (m: tfl.LayersModel) => () => {
      const r = grad(m);
      tf.dispose([r.value, ...Object.values(r.grads)]);
      return [];
    };
    expect(await kernelNames(run(stock.model))).toContain('Conv2DBackpropInput');
    const names = await kernelNames(run(lazy.model));
    expect(names).toContain('Conv2DBackpropFilter');
    expect(names).not.toContain('Conv2DBackpropInput');
    await expectNoLeak(() => lazy.model.apply(x, { training: true }) as tf.Tensor, { returned: 1 });
    x.dispose();
    stock.model.dispose();
    lazy.model.dispose();
  });

  it('refuses a conv with a bias or an activation, naming the layer', () => {
    const biased = tfl.layers.conv2d({ filters: 2, kernelSize: 1, name: 'biased_conv' });
    expect(() => useLazyInputGradient(biased)).toThrow("expects a bias-free, linear, channels-last Conv2D, but 'biased_conv' is a Conv2D with a bias");
    expect(() => useLazyInputGradient(tfl.layers.dense({ units: 2, name: 'fc' }))).toThrow("but 'fc' is a Dense.");
  });
});
