import { TorchFormatError, UnsafePickleError } from './errors';

/**
 * A safe, allow-list unpickler for the subset of Python's pickle format that checkpoints use (protocols 0–5).
 *
 * Nothing in the stream is ever executed or resolved to a function: a GLOBAL either names an entry of the
 * allow-list (whose behaviour is re-implemented here in TypeScript), or it is refused, or — only when the caller
 * asked for it with `unknownGlobals: 'inert'` — it becomes a `PickledGlobal` record, and calling it yields a
 * `PickledObject` record of what would have been built (module, name, args, state). INST, OBJ, EXT* and
 * out-of-band buffers are always refused.
 */

/** What to do with a global that is not on the allow-list. */
export type UnknownGlobals = 'error' | 'inert';

/** Python dict (`kind: 'dict'`) or `collections.OrderedDict`; `attributes` holds what BUILD set (e.g. `_metadata`). */
export class PyDict extends Map<unknown, unknown> {
  kind: 'dict' | 'OrderedDict' = 'dict';
  /** Instance attributes set by BUILD, e.g. the `_metadata` of a `state_dict()` OrderedDict. */
  attributes: Map<string, unknown> = new Map();
}

/** A reference to a Python global that is not on the allow-list, kept as data (only with `unknownGlobals: 'inert'`). */
export class PickledGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An object the pickle would have built by calling a non-allow-listed global (REDUCE/NEWOBJ), recorded as inert
 * data: nothing was constructed or called.
 */
export class PickledObject {
  /** Set by BUILD (the object's `__dict__`, or a `(dict, slots)` pair). */
  state: unknown = undefined;
  /** Items appended (list subclasses) or set (dict subclasses) after construction. */
  readonly listItems: unknown[] = [];
  readonly dictItems: Map<unknown, unknown> = new Map();
  constructor(
    readonly module: string,
    readonly name: string,
    readonly args: unknown[],
    readonly kwargs?: PyDict,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An allow-listed global. `call` implements REDUCE (and NEWOBJ when `newobj` is absent) in TypeScript; a global
 * without `call` can only be used as a value (e.g. storage classes inside persistent ids).
 */
export interface AllowedGlobal {
  readonly module: string;
  readonly name: string;
  call?(args: unknown[]): unknown;
  newobj?(args: unknown[]): unknown;
  /** BUILD on an object this global created. Return true when handled. */
  build?(obj: unknown, state: unknown): boolean;
  /** When present, GLOBAL pushes this value instead of the global itself (e.g. `torch.float32` → `'float32'`). */
  value?: unknown;
}

export interface UnpickleOptions {
  /** Allow-list keyed by `module.name`. Defaults to `BASE_GLOBALS`. */
  globals?: ReadonlyMap<string, AllowedGlobal>;
  /** `'error'` (default) refuses any other global; `'inert'` records it as data (never executed). */
  unknownGlobals?: UnknownGlobals;
  /** Handler for PERSID/BINPERSID; without one, persistent ids are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Name used in error messages (file path, zip entry). */
  source?: string;
  /** Start offset in `bytes` (legacy files hold several pickles back to back). */
  offset?: number;
}

export interface UnpickleResult {
  value: unknown;
  /** Offset just past the STOP opcode. */
  end: number;
}

/** Modules that have no business in a checkpoint: refused even in inert mode (defence in depth). */
const DENIED_MODULES = new Set([
  'os',
  'posix',
  'nt',
  'posixpath',
  'ntpath',
  'subprocess',
  '_posixsubprocess',
  'sys',
  'builtins',
  'importlib',
  'runpy',
  'shutil',
  'socket',
  'pickle',
  '_pickle',
  'marshal',
  'ctypes',
  'code',
  'codeop',
  'pty',
  'webbrowser',
  'types',
  'functools',
  'operator',
  'io',
  '_io',
  'commands',
  'popen2',
  'multiprocessing',
  'signal',
  'asyncio',
  'pdb',
  'bdb',
  'timeit',
  'platform',
  'tempfile',
  'glob',
  'urllib',
  'http',
  'ftplib',
  'telnetlib',
  'smtplib',
  'requests',
  'inspect',
  'gc',
  'weakref',
  'threading',
  '_thread',
  'ssl',
  'zipimport',
  'pkgutil',
  'site',
  'cProfile',
  'profile',
  'trace',
  'dill',
  'cloudpickle',
  'joblib',
  'copyreg',
  '_codecs',
  'codecs',
  'imp',
]);
/** Name components that signal code execution or attribute games, refused in every module. */
const DENIED_NAMES = new Set([
  'eval',
  'exec',
  'execfile',
  'compile',
  'getattr',
  'setattr',
  'delattr',
  '__import__',
  'open',
  'system',
  'popen',
  'spawn',
  'spawnl',
  'spawnv',
  'execv',
  'execve',
  'execl',
  'fork',
  'apply',
  'globals',
  'locals',
  'vars',
  'input',
  'breakpoint',
  'load',
  'loads',
  'call',
  'check_call',
  'check_output',
  'run',
  'Popen',
]);

/** Plain builtin types that checkpoints reference as data (`defaultdict(list)`, `slice`); inert mode keeps them. */
const INERT_BUILTIN_TYPES = new Set([
  'int',
  'float',
  'complex',
  'str',
  'bytes',
  'bool',
  'list',
  'dict',
  'tuple',
  'object',
  'slice',
  'range',
]);

function isDenied(module: string, name: string): boolean {
  if (module === 'builtins' && INERT_BUILTIN_TYPES.has(name)) return false;
  const root = module.split('.')[0];
  if (DENIED_MODULES.has(root)) return true;
  for (const part of [...module.split('.'), ...name.split('.')]) {
    if (DENIED_NAMES.has(part)) return true;
    if (part.startsWith('__') && part.endsWith('__') && part !== '__main__') return true;
  }
  return false;
}

/** Python 2 module names, as `pickle.Unpickler(fix_imports=True)` maps them. */
const PY2_MODULES: Readonly<Record<string, string>> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

function toSequence(x: unknown, what: string): unknown[] {
  if (Array.isArray(x)) return x;
  if (x instanceof Set) return [...x];
  throw new TorchFormatError(`${what}: expected a list or tuple, got ${describeValue(x)}.`);
}

function newOrderedDict(args: unknown[]): PyDict {
  const d = new PyDict();
  d.kind = 'OrderedDict';
  if (args.length > 1)
    throw new TorchFormatError(`collections.OrderedDict takes at most 1 argument, got ${args.length}.`);
  if (args.length === 1 && args[0] !== null) {
    const init = args[0];
    if (init instanceof Map) for (const [k, v] of init) d.set(k, v);
    else
      for (const pair of toSequence(init, 'OrderedDict(items)')) {
        const kv = toSequence(pair, 'OrderedDict item');
        if (kv.length !== 2)
          throw new TorchFormatError(`OrderedDict items must be (key, value) pairs, got ${kv.length} values.`);
        d.set(kv[0], kv[1]);
      }
  }
  return d;
}

const buildDictAttributes = (obj: unknown, state: unknown): boolean => {
  if (!(obj instanceof PyDict)) return false;
  // state is the instance __dict__, or (dict, slots) when the class has __slots__.
  const parts = Array.isArray(state) && state.length === 2 ? state : [state];
  for (const part of parts) {
    if (part === null) continue;
    if (!(part instanceof Map))
      throw new TorchFormatError(`BUILD on an OrderedDict expects a dict of attributes, got ${describeValue(part)}.`);
    for (const [k, v] of part) setAttr(obj, k, v);
  }
  return true;
};
function setAttr(obj: PyDict, k: unknown, v: unknown): void {
  if (typeof k !== 'string') throw new TorchFormatError(`attribute names must be strings, got ${describeValue(k)}.`);
  obj.attributes.set(k, v);
}

function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255)
      throw new TorchFormatError(`_codecs.encode(..., 'latin1'): character U+${c.toString(16)} is not latin-1.`);
    out[i] = c;
  }
  return out;
}

function g(module: string, name: string, impl: Omit<AllowedGlobal, 'module' | 'name'>): [string, AllowedGlobal] {
  return [`${module}.${name}`, { module, name, ...impl }];
}

/**
 * Generic allow-list: containers and the protocol-2 encoding of `bytes`. Torch-specific entries (tensor rebuild,
 * storages) are added by the checkpoint reader.
 */
export const BASE_GLOBALS: ReadonlyMap<string, AllowedGlobal> = new Map([
  g('collections', 'OrderedDict', {
    call: newOrderedDict,
    newobj: () => newOrderedDict([]),
    build: buildDictAttributes,
  }),
  g('builtins', 'set', { call: (a) => new Set(a.length ? toSequence(a[0], 'set()') : []) }),
  g('builtins', 'frozenset', { call: (a) => new Set(a.length ? toSequence(a[0], 'frozenset()') : []) }),
  g('builtins', 'bytearray', {
    call: (a) => {
      if (a.length === 0) return new Uint8Array(0);
      if (a[0] instanceof Uint8Array) return copyBytes(a[0]);
      if (typeof a[0] === 'string' && a[1] === 'latin-1') return latin1Bytes(a[0]);
      throw new TorchFormatError(`bytearray(${describeValue(a[0])}) is not supported.`);
    },
  }),
  g('builtins', 'bytes', { call: (a) => (a.length === 0 ? new Uint8Array(0) : bytesArg(a[0])) }),
  g('_codecs', 'encode', {
    call: (a) => {
      const enc = String(a[1] ?? 'utf-8')
        .toLowerCase()
        .replace('_', '-');
      if (typeof a[0] !== 'string')
        throw new TorchFormatError(`_codecs.encode expects a str, got ${describeValue(a[0])}.`);
      if (enc === 'latin1' || enc === 'latin-1' || enc === 'iso-8859-1') return latin1Bytes(a[0]);
      if (enc === 'utf-8' || enc === 'utf8') return new TextEncoder().encode(a[0]);
      throw new TorchFormatError(`_codecs.encode with encoding '${enc}' is not supported.`);
    },
  }),
]);

function bytesArg(x: unknown): Uint8Array {
  if (x instanceof Uint8Array) return copyBytes(x);
  if (Array.isArray(x) && x.every((v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 256))
    return Uint8Array.from(x as number[]);
  throw new TorchFormatError(`bytes(${describeValue(x)}) is not supported.`);
}

export function describeValue(x: unknown): string {
  if (x === null) return 'None';
  if (x === undefined) return 'nothing';
  if (typeof x === 'string') return `str '${x.length > 40 ? `${x.slice(0, 40)}…` : x}'`;
  if (typeof x === 'number' || typeof x === 'bigint' || typeof x === 'boolean') return `${typeof x} ${String(x)}`;
  if (Array.isArray(x)) return `a tuple/list of ${x.length}`;
  if (x instanceof PyDict) return x.kind === 'OrderedDict' ? `an OrderedDict of ${x.size}` : `a dict of ${x.size}`;
  if (x instanceof PickledGlobal) return `the global ${x.qualifiedName}`;
  if (x instanceof PickledObject) return `an inert ${x.qualifiedName} object`;
  if (x instanceof Uint8Array) return `bytes of length ${x.byteLength}`;
  if (x instanceof Set) return `a set of ${x.size}`;
  if (typeof x === 'object' && 'module' in x && 'name' in x)
    return `the global ${(x as AllowedGlobal).module}.${(x as AllowedGlobal).name}`;
  return Object.prototype.toString.call(x);
}

const MARK = Symbol('mark');
/** Longest int we decode from LONG4/LONG text (bytes). Larger ints have no place in a checkpoint. */
const MAX_LONG_BYTES = 1 << 16;

const OPNAMES: Record<number, string> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** Name of a pickle opcode byte, e.g. `0x71 → 'BINPUT'` (for diagnostics and tests). */
export function opcodeName(byte: number): string | undefined {
  return OPNAMES[byte];
}

function intFromLE(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return normInt(v);
}

function normInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const utf8 = new TextDecoder('utf-8');

/**
 * Runs the pickle at `bytes[offset]` up to its STOP opcode. Throws `UnsafePickleError` for refused globals and
 * opcodes, `TorchFormatError` for malformed streams (truncation, stack underflow, bad memo references).
 */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}): UnpickleResult {
  const globals = opts.globals ?? BASE_GLOBALS;
  const mode = opts.unknownGlobals ?? 'error';
  const src = opts.source ?? 'pickle';
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = opts.offset ?? 0;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();
  const allowedValues = new Set<unknown>(globals.values());
  // Objects an allow-listed global created, so BUILD can be routed back to that global.
  const creators = new WeakMap<object, AllowedGlobal>();
  let opPos = pos;
  let opName = '';

  const fail = (msg: string) => new TorchFormatError(`${src}: ${msg} (opcode ${opName} at byte ${opPos}).`);
  const need = (n: number | bigint) => {
    if (typeof n === 'bigint' ? n > BigInt(bytes.byteLength - pos) : n > bytes.byteLength - pos) {
      throw fail(`the pickle is truncated: ${n} more bytes needed, ${bytes.byteLength - pos} left`);
    }
  };
  const take = (n: number) => {
    need(n);
    const s = bytes.subarray(pos, pos + n);
    pos += n;
    return s;
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), (pos += 2), dv.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.byteLength - pos))
      throw fail(`a length of ${v} bytes exceeds the ${bytes.byteLength - pos} bytes left`);
    return Number(v);
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw fail('the pickle is truncated: missing end of line');
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) throw fail('stack underflow (malformed pickle)');
    const v = stack.pop();
    if (v === MARK) throw fail('unexpected MARK on the stack');
    return v;
  };
  const top = () => {
    if (stack.length === 0) throw fail('stack underflow (malformed pickle)');
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) throw fail('no MARK to pop to (malformed pickle)');
    stack = prev;
    return items;
  };
  const getMemo = (i: number) => {
    if (!memo.has(i)) throw fail(`memo index ${i} was never stored (malformed pickle)`);
    return memo.get(i);
  };
  const putMemo = (i: number) => {
    memo.set(i, top());
  };

  const resolveGlobal = (moduleIn: string, name: string): unknown => {
    const module = PY2_MODULES[moduleIn] ?? moduleIn;
    const key = `${module}.${name}`;
    const allowed = globals.get(key);
    if (allowed) return 'value' in allowed ? allowed.value : allowed;
    if (isDenied(module, name)) {
      throw new UnsafePickleError(
        `${src}: refusing to load the global '${key}' (opcode ${opName} at byte ${opPos}): it can run code or reach the ` +
          'system, which no checkpoint needs. Nothing was executed. This file may be malicious; do not load it with ' +
          'torch.load(weights_only=False) either.',
      );
    }
    if (mode === 'inert') return new PickledGlobal(module, name);
    throw new UnsafePickleError(
      `${src}: refusing to load the global '${key}' (opcode ${opName} at byte ${opPos}): it is not on the allow-list ` +
        `(${[...globals.keys()].join(', ')}). Nothing was executed. If this is a training checkpoint that also pickles ` +
        "helper objects (a RecorderMeter, optimizer state, numpy scalars), pass { unknownGlobals: 'inert' } to keep " +
        "them as inert records, or { key: 'state_dict' } to read only the weights.",
    );
  };

  const callGlobal = (callable: unknown, args: unknown[], how: 'REDUCE' | 'NEWOBJ', kwargs?: PyDict): unknown => {
    if (callable instanceof PickledGlobal) return new PickledObject(callable.module, callable.name, args, kwargs);
    if (allowedValues.has(callable)) {
      const a = callable as AllowedGlobal;
      const fn = how === 'NEWOBJ' ? (a.newobj ?? a.call) : a.call;
      if (!fn)
        throw new UnsafePickleError(
          `${src}: ${how} on '${a.module}.${a.name}' is not supported: it is allow-listed as a value only (byte ${opPos}). Nothing was executed.`,
        );
      if (kwargs && kwargs.size) throw fail(`keyword arguments to ${a.module}.${a.name} are not supported`);
      const out = fn.call(a, args);
      if (out !== null && typeof out === 'object') creators.set(out as object, a);
      return out;
    }
    throw new UnsafePickleError(
      `${src}: ${how} applied to ${describeValue(callable)}, which is not an allow-listed callable (byte ${opPos}). Nothing was executed.`,
    );
  };

  const setItem = (target: unknown, k: unknown, v: unknown) => {
    if (target instanceof Map) target.set(k, v);
    else if (target instanceof PickledObject) target.dictItems.set(k, v);
    else throw fail(`SETITEM on ${describeValue(target)}`);
  };
  const append = (target: unknown, items: unknown[]) => {
    if (Array.isArray(target)) for (const it of items) target.push(it);
    else if (target instanceof PickledObject) for (const it of items) target.listItems.push(it);
    else throw fail(`APPEND on ${describeValue(target)}`);
  };

  for (;;) {
    opPos = pos;
    const op = u8();
    opName = OPNAMES[op] ?? `0x${op.toString(16)}`;
    switch (op) {
      case 0x80: {
        // PROTO
        const p = u8();
        if (p > 5) throw fail(`unsupported pickle protocol ${p} (expected 0–5)`);
        break;
      }
      case 0x95: // FRAME: a length prefix; the data follows inline.
        u64();
        break;
      case 0x2e: {
        // STOP
        const value = pop();
        if (stack.length !== 0 || metastack.length !== 0)
          throw fail('STOP with items left on the stack (malformed pickle)');
        return { value, end: pos };
      }
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(top());
        break; // DUP
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x4a:
        need(4);
        stack.push(dv.getInt32(pos, true));
        pos += 4;
        break; // BININT
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x8a:
        stack.push(intFromLE(take(u8())));
        break; // LONG1
      case 0x8b: {
        // LONG4
        const n = u32();
        if (n > MAX_LONG_BYTES) throw fail(`an integer of ${n} bytes is larger than any checkpoint needs`);
        stack.push(intFromLE(take(n)));
        break;
      }
      case 0x49: {
        // INT (text); protocol 0 writes True/False as 01/00
        const s = line().trim();
        if (s === '01' || s === '00') stack.push(s === '01');
        else if (/^[+-]?\d{1,4096}$/.test(s)) stack.push(normInt(BigInt(s)));
        else throw fail(`bad INT literal '${s.slice(0, 40)}'`);
        break;
      }
      case 0x4c: {
        // LONG (text)
        const s = line().trim().replace(/L$/, '');
        if (!/^[+-]?\d{1,4096}$/.test(s)) throw fail(`bad LONG literal '${s.slice(0, 40)}'`);
        stack.push(normInt(BigInt(s)));
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const s = line().trim();
        const special: Record<string, number> = {
          inf: Infinity,
          '+inf': Infinity,
          '-inf': -Infinity,
          nan: NaN,
          '-nan': NaN,
        };
        const v =
          s.toLowerCase() in special
            ? special[s.toLowerCase()]
            : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)
              ? Number(s)
              : NaN;
        if (Number.isNaN(v) && !/^[+-]?nan$/i.test(s)) throw fail(`bad FLOAT literal '${s.slice(0, 40)}'`);
        stack.push(v);
        break;
      }
      case 0x47:
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break; // BINFLOAT (big-endian)
      case 0x58:
        stack.push(utf8.decode(take(u32())));
        break; // BINUNICODE
      case 0x8c:
        stack.push(utf8.decode(take(u8())));
        break; // SHORT_BINUNICODE
      case 0x8d:
        stack.push(utf8.decode(take(u64())));
        break; // BINUNICODE8
      case 0x56:
        stack.push(decodeRawUnicodeEscape(line()));
        break; // UNICODE (text)
      case 0x54: {
        // BINSTRING (python 2 str, signed length)
        need(4);
        const n = dv.getInt32(pos, true);
        pos += 4;
        if (n < 0) throw fail(`negative string length ${n}`);
        stack.push(new TextDecoder('latin1').decode(take(n)));
        break;
      }
      case 0x55:
        stack.push(new TextDecoder('latin1').decode(take(u8())));
        break; // SHORT_BINSTRING
      case 0x53:
        stack.push(decodePy2StringRepr(line(), fail));
        break; // STRING (text repr)
      case 0x42:
        stack.push(copyBytes(take(u32())));
        break; // BINBYTES
      case 0x43:
        stack.push(copyBytes(take(u8())));
        break; // SHORT_BINBYTES
      case 0x8e:
        stack.push(copyBytes(take(u64())));
        break; // BINBYTES8
      case 0x96:
        stack.push(copyBytes(take(u64())));
        break; // BYTEARRAY8
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x29:
        stack.push([]);
        break; // EMPTY_TUPLE
      case 0x7d:
        stack.push(new PyDict());
        break; // EMPTY_DICT
      case 0x8f:
        stack.push(new Set());
        break; // EMPTY_SET
      case 0x6c: {
        const items = popMark();
        stack.push(items);
        break;
      } // LIST
      case 0x74: {
        const items = popMark();
        stack.push(items);
        break;
      } // TUPLE
      case 0x85:
        stack.push([pop()]);
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      } // TUPLE3
      case 0x91: {
        const items = popMark();
        stack.push(new Set(items));
        break;
      } // FROZENSET
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2) throw fail('DICT with an odd number of items');
        const d = new PyDict();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x61: {
        const v = pop();
        append(top(), [v]);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        append(top(), items);
        break;
      } // APPENDS
      case 0x73: {
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      } // SETITEM
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) throw fail('SETITEMS with an odd number of items');
        const target = top();
        for (let i = 0; i < items.length; i += 2) setItem(target, items[i], items[i + 1]);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) throw fail(`ADDITEMS on ${describeValue(s)}`);
        for (const it of items) s.add(it);
        break;
      }
      case 0x71:
        putMemo(u8());
        break; // BINPUT
      case 0x72:
        putMemo(u32());
        break; // LONG_BINPUT
      case 0x94:
        putMemo(memo.size);
        break; // MEMOIZE
      case 0x70: {
        // PUT (text)
        const s = line();
        if (!/^\d{1,10}$/.test(s)) throw fail(`bad PUT index '${s.slice(0, 20)}'`);
        putMemo(Number(s));
        break;
      }
      case 0x68:
        stack.push(getMemo(u8()));
        break; // BINGET
      case 0x6a:
        stack.push(getMemo(u32()));
        break; // LONG_BINGET
      case 0x67: {
        // GET (text)
        const s = line();
        if (!/^\d{1,10}$/.test(s)) throw fail(`bad GET index '${s.slice(0, 20)}'`);
        stack.push(getMemo(Number(s)));
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail('STACK_GLOBAL expects two strings');
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callable = pop();
        if (!Array.isArray(args)) throw fail(`REDUCE expects an argument tuple, got ${describeValue(args)}`);
        stack.push(callGlobal(callable, args, 'REDUCE'));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) throw fail(`NEWOBJ expects an argument tuple, got ${describeValue(args)}`);
        stack.push(callGlobal(cls, args, 'NEWOBJ'));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args) || !(kwargs instanceof PyDict)) throw fail('NEWOBJ_EX expects (cls, tuple, dict)');
        stack.push(callGlobal(cls, args, 'NEWOBJ', kwargs));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PickledObject) {
          obj.state = state;
          break;
        }
        const creator = obj !== null && typeof obj === 'object' ? creators.get(obj as object) : undefined;
        if (creator?.build?.(obj, state)) break;
        throw new UnsafePickleError(
          `${src}: BUILD (setting the state of ${describeValue(obj)}) is not supported (byte ${opPos}); only allow-listed objects can take state. Nothing was executed.`,
        );
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad)
          throw new UnsafePickleError(`${src}: persistent id at byte ${opPos} but no persistent loader is in effect.`);
        stack.push(opts.persistentLoad(pid));
        break;
      }
      case 0x50: {
        // PERSID (text)
        const pid = line();
        if (!opts.persistentLoad)
          throw new UnsafePickleError(`${src}: persistent id at byte ${opPos} but no persistent loader is in effect.`);
        stack.push(opts.persistentLoad(pid));
        break;
      }
      case 0x69: // INST
      case 0x6f: // OBJ
        throw new UnsafePickleError(
          `${src}: opcode ${opName} at byte ${opPos} builds an arbitrary Python object (protocol-0/1 class instantiation); ` +
            'checkpoints written by torch.save never use it, so it is refused. Nothing was executed.',
        );
      case 0x82:
      case 0x83:
      case 0x84:
        throw new UnsafePickleError(
          `${src}: opcode ${opName} at byte ${opPos} uses the copyreg extension registry, which is refused. Nothing was executed.`,
        );
      case 0x97:
      case 0x98:
        throw new UnsafePickleError(
          `${src}: opcode ${opName} at byte ${opPos} needs out-of-band buffers, which checkpoints do not use.`,
        );
      default:
        throw fail(`unknown opcode byte 0x${op.toString(16).padStart(2, '0')}; the data is not a pickle or is corrupt`);
    }
  }
}

function decodeRawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a: string | undefined, b: string | undefined) =>
    String.fromCodePoint(parseInt((a ?? b) as string, 16)),
  );
}

function decodePy2StringRepr(s: string, fail: (m: string) => Error): string {
  const t = s.trim();
  const q = t[0];
  if ((q !== "'" && q !== '"') || t[t.length - 1] !== q || t.length < 2)
    throw fail(`bad STRING literal ${t.slice(0, 40)}`);
  const body = t.slice(1, -1);
  const esc: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
  return body.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) =>
    e[0] === 'x' && e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : (esc[e] ?? `\\${e}`),
  );
}

/** A real copy, also for Node Buffers (whose `slice` is a view). */
function copyBytes(x: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(x);
}
