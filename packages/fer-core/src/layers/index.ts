export { TorchBatchNorm, applyTorchBatchNorm, TORCH_BN_EPSILON, TORCH_BN_MOMENTUM } from './torch-batch-norm';
export type { TorchBatchNormArgs, TorchBnWeights, TorchBnOptions } from './torch-batch-norm';
export {
  Cbam,
  applyCbam,
  CBAM_SPATIAL_BN_MOMENTUM,
  MEAN_MAX_GRAD_KERNEL,
  MEAN_MAX_KERNEL,
  useFusedCbamPools,
} from './cbam';
export type { CbamArgs, CbamOutput } from './cbam';
export { TORCH_BN_KEYS, CBAM_TORCH_KEYS, TORCH_CONV_KEYS, TORCH_LINEAR_KEYS } from './torch-keys';
export type { TorchTransform, TorchKeySpec } from './torch-keys';
export { useLazyInputGradient } from './lazy-input-gradient';
export { FoldedConv2d } from './fold';
export { FoldedGraph } from './fold-graph';
export type { FoldActivation } from './fold';
