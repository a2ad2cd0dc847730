import { TorchFormatError } from './errors';

/**
 * Random access to a file or an in-memory buffer. Readers pull only the ranges they validated, so a hostile file
 * cannot make us allocate more than it really holds.
 */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  /** A fresh copy of `length` bytes at `offset`; throws when the range is past the end. */
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

export function checkRange(src: { name: string; size: number }, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > src.size
  ) {
    throw new TorchFormatError(
      `${src.name}: the file is truncated or corrupt: needed bytes ${offset}..${offset + length} but it has ${src.size}.`,
    );
  }
}

export function bytesSource(bytes: Uint8Array, name = 'buffer'): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    read(offset, length) {
      checkRange(this, offset, length);
      // Uint8Array.prototype.slice copies even for a Node Buffer (whose own slice is a view).
      return Uint8Array.prototype.slice.call(bytes, offset, offset + length);
    },
    close() {},
  };
}

let CRC_TABLE: Uint32Array | undefined;

/**
 * CRC-32 (IEEE 802.3, as zip uses); pass the previous value to continue over several chunks. Table-driven, so it
 * runs in a browser too (node:zlib's native one is not worth a Node-only import here).
 */
export function crc32(data: Uint8Array, prev = 0): number {
  return crc32Table(data, prev);
}

/** Table-driven CRC-32. */
export function crc32Table(data: Uint8Array, prev = 0): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  const t = CRC_TABLE;
  let c = ~prev;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
