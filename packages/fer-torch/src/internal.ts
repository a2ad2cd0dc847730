/** Building blocks for the suite's own packages and tests; not a stable API. */
export {
  DTYPE_SIZE,
  numel,
  halfToFloat,
  assertRawTensor,
  contiguousStrides,
  transposeRaw,
  rawTensorsEqual,
} from './tensor';
export { MAX_HEADER_BYTES } from './safetensors';
export type { AllowedGlobal, UnpickleOptions, UnpickleResult } from './pickle';
export { unpickle, PyDict, PickledGlobal, PickledObject, BASE_GLOBALS } from './pickle';
export type { TorchFileFormat } from './torch-load';
export { sniffFormat, isRawTensor, LEGACY_MAGIC, readTorchSource } from './torch-load';
export type { ZipEntry, ZipReadOptions } from './zip';
export { ZipReader } from './zip';
export { bytesSource } from './bytes';
export type { ByteSource } from './bytes';
export { assertStateDict } from './state-dict';
export type { ModuleMetadata } from './torch-save';
export { torchArchiveName, toModuleMetadata } from './torch-save';
