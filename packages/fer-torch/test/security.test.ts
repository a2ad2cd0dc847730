/**
 * Hand-crafted hostile files: every one is refused with a clear error, nothing is executed, and memory stays
 * bounded (we never allocate what a header merely declares).
 */
import { existsSync, rmSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import {
  SafetensorsError,
  TorchFormatError,
  UnsafePickleError,
  parseSafetensors,
  serializeSafetensors,
  serializeTorchStateDict,
  fromFloat32,
} from 'fer-torch';
import { readStateDict, readTorchFile } from 'fer-torch/node';
import { unpickle, PickledObject, PyDict } from 'fer-torch/internal';
import { REDUCE_PAYLOADS } from './fixtures/pickles';
import {
  EMPTY_DICT,
  EMPTY_LIST,
  EMPTY_TUPLE,
  MARK,
  NEWOBJ,
  PROTO2,
  REDUCE,
  SETITEMS,
  STOP,
  APPENDS,
  BUILD,
  float,
  dictPickle,
  f32Bytes,
  global,
  hexBytes,
  int,
  pk,
  str,
  tensorOps,
  torchZip,
  tuple,
} from './helpers';

const MARKER = '/tmp/fer-torch-pwned';

/** Runs `fn`, expecting it to throw; checks the heap + array buffers grew by less than `limit` bytes meanwhile. */
async function expectRefusedWithin<T>(fn: () => T | Promise<T>, limit = 64 * 1024 ** 2): Promise<Error> {
  const before = process.memoryUsage();
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  const after = process.memoryUsage();
  const grown = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
  expect(err).toBeInstanceOf(Error);
  expect(grown).toBeLessThan(limit);
  return err as Error;
}

beforeEach(() => rmSync(MARKER, { force: true }));
afterAll(() => rmSync(MARKER, { force: true }));

describe('hostile pickles are refused and never executed', () => {
  const callWith = (module: string, name: string) =>
    pk(...PROTO2, ...global(module, name), ...tuple(str(`touch ${MARKER}`)), REDUCE, STOP);

  it.each([
    ['os', 'system'],
    ['posix', 'system'],
    ['nt', 'system'],
    ['subprocess', 'Popen'],
    ['subprocess', 'check_output'],
    ['builtins', 'eval'],
    ['builtins', 'exec'],
    ['builtins', 'getattr'],
    ['builtins', '__import__'],
    ['__builtin__', 'eval'],
    ['runpy', '_run_code'],
    ['torch', 'load'],
    ['numpy', '__getattribute__'],
  ])('GLOBAL %s.%s, in both modes', (module, name) => {
    for (const unknownGlobals of ['error', 'inert'] as const) {
      expect(() => unpickle(callWith(module, name), { unknownGlobals })).toThrow(UnsafePickleError);
    }
    expect(() => unpickle(callWith(module, name))).toThrow(/refusing to load the global .*Nothing was executed/);
    expect(existsSync(MARKER)).toBe(false);
  });

  it.each([0, 2, 4])('a CPython __reduce__ payload (os.system) at protocol %i', (p) => {
    for (const unknownGlobals of ['error', 'inert'] as const) {
      expect(() => unpickle(hexBytes(REDUCE_PAYLOADS[p]), { unknownGlobals })).toThrow(
        /refusing to load the global 'posix\.system'/,
      );
    }
    expect(existsSync(MARKER)).toBe(false);
  });

  it('STACK_GLOBAL spelling of os.system', () => {
    const bytes = pk(0x80, 4, 0x8c, 2, 'os', 0x8c, 6, 'system', 0x93, 0x8c, 2, 'id', 0x85, REDUCE, STOP);
    expect(() => unpickle(bytes, { unknownGlobals: 'inert' })).toThrow(/'os\.system'/);
  });

  it('REDUCE on callables that are not allow-listed', () => {
    // a value-only allow-listed global (a storage class) is not callable
    const onStorage = pk(...PROTO2, ...global('torch', 'FloatStorage'), ...tuple(int(10)), REDUCE, STOP);
    return Promise.all([
      expect(readTorchFile(torchZip(onStorage, {}))).rejects.toThrow(
        /REDUCE on 'torch\.FloatStorage' is not supported.*Nothing was executed/,
      ),
      // a plain value on the stack
      expect(async () => unpickle(pk(...PROTO2, ...str('os.system'), ...tuple(), REDUCE, STOP))).rejects.toThrow(
        /REDUCE applied to str 'os\.system'/,
      ),
      // an inert object's result is not callable either
      expect(async () =>
        unpickle(pk(...PROTO2, ...global('mymod', 'Factory'), EMPTY_TUPLE, REDUCE, EMPTY_TUPLE, REDUCE, STOP), {
          unknownGlobals: 'inert',
        }),
      ).rejects.toThrow(/REDUCE applied to an inert mymod\.Factory object/),
    ]);
  });

  it('INST and OBJ opcodes, in both modes', () => {
    const inst = pk(0x28, 0x69, 'collections\nOrderedDict\n', STOP);
    const obj = pk(0x28, ...global('collections', 'OrderedDict'), 0x6f, STOP);
    for (const bytes of [inst, obj]) {
      for (const unknownGlobals of ['error', 'inert'] as const) {
        expect(() => unpickle(bytes, { unknownGlobals })).toThrow(/builds an arbitrary Python object.*refused/);
      }
    }
  });

  it('EXT opcodes and BUILD on objects that cannot take state', () => {
    expect(() => unpickle(pk(...PROTO2, 0x82, 1, STOP))).toThrow(/extension registry/);
    expect(() => unpickle(pk(...PROTO2, EMPTY_LIST, EMPTY_DICT, BUILD, STOP))).toThrow(/BUILD .* is not supported/);
  });

  it('a payload inside an otherwise valid torch.save zip', async () => {
    const evil = dictPickle([['w', [...global('os', 'system'), ...tuple(str(`touch ${MARKER}`)), REDUCE]]]);
    await expect(readStateDict(torchZip(evil, {}))).rejects.toThrow(UnsafePickleError);
    await expect(readStateDict(torchZip(evil, {}), { unknownGlobals: 'inert' })).rejects.toThrow(UnsafePickleError);
    expect(existsSync(MARKER)).toBe(false);
  });
});

describe('training checkpoints with helper objects', () => {
  // {'epoch': 3, 'state_dict': {'w': tensor}, 'best_acc': 61.5, 'recorder': RecorderMeter(...), 'optimizer': {...}}
  const pkl = pk(
    ...PROTO2,
    EMPTY_DICT,
    MARK,
    ...str('epoch'),
    ...int(3),
    ...str('state_dict'),
    EMPTY_DICT,
    ...str('w'),
    ...tensorOps('FloatStorage', '0', 2, 0, [2], [1]),
    0x73,
    ...str('best_acc'),
    ...float(61.5),
    ...str('recorder'),
    ...global('main', 'RecorderMeter'),
    EMPTY_TUPLE,
    NEWOBJ,
    EMPTY_DICT,
    MARK,
    ...str('epoch_losses'),
    EMPTY_LIST,
    MARK,
    ...float(0.5),
    ...float(0.25),
    APPENDS,
    SETITEMS,
    BUILD,
    ...str('optimizer'),
    EMPTY_DICT,
    ...str('param_groups'),
    EMPTY_LIST,
    EMPTY_DICT,
    MARK,
    ...str('lr'),
    ...float(0.1),
    ...str('nesterov'),
    0x89,
    SETITEMS,
    0x61,
    0x73,
    SETITEMS,
    STOP,
  );
  const file = torchZip(pkl, { '0': f32Bytes([1.5, -2]) });

  it('are refused by default with a hint, and read as inert data on request', async () => {
    await expect(readStateDict(file, { key: 'state_dict' })).rejects.toThrow(
      /main\.RecorderMeter.*unknownGlobals: 'inert'/s,
    );
    const sd = await readStateDict(file, { key: 'state_dict', unknownGlobals: 'inert' });
    expect([...sd.keys()]).toEqual(['w']);
    expect(Array.from(new Float32Array(sd.get('w')!.data.slice().buffer))).toEqual([1.5, -2]);
    const tree = (await readTorchFile(file, { unknownGlobals: 'inert' })) as PyDict;
    expect(tree.get('epoch')).toBe(3);
    expect(tree.get('best_acc')).toBe(61.5);
    const rec = tree.get('recorder') as PickledObject;
    expect(rec).toBeInstanceOf(PickledObject);
    expect(rec.qualifiedName).toBe('main.RecorderMeter');
    expect((rec.state as PyDict).get('epoch_losses')).toEqual([0.5, 0.25]);
    expect(((tree.get('optimizer') as PyDict).get('param_groups') as PyDict[])[0].get('lr')).toBe(0.1);
  });

  it('without a key, the weights entry is found and other keys are named in errors', async () => {
    const sd = await readStateDict(file, { unknownGlobals: 'inert' });
    expect([...sd.keys()]).toEqual(['w']);
    await expect(readStateDict(file, { unknownGlobals: 'inert', key: 'model' })).rejects.toThrow(
      /keys epoch, state_dict, best_acc, recorder, optimizer/,
    );
  });
});

describe('hostile zip archives', () => {
  const good = serializeTorchStateDict(new Map([['w', fromFloat32([1, 2, 3, 4], [2, 2])]]));
  const sigs = (b: Uint8Array, sig: number) => {
    const out: number[] = [];
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i + 4 <= b.length; i++) if (dv.getUint32(i, true) === sig) out.push(i);
    return out;
  };
  const CENTRAL = 0x02014b50;

  it('reads the untouched archive (control)', async () => {
    const sd = await readStateDict(good);
    expect(sd.get('w')?.shape).toEqual([2, 2]);
  });

  it('refuses an archive truncated at any point, with a TorchFormatError', async () => {
    const cuts = [
      0,
      3,
      21,
      64,
      100,
      200,
      good.length - 200,
      good.length - 99,
      good.length - 60,
      good.length - 23,
      good.length - 1,
    ];
    for (let c = 300; c < good.length - 200; c += 97) cuts.push(c);
    for (const cut of cuts) {
      const err = await expectRefusedWithin(() => readTorchFile(good.slice(0, Math.max(0, cut))));
      expect([cut, err.name]).toEqual([cut, 'TorchFormatError']);
    }
  });

  it('refuses a deflate bomb that inflates past its declared size, without inflating it', async () => {
    const bomb = new Uint8Array(deflateRawSync(new Uint8Array(64 * 1024 ** 2))); // 64 MiB of zeros in ~64 KiB
    const zip = torchZip(bomb, {});
    // mark the data.pkl entry as deflated, declaring a 1000-byte uncompressed size
    const dv = new DataView(zip.buffer);
    const cd = sigs(zip, CENTRAL)[0];
    dv.setUint16(cd + 10, 8, true);
    dv.setUint32(cd + 24, 1000, true);
    const err = await expectRefusedWithin(() => readTorchFile(zip), 16 * 1024 ** 2);
    expect(err.message).toMatch(/inflates past its declared 1000 bytes \(zip bomb/);
  });

  it('refuses entries that declare huge sizes before reading them', async () => {
    const zip = torchZip(pk(...PROTO2, EMPTY_DICT, STOP), {});
    const dv = new DataView(zip.buffer);
    const cd = sigs(zip, CENTRAL)[0];
    dv.setUint16(cd + 10, 8, true);
    dv.setUint32(cd + 24, 0xfffffff0, true);
    const err = await expectRefusedWithin(() => readTorchFile(zip, { maxEntryBytes: 1024 ** 3 }));
    expect(err.message).toMatch(/declares 4294967280 bytes, over the 1073741824-byte limit \(zip bomb\?\)/);
  });

  it('refuses stored entries whose declared sizes disagree', async () => {
    const zip = good.slice();
    const cd = sigs(zip, CENTRAL)[1];
    new DataView(zip.buffer).setUint32(cd + 24, 1 << 30, true);
    await expect(readTorchFile(zip)).rejects.toThrow(/declares 16 stored bytes but 1073741824 uncompressed bytes/);
  });

  it('refuses overlapping entries (non-recursive zip bombs)', async () => {
    const zip = good.slice();
    const [cd0, cd1] = sigs(zip, CENTRAL);
    // point the second entry's local header offset at the first entry's
    const dv = new DataView(zip.buffer);
    dv.setUint32(cd1 + 42, dv.getUint32(cd0 + 42, true), true);
    await expect(readTorchFile(zip)).rejects.toThrow(TorchFormatError);
  });

  it.each(['../../etc/passwd', '/abs/data.pkl', 'C:/x/data.pkl', 'a\\..\\data.pkl', 'archive/../../data.pkl'])(
    'refuses the path-traversal entry name %s',
    async (name) => {
      const zip = torchZip(pk(...PROTO2, EMPTY_DICT, STOP), {}, 'archive');
      // rename the first entry in both headers (same length keeps offsets valid)
      const old = 'archive/data.pkl';
      const padded = name.length <= old.length ? name.padEnd(old.length, 'x') : name;
      const fixed = padded.slice(0, old.length);
      const unsafe = /^\.\.|^\/|^[A-Za-z]:|\\|\/\.\.\//.test(fixed) || fixed.split('/').includes('..');
      expect(unsafe).toBe(true);
      const enc = new TextEncoder().encode(fixed);
      for (const at of [30, sigs(zip, CENTRAL)[0] + 46]) zip.set(enc, at);
      await expect(readTorchFile(zip)).rejects.toThrow(/is unsafe/);
    },
  );

  it('refuses entries whose CRC-32 does not match', async () => {
    const zip = good.slice();
    const data = sigs(zip, 0x04034b50)[1]; // local header of the storage entry
    const dataStart =
      data +
      30 +
      new DataView(zip.buffer).getUint16(data + 26, true) +
      new DataView(zip.buffer).getUint16(data + 28, true);
    zip[dataStart] ^= 1;
    await expect(readTorchFile(zip)).rejects.toThrow(/CRC-32/);
  });

  it('refuses storages shorter than declared and tensors that reach past their storage', async () => {
    const short = dictPickle([['w', tensorOps('FloatStorage', '0', 6, 0, [2, 3], [3, 1])]]);
    await expect(readStateDict(torchZip(short, { '0': f32Bytes([1, 2, 3]) }))).rejects.toThrow(
      /should hold 6 float32 elements \(24 bytes\) but its entry has 12 bytes: the storage is shorter/,
    );
    const past = dictPickle([['w', tensorOps('FloatStorage', '0', 4, 1, [2, 2], [2, 1])]]);
    await expect(readStateDict(torchZip(past, { '0': f32Bytes([1, 2, 3, 4]) }))).rejects.toThrow(
      /holds 4 float32 elements, but a tensor .* reaches element 4: the storage is shorter than the tensor it backs/,
    );
    const missing = dictPickle([['w', tensorOps('FloatStorage', '7', 4, 0, [4], [1])]]);
    await expect(readStateDict(torchZip(missing, {}))).rejects.toThrow(/no 'archive\/data\/7' entry/);
  });

  it('refuses zero-stride expansions beyond maxExpandedBytes without allocating them', async () => {
    const bomb = dictPickle([['w', tensorOps('FloatStorage', '0', 1, 0, [1 << 20, 1 << 10], [0, 0])]]);
    const err = await expectRefusedWithin(() => readStateDict(torchZip(bomb, { '0': f32Bytes([1]) })));
    expect(err.message).toMatch(/would expand storage '0' \(4 bytes\) to 4294967296 bytes, over maxExpandedBytes/);
  });

  it('refuses a small file whose many tensors view one storage (copy amplification)', async () => {
    // 20,000 list items, each REDUCE(BINGET func, BINGET args): 5 pickle bytes per 256 KiB copy.
    const n = 1 << 16;
    const func = global('torch._utils', '_rebuild_tensor_v2');
    const args = [MARK, ...tensorOps('FloatStorage', '0', n, 0, [n], [1]).slice(func.length + 1, -1)];
    const bomb = pk(
      ...PROTO2,
      EMPTY_LIST,
      MARK,
      ...func,
      0x71,
      0,
      ...args,
      0x71,
      1,
      REDUCE,
      ...Array.from({ length: 20000 }, () => [0x68, 0, 0x68, 1, REDUCE]).flat(),
      APPENDS,
      STOP,
    );
    const file = torchZip(bomb, { '0': new Uint8Array(n * 4) });
    expect(file.length).toBeLessThan(400 * 1024);
    const err = await expectRefusedWithin(
      () => readTorchFile(file, { maxExpandedBytes: 8 * 1024 ** 2 }),
      48 * 1024 ** 2,
    );
    expect(err.message).toMatch(/would copy more than \d+ bytes in total/);
    // the same views within budget are fine
    const ok = pk(
      ...PROTO2,
      EMPTY_LIST,
      MARK,
      ...func,
      0x71,
      0,
      ...args,
      0x71,
      1,
      REDUCE,
      0x68,
      0,
      0x68,
      1,
      REDUCE,
      APPENDS,
      STOP,
    );
    const two = (await readTorchFile(torchZip(ok, { '0': new Uint8Array(n * 4) }))) as Array<{ data: Uint8Array }>;
    expect(two).toHaveLength(2);
    expect(two[0].data).not.toBe(two[1].data);
  });

  it('refuses TorchScript archives and non-checkpoints with a hint', async () => {
    const { writeTorchZip } = await import('../src/zip');
    const ts = writeTorchZip([
      { name: 'm/constants.pkl', data: pk(...PROTO2, EMPTY_TUPLE, STOP) },
      { name: 'm/code/m.py', data: pk('x') },
    ]);
    await expect(readTorchFile(ts)).rejects.toThrow(/TorchScript archive.*state_dict/);
    await expect(readTorchFile(new TextEncoder().encode('hello world, not a checkpoint'))).rejects.toThrow(
      /not a PyTorch checkpoint.*starts with 68 65 6c/,
    );
  });
});

describe('hostile legacy files', () => {
  const magic = pk(...PROTO2, 0x8a, 10, [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19], STOP);
  const proto = pk(...PROTO2, ...int(1001), STOP);
  const sys = pk(...PROTO2, EMPTY_DICT, ...str('little_endian'), 0x88, 0x73, STOP);
  const main = pk(
    ...PROTO2,
    EMPTY_DICT,
    ...str('w'),
    ...global('torch._utils', '_rebuild_tensor_v2'),
    MARK,
    ...tuple(str('storage'), global('torch', 'FloatStorage'), str('k1'), str('cuda:0'), int(3), [0x4e]),
    0x51,
    ...int(0),
    ...tuple(int(3)),
    ...tuple(int(1)),
    0x89,
    ...global('collections', 'OrderedDict'),
    EMPTY_TUPLE,
    REDUCE,
    0x74,
    REDUCE,
    0x73,
    STOP,
  );
  const keys = pk(...PROTO2, EMPTY_LIST, ...str('k1'), 0x61, STOP);
  const count = (n: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigInt64(0, BigInt(n), true);
    return b;
  };
  const file = (n = 3, data = f32Bytes([1, 2, 3])) => pk(magic, proto, sys, main, keys, count(n), data);

  it('reads the well-formed hand-made file (control)', async () => {
    const sd = await readStateDict(file());
    expect(Array.from(new Float32Array(sd.get('w')!.data.slice().buffer))).toEqual([1, 2, 3]);
  });

  it('refuses truncation, count mismatches and wrong magic numbers', async () => {
    const whole = file();
    for (let cut = 1; cut < whole.length; cut += 7) {
      const err = await expectRefusedWithin(() => readStateDict(whole.slice(0, cut)));
      expect([cut, err.name]).toEqual([cut, 'TorchFormatError']);
    }
    await expect(readStateDict(file(2))).rejects.toThrow(/declared with 3 elements but its data record says 2/);
    await expect(readStateDict(file(3, f32Bytes([1, 2])))).rejects.toThrow(/needs 12 bytes .* the file is truncated/);
    await expect(readStateDict(pk(...PROTO2, ...int(5), STOP))).rejects.toThrow(/not the legacy magic number/);
  });
});

describe('hostile safetensors', () => {
  const good = serializeSafetensors(
    new Map([
      ['a', fromFloat32([1, 2], [2])],
      ['b', fromFloat32([3], [1])],
    ]),
  );
  const withHeader = (header: object, body: Uint8Array) => {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + body.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(body, 8 + json.length);
    return out;
  };
  const body = f32Bytes([1, 2, 3]);

  it('reads the well-formed file (control)', () => {
    expect([...parseSafetensors(good).tensors.keys()]).toEqual(['a', 'b']);
  });

  it('refuses overlapping, out-of-range and gapped offsets', () => {
    expect(() =>
      parseSafetensors(
        withHeader(
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          },
          body,
        ),
      ),
    ).toThrow(/overlap/);
    expect(() =>
      parseSafetensors(withHeader({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, body)),
    ).toThrow(/past the 12-byte data section/);
    expect(() => parseSafetensors(withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, body))).toThrow(
      SafetensorsError,
    );
    expect(() => parseSafetensors(withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, body))).toThrow(
      /invalid data_offsets/,
    );
    expect(() => parseSafetensors(withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, body))).toThrow(
      /needs 8 bytes but its offsets span 4/,
    );
    expect(() =>
      parseSafetensors(withHeader({ a: { dtype: 'F32', shape: [2.5], data_offsets: [0, 8] } }, body)),
    ).toThrow(/invalid shape/);
    expect(() => parseSafetensors(withHeader({ a: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, body))).toThrow(
      /unsupported dtype "C64"/,
    );
  });

  it('refuses an oversized or lying header length without allocating it', async () => {
    const huge = good.slice();
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    const e1 = await expectRefusedWithin(() => parseSafetensors(huge));
    expect(e1.message).toMatch(/exceeds the 104857600-byte limit/);
    const lying = good.slice();
    new DataView(lying.buffer).setBigUint64(0, 50n * 1024n * 1024n, true);
    const e2 = await expectRefusedWithin(() => parseSafetensors(lying));
    expect(e2.message).toMatch(/header claims 52428800 bytes but the file has only/);
    expect(() => parseSafetensors(new Uint8Array(5))).toThrow(/at least 8 bytes/);
    expect(() => parseSafetensors(withHeader([1, 2] as unknown as object, body))).toThrow(/must be a JSON object/);
  });
});
