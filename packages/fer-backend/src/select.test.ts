import * as tf from '@tensorflow/tfjs-core';
import { loadAddon } from 'fer-native';
import { initBackend, parseBackendName, BackendUnavailableError } from './index';

describe('initBackend', () => {
  const savedEnv = process.env.FER_BACKEND;
  const savedNative = process.env.FER_NATIVE;
  afterEach(() => {
    if (savedEnv === undefined) delete process.env.FER_BACKEND;
    else process.env.FER_BACKEND = savedEnv;
    if (savedNative === undefined) delete process.env.FER_NATIVE;
    else process.env.FER_NATIVE = savedNative;
  });

  it('falls back to wasm automatically when the native packs are unavailable, saying why each was skipped', async () => {
    delete process.env.FER_BACKEND;
    process.env.FER_NATIVE = '0';
    const info = await initBackend({ quiet: true });
    expect(info.name).toBe('wasm');
    expect(info.tfBackend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.source).toBe('auto');
    expect(info.skipped.map((s) => s.name)).toEqual(['tfjs-node-gpu', 'tfjs-node', 'native']);
    expect(info.skipped[0].reason).toMatch(/@tensorflow\/tfjs-node-gpu is not installed/);
    expect(info.skipped[2].reason).toBe('disabled by FER_NATIVE=0');
    expect(info.kernels).toEqual(expect.arrayContaining(['Conv2DBackpropFilter', 'Conv2DBackpropInput']));
    expect(info.kernelPack).toMatch(/wasm/);
    expect(info.gradientOverrides).toEqual(['FusedBatchNorm', 'Sum', 'Mean', 'Max', 'Relu', 'Multiply']);
  });

  it("picks native automatically when fer-native's addon is built, else names the apt command", async () => {
    delete process.env.FER_BACKEND;
    const built = loadAddon().addon != null;
    const info = await initBackend({ quiet: true });
    if (built) {
      expect([info.name, info.tfBackend, tf.getBackend()]).toEqual(['native', 'native', 'native']);
      expect(info.kernelPack).toMatch(/^fer-native: oneDNN \d+\.\d+\.\d+, \w+, \d+ threads$/);
      expect(info.kernels).toEqual(expect.arrayContaining(['Conv2D', 'Conv2DBackpropFilter']));
    } else {
      expect(info.name).toBe('wasm');
      expect(info.skipped[2]).toEqual({
        name: 'native',
        reason: expect.stringContaining('apt-get install -y g++ libdnnl-dev'),
      });
    }
    await initBackend({ backend: 'wasm', quiet: true });
  });

  it('honours FER_BACKEND, and an explicit option wins over it', async () => {
    process.env.FER_BACKEND = 'cpu';
    const fromEnv = await initBackend({ quiet: true });
    expect([fromEnv.name, fromEnv.source, tf.getBackend()]).toEqual(['cpu', 'env', 'cpu']);
    expect(fromEnv.kernels).toEqual([]);
    const fromOption = await initBackend({ backend: 'wasm', quiet: true });
    expect([fromOption.name, fromOption.source, tf.getBackend()]).toEqual(['wasm', 'option', 'wasm']);
  });

  it('throws a clear error naming the install command when an explicit choice is unavailable', async () => {
    await expect(initBackend({ backend: 'tfjs-node', quiet: true })).rejects.toThrow(BackendUnavailableError);
    await expect(initBackend({ backend: 'tfjs-node', quiet: true })).rejects.toThrow(
      /npm install @tensorflow\/tfjs-node@4\.22\.0/,
    );
    process.env.FER_BACKEND = 'tfjs-node-gpu';
    await expect(initBackend({ quiet: true })).rejects.toThrow(/'tfjs-node-gpu' was requested but is not available/);
    expect(tf.getBackend()).toBe('wasm'); // the failed attempt left the active backend alone
    delete process.env.FER_BACKEND;
    // The browser backends are the page's to import; asking for one that is not registered says so.
    await expect(initBackend({ backend: 'webgl', quiet: true })).rejects.toThrow(
      "Backend 'webgl' was requested but is not available: @tensorflow/tfjs-backend-webgl is not imported. Import '@tensorflow/tfjs-backend-webgl' (4.22.0) before initBackend()",
    );
  });

  it('logs its choice once per backend', async () => {
    const spy = jest.spyOn(console, 'info').mockImplementation(() => undefined);
    try {
      await initBackend({ backend: 'cpu' });
      await initBackend({ backend: 'cpu' });
      await initBackend({ backend: 'cpu', quiet: true });
      expect(spy.mock.calls.filter((c) => String(c[0]).includes('using cpu'))).toHaveLength(1);
    } finally {
      spy.mockRestore();
      await initBackend({ backend: 'wasm', quiet: true });
    }
  });

  it('registers gradients: a conv net differentiates on wasm', async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    const g = tf.tidy(() => {
      const f = tf.variable(tf.ones([3, 3, 1, 2]));
      const x = tf.ones([1, 5, 5, 1]) as tf.Tensor4D;
      const { grads } = tf.variableGrads(
        () => tf.sum(tf.relu(tf.conv2d(x, f as tf.Tensor4D, 1, 'valid'))) as tf.Scalar,
        [f],
      );
      const v = grads[f.name].dataSync();
      f.dispose();
      return Array.from(v);
    });
    // Each tap sees 9 ones from the 3x3 output; the relu is active everywhere.
    expect(g).toEqual(new Array(18).fill(9));
  });
});

describe('parseBackendName', () => {
  it('accepts names and aliases and rejects the rest with the valid list', () => {
    expect(parseBackendName('WASM')).toBe('wasm');
    expect(parseBackendName('tensorflow')).toBe('tfjs-node');
    expect(parseBackendName('auto')).toBe('auto');
    expect(parseBackendName('WebGL')).toBe('webgl');
    expect(() => parseBackendName('metal')).toThrow(
      "Unknown backend 'metal'. Valid: tfjs-node-gpu, tfjs-node, native, wasm, cpu, webgpu, webgl, auto.",
    );
  });
});
