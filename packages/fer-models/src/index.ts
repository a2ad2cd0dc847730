export { createModel, listModels, modelInfo } from './registry';
export type { Model, ModelInfo, CreateModelOptions } from './registry';
export { loadModel } from './load';
export type { ModelSource, CheckpointBytes, LoadModelOptions } from './load';
