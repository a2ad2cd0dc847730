import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { det, slogdet, DiversityInputError } from './index';

/** Float64 inverse by Gauss-Jordan with partial pivoting (test oracle). */
function inverse(a: number[][]): number[][] {
  const n = a.length;
  const m = a.map((r, i) => [...r, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(m[i][k]) > Math.abs(m[p][k])) p = i;
    [m[k], m[p]] = [m[p], m[k]];
    const piv = m[k][k];
    for (let j = 0; j < 2 * n; j++) m[k][j] /= piv;
    for (let i = 0; i < n; i++) {
      if (i === k) continue;
      const f = m[i][k];
      for (let j = 0; j < 2 * n; j++) m[i][j] -= f * m[k][j];
    }
  }
  return m.map((r) => r.slice(n));
}
const transpose = (a: number[][]) => a[0].map((_, j) => a.map((r) => r[j]));
const det3 = (a: number[][]) =>
  a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
  a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
  a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);

function value(f: () => tf.Tensor): number[] {
  const t = f();
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
}

/** Central finite differences of a scalar function of a matrix (float32 evaluations). */
function finiteDiff(fn: (a: tf.Tensor) => tf.Tensor, a: number[][], h: number): number[] {
  const n = a.length;
  const out: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const plus = a.map((r) => [...r]);
      const minus = a.map((r) => [...r]);
      plus[i][j] += h;
      minus[i][j] -= h;
      const fp = value(() => fn(tf.tensor2d(plus)))[0];
      const fm = value(() => fn(tf.tensor2d(minus)))[0];
      out.push((fp - fm) / (2 * h));
    }
  return out;
}

const WELL = [
  [2, -1, 0.5, 0.3],
  [0.4, 3, -0.7, 1],
  [-1.2, 0.6, 1.5, 0.2],
  [0.9, -0.3, 0.8, -2.5],
];
const HILBERT4 = [0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => 1 / (i + j + 1)));
// Exact inverse of the 4×4 Hilbert matrix (integer entries).
const HILBERT4_INV = [
  [16, -120, 240, -140],
  [-120, 1200, -2700, 1680],
  [240, -2700, 6480, -4200],
  [-140, 1680, -4200, 2800],
];

describe.each(['cpu', 'wasm'])('det / slogdet (%s)', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
  });

  it('matches hand-derived determinants, including zero diagonals, negative and batched ones', () => {
    expectArrayClose(
      value(() =>
        det(
          tf.tensor2d([
            [3, 1],
            [4, 2],
          ]),
        ),
      ),
      [2],
      { rtol: 1e-6 },
    );
    expectArrayClose(
      value(() =>
        det(
          tf.tensor2d([
            [0, 2],
            [3, 0],
          ]),
        ),
      ),
      [-6],
      { rtol: 1e-6 },
    );
    // Hollow symmetric 3×3: det = 2abc (docs/method.md#numerics), needs pivoting at every step.
    const [a, b, c] = [0.7, 0.2, 0.45];
    expectArrayClose(
      value(() =>
        det(
          tf.tensor2d([
            [0, a, b],
            [a, 0, c],
            [b, c, 0],
          ]),
        ),
      ),
      [2 * a * b * c],
      { rtol: 1e-6 },
    );
    // Permutation matrices: ±1; triangular: product of the diagonal.
    expectArrayClose(
      value(() =>
        det(
          tf.tensor2d([
            [0, 1, 0],
            [0, 0, 1],
            [1, 0, 0],
          ]),
        ),
      ),
      [1],
      { rtol: 0, atol: 0 },
    );
    expectArrayClose(
      value(() =>
        det(
          tf.tensor2d([
            [0, 1, 0],
            [1, 0, 0],
            [0, 0, 1],
          ]),
        ),
      ),
      [-1],
      { rtol: 0, atol: 0 },
    );
    expectArrayClose(
      value(() =>
        det(
          tf.tensor2d([
            [2, 5, 7],
            [0, -3, 1],
            [0, 0, 0.5],
          ]),
        ),
      ),
      [-3],
      { rtol: 1e-6 },
    );
    const m3 = [
      [1, 2, 3],
      [0.5, -1, 4],
      [2, 2, -2],
    ];
    const batch = tf.tensor3d([
      m3,
      [
        [0, a, b],
        [a, 0, c],
        [b, c, 0],
      ],
    ]);
    const d = det(batch);
    expect(d.shape).toEqual([2]);
    expectArrayClose(d.dataSync(), [det3(m3), 2 * a * b * c], { rtol: 1e-5 });
    tf.dispose([batch, d]);
    expectArrayClose(
      value(() => det(tf.tensor2d([[5]]))),
      [5],
      { rtol: 0, atol: 0 },
    );
  });

  it('slogdet gives sign and log|det|; 0 and −inf for a singular matrix', () => {
    const s = slogdet(
      tf.tensor3d([
        [
          [0, 2],
          [3, 0],
        ],
        [
          [1, 2],
          [2, 4],
        ],
        [
          [2, 0],
          [0, 3],
        ],
      ]),
    );
    expectArrayClose(s.sign.dataSync(), [-1, 0, 1], { rtol: 0, atol: 0 });
    expectArrayClose(s.logAbsDet.dataSync(), [Math.log(6), -Infinity, Math.log(6)], { rtol: 1e-6 });
    tf.dispose([s.sign, s.logAbsDet]);
  });

  it('det gradient is det(A)·A⁻ᵀ and agrees with finite differences', () => {
    const g = tf.grad((x: tf.Tensor) => det(x));
    const ainvT = transpose(inverse(WELL));
    const dWell = value(() => det(tf.tensor2d(WELL)))[0];
    const analytic = ainvT.flat().map((v) => dWell * v);
    expectArrayClose(
      value(() => g(tf.tensor2d(WELL))),
      analytic,
      { rtol: 1e-4, atol: 1e-5 },
    );
    expectArrayClose(
      value(() => g(tf.tensor2d(WELL))),
      finiteDiff((x) => det(x), WELL, 1e-2),
      { rtol: 1e-3, atol: 1e-3 },
    );
    // The 'torch' formula agrees on invertible matrices.
    const gt = tf.grad((x: tf.Tensor) => det(x, { gradient: 'torch' }));
    expectArrayClose(
      value(() => gt(tf.tensor2d(WELL))),
      analytic,
      { rtol: 1e-4, atol: 1e-5 },
    );
  });

  it('det gradient on a zero-diagonal matrix matches finite differences', () => {
    const z = [
      [0, 0.8, 0.3],
      [0.8, 0, 0.6],
      [0.3, 0.6, 0],
    ];
    const g = tf.grad((x: tf.Tensor) => det(x));
    expectArrayClose(
      value(() => g(tf.tensor2d(z))),
      finiteDiff((x) => det(x), z, 1e-2),
      { rtol: 1e-3, atol: 1e-4 },
    );
    // Hand-derived: ∂det/∂A = cofactor matrix; for this matrix C_01 = −(0.8·0 − 0.6·0.3).
    expectArrayClose([value(() => g(tf.tensor2d(z)))[1]], [0.18], { rtol: 1e-5 });
  });

  it('det gradient of a singular matrix is the adjugate transpose (torch mode: 0, as PyTorch)', () => {
    const sing = [
      [1, 2],
      [2, 4],
    ];
    expectArrayClose(
      value(() => det(tf.tensor2d(sing))),
      [0],
      { rtol: 0, atol: 0 },
    );
    const g = tf.grad((x: tf.Tensor) => det(x));
    expectArrayClose(
      value(() => g(tf.tensor2d(sing))),
      [4, -2, -2, 1],
      { rtol: 1e-6 },
    );
    const rank2 = [
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ]; // rank 2: adjugate ≠ 0
    const fdRank2 = finiteDiff((x) => det(x), rank2, 1e-2);
    expectArrayClose(
      value(() => g(tf.tensor2d(rank2))),
      [-3, 6, -3, 6, -12, 6, -3, 6, -3],
      { rtol: 1e-4, atol: 1e-4 },
    );
    expectArrayClose(fdRank2, [-3, 6, -3, 6, -12, 6, -3, 6, -3], { rtol: 1e-2, atol: 2e-2 });
    // Rank 1: every 2×2 minor vanishes, so the adjugate is 0.
    expectArrayClose(
      value(() => g(tf.ones([3, 3]))),
      new Array(9).fill(0),
      { rtol: 0, atol: 1e-6 },
    );
    const gt = tf.grad((x: tf.Tensor) => det(x, { gradient: 'torch' }));
    expectArrayClose(
      value(() => gt(tf.tensor2d(sing))),
      [0, 0, 0, 0],
      { rtol: 0, atol: 0 },
    );
  });

  it('slogdet gradient is A⁻ᵀ: finite differences, a negative determinant, and an ill-conditioned Hilbert matrix', () => {
    const g = tf.grad((x: tf.Tensor) => slogdet(x).logAbsDet);
    const lad = (x: tf.Tensor) => {
      const s = slogdet(x);
      s.sign.dispose();
      return s.logAbsDet;
    };
    expectArrayClose(
      value(() => g(tf.tensor2d(WELL))),
      transpose(inverse(WELL)).flat(),
      { rtol: 1e-4, atol: 1e-5 },
    );
    expectArrayClose(
      value(() => g(tf.tensor2d(WELL))),
      finiteDiff(lad, WELL, 1e-3),
      { rtol: 2e-3, atol: 2e-3 },
    );
    const neg = [
      [0, 2],
      [3, 0],
    ];
    expectArrayClose(
      value(() => g(tf.tensor2d(neg))),
      transpose(inverse(neg)).flat(),
      { rtol: 1e-6 },
    );
    // Hilbert(4): cond ≈ 1.5e4, det = 1/6048000. float32 elimination keeps ~1e-3 relative accuracy here.
    const s = slogdet(tf.tensor2d(HILBERT4));
    expectArrayClose(s.sign.dataSync(), [1], { rtol: 0, atol: 0 });
    expectArrayClose(s.logAbsDet.dataSync(), [-Math.log(6048000)], { rtol: 1e-3 });
    tf.dispose([s.sign, s.logAbsDet]);
    expectArrayClose(
      value(() => det(tf.tensor2d(HILBERT4))),
      [1 / 6048000],
      { rtol: 1e-2 },
    );
    expectArrayClose(
      value(() => g(tf.tensor2d(HILBERT4))),
      HILBERT4_INV.flat(),
      { rtol: 2e-2, atol: 5 },
    );
    // Singular input: the gradient of log|det| does not exist; like PyTorch it is not finite.
    const gs = value(() =>
      g(
        tf.tensor2d([
          [1, 2],
          [2, 4],
        ]),
      ),
    );
    expect(gs.some((v) => !Number.isFinite(v))).toBe(true);
  });

  it('leaks nothing (forward and gradient)', async () => {
    const a = tf.tensor2d(WELL);
    await expectNoLeak(() => det(a));
    await expectNoLeak(() => det(a, { gradient: 'torch' }));
    await expectNoLeak(() => slogdet(a), { returned: 2 });
    await expectNoLeak(() => tf.grad((x: tf.Tensor) => det(x))(a));
    await expectNoLeak(() => tf.grad((x: tf.Tensor) => det(x, { gradient: 'torch' }))(a));
    await expectNoLeak(() => tf.grad((x: tf.Tensor) => slogdet(x).logAbsDet)(a)); // sign is disposed by grad's scope
    a.dispose();
  });

  it('rejects non-square, empty and non-float inputs with a clear message', () => {
    expect(() => det(tf.zeros([2, 3]))).toThrow(/shape \[\.\.\., n, n\].*\[2, 3\]/);
    expect(() => det(tf.zeros([3]))).toThrow(DiversityInputError);
    expect(() => slogdet(tf.zeros([2, 2], 'int32'))).toThrow(/float32.*int32/);
    expect(() => det(tf.zeros([2, 2]), { gradient: 'exact' as never })).toThrow(
      /Unknown det gradient 'exact'. Valid: adjugate, torch/,
    );
  });
});
