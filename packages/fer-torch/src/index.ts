export type { DType, RawTensor } from './tensor';
export { DTYPE_SIZE, numel, toFloat32, fromFloat32, halfToFloat } from './tensor';
export type { SafetensorsFile } from './safetensors';
export { parseSafetensors, readSafetensors, serializeSafetensors, SafetensorsError, MAX_HEADER_BYTES } from './safetensors';
