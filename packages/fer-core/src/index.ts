export type { Emotion, LabelSet } from './emotions';
export {
  EMOTIONS,
  AFFECTNET_LABELS,
  RAFDB_LABELS,
  BASIC7_LABELS,
  EMOTION_ALIASES,
  isEmotion,
  labelIndex,
} from './emotions';
export {
  FerError,
  FerInputError,
  FER_ERROR_CODES,
  isFerError,
  expected,
  describe,
  assertPositiveInt,
  assertShape,
  parseChoice,
} from './errors';
export type { FerErrorCode, FerErrorLike, FerErrorOptions } from './errors';
export type {
  Batch,
  BatchOptions,
  FerDataset,
  ForwardResult,
  ForwardOptions,
  FerModel,
  FerNetwork,
  InputConvention,
  ModelKind,
  ResetClassifierOptions,
  VariableGroup,
} from './types';
export { crossEntropy, sumCrossEntropy, stagedSum, stagedMean } from './tensor';
export { Rng, mixSeed } from './random';
export type { RngState } from './random';
export {
  TorchBatchNorm,
  applyTorchBatchNorm,
  TORCH_BN_EPSILON,
  TORCH_BN_MOMENTUM,
  Cbam,
  applyCbam,
  CBAM_SPATIAL_BN_MOMENTUM,
  MEAN_MAX_GRAD_KERNEL,
  MEAN_MAX_KERNEL,
  useFusedCbamPools,
} from './layers';
export {
  TORCH_BN_KEYS,
  CBAM_TORCH_KEYS,
  TORCH_CONV_KEYS,
  TORCH_LINEAR_KEYS,
  useLazyInputGradient,
  FoldedConv2d,
  FoldedGraph,
} from './layers';
export type {
  TorchBatchNormArgs,
  TorchBnWeights,
  TorchBnOptions,
  CbamArgs,
  CbamOutput,
  TorchTransform,
  TorchKeySpec,
  FoldActivation,
} from './layers';
export { checkTfjsVersion, TFJS_VERIFIED_VERSION } from './tfjs-internals';
export type { TfjsVersionCheck } from './tfjs-internals';
/** The tfjs internals fer relies on, for fer's own packages (fer-backend, fer-parallel); not a user API. */
export * as tfjsInternals from './tfjs-internals';
