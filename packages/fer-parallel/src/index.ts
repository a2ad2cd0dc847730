export { DataParallel, WorkerTaskError, planShards, activeWorkerCount } from './engine';
export type { DataParallelOptions } from './engine';
export { FlatSgd } from './sgd';
export type { SgdGroupOptions } from './sgd';
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
