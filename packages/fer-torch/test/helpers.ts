/**
 * Hand assembly of pickles and torch.save-style zips for tests, written opcode by opcode (independent of the
 * package's own pickler).
 */
import { writeTorchZip } from '../src/zip';

export type Part = number | readonly number[] | Uint8Array | string;

/** Concatenates opcode bytes, byte arrays and raw latin-1 strings. */
export function pk(...parts: Part[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') for (let i = 0; i < p.length; i++) out.push(p.charCodeAt(i) & 0xff);
    else out.push(...p);
  }
  return Uint8Array.from(out);
}

const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];

export const PROTO2 = [0x80, 2];
export const STOP = 0x2e;
export const MARK = 0x28;
export const TUPLE = 0x74;
export const REDUCE = 0x52;
export const BUILD = 0x62;
export const EMPTY_TUPLE = 0x29;
export const EMPTY_DICT = 0x7d;
export const EMPTY_LIST = 0x5d;
export const SETITEM = 0x73;
export const SETITEMS = 0x75;
export const APPENDS = 0x65;
export const NEWOBJ = 0x81;
export const BINPERSID = 0x51;
export const NEWFALSE = 0x89;
export const NEWTRUE = 0x88;
export const NONE = 0x4e;
export const TUPLE1 = 0x85;
export const TUPLE2 = 0x86;
export const TUPLE3 = 0x87;

export const global = (module: string, name: string): Part[] => [0x63, `${module}\n${name}\n`];
export const str = (s: string): Part[] => {
  const b = new TextEncoder().encode(s);
  return [0x58, le32(b.length), b];
};
export const int = (n: number): Part[] => {
  if (n >= 0 && n < 256) return [0x4b, n];
  if (n >= 0 && n < 65536) return [0x4d, n & 0xff, n >> 8];
  return [0x4a, le32(n >>> 0)];
};
export const float = (x: number): Part[] => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, x, false);
  return [0x47, b];
};
export const tuple = (...items: Part[][]): Part[] => [MARK, ...items.flat(), TUPLE];

/** `_rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())`. */
export function tensorOps(
  storageClass: string,
  key: string,
  storageNumel: number,
  offset: number,
  size: number[],
  stride: number[],
): Part[] {
  return [
    ...global('torch._utils', '_rebuild_tensor_v2'),
    MARK,
    ...tuple(str('storage'), global('torch', storageClass), str(key), str('cpu'), int(storageNumel)),
    BINPERSID,
    ...int(offset),
    ...tuple(...size.map(int)),
    ...tuple(...stride.map(int)),
    NEWFALSE,
    ...global('collections', 'OrderedDict'),
    EMPTY_TUPLE,
    REDUCE,
    TUPLE,
    REDUCE,
  ];
}

/** `{name: tensor, ...}` as a plain dict pickle; `entries` are [name, tensorOps] pairs. */
export function dictPickle(entries: Array<[string, Part[]]>): Uint8Array {
  return pk(...PROTO2, EMPTY_DICT, MARK, ...entries.flatMap(([k, v]) => [...str(k), ...v]), SETITEMS, STOP);
}

/** A torch.save-layout zip around a hand-made data.pkl and storages. */
export function torchZip(dataPkl: Uint8Array, storages: Record<string, Uint8Array>, archive = 'archive'): Uint8Array {
  return writeTorchZip([
    { name: `${archive}/data.pkl`, data: dataPkl },
    ...Object.entries(storages).map(([k, data]) => ({ name: `${archive}/data/${k}`, data })),
    { name: `${archive}/version`, data: new TextEncoder().encode('3\n') },
  ]);
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

export function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}
