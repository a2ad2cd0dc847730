export { det, slogdet, type DetGradient, type DetOptions, type SlogdetResult } from './linalg';
export { similarityMatrix, type Diagonal, type Distance, type SimilarityOptions } from './similarity';
export {
  diversityLoss,
  reduceSimilarity,
  resolveDiversityOptions,
  DIVERSITY_PRESETS,
  type DiversityOptions,
  type DiversityPreset,
  type DiversityReduction,
  type ResolvedDiversityOptions,
} from './diversity-loss';
export {
  headsFrom,
  esrSpatialHeads,
  esrChannelHeads,
  manetSpatialHeads,
  manetChannelHeads,
  manetGlobalHeads,
  referenceFerPlusChannelHeads,
} from './heads';
export {
  diversityMetric,
  meanPairwiseDistance,
  disagreementRate,
  type DiversityMetric,
  type DiversityMetricOptions,
} from './metric';
export { DiversityInputError } from './errors';
