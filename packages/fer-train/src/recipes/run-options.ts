import type { DivergenceOptions } from '../guards';
import type { RunLock } from '../io/run-folder';
import type { TrainEvent, TrainerOptions } from '../trainer';

/** Where and how a recipe runs: the options `trainEsr` and `trainManet` share. */
export interface RecipeRunOptions {
  outDir: string;
  seed?: number;
  /** Micro-batch for gradient accumulation up to the plan's batch size: see `StepOptions.microBatch`. */
  microBatch?: number;
  /** Worker threads computing each step data-parallel (`TrainerOptions.computeWorkers`; default 1). */
  computeWorkers?: number;
  /** See `TrainerOptions.resume` (`'auto'`: resume when the folder holds a run, else start one). */
  resume?: boolean | 'auto';
  /** Replace a run already in `outDir` (see `TrainerOptions.overwrite`). */
  overwrite?: boolean;
  /** The folder lock when the caller holds it beyond training (see `TrainerOptions.lock`). */
  lock?: RunLock;
  /** The caller's options for `run.json` (see `TrainerOptions.manifest`). */
  manifest?: TrainerOptions['manifest'];
  divergence?: DivergenceOptions | false;
  checkpointEverySteps?: number;
  maxSteps?: number;
  plots?: boolean;
  onEvent?: (e: TrainEvent) => void;
}
