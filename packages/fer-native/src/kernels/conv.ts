import type { KernelConfig } from '@tensorflow/tfjs-core';

/** Conv2D, FusedConv2D, Conv2DBackpropInput, Conv2DBackpropFilter on oneDNN (native/conv.cc). */
export const convKernels: KernelConfig[] = [];
