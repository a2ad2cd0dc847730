import * as path from 'node:path';
import { BASIC7_LABELS } from 'fer-core';
import { syntheticExpressions } from 'fer-datasets';
import type { EsrEnsemble } from 'fer-models-esr';
import { recalibrateBatchNorm } from '../../batch-norm-recalibration';
import { evaluate, type EvalResult } from '../../evaluate';
import { esrStageEvaluation, trainEsr } from '../../recipes/esr';
import { esrGrowthPlan, type TrainingPlan } from '../../schedule/plans';
import { Trainer } from '../../trainer';
import { replaceDirAtomic } from '../../io/atomic-dir';
import { RunLock } from '../../io/run-folder';
import { esrAdapter, esrStageLoss } from '../../recipes/esr';
import { createModel } from 'fer-models';
import { fileHandler } from 'fer-core/node';
import type { Output } from '../output';
import { describeEval } from './train';

export interface DemoOptions {
  out: string;
  imageSize: number;
  branches: number;
  trainSize: number;
  valSize: number;
  testSize: number;
  firstEpochs: number;
  laterEpochs: number;
  batch: number;
  seed: number;
  /** Run the `none` comparison. */
  compare: boolean;
  /** ESR training augmentation on the synthetic faces (off by default: a short demo learns faster without it). */
  augment: boolean;
  /** Multiplies every learning rate of the growth schedule (1 = the reference's 0.1 / 0.01). */
  lrScale: number;
  /**
   * Training batches over which every BN's running statistics are recomputed before the final evaluation
   * (`recalibrateBatchNorm`); 0 evaluates with batch statistics instead, as model selection during the run does.
   */
  bnBatches: number;
  workers?: number;
}

export const DEMO_DEFAULTS: DemoOptions = {
  out: 'runs/demo',
  imageSize: 64,
  branches: 3,
  trainSize: 350,
  valSize: 70,
  testSize: 140,
  firstEpochs: 4,
  laterEpochs: 1,
  batch: 16,
  seed: 1,
  compare: true,
  augment: false,
  lrScale: 0.1,
  bnBatches: 21,
};

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** A final evaluation of the demo: with recalibrated running statistics (when on) and with batch statistics. */
export interface DemoEval {
  /** The headline result: inference mode after `recalibrateBatchNorm`, or batch statistics when `bnBatches` is 0. */
  main: EvalResult;
  /** The same model evaluated with each test batch's own statistics (what model selection used). */
  batchStatistics: EvalResult;
  /** Inference mode after recalibration (absent when `bnBatches` is 0). */
  recalibrated?: EvalResult;
}

/**
 * The README's main job: grows a diversified ESR (the `esr_affectnet` schedule, shortened) on synthetic faces with
 * the corrected `dpp` diversity loss, evaluates per-branch and ensemble accuracy on held-out synthetic faces, then
 * repeats the last stage without the diversity term (same snapshot, seed and data) to show what the term does to
 * branch diversity. Model selection during the run uses batch statistics (cheap); before the final evaluation and
 * the saved model, every BN's running statistics are recomputed over `bnBatches` training batches.
 */
export async function runDemo(
  o: DemoOptions,
  out: Output,
): Promise<{ dpp: DemoEval; none?: DemoEval; seconds: number }> {
  const t0 = Date.now();
  const outDir = path.resolve(o.out);
  const lock = await RunLock.acquire(outDir, (m) => out.info(`note: ${m}`));
  try {
    return await demoLocked(o, out, outDir, lock, t0);
  } finally {
    await lock.release();
  }
}

async function demoLocked(
  o: DemoOptions,
  out: Output,
  outDir: string,
  lock: RunLock,
  t0: number,
): Promise<{ dpp: DemoEval; none?: DemoEval; seconds: number }> {
  const mk = (size: number, seed: number, augment: boolean) =>
    syntheticExpressions({ size, seed, imageSize: o.imageSize, augment, workers: o.workers });
  const train = mk(o.trainSize, o.seed * 3 + 1, o.augment);
  const validation = mk(o.valSize, o.seed * 3 + 2, false);
  const test = mk(o.testSize, o.seed * 3 + 3, false);
  const growth = esrGrowthPlan({
    branches: o.branches,
    firstEpochs: o.firstEpochs,
    laterEpochs: o.laterEpochs,
    batchSize: o.batch,
  });
  const scale = (lrs: Record<string, number>) =>
    Object.fromEntries(Object.entries(lrs).map(([k, v]) => [k, v * o.lrScale]));
  const plan: TrainingPlan = {
    ...growth,
    evalBatchSize: 35,
    stages: growth.stages.map((s) => ({ ...s, baseLrs: scale(s.baseLrs) })),
  };
  const last = plan.stages[plan.stages.length - 1];
  out.info(
    `demo: diversified ESR (CBAM, ${o.imageSize}x${o.imageSize}), grown to ${o.branches} branches as esr_affectnet does ` +
      `(${o.firstEpochs} epoch(s), then ${o.laterEpochs} per new branch), diversity 'dpp', on ${o.trainSize} synthetic faces (7 classes); ` +
      `validation ${o.valSize}, test ${o.testSize}. A few-minute run leaves the BN running averages far behind the weights ` +
      `(they move 10% per step, CBAM's spatial gate 1%), so validation during the run normalises with batch statistics` +
      (o.bnBatches > 0
        ? `, and before the final evaluation every BN's running mean and variance are recomputed exactly over ${o.bnBatches} training batches ("precise BN"); the saved model carries them.`
        : '; the final evaluation too (--bn-batches 0).'),
  );

  /** Final test evaluation(s) of a trained model; recalibrates its BN statistics in place when asked. */
  const finish = async (model: EsrEnsemble, batchStatistics: EvalResult, name: string): Promise<DemoEval> => {
    if (o.bnBatches <= 0) return { main: batchStatistics, batchStatistics };
    const r = await recalibrateBatchNorm(model, train, { batches: o.bnBatches, batchSize: o.batch, seed: o.seed });
    out.info(
      `${name}: recomputed the running statistics of ${r.layers} batch norms over ${r.batches} training batches (${r.images} faces).`,
    );
    const recalibrated = await evaluate(model, test, { ...esrStageEvaluation(last), batchSize: plan.evalBatchSize });
    return { main: recalibrated, batchStatistics, recalibrated };
  };
  const report = (diversity: 'dpp' | 'none', e: DemoEval) => {
    const how = e.recalibrated ? 'inference mode, recalibrated BN' : 'batch statistics';
    out.result(describeEval(`held-out synthetic test set (diversity '${diversity}', ${how})`, e.main, BASIC7_LABELS), {
      type: 'demo-eval',
      diversity,
      accuracy: e.main.ensemble.accuracy,
      batchStatisticsAccuracy: e.batchStatistics.ensemble.accuracy,
      recalibrated: e.recalibrated !== undefined,
      branches: e.main.branches,
      diversityMetric: e.main.diversity,
    });
  };

  const res = await trainEsr({
    plan,
    train,
    validation,
    test,
    diversity: 'dpp',
    outDir,
    seed: o.seed,
    evaluateWithBatchStatistics: true,
    createModel: () =>
      createModel('desr-9', {
        labels: BASIC7_LABELS,
        inputSize: o.imageSize,
        seed: o.seed,
        branches: 1,
        colorOrder: 'rgb',
        normalization: null,
      }),
    onEvent: out.trainEvents(),
    // The demo is a fresh seeded run each time: it replaces its previous run (the lock still keeps two apart).
    overwrite: true,
    lock,
    manifest: { exact: { imageSize: o.imageSize, lrScale: o.lrScale, augment: o.augment } },
  });
  let dpp: DemoEval;
  try {
    dpp = await finish(res.model, res.test!, "diversity 'dpp'");
    // The trainer saved the model before recalibration: save it again with the recomputed statistics.
    const dir = res.files.model;
    if (dpp.recalibrated && dir) await replaceDirAtomic(dir, async (d) => void (await res.model.save(fileHandler(d))));
  } finally {
    res.model.dispose();
  }
  report('dpp', dpp);

  let none: DemoEval | undefined;
  if (o.compare && o.branches > 1) {
    // Same last stage, same starting snapshot (best of the previous stage), same data, no diversity term.
    const prevBest = path.join(outDir, 'checkpoints', `stage-${last.stage - 1}-best.safetensors`);
    const cmpDir = path.join(outDir, 'compare-none');
    out.info(
      `comparison: repeating stage ${last.stage} from the stage-${last.stage - 1} snapshot with diversity 'none'.`,
    );
    const cmpPlan: TrainingPlan = { ...plan, stages: [{ ...last, stage: 1, addBranch: false, reloadBest: false }] };
    const trainer = new Trainer<EsrEnsemble>({
      plan: cmpPlan,
      model: {
        ...esrAdapter(async () => {
          const m = createModel('desr-9', {
            labels: BASIC7_LABELS,
            inputSize: o.imageSize,
            seed: o.seed,
            branches: last.ensembleSize - 1,
            colorOrder: 'rgb',
            normalization: null,
          });
          const { loadCheckpoint, restoreVariables } = await import('../../io/checkpoint');
          const { stateVariables } = await import('../../trainer');
          const ck = await loadCheckpoint(prevBest);
          restoreVariables(stateVariables(m), ck.values);
          m.addBranch();
          return m;
        }),
        save: undefined,
      },
      trainData: () => train,
      validation,
      test,
      outDir: cmpDir,
      overwrite: true,
      seed: o.seed,
      plots: false,
      loss: () => esrStageLoss(last, 'none'),
      evaluation: () => ({ ...esrStageEvaluation(last), batchStatistics: true }),
      onEvent: out.trainEvents(),
    });
    const r2 = await trainer.run();
    try {
      none = await finish(r2.model, r2.test!, "diversity 'none'");
    } finally {
      r2.model.dispose();
    }
    report('none', none);
  }
  const seconds = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(); // the whole process: main thread and decoding workers
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const lines = [
    '',
    `=== demo summary (${seconds.toFixed(0)} s wall, ${cpuSeconds.toFixed(0)} s CPU) ===`,
    `ensemble accuracy on held-out synthetic faces: ${pct(dpp.main.ensemble.accuracy)} (chance ${pct(1 / 7)}), macro-F1 ${dpp.main.ensemble.macroF1.toFixed(3)}` +
      (dpp.recalibrated
        ? `; with batch statistics instead of the recalibrated BN: ${pct(dpp.batchStatistics.ensemble.accuracy)}`
        : ' (batch statistics)'),
    `per-branch accuracy: ${dpp.main.branches.map((b) => `branch ${b.index + 1} ${pct(b.accuracy)}`).join(', ')}`,
  ];
  if (dpp.main.diversity) {
    lines.push(
      `branch diversity with 'dpp': attention distance ${dpp.main.diversity.meanPairwiseDistance.toFixed(4)}, disagreement ${pct(dpp.main.diversity.disagreement)}`,
    );
  }
  if (none?.main.diversity) {
    lines.push(
      `branch diversity with 'none': attention distance ${none.main.diversity.meanPairwiseDistance.toFixed(4)}, disagreement ${pct(none.main.diversity.disagreement)} (ensemble ${pct(none.main.ensemble.accuracy)})`,
    );
  }
  lines.push(
    `plots: ${path.join(outDir, 'plots')}/{loss,accuracy,confusion}.{svg,png}; history: ${path.join(outDir, 'history.csv')}`,
  );
  lines.push(
    `saved model: ${path.join(outDir, 'model')} (try: pnpm fer predict --model ${path.join(o.out, 'model')} --no-detect <face.jpg>)`,
  );
  out.result(lines.join('\n'), {
    type: 'demo-summary',
    seconds,
    cpuSeconds,
    recalibrated: dpp.recalibrated !== undefined,
    dpp: {
      accuracy: dpp.main.ensemble.accuracy,
      batchStatisticsAccuracy: dpp.batchStatistics.ensemble.accuracy,
      diversity: dpp.main.diversity,
    },
    none: none && {
      accuracy: none.main.ensemble.accuracy,
      batchStatisticsAccuracy: none.batchStatistics.ensemble.accuracy,
      diversity: none.main.diversity,
    },
    outDir,
  });
  return { dpp, none, seconds };
}
