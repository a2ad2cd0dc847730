/** A tiny growable ensemble and an in-memory dataset for trainer tests (fast on the cpu backend). */
import * as tf from '@tensorflow/tfjs-core';
import {
  Rng,
  crossEntropy,
  mixSeed,
  type Batch,
  type BatchOptions,
  type FerDataset,
  type FerModel,
  type ForwardResult,
  type LabelSet,
  type VariableGroup,
} from 'fer-core';
import { esrGrowthPlan } from '../src/schedule/plans';
import type { LossFn } from '../src/loss-types';

const K = 3;
const D = 12; // 2x2x3 images by default
const H = 6;

function uniform(rng: Rng, shape: number[], bound: number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => rng.uniform(-bound, bound)),
    shape,
  );
}

let counter = 0;
function mkVar(t: tf.Tensor, trainable: boolean, name: string): tf.Variable {
  const v = tf.variable(t, trainable, name);
  t.dispose();
  return v;
}
/** base: dense D->H + relu + running mean of features (a non-trainable state variable); branch: dense H->K. */
export class TinyEnsemble implements FerModel {
  labels: LabelSet = ['neutral', 'happy', 'sad'] as unknown as LabelSet;
  readonly h: number;
  readonly base: tf.Variable[];
  readonly running: tf.Variable;
  readonly branches: tf.Variable[][] = [];
  readonly k: number;
  constructor(
    seed: number,
    branches = 1,
    opts: { inputDim?: number; classes?: number; hidden?: number; labels?: LabelSet } = {},
  ) {
    const rng = new Rng(seed);
    const id = counter++;
    const d = opts.inputDim ?? D;
    this.h = opts.hidden ?? H;
    this.k = opts.classes ?? K;
    if (opts.labels) this.labels = opts.labels;
    this.base = [
      mkVar(uniform(rng, [d, this.h], opts.inputDim ? 1 / Math.sqrt(d) : 0.5), true, `tiny${id}/base/w`),
      mkVar(tf.zeros([this.h]), true, `tiny${id}/base/b`),
    ];
    this.running = mkVar(tf.zeros([this.h]), false, `tiny${id}/base/running`);
    for (let i = 0; i < branches; i++) this.addBranch(mixSeed(seed, i));
  }
  get numBranches(): number {
    return this.branches.length;
  }
  addBranch(seed: number): void {
    const rng = new Rng(seed);
    const i = this.branches.length;
    const id = counter++;
    this.branches.push([
      mkVar(uniform(rng, [this.h, this.k], 0.5), true, `tiny${id}/branch_${i + 1}/w`),
      mkVar(tf.zeros([this.k]), true, `tiny${id}/branch_${i + 1}/b`),
    ]);
  }
  forward(images: tf.Tensor4D, opts: { training: boolean }): ForwardResult {
    return tf.tidy(() => {
      const x = tf.reshape(images, [images.shape[0], -1]);
      const h = tf.relu(tf.add(tf.matMul(x, this.base[0]), this.base[1]));
      if (opts.training) this.running.assign(tf.add(tf.mul(this.running, 0.9), tf.mul(tf.mean(h, 0), 0.1)));
      const logits = this.branches.map(([w, b]) => tf.add(tf.matMul(h, w), b) as tf.Tensor2D);
      const att = tf.stack(logits.map((l) => tf.sigmoid(l))); // [n, B, k]
      return {
        logits,
        heads: {
          spatialAttention: tf.reshape(tf.concat([att, att], 2), [logits.length, images.shape[0], 2, this.k]),
          channelAttention: att,
        },
      };
    });
  }
  trainableVariables(): tf.Variable[] {
    return this.variableGroups().flatMap((g) => g.variables);
  }
  variableGroups(): VariableGroup[] {
    return [
      { name: 'base', variables: this.base },
      ...this.branches.map((v, i) => ({ name: `branch_${i + 1}`, variables: v })),
    ];
  }
  nonTrainableVariables(): tf.Variable[] {
    return [this.running];
  }
  dispose(): void {
    tf.dispose([...this.base, this.running, ...this.branches.flat()]);
  }
}

/**
 * n samples whose class is readable from the image (class-dependent mean), seeded shuffling + per-epoch noise
 * "augmentation".
 */
export function tinyDataset(n: number, seed: number, name = 'tiny'): FerDataset & { nanAt?: number } {
  const rng = new Rng(seed);
  const labels = Array.from({ length: n }, (_, i) => i % K);
  const images = labels.map((y) =>
    Float32Array.from({ length: D }, (_, j) => (j % K === y ? 1 : 0) + 0.3 * rng.normal()),
  );
  const ds = {
    name,
    size: n,
    labels: ['neutral', 'happy', 'sad'] as unknown as LabelSet,
    async *batches(o: BatchOptions): AsyncIterable<Batch> {
      const order = labels.map((_, i) => i);
      const r = new Rng(mixSeed(o.seed ?? 0, o.epoch ?? 0));
      if (o.shuffle) r.shuffle(order);
      for (let s = 0; s < n; s += o.batchSize) {
        const idx = order.slice(s, s + o.batchSize);
        const px = new Float32Array(idx.length * D);
        idx.forEach((k, j) =>
          px.set(
            images[k].map((v) => v + (o.shuffle ? 0.05 * r.normal() : 0)),
            j * D,
          ),
        );
        yield {
          images: tf.tensor4d(px, [idx.length, 2, 2, 3]),
          labels: tf.tensor1d(
            idx.map((k) => labels[k]),
            'int32',
          ),
        };
      }
    },
  };
  return ds;
}

/** Trainer options for a small growth run of the tiny ensemble (3 stages, 3 steps per epoch, cpu-fast). */
export function tinyTrainerOptions(outDir: string) {
  return {
    plan: esrGrowthPlan({ branches: 3, firstEpochs: 6, laterEpochs: 3, batchSize: 4 }),
    model: { create: () => new TinyEnsemble(7), addBranch: (m: TinyEnsemble, seed: number) => m.addBranch(seed) },
    trainData: (_stage: unknown, seed: number) => tinyDataset(10, seed), // 3 steps per epoch (4, 4, 2)
    validation: tinyDataset(9, 99, 'val'),
    loss: () => tinyCeLoss,
    evaluation: () => ({ combine: { kind: 'vote' as const }, diversityHead: 'channelAttention' }),
    outDir,
    seed: 5,
    plots: false,
  };
}

/** Cross-entropy of every branch, summed. */
export const tinyCeLoss: LossFn = (out, y) => {
  const terms = Object.fromEntries(out.logits.map((l, k) => [`ce_branch_${k + 1}`, crossEntropy(l, y)]));
  return { total: tf.tidy(() => tf.addN(Object.values(terms)) as tf.Scalar), terms };
};
