import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { expectNoLeak, expectTensorClose } from 'fer-test-utils';
import { useLazyInputGradient } from './lazy-input-gradient';

// The kernels checked below are tfjs-core's gradient choices, the same on every backend: cpu keeps fer-core free of
// fer-backend.
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
      filters: 4,
      kernelSize: 3,
      strides: 2,
      padding: 'valid',
      useBias,
      kernelInitializer: tfl.initializers.glorotNormal({ seed: 3 }),
      biasInitializer: tfl.initializers.randomUniform({ minval: -1, maxval: 1, seed: 4 }),
    });
    if (lazy) useLazyInputGradient(layer);
    // A padding layer first (as MA-Net's stem): the conv's input is then an intermediate the forward disposes.
    const input = tfl.input({ shape: [7, 7, 3] });
    const padded = tfl.layers.zeroPadding2d({ padding: 1 }).apply(input) as tfl.SymbolicTensor;
    return { layer, model: tfl.model({ inputs: input, outputs: layer.apply(padded) as tfl.SymbolicTensor }) };
  };

  it.each([false, true])(
    'gives the stock forward and weight gradients bit for bit, without computing the input gradient; no leak (bias: %s)',
    async (useBias) => {
      const stock = make(false, useBias);
      const lazy = make(true, useBias);
      lazy.layer.setWeights(stock.layer.getWeights());
      const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 2 * 7 * 7 * 3), [2, 7, 7, 3])));
      const grad = (m: tfl.LayersModel) => {
        const vs = m.trainableWeights.map((w) => w.read() as tf.Variable);
        const r = tf.variableGrads(
          () => tf.sum(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar,
          vs,
        );
        return { value: r.value, grads: Object.fromEntries(vs.map((v, i) => [i, r.grads[v.name]])) };
      };
      const a = grad(stock.model);
      const b = grad(lazy.model);
      expect(Object.keys(b.grads)).toHaveLength(useBias ? 2 : 1);
      // The same fused conv forward and the same Conv2DBackpropFilter / bias sum as the stock fused gradient.
      expectTensorClose(b.value, a.value, { rtol: 0, atol: 0 });
      for (const k of Object.keys(a.grads)) expectTensorClose(b.grads[k], a.grads[k], { rtol: 0, atol: 0 });
      tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
      // Inference (no tape) is the stock call.
      const [ea, eb] = [stock.model.predict(x) as tf.Tensor, lazy.model.predict(x) as tf.Tensor];
      expectTensorClose(eb, ea, { rtol: 0, atol: 0 });
      tf.dispose([ea, eb]);

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
      // The taped path (custom gradient, saved input) leaves nothing behind either.
      await expectNoLeak(
        () => {
          const r = grad(lazy.model);
          tf.dispose(Object.values(r.grads));
          return r.value;
        },
        { returned: 1 },
      );
      x.dispose();
      stock.model.dispose();
      lazy.model.dispose();
    },
  );

  it('falls back to the stock call when the input depends on a variable, so its gradient still flows', async () => {
    const stock = make(false, true);
    const lazy = make(true, true);
    lazy.layer.setWeights(stock.layer.getWeights());
    const scale = tf.variable(tf.fill([1, 1, 1, 3], 0.7), true, 'lazy_test_scale');
    const x = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 7 * 7 * 3), [1, 7, 7, 3])));
    const grad = (m: tfl.LayersModel) =>
      tf.variableGrads(
        () => tf.sum(tf.square(m.apply(tf.mul(x, scale), { training: true }) as tf.Tensor)) as tf.Scalar,
        [scale],
      );
    const a = grad(stock.model);
    const b = grad(lazy.model);
    expect(b.grads[scale.name]).toBeDefined();
    expectTensorClose(b.grads[scale.name], a.grads[scale.name], { rtol: 0, atol: 0 });
    tf.dispose([a.value, b.value, a.grads[scale.name], b.grads[scale.name], x, scale]);
    stock.model.dispose();
    lazy.model.dispose();
  });

  it('refuses a conv with an activation, a dilation, or another layer, naming the layer', () => {
    const relu = tfl.layers.conv2d({ filters: 2, kernelSize: 1, activation: 'relu', name: 'relu_conv' });
    expect(() => useLazyInputGradient(relu)).toThrow(
      "expects a linear, channels-last, undilated Conv2D, but 'relu_conv' is a Conv2D with an activation",
    );
    expect(() =>
      useLazyInputGradient(tfl.layers.conv2d({ filters: 2, kernelSize: 3, dilationRate: 2, name: 'dil' })),
    ).toThrow("'dil' is a Conv2D");
    expect(() => useLazyInputGradient(tfl.layers.dense({ units: 2, name: 'fc' }))).toThrow("but 'fc' is a Dense.");
  });
});
