/** Fixture comparison following diversity/manifest.json `recommended_check` (strict, loose, edge). */
export type Check = 'strict' | 'loose' | 'edge';

function kind(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return '+inf';
  if (x === -Infinity) return '-inf';
  return 'finite';
}

/**
 * Values: NaN/±inf must match exactly; finite values by the check's rule. Returns a list of failures (empty = ok).
 * `zeroPattern` additionally requires exact zeros to coincide.
 */
export function compareArrays(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rule: { check: Check; rtol: number; atol: number; zeroPattern?: boolean },
  label: string,
): string[] {
  const out: string[] = [];
  if (actual.length !== expected.length) return [`${label}: length ${actual.length} vs ${expected.length}`];
  for (let i = 0; i < expected.length && out.length < 4; i++) {
    const a = actual[i];
    const e = expected[i];
    if (kind(a) !== kind(e)) {
      out.push(`${label}[${i}]: ${a} vs ${e} (non-finite pattern)`);
      continue;
    }
    if (kind(e) !== 'finite') continue;
    if (rule.zeroPattern && (a === 0) !== (e === 0)) {
      out.push(`${label}[${i}]: ${a} vs ${e} (zero pattern)`);
      continue;
    }
    if (rule.check === 'edge') {
      const tiny = Math.abs(a) < 1e-30 && Math.abs(e) < 1e-30;
      const sameSign = Math.sign(a) === Math.sign(e) || a === 0 || e === 0;
      const factor2 = sameSign && Math.abs(a) <= 2 * Math.abs(e) && Math.abs(e) <= 2 * Math.abs(a);
      if (!tiny && !factor2) out.push(`${label}[${i}]: ${a} vs ${e} (edge: not within a factor of 2)`);
    } else if (!(Math.abs(a - e) <= rule.atol + rule.rtol * Math.abs(e))) {
      out.push(`${label}[${i}]: ${a} vs ${e} (|diff| ${Math.abs(a - e)} > ${rule.atol} + ${rule.rtol}·|ref|)`);
    }
  }
  return out;
}

export function maxAbsFinite(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i])) m = Math.max(m, Math.abs(x[i]));
  return m;
}
