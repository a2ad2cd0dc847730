/**
 * Bad-input errors. The package depends on tfjs-core only, so instead of extending fer-core's `FerInputError` it
 * follows the same convention: the stable code `FER_INPUT`, an optional `hint` (appended to the message) and the
 * standard `cause`; fer-core's `isFerError` recognises it.
 */
export class DiversityInputError extends Error {
  override readonly name = 'DiversityInputError';
  readonly code = 'FER_INPUT';
  readonly hint?: string;
  constructor(message: string, options: ErrorOptions & { hint?: string } = {}) {
    const { hint, ...errorOptions } = options;
    super(hint && !message.endsWith(hint) ? `${message} ${hint}` : message, errorOptions);
    if (hint !== undefined) this.hint = hint;
  }
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
  return new DiversityInputError(`Expected ${what} to be ${expectedDesc}, but got ${describeValue(actual)}.`, { hint });
}

/** `Unknown reduction 'det'. Valid: negDet, negLogDet, sum.` */
export function parseChoice<T extends string>(what: string, value: unknown, valid: readonly T[]): T {
  if (typeof value === 'string' && (valid as readonly string[]).includes(value)) return value as T;
  throw new DiversityInputError(`Unknown ${what} ${describeValue(value)}. Valid: ${valid.join(', ')}.`);
}
