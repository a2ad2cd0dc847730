import * as tf from '@tensorflow/tfjs-core';

/** What a custom-gradient body returns: the value and dy → gradient(s) of the inputs. */
export interface CustomResult {
  value: tf.Tensor;
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
}

/**
 * Typed wrapper over `tf.customGrad` for `inputs` tensors. The body runs inside a tidy (only `value` survives);
 * `save` keeps tensors for the backward pass only while a gradient tape is recording.
 */
export function customOp(
  inputs: tf.Tensor[],
  body: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => CustomResult,
): tf.Tensor {
  const fn = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]) =>
    body(args.slice(0, inputs.length) as tf.Tensor[], args[inputs.length] as tf.GradSaveFunc)) as never);
  return (fn as (...xs: tf.Tensor[]) => tf.Tensor)(...inputs);
}
