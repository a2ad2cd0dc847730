export type { DType, RawTensor } from './tensor';
export {
  DTYPE_SIZE,
  numel,
  toFloat32,
  fromFloat32,
  halfToFloat,
  assertRawTensor,
  contiguousStrides,
  transposeRaw,
  rawTensorsEqual,
} from './tensor';
export type { SafetensorsFile } from './safetensors';
export {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  SafetensorsError,
  MAX_HEADER_BYTES,
} from './safetensors';
export { TorchFormatError, UnsafePickleError, StateDictError } from './errors';
export type { UnknownGlobals, AllowedGlobal, UnpickleOptions, UnpickleResult } from './pickle';
export { unpickle, PyDict, PickledGlobal, PickledObject, BASE_GLOBALS } from './pickle';
export type { TorchFileFormat, ReadTorchOptions } from './torch-load';
export { readTorchFile, sniffFormat, isRawTensor, LEGACY_MAGIC } from './torch-load';
export type { ZipEntry, ZipReadOptions } from './zip';
export { ZipReader } from './zip';
export type { StateDict, ReadStateDictOptions, KeyFilter, LoadReport, ShapeMismatch } from './state-dict';
export {
  readStateDict,
  extractStateDict,
  moduleStateDict,
  stateDictMetadata,
  stripPrefix,
  addPrefix,
  selectKeys,
  dropKeys,
  renameKeys,
  oihwToHwio,
  hwioToOihw,
  linearToTfjs,
  linearToTorch,
  loadReport,
  assertLoadable,
  assertStateDict,
} from './state-dict';
export type { TorchSaveOptions, ModuleMetadata } from './torch-save';
export {
  serializeTorchStateDict,
  writeTorchStateDict,
  writeSafetensors,
  torchArchiveName,
  toModuleMetadata,
} from './torch-save';
