export type { DType, RawTensor } from './tensor';
export { toFloat32, fromFloat32 } from './tensor';
export type { SafetensorsFile } from './safetensors';
export { parseSafetensors, serializeSafetensors } from './safetensors';
export { TorchFormatError, UnsafePickleError, StateDictError, SafetensorsError } from './errors';
export type { UnknownGlobals } from './pickle';
export type { ReadTorchOptions } from './torch-load';
export { parseTorchFile } from './torch-load';
export type { StateDict, ReadStateDictOptions, KeyFilter, LoadReport, ShapeMismatch } from './state-dict';
export {
  parseStateDict,
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
} from './state-dict';
export type { TorchSaveOptions } from './torch-save';
export { serializeTorchStateDict } from './torch-save';
