/**
 * Bad-input errors. The package depends on tfjs-core only, so it carries its own small error type instead of
 * fer-core's `FerInputError` (same shape: what was expected, what arrived, how to fix it).
 */
export class DiversityInputError extends Error {
  override readonly name = 'DiversityInputError';
}

export function describeValue(x: unknown): string {
  if (typeof x === 'string') return `'${x}'`;
  if (Array.isArray(x)) return `[${x.map(describeValue).join(', ')}]`;
  if (x === null || x === undefined || typeof x !== 'object') return String(x);
  const shape = (x as { shape?: unknown }).shape;
  if (Array.isArray(shape)) return `a tensor of shape [${shape.join(', ')}]`;
  try {
    return JSON.stringify(x);
  } catch {
    return Object.prototype.toString.call(x);
  }
}

/** `Expected <what> to be <expectedDesc>, but got <actual>. <hint>` */
export function expected(what: string, expectedDesc: string, actual: unknown, hint?: string): DiversityInputError {
  const msg = `Expected ${what} to be ${expectedDesc}, but got ${describeValue(actual)}.`;
  return new DiversityInputError(hint ? `${msg} ${hint}` : msg);
}

/** `Unknown reduction 'det'. Valid: negDet, negLogDet, sum.` */
export function parseChoice<T extends string>(what: string, value: unknown, valid: readonly T[]): T {
  if (typeof value === 'string' && (valid as readonly string[]).includes(value)) return value as T;
  throw new DiversityInputError(`Unknown ${what} ${describeValue(value)}. Valid: ${valid.join(', ')}.`);
}
