export {
  initBackend,
  parseBackendName,
  BackendUnavailableError,
  BackendInputError,
  BACKEND_NAMES,
  BROWSER_BACKEND_NAMES,
} from './select';
export type { BackendName, BackendOptions, BackendInfo } from './select';
export { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from './wasm/register';
export {
  registerGradientOverrides,
  restoreStockGradients,
  leanBatchNormGradConfig,
  sumGradConfig,
  meanGradConfig,
  maxGradConfig,
  reluGradConfig,
  mulGradConfig,
  RELU_GRAD_KERNEL,
  MAX_GRAD_KERNEL,
  MUL_SUM_KERNEL,
} from './gradients';
