export { createManet, loadManet, manetFromArtifacts, isManetArtifacts, Manet } from './manet';
export type { ManetHeads } from './manet';
export { MANET_CONFIGS, MANET_INPUT_SIZE, MANET_WASM_MAX_BATCH, MANET_WASM_MICRO_BATCH } from './configs';
export type { ManetOptions, ManetPretrainedConfig, ManetVariant, MsScaleOrder, ResolvedManetConfig } from './configs';
export { fromMsCeleb, toTorchStateDict as manetToTorch } from './weights/from-torch';
export type { ManetLoadReport, FromMsCelebOptions } from './weights/from-torch';
export { FoldedManet } from './fold';
export type { ManetFoldSource } from './fold';
