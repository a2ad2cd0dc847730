import { Inflate } from 'fflate';
import { crc32, type ByteSource } from './bytes';
import { TorchFormatError } from './errors';

/**
 * A small, defensive zip reader and the writer torch.save's layout needs.
 *
 * Reading trusts only the central directory (torch writes zeros in local headers and puts sizes in data
 * descriptors), follows ZIP64 records, and validates everything before reading data: entry ranges inside the file
 * and not overlapping (no "overlapping-file" zip bombs), declared sizes under a limit, stored entries whose
 * compressed and uncompressed sizes agree, deflated entries that may not inflate past their declared size, names
 * without `..`, absolute paths, backslashes or NULs, and CRC-32 on every entry read.
 */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc: number;
  localHeaderOffset: number;
  /** Absolute offset of the entry's data (after the local header). */
  dataOffset: number;
}

export interface ZipReadOptions {
  /** Largest uncompressed entry accepted (default 4 GiB). */
  maxEntryBytes?: number;
  /** Largest sum of uncompressed entry sizes (default 16 GiB). */
  maxTotalBytes?: number;
  /** Largest number of entries (default 1,000,000). */
  maxEntries?: number;
  /** Check CRC-32 of each entry read (default true). */
  verifyCrc?: boolean;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;

/** Refuses names that would escape an extraction folder or confuse path handling. */
export function checkEntryName(name: string, source: string): void {
  const bad =
    name.length === 0 ||
    name.includes('\0') ||
    name.includes('\\') ||
    name.startsWith('/') ||
    /^[a-zA-Z]:/.test(name) ||
    name.split('/').some((part) => part === '..');
  if (bad) {
    throw new TorchFormatError(
      `${source}: zip entry name ${JSON.stringify(name)} is unsafe (absolute, drive-qualified, '..', backslash or NUL). ` +
        'torch.save never writes such names; the archive is corrupt or hostile.',
    );
  }
}

export class ZipReader {
  readonly entries: ZipEntry[];
  private readonly byName: Map<string, ZipEntry>;

  private constructor(
    private readonly src: ByteSource,
    entries: ZipEntry[],
    private readonly opts: Required<ZipReadOptions>,
  ) {
    this.entries = entries;
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  static open(src: ByteSource, options: ZipReadOptions = {}): ZipReader {
    const opts: Required<ZipReadOptions> = {
      maxEntryBytes: options.maxEntryBytes ?? 4 * 1024 ** 3,
      maxTotalBytes: options.maxTotalBytes ?? 16 * 1024 ** 3,
      maxEntries: options.maxEntries ?? 1_000_000,
      verifyCrc: options.verifyCrc ?? true,
    };
    const name = src.name;
    const fail = (msg: string) => new TorchFormatError(`${name}: ${msg}`);
    if (src.size < 22) throw fail(`too short for a zip archive (${src.size} bytes); the file is truncated.`);
    // End of central directory: 22 bytes plus a comment of up to 65535 bytes.
    const tailLen = Math.min(src.size, 22 + 65535);
    const tailStart = src.size - tailLen;
    const tail = src.read(tailStart, tailLen);
    const tdv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tdv.getUint32(i, true) === SIG_EOCD && i + 22 + tdv.getUint16(i + 20, true) === tail.length) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw fail('no end-of-central-directory record; the archive is truncated or not a zip file.');
    let count = tdv.getUint16(eocd + 10, true);
    let cdSize = tdv.getUint32(eocd + 12, true);
    let cdOffset = tdv.getUint32(eocd + 16, true);
    const eocdAbs = tailStart + eocd;
    // ZIP64: a locator sits right before the classic EOCD and points at the ZIP64 EOCD record.
    if (eocdAbs >= 20) {
      const loc = src.read(eocdAbs - 20, 20);
      const ldv = new DataView(loc.buffer, loc.byteOffset, loc.byteLength);
      if (ldv.getUint32(0, true) === SIG_ZIP64_LOCATOR) {
        const z64Off = safeU64(ldv, 8, fail);
        if (z64Off + 56 > eocdAbs - 20) throw fail(`ZIP64 end record offset ${z64Off} is out of range.`);
        const rec = src.read(z64Off, 56);
        const rdv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
        if (rdv.getUint32(0, true) !== SIG_ZIP64_EOCD)
          throw fail('ZIP64 locator does not point at a ZIP64 end record; the archive is corrupt.');
        count = safeU64(rdv, 32, fail);
        cdSize = safeU64(rdv, 40, fail);
        cdOffset = safeU64(rdv, 48, fail);
      } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
        throw fail(
          'the end record needs ZIP64 values but no ZIP64 locator is present; the archive is truncated or corrupt.',
        );
      }
    }
    if (count > opts.maxEntries) throw fail(`${count} entries exceed the limit of ${opts.maxEntries}.`);
    if (cdOffset + cdSize > src.size)
      throw fail(
        `central directory (bytes ${cdOffset}..${cdOffset + cdSize}) lies past the end of the ${src.size}-byte file; the archive is truncated.`,
      );
    if (count * 46 > cdSize) throw fail(`central directory of ${cdSize} bytes cannot hold ${count} entries.`);
    const cd = src.read(cdOffset, cdSize);
    const cdv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    const entries: ZipEntry[] = [];
    const seen = new Set<string>();
    let total = 0;
    let p = 0;
    const utf8 = new TextDecoder('utf-8', { fatal: false });
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cdv.getUint32(p, true) !== SIG_CENTRAL)
        throw fail(`central directory entry ${i} is malformed.`);
      const flags = cdv.getUint16(p + 8, true);
      const method = cdv.getUint16(p + 10, true);
      const crc = cdv.getUint32(p + 16, true);
      let csize = cdv.getUint32(p + 20, true);
      let usize = cdv.getUint32(p + 24, true);
      const nameLen = cdv.getUint16(p + 28, true);
      const extraLen = cdv.getUint16(p + 30, true);
      const commentLen = cdv.getUint16(p + 32, true);
      let lho = cdv.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length)
        throw fail(`central directory entry ${i} runs past the directory.`);
      const entryName = utf8.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // ZIP64 extended information: 8-byte values, present only for fields saturated at 0xFFFFFFFF.
      let x = p + 46 + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = cdv.getUint16(x, true);
        const len = cdv.getUint16(x + 2, true);
        if (x + 4 + len > xEnd) throw fail(`extra field of entry '${entryName}' is malformed.`);
        if (id === 0x0001) {
          let q = x + 4;
          const next = () => {
            if (q + 8 > x + 4 + len) throw fail(`ZIP64 extra field of '${entryName}' is too short.`);
            const v = safeU64(cdv, q, fail);
            q += 8;
            return v;
          };
          if (usize === 0xffffffff) usize = next();
          if (csize === 0xffffffff) csize = next();
          if (lho === 0xffffffff) lho = next();
        }
        x += 4 + len;
      }
      p = xEnd + commentLen;
      checkEntryName(entryName, name);
      if (seen.has(entryName)) throw fail(`duplicate zip entry '${entryName}'.`);
      seen.add(entryName);
      if (flags & 0x1) throw fail(`entry '${entryName}' is encrypted; encrypted archives are not supported.`);
      if (method !== 0 && method !== 8)
        throw fail(
          `entry '${entryName}' uses compression method ${method}; only stored (0) and deflate (8) are supported.`,
        );
      if (method === 0 && csize !== usize) {
        throw fail(
          `stored entry '${entryName}' declares ${csize} stored bytes but ${usize} uncompressed bytes; the archive is corrupt.`,
        );
      }
      if (usize > opts.maxEntryBytes)
        throw fail(
          `entry '${entryName}' declares ${usize} bytes, over the ${opts.maxEntryBytes}-byte limit (zip bomb?). Raise maxEntryBytes if the file is genuine.`,
        );
      total += usize;
      if (total > opts.maxTotalBytes)
        throw fail(
          `entries declare more than ${opts.maxTotalBytes} bytes in total (zip bomb?). Raise maxTotalBytes if the file is genuine.`,
        );
      if (lho + 30 > cdOffset)
        throw fail(`entry '${entryName}' has its local header at ${lho}, outside the data area.`);
      const lh = src.read(lho, 30);
      const ldv = new DataView(lh.buffer, lh.byteOffset, lh.byteLength);
      if (ldv.getUint32(0, true) !== SIG_LOCAL)
        throw fail(`entry '${entryName}' has no local header at offset ${lho}; the archive is corrupt.`);
      const lNameLen = ldv.getUint16(26, true);
      const lExtraLen = ldv.getUint16(28, true);
      const lName = utf8.decode(src.read(lho + 30, Math.min(lNameLen, Math.max(0, cdOffset - lho - 30))));
      if (lName !== entryName)
        throw fail(`entry '${entryName}' is named '${lName}' in its local header; the archive is corrupt or crafted.`);
      const dataOffset = lho + 30 + lNameLen + lExtraLen;
      if (dataOffset + csize > cdOffset) {
        throw fail(
          `entry '${entryName}' (${csize} bytes at ${dataOffset}) runs past the start of the central directory at ${cdOffset}; the archive is truncated.`,
        );
      }
      entries.push({
        name: entryName,
        method,
        compressedSize: csize,
        size: usize,
        crc,
        localHeaderOffset: lho,
        dataOffset,
      });
    }
    // Entries must not share bytes: overlapping entries are how non-recursive zip bombs amplify.
    const sorted = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1];
      if (sorted[i].localHeaderOffset < prev.dataOffset + prev.compressedSize) {
        throw fail(`entries '${prev.name}' and '${sorted[i].name}' overlap (zip bomb or corrupt archive).`);
      }
    }
    return new ZipReader(src, entries, opts);
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /** The entry's uncompressed bytes (a fresh buffer the caller owns). */
  read(entry: ZipEntry | string): Uint8Array {
    const e = typeof entry === 'string' ? this.byName.get(entry) : entry;
    if (!e) throw new TorchFormatError(`${this.src.name}: no zip entry '${String(entry)}'.`);
    const raw = this.src.read(e.dataOffset, e.compressedSize);
    const out = e.method === 0 ? raw : inflateBounded(raw, e, this.src.name);
    if (this.opts.verifyCrc) {
      const c = crc32(out);
      if (c !== e.crc) {
        throw new TorchFormatError(
          `${this.src.name}: entry '${e.name}' fails its CRC-32 check (stored ${hex(e.crc)}, computed ${hex(c)}); the file is corrupt.`,
        );
      }
    }
    return out;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function safeU64(dv: DataView, off: number, fail: (m: string) => Error): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`a ZIP64 value ${v} is out of range.`);
  return Number(v);
}

/** Inflates into exactly `entry.size` bytes; stops as soon as the stream would produce more. */
function inflateBounded(raw: Uint8Array, entry: ZipEntry, source: string): Uint8Array {
  const out = new Uint8Array(entry.size);
  let n = 0;
  let ended = false;
  const inf = new Inflate((chunk, final) => {
    if (n + chunk.length > out.length) {
      throw new TorchFormatError(
        `${source}: entry '${entry.name}' inflates past its declared ${entry.size} bytes (zip bomb or corrupt archive).`,
      );
    }
    out.set(chunk, n);
    n += chunk.length;
    if (final) ended = true;
  });
  // Small input chunks bound what one push can inflate to (deflate expands at most ~1032x).
  const CHUNK = 1 << 10;
  try {
    for (let i = 0; i < raw.length; i += CHUNK)
      inf.push(raw.subarray(i, Math.min(raw.length, i + CHUNK)), i + CHUNK >= raw.length);
    if (raw.length === 0) inf.push(raw, true);
  } catch (e) {
    if (e instanceof TorchFormatError) throw e;
    throw new TorchFormatError(
      `${source}: entry '${entry.name}' is not valid deflate data (${(e as Error).message}).`,
      {
        cause: e,
      },
    );
  }
  if (!ended || n !== entry.size) {
    throw new TorchFormatError(
      `${source}: entry '${entry.name}' inflates to ${n} bytes but declares ${entry.size}; the archive is corrupt.`,
    );
  }
  return out;
}

export interface ZipWriteEntry {
  name: string;
  data: Uint8Array;
}

/** Data alignment torch's zip writer uses for every entry (caffe2/serialize/inline_container.cc, kFieldAlignment). */
export const TORCH_ZIP_ALIGNMENT = 64;

/**
 * Writes entries the way PyTorch's `PyTorchFileWriter` (miniz) does: stored, flags 0x0808 (data descriptor + UTF-8),
 * zero time/date/version fields, an `FB` extra field padding each entry's data to a 64-byte boundary, a 16-byte data
 * descriptor after the data, and ZIP64 end records before the classic end record.
 */
export function writeTorchZip(entries: readonly ZipWriteEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let pos = 0;
  for (const e of entries) {
    checkEntryName(e.name, 'writeTorchZip');
    const name = enc.encode(e.name);
    if (e.data.byteLength >= 0xffffffff || pos >= 0xffffffff) {
      throw new TorchFormatError(
        `writeTorchZip: entry '${e.name}' does not fit a 4 GiB archive; split the state dict into smaller files.`,
      );
    }
    const start = pos + 30 + name.length + 4;
    const pad = (TORCH_ZIP_ALIGNMENT - (start % TORCH_ZIP_ALIGNMENT)) % TORCH_ZIP_ALIGNMENT;
    const lh = new Uint8Array(30 + name.length + 4 + pad);
    const l = new DataView(lh.buffer);
    l.setUint32(0, SIG_LOCAL, true);
    l.setUint16(6, 0x0808, true);
    l.setUint16(26, name.length, true);
    l.setUint16(28, 4 + pad, true);
    lh.set(name, 30);
    lh[30 + name.length] = 0x46; // 'F'
    lh[31 + name.length] = 0x42; // 'B'
    l.setUint16(32 + name.length, pad, true);
    lh.fill(0x5a, 34 + name.length); // 'Z'
    const crc = crc32(e.data);
    const dd = new Uint8Array(16);
    const d = new DataView(dd.buffer);
    d.setUint32(0, SIG_DESCRIPTOR, true);
    d.setUint32(4, crc, true);
    d.setUint32(8, e.data.byteLength, true);
    d.setUint32(12, e.data.byteLength, true);
    const ch = new Uint8Array(46 + name.length);
    const c = new DataView(ch.buffer);
    c.setUint32(0, SIG_CENTRAL, true);
    c.setUint16(8, 0x0808, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, e.data.byteLength, true);
    c.setUint32(24, e.data.byteLength, true);
    c.setUint16(28, name.length, true);
    c.setUint32(42, pos, true);
    ch.set(name, 46);
    central.push(ch);
    parts.push(lh, e.data, dd);
    pos += lh.length + e.data.byteLength + dd.length;
  }
  const cdOffset = pos;
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  const z64 = new Uint8Array(56 + 20 + 22);
  const z = new DataView(z64.buffer);
  z.setUint32(0, SIG_ZIP64_EOCD, true);
  z.setBigUint64(4, 44n, true);
  z.setUint16(12, 0x031e, true); // version made by (miniz: unix, 3.0)
  z.setUint16(14, 0x002d, true); // version needed: 4.5 (ZIP64)
  z.setBigUint64(24, BigInt(entries.length), true);
  z.setBigUint64(32, BigInt(entries.length), true);
  z.setBigUint64(40, BigInt(cdSize), true);
  z.setBigUint64(48, BigInt(cdOffset), true);
  z.setUint32(56, SIG_ZIP64_LOCATOR, true);
  z.setBigUint64(64, BigInt(cdOffset + cdSize), true);
  z.setUint32(72, 1, true);
  z.setUint32(76, SIG_EOCD, true);
  const n16 = Math.min(entries.length, 0xffff);
  z.setUint16(84, n16, true);
  z.setUint16(86, n16, true);
  z.setUint32(88, cdSize, true);
  z.setUint32(92, cdOffset, true);
  const total = cdOffset + cdSize + z64.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const part of [...parts, ...central, z64]) {
    out.set(part, o);
    o += part.length;
  }
  return out;
}
