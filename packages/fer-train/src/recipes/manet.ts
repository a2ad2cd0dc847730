import type { FerDataset } from 'fer-core';
import type { Manet } from 'fer-models-manet';
import { fileHandler } from 'fer-core/node';
import { lossFromSpec } from '../loss';
import type { DiversityMode } from '../loss-types';
import type { EvaluateOptions } from '../evaluate';
import type { TrainingPlan } from '../schedule/plans';
import { Trainer, type TrainResult } from '../trainer';
import type { RecipeRunOptions } from './run-options';

export interface TrainManetOptions extends RecipeRunOptions {
  /** `manetPlan({ dataset })`. */
  plan: TrainingPlan;
  /**
   * `fromMsCeleb(path, { numClasses })` when the MS-Celeb checkpoint is given, else `createManet({ numClasses, seed
   * })`.
   */
  createModel(): Manet | Promise<Manet>;
  train: FerDataset;
  validation: FerDataset;
  test?: FerDataset;
  diversity: DiversityMode;
  /** Head-1 weight (reference 0.6) in the loss and the combined prediction. */
  beta?: number;
  /** Evaluate with batch statistics (see `EvaluateOptions.batchStatistics`); for very short runs only. */
  evaluateWithBatchStatistics?: boolean;
}

/** MA-Net evaluation: argmax of β·fc_1 + (1 − β)·fc_2; diversity on the two global features. */
export function manetEvaluation(beta = 0.6): Omit<EvaluateOptions, 'onBatch'> {
  return { combine: { kind: 'weighted', weights: [beta, 1 - beta] }, diversityHead: 'globalFeatures' };
}

/** Fine-tunes a diversified MA-Net with a `manet_*` plan. */
export function trainManet(o: TrainManetOptions): Promise<TrainResult<Manet>> {
  const beta = o.beta ?? 0.6;
  return new Trainer<Manet>({
    plan: o.plan,
    model: { create: o.createModel, save: async (m, dir) => void (await m.save(fileHandler(dir))) },
    trainData: () => o.train,
    validation: o.validation,
    test: o.test,
    loss: () => lossFromSpec({ kind: 'manet', options: { diversity: o.diversity, beta } }),
    evaluation: () => ({ ...manetEvaluation(beta), batchStatistics: o.evaluateWithBatchStatistics }),
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
  }).run();
}
