/**
 * Builders for the head stacks the paper diversifies (docs/method.md#what-is-compared). Every helper returns a new
 * tensor the caller owns and carries its own gradient, so the package stays usable with tfjs-core alone. Layouts are
 * tfjs NHWC.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op';
import { DiversityInputError, expected } from './errors';

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function requireTensor(what: string, x: unknown): asserts x is tf.Tensor {
  if (!(x instanceof tf.Tensor)) throw expected(what, 'a tf.Tensor', x);
  if (x.dtype !== 'float32') {
    throw new DiversityInputError(
      `Expected ${what} to be float32, but got ${x.dtype}. Cast with tf.cast(x, 'float32').`,
    );
  }
}

function requireRank(what: string, x: tf.Tensor, rank: number, layout: string, hint: string): void {
  if (x.rank !== rank || x.shape.some((d) => d < 1)) {
    throw new DiversityInputError(`Expected ${what} of shape ${layout}, but got ${shapeStr(x.shape)}. ${hint}`);
  }
}

/** Reshape whose gradient reshapes back. */
function reshapeOp(x: tf.Tensor, shape: number[]): tf.Tensor {
  return customOp([x], ([t]) => ({
    value: tf.reshape(t, shape),
    gradFunc: (dy: tf.Tensor) => tf.reshape(dy, t.shape),
  }));
}

/** Mean over `axes` (removed) whose gradient spreads dy evenly. */
function meanOp(x: tf.Tensor, axes: number[]): tf.Tensor {
  const count = axes.reduce((p, a) => p * x.shape[a], 1);
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return customOp([x], ([t]) => ({
    value: tf.div(tf.sum(t, axes), tf.scalar(count)),
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.broadcastTo(tf.div(tf.reshape(dy, kept), tf.scalar(count)), t.shape)),
  }));
}

/**
 * Stacks per-branch tensors (all of one shape [B, ...features]) into heads [n, B, ...features]. The caller owns
 * the result; the inputs are untouched.
 */
export function headsFrom(tensors: readonly tf.Tensor[]): tf.Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) {
    throw expected('headsFrom() input', 'a non-empty array of tensors [batch, ...features], one per head', tensors);
  }
  tensors.forEach((t, i) => requireTensor(`headsFrom() tensor ${i}`, t));
  const s0: number[] = tensors[0].shape;
  if (s0.length < 2) {
    throw new DiversityInputError(
      `Expected each head of shape [batch, ...features] (rank ≥ 2), but got ${shapeStr(s0)}.`,
    );
  }
  tensors.forEach((t, i) => {
    if (t.rank !== s0.length || (t.shape as number[]).some((d, j) => d !== s0[j])) {
      throw new DiversityInputError(
        `Expected every head to have the shape of head 0, ${shapeStr(s0)}, but head ${i} has ${shapeStr(t.shape)}.`,
      );
    }
  });
  return customOp([...tensors], (inputs) => ({
    value: tf.stack(inputs),
    gradFunc: (dy: tf.Tensor) => tf.unstack(dy),
  }));
}

/** ESR spatial attention, [n, B, h, w] or NHWC [n, B, h, w, 1] → [n, B, h, w] (h = w = 6 at 96×96 input). */
export function esrSpatialHeads(attention: tf.Tensor): tf.Tensor4D {
  requireTensor('ESR spatial attention', attention);
  const s = attention.shape;
  if (s.length === 5 && s[4] === 1) return reshapeOp(attention, s.slice(0, 4)) as tf.Tensor4D;
  requireRank(
    'ESR spatial attention',
    attention,
    4,
    '[n, B, h, w] (or [n, B, h, w, 1])',
    'Stack the branches first (headsFrom).',
  );
  return reshapeOp(attention, s) as tf.Tensor4D;
}

/** ESR channel attention [n, B, C] (C = 512) → [n, B, C]. */
export function esrChannelHeads(attention: tf.Tensor): tf.Tensor3D {
  requireTensor('ESR channel attention', attention);
  requireRank('ESR channel attention', attention, 3, '[n, B, C]', 'Stack the branches first (headsFrom).');
  return reshapeOp(attention, attention.shape) as tf.Tensor3D;
}

/** MA-Net local feature maps NHWC [n, B, h, w, C] → "spatial" heads [n, B, h, w] (mean over the C channels). */
export function manetSpatialHeads(localFeatures: tf.Tensor): tf.Tensor4D {
  requireTensor('MA-Net local features', localFeatures);
  requireRank(
    'MA-Net local features',
    localFeatures,
    5,
    '[n, B, h, w, C] (NHWC)',
    'A PyTorch [n, B, C, h, w] stack needs tf.transpose(x, [0, 1, 3, 4, 2]).',
  );
  return meanOp(localFeatures, [4]) as tf.Tensor4D;
}

/** MA-Net local feature maps NHWC [n, B, h, w, C] → "channel" heads [n, B, C] (mean over the h·w positions). */
export function manetChannelHeads(localFeatures: tf.Tensor): tf.Tensor3D {
  requireTensor('MA-Net local features', localFeatures);
  requireRank(
    'MA-Net local features',
    localFeatures,
    5,
    '[n, B, h, w, C] (NHWC)',
    'A PyTorch [n, B, C, h, w] stack needs tf.transpose(x, [0, 1, 3, 4, 2]).',
  );
  return meanOp(localFeatures, [2, 3]) as tf.Tensor3D;
}

/** MA-Net global features [n, B, C] (n = 2 branches, C = 512) → [n, B, C]. */
export function manetGlobalHeads(globalFeatures: tf.Tensor): tf.Tensor3D {
  requireTensor('MA-Net global features', globalFeatures);
  requireRank('MA-Net global features', globalFeatures, 3, '[n, B, C]', 'Stack the branches first (headsFrom).');
  return reshapeOp(globalFeatures, globalFeatures.shape) as tf.Tensor3D;
}

/**
 * The reference's FER+/RAF-DB "channel" term, which is computed on the *spatial* maps (docs/method.md#what-is-compared,
 * #defect-5): `BranchDiversity(attn_sp, 'channel')` sums the squared difference over rows only, so each (sample,
 * column) pair is one comparison and the kernel mean runs over B·w values. Spatial maps [n, B, h, w] → heads
 * [n, B·w, h]; `similarityMatrix`/`diversityLoss` on them reproduce that term. Use only to reproduce the
 * fine-tuning scripts (opt-in); the intended term uses the channel attention (`esrChannelHeads`).
 */
export function referenceFerPlusChannelHeads(spatialAttention: tf.Tensor): tf.Tensor3D {
  requireTensor('ESR spatial attention', spatialAttention);
  const s = spatialAttention.shape;
  if (!(s.length === 5 && s[4] === 1)) {
    requireRank(
      'ESR spatial attention',
      spatialAttention,
      4,
      '[n, B, h, w] (or [n, B, h, w, 1])',
      'Stack the branches first (headsFrom).',
    );
  }
  const [n, b, h, w] = s;
  return customOp([spatialAttention], ([t]) => ({
    value: tf.reshape(tf.transpose(tf.reshape(t, [n, b, h, w]), [0, 1, 3, 2]), [n, b * w, h]),
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.reshape(tf.transpose(tf.reshape(dy, [n, b, w, h]), [0, 1, 3, 2]), s)),
  })) as tf.Tensor3D;
}
