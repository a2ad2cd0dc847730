import { zipSync } from 'fflate';
import { dictPickle, f32Bytes, tensorOps } from '../test/helpers';
import { bytesSource, crc32, crc32Table } from './bytes';
import { readStateDict } from './files';
import { toFloat32 } from './tensor';
import { ZipReader, writeTorchZip } from './zip';

const enc = new TextEncoder();

/** A one-entry stored zip whose central directory keeps sizes and offset in a ZIP64 extra field. */
function zip64Archive(name: string, data: Uint8Array): Uint8Array {
  const n = enc.encode(name);
  const crc = crc32(data);
  const local = new Uint8Array(30 + n.length);
  const l = new DataView(local.buffer);
  l.setUint32(0, 0x04034b50, true);
  l.setUint16(4, 45, true);
  l.setUint32(14, crc, true);
  l.setUint32(18, data.length, true);
  l.setUint32(22, data.length, true);
  l.setUint16(26, n.length, true);
  local.set(n, 30);
  const central = new Uint8Array(46 + n.length + 28);
  const c = new DataView(central.buffer);
  c.setUint32(0, 0x02014b50, true);
  c.setUint32(16, crc, true);
  c.setUint32(20, 0xffffffff, true);
  c.setUint32(24, 0xffffffff, true);
  c.setUint16(28, n.length, true);
  c.setUint16(30, 28, true);
  c.setUint32(42, 0xffffffff, true);
  central.set(n, 46);
  const x = 46 + n.length;
  c.setUint16(x, 1, true);
  c.setUint16(x + 2, 24, true);
  c.setBigUint64(x + 4, BigInt(data.length), true); // uncompressed
  c.setBigUint64(x + 12, BigInt(data.length), true); // compressed
  c.setBigUint64(x + 20, 0n, true); // local header offset
  const cdOffset = local.length + data.length;
  const end = new Uint8Array(56 + 20 + 22);
  const e = new DataView(end.buffer);
  e.setUint32(0, 0x06064b50, true);
  e.setBigUint64(4, 44n, true);
  e.setBigUint64(24, 1n, true);
  e.setBigUint64(32, 1n, true);
  e.setBigUint64(40, BigInt(central.length), true);
  e.setBigUint64(48, BigInt(cdOffset), true);
  e.setUint32(56, 0x07064b50, true);
  e.setBigUint64(64, BigInt(cdOffset + central.length), true);
  e.setUint32(76, 0x06054b50, true);
  e.setUint16(84, 0xffff, true);
  e.setUint16(86, 0xffff, true);
  e.setUint32(88, 0xffffffff, true);
  e.setUint32(92, 0xffffffff, true);
  const out = new Uint8Array(cdOffset + central.length + end.length);
  out.set(local, 0);
  out.set(data, local.length);
  out.set(central, cdOffset);
  out.set(end, cdOffset + central.length);
  return out;
}

describe('ZipReader', () => {
  it('follows ZIP64 end records and ZIP64 extra fields in the central directory', () => {
    const data = enc.encode('hello zip64');
    const zip = ZipReader.open(bytesSource(zip64Archive('a/b.txt', data), 'z64'));
    expect(zip.entries.map((e) => [e.name, e.size, e.compressedSize, e.localHeaderOffset])).toEqual([
      ['a/b.txt', 11, 11, 0],
    ]);
    expect(new TextDecoder().decode(zip.read('a/b.txt'))).toBe('hello zip64');
  });

  it('reads deflated entries written by another zip tool (re-zipped checkpoints)', async () => {
    const pkl = dictPickle([['w', tensorOps('FloatStorage', '0', 3, 0, [3], [1])]]);
    const zip = zipSync({ 'ckpt/data.pkl': [pkl, { level: 9 }], 'ckpt/data/0': [f32Bytes([1, 2, 3]), { level: 9 }] });
    const entries = ZipReader.open(bytesSource(zip, 'fflate')).entries;
    expect(entries.map((e) => e.method)).toEqual([8, 8]);
    expect(Array.from(toFloat32((await readStateDict(zip)).get('w')!))).toEqual([1, 2, 3]);
  });

  it('writes the 64-byte-aligned layout torch uses, for any name length', () => {
    const names = ['a/data.pkl', 'archive/data/0', 'x'.repeat(33), 'y'.repeat(30)];
    const bytes = writeTorchZip(names.map((name, i) => ({ name, data: new Uint8Array(i * 7 + 1).fill(i) })));
    const zip = ZipReader.open(bytesSource(bytes, 'ours'));
    expect(zip.entries.map((e) => e.name)).toEqual(names);
    for (const [i, e] of zip.entries.entries()) {
      expect(e.dataOffset % 64).toBe(0);
      expect(Array.from(zip.read(e))).toEqual(new Array(i * 7 + 1).fill(i));
    }
  });

  it('native and table CRC-32 agree (the check value of "123456789" is 0xCBF43926)', () => {
    const v = enc.encode('123456789');
    expect(crc32Table(v)).toBe(0xcbf43926);
    expect(crc32(v)).toBe(0xcbf43926);
    const big = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 31) & 0xff);
    expect(crc32(big)).toBe(crc32Table(big));
  });
});
