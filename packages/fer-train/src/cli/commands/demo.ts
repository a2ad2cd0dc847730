import * as path from 'node:path';
import { BASIC7_LABELS } from 'fer-core';
import { syntheticExpressions } from 'fer-datasets';
import type { EsrEnsemble } from 'fer-models-esr';
import type { EvalResult } from '../../evaluate';
import { esrStageEvaluation, trainEsr } from '../../recipes/esr';
import { esrGrowthPlan, type TrainingPlan } from '../../schedule/plans';
import { Trainer } from '../../trainer';
import { esrAdapter, esrStageLoss } from '../../recipes/esr';
import { freshEsr } from '../models';
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
  workers?: number;
}

export const DEMO_DEFAULTS: DemoOptions = {
  out: 'runs/demo', imageSize: 64, branches: 3, trainSize: 350, valSize: 70, testSize: 140, firstEpochs: 4, laterEpochs: 1, batch: 16, seed: 1, compare: true, augment: false, lrScale: 0.1,
};

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * The README's main job: grows a diversified ESR (the `esr_affectnet` schedule, shortened) on synthetic faces with
 * the corrected `dpp` diversity loss, evaluates per-branch and ensemble accuracy on held-out synthetic faces, then
 * repeats the last stage without the diversity term (same snapshot, seed and data) to show what the term does to
 * branch diversity.
 */
export async function runDemo(o: DemoOptions, out: Output): Promise<{ dpp: EvalResult; none?: EvalResult; seconds: number }> {
  const t0 = Date.now();
  const outDir = path.resolve(o.out);
  const mk = (size: number, seed: number, augment: boolean) => syntheticExpressions({ size, seed, imageSize: o.imageSize, augment, workers: o.workers });
  const train = mk(o.trainSize, o.seed * 3 + 1, o.augment);
  const validation = mk(o.valSize, o.seed * 3 + 2, false);
  const test = mk(o.testSize, o.seed * 3 + 3, false);
  const growth = esrGrowthPlan({ branches: o.branches, firstEpochs: o.firstEpochs, laterEpochs: o.laterEpochs, batchSize: o.batch });
  const scale = (lrs: Record<string, number>) => Object.fromEntries(Object.entries(lrs).map(([k, v]) => [k, v * o.lrScale]));
  const plan: TrainingPlan = { ...growth, evalBatchSize: 35, stages: growth.stages.map((s) => ({ ...s, baseLrs: scale(s.baseLrs) })) };
  out.info(
    `demo: diversified ESR (CBAM, ${o.imageSize}x${o.imageSize}), grown to ${o.branches} branches as esr_affectnet does ` +
      `(${o.firstEpochs} epoch(s), then ${o.laterEpochs} per new branch), diversity 'dpp', on ${o.trainSize} synthetic faces (7 classes); ` +
      `validation ${o.valSize}, test ${o.testSize}. Evaluation normalises with batch statistics: a few-minute run leaves ` +
      `the BN running averages (CBAM's move 1% per step) far from the data.`,
  );
  const res = await trainEsr({
    plan, train, validation, test, diversity: 'dpp', outDir, seed: o.seed, evaluateWithBatchStatistics: true, createModel: () => freshEsr(BASIC7_LABELS, o.imageSize, o.seed), onEvent: out.trainEvents(),
  });
  const dpp = res.test!;
  res.model.dispose();
  out.result(describeEval(`held-out synthetic test set (diversity 'dpp')`, dpp, BASIC7_LABELS), { type: 'demo-eval', diversity: 'dpp', accuracy: dpp.ensemble.accuracy, branches: dpp.branches, diversityMetric: dpp.diversity });

  let none: EvalResult | undefined;
  if (o.compare && o.branches > 1) {
    // Same last stage, same starting snapshot (best of the previous stage), same data, no diversity term.
    const last = plan.stages[plan.stages.length - 1];
    const prevBest = path.join(outDir, 'checkpoints', `stage-${last.stage - 1}-best.safetensors`);
    const cmpDir = path.join(outDir, 'compare-none');
    out.info(`comparison: repeating stage ${last.stage} from the stage-${last.stage - 1} snapshot with diversity 'none'.`);
    const cmpPlan: TrainingPlan = { ...plan, stages: [{ ...last, stage: 1, addBranch: false, reloadBest: false }] };
    const trainer = new Trainer<EsrEnsemble>({
      plan: cmpPlan,
      model: {
        ...esrAdapter(async () => {
          const m = freshEsr(BASIC7_LABELS, o.imageSize, o.seed, undefined, last.ensembleSize - 1);
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
      validation, test, outDir: cmpDir, seed: o.seed, plots: false,
      loss: () => esrStageLoss(last, 'none'),
      evaluation: () => ({ ...esrStageEvaluation(last), batchStatistics: true }),
      onEvent: out.trainEvents(),
    });
    const r2 = await trainer.run();
    none = r2.test!;
    r2.model.dispose();
    out.result(describeEval(`held-out synthetic test set (diversity 'none')`, none, BASIC7_LABELS), { type: 'demo-eval', diversity: 'none', accuracy: none.ensemble.accuracy, branches: none.branches, diversityMetric: none.diversity });
  }
  const seconds = (Date.now() - t0) / 1000;
  const lines = [
    '',
    `=== demo summary (${seconds.toFixed(0)} s) ===`,
    `ensemble accuracy on held-out synthetic faces: ${pct(dpp.ensemble.accuracy)} (chance ${pct(1 / 7)}), macro-F1 ${dpp.ensemble.macroF1.toFixed(3)}`,
    `per-branch accuracy: ${dpp.branches.map((b) => `branch ${b.index + 1} ${pct(b.accuracy)}`).join(', ')}`,
  ];
  if (dpp.diversity) {
    lines.push(`branch diversity with 'dpp': attention distance ${dpp.diversity.meanPairwiseDistance.toFixed(4)}, disagreement ${pct(dpp.diversity.disagreement)}`);
  }
  if (none?.diversity) {
    lines.push(`branch diversity with 'none': attention distance ${none.diversity.meanPairwiseDistance.toFixed(4)}, disagreement ${pct(none.diversity.disagreement)} (ensemble ${pct(none.ensemble.accuracy)})`);
  }
  lines.push(`plots: ${path.join(outDir, 'plots')}/{loss,accuracy,confusion}.{svg,png}; history: ${path.join(outDir, 'history.csv')}`);
  lines.push(`saved model: ${path.join(outDir, 'model')} (try: pnpm fer predict --model ${path.join(o.out, 'model')} --no-detect <face.jpg>)`);
  out.result(lines.join('\n'), { type: 'demo-summary', seconds, dpp: { accuracy: dpp.ensemble.accuracy, diversity: dpp.diversity }, none: none && { accuracy: none.ensemble.accuracy, diversity: none.diversity }, outDir });
  return { dpp, none, seconds };
}
