import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

export interface ChannelSliceArgs {
  /** First channel (0-based). */
  start: number;
  /** Number of channels. */
  size: number;
  name?: string;
}

/** Channels [start, start + size) of an NHWC tensor: one group of PyTorch's `torch.split(x, size, dim=1)`. */
export class ChannelSlice extends tfl.layers.Layer {
  static className = 'ChannelSlice';
  readonly start: number;
  readonly size: number;

  constructor(args: ChannelSliceArgs) {
    super({ name: args.name });
    if (!Number.isInteger(args.start) || args.start < 0)
      throw new Error(`ChannelSlice: expected start to be an integer >= 0, but got ${args.start}.`);
    if (!Number.isInteger(args.size) || args.size < 1)
      throw new Error(`ChannelSlice: expected size to be a positive integer, but got ${args.size}.`);
    this.start = args.start;
    this.size = args.size;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const c = s[s.length - 1];
    if (c != null && this.start + this.size > c) {
      throw new Error(
        `ChannelSlice '${this.name}': channels [${this.start}, ${this.start + this.size}) exceed the input's ${c}.`,
      );
    }
    return [...s.slice(0, -1), this.size];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const begin = x.shape.map((_, i) => (i === x.rank - 1 ? this.start : 0));
      const size = x.shape.map((d, i) => (i === x.rank - 1 ? this.size : d));
      return tf.slice(x, begin, size);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), start: this.start, size: this.size };
  }
}
tf.serialization.registerClass(ChannelSlice);
