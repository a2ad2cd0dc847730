import type * as tf from '@tensorflow/tfjs-core';
import type { FerModel } from 'fer-core';
import { stateVariables } from '../state';

/**
 * A model's non-trainable variables (BN running statistics, counters, frozen parts), in `stateVariables` order: what
 * data-parallel replicas keep in sync besides the trainable weights.
 */
export function stateOf(model: FerModel): tf.Variable[] {
  const trainable = new Set(model.variableGroups().flatMap((g) => g.variables));
  return stateVariables(model).filter((v) => !trainable.has(v));
}
