import * as tf from '@tensorflow/tfjs-core';
import { tfjsInternals } from 'fer-core';
import { composedKernel } from './compose';
import { conv2dBackpropFilterBody, conv2dBackpropInputBody } from './conv2d-backprop';
import { maxPoolGradWasm, unsortedSegmentSumWasm } from './heap-kernels';
import { castKernel, comparisonKernel, identityWasm, reductionKernel, tileKernel } from './reductions';

/** Kernels fer-backend registers on wasm (added where tfjs has none, replaced where the stock one is slow or wrong). */
const COMPARISONS = ['Equal', 'NotEqual', 'Greater', 'GreaterEqual', 'Less', 'LessEqual'] as const;

export const WASM_TRAINING_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'MaxPoolGrad',
  'UnsortedSegmentSum',
  'Sum',
  'Mean',
  'Max',
  'Identity',
  'Cast',
  'Tile',
  ...COMPARISONS,
] as const;

const MARK = Symbol.for('fer-backend.kernel');
/** Stock wasm kernels that fer-backend's versions delegate to for the cases they do not handle. */
const stockKernels = new Map<string, tf.KernelConfig>();

function stock(name: string): tf.KernelConfig {
  const current = tf.getKernel(name, 'wasm');
  if (current && !(current as unknown as Record<symbol, boolean>)[MARK]) stockKernels.set(name, current);
  const cfg = stockKernels.get(name);
  if (!cfg)
    throw new Error(
      `fer-backend: the stock wasm kernel '${name}' is missing; is @tensorflow/tfjs-backend-wasm 4.x installed?`,
    );
  return cfg;
}

/** A kernel that handles some cases itself and delegates the rest to the stock one (whose setup must still run). */
function wrapStock(name: string, make: (stockFunc: tf.KernelFunc) => tf.KernelFunc): tf.KernelConfig {
  const s = stock(name);
  return {
    kernelName: name,
    backendName: 'wasm',
    kernelFunc: make(s.kernelFunc),
    setupFunc: s.setupFunc,
    disposeFunc: s.disposeFunc,
  };
}

function configs(): tf.KernelConfig[] {
  return [
    composedKernel('Conv2DBackpropFilter', 'wasm', conv2dBackpropFilterBody),
    composedKernel('Conv2DBackpropInput', 'wasm', conv2dBackpropInputBody),
    maxPoolGradWasm,
    unsortedSegmentSumWasm,
    wrapStock('Sum', (f) => reductionKernel('sum', f)),
    wrapStock('Mean', (f) => reductionKernel('mean', f)),
    wrapStock('Max', (f) => reductionKernel('max', f)),
    identityWasm,
    wrapStock('Cast', castKernel),
    wrapStock('Tile', tileKernel),
    ...COMPARISONS.map((name) => wrapStock(name, (f) => comparisonKernel(f, tileKernel(stock('Tile').kernelFunc)))),
  ];
}

/**
 * Registers (or re-registers) the training kernels on the wasm backend. Idempotent; safe before or after
 * `tf.setBackend('wasm')` because the kernel registry is global.
 */
export function registerWasmTrainingKernels(): string[] {
  const names: string[] = [];
  for (const cfg of configs()) {
    tfjsInternals.replaceKernel({ ...cfg, [MARK]: true } as tf.KernelConfig);
    names.push(cfg.kernelName);
  }
  return names;
}
