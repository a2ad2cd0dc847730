import * as tf from '@tensorflow/tfjs-core';
import { hasKernel, runKernelOutputs } from '../tfjs-internals';
import { stagedMean, stagedSum } from '../tensor/reduce';

/**
 * Optional kernel a backend may register (fer-native does): train-mode batch norm over the last axis in one op.
 * Inputs `{ x, scale, offset }` ([..., C], [C], [C]); attrs {@link BatchNormTrainAttrs}. Outputs `[y, mean, variance]`:
 * the batch mean and *biased* variance over all other axes ([C]) as the composite below computes them (`stagedMean`
 * of x and of float32 (x − mean)²), and y = offset + (x − mean)·scale / sqrt(variance + ε) from those float32 values.
 * Same statistics, same discrete decisions downstream (ReLU, max-pool ties) as every other backend.
 */
export const BATCH_NORM_TRAIN_KERNEL = 'FerBatchNormTrain';
/**
 * Its backward: inputs `{ x, dy, mean, variance, scale }`, the same attrs; outputs `[dx, dScale, dOffset]` with
 * xhat = (x − mean)/sqrt(variance + ε): dx = scale/sqrt(variance + ε)·(dy − mean(dy) − xhat·mean(dy·xhat)),
 * dScale = Σ dy·xhat, dOffset = Σ dy (means and sums over all but the last axis).
 */
export const BATCH_NORM_TRAIN_GRAD_KERNEL = 'FerBatchNormTrainGrad';

export interface BatchNormTrainAttrs {
  epsilon: number;
  /**
   * Forward: y = Relu(batch norm) in the same pass. Backward: the grad kernel then gets the ReLU's output as input
   * `reluY` and masks dy as Relu's gradient does (dy·step(reluY)) before the batch-norm backward.
   */
  relu?: boolean;
}

export interface BatchNormTrainResult {
  /** Normalised, scaled and shifted x; differentiable w.r.t. x, scale and offset. */
  y: tf.Tensor;
  /** [C] batch mean (not differentiable: running-stat bookkeeping only). */
  mean: tf.Tensor1D;
  /** [C] biased batch variance (same). */
  variance: tf.Tensor1D;
}

/** Whether the active backend runs train-mode batch norm as the two kernels above. */
function native(): boolean {
  return hasKernel(BATCH_NORM_TRAIN_KERNEL) && hasKernel(BATCH_NORM_TRAIN_GRAD_KERNEL);
}

/**
 * Train-mode batch norm over the last axis as one differentiable op: batch mean and biased variance, y, and the
 * closed-form backward PyTorch uses (see {@link BATCH_NORM_TRAIN_GRAD_KERNEL}) instead of differentiating the graph
 * of mean, square, sub and batchNorm (about ten full-size passes and a Tile per batch norm). Runs the two kernels
 * when the backend registers them (fer-native: three passes forward with the composite's exact statistics, two
 * backward accumulating in double) and otherwise a composite of stock ops (wasm, cpu, webgl): staged sums for the
 * statistics, as accurate as `stagedMean`.
 * With `relu`, y is ReLU(batch norm): one op on fer-native (see {@link BatchNormTrainAttrs.relu}), tf.relu after the
 * op elsewhere; the same bits either way. All three results are owned by the caller.
 * @param x [..., C] float32; scale, offset [C]
 */
export function batchNormTrain(
  x: tf.Tensor,
  scale: tf.Tensor,
  offset: tf.Tensor,
  epsilon: number,
  opts: { relu?: boolean } = {},
): BatchNormTrainResult {
  // A fused ReLU runs inside the kernels (no pre-ReLU map is kept, and Relu's gradient pass is folded into the
  // batch-norm backward); elsewhere tf.relu follows the op, the same values.
  const fuseRelu = opts.relu === true && native();
  const attrs: BatchNormTrainAttrs = fuseRelu ? { epsilon, relu: true } : { epsilon };
  let stats: [tf.Tensor1D, tf.Tensor1D] | null = null;
  const op = tf.customGrad(((xIn: tf.Tensor, s: tf.Tensor, o: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, mean, variance] = native()
      ? runKernelOutputs(BATCH_NORM_TRAIN_KERNEL, { x: xIn, scale: s, offset: o }, attrs)
      : compositeForward(xIn, s, o, epsilon);
    save(fuseRelu ? [xIn, mean, variance, s, y] : [xIn, mean, variance, s]);
    // The body runs in a tidy that keeps only `value`: the statistics leave it kept, and are disposed by the caller.
    stats = [tf.keep(mean) as tf.Tensor1D, tf.keep(variance) as tf.Tensor1D];
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sm, sv, ss, reluY] = saved;
        const inputs = { x: sx, dy, mean: sm, variance: sv, scale: ss, ...(fuseRelu ? { reluY } : {}) };
        return native()
          ? runKernelOutputs(BATCH_NORM_TRAIN_GRAD_KERNEL, inputs, attrs)
          : compositeBackward(sx, dy, sm, sv, ss, epsilon);
      },
    };
  }) as never) as (x: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => tf.Tensor;
  const bn = op(x, scale, offset);
  const y = opts.relu === true && !fuseRelu ? tf.tidy(() => tf.relu(bn)) : bn;
  if (y !== bn) bn.dispose();
  const [mean, variance] = stats as unknown as [tf.Tensor1D, tf.Tensor1D];
  return { y, mean, variance };
}

function reductionAxes(x: tf.Tensor): number[] {
  return [...Array(x.rank - 1).keys()];
}

/** Statistics by staged sums (≈ PyTorch's accuracy), y by the backend's FusedBatchNorm: five full-size passes. */
function compositeForward(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, eps: number): tf.Tensor[] {
  const axes = reductionAxes(x);
  const mean = stagedMean(x, axes);
  const variance = tf.tidy(() => stagedMean(tf.square(tf.sub(x, mean)), axes));
  return [tf.batchNorm(x, mean, variance, offset, scale, eps), mean, variance];
}

/**
 * The closed-form backward from stock ops, seven full-size passes: xhat and a·xhat + b are each one FusedBatchNorm
 * (it computes offset + (x − mean)·scale/sqrt(variance + ε)), so
 *   dx = k·dy + batchNorm(x, mean, variance, scale = −k·mean(dy·xhat), offset = −k·mean(dy)),  k = scale·rstd.
 */
function compositeBackward(
  x: tf.Tensor,
  dy: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  scale: tf.Tensor,
  eps: number,
): tf.Tensor[] {
  return tf.tidy(() => {
    const axes = reductionAxes(x);
    const n = x.size / x.shape[x.rank - 1];
    const xhat = tf.batchNorm(x, mean, variance, undefined, undefined, eps);
    const dOffset = stagedSum(dy, axes);
    const dScale = stagedSum(tf.mul(dy, xhat), axes);
    xhat.dispose();
    const k = tf.mul(scale, tf.rsqrt(tf.add(variance, tf.scalar(eps))));
    const a = tf.neg(tf.mul(k, tf.div(dScale, tf.scalar(n))));
    const b = tf.neg(tf.mul(k, tf.div(dOffset, tf.scalar(n))));
    const dx = tf.add(tf.mul(dy, k), tf.batchNorm(x, mean, variance, b, a, eps));
    return [dx, dScale, dOffset];
  });
}
