/**
 * Errors raised while reading or writing checkpoints. Messages say what was expected, what arrived and how to fix it
 * (STYLE.md). Every refusal happens before anything from the file is used: nothing in a pickle is ever executed.
 */

/** The file is not a well-formed checkpoint: truncated, corrupt, inconsistent sizes, unsupported variant. */
export class TorchFormatError extends Error {
  override readonly name = 'TorchFormatError';
}

/**
 * The pickle asks for something the safe unpickler will not do: a global outside the allow-list, an opcode that
 * would construct or call arbitrary Python objects (INST, OBJ, EXT*), or a call on a non-allow-listed callable.
 */
export class UnsafePickleError extends Error {
  override readonly name = 'UnsafePickleError';
}

/** A state dict does not fit its target: missing, unexpected or shape-mismatched keys, key collisions. */
export class StateDictError extends Error {
  override readonly name = 'StateDictError';
}
