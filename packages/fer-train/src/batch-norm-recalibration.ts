import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  CBAM_SPATIAL_BN_MOMENTUM,
  Cbam,
  FerInputError,
  TorchBatchNorm,
  type FerDataset,
  type FerModel,
} from 'fer-core';

/** One PyTorch-semantics batch norm found in a model: its running statistics and the momentum that moves them. */
export interface BatchNormState {
  /** Layer name (with `/spatial_bn` for CBAM's spatial gate). */
  name: string;
  /** [C] running mean, [C] running (unbiased) variance, [] batch counter: the layer's own variables. */
  runningMean: tfl.LayerVariable;
  runningVar: tfl.LayerVariable;
  numBatchesTracked: tfl.LayerVariable;
  /** PyTorch meaning: `running = (1 − momentum)·running + momentum·batch`. */
  momentum: number;
}

export interface RecalibrateOptions {
  /** Number of training batches to average over (fvcore's precise BN uses 200; a few dozen suffice for small runs). */
  batches: number;
  /** Default 32. */
  batchSize?: number;
  /** Shuffle seed (each call with the same seed sees the same batches). Default 0. */
  seed?: number;
  onBatch?: (done: number, total: number) => void;
}

export interface RecalibrateResult {
  /** Batch norms whose statistics were recomputed. */
  layers: number;
  /** Batches and images actually averaged over (fewer than asked when the dataset is smaller). */
  batches: number;
  images: number;
}

function layerModels(model: FerModel): tfl.LayersModel[] {
  const m = model as FerModel & { parts?(): { model: tfl.LayersModel }[]; model?: unknown };
  if (m.parts) return m.parts().map((p) => p.model);
  if (m.model instanceof tfl.LayersModel) return [m.model];
  throw new FerInputError(
    'recalibrateBatchNorm needs a model made of tfjs-layers models (an ESR ensemble with parts(), or a model with a .model LayersModel such as Manet).',
  );
}

function weightEndingWith(layer: tfl.layers.Layer, suffix: string): tfl.LayerVariable {
  const w = layer.weights.find((v) => v.originalName.endsWith(`/${suffix}`) || v.originalName === suffix);
  if (!w)
    throw new Error(
      `Layer '${layer.name}' has no weight '${suffix}' (weights: ${layer.weights.map((v) => v.originalName).join(', ')}).`,
    );
  return w;
}

function collect(layer: tfl.layers.Layer, out: BatchNormState[]): void {
  if (layer instanceof tfl.LayersModel) {
    layer.layers.forEach((l) => collect(l, out));
  } else if (layer instanceof TorchBatchNorm) {
    out.push({
      name: layer.name,
      momentum: layer.momentum,
      runningMean: weightEndingWith(layer, 'running_mean'),
      runningVar: weightEndingWith(layer, 'running_var'),
      numBatchesTracked: weightEndingWith(layer, 'num_batches_tracked'),
    });
  } else if (layer instanceof Cbam) {
    out.push({
      name: `${layer.name}/spatial_bn`,
      momentum: CBAM_SPATIAL_BN_MOMENTUM,
      runningMean: weightEndingWith(layer, 'spatial_bn_running_mean'),
      runningVar: weightEndingWith(layer, 'spatial_bn_running_var'),
      numBatchesTracked: weightEndingWith(layer, 'spatial_bn_num_batches_tracked'),
    });
  } else if (layer.getClassName() === 'BatchNormalization') {
    throw new FerInputError(
      `Layer '${layer.name}' is a Keras BatchNormalization; recalibrateBatchNorm handles PyTorch-semantics TorchBatchNorm and Cbam layers only.`,
    );
  }
}

/**
 * Every PyTorch-semantics batch norm of an ESR ensemble or an MA-Net (`TorchBatchNorm` layers and CBAM spatial gates).
 */
export function findBatchNorms(model: FerModel): BatchNormState[] {
  const out: BatchNormState[] = [];
  layerModels(model).forEach((m) => collect(m, out));
  return out;
}

/**
 * "Precise BN" (Wu & Johnson 2021, fvcore `update_bn_stats`; `torch.optim.swa_utils.update_bn`): replaces every batch
 * norm's running mean and variance by the exact average, over `batches` training batches, of the batch mean and the
 * *unbiased* batch variance, as PyTorch stores them with `momentum=None`. Each batch weighs the same. Runs train-mode
 * forwards without gradients: no trainable weight changes; each layer's `num_batches_tracked` grows by the number of
 * batches, as in a training forward.
 *
 * How: before each forward the running statistics are zeroed, so the layer's own update leaves `momentum · batch`
 * in them, which is divided back out. A layer that ran more than once in one forward (shared layer) is refused,
 * because its statistics would mix. On any error the previous statistics are restored.
 *
 * Use it after a short run and before evaluating in inference mode: running averages with momentum 0.1 (0.01 in
 * CBAM's spatial gate) lag far behind weights that moved a lot in a few hundred steps.
 */
export async function recalibrateBatchNorm(
  model: FerModel,
  data: FerDataset,
  o: RecalibrateOptions,
): Promise<RecalibrateResult> {
  if (!Number.isInteger(o.batches) || o.batches < 1)
    throw new FerInputError(`Expected batches to be a positive integer, but got ${o.batches}.`);
  const batchSize = o.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 2)
    throw new FerInputError(
      `Expected batchSize to be an integer ≥ 2 (batch norm needs batch statistics), but got ${batchSize}.`,
    );
  const bns = findBatchNorms(model);
  if (bns.length === 0) return { layers: 0, batches: 0, images: 0 };
  const saved = bns.map((b) => [
    tf.clone(b.runningMean.read()),
    tf.clone(b.runningVar.read()),
    tf.clone(b.numBatchesTracked.read()),
  ]);
  const sums = bns.map((b) => [tf.zerosLike(b.runningMean.read()), tf.zerosLike(b.runningVar.read())]);
  let count = 0;
  let images = 0;
  let ok = false;
  try {
    // Whole batches only: a last batch of one image has no batch statistics after global pooling.
    for await (const batch of data.batches({
      batchSize,
      shuffle: true,
      seed: o.seed ?? 0,
      epoch: 0,
      dropRemainder: true,
    })) {
      try {
        const counters = await Promise.all(bns.map((b) => b.numBatchesTracked.read().data()));
        tf.tidy(() => {
          for (const b of bns) {
            b.runningMean.write(tf.zerosLike(b.runningMean.read()));
            b.runningVar.write(tf.zerosLike(b.runningVar.read()));
          }
          model.forward(batch.images, { training: true }); // outputs are disposed by the tidy
        });
        const after = await Promise.all(bns.map((b) => b.numBatchesTracked.read().data()));
        const bad = bns.findIndex((_, i) => after[i][0] - counters[i][0] !== 1);
        if (bad >= 0) {
          throw new Error(
            `Batch norm '${bns[bad].name}' ran ${after[bad][0] - counters[bad][0]} times in one training forward; recalibrateBatchNorm needs each to run exactly once.`,
          );
        }
        bns.forEach((b, i) => {
          const [m, v] = sums[i];
          sums[i] = tf.tidy(() => [
            tf.add(m, tf.div(b.runningMean.read(), b.momentum)),
            tf.add(v, tf.div(b.runningVar.read(), b.momentum)),
          ]);
          tf.dispose([m, v]);
        });
        count++;
        images += batch.labels.shape[0];
        o.onBatch?.(count, o.batches);
      } finally {
        tf.dispose([batch.images, batch.labels, ...(batch.soft ? [batch.soft] : [])]);
      }
      if (count >= o.batches) break;
    }
    if (count === 0)
      throw new FerInputError(
        `The dataset '${data.name}' (${data.size} images) yielded no whole batch of ${batchSize} to recalibrate batch norm with.`,
        'Pass a smaller batchSize.',
      );
    tf.tidy(() => {
      bns.forEach((b, i) => {
        b.runningMean.write(tf.div(sums[i][0], count));
        b.runningVar.write(tf.div(sums[i][1], count));
      });
    });
    ok = true;
  } finally {
    if (!ok) {
      bns.forEach((b, i) => {
        b.runningMean.write(saved[i][0]);
        b.runningVar.write(saved[i][1]);
        b.numBatchesTracked.write(saved[i][2]);
      });
    }
    tf.dispose([...saved.flat(), ...sums.flat()]);
  }
  return { layers: bns.length, batches: count, images };
}
