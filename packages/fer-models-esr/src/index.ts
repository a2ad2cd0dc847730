export { ESR_CONFIGS, ESR_VARIANTS, resolveConfig, featureSizes, minInputSize } from './configs';
export type { EsrConfig, EsrConfigName, EsrPretrainedConfig, EsrVariant, ColorOrder } from './configs';
export { EsrEnsemble, createEsr } from './esr';
export type { EsrForwardOptions, EsrPartName, CreateEsrOptions, EsrSnapshot } from './esr';
export { buildBase, buildBranch } from './layers';
export { vote } from './vote';
export { esrKeyMap, loadTorchStateDict, toTorchStateDict, torchToTfjs, tfjsToTorch } from './weights/from-torch';
export type { EsrKeyEntry, LoadReport, LoadStateDictOptions } from './weights/from-torch';
export { saveEsr, loadEsr, saveLayersModel, loadLayersModelFromDir } from './io';
export type { EsrManifest } from './io';
export {
  fromTorchCheckpoint,
  importTorchCheckpoint,
  saveTorchCheckpoint,
  fromTorchStateDicts,
  toTorchStateDicts,
  BASE_FILE,
  branchFile,
} from './weights/checkpoint';
export type { FromTorchOptions, TorchImport } from './weights/checkpoint';
