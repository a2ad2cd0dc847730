export { TorchMaxPool2d } from './torch-max-pool';
export type { TorchMaxPool2dArgs } from './torch-max-pool';
export { ChannelSlice } from './channel-slice';
export type { ChannelSliceArgs } from './channel-slice';
