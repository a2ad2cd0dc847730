import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as fert from 'fer-torch';
import { readStateDict } from 'fer-torch/node';
import type { RawTensor } from 'fer-torch';
import type { Fixture } from 'fer-test-utils';
import { crossEntropy } from 'fer-core';
import { diversityLoss } from 'fer-diversity-loss';
import { createEsr, type EsrEnsemble } from 'fer-models-esr';
import { esrKeyMap, loadTorchStateDict } from 'fer-models-esr/internal';

/** The fixture's state dict of `part` ('base' | 'branch_<i>'), read from the genuine `.pt` files. */
export async function fixtureStateDict(fx: Fixture, part: string): Promise<Map<string, RawTensor>> {
  const file = part === 'base' ? 'Net-Base-Shared_Representations.pt' : `Net-Branch_${part.split('_')[1]}.pt`;
  return readStateDict(path.join(fx.dir, 'torch_checkpoint', '3', file));
}

const cache = new Map<string, Promise<Map<string, RawTensor>>>();

/** Base + `n` CBAM branches with the esr_cbam initial weights (state dicts read once per process). */
export async function referenceEnsemble(fx: Fixture, n: number): Promise<EsrEnsemble> {
  const esr = createEsr('desr9-affectnet', { initialBranches: n, seed: 1 });
  for (const p of esr.parts()) {
    if (!cache.has(p.name)) cache.set(p.name, fixtureStateDict(fx, p.name));
    loadTorchStateDict(
      p.model,
      await cache.get(p.name)!,
      esrKeyMap(p.name === 'base' ? 'base' : 'branch', { variant: 'cbam' }),
    );
  }
  return esr;
}

/** NCHW fixture image → NHWC. Caller owns. */
export async function nhwc(fx: Fixture, file: string, name: string): Promise<tf.Tensor4D> {
  const x = await fx.tensor(file, name);
  const y = tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
  x.dispose();
  return y;
}

export async function labels(fx: Fixture, file: string, name: string): Promise<tf.Tensor1D> {
  const raw = await fx.raw(file, name);
  return tf.tensor1d(fert.toFloat32(raw), 'int32');
}

/** Manifest tolerance of one tensor, with `atol_rel_max` resolved against the reference. */
export function tolerance(
  fx: Fixture,
  file: string,
  name: string,
  ref?: ArrayLike<number>,
): { rtol: number; atol: number } {
  const entry = (
    fx.manifest.tensors as {
      file: string;
      name: string;
      tolerance: { rtol: number; atol?: number; atol_rel_max?: number };
    }[]
  ).find((t) => t.file === file && t.name === name);
  if (!entry) throw new Error(`No manifest entry for ${file}:${name}`);
  const { rtol, atol, atol_rel_max } = entry.tolerance;
  if (atol_rel_max !== undefined) {
    let m = 0;
    for (let i = 0; i < (ref?.length ?? 0); i++) m = Math.max(m, Math.abs(ref![i]));
    return { rtol, atol: atol_rel_max * m };
  }
  return { rtol, atol: atol ?? 0 };
}

/** PyTorch layout of a tfjs weight value (as stored in the fixtures). Caller owns. */
export function toTorchLayout(v: tf.Tensor, transform: 'conv' | 'linear' | 'copy' | 'count'): tf.Tensor {
  return tf.tidy(() =>
    transform === 'conv' ? tf.transpose(v, [3, 2, 0, 1]) : transform === 'linear' ? tf.transpose(v) : tf.clone(v),
  );
}

/**
 * The reference's `BranchDiversity(...).det_div` (docs/method.md#similarity) restated for 2 or 3 heads, so the loss
 * tests do not depend on fer-diversity-loss: S_ij = mean_b exp(−10·‖X_i[b] − X_j[b]‖²), zero diagonal, value −det(S).
 * n = 2: −det = S01·S10; n = 3: −det = −(S01·S12·S20 + S02·S21·S10). Scalar, owned by the caller.
 */
export function referenceNegDet(stack: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const n = stack.shape[0];
    const flat = tf.reshape(stack, [n, stack.shape[1] as number, -1]);
    const heads = tf.unstack(flat);
    const s = (i: number, j: number) => tf.mean(tf.exp(tf.mul(-10, tf.sum(tf.square(tf.sub(heads[i], heads[j])), 1))));
    if (n === 2) return tf.mul(s(0, 1), s(1, 0)) as tf.Scalar;
    if (n === 3)
      return tf.neg(
        tf.add(tf.mul(tf.mul(s(0, 1), s(1, 2)), s(2, 0)), tf.mul(tf.mul(s(0, 2), s(2, 1)), s(1, 0))),
      ) as tf.Scalar;
    throw new Error(`referenceNegDet handles 2 or 3 heads, got ${n}`);
  });
}

/**
 * The esr_affectnet.py loss: Σ CE + (−det spatial) + (−det channel) (diversity only with > 1 branch), via
 * fer-diversity-loss's 'reference' preset.
 */
export function referenceLoss(
  out: { logits: tf.Tensor2D[]; heads: Record<string, tf.Tensor> },
  y: tf.Tensor1D,
): { total: tf.Scalar; terms: tf.Scalar[] } {
  const ces = out.logits.map((l) => crossEntropy(l, y));
  const divs =
    out.logits.length > 1
      ? [
          diversityLoss(out.heads.spatialAttention, { preset: 'reference' }),
          diversityLoss(out.heads.channelAttention, { preset: 'reference' }),
        ]
      : [];
  const terms = [...ces, ...divs];
  return { total: tf.addN(terms) as tf.Scalar, terms };
}

/** PyTorch SGD with momentum (no dampening, no Nesterov): buf ← m·buf + g (buf₁ = g); p ← p − lr·buf. */
export class TorchSgd {
  private bufs = new Map<string, tf.Tensor>();
  constructor(private readonly momentum = 0.9) {}
  step(groups: { lr: number; variables: tf.Variable[] }[], grads: tf.NamedTensorMap): void {
    for (const { lr, variables } of groups) {
      for (const v of variables) {
        const g = grads[v.name];
        if (!g) throw new Error(`no gradient for ${v.name}`);
        const prev = this.bufs.get(v.name);
        const buf = tf.tidy(() => (prev ? tf.add(tf.mul(prev, this.momentum), g) : tf.clone(g)));
        prev?.dispose();
        this.bufs.set(v.name, buf);
        tf.tidy(() => v.assign(tf.sub(v, tf.mul(buf, lr))));
      }
    }
  }
  dispose(): void {
    this.bufs.forEach((b) => b.dispose());
    this.bufs.clear();
  }
}
