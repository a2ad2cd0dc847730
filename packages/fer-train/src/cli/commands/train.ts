import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { MANET_INPUT_SIZE, MANET_WASM_MAX_BATCH, MANET_WASM_MICRO_BATCH } from 'fer-models-manet';
import { FerInputError, parseChoice } from 'fer-core';
import { loadSplits, DATASET_KINDS, type DatasetKind } from '../../data';
import { DIVERSITY_MODES, type DiversityMode } from '../../loss-types';
import { esrStageEvaluation, trainEsr } from '../../recipes/esr';
import type { EsrEnsemble } from 'fer-models-esr';
import { createModel, loadModel } from 'fer-models/node';
import { fileHandler } from 'fer-core/node';
import { manetEvaluation, trainManet } from '../../recipes/manet';
import { finishWithPreciseBn } from '../../recipes/precise-bn';
import { esrFineTunePlan, esrGrowthPlan, manetPlan, type TrainingPlan } from '../../schedule/plans';
import type { EvalResult } from '../../evaluate';
import type { TrainResult } from '../../trainer';
import type { FerModel } from 'fer-core';
import { inputConvention } from '../models';
import type { Output } from '../output';
import { RunLock } from '../../io/run-folder';

export interface TrainCommandOptions {
  dataset: string;
  data?: string;
  valData?: string;
  testData?: string;
  out?: string;
  diversity: string;
  faithfulChannel?: boolean;
  diversityScope?: string;
  pretrained?: string;
  branches?: number;
  epochs?: number;
  laterEpochs?: number;
  batch?: number;
  microBatch?: number;
  cap?: number;
  imageSize?: number;
  seed: number;
  resume?: boolean;
  overwrite?: boolean;
  maxSteps?: number;
  checkpointEvery?: number;
  plots: boolean;
  syntheticSize?: number[];
  workers?: number;
  /** Short runs: select with batch statistics, then recompute BN statistics over this many training batches. */
  bnBatches?: number;
  computeWorkers?: number;
}

export interface TrainSummary {
  outDir: string;
  result: TrainResult<FerModel>;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

/** Human-readable per-branch and ensemble accuracy of an evaluation. */
export function describeEval(name: string, r: EvalResult, classNames: readonly string[]): string {
  const lines = [
    `${name}: ensemble accuracy ${pct(r.ensemble.accuracy)}, macro-F1 ${r.ensemble.macroF1.toFixed(3)} (${r.size} images)`,
  ];
  lines.push(`  per branch: ${r.branches.map((b) => `#${b.index + 1} ${pct(b.accuracy)}`).join('  ')}`);
  if (r.diversity)
    lines.push(
      `  diversity: mean pairwise distance ${r.diversity.meanPairwiseDistance.toFixed(4)}, disagreement ${pct(r.diversity.disagreement)}`,
    );
  lines.push(`  per-class F1: ${r.ensemble.perClass.map((c, k) => `${classNames[k]} ${c.f1.toFixed(2)}`).join(', ')}`);
  return lines.join('\n');
}

export async function runTrain(model: 'esr' | 'manet', o: TrainCommandOptions, out: Output): Promise<TrainSummary> {
  const kind = parseChoice<DatasetKind>('dataset', o.dataset, DATASET_KINDS);
  const diversity = parseChoice<DiversityMode>('diversity mode', o.diversity, DIVERSITY_MODES);
  const imageSize = o.imageSize ?? (model === 'esr' ? 96 : MANET_INPUT_SIZE);
  if (model === 'manet' && imageSize !== MANET_INPUT_SIZE) {
    throw new FerInputError(
      `MA-Net needs ${MANET_INPUT_SIZE}x${MANET_INPUT_SIZE} inputs (its 28x28 layer2 map is cut into four 14x14 patches), but got --image-size ${imageSize}.`,
      `Drop --image-size or pass ${MANET_INPUT_SIZE}.`,
    );
  }
  const outDir = path.resolve(o.out ?? path.join('runs', `${model}-${kind}`));
  // Held until the precise-BN re-save is done, so no other run can use the folder in between.
  const lock = await RunLock.acquire(outDir, (m) => out.info(`note: ${m}`));
  try {
    return await trainLocked(model, o, out, { kind, diversity, imageSize, outDir, lock });
  } finally {
    await lock.release();
  }
}

async function trainLocked(
  model: 'esr' | 'manet',
  o: TrainCommandOptions,
  out: Output,
  {
    kind,
    diversity,
    imageSize,
    outDir,
    lock,
  }: { kind: DatasetKind; diversity: DiversityMode; imageSize: number; outDir: string; lock: RunLock },
): Promise<TrainSummary> {
  const splits = await loadSplits({
    kind,
    root: o.data,
    imageSize,
    cap: o.cap,
    validationRoot: o.valData,
    testRoot: o.testData,
    seed: o.seed,
    syntheticSizes: o.syntheticSize as [number, number, number] | undefined,
    workers: o.workers,
    onWarning: (m) => out.info(`warning: ${m}`),
  });
  splits.notes.forEach((n) => out.info(`note: ${n}`));
  const labels = splits.train.labels;
  out.info(
    `${model} on ${kind}: ${splits.train.size} training, ${splits.validation.size} validation${splits.test ? `, ${splits.test.size} test` : ''} images; classes ${labels.join(', ')}; diversity '${diversity}'; output ${outDir}`,
  );
  const common = {
    train: splits.train,
    validation: splits.validation,
    test: splits.test,
    diversity,
    outDir,
    seed: o.seed,
    microBatch: o.microBatch,
    computeWorkers: o.computeWorkers,
    resume: o.resume,
    overwrite: o.overwrite,
    lock,
    manifest: {
      // Data paths may move (the data fingerprint still has to match); everything here decides the result.
      exact: {
        model,
        dataset: kind,
        imageSize,
        diversity,
        faithfulChannel: !!o.faithfulChannel,
        diversityScope: o.diversityScope ?? 'reference',
        pretrained: o.pretrained ? path.basename(o.pretrained) : null,
        cap: o.cap ?? null,
        syntheticSize: o.syntheticSize ?? null,
      },
      other: {
        data: o.data ?? null,
        valData: o.valData ?? null,
        testData: o.testData ?? null,
        workers: o.workers ?? null,
        bnBatches: o.bnBatches ?? null,
        plots: o.plots,
      },
    },
    maxSteps: o.maxSteps,
    checkpointEverySteps: o.checkpointEvery,
    plots: o.plots,
    onEvent: out.trainEvents(),
  };
  let result: TrainResult<FerModel>;
  let plan: TrainingPlan;
  // Precise BN batches: the size training normalised with (a micro-batch when accumulating), at least 2.
  let bnBatchSize: number;
  if (model === 'esr') {
    if (o.pretrained) {
      if (kind !== 'ferplus' && kind !== 'rafdb' && kind !== 'folder' && kind !== 'synthetic')
        throw new FerInputError(
          `Fine-tuning a pretrained ESR applies to ferplus, rafdb, folder or synthetic data, not ${kind}.`,
        );
      plan = esrFineTunePlan({
        dataset: kind === 'rafdb' ? 'rafdb' : 'ferplus',
        branches: o.branches,
        firstEpochs: o.epochs,
        laterEpochs: o.laterEpochs,
        batchSize: o.batch,
        diversityScope: o.diversityScope === 'trained' ? 'trained' : 'reference',
      });
    } else {
      plan = esrGrowthPlan({
        branches: o.branches,
        firstEpochs: o.epochs,
        laterEpochs: o.laterEpochs,
        batchSize: o.batch,
      });
    }
    bnBatchSize = Math.max(2, o.microBatch ?? plan.batchSize);
    const pre = o.pretrained;
    result = await trainEsr({
      ...common,
      plan,
      channelTermOnSpatial: o.faithfulChannel,
      createModel: () =>
        pre
          ? loadModel(pre, { labels, seed: o.seed, expect: 'esr' })
          : createModel('desr-9', {
              labels,
              inputSize: imageSize,
              seed: o.seed,
              branches: 1,
              ...inputConvention(splits.validation),
            }),
    });
  } else {
    const ds = kind === 'affectnet' || kind === 'ferplus' || kind === 'rafdb' ? kind : 'rafdb';
    plan = manetPlan({ dataset: ds, epochs: o.epochs, batchSize: o.batch });
    let microBatch = o.microBatch;
    if (tf.getBackend() === 'wasm') {
      // The wasm heap (4 GiB) holds a training forward + backward of at most MANET_WASM_MAX_BATCH images at 224 px.
      if (microBatch === undefined && plan.batchSize > MANET_WASM_MAX_BATCH) {
        microBatch = MANET_WASM_MICRO_BATCH;
        out.info(
          `note: batch ${plan.batchSize} runs as micro-batches of ${microBatch} with gradient accumulation (wasm heap); BN statistics are per micro-batch. Set --micro-batch to change.`,
        );
      }
      plan = { ...plan, evalBatchSize: Math.min(plan.evalBatchSize, MANET_WASM_MAX_BATCH) };
    }
    bnBatchSize = Math.max(2, microBatch ?? plan.batchSize);
    result = await trainManet({
      ...common,
      microBatch,
      plan,
      // From the MS-Celeb checkpoint (its identity heads replaced for `labels`) when given, else fresh.
      createModel: () =>
        o.pretrained
          ? loadModel(o.pretrained, { labels, seed: o.seed, expect: 'manet' })
          : createModel('manet', { labels, seed: o.seed }),
    });
  }
  if (result.stopped) {
    out.result(`stopped early; resume with --resume --out ${outDir}`, { type: 'summary', stopped: true, outDir });
    return { outDir, result };
  }
  const names = labels as readonly string[];
  if (o.bnBatches) {
    const last = plan.stages[plan.stages.length - 1];
    const fin = await finishWithPreciseBn(result, {
      train: splits.train,
      validation: splits.validation,
      test: splits.test,
      evaluation: {
        ...(model === 'esr' ? esrStageEvaluation(last) : manetEvaluation()),
        batchSize: plan.evalBatchSize,
      },
      recalibrate: { batches: o.bnBatches, batchSize: bnBatchSize, seed: o.seed },
      save: async (m, dir) => void (await (m as EsrEnsemble).save(fileHandler(dir))),
    });
    out.info(
      `precise BN: recomputed ${fin.batchNorm.layers} batch norms over ${fin.batchNorm.batches} training batches (${fin.batchNorm.images} images); validation accuracy with batch statistics was ${pct(fin.before.validation!.ensemble.accuracy)}.`,
    );
  }
  out.result(describeEval(splits.test ? 'validation (model selection)' : 'validation', result.validation!, names), {
    type: 'summary',
    split: 'validation',
    accuracy: result.validation!.ensemble.accuracy,
    macroF1: result.validation!.ensemble.macroF1,
  });
  if (result.test)
    out.result(describeEval('test', result.test, names), {
      type: 'summary',
      split: 'test',
      accuracy: result.test.ensemble.accuracy,
      macroF1: result.test.ensemble.macroF1,
    });
  out.result(
    `files: model ${result.files.model}, history ${result.files.history} (+ .csv)${o.plots ? `, plots ${result.files.plots}/{loss,accuracy,confusion}.{svg,png}` : ''}, checkpoints ${result.files.checkpoints}`,
    { type: 'files', ...result.files },
  );
  return { outDir, result };
}
