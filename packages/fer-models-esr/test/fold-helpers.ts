/** Shared by fer-models-esr's and fer-native's fold tests. */
import * as tf from '@tensorflow/tfjs-core';
import { lcgValues, randomizeBatchNormWeights } from 'fer-test-utils';
import type { EsrEnsemble } from 'fer-models-esr';

/**
 * Gives every batch norm of the ensemble (blocks and CBAM spatial gates) non-default statistics (σ² ∈ [0.02, 0.5)),
 * so that a fold which dropped or misplaced any term would show.
 */
export function randomizeBatchNorms(esr: EsrEnsemble, seed: number): void {
  randomizeBatchNormWeights(
    esr.parts().flatMap(({ model }) => model.weights),
    seed,
    [0.02, 0.5],
  );
}

/** Deterministic images in [0, 1). Caller owns. */
export function testImages(n: number, size: number, seed: number): tf.Tensor4D {
  return tf.tensor4d(lcgValues(n * size * size * 3, seed, 0, 1), [n, size, size, 3]);
}
