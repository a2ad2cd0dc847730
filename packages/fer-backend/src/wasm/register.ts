import * as tf from '@tensorflow/tfjs-core';
import { composedKernel } from './compose';
import { conv2dBackpropFilterBody, conv2dBackpropInputBody } from './conv2d-backprop';
import { maxPoolGradWasm, unsortedSegmentSumWasm } from './heap-kernels';

/** Kernels fer-backend registers on wasm (added where tfjs has none, replaced where the stock one is slow or wrong). */
export const WASM_TRAINING_KERNELS = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad', 'UnsortedSegmentSum'] as const;

function configs(): tf.KernelConfig[] {
  return [
    composedKernel('Conv2DBackpropFilter', 'wasm', conv2dBackpropFilterBody),
    composedKernel('Conv2DBackpropInput', 'wasm', conv2dBackpropInputBody),
    maxPoolGradWasm,
    unsortedSegmentSumWasm,
  ];
}

/**
 * Registers (or re-registers) the training kernels on the wasm backend. Idempotent; safe before or after
 * `tf.setBackend('wasm')` because the kernel registry is global.
 */
export function registerWasmTrainingKernels(): string[] {
  const names: string[] = [];
  for (const cfg of configs()) {
    if (tf.getKernel(cfg.kernelName, cfg.backendName)) tf.unregisterKernel(cfg.kernelName, cfg.backendName);
    tf.registerKernel(cfg);
    names.push(cfg.kernelName);
  }
  return names;
}
