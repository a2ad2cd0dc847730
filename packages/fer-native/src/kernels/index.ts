import type { KernelConfig } from '@tensorflow/tfjs-core';
import { convKernels } from './conv';
import { matmulKernels } from './matmul';
import { eltwiseKernels } from './eltwise';
import { fusedReduceGradKernels, reduceKernels } from './reduce';
import { poolKernels } from './pool';
import { batchNormKernels, batchNormTrainKernels } from './batchnorm';
import { layoutKernels } from './layout';

/** Every native kernel, registered for the 'native' backend over cpu's. One line per group (src/kernels/<group>.ts). */
export const NATIVE_KERNELS: KernelConfig[] = [
  ...convKernels,
  ...matmulKernels,
  ...eltwiseKernels,
  ...reduceKernels,
  ...fusedReduceGradKernels,
  ...poolKernels,
  ...batchNormKernels,
  ...batchNormTrainKernels,
  ...layoutKernels,
];
