import { fileHandler } from 'fer-core/node';
import type { FerDataset } from 'fer-core';
import type { EsrEnsemble } from 'fer-models-esr';
import type { EvaluateOptions } from '../evaluate';
import { lossFromSpec } from '../loss';
import type { DiversityMode, LossFn } from '../loss-types';
import type { StagePlan, TrainingPlan } from '../schedule/plans';
import { Trainer, type ModelAdapter, type TrainResult } from '../trainer';
import type { RecipeRunOptions } from './run-options';

/** A dataset whose capped subset can be redrawn (fer-datasets' `ImageDataset`). */
type Redrawable = FerDataset & { redraw?(seed: number): void };

export interface TrainEsrOptions extends RecipeRunOptions {
  /** `esrGrowthPlan(...)` (esr_affectnet) or `esrFineTunePlan(...)` (esr_ferplus / esr_rafdb). */
  plan: TrainingPlan;
  /**
   * The ensemble at the start of stage 1: `createEsr(config, { initialBranches: 1, seed })` to grow, or the
   * AffectNet-trained ensemble (fer-models' `loadModel`) to fine-tune. Called again on resume.
   * The trainer owns what it returns.
   */
  createModel(): EsrEnsemble | Promise<EsrEnsemble>;
  /** Training split; a capped set is redrawn at each stage start (`freshSubset`). */
  train: Redrawable;
  validation: FerDataset;
  test?: FerDataset;
  /** Diversity loss (docs/method.md#total-loss). 'reference' reproduces the scripts; 'dpp' is the corrected loss. */
  diversity: DiversityMode;
  /** esr_ferplus/esr_rafdb faithful flag: the "channel" term on the spatial maps (docs/method.md#defect-5). */
  channelTermOnSpatial?: boolean;
  /** Evaluate with batch statistics (see `EvaluateOptions.batchStatistics`); for very short runs only. */
  evaluateWithBatchStatistics?: boolean;
}

/** The loss of one ESR stage: CE of the stage's branches plus the diversity terms over its diversity branches. */
export function esrStageLoss(stage: StagePlan, diversity: DiversityMode, channelTermOnSpatial = false): LossFn {
  return lossFromSpec({
    kind: 'esr',
    options: {
      diversity,
      ceBranches: stage.ceBranches,
      diversityBranches: stage.diversityBranches,
      channelTermOnSpatial,
    },
  });
}

/**
 * ESR evaluation of a stage: the stage's branches vote (ties to the lowest class); diversity on the spatial attention.
 */
export function esrStageEvaluation(stage: StagePlan): Omit<EvaluateOptions, 'onBatch'> {
  return { branches: stage.evalBranches, combine: { kind: 'vote' }, diversityHead: 'spatialAttention' };
}

export function esrAdapter(create: () => EsrEnsemble | Promise<EsrEnsemble>): ModelAdapter<EsrEnsemble> {
  return {
    create,
    // The ensemble seeds each new branch from its own seed and index, so growth is reproducible on resume.
    addBranch: (m) => void m.addBranch(),
    save: async (m, dir) => void (await m.save(fileHandler(dir))),
  };
}

/** Trains or fine-tunes a (diversified) ESR ensemble with a reference plan. */
export function trainEsr(o: TrainEsrOptions): Promise<TrainResult<EsrEnsemble>> {
  const trainer = new Trainer<EsrEnsemble>({
    plan: o.plan,
    model: esrAdapter(o.createModel),
    trainData: (stage, seed) => {
      if (stage.freshSubset) o.train.redraw?.(seed);
      return o.train;
    },
    validation: o.validation,
    test: o.test,
    loss: (stage) => esrStageLoss(stage, o.diversity, o.channelTermOnSpatial),
    evaluation: (stage) => ({ ...esrStageEvaluation(stage), batchStatistics: o.evaluateWithBatchStatistics }),
    outDir: o.outDir,
    seed: o.seed,
    microBatch: o.microBatch,
    computeWorkers: o.computeWorkers,
    resume: o.resume,
    overwrite: o.overwrite,
    lock: o.lock,
    manifest: o.manifest,
    divergence: o.divergence,
    trainSet: o.train,
    checkpointEverySteps: o.checkpointEverySteps,
    maxSteps: o.maxSteps,
    plots: o.plots,
    onEvent: o.onEvent,
  });
  return trainer.run();
}
