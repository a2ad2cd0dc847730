import * as tf from '@tensorflow/tfjs-core';
import { FerInputError, type Batch, type BatchOptions, type FerDataset, type FerModel, type LabelSet } from 'fer-core';
import { evaluate, type EvalResult, type EvaluateOptions } from './evaluate';

/** How a model's classes meet a dataset's, by name. */
export interface LabelAlignment {
  /** Classes both sides have, in the dataset's order. */
  shared: string[];
  /** For each shared class: its index among the model's outputs and among the dataset's labels. */
  modelIndex: number[];
  dataIndex: number[];
  /** Same names in the same order: nothing to map. */
  identical: boolean;
  /** Classes only one side has. */
  modelOnly: string[];
  dataOnly: string[];
}

/** Matches classes by name; throws one clear error when the two sides share none. */
export function alignLabels(modelLabels: readonly string[], dataLabels: readonly string[]): LabelAlignment {
  const shared = dataLabels.filter((l) => modelLabels.includes(l));
  if (shared.length === 0)
    throw new FerInputError(
      `The model's classes (${modelLabels.join(', ')}) and the dataset's (${dataLabels.join(', ')}) have no class in common.`,
      'Evaluate on a dataset with the classes the model was trained on.',
    );
  return {
    shared,
    modelIndex: shared.map((l) => modelLabels.indexOf(l)),
    dataIndex: shared.map((l) => dataLabels.indexOf(l)),
    identical: modelLabels.length === dataLabels.length && modelLabels.every((l, i) => l === dataLabels[i]),
    modelOnly: modelLabels.filter((l) => !dataLabels.includes(l)),
    dataOnly: dataLabels.filter((l) => !modelLabels.includes(l)),
  };
}

/** The model restricted to the shared classes: its logits keep only those columns, in the shared order. */
function restrictModel(model: FerModel, a: LabelAlignment): FerModel {
  const idx = a.modelIndex;
  return {
    labels: a.shared as unknown as LabelSet,
    forward: (images, opts) => {
      const out = model.forward(images, opts);
      const logits = out.logits.map((l) => {
        const g = tf.gather(l, idx, 1) as tf.Tensor2D;
        l.dispose();
        return g;
      });
      return { ...out, logits };
    },
    trainableVariables: () => model.trainableVariables(),
    variableGroups: () => model.variableGroups(),
    dispose: () => model.dispose(),
    ...('nonTrainableVariables' in model
      ? { nonTrainableVariables: () => (model as { nonTrainableVariables(): tf.Variable[] }).nonTrainableVariables() }
      : {}),
  } as FerModel;
}

/** The dataset restricted to the shared classes, relabelled to the shared order; counts what it leaves out. */
function restrictData(ds: FerDataset, a: LabelAlignment): FerDataset & { skipped: number } {
  const toShared = new Map(a.dataIndex.map((d, s) => [d, s]));
  const r = {
    name: ds.name,
    size: ds.size,
    labels: a.shared as unknown as LabelSet,
    skipped: 0,
    async *batches(o: BatchOptions): AsyncIterable<Batch> {
      for await (const b of ds.batches(o)) {
        try {
          const y = await b.labels.data();
          const keep: number[] = [];
          const labels: number[] = [];
          y.forEach((c, i) => {
            const s = toShared.get(c);
            if (s === undefined) r.skipped++;
            else {
              keep.push(i);
              labels.push(s);
            }
          });
          if (keep.length === 0) continue;
          yield {
            images: tf.gather(b.images, keep) as tf.Tensor4D,
            labels: tf.tensor1d(labels, 'int32'),
            ...(b.soft ? { soft: tf.gather(tf.gather(b.soft, keep), a.dataIndex, 1) as tf.Tensor2D } : {}),
          };
        } finally {
          tf.dispose([b.images, b.labels, ...(b.soft ? [b.soft] : [])]);
        }
      }
    },
  };
  return r;
}

/**
 * `evaluate` after matching the model's classes to the dataset's by name: with the same classes in another order
 * the outputs are reordered; with partly different classes only images of shared classes count and predictions
 * are made among the shared classes. `note` says what was done (undefined when the label sets are identical).
 */
export async function evaluateByLabel(
  model: FerModel,
  data: FerDataset,
  o: EvaluateOptions = {},
): Promise<{ result: EvalResult; labels: string[]; note?: string }> {
  const a = alignLabels(model.labels as readonly string[], data.labels as readonly string[]);
  if (a.identical) return { result: await evaluate(model, data, o), labels: [...data.labels] };
  const ds = restrictData(data, a);
  const result = await evaluate(restrictModel(model, a), ds, o);
  const sameSet = a.modelOnly.length === 0 && a.dataOnly.length === 0;
  const note = sameSet
    ? `the model orders its classes differently from the dataset; outputs were matched by name.`
    : `the model's and the dataset's classes differ: results are over the ${a.shared.length} shared classes (${a.shared.join(', ')})` +
      (a.dataOnly.length
        ? `; ${ds.skipped} image(s) of ${a.dataOnly.join(', ')} (not in the model) were left out`
        : '') +
      (a.modelOnly.length ? `; predictions ignore the model's ${a.modelOnly.join(', ')}` : '') +
      '.';
  return { result, labels: a.shared, note };
}
