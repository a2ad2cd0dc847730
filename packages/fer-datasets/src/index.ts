export { ImageDataset, summariseProblems } from './pipeline/dataset';
export type {
  SampleRecord,
  DatasetProblem,
  PipelineOptions,
  ImageDatasetInit,
  SamplePixels,
  Preprocessing,
} from './pipeline/dataset';
export type { PixelImage, RawImage, CropBox, ChannelOrder, ResizeMode } from './pipeline/image';
export { loadImage, decodeImage, rawToModelInput, ImageDecodeError } from './pipeline/decode';
export type { LoadImageOptions } from './pipeline/decode';
export {
  esrTrainTransform,
  manetRafdbTrainTransform,
  evalTransform,
  applyTransform,
  IMAGENET_MEAN,
  IMAGENET_STD,
} from './pipeline/augment';
export type { Transform, TransformOp, Interpolation } from './pipeline/augment';
export { liveWorkerCount } from './pipeline/executor';
export type { SourceOptions, Normalization } from './sources/common';
export { ferPlus, FERPLUS_TO_AFFECTNET } from './sources/ferplus';
export type { FerPlusOptions, FerPlusSplit } from './sources/ferplus';
export { affectNet, preprocessAffectNet } from './sources/affectnet';
export type {
  AffectNetOptions,
  AffectNetSplit,
  AffectNetSet,
  PreprocessAffectNetOptions,
  AffectNetPreprocessReport,
  PreprocessError,
} from './sources/affectnet';
export { rafDb } from './sources/rafdb';
export type { RafDbOptions, RafDbSplit, RafDbLayout } from './sources/rafdb';
export { classFolders } from './sources/folders';
export type { ClassFoldersOptions } from './sources/folders';
export { syntheticExpressions } from './sources/synthetic';
export type { SyntheticOptions } from './sources/synthetic';
