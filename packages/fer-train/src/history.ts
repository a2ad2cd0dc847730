import type { DiversityMetric, EvalResult } from './evaluate';

/** One row of the training history (one validated epoch). */
export interface EpochRecord {
  stage: number;
  epoch: number;
  /** Learning rate per variable group during this epoch. */
  lrs: Record<string, number>;
  steps: number;
  /** Mean total training loss over the epoch's batches (the reference prints the same). */
  trainLoss: number;
  /** Mean of each loss term over the epoch's batches. */
  trainTerms: Record<string, number>;
  /** Per output (branch or head): correct / samples seen in training (running weights, augmented data). */
  trainAccuracy: number[];
  valLoss: number[];
  valAccuracy: number[];
  valEnsembleAccuracy: number;
  valMacroF1: number;
  valDiversity?: DiversityMetric;
  /** This epoch became the stage's best snapshot. */
  best: boolean;
  seconds: number;
}

export interface FinalEval {
  split: 'validation' | 'test';
  accuracy: number;
  macroF1: number;
  branchAccuracy: number[];
  perClassF1: number[];
  confusion: number[][];
  diversity?: DiversityMetric;
}

export interface History {
  script: string;
  epochs: EpochRecord[];
  final?: FinalEval[];
  /** When precise BN replaced `final`: the same evaluations before it, normalised with batch statistics. */
  finalBatchStatistics?: FinalEval[];
}

export function finalEval(split: FinalEval['split'], r: EvalResult): FinalEval {
  return {
    split,
    accuracy: r.ensemble.accuracy,
    macroF1: r.ensemble.macroF1,
    branchAccuracy: r.branches.map((b) => b.accuracy),
    perClassF1: r.ensemble.perClass.map((c) => c.f1),
    confusion: r.ensemble.confusion,
    diversity: r.diversity,
  };
}

/** History as CSV: one row per epoch; per-branch columns up to the largest ensemble; terms by name. */
export function historyCsv(h: History): string {
  const nb = Math.max(0, ...h.epochs.map((e) => e.valAccuracy.length));
  const groups = [...new Set(h.epochs.flatMap((e) => Object.keys(e.lrs)))];
  const terms = [...new Set(h.epochs.flatMap((e) => Object.keys(e.trainTerms)))];
  const head = [
    'stage',
    'epoch',
    'steps',
    'seconds',
    ...groups.map((g) => `lr_${g}`),
    'train_loss',
    ...terms.map((t) => `train_${t}`),
    ...range(nb).map((k) => `train_acc_${k + 1}`),
    ...range(nb).map((k) => `val_loss_${k + 1}`),
    ...range(nb).map((k) => `val_acc_${k + 1}`),
    'val_ensemble_acc',
    'val_macro_f1',
    'val_pairwise_distance',
    'val_disagreement',
    'best',
  ];
  const rows = h.epochs.map((e) => [
    e.stage,
    e.epoch,
    e.steps,
    e.seconds.toFixed(2),
    ...groups.map((g) => e.lrs[g] ?? ''),
    e.trainLoss,
    ...terms.map((t) => e.trainTerms[t] ?? ''),
    ...range(nb).map((k) => e.trainAccuracy[k] ?? ''),
    ...range(nb).map((k) => e.valLoss[k] ?? ''),
    ...range(nb).map((k) => e.valAccuracy[k] ?? ''),
    e.valEnsembleAccuracy,
    e.valMacroF1,
    e.valDiversity?.meanPairwiseDistance ?? '',
    e.valDiversity?.disagreement ?? '',
    e.best ? 1 : 0,
  ]);
  return [head, ...rows].map((r) => r.join(',')).join('\n') + '\n';
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
