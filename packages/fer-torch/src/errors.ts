/**
 * Errors raised while reading or writing checkpoints. Messages say what was expected, what arrived and how to fix it.
 * Every refusal happens before anything from the file is used: nothing in a pickle is ever executed.
 *
 * fer-torch does not depend on fer-core, so these follow fer-core's error convention (a stable `FER_…` `code`, an
 * optional `hint` appended to the message, the standard `cause`) instead of extending `FerError`; fer-core's
 * `isFerError` recognises them.
 */

export interface TorchErrorOptions extends ErrorOptions {
  /** How to fix it; appended to the message. */
  hint?: string;
}

abstract class TorchError extends Error {
  abstract readonly code: string;
  readonly hint?: string;
  constructor(message: string, options: TorchErrorOptions = {}) {
    const { hint, ...errorOptions } = options;
    super(hint && !message.endsWith(hint) ? `${message} ${hint}` : message, errorOptions);
    if (hint !== undefined) this.hint = hint;
  }
}

/** The file is not a well-formed checkpoint: truncated, corrupt, inconsistent sizes, unsupported variant. */
export class TorchFormatError extends TorchError {
  override readonly name = 'TorchFormatError';
  readonly code = 'FER_TORCH_FORMAT';
}

/**
 * The pickle asks for something the safe unpickler will not do: a global outside the allow-list, an opcode that
 * would construct or call arbitrary Python objects (INST, OBJ, EXT*), or a call on a non-allow-listed callable.
 */
export class UnsafePickleError extends TorchError {
  override readonly name = 'UnsafePickleError';
  readonly code = 'FER_UNSAFE_PICKLE';
}

/** A state dict does not fit its target: missing, unexpected or shape-mismatched keys, key collisions. */
export class StateDictError extends TorchError {
  override readonly name = 'StateDictError';
  readonly code = 'FER_STATE_DICT';
}

/** A safetensors file is malformed: bad header, overlapping or out-of-range data, unknown dtype. */
export class SafetensorsError extends TorchError {
  override readonly name = 'SafetensorsError';
  readonly code = 'FER_SAFETENSORS';
}
