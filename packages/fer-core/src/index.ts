export type { Emotion, LabelSet } from './emotions';
export { EMOTIONS, AFFECTNET_LABELS, RAFDB_LABELS, BASIC7_LABELS, EMOTION_ALIASES, isEmotion, labelIndex } from './emotions';
export { FerInputError, expected, describe, assertPositiveInt, assertShape, parseChoice } from './errors';
export type { Batch, BatchOptions, FerDataset, ForwardResult, ForwardOptions, FerModel, VariableGroup } from './types';
export { crossEntropy, sumCrossEntropy } from './tensor';
export { Rng, mixSeed } from './random';
export type { RngState } from './random';
export { writeFileAtomic } from './io';
