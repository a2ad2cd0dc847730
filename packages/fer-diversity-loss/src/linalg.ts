/**
 * Differentiable determinants for small batched square matrices, written with tfjs ops (tfjs has no det, LU or
 * solve, and `tf.linalg.qr` has no gradient).
 *
 * The factorisation is Gaussian elimination with partial pivoting, vectorised over the batch (one loop step per
 * column, no per-element scalar work). Its arithmetic follows LAPACK's `sgetrf2` + `sgetrs` with the reference
 * BLAS, which is what the fixtures' PyTorch 1.13 (Debian, CPU) evidently ran for `torch.det` / `torch.logdet`
 * (inferred from their NaN/±inf gradient patterns, which an OpenBLAS-style solve does not reproduce):
 * - pivot = first row of largest |value| in the column (`isamax`);
 * - multipliers are `x * (1 / pivot)` when |pivot| ≥ the smallest normal float, else `x / pivot` (`sgetrf2`);
 *   a zero pivot leaves the column unscaled;
 * - the trailing update is `c - l * u`, applied column by column in order;
 * - triangular solves skip a right-hand-side entry that is exactly 0 (reference `strsm`), which decides whether a
 *   singular matrix gives ±inf or NaN in a gradient.
 * Like PyTorch, `det` factorises Aᵀ (the same determinant) so that solving with those factors gives A⁻ᵀ directly.
 * Following these details reproduces PyTorch's values and its NaN/±inf gradient patterns on the reference fixtures.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op';
import { DiversityInputError, describeValue, parseChoice } from './errors';

/** Smallest positive normal float32 (LAPACK `slamch('S')`). */
const SFMIN = 1.1754943508222875e-38;
/** float32 machine epsilon, 2⁻²³ (PyTorch's `_get_epsilon(float)`), used for PyTorch's singular-det gradient. */
export const F32_EPS = 1.1920928955078125e-7;

/** An LU factorisation P·M = L·U of a batch of matrices M, packed LAPACK-style. All tensors are owned by the caller. */
export type LuFactors = {
  /** [m, n, n]: strictly lower part = L (unit diagonal implied), upper part = U. */
  lu: tf.Tensor3D;
  /** [m, n] int32: row i of P·M is row perm[i] of M. */
  perm: tf.Tensor2D;
  /** [m]: sign(P) · Π sign(u_kk) (0 when a pivot is 0). */
  sign: tf.Tensor1D;
  /** [m]: sign(P) · Π u_kk, the product taken in column order (PyTorch's `det`). */
  det: tf.Tensor1D;
  /** [m]: Σ log|u_kk| (−inf when a pivot is 0). */
  logAbsDet: tf.Tensor1D;
};

/**
 * Row gather per batch entry: out[b, i] = x[b, idx[b, i]] for x [m, n, ...] and int32 idx [m, n]. Written as a
 * flat gather because tfjs-backend-wasm 4.22's `gather(..., batchDims = 1)` returns wrong rows for batch > 1.
 */
function gatherRows<T extends tf.Tensor>(x: T, idx: tf.Tensor2D): T {
  return tf.tidy(() => {
    const [m, n] = idx.shape;
    const rest = x.shape.slice(2);
    const offsets = tf.reshape(tf.mul(tf.range(0, m, 1, 'int32'), tf.scalar(n, 'int32')), [m, 1]);
    const flatIdx = tf.reshape(tf.add(idx, offsets), [m * n]);
    const flat = tf.gather(tf.reshape(x, [m * n, ...rest]), flatIdx, 0);
    return tf.reshape(flat, x.shape) as T;
  });
}

/**
 * LU with partial pivoting of `m` [batch, n, n] (float32). Not differentiable: the public functions below attach
 * the gradients. The caller owns the returned tensors.
 */
export function luFactor(m: tf.Tensor3D): LuFactors {
  return tf.tidy(() => {
    const [b, n] = m.shape;
    const r = tf.reshape(tf.range(0, n, 1, 'int32'), [1, n]);
    let a: tf.Tensor3D = m;
    let perm = tf.tile(r, [b, 1]) as tf.Tensor2D;
    let permSign: tf.Tensor = tf.ones([b]);
    let pivSign: tf.Tensor = tf.ones([b]);
    let prod: tf.Tensor | null = null;
    let logSum: tf.Tensor | null = null;
    for (let k = 0; k < n; k++) {
      const rest = n - k - 1;
      if (rest > 0) {
        // Pivot search over rows k..n-1 of column k; swap rows k and p (whole rows, L part included).
        const col = tf.reshape(tf.abs(tf.slice(a, [0, k, k], [b, n - k, 1])), [b, n - k]);
        const p = tf.reshape(tf.add(tf.argMax(col, 1), tf.scalar(k, 'int32')), [b, 1]);
        const kk = tf.scalar(k, 'int32');
        const idx = tf.where(tf.equal(r, kk), p, tf.where(tf.equal(r, p), kk, r));
        a = gatherRows(a, idx as tf.Tensor2D);
        perm = gatherRows(perm, idx as tf.Tensor2D);
        permSign = tf.where(tf.equal(tf.reshape(p, [b]), kk), permSign, tf.neg(permSign));
      }
      const piv = tf.slice(a, [0, k, k], [b, 1, 1]);
      const piv1 = tf.reshape(piv, [b]);
      prod = prod === null ? piv1 : tf.mul(prod, piv1);
      const logAbs = tf.log(tf.abs(piv1));
      logSum = logSum === null ? logAbs : tf.add(logSum, logAbs);
      // Not tf.sign: the wasm kernel returns 0 for tiny non-zero values (seen for 2e-32).
      const sgn = tf.where(tf.greater(piv1, 0), tf.scalar(1), tf.where(tf.less(piv1, 0), tf.scalar(-1), tf.scalar(0)));
      pivSign = tf.mul(pivSign, sgn);
      if (rest > 0) {
        const col = tf.slice(a, [0, k + 1, k], [b, rest, 1]);
        const scaled = tf.where(
          tf.greaterEqual(tf.abs(piv), SFMIN),
          tf.mul(col, tf.div(tf.scalar(1), piv)),
          tf.div(col, piv),
        );
        const l = tf.where(tf.equal(piv, 0), col, scaled); // [b, rest, 1]
        const u = tf.slice(a, [0, k, k + 1], [b, 1, rest]); // [b, 1, rest]
        const trail = tf.sub(tf.slice(a, [0, k + 1, k + 1], [b, rest, rest]), tf.mul(l, u));
        const parts = k > 0 ? [tf.slice(a, [0, k + 1, 0], [b, rest, k]), l, trail] : [l, trail];
        a = tf.concat([tf.slice(a, [0, 0, 0], [b, k + 1, n]), tf.concat(parts, 2)], 1) as tf.Tensor3D;
      }
    }
    return {
      lu: a,
      perm,
      sign: tf.mul(permSign, pivSign) as tf.Tensor1D,
      det: tf.mul(permSign, prod!) as tf.Tensor1D,
      logAbsDet: logSum as tf.Tensor1D,
    };
  });
}

/**
 * Solves M·X = rhs given `luFactor(M)`; `rhs` [batch, n, k]. Forward then back substitution, skipping exact-zero
 * right-hand-side entries like the reference BLAS `strsm`. The caller owns the result.
 */
export function luSolve(lu: tf.Tensor3D, perm: tf.Tensor2D, rhs: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, n] = lu.shape;
    const k = rhs.shape[2];
    let x = gatherRows(rhs, perm);
    // L y = P·rhs (unit lower).
    for (let c = 0; c < n - 1; c++) {
      const xc = tf.slice(x, [0, c, 0], [b, 1, k]);
      const nz = tf.notEqual(xc, 0);
      const below = tf.slice(x, [0, c + 1, 0], [b, n - c - 1, k]);
      const lc = tf.slice(lu, [0, c + 1, c], [b, n - c - 1, 1]);
      const upd = tf.where(nz, tf.sub(below, tf.mul(lc, xc)), below);
      x = tf.concat([tf.slice(x, [0, 0, 0], [b, c + 1, k]), upd], 1) as tf.Tensor3D;
    }
    // U x = y.
    for (let c = n - 1; c >= 0; c--) {
      const xc = tf.slice(x, [0, c, 0], [b, 1, k]);
      const nz = tf.notEqual(xc, 0);
      const ucc = tf.slice(lu, [0, c, c], [b, 1, 1]);
      const xs = tf.where(nz, tf.div(xc, ucc), xc);
      const parts: tf.Tensor[] = [];
      if (c > 0) {
        const above = tf.slice(x, [0, 0, 0], [b, c, k]);
        const uc = tf.slice(lu, [0, 0, c], [b, c, 1]);
        parts.push(tf.where(nz, tf.sub(above, tf.mul(uc, xs)), above));
      }
      parts.push(xs);
      if (c < n - 1) parts.push(tf.slice(x, [0, c + 1, 0], [b, n - c - 1, k]));
      x = tf.concat(parts, 1) as tf.Tensor3D;
    }
    return x;
  });
}

/** [b] values on the diagonal of [b, n, n] zero matrices (no multiplication, so ±inf/NaN stay on the diagonal). */
export function diagFrom(values: tf.Tensor1D, n: number): tf.Tensor3D {
  return tf.tidy(() => {
    const eye = tf.cast(tf.reshape(tf.eye(n), [1, n, n]), 'bool');
    return tf.where(eye, tf.reshape(values, [-1, 1, 1]), tf.scalar(0)) as unknown as tf.Tensor3D;
  });
}

/** PyTorch's gradient for det (no-grad-mode branch): solve with zero pivots replaced by ε, right side det·dy·I. */
export function torchDetGrad(f: LuFactors, dyTimesDet: tf.Tensor1D): tf.Tensor3D {
  return tf.tidy(() => {
    const n = f.lu.shape[1];
    const eye = tf.cast(tf.reshape(tf.eye(n), [1, n, n]), 'bool');
    const luEps = tf.where(tf.logicalAnd(eye, tf.equal(f.lu, 0)), tf.scalar(F32_EPS), f.lu as tf.Tensor) as tf.Tensor3D;
    return luSolve(luEps, f.perm, diagFrom(dyTimesDet, n));
  });
}

/**
 * Cofactor matrices C (C_ij = ∂det/∂A_ij = adj(A)ᵀ_ij) of a batch [b, n, n], exact also for singular matrices:
 * C_ij = det(A with row i replaced by e_j), all n² determinants in one batched factorisation.
 */
export function cofactors(a: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, n] = a.shape;
    const ri = tf.range(0, n, 1, 'int32');
    // [1, i, j, r, c]: row r of the (i, j) matrix is replaced when r == i, by e_j (1 where c == j).
    const rowSel = tf.equal(tf.reshape(ri, [1, n, 1, 1, 1]), tf.reshape(ri, [1, 1, 1, n, 1]));
    const unit = tf.cast(tf.equal(tf.reshape(ri, [1, 1, n, 1, 1]), tf.reshape(ri, [1, 1, 1, 1, n])), 'float32');
    const mats = tf.where(rowSel, unit, tf.reshape(a, [b, 1, 1, n, n]) as tf.Tensor);
    const f = luFactor(tf.reshape(mats, [b * n * n, n, n]) as tf.Tensor3D);
    return tf.reshape(f.det, [b, n, n]) as tf.Tensor3D;
  });
}

function checkSquare(what: string, a: tf.Tensor): { batch: number[]; n: number; m: number } {
  if (!(a instanceof tf.Tensor))
    throw new DiversityInputError(`Expected ${what} to be a tf.Tensor, but got ${describeValue(a)}.`);
  const s = a.shape;
  if (s.length < 2 || s[s.length - 1] !== s[s.length - 2] || s[s.length - 1] === 0) {
    throw new DiversityInputError(
      `Expected ${what} of shape [..., n, n] (square, n ≥ 1), but got [${s.join(', ')}]. Pass one matrix or a batch of them.`,
    );
  }
  if (a.dtype !== 'float32') {
    throw new DiversityInputError(
      `Expected ${what} to be float32, but got ${a.dtype}. Cast it with tf.cast(x, 'float32').`,
    );
  }
  const batch = s.slice(0, -2);
  return { batch, n: s[s.length - 1], m: batch.reduce((p, d) => p * d, 1) };
}

/** How `det` differentiates. */
export type DetGradient = 'adjugate' | 'torch';

export interface DetOptions {
  /**
   * 'adjugate' (default): the exact gradient adj(A)ᵀ (= det(A)·A⁻ᵀ when A is invertible), computed from cofactors,
   * so singular matrices get their true, generally non-zero gradient.
   * 'torch': PyTorch 1.13's formula det(A)·A⁻ᵀ from the LU factors with zero pivots replaced by ε; it is 0 whenever
   * det evaluates to 0 (including underflow), as in the paper's code.
   */
  gradient?: DetGradient;
}

const DET_GRADIENTS: readonly DetGradient[] = ['adjugate', 'torch'];

/**
 * Determinant of a square matrix or a batch: `a` [..., n, n] float32 → [...] (a scalar for one matrix).
 * Differentiable (see `DetOptions.gradient`); works with tfjs-core alone (custom gradient, no registered kernels
 * needed). The caller owns the result.
 */
export function det(a: tf.Tensor, options: DetOptions = {}): tf.Tensor {
  const { batch, n, m } = checkSquare('the matrix passed to det()', a);
  const mode = parseChoice('det gradient', options.gradient ?? 'adjugate', DET_GRADIENTS);
  return customOp([a], ([x], save) => {
    const [value, lu, perm, d] = tf.tidy(() => {
      const at = tf.transpose(tf.reshape(x, [m, n, n]), [0, 2, 1]) as tf.Tensor3D;
      const f = luFactor(at);
      return [tf.reshape(f.det, batch), f.lu, f.perm, f.det];
    });
    save(mode === 'torch' ? [lu, perm, d] : [x]);
    tf.dispose([lu, perm, d]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const dyb = tf.reshape(dy, [m]) as tf.Tensor1D;
          if (mode === 'torch') {
            const [slu, sperm, sdet] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor1D];
            const g = torchDetGrad({ lu: slu, perm: sperm } as LuFactors, tf.mul(dyb, sdet) as tf.Tensor1D);
            return tf.reshape(g, x.shape);
          }
          const c = cofactors(tf.reshape(saved[0], [m, n, n]) as tf.Tensor3D);
          return tf.reshape(tf.mul(tf.reshape(dyb, [m, 1, 1]), c), x.shape);
        }),
    };
  });
}

/** Result of `slogdet`; the caller owns both tensors. */
export interface SlogdetResult {
  /** [...]: +1, −1, or 0 for a singular matrix. Not differentiable. */
  sign: tf.Tensor;
  /** [...]: log|det A| (−inf for a singular matrix). Gradient dy·A⁻ᵀ. */
  logAbsDet: tf.Tensor;
}

/**
 * Sign and log-absolute-determinant: `a` [..., n, n] float32 → two [...] tensors. `logAbsDet` has the gradient
 * A⁻ᵀ (finite only for invertible A; a singular matrix gives ±inf/NaN entries, as in PyTorch). Works with
 * tfjs-core alone. The caller owns both results.
 */
export function slogdet(a: tf.Tensor): SlogdetResult {
  const { batch, n, m } = checkSquare('the matrix passed to slogdet()', a);
  // Factorised outside the custom gradient so `sign` can be returned too; these ops are never on a gradient path.
  const f = tf.tidy(() => luFactor(tf.transpose(tf.reshape(a, [m, n, n]), [0, 2, 1]) as tf.Tensor3D));
  const logAbsDet = customOp([a], ([x], save) => {
    save([f.lu, f.perm]);
    return {
      value: tf.reshape(f.logAbsDet, batch),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [slu, sperm] = saved as [tf.Tensor3D, tf.Tensor2D];
          const g = luSolve(slu, sperm, diagFrom(tf.reshape(dy, [m]) as tf.Tensor1D, n));
          return tf.reshape(g, x.shape);
        }),
    };
  });
  const sign = tf.reshape(f.sign, batch);
  tf.dispose([f.lu, f.perm, f.sign, f.det, f.logAbsDet]);
  return { sign, logAbsDet };
}
