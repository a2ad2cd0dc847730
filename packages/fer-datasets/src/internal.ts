/** Building blocks for the suite's own packages and tests; not a stable API. */
export { cropRaw, resizeBilinear, rawToPixels, pixelsToRaw, swapRedBlue } from './pipeline/image';
export { encodeJpeg } from './pipeline/decode';
export {
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
} from './pipeline/augment';
export type { AffineParams, EraseBox } from './pipeline/augment';
export {
  readFerPlusLabels,
  parseFerPlusLabels,
  ferPlusMajority,
  ferPlusSoftLabel,
  FERPLUS_VOTE_COLUMNS,
} from './sources/ferplus';
export type { FerPlusRow, FerPlusLabelSummary } from './sources/ferplus';
export { affectNetFileName, parseAffectNetFileName, affectNetCrop, AFFECTNET_SETS } from './sources/affectnet';
export type { AffectNetBox, AffectNetName } from './sources/affectnet';
export { parseRafDbList, RAFDB_README_FOLDERS } from './sources/rafdb';
export { listClassFolders, IMAGE_EXTENSIONS } from './sources/folders';
export { renderSyntheticFace } from './sources/synthetic-render';
