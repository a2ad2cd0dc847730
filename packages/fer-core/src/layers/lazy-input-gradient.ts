import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { activeTape, isTapeOn, replaceLayerCall, runKernel } from '../tfjs-internals';
import type { Conv2dFields } from './conv2d-fields';

/** The fields of a tfjs-layers `Conv2D` that its forward reads. */
type Conv2dLike = Conv2dFields<{ read(): tf.Tensor }>;

/**
 * True when `x` was computed, on the active gradient tape, from a `tf.Variable`: then something trainable may need
 * its gradient. The stem's tape is a handful of nodes (the image, maybe a padding op), so the walk is short.
 */
function dependsOnVariable(x: tf.Tensor): boolean {
  const tape = activeTape();
  const producer = new Map<number, (typeof tape)[number]>();
  for (const node of tape) for (const out of node.outputs) producer.set(out.id, node);
  const seen = new Set<number>();
  const stack: tf.Tensor[] = [x];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (t instanceof tf.Variable) return true;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    const node = producer.get(t.id);
    if (node) stack.push(...Object.values(node.inputs));
  }
  return false;
}

/**
 * Makes a linear tfjs-layers `Conv2D` (with or without bias) whose input is the network input skip the input
 * gradient in training. Why: under a gradient tape tfjs-layers runs a linear conv as tfjs-core's fused conv, whose
 * custom gradient computes the *input* gradient eagerly even when nothing needs it. For MA-Net's stem (conv1 on the
 * [B, 230, 230, 3] padded image) that was a stock wasm Conv2DBackpropInput of 100-160 ms per micro-batch of 8, thrown
 * away (ESR's conv1 at 96 px: ~69 ms). fer-models-manet and fer-models-esr apply it to their stem conv when they
 * create or load a model.
 *
 * Under a tape, the layer runs the same fused conv (forward values bit-identical to the stock layer) inside a custom
 * gradient over the kernel and bias only: their gradients are the stock ones (Conv2DBackpropFilter, the bias sum of
 * dy), and the image gets none. Without a tape (inference), or when the input was computed from a `tf.Variable` on
 * the tape (something trainable before the conv), the stock call runs. Consequence: `tf.grad` with respect to the
 * image itself through this layer throws (no path); saliency maps need the stock layer. The layer keeps its class
 * and config (saving is unaffected); call again after loading a saved model.
 */
export function useLazyInputGradient(layer: tfl.layers.Layer): void {
  const conv = layer as unknown as Conv2dLike;
  const cls = layer.getClassName();
  const plain =
    cls === 'Conv2D' &&
    conv.activation.getClassName() === 'linear' &&
    conv.dataFormat === 'channelsLast' &&
    conv.padding !== 'causal';
  if (!plain || conv.dilationRate.some((d) => d !== 1)) {
    throw new Error(
      `useLazyInputGradient expects a linear, channels-last, undilated Conv2D, but '${layer.name}' is a ${cls}${cls === 'Conv2D' ? ' with an activation, another format or a dilation' : ''}.`,
    );
  }
  replaceLayerCall(layer, (stockCall) => (inputs, kwargs) => {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
    if (!isTapeOn() || dependsOnVariable(x)) return stockCall(inputs, kwargs);
    return tf.tidy(() => {
      const strides = conv.strides as [number, number];
      const pad = conv.padding as 'valid' | 'same';
      // The stock layer's op (tfjs-layers conv2dWithBiasActivation): same kernel, same values.
      const forward = (w: tf.Tensor, b?: tf.Tensor) =>
        tf.fused.conv2d({ x, filter: w as tf.Tensor4D, strides, pad, dataFormat: 'NHWC', bias: b });
      // The stock fused gradient's filter term (tfjs-core ops/fused/conv2d.ts): Conv2DBackpropFilter(x, dy).
      const filterGrad = (xs: tf.Tensor, dy: tf.Tensor, w: tf.Tensor) =>
        runKernel<tf.Conv2DBackpropFilterAttrs>(
          tf.Conv2DBackpropFilter,
          { x: xs, dy },
          { strides, pad, dataFormat: 'NHWC', filterShape: w.shape as [number, number, number, number] },
        );
      const kernel = conv.kernel.read();
      // The bias is created in build(), after this call is installed: read it at call time.
      const bias = conv.useBias && conv.bias ? conv.bias.read() : undefined;
      // customGrad's inputs are the kernel (and bias), not x: the tape gets no edge to the image.
      const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
        const [w, b] = args as tf.Tensor[];
        // x may be an intermediate (a padding op's output) that the forward's tidy disposes: save it for backward.
        (args[args.length - 1] as tf.GradSaveFunc)([x]);
        return {
          value: forward(w, bias ? b : undefined),
          // Bias term as the stock getFusedBiasGradient: dy summed over batch and positions.
          gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
            bias
              ? [filterGrad(saved[0], dy, w), tf.reshape(tf.sum(dy, [0, 1, 2]), b.shape)]
              : [filterGrad(saved[0], dy, w)],
        };
      });
      return bias ? f(kernel, bias) : f(kernel);
    });
  });
}
