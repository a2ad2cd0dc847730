/**
 * Errors for bad input: say what was expected, what arrived, and how to fix it (STYLE.md).
 * `FerInputError` is for user-supplied data and options; programming errors stay plain `Error`s.
 */
export class FerInputError extends Error {
  override readonly name = 'FerInputError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(hint ? `${message} ${hint}` : message);
  }
}

/** `Expected <what> to be <expected>, but got <actual>.` plus an optional fix. */
export function expected(what: string, expectedDesc: string, actual: unknown, hint?: string): FerInputError {
  return new FerInputError(`Expected ${what} to be ${expectedDesc}, but got ${describe(actual)}.`, hint);
}

export function describe(x: unknown): string {
  if (typeof x === 'string') return `'${x}'`;
  if (Array.isArray(x)) return `[${x.map(describe).join(', ')}]`;
  if (x === null || x === undefined || typeof x !== 'object') return String(x);
  const shape = (x as { shape?: unknown }).shape;
  if (Array.isArray(shape)) return `a tensor of shape [${shape.join(', ')}]`;
  try {
    return JSON.stringify(x);
  } catch {
    return Object.prototype.toString.call(x);
  }
}

export function assertPositiveInt(what: string, x: unknown): asserts x is number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x <= 0) throw expected(what, 'a positive integer', x);
}

/** Checks rank and every fixed dimension (`null` = any size). */
export function assertShape(
  what: string,
  shape: readonly number[],
  want: readonly (number | null)[],
  hint?: string,
): void {
  const ok = shape.length === want.length && want.every((d, i) => d === null || d === shape[i]);
  if (!ok) {
    const w = `[${want.map((d) => (d === null ? '?' : d)).join(', ')}]`;
    throw new FerInputError(`Expected ${what} of shape ${w}, but got [${shape.join(', ')}].`, hint);
  }
}

/** `Unknown dataset 'rafbd'. Valid: affectnet, ferplus, rafdb.` */
export function parseChoice<T extends string>(what: string, value: string, valid: readonly T[]): T {
  if ((valid as readonly string[]).includes(value)) return value as T;
  throw new FerInputError(`Unknown ${what} '${value}'. Valid: ${valid.join(', ')}.`);
}
