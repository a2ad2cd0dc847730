/**
 * The diversity loss of Heidari & Iosifidis (2022) as the reference code computes it ('reference'), and a
 * corrected determinantal-point-process version that actually diversifies ('dpp', the default).
 * docs/method.md#diversity-loss, #defect-2.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expected, parseChoice } from './errors';
import { customOp } from './custom-op';
import { cofactors, diagFrom, luFactor, luSolve, torchDetGrad, type DetGradient, type LuFactors } from './linalg';
import {
  checkHeads,
  resolveSimilarity,
  similarityMatrix,
  type Diagonal,
  type Distance,
  type SimilarityOptions,
} from './similarity';

export type DiversityPreset = 'reference' | 'dpp';
/** 'negDet' = −det(S + εI), 'negLogDet' = −logdet(S + εI), 'sum' = Σ_ij S_ij. All are minimised. */
export type DiversityReduction = 'negDet' | 'negLogDet' | 'sum';

export interface DiversityOptions extends SimilarityOptions {
  /** Starting point for every option not given explicitly. Default 'dpp'. */
  preset?: DiversityPreset;
  reduction?: DiversityReduction;
  /** Jitter ε added to the diagonal before a determinant (0 allowed). */
  epsilon?: number;
  /** Gradient of 'negDet' (see `DetOptions.gradient`). */
  detGradient?: DetGradient;
}

export interface ResolvedDiversityOptions {
  preset: DiversityPreset;
  gamma: number;
  diagonal: Diagonal;
  distance: Distance;
  reduction: DiversityReduction;
  epsilon: number;
  detGradient: DetGradient;
}

/**
 * 'reference': `BranchDiversity(...).det_div` of the paper's code exactly: zero diagonal, γ = 10, summed squared
 * distance, −det, PyTorch's det gradient. Its NaN/±inf behaviour is reproduced (−logdet is NaN when det < 0 and
 * +inf when det = 0). For odd n it rewards *similar* heads, and it underflows to 0 for 512-d heads
 * (docs/method.md#numerics).
 *
 * 'dpp': S is a batch mean of RBF Gram matrices (unit diagonal), hence positive semi-definite with det ∈ [0, 1];
 * the loss −logdet(S + εI) is a determinantal-point-process diversity term for every n. The distance is the
 * mean over feature entries and γ = 1, so the kernel cannot underflow in float32 (that needs γ·d̄ > 87, an RMS
 * difference above 9 per entry); for heads in [0, 1] such as sigmoid attention, d̄ ≤ 1 and S_ij ≥ e⁻¹, so the
 * kernel's slope −γ·S never vanishes. ε = 1e-3 keeps S + εI well conditioned when heads coincide (λ_min ≥ ε),
 * which bounds the loss by about (n−1)·6.9 and keeps its gradient finite.
 */
export const DIVERSITY_PRESETS: Readonly<Record<DiversityPreset, Omit<ResolvedDiversityOptions, 'preset'>>> = {
  reference: { gamma: 10, diagonal: 'zero', distance: 'sum', reduction: 'negDet', epsilon: 0, detGradient: 'torch' },
  dpp: { gamma: 1, diagonal: 'one', distance: 'mean', reduction: 'negLogDet', epsilon: 1e-3, detGradient: 'adjugate' },
};

const PRESETS: readonly DiversityPreset[] = ['reference', 'dpp'];
const REDUCTIONS: readonly DiversityReduction[] = ['negDet', 'negLogDet', 'sum'];

/** Fills every option from the preset (default 'dpp'); explicit options win. Throws on invalid values. */
export function resolveDiversityOptions(options: DiversityOptions = {}): ResolvedDiversityOptions {
  if (options === null || typeof options !== 'object') throw expected('diversity options', 'an object', options);
  const preset = parseChoice('diversity preset', options.preset ?? 'dpp', PRESETS);
  const p = DIVERSITY_PRESETS[preset];
  const sim = resolveSimilarity(options, p);
  const epsilon = options.epsilon ?? p.epsilon;
  if (typeof epsilon !== 'number' || !Number.isFinite(epsilon) || epsilon < 0) {
    throw expected(
      'epsilon',
      'a finite number ≥ 0',
      epsilon,
      'It is the jitter added to the diagonal before a determinant.',
    );
  }
  return {
    preset,
    ...sim,
    reduction: parseChoice('reduction', options.reduction ?? p.reduction, REDUCTIONS),
    epsilon,
    detGradient: parseChoice('detGradient', options.detGradient ?? p.detGradient, ['adjugate', 'torch'] as const),
  };
}

/**
 * Reduces a similarity matrix S [n, n] to the scalar loss (the `reduction`, `epsilon` and `detGradient` of the
 * resolved options; preset 'dpp' unless given), with an explicit gradient dL/dS, so the whole loss needs no
 * registered gradients. −logdet follows `torch.logdet`: NaN (gradient 0) when det < 0, +inf when det = 0.
 * The caller owns the result.
 */
export function reduceSimilarity(s: tf.Tensor2D, options: DiversityOptions = {}): tf.Scalar {
  if (
    !(s instanceof tf.Tensor) ||
    s.rank !== 2 ||
    s.shape[0] !== s.shape[1] ||
    s.shape[0] < 1 ||
    s.dtype !== 'float32'
  ) {
    throw expected(
      'the similarity matrix',
      'a float32 tensor of shape [n, n]',
      s,
      'Build it with similarityMatrix(heads).',
    );
  }
  const o = resolveDiversityOptions(options);
  const n = s.shape[0];
  return customOp([s], ([x], save) => {
    if (o.reduction === 'sum') {
      return {
        value: tf.sum(x),
        gradFunc: (dy: tf.Tensor) => tf.mul(dy, tf.onesLike(x)),
      };
    }
    const [value, ...keep] = tf.tidy((): tf.Tensor[] => {
      const eye = tf.cast(tf.eye(n), 'bool');
      const m = o.epsilon !== 0 ? tf.where(eye, tf.add(x, tf.scalar(o.epsilon)), x) : tf.clone(x);
      // PyTorch factorises Sᵀ for a contiguous S; S is symmetric, but keep the same operand for identical rounding.
      const f = luFactor(tf.reshape(tf.transpose(m), [1, n, n]) as tf.Tensor3D);
      if (o.reduction === 'negDet') {
        const v = tf.neg(tf.reshape(f.det, []));
        return o.detGradient === 'torch' ? [v, f.lu, f.perm, f.det] : [v, m];
      }
      const v = tf.neg(tf.where(tf.equal(f.sign, -1), tf.scalar(NaN), f.logAbsDet as tf.Tensor));
      return [tf.reshape(v, []), f.lu, f.perm, f.sign];
    });
    save(keep);
    tf.dispose(keep);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const gUp = tf.reshape(tf.neg(dy), [1]) as tf.Tensor1D; // d(−v)/dv
          if (o.reduction === 'negDet') {
            if (o.detGradient === 'torch') {
              const [lu, perm, d] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor1D];
              return tf.reshape(torchDetGrad({ lu, perm } as LuFactors, tf.mul(gUp, d as tf.Tensor) as tf.Tensor1D), [
                n,
                n,
              ]);
            }
            return tf.reshape(tf.mul(gUp as tf.Tensor, cofactors(tf.reshape(saved[0], [1, n, n]) as tf.Tensor3D)), [
              n,
              n,
            ]);
          }
          const [lu, perm, sign] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor1D];
          // torch.logdet = where(sign == −1, NaN, logabsdet): the NaN branch passes no gradient.
          const g = tf.where(tf.equal(sign, -1), tf.scalar(0), gUp as tf.Tensor) as tf.Tensor1D;
          return tf.reshape(luSolve(lu, perm, diagFrom(g, n)), [n, n]);
        }),
    };
  }) as tf.Scalar;
}

/**
 * The diversity loss of `heads` [n, B, ...features] (n heads or branches, batch B) as a scalar to *minimise*.
 * Default preset 'dpp' (corrected); 'reference' reproduces the paper's code. Explicit options override the
 * preset's. Differentiable with respect to `heads` with custom gradients only (no registered kernels needed).
 * The caller owns the result.
 *
 * ```ts
 * const loss = diversityLoss(heads);                          // dpp: −logdet(S + 1e-3·I), γ 1, mean distance
 * const ref = diversityLoss(heads, { preset: 'reference' }); // the paper's −det(S), zero diagonal, γ 10
 * ```
 */
export function diversityLoss(heads: tf.Tensor, options: DiversityOptions = {}): tf.Scalar {
  checkHeads(heads);
  const o = resolveDiversityOptions(options);
  return tf.tidy(() => reduceSimilarity(similarityMatrix(heads, o), o));
}
