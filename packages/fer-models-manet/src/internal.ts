/** Building blocks for the suite's own packages and tests; not a stable API. */
export { buildManetModel } from './manet';
export { MSCELEB_NUM_CLASSES, MS_SCALE_ORDERS, resolveManetConfig } from './configs';
export { loadTorchStateDict, torchParameter, torchToTfjs, tfjsToTorch } from './weights/from-torch';
export type { LoadTorchOptions } from './weights/from-torch';
export { manetTorchEntries, MANET_HEAD_KEYS } from './weights/torch-keys';
export type { ManetTorchEntry } from './weights/torch-keys';
export { TorchMaxPool2d, ChannelSlice } from './layers';
export type { TorchMaxPool2dArgs, ChannelSliceArgs } from './layers';
