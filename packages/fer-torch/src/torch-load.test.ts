import {
  EMPTY_DICT,
  EMPTY_LIST,
  EMPTY_TUPLE,
  MARK,
  PROTO2,
  REDUCE,
  STOP,
  dictPickle,
  f32Bytes,
  global,
  int,
  pk,
  str,
  tensorOps,
  torchZip,
  tuple,
} from '../test/helpers';
import { readStateDict, readTorchFile } from './files';
import { toFloat32, type RawTensor } from './tensor';
import { sniffFormat } from './torch-load';
import { writeTorchZip } from './zip';

const values = (t: RawTensor | undefined) => Array.from(toFloat32(t as RawTensor));

describe('tensors from storages', () => {
  const iota12 = f32Bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

  it('materialises a non-contiguous view (offset 1, size [2, 3], stride [1, 4]) contiguously', async () => {
    const sd = await readStateDict(
      torchZip(dictPickle([['t', tensorOps('FloatStorage', '0', 12, 1, [2, 3], [1, 4])]]), { '0': iota12 }),
    );
    // element (i, j) = storage[1 + i + 4j]
    expect(sd.get('t')?.shape).toEqual([2, 3]);
    expect(values(sd.get('t'))).toEqual([1, 5, 9, 2, 6, 10]);
  });

  it('serves views sharing one storage, each owning its bytes', async () => {
    const sd = await readStateDict(
      torchZip(
        dictPickle([
          ['full', tensorOps('FloatStorage', '0', 12, 0, [3, 4], [4, 1])],
          ['every_other', tensorOps('FloatStorage', '0', 12, 2, [3], [2])],
          ['column', tensorOps('FloatStorage', '0', 12, 3, [3, 1], [4, 1])],
          ['expanded', tensorOps('FloatStorage', '0', 12, 5, [2, 2], [0, 1])],
        ]),
        { '0': iota12 },
      ),
    );
    expect(values(sd.get('every_other'))).toEqual([2, 4, 6]);
    expect(values(sd.get('column'))).toEqual([3, 7, 11]);
    expect(values(sd.get('expanded'))).toEqual([5, 6, 5, 6]);
    const full = sd.get('full') as RawTensor;
    expect(values(full)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    new Float32Array(full.data.buffer, full.data.byteOffset, 12).fill(-1);
    expect(values(sd.get('every_other'))).toEqual([2, 4, 6]);
  });

  it('reads 0-d scalars, empty tensors and Parameters', async () => {
    const longs = new Uint8Array(new BigInt64Array([10n, 20n, 30n, -40n]).buffer);
    const param = [
      ...global('torch._utils', '_rebuild_parameter'),
      MARK,
      ...tensorOps('FloatStorage', '1', 2, 0, [2], [1]),
      0x88,
      ...global('collections', 'OrderedDict'),
      EMPTY_TUPLE,
      REDUCE,
      0x74,
      REDUCE,
    ];
    const sd = await readStateDict(
      torchZip(
        dictPickle([
          ['scalar', tensorOps('LongStorage', '0', 4, 3, [], [])],
          ['empty', tensorOps('FloatStorage', '2', 0, 0, [0, 3], [3, 1])],
          ['param', param],
        ]),
        { '0': longs, '1': f32Bytes([0.5, 0.25]), '2': new Uint8Array(0) },
      ),
    );
    expect(sd.get('scalar')).toMatchObject({ dtype: 'int64', shape: [] });
    expect(values(sd.get('scalar'))).toEqual([-40]);
    expect(sd.get('empty')).toMatchObject({ dtype: 'float32', shape: [0, 3] });
    expect(sd.get('empty')?.data.byteLength).toBe(0);
    expect(values(sd.get('param'))).toEqual([0.5, 0.25]);
  });

  it.each([
    ['DoubleStorage', 'float64', new Uint8Array(new Float64Array([1.25, -3]).buffer), [1.25, -3]],
    ['HalfStorage', 'float16', new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer), [1, -2]],
    ['BFloat16Storage', 'bfloat16', new Uint8Array(new Uint16Array([0x3f80, 0xc040]).buffer), [1, -3]],
    ['LongStorage', 'int64', new Uint8Array(new BigInt64Array([7n, -9n]).buffer), [7, -9]],
    ['IntStorage', 'int32', new Uint8Array(new Int32Array([70000, -5]).buffer), [70000, -5]],
    ['ShortStorage', 'int16', new Uint8Array(new Int16Array([300, -300]).buffer), [300, -300]],
    ['CharStorage', 'int8', new Uint8Array([0x7f, 0x80]), [127, -128]],
    ['ByteStorage', 'uint8', new Uint8Array([0, 255]), [0, 255]],
    ['BoolStorage', 'bool', new Uint8Array([1, 0]), [1, 0]],
  ] as const)('reads %s as %s', async (cls, dtype, bytes, want) => {
    const sd = await readStateDict(torchZip(dictPickle([['t', tensorOps(cls, '0', 2, 0, [2], [1])]]), { '0': bytes }));
    expect(sd.get('t')?.dtype).toBe(dtype);
    expect(values(sd.get('t'))).toEqual(want);
  });

  it("swaps bytes when the archive's byteorder record says 'big'", async () => {
    const be = new Uint8Array(8);
    new DataView(be.buffer).setFloat32(0, 1.5, false);
    new DataView(be.buffer).setFloat32(4, -7, false);
    const zip = writeTorchZip([
      { name: 'a/byteorder', data: new TextEncoder().encode('big') },
      { name: 'a/data.pkl', data: dictPickle([['t', tensorOps('FloatStorage', '0', 2, 0, [2], [1])]]) },
      { name: 'a/data/0', data: be },
    ]);
    expect(values((await readStateDict(zip)).get('t'))).toEqual([1.5, -7]);
  });

  it('returns the whole object tree from readTorchFile, including non-tensor entries', async () => {
    const pkl = pk(
      ...PROTO2,
      EMPTY_DICT,
      ...str('steps'),
      EMPTY_LIST,
      ...int(1),
      0x61,
      0x73,
      ...str('dt'),
      ...global('torch', 'float16'),
      0x73,
      ...str('size'),
      ...global('torch', 'Size'),
      ...tuple(tuple(int(2), int(3))),
      REDUCE,
      0x73,
      STOP,
    );
    const tree = (await readTorchFile(torchZip(pkl, {}))) as Map<string, unknown>;
    expect([...tree]).toEqual([
      ['steps', [1]],
      ['dt', 'float16'],
      ['size', [2, 3]],
    ]);
  });
});

describe('legacy format with storage views', () => {
  // Two tensors on views of one root storage, as pre-1.6 torch.save wrote shared storages.
  const magic = pk(...PROTO2, 0x8a, 10, [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19], STOP);
  const header = pk(
    magic,
    ...PROTO2,
    ...int(1001),
    STOP,
    ...PROTO2,
    EMPTY_DICT,
    ...str('little_endian'),
    0x88,
    0x73,
    STOP,
  );
  const viewTensor = (view: string, off: number, n: number) => [
    ...global('torch._utils', '_rebuild_tensor_v2'),
    MARK,
    ...tuple(
      str('storage'),
      global('torch', 'FloatStorage'),
      str('root'),
      str('cpu'),
      int(6),
      tuple(str(view), int(off), int(n)),
    ),
    0x51,
    ...int(0),
    ...tuple(int(n)),
    ...tuple(int(1)),
    0x89,
    ...global('collections', 'OrderedDict'),
    EMPTY_TUPLE,
    REDUCE,
    0x74,
    REDUCE,
  ];
  const main = pk(
    ...PROTO2,
    EMPTY_DICT,
    MARK,
    ...str('a'),
    ...viewTensor('v1', 0, 2),
    ...str('b'),
    ...viewTensor('v2', 3, 3),
    0x75,
    STOP,
  );
  const keys = pk(...PROTO2, EMPTY_LIST, ...str('root'), 0x61, STOP);
  const count = new Uint8Array(new BigInt64Array([6n]).buffer);
  const file = pk(header, main, keys, count, f32Bytes([1, 2, 3, 4, 5, 6]));

  it('is sniffed as legacy and reads each view of the root storage', async () => {
    expect(sniffFormat(file, file.length)).toBe('legacy');
    const sd = await readStateDict(file);
    expect(values(sd.get('a'))).toEqual([1, 2]);
    expect(values(sd.get('b'))).toEqual([4, 5, 6]);
  });
});

describe('paths', () => {
  it('say what is wrong with a missing file or a folder', async () => {
    await expect(readTorchFile('/nonexistent/weights.pt')).rejects.toThrow(
      /Cannot open checkpoint \/nonexistent\/weights\.pt: no such file/,
    );
    await expect(readTorchFile(__dirname)).rejects.toThrow(/not a regular file/);
  });
});
