import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { FerInputError } from '../errors';
import { batchNormTrain } from './batch-norm-train';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type Kwargs = { [key: string]: unknown };
type LayerVariable = tfl.LayerVariable;

/** PyTorch `BatchNorm2d` defaults (`torch/nn/modules/batchnorm.py`): eps 1e-5, momentum 0.1. */
export const TORCH_BN_EPSILON = 1e-5;
export const TORCH_BN_MOMENTUM = 0.1;

/** The five tensors of one PyTorch batch norm, as tfjs-layers variables owned by the layer that created them. */
export interface TorchBnWeights {
  /** [C] scale (PyTorch `weight`). */
  gamma: LayerVariable;
  /** [C] shift (PyTorch `bias`). */
  beta: LayerVariable;
  /** [C] */
  runningMean: LayerVariable;
  /** [C] running *unbiased* variance, as PyTorch keeps it. */
  runningVar: LayerVariable;
  /** [] float32 counter (PyTorch int64 `num_batches_tracked`); +1 per training forward, otherwise unused. */
  numBatchesTracked: LayerVariable;
}

export interface TorchBnOptions {
  /** Batch statistics (and a running-stat update) when true; running statistics when false. */
  training: boolean;
  epsilon?: number;
  /** PyTorch meaning: `running = (1 − momentum)·running + momentum·batch` (Keras' momentum is 1 − this). */
  momentum?: number;
  /**
   * Returns ReLU(batch norm) (a conv → BN → ReLU block's last two steps). In training on fer-native the ReLU runs
   * inside the batch-norm kernels (two fewer full-size passes, one fewer map kept for the backward); same values.
   */
  relu?: boolean;
}

/**
 * Batch norm over the last axis with PyTorch's semantics (docs/method.md#cbam; fixture manifests
 * `batchnorm_semantics`): train mode normalises with the batch mean and the *biased* batch variance over all other axes
 * and moves the running statistics towards the batch mean and the *unbiased* variance (× n/(n−1), n = N·H·W); eval mode
 * uses the running statistics. Running-stat writes are side effects on `w`; the returned tensor is owned by the caller.
 * @param x [..., C] float32 (NHWC for images)
 */
export function applyTorchBatchNorm(x: tf.Tensor, w: TorchBnWeights, opts: TorchBnOptions): tf.Tensor {
  const eps = opts.epsilon ?? TORCH_BN_EPSILON;
  const momentum = opts.momentum ?? TORCH_BN_MOMENTUM;
  if (!opts.training) {
    return tf.tidy(() => {
      const y = tf.batchNorm(x, w.runningMean.read(), w.runningVar.read(), w.beta.read(), w.gamma.read(), eps);
      return opts.relu ? tf.relu(y) : y;
    });
  }
  const channels = x.shape[x.rank - 1];
  const n = x.size / channels;
  if (n < 2) {
    throw new FerInputError(
      `Batch norm in training mode needs more than 1 value per channel, but got input of shape [${x.shape.join(', ')}].`,
      'Use a batch size above 1 (or larger feature maps) when training, or run with training: false.',
    );
  }
  // One op with the closed-form backward (batch-norm-train.ts): native kernels on fer-native, stock ops elsewhere.
  const { y, mean, variance } = batchNormTrain(x, w.gamma.read(), w.beta.read(), eps, { relu: opts.relu });
  tf.tidy(() => {
    // Running statistics are state: nothing downstream of the loss reads them, so no gradient flows through them.
    w.runningMean.write(tf.add(tf.mul(w.runningMean.read(), 1 - momentum), tf.mul(mean, momentum)));
    w.runningVar.write(tf.add(tf.mul(w.runningVar.read(), 1 - momentum), tf.mul(variance, (momentum * n) / (n - 1))));
    w.numBatchesTracked.write(tf.add(w.numBatchesTracked.read(), 1));
  });
  tf.dispose([mean, variance]);
  return y;
}

export interface TorchBatchNormArgs extends LayerArgs {
  /** Default 1e-5 (PyTorch). */
  epsilon?: number;
  /** PyTorch meaning (0.1 default; 0.01 in CBAM's spatial gate). Keras momentum = 1 − this. */
  momentum?: number;
  /**
   * Returns ReLU(batch norm): a conv → BN → ReLU block with no separate ReLU layer, fused into the batch-norm kernels
   * on fer-native (see {@link TorchBnOptions.relu}; same values). Saved in the layer's config.
   */
  relu?: boolean;
}

/**
 * `torch.nn.BatchNorm2d` (affine, tracked running stats) over the last axis, as a tfjs-layers layer.
 * Weights, in order: gamma, beta, running_mean, running_var, num_batches_tracked. Pass `{ training: true }` to
 * `apply` for batch statistics; `LayersModel.apply(x, { training })` forwards the flag. `{ relu: true }` (eager
 * calls), or the `relu` option for every call (graph models), returns ReLU of the result, fused into the kernels on
 * fer-native (see {@link TorchBnOptions.relu}).
 */
export class TorchBatchNorm extends tfl.layers.Layer {
  static className = 'TorchBatchNorm';
  readonly epsilon: number;
  readonly momentum: number;
  /** ReLU applied to the output (the `relu` constructor option). */
  readonly relu: boolean;
  private bn: TorchBnWeights | null = null;

  constructor(args: TorchBatchNormArgs = {}) {
    super(args);
    this.epsilon = args.epsilon ?? TORCH_BN_EPSILON;
    this.momentum = args.momentum ?? TORCH_BN_MOMENTUM;
    this.relu = args.relu === true;
    if (!(this.epsilon > 0)) throw new FerInputError(`Expected epsilon to be > 0, but got ${this.epsilon}.`);
    if (!(this.momentum >= 0 && this.momentum <= 1)) {
      throw new FerInputError(`Expected momentum (PyTorch meaning) in [0, 1], but got ${this.momentum}.`);
    }
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const c = shape[shape.length - 1];
    if (c == null)
      throw new FerInputError(
        `TorchBatchNorm '${this.name}' needs a known channel count, but got shape [${shape.join(', ')}].`,
      );
    this.bn = {
      gamma: this.addWeight('gamma', [c], 'float32', tfl.initializers.ones()),
      beta: this.addWeight('beta', [c], 'float32', tfl.initializers.zeros()),
      runningMean: this.addWeight('running_mean', [c], 'float32', tfl.initializers.zeros(), undefined, false),
      runningVar: this.addWeight('running_var', [c], 'float32', tfl.initializers.ones(), undefined, false),
      numBatchesTracked: this.addWeight(
        'num_batches_tracked',
        [],
        'float32',
        tfl.initializers.zeros(),
        undefined,
        false,
      ),
    };
    this.built = true;
  }

  /**
   * The layer's five variables (owned by the layer; read them, do not dispose them), e.g. to fold the batch norm
   * into the convolution before it for inference (`FoldedConv2d`).
   */
  torchWeights(): TorchBnWeights {
    if (!this.bn) {
      throw new FerInputError(
        `Batch norm '${this.name}' has no statistics yet: the layer was never built.`,
        'Apply the model to an input (or load its weights) first.',
      );
    }
    return this.bn;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (!this.bn) throw new Error(`TorchBatchNorm '${this.name}' was called before build().`);
    return applyTorchBatchNorm(x, this.bn, {
      training: kwargs.training === true,
      epsilon: this.epsilon,
      momentum: this.momentum,
      relu: this.relu || kwargs.relu === true,
    });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    // `relu` only when set, so configs saved before the option existed stay as they were.
    return {
      ...super.getConfig(),
      epsilon: this.epsilon,
      momentum: this.momentum,
      ...(this.relu ? { relu: true } : {}),
    };
  }
}
tf.serialization.registerClass(TorchBatchNorm);
