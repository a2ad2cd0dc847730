import { bytesSource, type ByteSource } from './bytes';
import { TorchFormatError, UnsafePickleError } from './errors';
import { BASE_GLOBALS, describeValue, unpickle, type AllowedGlobal, type UnknownGlobals } from './pickle';
import { parseSafetensors } from './safetensors';
import { DTYPE_SIZE, gatherStrided, numel, swapBytesInPlace, type DType, type RawTensor } from './tensor';
import { ZipReader, type ZipReadOptions } from './zip';

/**
 * Reading `torch.save` files without Python: the zip format (PyTorch ≥ 1.6), the legacy stream format (< 1.6)
 * and, for convenience, safetensors. Tensors come back as contiguous `RawTensor`s that own their bytes.
 */

export type TorchFileFormat = 'zip' | 'legacy' | 'safetensors' | 'torchscript' | 'legacy-tar' | 'unknown';

export interface ReadTorchOptions extends ZipReadOptions {
  /**
   * Globals outside the allow-list: `'error'` (default) refuses the file; `'inert'` keeps them as `PickledGlobal` /
   * `PickledObject` records (never executed), for training checkpoints that pickle a RecorderMeter or optimizer.
   */
  unknownGlobals?: UnknownGlobals;
  /**
   * Extra bytes that views may cost beyond the file's own size (default 256 MiB). Views are materialised as
   * copies, so a tensor expanded by zero strides, or one storage viewed by many tensors, could otherwise turn a
   * small file into a huge allocation. Copies are counted against `file size + maxExpandedBytes`.
   */
  maxExpandedBytes?: number;
  /** What error messages call the bytes, e.g. their file path (default `'buffer'`). */
  source?: string;
}

/** The magic number that opens a legacy (pre-1.6) torch.save stream. */
export const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8',
};

const TORCH_DTYPES: Readonly<Record<string, DType>> = {
  float32: 'float32',
  float: 'float32',
  float64: 'float64',
  double: 'float64',
  float16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  int: 'int32',
  int16: 'int16',
  short: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

/** An allow-listed `torch.<X>Storage` class; only meaningful inside persistent ids. */
export interface StorageTypeGlobal extends AllowedGlobal {
  readonly storageDtype: DType;
}

function isStorageType(x: unknown): x is StorageTypeGlobal {
  return typeof x === 'object' && x !== null && 'storageDtype' in x;
}

/** A storage a persistent id refers to. `bytes` is null in the dry pass over legacy files. */
class StorageRef {
  claimed = false;
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
    readonly bytes: Uint8Array | null,
    readonly claimable: boolean,
  ) {}
}

/** Returned by tensor rebuilds in the dry pass; never escapes. */
const PENDING = Object.freeze({ pending: true });

export function isRawTensor(x: unknown): x is RawTensor {
  return (
    typeof x === 'object' &&
    x !== null &&
    (x as RawTensor).data instanceof Uint8Array &&
    Array.isArray((x as RawTensor).shape) &&
    typeof (x as RawTensor).dtype === 'string' &&
    (x as RawTensor).dtype in DTYPE_SIZE
  );
}

function asIndex(x: unknown, what: string, source: string): number {
  if (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0) return x;
  throw new TorchFormatError(`${source}: ${what} must be a non-negative integer, got ${describeValue(x)}.`);
}

function asIndexTuple(x: unknown, what: string, source: string): number[] {
  if (!Array.isArray(x))
    throw new TorchFormatError(`${source}: ${what} must be a tuple of integers, got ${describeValue(x)}.`);
  return x.map((v, i) => asIndex(v, `${what}[${i}]`, source));
}

/** Bytes that view copies may still allocate during one read. */
interface CopyBudget {
  left: number;
  readonly limit: number;
  readonly maxExpandedBytes: number;
}

function rebuildTensor(args: unknown[], source: string, budget: CopyBudget): RawTensor | typeof PENDING {
  const maxExpandedBytes = budget.maxExpandedBytes;
  if (args.length < 4)
    throw new TorchFormatError(`${source}: _rebuild_tensor_v2 expects at least 4 arguments, got ${args.length}.`);
  const [storage, offsetIn, sizeIn, strideIn] = args;
  if (!(storage instanceof StorageRef)) {
    throw new TorchFormatError(
      `${source}: a tensor's storage must come from a persistent id, got ${describeValue(storage)}.`,
    );
  }
  const offset = asIndex(offsetIn, 'storage_offset', source);
  const shape = asIndexTuple(sizeIn, 'size', source);
  const stride = asIndexTuple(strideIn, 'stride', source);
  if (stride.length !== shape.length) {
    throw new TorchFormatError(
      `${source}: tensor size [${shape.join(', ')}] and stride [${stride.join(', ')}] have different ranks.`,
    );
  }
  const n = numel(shape);
  if (!Number.isSafeInteger(n))
    throw new TorchFormatError(`${source}: tensor size [${shape.join(', ')}] is too large.`);
  const item = DTYPE_SIZE[storage.dtype];
  if (n > 0) {
    let last = offset;
    for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * stride[i];
    if (last >= storage.numel) {
      throw new TorchFormatError(
        `${source}: storage '${storage.key}' holds ${storage.numel} ${storage.dtype} elements, but a tensor of size ` +
          `[${shape.join(', ')}], stride [${stride.join(', ')}], offset ${offset} reaches element ${last}: the storage is ` +
          'shorter than the tensor it backs (corrupt or crafted file).',
      );
    }
  }
  const outBytes = n * item;
  if (outBytes > storage.numel * item && outBytes > maxExpandedBytes) {
    throw new TorchFormatError(
      `${source}: a tensor of size [${shape.join(', ')}] would expand storage '${storage.key}' (${storage.numel * item} bytes) ` +
        `to ${outBytes} bytes, over maxExpandedBytes (${maxExpandedBytes}). Raise the limit if the file is genuine.`,
    );
  }
  if (!storage.bytes) return PENDING;
  let contiguous = true;
  for (let i = shape.length - 1, acc = 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== acc) contiguous = false;
    acc *= shape[i];
  }
  if (contiguous && offset === 0 && n === storage.numel && storage.claimable && !storage.claimed) {
    storage.claimed = true; // the first full, contiguous view takes the storage buffer itself
    return { dtype: storage.dtype, shape, data: storage.bytes };
  }
  if (outBytes > budget.left) {
    throw new TorchFormatError(
      `${source}: materialising views of storage '${storage.key}' would copy more than ${budget.limit} bytes in total ` +
        '(the file size plus maxExpandedBytes): many tensors view the same storage, which a small crafted file can use ' +
        'to exhaust memory. Raise maxExpandedBytes if the file is genuine.',
    );
  }
  budget.left -= outBytes;
  return { dtype: storage.dtype, shape, data: gatherStrided(storage.bytes, item, offset, shape, stride) };
}

function torchGlobals(source: string, budget: CopyBudget): Map<string, AllowedGlobal> {
  const m = new Map<string, AllowedGlobal>(BASE_GLOBALS);
  const add = (module: string, name: string, impl: Omit<AllowedGlobal, 'module' | 'name'> & Record<string, unknown>) =>
    m.set(`${module}.${name}`, { module, name, ...impl });
  const rebuild = (a: unknown[]) => rebuildTensor(a, source, budget);
  add('torch._utils', '_rebuild_tensor_v2', { call: rebuild });
  add('torch._utils', '_rebuild_tensor', { call: rebuild });
  add('torch._utils', '_rebuild_parameter', { call: (a) => a[0] });
  add('torch._utils', '_rebuild_parameter_with_state', { call: (a) => a[0] });
  add('torch', 'Tensor', {});
  add('torch.nn.parameter', 'Parameter', {});
  add('torch._tensor', '_rebuild_from_type_v2', {
    call: (a) => {
      const [fn, type, fargs] = a as [AllowedGlobal | undefined, AllowedGlobal | undefined, unknown];
      const okType =
        type &&
        (`${type.module}.${type.name}` === 'torch.Tensor' ||
          `${type.module}.${type.name}` === 'torch.nn.parameter.Parameter');
      if (!fn?.call || !okType || !Array.isArray(fargs)) {
        throw new UnsafePickleError(
          `${source}: _rebuild_from_type_v2 with ${describeValue(fn)} / ${describeValue(type)} is not supported (tensor subclasses are refused).`,
        );
      }
      return fn.call(fargs);
    },
  });
  add('torch', 'Size', { call: (a) => asIndexTuple(a[0] ?? [], 'torch.Size', source) });
  add('torch', 'device', { call: (a) => a.map(String).join(':') });
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
    for (const module of ['torch', 'torch.cuda', 'torch.storage']) add(module, name, { storageDtype: dtype });
  }
  for (const [name, dtype] of Object.entries(TORCH_DTYPES)) add('torch', name, { value: dtype });
  return m;
}

function copyBudget(fileSize: number, maxExpandedBytes: number): CopyBudget {
  return { left: fileSize + maxExpandedBytes, limit: fileSize + maxExpandedBytes, maxExpandedBytes };
}

export function sniffFormat(head: Uint8Array, size: number): TorchFileFormat {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 0x03 || head[2] === 0x05)) return 'zip';
  if (head.length >= 262 && new TextDecoder('latin1').decode(head.subarray(257, 262)) === 'ustar') return 'legacy-tar';
  if (head.length >= 2 && head[0] === 0x80 && head[1] <= 5) return 'legacy';
  if (head.length >= 9 && head[8] === 0x7b) {
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (n + 8n <= BigInt(size)) return 'safetensors';
  }
  return 'unknown';
}

/**
 * Reads a `torch.save` file (zip or legacy) and returns its unpickled object tree: Python dicts are `PyDict`s
 * (Maps; an OrderedDict's `_metadata` is in `.attributes`), lists and tuples are arrays, tensors and parameters are
 * `RawTensor`s that own their bytes, `bytes` are Uint8Arrays. A safetensors file returns `Map<string, RawTensor>`.
 *
 * Throws `UnsafePickleError` for anything outside the allow-list (unless `unknownGlobals: 'inert'`) and
 * `TorchFormatError` for truncated, inconsistent or unsupported files. Nothing from the file is ever executed.
 */
export async function parseTorchFile(bytes: Uint8Array, opts: ReadTorchOptions = {}): Promise<unknown> {
  return readTorchSource(bytesSource(bytes, opts.source ?? 'buffer'), opts);
}

/** `parseTorchFile` over any byte source (fer-torch/node reads files through it). Closes the source. */
export function readTorchSource(src: ByteSource, opts: ReadTorchOptions = {}): unknown {
  try {
    return readFromSource(src, opts);
  } finally {
    src.close();
  }
}

function readFromSource(src: ByteSource, opts: ReadTorchOptions): unknown {
  const head = src.read(0, Math.min(src.size, 512));
  const format = sniffFormat(head, src.size);
  switch (format) {
    case 'zip':
      return readZipCheckpoint(src, opts);
    case 'legacy':
      return readLegacyCheckpoint(src.read(0, src.size), src.name, opts);
    case 'safetensors':
      return parseSafetensors(src.read(0, src.size), src.name).tensors;
    case 'legacy-tar':
      throw new TorchFormatError(
        `${src.name}: this is the tar-based format of PyTorch < 0.4, which is not supported. Re-save it with a ` +
          'current PyTorch: torch.save(torch.load(path), new_path).',
      );
    default:
      throw new TorchFormatError(
        `${src.name}: not a PyTorch checkpoint: expected a zip archive (PK\\x03\\x04), a legacy pickle stream ` +
          `(\\x80\\x02) or a safetensors header, but the file starts with ${hexHead(head)}.`,
      );
  }
}

function hexHead(b: Uint8Array): string {
  return [...b.subarray(0, 8)].map((x) => x.toString(16).padStart(2, '0')).join(' ') || '(empty file)';
}

function readZipCheckpoint(src: ByteSource, opts: ReadTorchOptions): unknown {
  const zip = ZipReader.open(src, opts);
  const pkls = zip.entries.filter((e) => e.name === 'data.pkl' || e.name.endsWith('/data.pkl'));
  if (pkls.length === 0) {
    const script = zip.entries.some((e) => e.name.endsWith('constants.pkl') || e.name.includes('/code/'));
    throw new TorchFormatError(
      script
        ? `${src.name}: this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint. In Python, run ` +
          "torch.save(torch.jit.load(path).state_dict(), 'weights.pt') and read that."
        : `${src.name}: zip archive without a data.pkl entry; it is not a torch.save checkpoint.`,
    );
  }
  if (pkls.length > 1) {
    throw new TorchFormatError(
      `${src.name}: ${pkls.length} data.pkl entries (${pkls.map((e) => e.name).join(', ')}); expected one.`,
    );
  }
  const prefix = pkls[0].name.slice(0, -'data.pkl'.length);
  const order = zip.get(`${prefix}byteorder`);
  let bigEndian = false;
  if (order) {
    const s = new TextDecoder().decode(zip.read(order)).trim();
    if (s !== 'little' && s !== 'big')
      throw new TorchFormatError(`${src.name}: byteorder record is '${s}', expected 'little' or 'big'.`);
    bigEndian = s === 'big';
  }
  const source = `${src.name}:${pkls[0].name}`;
  const maxExpanded = opts.maxExpandedBytes ?? 256 * 1024 ** 2;
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown): unknown => {
    if (!Array.isArray(pid) || pid[0] !== 'storage') {
      throw new TorchFormatError(
        `${source}: unsupported persistent id ${describeValue(pid)}; expected ('storage', type, key, location, numel).`,
      );
    }
    if (pid.length !== 5)
      throw new TorchFormatError(`${source}: a storage persistent id has 5 fields, got ${pid.length}.`);
    const [, type, key, , numelIn] = pid;
    if (!isStorageType(type))
      throw new TorchFormatError(`${source}: storage type ${describeValue(type)} is not a torch storage class.`);
    if (typeof key !== 'string' || !/^[\w.-]{1,64}$/.test(key))
      throw new TorchFormatError(`${source}: bad storage key ${describeValue(key)}.`);
    const n = asIndex(numelIn, `numel of storage '${key}'`, source);
    const cached = storages.get(key);
    if (cached) {
      if (cached.dtype !== type.storageDtype) {
        throw new TorchFormatError(
          `${source}: storage '${key}' is used as both ${cached.dtype} and ${type.storageDtype}; reinterpreting storages is not supported.`,
        );
      }
      return cached;
    }
    const entry = zip.get(`${prefix}data/${key}`);
    if (!entry)
      throw new TorchFormatError(
        `${source}: storage '${key}' has no '${prefix}data/${key}' entry; the archive is incomplete.`,
      );
    const item = DTYPE_SIZE[type.storageDtype];
    if (entry.size !== n * item) {
      throw new TorchFormatError(
        `${source}: storage '${key}' should hold ${n} ${type.storageDtype} elements (${n * item} bytes) but its entry has ` +
          `${entry.size} bytes${entry.size < n * item ? ': the storage is shorter than declared' : ''}.`,
      );
    }
    const bytes = zip.read(entry);
    if (bigEndian) swapBytesInPlace(bytes, item);
    const ref = new StorageRef(key, type.storageDtype, n, bytes, true);
    storages.set(key, ref);
    return ref;
  };
  const { value } = unpickle(zip.read(pkls[0]), {
    globals: torchGlobals(source, copyBudget(src.size, maxExpanded)),
    unknownGlobals: opts.unknownGlobals,
    persistentLoad,
    source,
  });
  return value;
}

interface LegacyStorageInfo {
  dtype: DType;
  numel: number;
  views: Array<{ key: string; offset: number; numel: number }>;
}

function readLegacyCheckpoint(bytes: Uint8Array, name: string, opts: ReadTorchOptions): unknown {
  const maxExpanded = opts.maxExpandedBytes ?? 256 * 1024 ** 2;
  const base = { source: name };
  const magic = unpickle(bytes, base);
  if (magic.value !== LEGACY_MAGIC) {
    throw new TorchFormatError(
      `${name}: a pickle, but not a torch.save file: the first value is ${describeValue(magic.value)}, not the legacy magic number.`,
    );
  }
  const proto = unpickle(bytes, { ...base, offset: magic.end });
  if (proto.value !== LEGACY_PROTOCOL)
    throw new TorchFormatError(
      `${name}: legacy protocol version ${describeValue(proto.value)} is not supported (expected 1001).`,
    );
  const sys = unpickle(bytes, { ...base, offset: proto.end });
  if (!(sys.value instanceof Map))
    throw new TorchFormatError(`${name}: the legacy sys_info record is ${describeValue(sys.value)}, expected a dict.`);
  const bigEndian = sys.value.get('little_endian') === false;
  const mainStart = sys.end;
  const source = `${name} (legacy format)`;
  const globals = torchGlobals(source, copyBudget(bytes.byteLength, maxExpanded));

  // Pass 1: learn every storage's dtype and size (the data follows the pickle).
  const infos = new Map<string, LegacyStorageInfo>();
  const parsePid = (pid: unknown) => {
    if (!Array.isArray(pid)) throw new TorchFormatError(`${source}: unsupported persistent id ${describeValue(pid)}.`);
    if (pid[0] === 'module') {
      // ('module', class, source file, source code): the class is already an inert record (or was refused).
      if (opts.unknownGlobals === 'inert') return { moduleClass: pid[1] as unknown };
      throw new UnsafePickleError(
        `${source}: the file pickles a whole nn.Module with its source code, not a state dict. In Python, save model.state_dict() instead, or read it with { unknownGlobals: 'inert' }.`,
      );
    }
    if (pid[0] !== 'storage' || pid.length !== 6) {
      throw new TorchFormatError(
        `${source}: unsupported persistent id ${describeValue(pid)}; expected ('storage', type, key, location, numel, view).`,
      );
    }
    const [, type, key, , numelIn, view] = pid;
    if (!isStorageType(type))
      throw new TorchFormatError(`${source}: storage type ${describeValue(type)} is not a torch storage class.`);
    if (typeof key !== 'string' || key.length > 64)
      throw new TorchFormatError(`${source}: bad storage key ${describeValue(key)}.`);
    const n = asIndex(numelIn, `numel of storage '${key}'`, source);
    let v: { key: string; offset: number; numel: number } | null = null;
    if (view !== null) {
      if (!Array.isArray(view) || view.length !== 3 || typeof view[0] !== 'string')
        throw new TorchFormatError(`${source}: bad storage view ${describeValue(view)}.`);
      v = {
        key: view[0],
        offset: asIndex(view[1], 'view offset', source),
        numel: asIndex(view[2], 'view size', source),
      };
      if (v.offset + v.numel > n)
        throw new TorchFormatError(
          `${source}: storage view '${v.key}' (${v.offset}+${v.numel}) exceeds its root '${key}' of ${n} elements.`,
        );
    }
    return { key, dtype: type.storageDtype, numel: n, view: v };
  };
  const dry = unpickle(bytes, {
    globals,
    unknownGlobals: opts.unknownGlobals,
    source,
    offset: mainStart,
    persistentLoad: (pid) => {
      const p = parsePid(pid);
      if ('moduleClass' in p) return p.moduleClass;
      const info = infos.get(p.key);
      if (info && (info.dtype !== p.dtype || info.numel !== p.numel))
        throw new TorchFormatError(`${source}: storage '${p.key}' is declared twice with different types or sizes.`);
      const i = info ?? { dtype: p.dtype, numel: p.numel, views: [] };
      infos.set(p.key, i);
      if (p.view) i.views.push(p.view);
      return new StorageRef(p.view?.key ?? p.key, p.dtype, p.view?.numel ?? p.numel, null, false);
    },
  });
  const keysPickle = unpickle(bytes, { ...base, offset: dry.end });
  if (!Array.isArray(keysPickle.value) || !keysPickle.value.every((k) => typeof k === 'string')) {
    throw new TorchFormatError(
      `${source}: the storage key list is ${describeValue(keysPickle.value)}, expected a list of strings.`,
    );
  }
  // Raw storages: an int64 element count, then the elements.
  const roots = new Map<string, Uint8Array>();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keysPickle.end;
  for (const key of keysPickle.value as string[]) {
    const info = infos.get(key);
    if (!info)
      throw new TorchFormatError(
        `${source}: storage '${key}' is listed but no tensor refers to it, so its element type is unknown.`,
      );
    if (pos + 8 > bytes.byteLength)
      throw new TorchFormatError(`${source}: the file is truncated before storage '${key}'.`);
    const count = dv.getBigInt64(pos, !bigEndian);
    pos += 8;
    if (count !== BigInt(info.numel)) {
      throw new TorchFormatError(
        `${source}: storage '${key}' is declared with ${info.numel} elements but its data record says ${count}.`,
      );
    }
    const len = info.numel * DTYPE_SIZE[info.dtype];
    if (pos + len > bytes.byteLength) {
      throw new TorchFormatError(
        `${source}: storage '${key}' needs ${len} bytes at ${pos} but the file ends at ${bytes.byteLength}: the file is truncated.`,
      );
    }
    const data = Uint8Array.prototype.slice.call(bytes, pos, pos + len);
    if (bigEndian) swapBytesInPlace(data, DTYPE_SIZE[info.dtype]);
    roots.set(key, data);
    pos += len;
  }
  for (const key of infos.keys()) {
    if (!roots.has(key))
      throw new TorchFormatError(`${source}: storage '${key}' is used by a tensor but missing from the data section.`);
  }
  // Pass 2: the same pickle, now with real storages.
  const refs = new Map<string, StorageRef>();
  const { value } = unpickle(bytes, {
    globals,
    unknownGlobals: opts.unknownGlobals,
    source,
    offset: mainStart,
    persistentLoad: (pid) => {
      const p = parsePid(pid);
      if ('moduleClass' in p) return p.moduleClass;
      const refKey = p.view ? `${p.key}/${p.view.key}` : p.key;
      let ref = refs.get(refKey);
      if (!ref) {
        const root = roots.get(p.key) as Uint8Array;
        const item = DTYPE_SIZE[p.dtype];
        ref = p.view
          ? new StorageRef(
              p.view.key,
              p.dtype,
              p.view.numel,
              root.subarray(p.view.offset * item, (p.view.offset + p.view.numel) * item),
              false,
            )
          : new StorageRef(p.key, p.dtype, p.numel, root, infos.get(p.key)?.views.length === 0);
        refs.set(refKey, ref);
      }
      return ref;
    },
  });
  return value;
}
