/**
 * Contract test of the tfjs internals fer relies on (fer-core's tfjs-internals.ts): each `it` checks one internal
 * against its documented behaviour, so a tfjs upgrade that changes the shape of anything we touch fails here first.
 * Also covers the version guard and switching fer-backend's global gradient overrides off and on.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { FER_ERROR_CODES, checkTfjsVersion, isFerError, TFJS_VERIFIED_VERSION, tfjsInternals } from 'fer-core';
import {
  initBackend,
  leanBatchNormGradConfig,
  maxGradConfig,
  meanGradConfig,
  reluGradConfig,
  mulGradConfig,
  sumGradConfig,
} from 'fer-backend';

const OVERRIDES = [
  leanBatchNormGradConfig,
  sumGradConfig,
  meanGradConfig,
  maxGradConfig,
  reluGradConfig,
  mulGradConfig,
];

describe('tfjs internals (verified on tfjs 4.22.0)', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
  });

  it('the installed tfjs-core and tfjs-layers are the verified version', () => {
    expect(tf.version_core).toBe(TFJS_VERIFIED_VERSION);
    expect(tfl.version_layers).toBe(TFJS_VERIFIED_VERSION);
    expect(checkTfjsVersion('error')).toEqual([]);
  });

  it('the version guard warns once, or throws FER_TFJS_VERSION, on another version', () => {
    const other = { core: '4.23.0', layers: TFJS_VERIFIED_VERSION };
    let thrown: unknown;
    try {
      checkTfjsVersion('error', other);
    } catch (e) {
      thrown = e;
    }
    expect(isFerError(thrown) && thrown.code).toBe(FER_ERROR_CODES.tfjsVersion);
    expect((thrown as Error).message).toMatch(/verified with tfjs 4\.22\.0, but @tensorflow\/tfjs-core 4\.23\.0/);
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      expect(checkTfjsVersion('warn', other)).toEqual(['@tensorflow/tfjs-core 4.23.0']);
      checkTfjsVersion('warn', other);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(checkTfjsVersion('off', other)).toEqual(['@tensorflow/tfjs-core 4.23.0']);
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
    }
  });

  it('isTapeOn and activeTape: off and empty outside a gradient; inside, nodes link input and output tensors', () => {
    expect(tfjsInternals.isTapeOn()).toBe(false);
    expect(tfjsInternals.activeTape()).toEqual([]);
    const x = tf.tensor1d([1, 2, 3]);
    let seen: { on: boolean; linked: boolean } = { on: false, linked: false };
    const g = tf.grad((a: tf.Tensor) => {
      const y = tf.mul(a, a);
      const tape = tfjsInternals.activeTape();
      const node = tape.find((n) => n.outputs.some((o) => o.id === y.id));
      seen = { on: tfjsInternals.isTapeOn(), linked: !!node && Object.values(node.inputs).some((t) => t.id === a.id) };
      return tf.sum(y);
    })(x);
    expect(seen).toEqual({ on: true, linked: true });
    expect(Array.from(g.dataSync())).toEqual([2, 4, 6]);
    tf.dispose([x, g]);
  });

  it('liveTensorCount is the engine count tf.memory() reports', () => {
    const before = tfjsInternals.liveTensorCount();
    expect(before).toBe(tf.memory().numTensors);
    const t = tf.zeros([2]);
    expect(tfjsInternals.liveTensorCount()).toBe(before + 1);
    t.dispose();
    expect(tfjsInternals.liveTensorCount()).toBe(before);
  });

  it('runKernel with a tfjs-core kernel name and its typed attrs equals the op; tensorFromInfo owns an output', () => {
    const x = tf.randomNormal([1, 5, 5, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
    const dy = tf.randomNormal([1, 3, 3, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
    const dw = tfjsInternals.runKernel<tf.Conv2DBackpropFilterAttrs>(
      tf.Conv2DBackpropFilter,
      { x, dy },
      { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', filterShape: [3, 3, 2, 4] },
    );
    // The same filter gradient through the public API: d/dw Σ conv2d(x, w)·dy.
    const w0 = tf.zeros([3, 3, 2, 4]) as tf.Tensor4D;
    const ref = tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, 1, 'valid'), dy)))(w0);
    expect(dw.shape).toEqual([3, 3, 2, 4]);
    expect(tf.max(tf.abs(tf.sub(dw, ref))).dataSync()[0]).toBeLessThan(1e-5);
    const before = tf.memory().numTensors;
    const info = {
      dataId: tf.backend().write(new Float32Array([7, 8]), [2], 'float32'),
      shape: [2],
      dtype: 'float32' as const,
    };
    const t = tfjsInternals.tensorFromInfo(info);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(Array.from(t.dataSync())).toEqual([7, 8]);
    tf.dispose([x, dy, dw, w0, ref, t]);
  });

  it('replaceLayerCall: apply() runs the replacement, which can delegate to the stock call', () => {
    const layer = tfl.layers.dense({ units: 1, useBias: false, kernelInitializer: 'ones', inputShape: [2] });
    const calls: number[] = [];
    tfjsInternals.replaceLayerCall(layer, (stock) => (inputs, kwargs) => {
      calls.push(1);
      return stock(inputs, kwargs);
    });
    const y = layer.apply(tf.tensor2d([[1, 2]])) as tf.Tensor;
    expect(calls).toHaveLength(1);
    expect(Array.from(y.dataSync())).toEqual([3]);
    y.dispose();
    layer.dispose();
  });

  it("a Conv2D layer has the fields useLazyInputGradient reads, with tfjs-layers' meanings", () => {
    const conv = tfl.layers.conv2d({ filters: 2, kernelSize: 3, strides: 2, padding: 'same', inputShape: [8, 8, 1] });
    conv.apply(tfl.input({ shape: [8, 8, 1] }));
    const c = conv as unknown as Record<string, unknown> & { activation: { getClassName(): string } };
    expect(c.strides).toEqual([2, 2]);
    expect(c.padding).toBe('same');
    expect(c.dataFormat).toBe('channelsLast');
    expect(c.dilationRate).toEqual([1, 1]);
    expect(c.useBias).toBe(true);
    expect(c.activation.getClassName()).toBe('linear');
    expect((c.kernel as { read(): tf.Tensor }).read().shape).toEqual([3, 3, 1, 2]);
    expect((c.bias as { read(): tf.Tensor }).read().shape).toEqual([2]);
    conv.dispose();
  });

  it("wasmBackendInternals: the wasm backend's heap holds a tensor's values at its memory offset", () => {
    const be = tfjsInternals.wasmBackendInternals();
    expect(be).not.toBeNull();
    const t = tf.tensor1d([1.5, -2, 3.25]);
    const offset = be!.dataIdMap.get(t.dataId).memoryOffset;
    expect(Array.from(new Float32Array(be!.wasm.HEAPU8.buffer, offset, 3))).toEqual([1.5, -2, 3.25]);
    expect(Array.from(be!.typedArrayFromHeap(t))).toEqual([1.5, -2, 3.25]);
    const out = be!.makeOutput([2], 'float32');
    const o = tfjsInternals.tensorFromInfo(out);
    expect(o.shape).toEqual([2]);
    tf.dispose([t, o]);
    expect(tfjsInternals.wasmBackendInternals({})).toBeNull();
  });

  it('replaceKernel swaps the registered kernel for its backend; registering the old one restores it', () => {
    const stock = tf.getKernel(tf.Neg, 'cpu')!;
    const marker: tf.KernelConfig = { ...stock, kernelFunc: (args) => stock.kernelFunc(args) };
    tfjsInternals.replaceKernel(marker);
    expect(tf.getKernel(tf.Neg, 'cpu')).toBe(marker);
    tfjsInternals.replaceKernel(stock);
    expect(tf.getKernel(tf.Neg, 'cpu')).toBe(stock);
  });

  it('replaceGradient returns the gradient it replaced; restoreGradient puts it back (or removes the entry)', () => {
    const stock = tf.getGradient(tf.Neg);
    expect(stock).toBeDefined();
    const mine: tf.GradConfig = { kernelName: tf.Neg, gradFunc: (dy) => ({ x: () => tf.neg(dy as tf.Tensor) }) };
    expect(tfjsInternals.replaceGradient(mine)).toBe(stock);
    expect(tf.getGradient(tf.Neg)).toBe(mine);
    tfjsInternals.restoreGradient(tf.Neg, stock);
    expect(tf.getGradient(tf.Neg)).toBe(stock);
    const name = 'FerContractTestKernel';
    tfjsInternals.replaceGradient({ ...mine, kernelName: name });
    tfjsInternals.restoreGradient(name, undefined);
    expect(tf.getGradient(name)).toBeUndefined();
  });
});

describe('kernel registry', () => {
  it('hasKernel and runKernelOutputs: a kernel registered for one backend, with several outputs', async () => {
    await initBackend({ backend: 'cpu', quiet: true });
    const name = 'FerContractTestSplit';
    expect(tfjsInternals.hasKernel(name)).toBe(false);
    type CpuLike = {
      makeTensorInfo(s: number[], d: string, v: Float32Array): tf.TensorInfo;
      readSync(id: unknown): Float32Array;
    };
    tf.registerKernel({
      kernelName: name,
      backendName: 'cpu',
      kernelFunc: ({ inputs, backend }) => {
        const b = backend as unknown as CpuLike;
        const x = (inputs as { x: tf.TensorInfo }).x;
        const v = b.readSync(x.dataId);
        return [
          b.makeTensorInfo(
            x.shape,
            'float32',
            v.map((e) => -e),
          ),
          b.makeTensorInfo(
            x.shape,
            'float32',
            v.map((e) => e + 1),
          ),
        ];
      },
    });
    try {
      expect(tfjsInternals.hasKernel(name)).toBe(true);
      expect(tfjsInternals.hasKernel(name, 'wasm')).toBe(false);
      const x = tf.tensor1d([1, 2]);
      const before = tf.memory().numTensors;
      const outs = tfjsInternals.runKernelOutputs(name, { x }, {});
      expect(tf.memory().numTensors - before).toBe(2);
      expect(outs.map((t) => Array.from(t.dataSync()))).toEqual([
        [-1, -2],
        [2, 3],
      ]);
      tf.dispose([x, ...outs]);
    } finally {
      tf.unregisterKernel(name, 'cpu');
      await initBackend({ backend: 'wasm', quiet: true });
    }
  });
});

describe('the global gradient overrides', () => {
  afterAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
  });

  it('initBackend registers them by default and reports them', async () => {
    const info = await initBackend({ backend: 'wasm', quiet: true });
    expect(info.gradientOverrides).toEqual(['FusedBatchNorm', 'Sum', 'Mean', 'Max', 'Relu', 'Multiply']);
    for (const g of OVERRIDES) expect(tf.getGradient(g.kernelName)).toBe(g);
  });

  it('gradientOverrides: false puts the stock gradients back, with the same values', async () => {
    const x = tf.tensor2d([
      [1, 5],
      [3, 2],
    ]);
    const grads = () => {
      const g = tf.grad((a: tf.Tensor) => tf.add(tf.sum(tf.max(a, 1)), tf.mean(tf.mul(a, a))))(x);
      const v = Array.from(g.dataSync());
      g.dispose();
      return v;
    };
    const withOverrides = grads();
    const info = await initBackend({ backend: 'wasm', quiet: true, gradientOverrides: false });
    expect(info.gradientOverrides).toEqual([]);
    for (const g of OVERRIDES) {
      const current = tf.getGradient(g.kernelName);
      expect(current).toBeDefined();
      expect(current).not.toBe(g);
    }
    expect(grads()).toEqual(withOverrides);
    // Switching back on registers them again.
    await initBackend({ backend: 'wasm', quiet: true });
    for (const g of OVERRIDES) expect(tf.getGradient(g.kernelName)).toBe(g);
    x.dispose();
  });
});
