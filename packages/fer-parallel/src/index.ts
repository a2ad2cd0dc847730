export { DataParallel, WorkerTaskError, planShards, activeWorkerCount } from './engine';
export type { DataParallelOptions } from './engine';
export { FlatSgd } from './sgd';
export type { SgdGroupOptions } from './sgd';
export { esrTask, manetTask } from './tasks/specs';
export type { EsrTaskConfig, ManetTaskConfig } from './tasks/specs';
export type {
  TaskSpec,
  ShardBatch,
  ReplicaGradients,
  Replica,
  ReplicaContext,
  CreateReplica,
  StateSync,
  HostBatch,
  VariableInfo,
  BatchGradients,
  WorkerMemory,
} from './types';
