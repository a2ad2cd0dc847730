/**
 * A tiny conv net task for the engine tests: conv 3×3 (c→4) → [batch norm] → relu → mean-pool → dense (4→k),
 * mean cross-entropy. Plain tfjs ops and variables, so the tests can rebuild the same maths in the main thread.
 * The optional batch norm is PyTorch's: batch statistics in training, running stats updated with momentum 0.1
 * and the unbiased variance.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import type { Replica, ReplicaContext, ShardBatch } from '../../src/types';

export interface TinyConfig {
  channels: number;
  classes: number;
  batchNorm?: boolean;
  seed?: number;
  /** Make computeGradients throw (error-path tests). */
  failOn?: 'compute' | 'create';
  /** Leave one tensor allocated per call (leak-detection tests). */
  leak?: boolean;
}

export interface TinyParams {
  w1: tf.Tensor;
  b1: tf.Tensor;
  gamma?: tf.Tensor;
  beta?: tf.Tensor;
  w2: tf.Tensor;
  b2: tf.Tensor;
}

/** Forward + loss on plain tensors; returns the loss and, in BN mode, the batch mean and unbiased variance. */
export function tinyLoss(
  p: TinyParams,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  classes: number,
): { loss: tf.Scalar; mean?: tf.Tensor; varU?: tf.Tensor } {
  let h: tf.Tensor4D = tf.add(tf.conv2d(x, p.w1 as tf.Tensor4D, 1, 'same'), p.b1);
  let mean: tf.Tensor | undefined;
  let varU: tf.Tensor | undefined;
  if (p.gamma && p.beta) {
    const m = tf.moments(h, [0, 1, 2]);
    const n = h.shape[0] * h.shape[1] * h.shape[2];
    mean = m.mean;
    varU = tf.mul(m.variance, n / (n - 1));
    h = tf.add(tf.mul(tf.div(tf.sub(h, m.mean), tf.sqrt(tf.add(m.variance, 1e-5))), p.gamma), p.beta);
  }
  const f = tf.mean(tf.relu(h), [1, 2]);
  const logits = tf.add(tf.matMul(f, p.w2 as tf.Tensor2D), p.b2);
  const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, classes), logits) as tf.Scalar;
  return { loss, mean, varU };
}

export async function createReplica(cfg: TinyConfig, ctx: ReplicaContext): Promise<Replica> {
  await initBackend({ backend: 'cpu', quiet: true });
  if (cfg.failOn === 'create') throw new RangeError(`tiny task refused to start in worker ${ctx.workerIndex}`);
  // Different seeds per worker on purpose: the engine must copy worker 0's weights to the others.
  const seed = (cfg.seed ?? 1) + ctx.workerIndex;
  const c = cfg.channels;
  const v = (t: tf.Tensor, name: string, trainable = true) => {
    const out = tf.variable(t, trainable, `${name}_${Math.random().toString(36).slice(2)}`);
    t.dispose();
    return out;
  };
  const vars = {
    w1: v(tf.randomNormal([3, 3, c, 4], 0, 0.5, 'float32', seed), 'w1'),
    b1: v(tf.randomNormal([4], 0, 0.1, 'float32', seed + 1), 'b1'),
    ...(cfg.batchNorm
      ? {
          gamma: v(tf.randomUniform([4], 0.5, 1.5, 'float32', seed + 2), 'gamma'),
          beta: v(tf.randomNormal([4], 0, 0.1, 'float32', seed + 3), 'beta'),
        }
      : {}),
    w2: v(tf.randomNormal([4, cfg.classes], 0, 0.5, 'float32', seed + 4), 'w2'),
    b2: v(tf.randomNormal([cfg.classes], 0, 0.1, 'float32', seed + 5), 'b2'),
  };
  const variables = Object.values(vars) as tf.Variable[];
  const runMean = cfg.batchNorm ? v(tf.zeros([4]), 'rm', false) : null;
  const runVar = cfg.batchNorm ? v(tf.ones([4]), 'rv', false) : null;
  return {
    variables,
    groups: variables.map((_, i) => (i < 2 ? 'conv' : 'rest')),
    state: runMean && runVar ? [runMean, runVar] : [],
    computeGradients(batch: ShardBatch) {
      if (cfg.failOn === 'compute') throw new Error(`tiny task: cannot handle a batch of ${batch.shape[0]}`);
      if (cfg.leak) tf.keep(tf.scalar(1));
      let stats: tf.Tensor[] = [];
      const x = tf.tensor4d(batch.images, batch.shape);
      const y = tf.tensor1d(batch.labels, 'int32');
      const { value, grads } = tf.variableGrads(() => {
        const r = tinyLoss(vars, x, y, cfg.classes);
        if (r.mean && r.varU) stats = [tf.keep(r.mean), tf.keep(r.varU)];
        return r.loss;
      }, variables);
      if (runMean && runVar) {
        tf.tidy(() => {
          runMean.assign(tf.add(tf.mul(runMean, 0.9), tf.mul(stats[0], 0.1)));
          runVar.assign(tf.add(tf.mul(runVar, 0.9), tf.mul(stats[1], 0.1)));
        });
      }
      const loss = value.dataSync()[0];
      tf.dispose([x, y, value, ...stats]);
      return { loss, terms: { ce: loss }, grads: variables.map((vv) => grads[vv.name]) };
    },
    dispose() {
      tf.dispose([...variables, ...(runMean && runVar ? [runMean, runVar] : [])]);
    },
  };
}
