import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { NATIVE_BACKEND, NATIVE_KERNELS, registerNativeBackend } from 'fer-native';
import { describeNative } from './helpers';

describeNative('native backend', () => {
  it('registers every cpu kernel under native, then the native ones over them', async () => {
    const reg = registerNativeBackend();
    expect(reg.ok).toBe(true);
    expect(reg.info?.onednn).toMatch(/^\d+\.\d+\.\d+$/);
    expect(reg.kernels).toEqual(NATIVE_KERNELS.map((k) => k.kernelName));
    const cpu = tf.getKernelsForBackend('cpu').map((k) => k.kernelName);
    const native = new Set(tf.getKernelsForBackend(NATIVE_BACKEND).map((k) => k.kernelName));
    expect(cpu.filter((k) => !native.has(k))).toEqual([]);
    expect(registerNativeBackend()).toBe(reg); // idempotent
    expect(await tf.setBackend(NATIVE_BACKEND)).toBe(true);
    const y = tf.tidy(() => tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4])).arraySync());
    expect(y).toEqual([4, 6]);
  });
});
