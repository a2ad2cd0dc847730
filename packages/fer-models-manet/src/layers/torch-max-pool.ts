import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

export interface TorchMaxPool2dArgs {
  poolSize: number;
  strides: number;
  /** Symmetric padding on each side, as PyTorch's `MaxPool2d(padding=p)`. */
  padding: number;
  name?: string;
}

/**
 * `nn.MaxPool2d(kernel_size, stride, padding)` in NHWC: padded positions never win the max (they act as -inf,
 * not as zeros), and the output size is floor((H + 2p - k) / s) + 1 as in PyTorch (ceil_mode false). Keras pooling
 * only knows 'valid' and 'same', and 'same' pads asymmetrically (0 before, 1 after for 3x3/2 on an even size).
 */
export class TorchMaxPool2d extends tfl.layers.Layer {
  static className = 'TorchMaxPool2d';
  readonly poolSize: number;
  readonly strides: number;
  readonly padding: number;

  constructor(args: TorchMaxPool2dArgs) {
    super({ name: args.name });
    for (const [what, v, min] of [
      ['poolSize', args.poolSize, 1],
      ['strides', args.strides, 1],
      ['padding', args.padding, 0],
    ] as const) {
      if (!Number.isInteger(v) || v < min)
        throw new Error(`TorchMaxPool2d: expected ${what} to be an integer >= ${min}, but got ${v}.`);
    }
    if (args.padding * 2 > args.poolSize) {
      throw new Error(
        `TorchMaxPool2d: padding ${args.padding} must be at most half of poolSize ${args.poolSize} (PyTorch's rule).`,
      );
    }
    this.poolSize = args.poolSize;
    this.strides = args.strides;
    this.padding = args.padding;
  }

  private outSize(n: number | null): number | null {
    return n == null ? null : Math.floor((n + 2 * this.padding - this.poolSize) / this.strides) + 1;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [s[0], this.outSize(s[1]), this.outSize(s[2]), s[3]];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      // A numeric pad is explicit symmetric padding in tfjs; the kernels skip out-of-range taps.
      return tf.maxPool(x, this.poolSize, this.strides, this.padding);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), poolSize: this.poolSize, strides: this.strides, padding: this.padding };
  }
}
tf.serialization.registerClass(TorchMaxPool2d);
