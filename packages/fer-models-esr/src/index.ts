export { ESR_CONFIGS } from './configs';
export type { EsrConfig, EsrConfigName, EsrPretrainedConfig, EsrVariant, ColorOrder } from './configs';
export { EsrEnsemble, createEsr, loadEsr, esrFromArtifacts } from './esr';
export type { EsrForwardOptions, EsrPartName, CreateEsrOptions, EsrSnapshot } from './esr';
export { isEsrArtifacts } from './io';
export { vote } from './vote';
export { fromTorchStateDicts, toTorchStateDicts } from './weights/checkpoint';
export type { FromTorchOptions, TorchImport } from './weights/checkpoint';
