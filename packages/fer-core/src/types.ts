import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { LabelSet } from './emotions';

/** One training or evaluation batch. The consumer owns and disposes both tensors. */
export interface Batch {
  /** [n, h, w, c] float32, channels-last, in [0, 1] unless the source normalised it (see `DatasetInfo`). */
  images: tf.Tensor4D;
  /** [n] int32 class indices into the dataset's `labels`. */
  labels: tf.Tensor1D;
  /** Optional [n, K] float32 soft labels (e.g. FER+ vote distributions). */
  soft?: tf.Tensor2D;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle with this seed (deterministic); omit for file order. */
  seed?: number;
  shuffle?: boolean;
  /** Drop a last, smaller batch (BN-friendly training). Default false. */
  dropRemainder?: boolean;
  /** Epoch index: mixed into the seed so each epoch gets its own order and augmentation. */
  epoch?: number;
  /** Stop early (used by abandoning consumers; resources are released either way). */
  signal?: AbortSignal;
}

export interface FerDataset {
  readonly name: string;
  /** Number of samples one epoch yields. */
  readonly size: number;
  /** Class order of `Batch.labels`. */
  readonly labels: LabelSet;
  /** Yields batches; the caller owns each batch and must dispose it. Leaving the loop early frees workers. */
  batches(opts: BatchOptions): AsyncIterable<Batch>;
}

/** What a model returns for one forward pass. All tensors are owned by the caller. */
export interface ForwardResult {
  /** [batch, classes] per branch (ESR) or head (MA-Net). */
  logits: tf.Tensor2D[];
  /**
   * Tensors the diversity loss compares, stacked `[n, batch, ...features]`, e.g. ESR
   * `spatialAttention` [n, B, 6, 6] and `channelAttention` [n, B, 512]; MA-Net `localFeatures`
   * [4, B, 7, 7, 512] and `globalFeatures` [2, B, 512].
   */
  heads: Record<string, tf.Tensor>;
}

export interface ForwardOptions {
  /** Train mode: batch statistics in BN (and running-stat updates), dropout on. */
  training: boolean;
}

/** A named group of variables that an optimizer may give its own learning rate. */
export interface VariableGroup {
  name: string;
  variables: tf.Variable[];
}

/**
 * What trainers and evaluators need from a model. `numBranches` is the number of classifier outputs `forward` returns
 * (ESR: its branches; MA-Net: its two heads).
 */
export interface FerModel {
  readonly labels: LabelSet;
  readonly numBranches: number;
  forward(images: tf.Tensor4D, opts: ForwardOptions): ForwardResult;
  trainableVariables(): tf.Variable[];
  /** Variables grouped the way the reference's optimizer groups them (e.g. ESR base / branch i). */
  variableGroups(): VariableGroup[];
  dispose(): void;
}

/** Model families the suite ships (`FerNetwork.kind`). */
export type ModelKind = 'esr' | 'manet';

/** How images must be prepared for a model: square side, channel order and normalisation after scaling to [0, 1]. */
export interface InputConvention {
  size: number;
  colorOrder: 'rgb' | 'bgr';
  normalization: { mean: readonly [number, number, number]; std: readonly [number, number, number] } | null;
}

/** Options of `FerNetwork.resetClassifier`. */
export interface ResetClassifierOptions {
  /** Seed of the fresh classifier's PyTorch-default initialisation; omit for random. */
  seed?: number;
}

/**
 * The contract every shipped network (ESR, MA-Net) implements on top of `FerModel`: the same classifier methods and
 * the same save, through a `tf.io` handler (fer-core/node's `fileHandler` on disk, `tf.io.browserDownloads`, …).
 */
export interface FerNetwork extends FerModel {
  readonly kind: ModelKind;
  readonly numClasses: number;
  readonly input: InputConvention;
  /** The classifier layers, one per branch or head (owned by the model). */
  getClassifier(): tfl.layers.Layer[];
  /** Replaces every classifier by a fresh Linear(features → labels.length) for `labels`, keeping all other weights. */
  resetClassifier(labels: LabelSet, opts?: ResetClassifierOptions): void;
  /** Saves topology, weights and config as one tfjs artifact (`model.json` + weights). */
  save(handler: tf.io.IOHandler): Promise<tf.io.SaveResult>;
}
