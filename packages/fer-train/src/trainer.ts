import * as path from 'node:path';
import { existsSync, promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic } from 'fer-core/node';
import {
  FerInputError,
  Rng,
  assertPositiveInt,
  type Batch,
  type FerDataset,
  type FerModel,
  type RngState,
} from 'fer-core';
import { evaluate, type EvalResult, type EvaluateOptions } from './evaluate';
import { finalEval, historyCsv, type EpochRecord, type History } from './history';
import {
  checkpointOptimizerState,
  loadCheckpoint,
  restoreVariables,
  saveCheckpoint,
  type TrainingPosition,
} from './io/checkpoint';
import type { LossFn } from './loss-types';
import { Sgd, type SgdState } from './optim/sgd';
import { confusionMatrixSvg, lineChartSvg, type Series } from './plots/svg';
import { writeSvgAndPng } from './plots/render';
import { learningRatesAt, type StagePlan, type TrainingPlan } from './schedule/plans';
import { DataParallelStep } from './parallel/data-parallel';
import { replaceDirAtomic } from './io/atomic-dir';
import { RunLock, cleanRunFolder, datasetFingerprint, prepareRunFolder } from './io/run-folder';
import { DivergenceError, checkLoss, checkWeights, type DivergenceOptions, type LossLevel } from './guards';
import type { ComputeBackend } from './parallel/task';
import { trainStep } from './step';
import { stateVariables } from './state';

export { stateVariables };

/** How the trainer builds, grows and saves a model. */
export interface ModelAdapter<M extends FerModel = FerModel> {
  /** The model as it is at the start of stage 1 (fresh or pretrained). The trainer owns and returns it. */
  create(): Promise<M> | M;
  /** Adds one fresh branch, initialised deterministically from `seed` (ESR growth). */
  addBranch?(model: M, seed: number): void;
  /** Writes the final (best) model in its package's format. */
  save?(model: M, dir: string): Promise<void>;
}

/**
 * A fresh optimizer for a stage (zero momentum, as the reference rebuilds it at every stage change): one SGD group
 * per model variable group, at the stage's base rate for that group (`all` matches any group).
 */
export function stageOptimizer(model: FerModel, stage: StagePlan): Sgd {
  const groups = model.variableGroups().map((g) => {
    const lr = stage.baseLrs[g.name] ?? stage.baseLrs.all;
    if (lr === undefined) {
      throw new FerInputError(
        `The plan for stage ${stage.stage} has no learning rate for variable group '${g.name}'. Groups in the plan: ${Object.keys(stage.baseLrs).join(', ')}.`,
      );
    }
    return { name: g.name, variables: g.variables, lr, momentum: stage.momentum, weightDecay: stage.weightDecay };
  });
  return new Sgd(groups);
}

export type TrainEvent =
  | { type: 'stage'; stage: StagePlan; stages: number }
  | { type: 'epoch'; stage: number; epoch: number; epochs: number; steps: number; lrs: Record<string, number> }
  | {
      type: 'step';
      stage: number;
      epoch: number;
      step: number;
      steps: number;
      loss: number;
      accuracy: number;
      terms: Record<string, number>;
    }
  | { type: 'validate'; stage: number; epoch: number; done: number; total: number }
  | { type: 'epoch-end'; record: EpochRecord }
  | { type: 'checkpoint'; kind: 'last' | 'best'; file: string }
  | { type: 'final'; split: 'validation' | 'test'; result: EvalResult }
  | { type: 'resumed'; position: TrainingPosition }
  /** Something the user should know that does not stop the run (a lock taken over, a batch dropped, ...). */
  | { type: 'notice'; message: string }
  | { type: 'stopped'; reason: string; position: TrainingPosition };

export interface TrainerOptions<M extends FerModel = FerModel> {
  plan: TrainingPlan;
  model: ModelAdapter<M>;
  /**
   * The training set of a stage; called at each stage start with a stage seed (fresh capped subsets are drawn here).
   */
  trainData(stage: StagePlan, seed: number): FerDataset | Promise<FerDataset>;
  /** Model-selection split. */
  validation: FerDataset;
  /** Final evaluation split, when the dataset has one. */
  test?: FerDataset;
  loss(stage: StagePlan): LossFn;
  evaluation(stage: StagePlan): Omit<EvaluateOptions, 'onBatch'>;
  outDir: string;
  seed?: number;
  /** Micro-batch size for gradient accumulation (default: the plan's batch size). */
  microBatch?: number;
  /**
   * Worker threads that compute each step's gradient data-parallel (fer-parallel; each its own backend and heap).
   * Default 1: the step runs in this thread. With N ≥ 2 the batch is split into N equal shards (micro-batched by
   * `microBatch`), the gradients summed weighted by shard share and applied by this trainer's SGD; weights equal the
   * single-process run with the same micro-batches up to float32 summation order; BN running statistics are the
   * replicas' weighted mean (see `DataParallelStep`). Needs an ESR or MA-Net model and a `lossFromSpec` loss.
   */
  computeWorkers?: number;
  /** The compute workers' backend (default: this thread's when 'native', 'wasm' or 'cpu', else 'wasm'). */
  computeBackend?: ComputeBackend;
  /** Also checkpoint every N optimizer steps mid-epoch (default: only at epoch ends and every 10 minutes). */
  checkpointEverySteps?: number;
  /**
   * Continue from `<outDir>/checkpoints/last.safetensors`. Refused when the folder's `run.json` records different
   * exact options (the error names them) or, with `true`, when the folder holds no run; `'auto'` then starts one
   * (scripts that are simply re-run after a crash).
   */
  resume?: boolean | 'auto';
  /** Replace the run already in `outDir` (its outputs are deleted first). Without it, such a folder is refused. */
  overwrite?: boolean;
  /**
   * The folder lock when the caller holds it beyond `run()` (e.g. for a later re-save of the model); by default
   * `run()` takes `<outDir>/.lock` itself and releases it when it returns or throws.
   */
  lock?: RunLock;
  /** The set `trainData` draws from, fingerprinted into `run.json` (a different data set refuses `resume`). */
  trainSet?: FerDataset;
  /** The caller's options recorded in `run.json`: `exact` ones must be unchanged on resume, `other` may change. */
  manifest?: { exact?: Record<string, unknown>; other?: Record<string, unknown> };
  /** Divergence checks of the loss and the weights (`false`: off; see `DivergenceOptions` for the defaults). */
  divergence?: DivergenceOptions | false;
  /** Stop after this many (≥ 1) optimizer steps in this process (after checkpointing), as if killed. 0 is refused. */
  maxSteps?: number;
  onEvent?: (e: TrainEvent) => void;
  /** Write SVG/PNG plots after each epoch (default true). */
  plots?: boolean;
  /** Class names for the confusion matrix. */
  classNames?: readonly string[];
}

export interface TrainResult<M extends FerModel = FerModel> {
  /** The final stage's best snapshot, loaded. Owned by the caller. */
  model: M;
  history: History;
  /** Final evaluations: validation (always) and test (when given). */
  validation?: EvalResult;
  test?: EvalResult;
  /** True when `maxSteps` stopped the run early. */
  stopped: boolean;
  files: { checkpoints: string; history: string; plots: string; model?: string };
}

interface EpochAccumulator {
  steps: number;
  lossSum: number;
  termSums: Record<string, number>;
  correct: number[];
  count: number;
  seconds: number;
}

interface Extra {
  seed: number;
  rng: RngState;
  stageSeed: number;
  bestMetric: number | null;
  epochAcc: EpochAccumulator;
  ensembleSize: number;
  script: string;
  lossLevel?: LossLevel;
}

/** Everything `run()` carries from step to step (the checkpointed part is stored in `last.safetensors`). */
interface RunState<M extends FerModel> {
  seed: number;
  model: M;
  rng: Rng;
  pos: TrainingPosition;
  acc: EpochAccumulator;
  bestMetric: number | null;
  stageSeed: number;
  /** False while resuming inside a stage: its start (reload best, growth, stage seed) already happened. */
  stageFresh: boolean;
  opt?: Sgd;
  resumedOpt?: SgdState;
  parallel?: DataParallelStep;
  /** Optimizer steps in this process (for `maxSteps`). */
  processSteps: number;
  lastSave: number;
  stopped: boolean;
  /** Running level of the step loss in this stage (divergence rule). */
  lossLevel: LossLevel;
  /** The newest checkpoint written (each passed the weight check first). */
  lastGood?: { file: string; position: TrainingPosition };
  /** A size-1 batch was dropped (noticed once). */
  droppedSingle: boolean;
}

/** What the steps of one stage share. */
interface StageContext {
  stage: StagePlan;
  sgd: Sgd;
  train: FerDataset;
  loss: LossFn;
  stepsPerEpoch: number;
}

const emptyAcc = (): EpochAccumulator => ({ steps: 0, lossSum: 0, termSums: {}, correct: [], count: 0, seconds: 0 });

/**
 * Runs a `TrainingPlan` stage by stage with PyTorch-faithful SGD, the plan's StepLR timing, validation after every
 * epoch (best snapshot per stage, ties per the plan's rule), reload-best before each new stage, atomic checkpoints
 * (`last` and per-stage `best`) that hold weights, optimizer state, position, RNG state and history, and exact
 * resume: a resumed run ends with the same weights as an uninterrupted one with the same seed.
 */
export class Trainer<M extends FerModel = FerModel> {
  readonly dirs: { checkpoints: string; plots: string };
  private history: History;

  constructor(private readonly o: TrainerOptions<M>) {
    this.dirs = { checkpoints: path.join(o.outDir, 'checkpoints'), plots: path.join(o.outDir, 'plots') };
    this.history = { script: o.plan.script, epochs: [] };
  }

  private emit(e: TrainEvent): void {
    this.o.onEvent?.(e);
  }

  private lastFile(): string {
    return path.join(this.dirs.checkpoints, 'last.safetensors');
  }

  private bestFile(stage: number): string {
    return path.join(this.dirs.checkpoints, `stage-${stage}-best.safetensors`);
  }

  private async loadWeights(model: M, file: string): Promise<void> {
    const ck = await loadCheckpoint(file);
    restoreVariables(
      stateVariables(model),
      ck.values,
      ck.meta.variables.map((v) => v.name),
    );
  }

  private makeOptimizer(model: M, stage: StagePlan): Sgd {
    return stageOptimizer(model, stage);
  }

  private ensembleSize(model: M): number {
    return model.numBranches;
  }

  /** Runs (or resumes) the whole plan: stage by stage, then the final evaluation and the saved model. */
  async run(): Promise<TrainResult<M>> {
    // Options are checked before the folder is touched.
    assertPositiveInt('computeWorkers', this.o.computeWorkers ?? 1);
    if (this.o.maxSteps !== undefined) assertPositiveInt('maxSteps', this.o.maxSteps);
    const lock = this.o.lock ?? (await RunLock.acquire(this.o.outDir, (m) => this.notice(m)));
    try {
      await this.prepareFolder();
      return await this.runLocked();
    } finally {
      if (!this.o.lock) await lock.release();
    }
  }

  private notice(message: string): void {
    this.emit({ type: 'notice', message });
  }

  /** Removes temporary files of killed writes, then checks the folder against this run and writes `run.json`. */
  private async prepareFolder(): Promise<void> {
    const { restored, removed } = await cleanRunFolder(this.o.outDir);
    restored.forEach((d) => this.notice(`restored ${d}: a kill had interrupted its replacement.`));
    if (removed.length > 0)
      this.notice(`removed ${removed.length} temporary file(s) left by an interrupted run in ${this.o.outDir}.`);
    const data: Record<string, unknown> = { validation: datasetFingerprint(this.o.validation) };
    if (this.o.trainSet) data.train = datasetFingerprint(this.o.trainSet);
    if (this.o.test) data.test = datasetFingerprint(this.o.test);
    await prepareRunFolder(
      this.o.outDir,
      {
        script: this.o.plan.script,
        exact: {
          plan: this.o.plan,
          seed: this.o.seed ?? 0,
          microBatch: this.o.microBatch ?? null,
          computeWorkers: this.o.computeWorkers ?? 1,
          data,
          ...this.o.manifest?.exact,
        },
        other: {
          checkpointEverySteps: this.o.checkpointEverySteps ?? null,
          divergence: this.o.divergence ?? {},
          ...this.o.manifest?.other,
        },
      },
      {
        resume: this.o.resume,
        overwrite: this.o.overwrite,
        lastCheckpoint: this.lastFile(),
        onNotice: (m) => this.notice(m),
      },
    );
  }

  private async runLocked(): Promise<TrainResult<M>> {
    const s = await this.start();
    const { stages } = this.o.plan;
    try {
      for (let si = s.pos.stage - 1; si < stages.length && !s.stopped; si++) await this.runStage(s, stages[si]);
    } catch (err) {
      // NonFiniteLossError: nothing was written after the last good checkpoint.
      s.opt?.dispose();
      s.model.dispose();
      throw err;
    } finally {
      await s.parallel?.dispose();
    }
    s.opt?.dispose();
    return this.finish(s);
  }

  /** A fresh run state, or the one stored in `last.safetensors` when resuming. */
  private async start(): Promise<RunState<M>> {
    const { plan } = this.o;
    const seed = this.o.seed ?? 0;
    const s: RunState<M> = {
      seed,
      model: await this.o.model.create(),
      rng: new Rng(seed),
      pos: { stage: 1, epoch: 0, step: 0, globalStep: 0 },
      acc: emptyAcc(),
      bestMetric: null,
      stageSeed: 0,
      stageFresh: true,
      processSteps: 0,
      lastSave: Date.now(),
      stopped: false,
      lossLevel: { value: 0, steps: 0 },
      droppedSingle: false,
    };
    if (!this.o.resume || !existsSync(this.lastFile())) return s;
    const ck = await loadCheckpoint<History>(this.lastFile());
    const extra = ck.meta.extra as unknown as Extra;
    if (extra.script !== plan.script)
      throw new FerInputError(
        `The checkpoint in ${this.o.outDir} is from '${extra.script}', not '${plan.script}'.`,
        'Use another --out folder or the same command.',
      );
    s.pos = ck.meta.position;
    this.history = ck.meta.history;
    s.acc = extra.epochAcc;
    s.bestMetric = extra.bestMetric;
    s.stageSeed = extra.stageSeed;
    s.rng.setState(extra.rng);
    s.lossLevel = extra.lossLevel ?? { value: 0, steps: 0 };
    s.lastGood = { file: this.lastFile(), position: s.pos };
    while (this.ensembleSize(s.model) < extra.ensembleSize && this.o.model.addBranch)
      this.o.model.addBranch(s.model, 0);
    restoreVariables(
      stateVariables(s.model),
      ck.values,
      ck.meta.variables.map((v) => v.name),
    );
    s.resumedOpt = checkpointOptimizerState(ck);
    s.stageFresh = s.pos.epoch === 0 && s.pos.step === 0 && s.resumedOpt === undefined;
    this.emit({ type: 'resumed', position: s.pos });
    return s;
  }

  /** One stage: enter it (reload best, grow) unless resuming inside it, then its remaining epochs. */
  private async runStage(s: RunState<M>, stage: StagePlan): Promise<void> {
    if (s.stageFresh) await this.enterStage(s, stage);
    const ctx = await this.prepareStage(s, stage);
    for (let e = s.pos.epoch; e < stage.epochs && !s.stopped; e++) await this.runEpoch(s, ctx, e);
    s.stageFresh = true;
  }

  /** Stage start: the previous stage's best weights, a new stage seed, a new branch when the plan grows. */
  private async enterStage(s: RunState<M>, stage: StagePlan): Promise<void> {
    if (stage.reloadBest && existsSync(this.bestFile(stage.stage - 1)))
      await this.loadWeights(s.model, this.bestFile(stage.stage - 1));
    s.stageSeed = s.rng.nextU32();
    if (stage.addBranch) {
      if (!this.o.model.addBranch)
        throw new Error(`Stage ${stage.stage} adds a branch but the model adapter has no addBranch().`);
      this.o.model.addBranch(s.model, s.stageSeed);
    }
    s.bestMetric = null;
    s.lossLevel = { value: 0, steps: 0 };
    s.pos = { stage: stage.stage, epoch: 0, step: 0, globalStep: s.pos.globalStep };
  }

  /** The stage's optimizer (restored on resume), training data, loss and data-parallel replicas. */
  private async prepareStage(s: RunState<M>, stage: StagePlan): Promise<StageContext> {
    s.opt?.dispose();
    const sgd = this.makeOptimizer(s.model, stage);
    s.opt = sgd;
    if (s.resumedOpt) {
      sgd.setState(s.resumedOpt);
      s.resumedOpt = undefined;
    }
    this.emit({ type: 'stage', stage, stages: this.o.plan.stages.length });
    const train = await this.o.trainData(stage, s.stageSeed);
    const loss = this.o.loss(stage);
    // Replicas are built per stage: growth changes the variables, and the stage's loss options change.
    await s.parallel?.dispose();
    const workers = this.o.computeWorkers ?? 1;
    s.parallel =
      workers > 1
        ? await DataParallelStep.create(s.model, loss, {
            workers,
            microBatch: this.o.microBatch,
            backend: this.o.computeBackend,
          })
        : undefined;
    const b = this.o.plan.batchSize;
    // A trailing batch of one image is dropped (see runEpoch).
    const stepsPerEpoch = Math.floor(train.size / b) + (train.size % b > 1 ? 1 : 0);
    return { stage, sgd, train, loss, stepsPerEpoch };
  }

  /** One epoch: its learning rates, the remaining steps, then validation and checkpoints (unless stopped). */
  private async runEpoch(s: RunState<M>, ctx: StageContext, e: number): Promise<void> {
    const { plan } = this.o;
    const { stage, sgd } = ctx;
    const lrs = learningRatesAt(plan, stage.stage, e);
    sgd.setLearningRates(Object.fromEntries(sgd.groups.map((g) => [g.name, lrs[g.name] ?? lrs.all])));
    this.emit({
      type: 'epoch',
      stage: stage.stage,
      epoch: e,
      epochs: stage.epochs,
      steps: ctx.stepsPerEpoch,
      lrs: sgd.learningRates(),
    });
    const skip = s.pos.epoch === e ? s.pos.step : 0;
    if (skip === 0) s.acc = emptyAcc();
    let i = 0;
    const t0 = Date.now() - s.acc.seconds * 1000;
    for await (const batch of ctx.train.batches({
      batchSize: plan.batchSize,
      shuffle: true,
      seed: s.stageSeed,
      epoch: e,
    })) {
      try {
        if (i++ < skip) continue;
        // Batch norm cannot normalise one image in training mode, so a batch of one (the trailing batch, or one
        // left by unreadable images) is dropped, like PyTorch's drop_last but only for that size.
        if (batch.images.shape[0] === 1 && plan.batchSize > 1) {
          if (!s.droppedSingle)
            this.notice(
              `dropped a training batch of 1 image in stage ${stage.stage}, epoch ${e + 1} (batch norm needs at least 2); such batches are always dropped.`,
            );
          s.droppedSingle = true;
          continue;
        }
        await this.runStep(s, ctx, batch, e, i, t0);
        if (s.stopped) return;
      } finally {
        tf.dispose([batch.images, batch.labels, ...(batch.soft ? [batch.soft] : [])]);
      }
    }
    s.acc.seconds = (Date.now() - t0) / 1000;
    await this.endEpoch(s, ctx, e);
  }

  /** One optimizer step on batch `i` (1-based) of epoch `e`, then the mid-epoch checkpoint and `maxSteps` stop. */
  private async runStep(s: RunState<M>, ctx: StageContext, batch: Batch, e: number, i: number, t0: number) {
    const { stage } = ctx;
    const r = s.parallel
      ? await s.parallel.step(ctx.sgd, batch)
      : await trainStep(s.model, ctx.sgd, batch, ctx.loss, { microBatch: this.o.microBatch });
    const acc = s.acc;
    acc.steps++;
    acc.lossSum += r.loss;
    for (const [k, v] of Object.entries(r.terms)) acc.termSums[k] = (acc.termSums[k] ?? 0) + v;
    acc.correct = acc.correct.length ? acc.correct.map((c, k) => c + r.correct[k]) : r.correct;
    acc.count += r.count;
    acc.seconds = (Date.now() - t0) / 1000;
    s.processSteps++;
    s.pos = { stage: stage.stage, epoch: e, step: i, globalStep: s.pos.globalStep + 1 };
    const div = this.o.divergence === false ? undefined : (this.o.divergence ?? {});
    if (div) {
      const why = checkLoss(s.lossLevel, r.loss, div.lossFactor);
      if (why) throw new DivergenceError(why, s.pos, s.lastGood);
      if (s.pos.globalStep % (div.weightCheckEvery ?? 10) === 0) await this.assertWeights(s);
    }
    this.emit({
      type: 'step',
      stage: stage.stage,
      epoch: e,
      step: i,
      steps: ctx.stepsPerEpoch,
      loss: acc.lossSum / acc.steps,
      accuracy: Math.max(...acc.correct) / acc.count,
      terms: r.terms,
    });
    const every = this.o.checkpointEverySteps;
    const limit = this.o.maxSteps !== undefined && s.processSteps >= this.o.maxSteps;
    if ((every && s.pos.globalStep % every === 0) || Date.now() - s.lastSave > 10 * 60_000 || limit)
      await this.saveLast(s, s.pos);
    if (limit && i < ctx.stepsPerEpoch) this.stop(s, s.pos);
  }

  /** Epoch end: validation, the history record, the stage's best snapshot, `last`, and the `maxSteps` stop. */
  private async endEpoch(s: RunState<M>, ctx: StageContext, e: number): Promise<void> {
    const { plan } = this.o;
    const { stage, sgd } = ctx;
    const acc = s.acc;
    const ev = await evaluate(s.model, this.o.validation, {
      ...this.o.evaluation(stage),
      batchSize: plan.evalBatchSize,
      onBatch: (done, total) => this.emit({ type: 'validate', stage: stage.stage, epoch: e, done, total }),
    });
    const metric = ev.ensemble.accuracy;
    const isBest = s.bestMetric === null || (plan.bestIsTie ? metric >= s.bestMetric : metric > s.bestMetric);
    const steps = Math.max(acc.steps, 1);
    const record: EpochRecord = {
      stage: stage.stage,
      epoch: e,
      lrs: sgd.learningRates(),
      steps: acc.steps,
      trainLoss: acc.lossSum / steps,
      trainTerms: Object.fromEntries(Object.entries(acc.termSums).map(([k, v]) => [k, v / steps])),
      trainAccuracy: acc.correct.map((c) => c / Math.max(acc.count, 1)),
      valLoss: ev.branches.map((b) => b.loss),
      valAccuracy: ev.branches.map((b) => b.accuracy),
      valEnsembleAccuracy: metric,
      valMacroF1: ev.ensemble.macroF1,
      valDiversity: ev.diversity,
      best: isBest,
      seconds: acc.seconds,
    };
    this.history.epochs.push(record);
    if (isBest) {
      s.bestMetric = metric;
      await this.assertWeights(s);
      await saveCheckpoint(this.bestFile(stage.stage), {
        variables: stateVariables(s.model),
        meta: { position: s.pos, history: this.history, extra: { metric, script: plan.script } },
      });
      this.emit({ type: 'checkpoint', kind: 'best', file: this.bestFile(stage.stage) });
    }
    s.acc = emptyAcc();
    const stageDone = e + 1 >= stage.epochs;
    const next: TrainingPosition = stageDone
      ? { stage: stage.stage + 1, epoch: 0, step: 0, globalStep: s.pos.globalStep }
      : { stage: stage.stage, epoch: e + 1, step: 0, globalStep: s.pos.globalStep };
    s.pos = next;
    await this.writeHistory(ev);
    this.emit({ type: 'epoch-end', record });
    // A checkpoint at a stage boundary carries no optimizer: the next stage builds a fresh one.
    if (stageDone) {
      sgd.dispose();
      s.opt = undefined;
    }
    await this.saveLast(s, next);
    const runDone = stageDone && stage.stage === plan.stages[plan.stages.length - 1].stage;
    if (this.o.maxSteps !== undefined && s.processSteps >= this.o.maxSteps && !runDone) this.stop(s, next);
  }

  private stop(s: RunState<M>, position: TrainingPosition): void {
    s.stopped = true;
    this.emit({ type: 'stopped', reason: `maxSteps ${this.o.maxSteps} reached`, position });
  }

  /** Throws `DivergenceError` when a weight is non-finite or exploded (before every checkpoint, so none is bad). */
  private async assertWeights(s: RunState<M>): Promise<void> {
    if (this.o.divergence === false) return;
    const why = await checkWeights(stateVariables(s.model), this.o.divergence?.maxWeight);
    if (why) throw new DivergenceError(why, s.pos, s.lastGood);
  }

  private async saveLast(s: RunState<M>, p: TrainingPosition): Promise<void> {
    await this.assertWeights(s);
    await saveCheckpoint(this.lastFile(), {
      variables: stateVariables(s.model),
      optimizer: s.opt ? await s.opt.getState() : undefined,
      meta: {
        position: p,
        history: this.history,
        extra: {
          seed: s.seed,
          rng: s.rng.getState(),
          stageSeed: s.stageSeed,
          bestMetric: s.bestMetric,
          epochAcc: s.acc,
          ensembleSize: this.ensembleSize(s.model),
          script: this.o.plan.script,
          lossLevel: s.lossLevel,
        } satisfies Extra as unknown as Record<string, unknown>,
      },
    });
    s.lastSave = Date.now();
    s.lastGood = { file: this.lastFile(), position: p };
    this.emit({ type: 'checkpoint', kind: 'last', file: this.lastFile() });
  }

  /** After the last stage: the final stage's best snapshot, final evaluations, history and the saved model. */
  private async finish(s: RunState<M>): Promise<TrainResult<M>> {
    const { plan } = this.o;
    const { model, stopped } = s;
    const files = {
      checkpoints: this.dirs.checkpoints,
      history: path.join(this.o.outDir, 'history.json'),
      plots: this.dirs.plots,
      model: undefined as string | undefined,
    };
    if (stopped) return { model, history: this.history, stopped, files };
    // Final: the last stage's best snapshot (the reference leaves the last epoch in memory, docs/method.md#defect-32).
    const last = plan.stages[plan.stages.length - 1];
    if (existsSync(this.bestFile(last.stage))) await this.loadWeights(model, this.bestFile(last.stage));
    const evalOpts = { ...this.o.evaluation(last), batchSize: plan.evalBatchSize };
    const validation = await evaluate(model, this.o.validation, evalOpts);
    this.emit({ type: 'final', split: 'validation', result: validation });
    this.history.final = [finalEval('validation', validation)];
    let test: EvalResult | undefined;
    if (this.o.test) {
      test = await evaluate(model, this.o.test, evalOpts);
      this.emit({ type: 'final', split: 'test', result: test });
      this.history.final.push(finalEval('test', test));
    }
    await this.writeHistory(test ?? validation);
    if (this.o.model.save) {
      const save = this.o.model.save;
      files.model = path.join(this.o.outDir, 'model');
      await replaceDirAtomic(files.model, (staging) => save(model, staging));
    }
    return { model, history: this.history, validation, test, stopped, files };
  }

  private async writeHistory(latest: EvalResult): Promise<void> {
    await writeFileAtomic(path.join(this.o.outDir, 'history.json'), JSON.stringify(this.history, null, 1));
    await writeFileAtomic(path.join(this.o.outDir, 'history.csv'), historyCsv(this.history));
    if (this.o.plots === false) return;
    await fs.mkdir(this.dirs.plots, { recursive: true });
    const ep = this.history.epochs;
    const xs = ep.map((_, i) => i + 1);
    const nb = Math.max(0, ...ep.map((e) => e.valAccuracy.length));
    const markers = ep.flatMap((e, i) =>
      i > 0 && e.stage !== ep[i - 1].stage ? [{ x: i + 0.5, label: `stage ${e.stage}` }] : [],
    );
    const per = (f: (e: EpochRecord) => number[], k: number) => ep.map((e) => f(e)[k] ?? null);
    const lossSeries: Series[] = [{ label: 'train (total)', xs, ys: ep.map((e) => e.trainLoss) }];
    for (let k = 0; k < nb; k++)
      lossSeries.push({ label: `val (${k + 1})`, xs, ys: per((e) => e.valLoss, k), dashed: true });
    const accSeries: Series[] = [{ label: 'val (ensemble)', xs, ys: ep.map((e) => e.valEnsembleAccuracy) }];
    for (let k = 0; k < nb; k++)
      accSeries.push({ label: `val (${k + 1})`, xs, ys: per((e) => e.valAccuracy, k), dashed: true });
    for (let k = 0; k < nb; k++) accSeries.push({ label: `train (${k + 1})`, xs, ys: per((e) => e.trainAccuracy, k) });
    await writeSvgAndPng(
      path.join(this.dirs.plots, 'loss'),
      lineChartSvg(lossSeries, { title: `${this.history.script}: loss`, xLabel: 'epoch', yLabel: 'loss', markers }),
    );
    await writeSvgAndPng(
      path.join(this.dirs.plots, 'accuracy'),
      lineChartSvg(accSeries, {
        title: `${this.history.script}: accuracy`,
        xLabel: 'epoch',
        yLabel: 'accuracy',
        yRange: [0, 1],
        markers,
      }),
    );
    const names = this.o.classNames ?? this.o.validation.labels;
    await writeSvgAndPng(
      path.join(this.dirs.plots, 'confusion'),
      confusionMatrixSvg(latest.ensemble.confusion, names, `${this.history.script}: confusion (validation, latest)`),
    );
  }
}
