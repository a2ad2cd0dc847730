import type { TrainEvent } from '../trainer';

/** Where and how a recipe runs: the options `trainEsr` and `trainManet` share. */
export interface RecipeRunOptions {
  outDir: string;
  seed?: number;
  /** Micro-batch for gradient accumulation up to the plan's batch size: see `StepOptions.microBatch`. */
  microBatch?: number;
  /** Worker threads computing each step data-parallel (`TrainerOptions.computeWorkers`; default 1). */
  computeWorkers?: number;
  resume?: boolean;
  checkpointEverySteps?: number;
  maxSteps?: number;
  plots?: boolean;
  onEvent?: (e: TrainEvent) => void;
}
