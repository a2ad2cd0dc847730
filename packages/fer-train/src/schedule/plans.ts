import { FerInputError, assertPositiveInt } from 'fer-core';
import { stepLrFactor, type StepLrConfig } from './step-lr';

/** The six reference training scripts (docs/method.md#training). */
export type ReferenceScript =
  | 'esr_affectnet'
  | 'esr_ferplus'
  | 'esr_rafdb'
  | 'manet_affectnet'
  | 'manet_ferplus'
  | 'manet_rafdb';
export const REFERENCE_SCRIPTS: readonly ReferenceScript[] = [
  'esr_affectnet',
  'esr_ferplus',
  'esr_rafdb',
  'manet_affectnet',
  'manet_ferplus',
  'manet_rafdb',
];

/** One stage of a training plan: a fixed ensemble, one optimizer, one StepLR. */
export interface StagePlan {
  /** 1-based stage number (the reference's folder tag for ESR growth). */
  stage: number;
  epochs: number;
  /** Branches the model holds during this stage (ESR); 0 for MA-Net. */
  ensembleSize: number;
  /** Add one fresh branch before this stage starts (ESR growth). */
  addBranch: boolean;
  /** Restore the previous stage's best snapshot before this stage (and before adding a branch). */
  reloadBest: boolean;
  /** Draw a fresh capped training subset for this stage. */
  freshSubset: boolean;
  /** Base learning rate per variable group ('base', 'branch_1', …, or 'all'). */
  baseLrs: Record<string, number>;
  momentum: number;
  weightDecay: number;
  lrSchedule: StepLrConfig;
  /** 0-based branches whose cross-entropy enters the loss. */
  ceBranches: number[];
  /** 0-based branches whose heads enter the diversity terms (empty: no diversity term). */
  diversityBranches: number[];
  /** 0-based branches that vote in evaluation (model selection). */
  evalBranches: number[];
  /** Branch trained at the high rate in this stage, if any. */
  focusBranch?: number;
}

export interface TrainingPlan {
  script: ReferenceScript;
  stages: StagePlan[];
  batchSize: number;
  evalBatchSize: number;
  /** Selection rule on validation ensemble accuracy: ESR keeps ties (≥, later epoch wins), MA-Net needs > . */
  bestIsTie: boolean;
}

/** Learning rate of every group in 0-based `epoch` of `stage` (1-based), per the reference's StepLR timing. */
export function learningRatesAt(plan: TrainingPlan, stage: number, epoch: number): Record<string, number> {
  const s = plan.stages[stage - 1];
  if (!s) throw new FerInputError(`Expected a stage in 1..${plan.stages.length}, but got ${stage}.`);
  if (!(epoch >= 0 && epoch < s.epochs))
    throw new FerInputError(`Expected an epoch in 0..${s.epochs - 1} for stage ${stage}, but got ${epoch}.`);
  const f = stepLrFactor(epoch, s.lrSchedule);
  return Object.fromEntries(Object.entries(s.baseLrs).map(([k, v]) => [k, v * f]));
}

/** Total number of epochs over all stages (esr_affectnet: 210; esr_ferplus: 580). */
export function totalEpochs(plan: TrainingPlan): number {
  return plan.stages.reduce((n, s) => n + s.epochs, 0);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export interface EsrGrowthOptions {
  /** Final ensemble size (reference 9). */
  branches?: number;
  /** Epochs of the first stage (reference 50). */
  firstEpochs?: number;
  /** Epochs of every later stage (reference 20). */
  laterEpochs?: number;
  batchSize?: number;
}

/**
 * `esr_affectnet.py` (docs/method.md#esr-affectnet): stage s holds s branches. Stage 1 trains base and branch 1 at 0.1;
 * every later stage adds a fresh branch (after reloading the previous stage's best snapshot) and trains base 0.01,
 * newest 0.1, older 0.01; momentum 0.9, no weight decay; StepLR(10, 0.5) stepped at epoch start. Diversity only when s
 * > 1.
 */
export function esrGrowthPlan(opts: EsrGrowthOptions = {}): TrainingPlan {
  const n = opts.branches ?? 9;
  const first = opts.firstEpochs ?? 50;
  const later = opts.laterEpochs ?? 20;
  for (const [k, v] of [
    ['branches', n],
    ['firstEpochs', first],
    ['laterEpochs', later],
  ] as const)
    assertPositiveInt(k, v);
  const stages = range(n).map((i): StagePlan => {
    const s = i + 1;
    const baseLrs: Record<string, number> = { base: s === 1 ? 0.1 : 0.01 };
    for (let b = 1; b <= s; b++) baseLrs[`branch_${b}`] = b === s ? 0.1 : 0.01;
    return {
      stage: s,
      epochs: s === 1 ? first : later,
      ensembleSize: s,
      addBranch: s > 1,
      reloadBest: s > 1,
      freshSubset: true,
      baseLrs,
      momentum: 0.9,
      weightDecay: 0,
      lrSchedule: { stepSize: 10, gamma: 0.5, timing: 'epochStart' },
      ceBranches: range(s),
      diversityBranches: s > 1 ? range(s) : [],
      evalBranches: range(s),
      focusBranch: s - 1,
    };
  });
  return { script: 'esr_affectnet', stages, batchSize: opts.batchSize ?? 32, evalBatchSize: 32, bestIsTie: true };
}

export interface EsrFineTuneOptions {
  dataset: 'ferplus' | 'rafdb';
  /** Ensemble size of the pretrained model (reference 9). */
  branches?: number;
  firstEpochs?: number;
  laterEpochs?: number;
  batchSize?: number;
  /**
   * `reference`: the diversity terms cover all branches at every stage, so untrained branches already move
   * (docs/method.md#defect-13). `trained`: only the branches trained so far (no term in stage 1).
   */
  diversityScope?: 'reference' | 'trained';
}

/**
 * `esr_ferplus.py` / `esr_rafdb.py` (docs/method.md#esr-finetuning): all branches exist from the start. Stage k trains
 * the CE of branches 0..k−1 with branch k−1 at 0.1 and the others at 0.02; the base runs at 0.1 in stage 1 and 0.02
 * later; StepLR(10, 0.75) at epoch start; 100 then 60 epochs; best snapshot reloaded between stages.
 */
export function esrFineTunePlan(opts: EsrFineTuneOptions): TrainingPlan {
  const n = opts.branches ?? 9;
  const first = opts.firstEpochs ?? 100;
  const later = opts.laterEpochs ?? 60;
  for (const [k, v] of [
    ['branches', n],
    ['firstEpochs', first],
    ['laterEpochs', later],
  ] as const)
    assertPositiveInt(k, v);
  const scope = opts.diversityScope ?? 'reference';
  const stages = range(n).map((i): StagePlan => {
    const k = i + 1;
    const baseLrs: Record<string, number> = { base: k === 1 ? 0.1 : 0.02 };
    for (let b = 1; b <= n; b++) baseLrs[`branch_${b}`] = b === k ? 0.1 : 0.02;
    return {
      stage: k,
      epochs: k === 1 ? first : later,
      ensembleSize: n,
      addBranch: false,
      reloadBest: k > 1,
      freshSubset: true,
      baseLrs,
      momentum: 0.9,
      weightDecay: 0,
      lrSchedule: { stepSize: 10, gamma: 0.75, timing: 'epochStart' },
      ceBranches: range(k),
      diversityBranches: scope === 'reference' ? (n > 1 ? range(n) : []) : k > 1 ? range(k) : [],
      evalBranches: range(k),
      focusBranch: i,
    };
  });
  return {
    script: opts.dataset === 'ferplus' ? 'esr_ferplus' : 'esr_rafdb',
    stages,
    batchSize: opts.batchSize ?? 32,
    evalBatchSize: 32,
    bestIsTie: true,
  };
}

export interface ManetPlanOptions {
  dataset: 'affectnet' | 'ferplus' | 'rafdb';
  epochs?: number;
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  batchSize?: number;
}

/**
 * `manet_*.py` (docs/method.md#manet-training): one group of all parameters, SGD lr 0.01, momentum 0.9, weight decay
 * 1e-4 (PyTorch semantics, on every parameter); StepLR(5, 0.1) over 20 epochs for AffectNet, StepLR(15, 0.1) over 100
 * epochs for FER+ and RAF-DB, stepped after each epoch. Batch 128 (FER+: 32, hard-coded in the reference). Best needs a
 * strict improvement.
 */
export function manetPlan(opts: ManetPlanOptions): TrainingPlan {
  const affect = opts.dataset === 'affectnet';
  const epochs = opts.epochs ?? (affect ? 20 : 100);
  assertPositiveInt('epochs', epochs);
  const stage: StagePlan = {
    stage: 1,
    epochs,
    ensembleSize: 0,
    addBranch: false,
    reloadBest: false,
    freshSubset: false,
    baseLrs: { all: opts.lr ?? 0.01 },
    momentum: opts.momentum ?? 0.9,
    weightDecay: opts.weightDecay ?? 1e-4,
    lrSchedule: { stepSize: affect ? 5 : 15, gamma: 0.1, timing: 'epochEnd' },
    ceBranches: [0, 1],
    diversityBranches: [0, 1, 2, 3],
    evalBranches: [0, 1],
  };
  const script = `manet_${opts.dataset}` as ReferenceScript;
  const batch = opts.batchSize ?? (opts.dataset === 'ferplus' ? 32 : 128);
  return { script, stages: [stage], batchSize: batch, evalBatchSize: batch, bestIsTie: false };
}

/** The plan of a reference script with its defaults. */
export function referencePlan(script: ReferenceScript): TrainingPlan {
  switch (script) {
    case 'esr_affectnet':
      return esrGrowthPlan();
    case 'esr_ferplus':
      return esrFineTunePlan({ dataset: 'ferplus' });
    case 'esr_rafdb':
      return esrFineTunePlan({ dataset: 'rafdb' });
    case 'manet_affectnet':
      return manetPlan({ dataset: 'affectnet' });
    case 'manet_ferplus':
      return manetPlan({ dataset: 'ferplus' });
    case 'manet_rafdb':
      return manetPlan({ dataset: 'rafdb' });
  }
}
