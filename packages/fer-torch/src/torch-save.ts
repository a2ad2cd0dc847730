import { StateDictError } from './errors';
import { PyDict } from './pickle';
import { assertRawTensor, numel, type DType, type RawTensor } from './tensor';
import { writeTorchZip, type ZipWriteEntry } from './zip';

/**
 * Writing state dicts that PyTorch loads with `torch.load(path, weights_only=True)`, laid out exactly as PyTorch
 * 1.13's `torch.save` lays them out (the version that wrote the reference checkpoints): a stored zip with
 * `<archive>/data.pkl` (pickle protocol 2), `<archive>/data/<key>` per storage in sorted key order, and
 * `<archive>/version` = `3\n`, every entry 64-byte aligned.
 */

/** `_metadata` of a `state_dict()`: module path → `{ version: n }` (BatchNorm 2, most others 1). */
export type ModuleMetadata = ReadonlyMap<string, ReadonlyMap<string, unknown> | Readonly<Record<string, unknown>>>;

export interface TorchSaveOptions {
  /**
   * Folder name inside the zip. torch uses the file name minus its last extension (`Net-Branch_1.pt` →
   * `Net-Branch_1`); `writeTorchStateDict` does the same, `serializeTorchStateDict` defaults to `'archive'`.
   */
  archiveName?: string;
  /** Attached as the OrderedDict's `_metadata` attribute, as `module.state_dict()` does. */
  metadata?: ModuleMetadata;
  /** Wrap the state dict as `{ [wrapKey]: stateDict }` (e.g. `'state_dict'`, as training checkpoints do). */
  wrapKey?: string;
}

const STORAGE_CLASS: Readonly<Record<DType, string>> = {
  float32: 'FloatStorage',
  float64: 'DoubleStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  int16: 'ShortStorage',
  int8: 'CharStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};

/** Strings CPython would pickle as one shared object (interned literals, 1-char strings) get one memo entry. */
const SHARED_STRINGS = new Set(['storage', 'cpu', 'version', '_metadata', '']);

/** A protocol-2 pickler that reproduces CPython's opcode choices and memoisation for the objects we write. */
class Pickler {
  private chunks: number[] = [];
  private memoCount = 0;
  private readonly memo = new Map<unknown, number>();
  private readonly enc = new TextEncoder();

  bytes(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
  private op(...b: number[]): void {
    for (const x of b) this.chunks.push(x);
  }
  private u32(n: number): void {
    this.op(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  private raw(b: Uint8Array): void {
    for (const x of b) this.chunks.push(x);
  }
  proto(): void {
    this.op(0x80, 2);
  }
  stop(): void {
    this.op(0x2e);
  }
  mark(): void {
    this.op(0x28);
  }
  /** Memoises the object just written (BINPUT / LONG_BINPUT), keyed by `key` when it can be reused. */
  put(key?: unknown): void {
    const i = this.memoCount++;
    if (key !== undefined) this.memo.set(key, i);
    if (i < 256) this.op(0x71, i);
    else {
      this.op(0x72);
      this.u32(i);
    }
  }
  /** Writes BINGET for a memoised key; returns false when the key is not memoised. */
  get(key: unknown): boolean {
    const i = this.memo.get(key);
    if (i === undefined) return false;
    if (i < 256) this.op(0x68, i);
    else {
      this.op(0x6a);
      this.u32(i);
    }
    return true;
  }
  global(module: string, name: string): void {
    const key = `global:${module}.${name}`;
    if (this.get(key)) return;
    this.op(0x63);
    this.raw(this.enc.encode(`${module}\n${name}\n`));
    this.put(key);
  }
  /** BINUNICODE; `identity` marks strings that are one Python object wherever they recur (BINGET on reuse). */
  str(s: string, identity?: string): void {
    const key = SHARED_STRINGS.has(s) || s.length === 1 ? `str:${s}` : identity;
    if (key !== undefined && this.get(key)) return;
    const b = this.enc.encode(s);
    this.op(0x58);
    this.u32(b.length);
    this.raw(b);
    this.put(key);
  }
  int(n: number): void {
    if (!Number.isSafeInteger(n)) throw new StateDictError(`cannot pickle ${n} as an int.`);
    if (n >= 0 && n < 256) this.op(0x4b, n);
    else if (n >= 0 && n < 65536) this.op(0x4d, n & 0xff, n >> 8);
    else if (n >= -(2 ** 31) && n < 2 ** 31) {
      this.op(0x4a);
      this.u32(n >>> 0);
    } else {
      // LONG1: little-endian two's complement, minimal length.
      let v = BigInt(n);
      const out: number[] = [];
      for (;;) {
        out.push(Number(v & 0xffn));
        v >>= 8n;
        if ((v === 0n && !(out[out.length - 1] & 0x80)) || (v === -1n && out[out.length - 1] & 0x80)) break;
      }
      this.op(0x8a, out.length, ...out);
    }
  }
  float(x: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, false);
    this.op(0x47);
    this.raw(b);
  }
  bool(b: boolean): void {
    this.op(b ? 0x88 : 0x89);
  }
  none(): void {
    this.op(0x4e);
  }
  /** A tuple of ints (sizes, strides), as CPython's save_tuple writes it. */
  intTuple(xs: readonly number[]): void {
    if (xs.length === 0) {
      this.op(0x29);
      return;
    }
    if (xs.length <= 3) {
      for (const x of xs) this.int(x);
      this.op(0x84 + xs.length);
    } else {
      this.mark();
      for (const x of xs) this.int(x);
      this.op(0x74);
    }
    this.put();
  }
  emptyTupleReduce(): void {
    this.op(0x29, 0x52);
  }
  tupleEnd(): void {
    this.op(0x74);
  }
  reduce(): void {
    this.op(0x52);
  }
  emptyDict(): void {
    this.op(0x7d);
  }
  setitem(): void {
    this.op(0x73);
  }
  setitems(): void {
    this.op(0x75);
  }
  build(): void {
    this.op(0x62);
  }
  binpersid(): void {
    this.op(0x51);
  }
}

/** dict items in batches of 1000 (MARK … SETITEMS), a lone item as SETITEM: CPython's batch_dict. */
function batchItems<T>(p: Pickler, items: readonly T[], save: (item: T) => void): void {
  for (let i = 0; i < items.length; i += 1000) {
    const batch = items.slice(i, i + 1000);
    if (batch.length === 1) {
      save(batch[0]);
      p.setitem();
    } else {
      p.mark();
      batch.forEach(save);
      p.setitems();
    }
  }
}

function saveSimple(p: Pickler, v: unknown, where: string): void {
  if (typeof v === 'number') {
    if (Number.isInteger(v)) p.int(v);
    else p.float(v);
  } else if (typeof v === 'string') p.str(v);
  else if (typeof v === 'boolean') p.bool(v);
  else if (v === null || v === undefined) p.none();
  else
    throw new StateDictError(
      `${where}: only ints, floats, strings, booleans and None can be written, got ${typeof v}.`,
    );
}

function saveMetadata(p: Pickler, md: ModuleMetadata): void {
  p.global('collections', 'OrderedDict');
  p.emptyTupleReduce();
  p.put();
  batchItems(p, [...md.entries()], ([modulePath, info]) => {
    p.str(modulePath);
    p.emptyDict();
    p.put();
    const entries = info instanceof Map ? [...info.entries()] : Object.entries(info);
    batchItems(p, entries, ([k, v]) => {
      p.str(String(k));
      saveSimple(p, v, `_metadata['${modulePath}']`);
    });
  });
}

/**
 * Serialises a state dict as PyTorch 1.13's `torch.save(state_dict)` would: same entry names and order, same
 * pickle opcodes, globals and memo layout, 64-byte aligned storages. Tensors sharing one `data` buffer share a
 * storage, as tied weights do in PyTorch.
 */
export function serializeTorchStateDict(sd: ReadonlyMap<string, RawTensor>, opts: TorchSaveOptions = {}): Uint8Array {
  const archive = opts.archiveName ?? 'archive';
  if (!archive || archive.includes('/') || archive === '..' || archive === '.') {
    throw new StateDictError(`archiveName must be a single folder name, got '${archive}'.`);
  }
  const p = new Pickler();
  const storages = new Map<Uint8Array, { key: string; dtype: DType; numel: number; data: Uint8Array }>();
  p.proto();
  if (opts.wrapKey !== undefined) {
    p.emptyDict();
    p.put();
    p.str(opts.wrapKey);
  }
  p.global('collections', 'OrderedDict');
  p.emptyTupleReduce();
  p.put();
  batchItems(p, [...sd.entries()], ([name, t]) => {
    if (typeof name !== 'string') throw new StateDictError(`state dict keys must be strings, got ${typeof name}.`);
    assertRawTensor(t, `state dict entry '${name}'`);
    p.str(name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.mark();
    // persistent id ('storage', torch.<X>Storage, key, 'cpu', numel), then BINPERSID
    let st = storages.get(t.data);
    if (st && st.dtype !== t.dtype) st = undefined;
    if (!st) {
      st = { key: String(storages.size), dtype: t.dtype, numel: numel(t.shape), data: t.data };
      storages.set(t.data, st);
    }
    p.mark();
    p.str('storage');
    p.global('torch', STORAGE_CLASS[t.dtype]);
    p.str(st.key, `storagekey:${st.key}`);
    p.str('cpu');
    p.int(st.numel);
    p.tupleEnd();
    p.put();
    p.binpersid();
    p.int(0); // storage_offset
    p.intTuple(t.shape);
    const stride: number[] = [];
    for (let i = t.shape.length - 1, acc = 1; i >= 0; i--) {
      stride.unshift(acc);
      acc *= t.shape[i];
    }
    p.intTuple(stride);
    p.bool(false); // requires_grad
    p.global('collections', 'OrderedDict'); // backward_hooks
    p.emptyTupleReduce();
    p.put();
    p.tupleEnd();
    p.put();
    p.reduce();
    p.put();
  });
  if (opts.metadata) {
    p.emptyDict();
    p.put();
    p.str('_metadata');
    saveMetadata(p, opts.metadata);
    p.setitem();
    p.build();
  }
  if (opts.wrapKey !== undefined) p.setitem();
  p.stop();
  const entries: ZipWriteEntry[] = [{ name: `${archive}/data.pkl`, data: p.bytes() }];
  const sorted = [...storages.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const s of sorted) entries.push({ name: `${archive}/data/${s.key}`, data: s.data });
  entries.push({ name: `${archive}/version`, data: new TextEncoder().encode('3\n') });
  return writeTorchZip(entries);
}

/** torch's archive folder name for a path: the base name minus its last extension. */
export function torchArchiveName(file: string): string {
  const base = file.slice(Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\')) + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

/** Converts a `PyDict` metadata tree as read by `stateDictMetadata` into the writer's shape (identity helper). */
export function toModuleMetadata(md: ReadonlyMap<string, unknown>): ModuleMetadata {
  const out = new Map<string, ReadonlyMap<string, unknown>>();
  for (const [k, v] of md) {
    if (!(v instanceof Map)) throw new StateDictError(`_metadata['${k}'] must be a dict, got ${typeof v}.`);
    out.set(k, v instanceof PyDict ? new Map(v) : v);
  }
  return out;
}
