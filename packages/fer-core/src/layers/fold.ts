import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { FerInputError } from '../errors';
import type { TorchBatchNorm } from './torch-batch-norm';
import type { Conv2dFields } from './conv2d-fields';

/** The activation that follows a folded conv + batch norm: a ReLU, or none. */
export type FoldActivation = 'relu' | 'linear';

/** The fields of a tfjs-layers `Conv2D` that a fold reads (the layer's own, never written). */
type Conv2dLike = Conv2dFields<tfl.LayerVariable | null>;

type Variable = tf.Variable;

/** Reads a layer variable; names the layer when it was disposed (the model the fold reads was disposed). */
function live(v: tfl.LayerVariable, layer: string, where: string): Variable {
  let t: Variable | null = null;
  try {
    t = v.read() as Variable; // throws once the layer variable is disposed
  } catch {
    // reported below
  }
  if (!t || t.isDisposed)
    throw new FerInputError(
      `Cannot fold '${layer}'${where}: its weights were disposed.`,
      'Dispose the folded model before the model it was folded from.',
    );
  return t;
}

/**
 * An inference-only convolution with the eval-mode batch norm after it folded in (and the ReLU, if any, fused):
 * `y = act(conv(x, W') + b')` with, per output channel c, s = γ / √(running_var + ε), W'[…, c] = W[…, c]·s and
 * b' = β + (b − running_mean)·s. One `tf.fused.conv2d` (bias + activation), so backends with fused kernels (oneDNN's
 * post-ops on fer-native, XNNPACK on wasm) run conv, batch norm and ReLU as one pass; any backend gives the same values
 * as conv → batch norm → ReLU up to float32 rounding.
 *
 * The fold owns W' and b' (`dispose()` frees them) and only reads the layers' variables. It remembers which tensors
 * it folded: when any of the six variables has been reassigned since (training, `setWeights`, a checkpoint load),
 * the next `apply` folds again, so it never serves stale weights.
 */
export class FoldedConv2d {
  readonly name: string;
  readonly activation: FoldActivation;
  private readonly conv: Conv2dLike;
  private readonly bn: TorchBatchNorm;
  private readonly where: string;
  private filter: tf.Tensor4D | null = null;
  private bias: tf.Tensor1D | null = null;
  /** Data ids of the source variables at the last fold (a reassigned variable gets a new one). */
  private sources: tf.DataId[] = [];
  private disposed = false;

  /**
   * Folds now (errors surface here, not at the first `apply`).
   * @param conv a tfjs-layers `Conv2D` (channels last, linear activation, any stride/padding/dilation, bias or not)
   * @param bn the `TorchBatchNorm` that reads the conv's output, with its running statistics
   * @param where context for error messages, e.g. ` in part 'branch_2'`
   */
  constructor(conv: tfl.layers.Layer, bn: TorchBatchNorm, activation: FoldActivation, where = '') {
    const c = conv as unknown as Conv2dLike;
    this.where = where;
    if (conv.getClassName() !== 'Conv2D' || c.dataFormat !== 'channelsLast' || c.padding === 'causal') {
      throw new FerInputError(
        `Expected a channels-last Conv2D before batch norm '${bn.name}'${where}, but got ${conv.getClassName()} '${conv.name}' (${c.dataFormat ?? '?'}, padding ${c.padding ?? '?'}).`,
      );
    }
    if (c.activation.getClassName() !== 'linear') {
      throw new FerInputError(
        `Expected conv '${conv.name}'${where} to have no activation of its own before batch norm '${bn.name}', but got '${c.activation.getClassName()}'.`,
      );
    }
    if (!c.kernel) throw new FerInputError(`Cannot fold '${conv.name}'${where}: the layer has not been built.`);
    this.name = conv.name;
    this.conv = c;
    this.bn = bn;
    this.activation = activation;
    this.refresh();
  }

  /** `act(conv(x, W') + b')`. The caller owns the result. Folds again first when the source weights changed. */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    this.refresh();
    const [sh, sw] = this.conv.strides;
    const [dh, dw] = this.conv.dilationRate;
    return tf.fused.conv2d({
      x,
      filter: this.filter!,
      strides: [sh, sw],
      pad: this.conv.padding as 'same' | 'valid',
      dilations: [dh, dw],
      bias: this.bias!,
      activation: this.activation,
    });
  }

  /** Releases W' and b'. The source layers are untouched. */
  dispose(): void {
    this.release();
    this.filter = this.bias = null;
    this.disposed = true;
  }

  private release(): void {
    if (this.filter) this.filter.dispose();
    if (this.bias) this.bias.dispose();
  }

  private variables(): Variable[] {
    const w = this.bn.torchWeights();
    return [
      live(this.conv.kernel!, this.conv.name, this.where),
      ...(this.conv.bias && this.conv.useBias ? [live(this.conv.bias, this.conv.name, this.where)] : []),
      ...[w.gamma, w.beta, w.runningMean, w.runningVar].map((v) => live(v, this.bn.name, this.where)),
    ];
  }

  private refresh(): void {
    if (this.disposed) throw new Error(`FoldedConv2d '${this.name}' was used after dispose().`);
    const vars = this.variables();
    if (this.filter && vars.length === this.sources.length && vars.every((v, i) => v.dataId === this.sources[i]))
      return;
    const { filter, bias } = this.fold(vars);
    this.release();
    this.filter = filter;
    this.bias = bias;
    this.sources = vars.map((v) => v.dataId);
  }

  private fold(vars: Variable[]): { filter: tf.Tensor4D; bias: tf.Tensor1D } {
    const kernel = vars[0] as unknown as tf.Tensor4D;
    const [gamma, beta, mean, variance] = vars.slice(-4).map((v) => v.dataSync() as Float32Array);
    const convBias = vars.length === 6 ? (vars[1].dataSync() as Float32Array) : null;
    const channels = kernel.shape[3];
    if (gamma.length !== channels) {
      throw new FerInputError(
        `Expected batch norm '${this.bn.name}'${this.where} to have ${channels} channels (the output of conv '${this.name}'), but got ${gamma.length}.`,
      );
    }
    // Eval-mode batch norm needs finite running statistics and a non-negative variance (PyTorch never stores less).
    const check = (what: string, v: Float32Array, ok: (x: number) => boolean, want: string) => {
      const i = v.findIndex((x) => !ok(x));
      if (i >= 0)
        throw new FerInputError(
          `Cannot fold batch norm '${this.bn.name}'${this.where}: expected ${what} to be ${want}, but channel ${i} holds ${v[i]}.`,
          'Load a checkpoint with complete batch-norm statistics, or recompute them (fer-train precise BN) before folding.',
        );
    };
    check('running_var', variance, (x) => Number.isFinite(x) && x >= 0, 'finite and non-negative');
    check('running_mean', mean, Number.isFinite, 'finite');
    check('gamma', gamma, Number.isFinite, 'finite');
    check('beta', beta, Number.isFinite, 'finite');
    if (convBias) check('the conv bias', convBias, Number.isFinite, 'finite');
    // Per-channel factors in double, rounded once to float32; W' = W·s is one float32 product per weight.
    const eps = this.bn.epsilon;
    const scale = new Float32Array(channels);
    const shift = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      const s = gamma[c] / Math.sqrt(variance[c] + eps);
      scale[c] = s;
      shift[c] = beta[c] + ((convBias ? convBias[c] : 0) - mean[c]) * s;
    }
    return tf.tidy(() => {
      const filter = tf.keep(tf.mul(kernel, tf.tensor1d(scale)) as tf.Tensor4D);
      const bias = tf.keep(tf.tensor1d(shift));
      return { filter, bias };
    });
  }
}
