import * as path from 'node:path';
import { existsSync, promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import {
  FerInputError,
  Rng,
  assertPositiveInt,
  writeFileAtomic,
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
import { Sgd } from './optim/sgd';
import { confusionMatrixSvg, lineChartSvg, type Series } from './plots/svg';
import { writeSvgAndPng } from './plots/render';
import { learningRatesAt, type StagePlan, type TrainingPlan } from './schedule/plans';
import { DataParallelStep } from './parallel/data-parallel';
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
  | { type: 'stopped'; reason: string; position: TrainingPosition };

export interface TrainerOptions<M extends FerModel = FerModel> {
  plan: TrainingPlan;
  model: ModelAdapter<M>;
  /** The training set of a stage; called at each stage start with a stage seed (fresh capped subsets are drawn here). */
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
  /** The compute workers' backend (default: this thread's when 'wasm' or 'cpu', else 'wasm'). */
  computeBackend?: ComputeBackend;
  /** Also checkpoint every N optimizer steps mid-epoch (default: only at epoch ends and every 10 minutes). */
  checkpointEverySteps?: number;
  /** Continue from `<outDir>/checkpoints/last.safetensors`. */
  resume?: boolean;
  /** Stop after this many optimizer steps in this process (after checkpointing), as if killed. */
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
    return (
      (model as unknown as { branchCount?: number }).branchCount ??
      model.variableGroups().filter((g) => g.name.startsWith('branch_')).length
    );
  }

  async run(): Promise<TrainResult<M>> {
    const { plan } = this.o;
    const seed = this.o.seed ?? 0;
    const rng = new Rng(seed);
    let pos: TrainingPosition = { stage: 1, epoch: 0, step: 0, globalStep: 0 };
    let acc = emptyAcc();
    let bestMetric: number | null = null;
    let stageSeed = 0;
    let stageFresh = true;
    let model = await this.o.model.create();
    let opt: Sgd | undefined;
    let resumedOpt: ReturnType<typeof checkpointOptimizerState>;

    if (this.o.resume && existsSync(this.lastFile())) {
      const ck = await loadCheckpoint<History>(this.lastFile());
      const extra = ck.meta.extra as unknown as Extra;
      if (extra.script !== plan.script)
        throw new FerInputError(
          `The checkpoint in ${this.o.outDir} is from '${extra.script}', not '${plan.script}'.`,
          'Use another --out folder or the same command.',
        );
      pos = ck.meta.position;
      this.history = ck.meta.history;
      acc = extra.epochAcc;
      bestMetric = extra.bestMetric;
      stageSeed = extra.stageSeed;
      rng.setState(extra.rng);
      while (this.ensembleSize(model) < extra.ensembleSize && this.o.model.addBranch) this.o.model.addBranch(model, 0);
      restoreVariables(
        stateVariables(model),
        ck.values,
        ck.meta.variables.map((v) => v.name),
      );
      resumedOpt = checkpointOptimizerState(ck);
      stageFresh = pos.epoch === 0 && pos.step === 0 && resumedOpt === undefined;
      this.emit({ type: 'resumed', position: pos });
    }

    const computeWorkers = this.o.computeWorkers ?? 1;
    assertPositiveInt('computeWorkers', computeWorkers);
    let parallel: DataParallelStep | undefined;
    let processSteps = 0;
    let lastSave = Date.now();
    let stopped = false;
    const saveLast = async (p: TrainingPosition) => {
      await saveCheckpoint(this.lastFile(), {
        variables: stateVariables(model),
        optimizer: opt ? await opt.getState() : undefined,
        meta: {
          position: p,
          history: this.history,
          extra: {
            seed,
            rng: rng.getState(),
            stageSeed,
            bestMetric,
            epochAcc: acc,
            ensembleSize: this.ensembleSize(model),
            script: plan.script,
          } satisfies Extra as unknown as Record<string, unknown>,
        },
      });
      lastSave = Date.now();
      this.emit({ type: 'checkpoint', kind: 'last', file: this.lastFile() });
    };

    try {
      outer: for (let si = pos.stage - 1; si < plan.stages.length; si++) {
        const stage = plan.stages[si];
        if (stageFresh) {
          if (stage.reloadBest && existsSync(this.bestFile(stage.stage - 1)))
            await this.loadWeights(model, this.bestFile(stage.stage - 1));
          stageSeed = rng.nextU32();
          if (stage.addBranch) {
            if (!this.o.model.addBranch)
              throw new Error(`Stage ${stage.stage} adds a branch but the model adapter has no addBranch().`);
            this.o.model.addBranch(model, stageSeed);
          }
          bestMetric = null;
          pos = { stage: stage.stage, epoch: 0, step: 0, globalStep: pos.globalStep };
        }
        opt?.dispose();
        const sgd = this.makeOptimizer(model, stage);
        opt = sgd;
        if (resumedOpt) {
          sgd.setState(resumedOpt);
          resumedOpt = undefined;
        }
        this.emit({ type: 'stage', stage, stages: plan.stages.length });
        const train = await this.o.trainData(stage, stageSeed);
        const loss = this.o.loss(stage);
        // Replicas are built per stage: growth changes the variables, and the stage's loss options change.
        await parallel?.dispose();
        parallel =
          computeWorkers > 1
            ? await DataParallelStep.create(model, loss, {
                workers: computeWorkers,
                microBatch: this.o.microBatch,
                backend: this.o.computeBackend,
              })
            : undefined;
        const stepsPerEpoch = Math.ceil(train.size / plan.batchSize);

        for (let e = pos.epoch; e < stage.epochs; e++) {
          const lrs = learningRatesAt(plan, stage.stage, e);
          sgd.setLearningRates(Object.fromEntries(sgd.groups.map((g) => [g.name, lrs[g.name] ?? lrs.all])));
          this.emit({
            type: 'epoch',
            stage: stage.stage,
            epoch: e,
            epochs: stage.epochs,
            steps: stepsPerEpoch,
            lrs: sgd.learningRates(),
          });
          const skip = pos.epoch === e ? pos.step : 0;
          if (skip === 0) acc = emptyAcc();
          let i = 0;
          const t0 = Date.now() - acc.seconds * 1000;
          for await (const batch of train.batches({
            batchSize: plan.batchSize,
            shuffle: true,
            seed: stageSeed,
            epoch: e,
          })) {
            try {
              if (i++ < skip) continue;
              const r = parallel
                ? await parallel.step(sgd, batch)
                : await trainStep(model, sgd, batch, loss, { microBatch: this.o.microBatch });
              acc.steps++;
              acc.lossSum += r.loss;
              for (const [k, v] of Object.entries(r.terms)) acc.termSums[k] = (acc.termSums[k] ?? 0) + v;
              acc.correct = acc.correct.length ? acc.correct.map((c, k) => c + r.correct[k]) : r.correct;
              acc.count += r.count;
              acc.seconds = (Date.now() - t0) / 1000;
              processSteps++;
              pos = { stage: stage.stage, epoch: e, step: i, globalStep: pos.globalStep + 1 };
              this.emit({
                type: 'step',
                stage: stage.stage,
                epoch: e,
                step: i,
                steps: stepsPerEpoch,
                loss: acc.lossSum / acc.steps,
                accuracy: Math.max(...acc.correct) / acc.count,
                terms: r.terms,
              });
              const every = this.o.checkpointEverySteps;
              const limit = this.o.maxSteps !== undefined && processSteps >= this.o.maxSteps;
              if ((every && pos.globalStep % every === 0) || Date.now() - lastSave > 10 * 60_000 || limit)
                await saveLast(pos);
              if (limit && i < stepsPerEpoch) {
                stopped = true;
                this.emit({ type: 'stopped', reason: `maxSteps ${this.o.maxSteps} reached`, position: pos });
                break outer;
              }
            } finally {
              tf.dispose([batch.images, batch.labels, ...(batch.soft ? [batch.soft] : [])]);
            }
          }
          acc.seconds = (Date.now() - t0) / 1000;
          const ev = await evaluate(model, this.o.validation, {
            ...this.o.evaluation(stage),
            batchSize: plan.evalBatchSize,
            onBatch: (done, total) => this.emit({ type: 'validate', stage: stage.stage, epoch: e, done, total }),
          });
          const metric = ev.ensemble.accuracy;
          const isBest = bestMetric === null || (plan.bestIsTie ? metric >= bestMetric : metric > bestMetric);
          const record: EpochRecord = {
            stage: stage.stage,
            epoch: e,
            lrs: sgd.learningRates(),
            steps: acc.steps,
            trainLoss: acc.lossSum / Math.max(acc.steps, 1),
            trainTerms: Object.fromEntries(
              Object.entries(acc.termSums).map(([k, v]) => [k, v / Math.max(acc.steps, 1)]),
            ),
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
            bestMetric = metric;
            await saveCheckpoint(this.bestFile(stage.stage), {
              variables: stateVariables(model),
              meta: { position: pos, history: this.history, extra: { metric, script: plan.script } },
            });
            this.emit({ type: 'checkpoint', kind: 'best', file: this.bestFile(stage.stage) });
          }
          acc = emptyAcc();
          const next: TrainingPosition =
            e + 1 < stage.epochs
              ? { stage: stage.stage, epoch: e + 1, step: 0, globalStep: pos.globalStep }
              : { stage: stage.stage + 1, epoch: 0, step: 0, globalStep: pos.globalStep };
          pos = next;
          await this.writeHistory(ev);
          this.emit({ type: 'epoch-end', record });
          const stageDone = e + 1 >= stage.epochs;
          // A checkpoint at a stage boundary carries no optimizer: the next stage builds a fresh one.
          if (stageDone) {
            sgd.dispose();
            opt = undefined;
          }
          await saveLast(next);
          if (
            this.o.maxSteps !== undefined &&
            processSteps >= this.o.maxSteps &&
            !(si === plan.stages.length - 1 && stageDone)
          ) {
            stopped = true;
            this.emit({ type: 'stopped', reason: `maxSteps ${this.o.maxSteps} reached`, position: next });
            break outer;
          }
          if (stageDone) break;
        }
        stageFresh = true;
      }
    } catch (err) {
      // NonFiniteLossError: nothing was written after the last good checkpoint.
      opt?.dispose();
      model.dispose();
      throw err;
    } finally {
      await parallel?.dispose();
    }
    opt?.dispose();

    const files = {
      checkpoints: this.dirs.checkpoints,
      history: path.join(this.o.outDir, 'history.json'),
      plots: this.dirs.plots,
      model: undefined as string | undefined,
    };
    if (stopped) {
      return { model, history: this.history, stopped, files };
    }
    // Final: the last stage's best snapshot (the reference leaves the last epoch in memory, spec §8 defect 32).
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
      files.model = path.join(this.o.outDir, 'model');
      await this.o.model.save(model, files.model);
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
