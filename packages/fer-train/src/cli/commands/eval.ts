import * as path from 'node:path';
import { parseChoice, type FerModel } from 'fer-core';
import { loadEvalSplit, DATASET_KINDS, type DatasetKind } from '../../data';
import type { EvalResult } from '../../evaluate';
import { evaluateByLabel } from '../../label-map';
import { assertFiniteWeights } from '../../guards';
import { stateVariables } from '../../state';
import { confusionMatrixSvg } from '../../plots/svg';
import { writeSvgAndPng } from '../../plots/render';
import { loadModel } from 'fer-models/node';
import type { Output } from '../output';
import { describeEval } from './train';

export interface EvalCommandOptions {
  model: string;
  dataset: string;
  data?: string;
  split?: string;
  imageSize?: number;
  batch: number;
  out?: string;
  workers?: number;
  seed: number;
  /** folder: evaluate at most this many images per class (a seeded subset). */
  cap?: number;
  /** synthetic: the `--synthetic-size` of the training run; the test split (same seed) is evaluated. */
  syntheticSize?: number[];
}

/** Evaluates a saved model on one split: per-branch and ensemble accuracy, per-class and macro-F1, confusion matrix. */
export async function runEval(o: EvalCommandOptions, out: Output): Promise<EvalResult> {
  const kind = parseChoice<DatasetKind>('dataset', o.dataset, DATASET_KINDS);
  const model = await loadModel(o.model);
  const mk = model.kind;
  let infer: FerModel | null = null;
  try {
    await assertFiniteWeights(stateVariables(model), o.model);
    const imageSize = o.imageSize ?? model.input.size;
    const ds = await loadEvalSplit({
      kind,
      root: o.data,
      split: o.split,
      imageSize,
      cap: o.cap,
      workers: o.workers,
      seed: o.seed,
      syntheticSizes: o.syntheticSize as [number, number, number] | undefined,
      onWarning: (m) => out.info(`warning: ${m}`),
    });
    // Pure inference: batch norms folded into the convs (same values up to float32 rounding, fewer ops).
    infer = model.fold();
    const bar = out.progress('evaluate', Math.ceil(ds.size / o.batch));
    // Classes are matched by name (an error when none is shared), so accuracies never compare unrelated indices.
    const {
      result: r,
      labels,
      note,
    } = await evaluateByLabel(infer, ds, {
      batchSize: o.batch,
      combine: mk === 'esr' ? { kind: 'vote' } : { kind: 'weighted', weights: [0.6, 0.4] },
      diversityHead: mk === 'esr' ? 'spatialAttention' : 'globalFeatures',
      onBatch: (d) => bar.update(d),
    });
    bar.done();
    if (note) out.info(`note: ${note}`);
    out.result(describeEval(`${ds.name}`, r, labels), {
      type: 'eval',
      dataset: ds.name,
      size: r.size,
      accuracy: r.ensemble.accuracy,
      macroF1: r.ensemble.macroF1,
      branches: r.branches,
      labels,
      labelNote: note,
      perClass: r.ensemble.perClass,
      confusion: r.ensemble.confusion,
      diversity: r.diversity,
    });
    if (o.out) {
      const files = await writeSvgAndPng(
        path.join(o.out, 'confusion'),
        confusionMatrixSvg(r.ensemble.confusion, labels, `confusion: ${ds.name}`),
      );
      out.result(`confusion matrix: ${files.svg}, ${files.png}`, { type: 'files', ...files });
    }
    return r;
  } finally {
    infer?.dispose();
    model.dispose();
  }
}
