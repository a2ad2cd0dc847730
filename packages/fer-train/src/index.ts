export { Sgd } from './optim/sgd';
export type { SgdGroup, SgdState } from './optim/sgd';
export { stepLrFactor, TorchStepLr } from './schedule/step-lr';
export type { LrTiming, StepLrConfig } from './schedule/step-lr';
export {
  esrGrowthPlan,
  esrFineTunePlan,
  manetPlan,
  referencePlan,
  learningRatesAt,
  totalEpochs,
  REFERENCE_SCRIPTS,
} from './schedule/plans';
export type {
  StagePlan,
  TrainingPlan,
  ReferenceScript,
  EsrGrowthOptions,
  EsrFineTuneOptions,
  ManetPlanOptions,
} from './schedule/plans';
export { pluralityVote, argmax, confusionMatrix, classificationReport } from './metrics/classification';
export type { ConfusionMatrix, ClassReport, ClassificationReport } from './metrics/classification';
export { evaluate } from './evaluate';
export type { EvaluateOptions, EvalResult, BranchEval, DiversityMetric, Combine } from './evaluate';
export { trainStep, NonFiniteLossError } from './step';
export type { StepOptions, StepResult } from './step';
export { DIVERSITY_MODES } from './loss-types';
export type { DiversityMode, LossFn, LossTerms } from './loss-types';
export {
  saveCheckpoint,
  loadCheckpoint,
  snapshotVariables,
  restoreVariables,
  checkpointOptimizerState,
} from './io/checkpoint';
export type { Checkpoint, CheckpointMeta, TrainingPosition } from './io/checkpoint';
export { historyCsv, finalEval } from './history';
export type { History, EpochRecord, FinalEval } from './history';
export { lineChartSvg, confusionMatrixSvg } from './plots/svg';
export type { Series, LineChartOptions } from './plots/svg';
export { writeSvgAndPng } from './plots/render';
export { Trainer, stateVariables, stageOptimizer } from './trainer';
export type { TrainerOptions, TrainResult, TrainEvent, ModelAdapter } from './trainer';
export { esrLoss, manetLoss, lossFromSpec } from './loss';
export type { EsrLossOptions, ManetLossOptions, LossSpec } from './loss-types';
export { DataParallelStep, replicaModelSpec, trainTaskSpec } from './parallel/data-parallel';
export type { DataParallelStepOptions } from './parallel/data-parallel';
export type { TrainTaskConfig, ReplicaModelSpec, ComputeBackend } from './parallel/task';
export { trainEsr, esrStageLoss, esrStageEvaluation, esrAdapter } from './recipes/esr';
export type { TrainEsrOptions } from './recipes/esr';
export { trainManet, manetEvaluation } from './recipes/manet';
export { finishWithPreciseBn } from './recipes/precise-bn';
export type { PreciseBnFinish, PreciseBnFinishOptions } from './recipes/precise-bn';
export type { TrainManetOptions } from './recipes/manet';
export { recalibrateBatchNorm, findBatchNorms } from './batch-norm-recalibration';
export type { RecalibrateOptions, RecalibrateResult, BatchNormState } from './batch-norm-recalibration';
