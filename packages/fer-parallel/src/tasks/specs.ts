import { siblingModule } from '../engine';
import type { TaskSpec } from '../types';

/** Backends a built-in task may ask `fer-backend` for. */
export type TaskBackend = 'wasm' | 'cpu' | 'auto';

/** The diversity loss of a built-in task (as fer-train's `DiversityMode`). */
export type TaskDiversity = 'reference' | 'dpp' | 'none';

/**
 * Config of the built-in ESR task (`fer-parallel/tasks/esr`): a diversified ESR (CBAM) trained with the reference
 * loss, Σ_k CE(branch k) plus, with ≥ 2 branches, the spatial and channel diversity terms (spec §3.3).
 */
export interface EsrTaskConfig {
  /** Branches (1 = first stage; 9 = the full ensemble). Default 1. */
  branches?: number;
  /** Named ESR config (default 'desr9-affectnet': CBAM, 8 classes, 96 px). */
  esr?: string;
  /** Initialiser seed (replicas are synchronised to worker 0's weights anyway). Default 0. */
  seed?: number;
  diversity?: TaskDiversity;
  backend?: TaskBackend;
}

/**
 * Config of the built-in MA-Net task (`fer-parallel/tasks/manet`): 0.6·CE1 + 0.4·CE2 plus the patch-spatial,
 * patch-channel and global-feature diversity terms (spec §3.3).
 */
export interface ManetTaskConfig {
  numClasses?: number;
  seed?: number;
  diversity?: TaskDiversity;
  /** Head-1 weight β (default 0.6). */
  beta?: number;
  backend?: TaskBackend;
}

/** Task spec for the built-in ESR replica (paths resolve to src under tsx/jest and to dist when built). */
export function esrTask(config: EsrTaskConfig = {}): TaskSpec<EsrTaskConfig> {
  return { module: siblingModule('tasks/esr'), export: 'createReplica', config };
}

/** Task spec for the built-in MA-Net replica. */
export function manetTask(config: ManetTaskConfig = {}): TaskSpec<ManetTaskConfig> {
  return { module: siblingModule('tasks/manet'), export: 'createReplica', config };
}
