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
export { cropRaw, resizeBilinear, rawToPixels, pixelsToRaw, swapRedBlue } from './pipeline/image';
export { loadImage, decodeImage, rawToModelInput, encodeJpeg, ImageDecodeError } from './pipeline/decode';
export type { LoadImageOptions } from './pipeline/decode';
export {
  esrTrainTransform,
  manetRafdbTrainTransform,
  evalTransform,
  applyTransform,
  hflip,
  affine,
  rotate,
  warpAffine,
  inverseAffineMatrix,
  padCrop,
  normalize,
  erase,
  sampleErasingBox,
  adjustBrightness,
  adjustContrast,
  roundHalfEven,
  IMAGENET_MEAN,
  IMAGENET_STD,
} from './pipeline/augment';
export type { Transform, TransformOp, Interpolation, AffineParams, EraseBox } from './pipeline/augment';
export { liveWorkerCount } from './pipeline/executor';
export type { SourceOptions, Normalization } from './sources/common';
export {
  ferPlus,
  readFerPlusLabels,
  parseFerPlusLabels,
  ferPlusMajority,
  ferPlusSoftLabel,
  FERPLUS_TO_AFFECTNET,
  FERPLUS_VOTE_COLUMNS,
} from './sources/ferplus';
export type { FerPlusOptions, FerPlusSplit, FerPlusRow, FerPlusLabelSummary } from './sources/ferplus';
export {
  affectNet,
  preprocessAffectNet,
  affectNetFileName,
  parseAffectNetFileName,
  affectNetCrop,
  AFFECTNET_SETS,
} from './sources/affectnet';
export type {
  AffectNetOptions,
  AffectNetSplit,
  AffectNetSet,
  AffectNetBox,
  AffectNetName,
  PreprocessAffectNetOptions,
  AffectNetPreprocessReport,
  PreprocessError,
} from './sources/affectnet';
export { rafDb, parseRafDbList, RAFDB_README_FOLDERS } from './sources/rafdb';
export type { RafDbOptions, RafDbSplit, RafDbLayout } from './sources/rafdb';
export { classFolders, listClassFolders, IMAGE_EXTENSIONS } from './sources/folders';
export type { ClassFoldersOptions } from './sources/folders';
export { syntheticExpressions } from './sources/synthetic';
export type { SyntheticOptions } from './sources/synthetic';
export { renderSyntheticFace } from './sources/synthetic-render';
