import * as path from 'node:path';
import { writeFileAtomic } from 'fer-core/node';
import { type FerDataset, type FerModel } from 'fer-core';
import { recalibrateBatchNorm, type RecalibrateOptions, type RecalibrateResult } from '../batch-norm-recalibration';
import { evaluate, type EvalResult, type EvaluateOptions } from '../evaluate';
import { finalEval, historyCsv } from '../history';
import type { TrainResult } from '../trainer';
import { replaceDirAtomic } from '../io/atomic-dir';

export interface PreciseBnFinishOptions<M extends FerModel> {
  train: FerDataset;
  validation: FerDataset;
  test?: FerDataset;
  /** The final stage's evaluation (inference mode is forced). */
  evaluation: Omit<EvaluateOptions, 'onBatch'>;
  recalibrate: RecalibrateOptions;
  /** Re-saves the model (with the recomputed statistics) where the trainer saved it. */
  save?: (model: M, dir: string) => Promise<void>;
}

export interface PreciseBnFinish {
  batchNorm: RecalibrateResult;
  /** The trainer's final evaluations, before recalibration. */
  before: { validation?: EvalResult; test?: EvalResult };
}

/**
 * After a (short) run: recomputes every BN's running statistics over training batches (`recalibrateBatchNorm`),
 * evaluates validation and test again in inference mode, re-saves the model and rewrites the history's final
 * evaluations (the replaced ones stay in `history.finalBatchStatistics`). Mutates `result` (model, `validation`,
 * `test`, `history`) and returns what it replaced.
 */
export async function finishWithPreciseBn<M extends FerModel>(
  result: TrainResult<M>,
  o: PreciseBnFinishOptions<M>,
): Promise<PreciseBnFinish> {
  const before = { validation: result.validation, test: result.test };
  const batchNorm = await recalibrateBatchNorm(result.model, o.train, o.recalibrate);
  const opts = { ...o.evaluation, batchStatistics: false };
  result.history.finalBatchStatistics = [
    ...(before.validation ? [finalEval('validation', before.validation)] : []),
    ...(before.test ? [finalEval('test', before.test)] : []),
  ];
  result.validation = await evaluate(result.model, o.validation, opts);
  result.history.final = [finalEval('validation', result.validation)];
  if (o.test) {
    result.test = await evaluate(result.model, o.test, opts);
    result.history.final.push(finalEval('test', result.test));
  }
  await writeFileAtomic(result.files.history, JSON.stringify(result.history, null, 1));
  await writeFileAtomic(path.join(path.dirname(result.files.history), 'history.csv'), historyCsv(result.history));
  const save = o.save;
  // Replaced as a whole: a kill mid-save leaves the trainer's model, never a mix of old and new files.
  if (save && result.files.model) await replaceDirAtomic(result.files.model, (d) => save(result.model, d));
  return { batchNorm, before };
}
