import type * as tf from '@tensorflow/tfjs-core';
import type { FerModel } from 'fer-core';

/** Everything a checkpoint must hold: weights and BN running statistics, in a stable order. */
export function stateVariables(model: FerModel): tf.Variable[] {
  const m = model as FerModel & {
    stateVariables?(): tf.Variable[];
    nonTrainableVariables?(): tf.Variable[];
    parts?(): { model: { weights: { read(): tf.Tensor }[] } }[];
  };
  if (m.stateVariables) return m.stateVariables();
  // fer-models-esr: every weight of every part (trainable, BN running statistics, counters)
  if (m.parts) return m.parts().flatMap((p) => p.model.weights.map((w) => w.read() as tf.Variable));
  return [...m.trainableVariables(), ...(m.nonTrainableVariables?.() ?? [])];
}
