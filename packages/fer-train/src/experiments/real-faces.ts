/**
 * The real-faces experiment (`fer experiment real`): a diversified ESR (CBAM) whose base convolutions and batch
 * norms start from upstream ESR-9's AffectNet base, grown branch by branch on FER2013 PublicTest, selected on a
 * held-out part of it, and tested on PrivateTest (FER2013 and FER+ labels) and zero-shot on CK+48 and JAFFE, for the
 * diversity variants `none`, `reference` and `dpp` over several seeds. `bench/real_torch.py` runs the same protocol
 * in PyTorch from the `splits.json` this writes.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BASIC7_LABELS, FerInputError, type FerDataset } from 'fer-core';
import { fileHandler, writeFileAtomic } from 'fer-core/node';
import { createEsr, type EsrEnsemble } from 'fer-models-esr';
import { esrKeyMap, loadTorchStateDict, type LoadReport } from 'fer-models-esr/internal';
import { readStateDict } from 'fer-torch/node';
import { type RawTensor } from 'fer-torch';
import { recalibrateBatchNorm } from '../batch-norm-recalibration';
import { replaceDirAtomic } from '../io/atomic-dir';
import {
  classificationReport,
  confusionMatrix,
  meanProbabilityVote,
  pluralityVote,
  pluralityVoteProbTies,
} from '../metrics/classification';
import type { DiversityMode } from '../loss-types';
import { confusionMatrixSvg, lineChartSvg, type Series } from '../plots/svg';
import { writeSvgAndPng } from '../plots/render';
import { trainEsr } from '../recipes/esr';
import type { StagePlan, TrainingPlan } from '../schedule/plans';
import type { TrainEvent } from '../trainer';
import {
  buildRealFacesSplits,
  splitDataset,
  writeSplits,
  type RealFacesSplits,
  type SplitItem,
} from './real-faces-data';
import { evaluatePeer, type PeerResult } from './faceapi-peer';

export interface RealFacesOptions {
  /** The shared data folder (`../shared/data`). */
  data: string;
  out: string;
  variants: DiversityMode[];
  seeds: number[];
  /** Input side: the 48 px faces are upscaled (bilinear). 96 is ESR's native size; 64 costs ~2.3× less. */
  imageSize: number;
  branches: number;
  firstEpochs: number;
  laterEpochs: number;
  batch: number;
  /** Multiplies the esr_ferplus learning rates (base and focus branch 0.1, others 0.02). */
  lrScale: number;
  /** StepLR period in epochs and factor (esr_ferplus: 10 and 0.75 over 100/60-epoch stages). */
  lrStep: number;
  lrGamma: number;
  /** Training faces per class at most (Infinity: all of PublicTest minus the hold-out). */
  trainCap: number;
  /** Fraction of each test split's classes evaluated (1: all; `--quick` uses less). */
  testFraction: number;
  holdoutFraction: number;
  /** Batches of (unaugmented) training faces over which every BN's statistics are recomputed at the end. */
  bnBatches: number;
  /** Start the base from upstream ESR-9's AffectNet weights (false: PyTorch-default init). */
  pretrained: boolean;
  /** Also measure face-api's expression network on the same test faces. */
  peer: boolean;
  workers?: number;
  /** Micro-batch for gradient accumulation (default: the batch). */
  microBatch?: number;
  /** Test-time augmentation of every evaluation (`flip`: face and mirror averaged); default `none`. */
  tta?: Tta;
}

/**
 * The measured setting (packages/fer-train/README.md, "Real faces"): 2 branches, one epoch per stage at a quarter of
 * the reference rates (chosen on the hold-out: × 0.25 held out 44.6 % over seeds 1–3, × 0.5 38.1 %, × 0.125 39.4 %),
 * half of each test set. About 2.5 minutes per run idle on native, so 3 variants × 3 seeds on both sides fit one
 * working session; longer schedules are flags away (`--first-epochs`, `--branches`, `--lr-step`, `--lr-gamma`).
 */
export const REAL_FACES_DEFAULTS: RealFacesOptions = {
  data: '../shared/data',
  out: 'runs/real-faces',
  variants: ['none', 'reference', 'dpp'],
  seeds: [1, 2, 3],
  imageSize: 64,
  branches: 2,
  firstEpochs: 1,
  laterEpochs: 1,
  batch: 32,
  lrScale: 0.25,
  lrStep: 10,
  lrGamma: 0.75,
  trainCap: Infinity,
  testFraction: 0.5,
  holdoutFraction: 0.1,
  bnBatches: 20,
  pretrained: true,
  peer: true,
  tta: 'none',
};

/**
 * `--quick` (the learning test's setting): stage 1 of the earlier measured protocol alone (one branch on every
 * training face for one epoch, 101 steps, at the reference rates × 0.5, precise BN over 20 batches), scored on a
 * quarter of each test set; kept at × 0.5, where its margin over 3 seeds was measured. One branch has no diversity
 * term, so one variant (packages/fer-train/README.md, "Real faces").
 */
export const REAL_FACES_QUICK: Partial<RealFacesOptions> = {
  out: 'runs/real-faces-quick',
  variants: ['none'],
  seeds: [1],
  imageSize: 64,
  branches: 1,
  firstEpochs: 1,
  laterEpochs: 1,
  lrScale: 0.5,
  lrStep: 10,
  testFraction: 0.25,
  bnBatches: 20,
  peer: false,
};

/** One test split's result (faithful vote of every branch, and the other rules; inference mode after precise BN). */
export interface SplitScore {
  size: number;
  accuracy: number;
  macroF1: number;
  branchAccuracy: number[];
  /** Mean pairwise distance between the branches' spatial attention maps, and the vote disagreement. */
  attentionDistance?: number;
  disagreement?: number;
  /** Faces whose vote is a tie (most votes shared by two or more classes), which `vote` gives the lowest class. */
  tieRate?: number;
  /** The non-faithful ensemble rules (`accuracy`/`macroF1` above are `vote`'s); absent without probabilities. */
  rules?: Record<Exclude<EnsembleRule, 'vote'>, RuleScore>;
  confusion: number[][];
}

export interface RunResult {
  variant: DiversityMode;
  seed: number;
  test: SplitScore;
  testFerPlus?: SplitScore;
  ckplus?: SplitScore;
  jaffe?: SplitScore;
  holdout: SplitScore;
  /** Best hold-out accuracy (batch statistics) per stage, as selection saw it. */
  selection: number[];
  trainSeconds: number;
  totalSeconds: number;
  /** CPU seconds of this process (all threads) during the run. */
  cpuSeconds: number;
  trainImages: number;
  imagesPerSecond: number;
  /** Per-epoch curves for the plots. */
  curves: { trainLoss: number[]; holdoutAccuracy: number[]; stageStarts: number[] };
}

export interface VariantSummary {
  variant: DiversityMode;
  runs: number;
  mean: Record<string, number>;
  std: Record<string, number>;
}

export interface RealFacesReport {
  settings: Omit<RealFacesOptions, 'trainCap'> & { trainCap: number | null; backend: string };
  splits: { counts: RealFacesSplits['counts']; ferPlusMatch: RealFacesSplits['ferPlusMatch'] };
  baseLoad: { loaded: number; missing: string[]; unexpected: string[] } | null;
  majorityRate: number;
  runs: RunResult[];
  summary: VariantSummary[];
  peer?: PeerResult;
  seconds: number;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The esr_ferplus schedule on a growing ensemble: stage k adds branch k, trained at the high rate (see README). */
export function realFacesPlan(o: RealFacesOptions): TrainingPlan {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const stages = range(o.branches).map((i): StagePlan => {
    const k = i + 1;
    const baseLrs: Record<string, number> = { base: (k === 1 ? 0.1 : 0.02) * o.lrScale };
    for (let b = 1; b <= k; b++) baseLrs[`branch_${b}`] = (b === k ? 0.1 : 0.02) * o.lrScale;
    return {
      stage: k,
      epochs: k === 1 ? o.firstEpochs : o.laterEpochs,
      ensembleSize: k,
      addBranch: k > 1,
      reloadBest: k > 1,
      freshSubset: true,
      baseLrs,
      momentum: 0.9,
      weightDecay: 0,
      lrSchedule: { stepSize: o.lrStep, gamma: o.lrGamma, timing: 'epochStart' },
      ceBranches: range(k),
      diversityBranches: k > 1 ? range(k) : [],
      evalBranches: range(k),
      focusBranch: i,
    };
  });
  return { script: 'esr_ferplus', stages, batchSize: o.batch, evalBatchSize: 32, bestIsTie: true };
}

/** Reads upstream ESR-9's base (legacy `.pt`) once. */
export async function readUpstreamBase(dataDir: string): Promise<Map<string, RawTensor>> {
  return readStateDict(path.join(dataDir, 'esr9-affectnet', 'weights', 'Net-Base-Shared_Representations.pt'));
}

/**
 * A 7-class diversified ESR (CBAM) at `imageSize`, seeded, with the upstream base's convolutions and batch norms
 * loaded where the keys match (the CBAM modules and the branch stay fresh).
 */
export function pretrainedEsr(
  base: ReadonlyMap<string, RawTensor> | null,
  imageSize: number,
  seed: number,
): { esr: EsrEnsemble; report: LoadReport | null } {
  const esr = createEsr(
    {
      base: 'desr9-affectnet',
      numClasses: 7,
      labels: BASIC7_LABELS,
      inputSize: imageSize,
      colorOrder: 'bgr',
      normalization: null,
    },
    { initialBranches: 1, seed },
  );
  if (!base) return { esr, report: null };
  try {
    const report = loadTorchStateDict(esr.base, base, esrKeyMap('base', { variant: 'cbam' }), { strict: false });
    return { esr, report };
  } catch (e) {
    esr.dispose();
    throw e;
  }
}

/**
 * Test-time augmentation of `predictBranches`: `none` (one pass, the measured protocol) or `flip` (each branch's
 * probabilities averaged over the face and its horizontal mirror, before any ensemble rule).
 */
export type Tta = 'none' | 'flip';
export const TTA_MODES: readonly Tta[] = ['none', 'flip'];

/** Per-sample branch predictions of one inference-mode pass, and each sample's summed pairwise attention distance. */
export interface BranchPredictions {
  truth: number[];
  /** [branch][sample]: the branch's class (argmax of its logits; with `flip`, of its averaged probabilities). */
  preds: number[][];
  /**
   * [branch]: softmax probabilities, sample-major (`probs[k][i·K + c]`, K = 7), averaged over the mirror with `flip`.
   * Absent in hand-made predictions: `scoreOf` then reports the faithful vote alone.
   */
  probs?: Float32Array[];
  /** Per sample: Σ over branch pairs i < j of ‖a_i − a_j‖ (spatial attention of the unflipped face, flattened). */
  pairDistance: number[];
}

/** One pass over `data` in inference mode (order kept): what `scoreOf` needs for any relabelling of the same faces. */
export async function predictBranches(
  model: EsrEnsemble,
  data: FerDataset,
  batchSize = 32,
  o: { tta?: Tta } = {},
): Promise<BranchPredictions> {
  const tta = o.tta ?? 'none';
  if (!TTA_MODES.includes(tta))
    throw new FerInputError(`Expected test-time augmentation ${TTA_MODES.join(' or ')}, but got '${String(tta)}'.`);
  const K = BASIC7_LABELS.length;
  const truth: number[] = [];
  const preds: number[][] = [];
  const chunks: Float32Array[][] = [];
  const pairDistance: number[] = [];
  const n = model.numBranches;
  for await (const batch of data.batches({ batchSize, shuffle: false })) {
    try {
      const B = batch.labels.shape[0];
      const packed = tf.tidy(() => {
        const out = model.forward(batch.images, { training: false });
        let probs = out.logits.map((l) => tf.softmax(l));
        let classes = out.logits.map((l) => tf.argMax(l, 1));
        if (tta === 'flip') {
          // NHWC: axis 2 is the width. The mirror's attention maps are not used (the distance stays the plain face's).
          const mirror = model.forward(tf.reverse(batch.images, 2), { training: false });
          probs = probs.map((p, k) => tf.mul(tf.add(p, tf.softmax(mirror.logits[k])), 0.5));
          classes = probs.map((p) => tf.argMax(p, 1));
        }
        const parts = [tf.reshape(tf.cast(tf.stack(classes), 'float32'), [-1])];
        parts.push(tf.reshape(tf.stack(probs), [-1]));
        const sp = out.heads.spatialAttention;
        if (sp && n > 1) {
          const h = tf.reshape(sp, [n, B, -1]);
          const d = tf.sqrt(tf.sum(tf.square(tf.sub(tf.expandDims(h, 1), tf.expandDims(h, 0))), 3)); // [n, n, B]
          parts.push(tf.div(tf.sum(d, [0, 1]), 2)); // both triangles
        }
        parts.push(tf.cast(batch.labels, 'float32'));
        return tf.concat(parts);
      });
      const v = (await packed.data()) as Float32Array;
      packed.dispose();
      // Layout: classes [n·B], probabilities [n·B·K], then (n > 1) distances [B], then labels [B].
      const hasDist = n > 1;
      for (let k = 0; k < n; k++) {
        preds[k] ??= [];
        chunks[k] ??= [];
        for (let b = 0; b < B; b++) preds[k].push(v[k * B + b]);
        chunks[k].push(v.slice(n * B + k * B * K, n * B + (k + 1) * B * K));
      }
      const rest = n * B * (K + 1);
      for (let b = 0; b < B; b++) {
        pairDistance.push(hasDist ? v[rest + b] : 0);
        truth.push(v[rest + (hasDist ? B : 0) + b]);
      }
    } finally {
      tf.dispose([batch.images, batch.labels, ...(batch.soft ? [batch.soft] : [])]);
    }
  }
  const probs = chunks.map((cs) => {
    const all = new Float32Array(cs.reduce((a, c) => a + c.length, 0));
    let at = 0;
    for (const c of cs) {
      all.set(c, at);
      at += c.length;
    }
    return all;
  });
  return { truth, preds, probs, pairDistance };
}

/**
 * The ensemble rules `scoreOf` reports. `vote` is upstream ESR's (plurality of the branches' argmaxes, ties to the
 * lowest class: the faithful headline, as bench/real_torch.py scores); with an even number of branches every split
 * vote is a tie, decided by class order alone. `voteProbTies` breaks those ties by the tied classes' summed
 * probabilities; `soft` takes the argmax of the mean probability (packages/fer-train/README.md, "Ensemble rules").
 */
export type EnsembleRule = 'vote' | 'voteProbTies' | 'soft';

export interface RuleScore {
  accuracy: number;
  macroF1: number;
}

/**
 * Ensemble vote (ties to the lowest class), per-branch accuracy, macro-F1, diversity, tie rate, and (given
 * probabilities) the `voteProbTies` and `soft` rules, for the given labels.
 */
export function scoreOf(
  p: BranchPredictions,
  truth: readonly number[] = p.truth,
  keep?: readonly boolean[],
): SplitScore {
  const K = BASIC7_LABELS.length;
  const idx = truth.map((_, i) => i).filter((i) => !keep || keep[i]);
  const n = p.preds.length;
  const pairs = (n * (n - 1)) / 2;
  const combined: number[] = [];
  const tieBroken: number[] = [];
  const soft: number[] = [];
  const t: number[] = [];
  const hits = new Array<number>(n).fill(0);
  let disagree = 0;
  let ties = 0;
  let dist = 0;
  for (const i of idx) {
    const votes = p.preds.map((row) => row[i]);
    votes.forEach((v, k) => (hits[k] += v === truth[i] ? 1 : 0));
    for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) if (votes[a] !== votes[b]) disagree++;
    dist += p.pairDistance[i];
    combined.push(pluralityVote(votes, K));
    if (p.probs) {
      const rows = p.probs.map((pr) => pr.subarray(i * K, (i + 1) * K));
      tieBroken.push(pluralityVoteProbTies(votes, rows, K));
      soft.push(meanProbabilityVote(rows, K));
    }
    const counts = new Array<number>(K).fill(0);
    votes.forEach((v) => counts[v]++);
    const top = Math.max(...counts);
    if (counts.filter((c) => c === top).length > 1) ties++;
    t.push(truth[i]);
  }
  const rep = classificationReport(confusionMatrix(t, combined, K));
  const size = idx.length;
  const ruleScore = (pred: number[]): RuleScore => {
    const r = classificationReport(confusionMatrix(t, pred, K));
    return { accuracy: r.accuracy, macroF1: r.macroF1 };
  };
  return {
    size,
    accuracy: rep.accuracy,
    macroF1: rep.macroF1,
    branchAccuracy: hits.map((h) => h / Math.max(1, size)),
    attentionDistance: n > 1 ? dist / (pairs * Math.max(1, size)) : undefined,
    disagreement: n > 1 ? disagree / (pairs * Math.max(1, size)) : undefined,
    tieRate: n > 1 ? ties / Math.max(1, size) : undefined,
    rules: p.probs ? { voteProbTies: ruleScore(tieBroken), soft: ruleScore(soft) } : undefined,
    confusion: rep.confusion,
  };
}

/** A stratified, seeded part of a split (every class keeps `fraction` of its faces, at least one). */
export function stratifiedPart(items: SplitItem[], fraction: number, cap = Infinity): SplitItem[] {
  if (fraction >= 1 && cap === Infinity) return items;
  const byClass = new Map<string, SplitItem[]>();
  for (const it of items) byClass.set(it.label, [...(byClass.get(it.label) ?? []), it]);
  const out: SplitItem[] = [];
  for (const cls of byClass.values()) {
    // Deterministic spread over the sorted list (no RNG needed: the files carry random ids).
    const n = Math.min(cap, Math.max(1, Math.round(cls.length * Math.min(1, fraction))));
    for (let i = 0; i < n; i++) out.push(cls[Math.floor((i * cls.length) / n)]);
  }
  return out;
}

function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std };
}

/** Flat numeric metrics of a run, the keys of the per-variant mean ± std. */
export function runMetrics(r: RunResult): Record<string, number> {
  const m: Record<string, number> = {
    testAccuracy: r.test.accuracy,
    testMacroF1: r.test.macroF1,
    testBranchMeanAccuracy: meanStd(r.test.branchAccuracy).mean,
    holdoutAccuracy: r.holdout.accuracy,
    trainSeconds: r.trainSeconds,
    cpuSeconds: r.cpuSeconds,
    imagesPerSecond: r.imagesPerSecond,
  };
  if (r.test.attentionDistance !== undefined) m.attentionDistance = r.test.attentionDistance;
  if (r.test.disagreement !== undefined) m.disagreement = r.test.disagreement;
  if (r.test.tieRate !== undefined) m.tieRate = r.test.tieRate;
  if (r.test.rules) {
    m.testVoteProbTiesAccuracy = r.test.rules.voteProbTies.accuracy;
    m.testSoftAccuracy = r.test.rules.soft.accuracy;
    m.testSoftMacroF1 = r.test.rules.soft.macroF1;
  }
  for (const k of ['testFerPlus', 'ckplus', 'jaffe'] as const) {
    const s = r[k];
    if (s) {
      m[`${k}Accuracy`] = s.accuracy;
      m[`${k}MacroF1`] = s.macroF1;
    }
  }
  return m;
}

export function summarise(runs: RunResult[]): VariantSummary[] {
  const variants = [...new Set(runs.map((r) => r.variant))];
  return variants.map((variant) => {
    const rs = runs.filter((r) => r.variant === variant).map(runMetrics);
    const keys = Object.keys(rs[0]).filter((k) => rs.every((m) => m[k] !== undefined));
    const mean: Record<string, number> = {};
    const std: Record<string, number> = {};
    for (const k of keys) {
      const s = meanStd(rs.map((m) => m[k]));
      mean[k] = s.mean;
      std[k] = s.std;
    }
    return { variant, runs: rs.length, mean, std };
  });
}

const pm = (s: VariantSummary, k: string, scale = 100, digits = 1) =>
  s.mean[k] === undefined
    ? '–'
    : `${(s.mean[k] * scale).toFixed(digits)} ± ${((s.std[k] ?? 0) * scale).toFixed(digits)}`;

/** The report as a markdown table (one row per variant, mean ± std over seeds) plus the peer. */
export function markdownTable(rep: Pick<RealFacesReport, 'summary' | 'peer' | 'majorityRate'>, who = 'ours'): string {
  const head =
    '| model | seeds | PrivateTest acc. % (vote, faithful) | PrivateTest vote, prob. ties % | PrivateTest soft (mean prob.) % | macro-F1 % | FER+ labels acc. % | CK+48 acc. % | JAFFE acc. % | branch mean acc. % | attention distance | disagreement % | train s | CPU s | img/s |';
  const lines = [head, '|' + ' --- |'.repeat(15)];
  for (const s of rep.summary) {
    lines.push(
      `| ${who}, \`${s.variant}\` | ${s.runs} | ${pm(s, 'testAccuracy')} | ${pm(s, 'testVoteProbTiesAccuracy')} | ${pm(s, 'testSoftAccuracy')} | ${pm(s, 'testMacroF1')} | ${pm(s, 'testFerPlusAccuracy')} | ${pm(s, 'ckplusAccuracy')} | ${pm(s, 'jaffeAccuracy')} | ${pm(s, 'testBranchMeanAccuracy')} | ${pm(s, 'attentionDistance', 1, 3)} | ${pm(s, 'disagreement')} | ${pm(s, 'trainSeconds', 1, 0)} | ${pm(s, 'cpuSeconds', 1, 0)} | ${pm(s, 'imagesPerSecond', 1, 1)} |`,
    );
  }
  if (rep.peer) {
    const p = rep.peer;
    const f = (x?: { accuracy: number }) => (x ? (100 * x.accuracy).toFixed(1) : '–');
    lines.push(
      `| face-api.js expression net (peer) | – | ${f(p.test)} | – | – | ${p.test ? (100 * p.test.macroF1).toFixed(1) : '–'} | ${f(p.testFerPlus)} | ${f(p.ckplus)} | ${f(p.jaffe)} | – | – | – | – | – | – |`,
    );
  }
  lines.push(
    '',
    `Majority-class rate on PrivateTest (FER2013 labels): ${pct(rep.majorityRate)}. Ensemble rules: README, "Ensemble rules".`,
  );
  return lines.join('\n');
}

async function writePlots(dir: string, variant: string, runs: RunResult[]): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const series: Series[] = [];
  runs.forEach((r) => {
    series.push({ label: `seed ${r.seed} hold-out acc.`, ys: r.curves.holdoutAccuracy });
  });
  const markers = runs[0].curves.stageStarts.slice(1).map((x, i) => ({ x, label: `branch ${i + 2}` }));
  await writeSvgAndPng(
    path.join(dir, `${variant}-holdout-accuracy`),
    lineChartSvg(series, {
      title: `Hold-out accuracy per epoch ('${variant}', batch statistics)`,
      xLabel: 'epoch',
      yLabel: 'accuracy',
      markers,
    }),
  );
  await writeSvgAndPng(
    path.join(dir, `${variant}-train-loss`),
    lineChartSvg(
      runs.map((r) => ({ label: `seed ${r.seed}`, ys: r.curves.trainLoss })),
      { title: `Training loss per epoch ('${variant}')`, xLabel: 'epoch', yLabel: 'loss', markers },
    ),
  );
  // Confusion matrix summed over seeds (PrivateTest, FER2013 labels).
  const sum = runs[0].test.confusion.map((row, i) =>
    row.map((_, j) => runs.reduce((a, r) => a + r.test.confusion[i][j], 0)),
  );
  await writeSvgAndPng(
    path.join(dir, `${variant}-confusion-test`),
    confusionMatrixSvg(sum, BASIC7_LABELS, `PrivateTest confusion ('${variant}', ${runs.length} seed(s) summed)`),
  );
}

/** The faces one experiment trains and is scored on, rebuilt from `splits.json` and the settings alone. */
export interface RealFacesSets {
  /** Training faces (`trainCap` per class at most). */
  train: SplitItem[];
  holdout: SplitItem[];
  /** `testFraction` of each class of PrivateTest, CK+48 and JAFFE. */
  test: SplitItem[];
  ckplus: SplitItem[];
  jaffe: SplitItem[];
  /** Per `test` face: its FER+ majority label (BASIC7 index) and whether it has one; null without FER+ labels. */
  ferPlus: { truth: number[]; keep: boolean[] } | null;
}

export function realFacesSets(
  splits: RealFacesSplits,
  o: Pick<RealFacesOptions, 'trainCap' | 'testFraction'>,
): RealFacesSets {
  const part = (items: SplitItem[]) => stratifiedPart(items, o.testFraction);
  const test = part(splits.test);
  const fpLabel = new Map(splits.testFerPlus.map((it) => [it.file, BASIC7_LABELS.indexOf(it.label)]));
  return {
    train: stratifiedPart(splits.train, 1, o.trainCap),
    holdout: splits.holdout,
    test,
    ckplus: part(splits.ckplus),
    jaffe: part(splits.jaffe),
    ferPlus: fpLabel.size
      ? { truth: test.map((it) => fpLabel.get(it.file) ?? -1), keep: test.map((it) => fpLabel.has(it.file)) }
      : null,
  };
}

/** The evaluation pipelines of `sets` (unaugmented); the zero-shot sets are null when absent. */
export interface RealFacesEvalData {
  test: FerDataset;
  ckplus: FerDataset | null;
  jaffe: FerDataset | null;
  holdout: FerDataset;
}

export function evaluationDatasets(
  sets: RealFacesSets,
  ds: (name: string, items: SplitItem[]) => FerDataset,
): Omit<RealFacesEvalData, 'holdout'> {
  return {
    test: ds('fer2013-private', sets.test),
    ckplus: sets.ckplus.length ? ds('ckplus48', sets.ckplus) : null,
    jaffe: sets.jaffe.length ? ds('jaffe', sets.jaffe) : null,
  };
}

/** Precise BN as the experiment applies it after training (seeded by the run's seed; no-op at 0 batches). */
export async function preciseBn(
  model: EsrEnsemble,
  trainPlain: FerDataset,
  o: Pick<RealFacesOptions, 'bnBatches' | 'batch'>,
  seed: number,
): Promise<void> {
  if (o.bnBatches > 0)
    await recalibrateBatchNorm(model, trainPlain, { batches: o.bnBatches, batchSize: o.batch, seed });
}

export type ScoredSplit = 'test' | 'testFerPlus' | 'ckplus' | 'jaffe' | 'holdout';

/** Every evaluation of a run, in inference mode; one PrivateTest pass serves both label sets (same JPEGs). */
export async function scoreRealFaces(
  model: EsrEnsemble,
  data: RealFacesEvalData,
  ferPlus: RealFacesSets['ferPlus'],
  tta: Tta = 'none',
): Promise<Partial<Record<ScoredSplit, SplitScore>>> {
  const scores: Partial<Record<ScoredSplit, SplitScore>> = {};
  const pb = (d: FerDataset) => predictBranches(model, d, 32, { tta });
  const p = await pb(data.test);
  scores.test = scoreOf(p);
  if (ferPlus && p.truth.length === ferPlus.truth.length) scores.testFerPlus = scoreOf(p, ferPlus.truth, ferPlus.keep);
  for (const k of ['ckplus', 'jaffe'] as const) {
    const d = data[k];
    if (d) scores[k] = scoreOf(await pb(d));
  }
  scores.holdout = scoreOf(await pb(data.holdout));
  return scores;
}

export interface RealFacesHooks {
  log?: (msg: string) => void;
  onEvent?: (e: TrainEvent) => void;
  /** Called with each finished run (e.g. to print it). */
  onRun?: (r: RunResult) => void;
  backend?: string;
}

/** Runs the whole experiment; writes `<out>/splits.json`, `report.json`, `report.md`, plots and one folder per run. */
export async function runRealFaces(o: RealFacesOptions, hooks: RealFacesHooks = {}): Promise<RealFacesReport> {
  const t0 = Date.now();
  const log = hooks.log ?? (() => {});
  for (const v of o.variants) {
    if (!['none', 'reference', 'dpp'].includes(v))
      throw new FerInputError(`Expected diversity variants among none, reference, dpp, but got '${v}'.`);
  }
  if (!o.seeds.length || (!o.variants.length && !o.peer))
    throw new FerInputError(
      'Expected at least one variant and one seed (or only the peer: --variants "" with the peer on).',
    );
  const out = path.resolve(o.out);
  const splits = await buildRealFacesSplits(o.data, { holdoutFraction: o.holdoutFraction });
  await writeSplits(path.join(out, 'splits.json'), splits);
  const m = splits.ferPlusMatch;
  log(
    `data: train ${splits.train.length} PublicTest faces (hold-out ${splits.holdout.length} for selection), test ${splits.test.length} PrivateTest faces` +
      (m
        ? `; FER+: ${m.matched}/${m.ferplusRows} label rows matched to PrivateTest JPEGs by pixels (RMSE ≤ ${m.rmseMax.toFixed(2)}), ${m.kept} with a 7-class majority`
        : '; FER+ labels absent') +
      `; zero-shot CK+48 ${splits.ckplus.length}, JAFFE ${splits.jaffe.length}.`,
  );
  const ds = (name: string, items: SplitItem[], augment = false) =>
    splitDataset(o.data, name, items, { imageSize: o.imageSize, augment, workers: o.workers });
  const sets = realFacesSets(splits, o);
  const trainItems = sets.train;
  const testItems = sets.test;
  const tests = evaluationDatasets(sets, ds);
  const testCounts = new Map<string, number>();
  for (const it of testItems) testCounts.set(it.label, (testCounts.get(it.label) ?? 0) + 1);
  const majorityRate = Math.max(...testCounts.values()) / testItems.length;
  const base = o.pretrained ? await readUpstreamBase(o.data) : null;
  let baseLoad: RealFacesReport['baseLoad'] = null;
  const plan = realFacesPlan(o);
  const runs: RunResult[] = [];
  const settings = { ...o, trainCap: Number.isFinite(o.trainCap) ? o.trainCap : null, backend: hooks.backend ?? '' };
  const report = (): RealFacesReport => ({
    settings,
    splits: { counts: splits.counts, ferPlusMatch: splits.ferPlusMatch },
    baseLoad,
    majorityRate,
    runs,
    summary: runs.length ? summarise(runs) : [],
    peer,
    seconds: (Date.now() - t0) / 1000,
  });
  let peer: PeerResult | undefined;
  if (o.peer) {
    log("peer: face-api.js's expression network on the same test faces ...");
    peer = await evaluatePeer(
      o.data,
      { test: testItems, ckplus: sets.ckplus, jaffe: sets.jaffe },
      new Map(splits.testFerPlus.map((it) => [it.file, it.label])),
    );
    log(`peer: PrivateTest ${pct(peer.test?.accuracy ?? NaN)} (${peer.seconds.toFixed(0)} s)`);
  }

  for (const variant of o.variants) {
    for (const seed of o.seeds) {
      const runDir = path.join(out, 'runs', `${variant}-seed${seed}`);
      await fs.rm(runDir, { recursive: true, force: true });
      const r0 = Date.now();
      const c0 = process.cpuUsage();
      const train = ds('fer2013-public-train', trainItems, true);
      const holdout = ds('fer2013-public-holdout', splits.holdout);
      log(`run: diversity '${variant}', seed ${seed} (${trainItems.length} training faces, ${o.imageSize} px) ...`);
      const res = await trainEsr({
        plan,
        train,
        validation: holdout,
        diversity: variant,
        outDir: runDir,
        seed,
        microBatch: o.microBatch,
        evaluateWithBatchStatistics: true,
        plots: false,
        onEvent: hooks.onEvent,
        createModel: () => {
          const { esr, report: rep } = pretrainedEsr(base, o.imageSize, seed);
          if (rep && !baseLoad)
            baseLoad = { loaded: rep.loaded.length, missing: rep.missing, unexpected: rep.unexpected };
          return esr;
        },
      });
      const trainSeconds = (Date.now() - r0) / 1000;
      const model = res.model;
      try {
        await preciseBn(model, ds('fer2013-public-train-plain', trainItems), o, seed);
        // The trainer saved the model before precise BN: save the evaluated one, so `fer evaluate` on it agrees.
        await replaceDirAtomic(path.join(runDir, 'model'), (dir) => model.save(fileHandler(dir)).then(() => undefined));
        const scores = await scoreRealFaces(model, { ...tests, holdout }, sets.ferPlus, o.tta);
        const cpu = process.cpuUsage(c0);
        const epochs = res.history.epochs;
        const stageStarts: number[] = [];
        epochs.forEach((e, i) => {
          if (e.epoch === 0) stageStarts.push(i);
        });
        const trainImages = plan.stages.reduce((n, s) => n + s.epochs, 0) * trainItems.length;
        const run: RunResult = {
          variant,
          seed,
          test: scores.test!,
          testFerPlus: scores.testFerPlus,
          ckplus: scores.ckplus,
          jaffe: scores.jaffe,
          holdout: scores.holdout!,
          selection: plan.stages.map((s) =>
            Math.max(...epochs.filter((e) => e.stage === s.stage).map((e) => e.valEnsembleAccuracy)),
          ),
          trainSeconds,
          totalSeconds: (Date.now() - r0) / 1000,
          cpuSeconds: (cpu.user + cpu.system) / 1e6,
          trainImages,
          imagesPerSecond: trainImages / trainSeconds,
          curves: {
            trainLoss: epochs.map((e) => e.trainLoss),
            holdoutAccuracy: epochs.map((e) => e.valEnsembleAccuracy),
            stageStarts,
          },
        };
        runs.push(run);
        hooks.onRun?.(run);
        log(
          `run: '${variant}' seed ${seed}: PrivateTest ${pct(run.test.accuracy)} (branches ${run.test.branchAccuracy.map(pct).join(' / ')}; ` +
            `vote with prob. ties ${pct(run.test.rules?.voteProbTies.accuracy ?? NaN)}, soft ${pct(run.test.rules?.soft.accuracy ?? NaN)}), ` +
            `FER+ ${run.testFerPlus ? pct(run.testFerPlus.accuracy) : '–'}, CK+ ${run.ckplus ? pct(run.ckplus.accuracy) : '–'}, JAFFE ${run.jaffe ? pct(run.jaffe.accuracy) : '–'}; ` +
            `${run.trainSeconds.toFixed(0)} s training, ${run.cpuSeconds.toFixed(0)} s CPU, ${run.imagesPerSecond.toFixed(1)} img/s`,
        );
      } finally {
        model.dispose();
      }
      await writeFileAtomic(path.join(out, 'report.json'), JSON.stringify(report(), null, 1) + '\n');
    }
  }
  const rep = report();
  for (const v of o.variants)
    await writePlots(
      path.join(out, 'plots'),
      v,
      runs.filter((r) => r.variant === v),
    );
  await writeFileAtomic(path.join(out, 'report.json'), JSON.stringify(rep, null, 1) + '\n');
  await writeFileAtomic(path.join(out, 'report.md'), markdownTable(rep) + '\n');
  return rep;
}
