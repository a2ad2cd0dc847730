import type { KernelConfig } from '@tensorflow/tfjs-core';
import { convKernels } from './conv';
import { matmulKernels } from './matmul';

/** Every native kernel, registered for the 'native' backend over cpu's. One line per group (src/kernels/<group>.ts). */
export const NATIVE_KERNELS: KernelConfig[] = [...convKernels, ...matmulKernels];
