/**
 * One error family for every fer package. Each error has a stable `code` (`FER_…`, safe to branch on), a `hint`
 * (how to fix it, already appended to `message`) and the standard `cause`. Packages that do not depend on fer-core
 * (fer-torch, fer-backend, fer-diversity-loss) follow the same convention without the base class; `isFerError`
 * recognises both. Programming errors stay plain `Error`s.
 */

/** Every code a fer package throws, by package. Codes are stable across versions; messages are not. */
export const FER_ERROR_CODES = {
  /** fer-core and the model/dataset/train packages (`FerInputError`), fer-diversity-loss (`DiversityInputError`). */
  input: 'FER_INPUT',
  /** fer-train `NonFiniteLossError`: a loss term or gradient was NaN/±Inf; nothing was updated. */
  nonFiniteLoss: 'FER_NON_FINITE_LOSS',
  /** fer-train `DivergenceError`: the loss rose far above its running level, or weights became non-finite or huge. */
  diverged: 'FER_DIVERGED',
  /** fer-train run folders: the folder is locked by another run, or holds a run that does not match (`--resume`). */
  runFolder: 'FER_RUN_FOLDER',
  /** Non-finite values in a model's or checkpoint's weights at load. */
  nonFiniteWeights: 'FER_NON_FINITE_WEIGHTS',
  /** fer-datasets `ImageDecodeError`: a missing, unreadable or corrupt image. */
  imageDecode: 'FER_IMAGE_DECODE',
  /** fer-parallel `WorkerTaskError`: a failure inside a worker thread (its `cause` carries the worker's error). */
  workerTask: 'FER_WORKER_TASK',
  /** fer-torch `TorchFormatError`: not a well-formed PyTorch checkpoint. */
  torchFormat: 'FER_TORCH_FORMAT',
  /** fer-torch `UnsafePickleError`: the pickle asks for something the safe unpickler refuses. */
  unsafePickle: 'FER_UNSAFE_PICKLE',
  /** fer-torch `StateDictError`: a state dict does not fit its target. */
  stateDict: 'FER_STATE_DICT',
  /** fer-torch `SafetensorsError`: not a well-formed safetensors file. */
  safetensors: 'FER_SAFETENSORS',
  /** fer-backend `BackendUnavailableError`: an explicitly requested backend cannot be used. */
  backendUnavailable: 'FER_BACKEND_UNAVAILABLE',
  /** fer-backend: the installed tfjs-core is not the version whose internals were verified. */
  tfjsVersion: 'FER_TFJS_VERSION',
} as const;

export type FerErrorCode = (typeof FER_ERROR_CODES)[keyof typeof FER_ERROR_CODES];

/** The shape every fer error has, whether or not it extends `FerError`. */
export interface FerErrorLike extends Error {
  readonly code: string;
  readonly hint?: string;
}

/** The standard `ErrorOptions` (`cause`) plus a fix for the user. */
export interface FerErrorOptions extends ErrorOptions {
  hint?: string;
}

/** `message` followed by the hint, unless the message already ends with it. */
export function withHint(message: string, hint?: string): string {
  return hint && !message.endsWith(hint) ? `${message} ${hint}` : message;
}

const CODE = /^FER_[A-Z0-9_]+$/;

/** True for any fer error: a `FerError`, or an `Error` with a `FER_…` code (the dependency-free packages' errors). */
export function isFerError(e: unknown): e is FerErrorLike {
  return (
    e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && CODE.test((e as FerErrorLike).code)
  );
}

/**
 * Base of the fer errors. Throw a subclass, or `new FerError(code, message, { hint, cause })` for a new code (add it
 * to `FER_ERROR_CODES`). `message` says what was expected and what arrived; `hint` how to fix it.
 */
export class FerError extends Error implements FerErrorLike {
  override name = 'FerError';
  readonly code: string;
  readonly hint?: string;
  constructor(code: string, message: string, options: FerErrorOptions = {}) {
    const { hint, ...errorOptions } = options;
    super(withHint(message, hint), errorOptions);
    this.code = code;
    if (hint !== undefined) this.hint = hint;
  }
}

/** Bad user-supplied data or options. `new FerInputError(message, hint)` or `(message, { hint, cause })`. */
export class FerInputError extends FerError {
  override name = 'FerInputError';
  constructor(message: string, hintOrOptions?: string | FerErrorOptions) {
    super(FER_ERROR_CODES.input, message, typeof hintOrOptions === 'string' ? { hint: hintOrOptions } : hintOrOptions);
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
