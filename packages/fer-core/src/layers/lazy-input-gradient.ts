import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

/** The fields of a tfjs-layers `Conv2D` that its forward reads. */
interface Conv2dLike {
  name: string;
  kernel: { read(): tf.Tensor };
  bias: { read(): tf.Tensor } | null;
  useBias: boolean;
  strides: number[];
  padding: 'valid' | 'same' | 'causal';
  dataFormat: string;
  dilationRate: number[];
  activation: { getClassName(): string };
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: unknown): tf.Tensor | tf.Tensor[];
}

/**
 * Makes a linear tfjs-layers `Conv2D` (with or without bias) that reads the network input run the plain `conv2d` op
 * (+ bias) instead of tfjs-layers' fused conv. Why: under a gradient tape with a linear activation tfjs-core takes
 * the fused path, whose custom gradient computes the *input* gradient eagerly even when nothing needs it. For
 * MA-Net's stem (conv1 on the [B, 230, 230, 3] padded image) that was a stock wasm Conv2DBackpropInput of 100-160 ms
 * per micro-batch of 8, thrown away (ESR's conv1 at 96 px: ~69 ms). fer-models-manet and fer-models-esr apply it to their
 * stem conv when they create or load a model. The plain ops' gradients are lazy, and tfjs prunes
 * inputs that no trainable variable reaches, so the image is never differentiated. Forward values are unchanged
 * (the same XNNPACK convolution). The layer keeps its class and config (saving is unaffected); call again after
 * loading a saved model.
 */
export function useLazyInputGradient(layer: tfl.layers.Layer): void {
  const conv = layer as unknown as Conv2dLike;
  const cls = layer.getClassName();
  if (cls !== 'Conv2D' || conv.activation.getClassName() !== 'linear' || conv.dataFormat !== 'channelsLast' || conv.padding === 'causal') {
    throw new Error(`useLazyInputGradient expects a linear, channels-last Conv2D, but '${layer.name}' is a ${cls}${cls === 'Conv2D' ? ' with an activation or another format' : ''}.`);
  }
  conv.call = (inputs) =>
    tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const y = tf.conv2d(x, conv.kernel.read() as tf.Tensor4D, conv.strides as [number, number], conv.padding as 'valid' | 'same', 'NHWC', conv.dilationRate as [number, number]);
      // The bias is created in build(), after this call is installed: read it at call time.
      return conv.useBias && conv.bias ? tf.add(y, conv.bias.read()) : y;
    });
}
