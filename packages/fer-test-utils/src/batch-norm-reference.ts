/**
 * Train-mode batch norm in float64, as an independent expectation for fer-core's one-op batch norm and fer-native's
 * kernels: the forward straight from the definition, and gradients of L = Σ w·y by central finite differences of
 * that forward (no closed form involved).
 */

export interface BnReferenceInput {
  /** [..., C] values, row-major. */
  x: ArrayLike<number>;
  channels: number;
  gamma: ArrayLike<number>;
  beta: ArrayLike<number>;
  eps: number;
}

/** y, batch mean and biased batch variance over all but the last axis, in float64. */
export function bnTrainForward64(p: BnReferenceInput): { y: Float64Array; mean: Float64Array; variance: Float64Array } {
  const c = p.channels;
  const n = p.x.length / c;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let i = 0; i < p.x.length; i++) mean[i % c] += p.x[i] / n;
  for (let i = 0; i < p.x.length; i++) variance[i % c] += (p.x[i] - mean[i % c]) ** 2 / n;
  const y = new Float64Array(p.x.length);
  for (let i = 0; i < p.x.length; i++) {
    const k = i % c;
    y[i] = ((p.x[i] - mean[k]) / Math.sqrt(variance[k] + p.eps)) * p.gamma[k] + p.beta[k];
  }
  return { y, mean, variance };
}

/** dL/dx, dL/dgamma, dL/dbeta of L = Σ w·y by central differences (step h relative to each value's scale). */
export function bnTrainGradFD64(
  p: BnReferenceInput,
  w: ArrayLike<number>,
  h = 1e-6,
): { dx: Float64Array; dGamma: Float64Array; dBeta: Float64Array } {
  const loss = (q: BnReferenceInput) => bnTrainForward64(q).y.reduce((s, v, i) => s + v * w[i], 0);
  const diff = (values: ArrayLike<number>, make: (v: Float64Array) => BnReferenceInput) => {
    const v = Float64Array.from(values);
    const g = new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const v0 = v[i];
      const step = h * Math.max(1, Math.abs(v0));
      v[i] = v0 + step;
      const up = loss(make(v));
      v[i] = v0 - step;
      const down = loss(make(v));
      v[i] = v0;
      g[i] = (up - down) / (2 * step);
    }
    return g;
  };
  return {
    dx: diff(p.x, (x) => ({ ...p, x })),
    dGamma: diff(p.gamma, (gamma) => ({ ...p, gamma })),
    dBeta: diff(p.beta, (beta) => ({ ...p, beta })),
  };
}
