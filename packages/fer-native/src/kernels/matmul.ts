import type { KernelConfig } from '@tensorflow/tfjs-core';

/** BatchMatMul and _FusedMatMul on oneDNN (native/matmul.cc). */
export const matmulKernels: KernelConfig[] = [];
