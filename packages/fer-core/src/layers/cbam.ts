import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { FerInputError } from '../errors';
import { stagedMean } from '../tensor/reduce';
import { hasKernel, isTapeOn, runKernel, runKernelOutputs } from '../tfjs-internals';
import { applyTorchBatchNorm, type TorchBnWeights } from './torch-batch-norm';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type Kwargs = { [key: string]: unknown };
type LayerVariable = tfl.LayerVariable;

/** Momentum (PyTorch meaning) of the BN inside CBAM's spatial `BasicConv` (docs/method.md#cbam). */
export const CBAM_SPATIAL_BN_MOMENTUM = 0.01;

export interface CbamArgs extends LayerArgs {
  /** Channel-MLP reduction; hidden size ⌊C / reduction⌋ (at least 1). Default 16. */
  reduction?: number;
  /** Spatial-gate conv kernel size (odd). Default 7. */
  spatialKernelSize?: number;
  /** Seed for the PyTorch-default initialisers (omit for random). */
  seed?: number;
}

/** The three tensors `Cbam` returns (NHWC). All owned by the caller. */
export interface CbamOutput {
  /** [N, H, W, C] gated map: x · a_ch · a_sp */
  output: tf.Tensor4D;
  /** [N, C] channel attention a_ch ∈ (0, 1) */
  channelAttention: tf.Tensor2D;
  /** [N, H, W, 1] spatial attention a_sp ∈ (0, 1) */
  spatialAttention: tf.Tensor4D;
}

/**
 * CBAM (Woo et al., ECCV 2018), as the reference's `model/cbam.py` computes it (docs/method.md#cbam), channels last:
 * - channel gate: global avg- and max-pooled vectors through one shared MLP (C → ⌊C/r⌋ → C, ReLU, biases), summed
 *   (avg first), sigmoid → a_ch [N, C]; x ← x · a_ch (the max is a max pool over the whole map, so its gradient goes
 *   to one position per channel, as in the reference, not to every tie);
 * - spatial gate: [max over C, mean over C] (that order) → 7×7 conv, padding 3, no bias → PyTorch batch norm
 *   (eps 1e-5, momentum 0.01) → sigmoid → a_sp [N, H, W, 1]; x ← x · a_sp.
 *
 * `apply` returns `[output, channelAttention, spatialAttention]`. Weights (PyTorch names in brackets):
 * mlp1_kernel [C, h] (`ChannelGate.mlp.1.weight`ᵀ), mlp1_bias, mlp2_kernel [h, C] (`mlp.3.weight`ᵀ), mlp2_bias,
 * spatial_conv_kernel [k, k, 2, 1] (`SpatialGate.spatial.conv.weight`, OIHW→HWIO), spatial_bn_{gamma, beta,
 * running_mean, running_var, num_batches_tracked} (`SpatialGate.spatial.bn.*`). See `CBAM_TORCH_KEYS`.
 */
export class Cbam extends tfl.layers.Layer {
  static className = 'Cbam';
  readonly reduction: number;
  readonly spatialKernelSize: number;
  private readonly seed?: number;
  private w: {
    mlp1Kernel: LayerVariable;
    mlp1Bias: LayerVariable;
    mlp2Kernel: LayerVariable;
    mlp2Bias: LayerVariable;
    spatialKernel: LayerVariable;
    bn: TorchBnWeights;
  } | null = null;

  constructor(args: CbamArgs = {}) {
    super(args);
    this.reduction = args.reduction ?? 16;
    this.spatialKernelSize = args.spatialKernelSize ?? 7;
    this.seed = args.seed;
    if (!Number.isInteger(this.reduction) || this.reduction < 1) {
      throw new FerInputError(`Expected reduction to be a positive integer, but got ${this.reduction}.`);
    }
    if (!Number.isInteger(this.spatialKernelSize) || this.spatialKernelSize < 1 || this.spatialKernelSize % 2 === 0) {
      throw new FerInputError(
        `Expected spatialKernelSize to be a positive odd integer, but got ${this.spatialKernelSize}.`,
      );
    }
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const c = shape[shape.length - 1];
    if (shape.length !== 4 || c == null) {
      throw new FerInputError(
        `Cbam '${this.name}' expects [N, H, W, C] input with known C, but got [${shape.join(', ')}].`,
      );
    }
    const h = Math.max(1, Math.floor(c / this.reduction));
    const k = this.spatialKernelSize;
    const s = (i: number) => (this.seed === undefined ? undefined : this.seed + i);
    // PyTorch defaults: weights and biases ~ U(±1/√fan_in) (kaiming_uniform a=√5 = varianceScaling(1/3, fanIn)).
    const kern = (i: number) =>
      tfl.initializers.varianceScaling({ scale: 1 / 3, mode: 'fanIn', distribution: 'uniform', seed: s(i) });
    const bias = (fanIn: number, i: number) =>
      tfl.initializers.randomUniform({ minval: -1 / Math.sqrt(fanIn), maxval: 1 / Math.sqrt(fanIn), seed: s(i) });
    this.w = {
      mlp1Kernel: this.addWeight('mlp1_kernel', [c, h], 'float32', kern(0)),
      mlp1Bias: this.addWeight('mlp1_bias', [h], 'float32', bias(c, 1)),
      mlp2Kernel: this.addWeight('mlp2_kernel', [h, c], 'float32', kern(2)),
      mlp2Bias: this.addWeight('mlp2_bias', [c], 'float32', bias(h, 3)),
      spatialKernel: this.addWeight('spatial_conv_kernel', [k, k, 2, 1], 'float32', kern(4)),
      bn: {
        gamma: this.addWeight('spatial_bn_gamma', [1], 'float32', tfl.initializers.ones()),
        beta: this.addWeight('spatial_bn_beta', [1], 'float32', tfl.initializers.zeros()),
        runningMean: this.addWeight(
          'spatial_bn_running_mean',
          [1],
          'float32',
          tfl.initializers.zeros(),
          undefined,
          false,
        ),
        runningVar: this.addWeight('spatial_bn_running_var', [1], 'float32', tfl.initializers.ones(), undefined, false),
        numBatchesTracked: this.addWeight(
          'spatial_bn_num_batches_tracked',
          [],
          'float32',
          tfl.initializers.zeros(),
          undefined,
          false,
        ),
      },
    };
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor[] {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
    const w = this.w;
    if (!w) throw new Error(`Cbam '${this.name}' was called before build().`);
    const training = kwargs.training === true;
    return tf.tidy(() => {
      const [n, , , c] = x.shape;
      // Channel gate. [N, H, W, C] -> [N, C] pools; the MLP is shared by both.
      const mlp = (v: tf.Tensor2D) =>
        tf.add(
          tf.matMul(
            tf.relu(tf.add(tf.matMul(v, w.mlp1Kernel.read() as tf.Tensor2D), w.mlp1Bias.read())),
            w.mlp2Kernel.read() as tf.Tensor2D,
          ),
          w.mlp2Bias.read(),
        );
      const [avg, max] = spatialPools(x);
      const channelAttention = tf.sigmoid(tf.add(mlp(avg), mlp(max))) as tf.Tensor2D;
      const xc = tf.mul(x, tf.reshape(channelAttention, [n, 1, 1, c]));
      // Spatial gate. [N, H, W, 2] = [max over C, mean over C]; 'same' at stride 1 = symmetric padding (k−1)/2.
      // (The max over C sends its gradient to every tied channel, torch.max(x, 1) to one; on real faces channel
      // maxima tie only at 0, where the ReLU before CBAM stops the gradient anyway.)
      const pooled = channelPools(xc as tf.Tensor4D);
      const conv = tf.conv2d(pooled, w.spatialKernel.read() as tf.Tensor4D, 1, 'same');
      const bn = applyTorchBatchNorm(conv, w.bn, { training, momentum: CBAM_SPATIAL_BN_MOMENTUM });
      const spatialAttention = tf.sigmoid(bn) as tf.Tensor4D;
      const output = tf.mul(xc, spatialAttention) as tf.Tensor4D;
      return [output, channelAttention, spatialAttention];
    });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape[] {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [s, [s[0], s[3]], [s[0], s[1], s[2], 1]];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), reduction: this.reduction, spatialKernelSize: this.spatialKernelSize };
  }
}
tf.serialization.registerClass(Cbam);

/**
 * Optional kernel a backend may register (fer-native does): the gradient of a mean and a max over the same axes in
 * one pass. Inputs `{ x, y, dMean, dMax }` (y = max(x, axis); y, dMean and dMax in x's shape with the reduced axes set
 * to 1), attr `axis`; dx = dMean / n + dMax·(1 − step(y − x)) (n the reduced count, each term rounded as the Mean
 * gradient's RealDiv and fer-backend's Max gradient round it).
 */
export const MEAN_MAX_GRAD_KERNEL = 'FerMeanMaxGrad';
/**
 * Optional kernel a backend may register (fer-native does): [mean, max] of x over `axis` (keepDims) in one pass,
 * attrs `{ axis, staged }` (`staged`: the mean as `stagedMean`, otherwise as `tf.mean`); both bit-identical to those
 * ops. Used with {@link MEAN_MAX_GRAD_KERNEL}.
 */
export const MEAN_MAX_KERNEL = 'FerMeanMax';

/**
 * mean and max of x over `axes` (keepDims), computed by {@link MEAN_MAX_KERNEL} when the backend has it (one read
 * pass; `staged` says which mean) and otherwise by `mean` and tf.max, as one differentiable op whose backward is
 * one {@link MEAN_MAX_GRAD_KERNEL} pass (instead of a Tile of the mean's gradient, the max's mask and their Add).
 * Returns `pack(mean, max)` (customGrad has one output); `unpack(dy)` splits its gradient into [dMean, dMax] (each
 * in the keepDims shape).
 */
function meanMaxOp(
  x: tf.Tensor4D,
  axes: number[],
  staged: boolean,
  mean: (x: tf.Tensor) => tf.Tensor,
  pack: (mean: tf.Tensor, max: tf.Tensor) => tf.Tensor,
  unpack: (dy: tf.Tensor) => [tf.Tensor, tf.Tensor],
): tf.Tensor {
  const op = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    const [mn, mx] = hasKernel(MEAN_MAX_KERNEL)
      ? runKernelOutputs(MEAN_MAX_KERNEL, { x: xi }, { axis: axes, staged })
      : [mean(xi), tf.max(xi, axes, true)];
    save([xi, mx]);
    return {
      value: pack(mn, mx),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [dMean, dMax] = unpack(dy);
        return runKernel(MEAN_MAX_GRAD_KERNEL, { x: saved[0], y: saved[1], dMean, dMax }, { axis: axes });
      },
    };
  }) as never) as (x: tf.Tensor) => tf.Tensor;
  return op(x);
}

let fusedPoolsOn = false;

/**
 * Opt-in: CBAM's two mean/max pool pairs as one op each (one-pass forward and backward on fer-native:
 * {@link MEAN_MAX_KERNEL}, {@link MEAN_MAX_GRAD_KERNEL}) while a gradient is recorded. Off by default: the forward
 * bits are the same, but the engine then adds x's gradient terms in another order (gate + (mean + max) instead of
 * (gate + max) + mean), and a one-epoch run amplifies those last bits into another trajectory (fer-train's real-faces
 * learning test, seed 2 on native: 34.0 % → 24.9 %, the majority rate). Process-wide; returns the previous setting.
 */
export function useFusedCbamPools(on: boolean): boolean {
  const previous = fusedPoolsOn;
  fusedPoolsOn = on;
  return previous;
}

/** The one-op pools: opted in, a gradient being recorded, and the backend has their backward kernel. */
function fusedPools(): boolean {
  return fusedPoolsOn && isTapeOn() && hasKernel(MEAN_MAX_GRAD_KERNEL);
}

/**
 * CBAM's global pools over H, W: [avg, max], each [N, C] (avg as `stagedMean`). The max is the reference's
 * F.max_pool2d over the whole map, so its gradient goes to ONE position per channel (the first maximum in row-major
 * order, on every backend's MaxPoolGrad). tf.max's gradient (and FerMeanMaxGrad's) goes to every tied maximum
 * instead, and ReLU maps of faces upscaled from 48 px tie by the hundreds over flat, saturated regions, which
 * multiplied those gradients by the tie count (docs/method.md#cbam). So these pools are not fused.
 */
function spatialPools(x: tf.Tensor4D): [tf.Tensor2D, tf.Tensor2D] {
  const [n, h, w, c] = x.shape;
  const max = tf.reshape(tf.maxPool(x, [h, w], [h, w], 'valid'), [n, c]) as tf.Tensor2D;
  return [stagedMean(x, [1, 2]) as tf.Tensor2D, max];
}

/** CBAM's spatial-gate input: [N, H, W, 2] = [max over C, mean over C]. */
function channelPools(x: tf.Tensor4D): tf.Tensor4D {
  if (!fusedPools()) return tf.concat([tf.max(x, 3, true), tf.mean(x, 3, true)], 3) as tf.Tensor4D;
  return meanMaxOp(
    x,
    [3],
    false,
    (xi) => tf.mean(xi, 3, true),
    (mean, max) => tf.concat([max, mean], 3),
    (dy) => {
      const [dMax, dMean] = tf.split(dy, 2, 3);
      return [dMean, dMax];
    },
  ) as tf.Tensor4D;
}

/** Runs a `Cbam` layer eagerly and names its three outputs. Caller owns them. */
export function applyCbam(layer: Cbam, x: tf.Tensor4D, training: boolean): CbamOutput {
  const [output, channelAttention, spatialAttention] = layer.apply(x, { training }) as tf.Tensor[];
  return {
    output: output as tf.Tensor4D,
    channelAttention: channelAttention as tf.Tensor2D,
    spatialAttention: spatialAttention as tf.Tensor4D,
  };
}
