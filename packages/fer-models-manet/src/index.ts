export { createManet, loadManet, buildManetModel, Manet } from './manet';
export type { ManetHeads } from './manet';
export {
  MANET_CONFIGS,
  MANET_INPUT_SIZE,
  MANET_WASM_MAX_BATCH,
  MANET_WASM_MICRO_BATCH,
  MSCELEB_NUM_CLASSES,
  MS_SCALE_ORDERS,
  resolveConfig,
} from './configs';
export type { ManetOptions, ManetPretrainedConfig, ManetVariant, MsScaleOrder, ResolvedManetConfig } from './configs';
export {
  fromMsCeleb,
  loadTorchStateDict,
  toTorchStateDict,
  torchParameter,
  torchToTfjs,
  tfjsToTorch,
} from './weights/from-torch';
export type { ManetLoadReport, LoadTorchOptions, FromMsCelebOptions } from './weights/from-torch';
export { manetTorchEntries, MANET_HEAD_KEYS } from './weights/torch-keys';
export type { ManetTorchEntry } from './weights/torch-keys';
export { TorchMaxPool2d, ChannelSlice } from './layers';
export type { TorchMaxPool2dArgs, ChannelSliceArgs } from './layers';
