import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { expectNoLeak, expectTensorClose } from 'fer-test-utils';
import { useLazyInputGradient } from './lazy-input-gradient';

// The kernels checked below are tfjs-core's gradient choices, the same on every backend: cpu keeps fer-core free of fer-backend.
beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Kernels run by `f`, by name. */
async function kernelNames(f: () => tf.TensorContainer): Promise<string[]> {
  const info = await tf.profile(() => f());
  return info.kernels.map((k) => k.name);
}

describe('useLazyInputGradient', () => {
  const make = (lazy: boolean, useBias = false) => {
    const layer = tfl.layers.conv2d({
      filters: 4, kernelSize: 3, strides: 2, padding: 'valid', useBias,
      kernelInitializer: tfl.initializers.glorotNormal({ seed: 3 }), biasInitializer: tfl.initializers.randomUniform({ minval: -1, maxval: 1, seed: 4 }),
    });
    if (lazy) useLazyInputGradient(layer);
    const input = tfl.input({ shape: [9, 9, 3] });
    return { layer, model: tfl.model({ inputs: input, outputs: layer.apply(input) as tfl.SymbolicTensor }) };
  };

  it.each([false, true])('gives the stock forward and weight gradients, without computing the input gradient; no leak (bias: %s)', async (useBias) => {
    const stock = make(false, useBias);
    const lazy = make(true, useBias);
    lazy.layer.setWeights(stock.layer.getWeights());
    const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 2 * 9 * 9 * 3), [2, 9, 9, 3])));
    const grad = (m: tfl.LayersModel) => {
      const vs = m.trainableWeights.map((w) => w.read() as tf.Variable);
      const r = tf.variableGrads(() => tf.sum(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar, vs);
      return { value: r.value, grads: Object.fromEntries(vs.map((v, i) => [i, r.grads[v.name]])) };
    };
    const a = grad(stock.model);
    const b = grad(lazy.model);
    expect(Object.keys(b.grads)).toHaveLength(useBias ? 2 : 1);
    expectTensorClose(b.value, a.value, { rtol: 1e-6, atol: 1e-6 });
    for (const k of Object.keys(a.grads)) expectTensorClose(b.grads[k], a.grads[k], { rtol: 1e-5, atol: 1e-5 });
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

  it('refuses a conv with an activation, or another layer, naming the layer', () => {
    const relu = tfl.layers.conv2d({ filters: 2, kernelSize: 1, activation: 'relu', name: 'relu_conv' });
    expect(() => useLazyInputGradient(relu)).toThrow("expects a linear, channels-last Conv2D, but 'relu_conv' is a Conv2D with an activation");
    expect(() => useLazyInputGradient(tfl.layers.dense({ units: 2, name: 'fc' }))).toThrow("but 'fc' is a Dense.");
  });
});
