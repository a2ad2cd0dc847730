import { StateDictError } from './errors';
import {
  addPrefix,
  assertLoadable,
  dropKeys,
  hwioToOihw,
  linearToTfjs,
  linearToTorch,
  loadReport,
  oihwToHwio,
  renameKeys,
  selectKeys,
  stripPrefix,
  type StateDict,
} from './state-dict';
import { fromFloat32, rawTensorsEqual, toFloat32, transposeRaw } from './tensor';

const iota = (shape: number[]) =>
  fromFloat32(
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i),
    shape,
  );
const t = (shape: number[]) => iota(shape);

describe('layout conversion', () => {
  it('oihwToHwio puts w[o][i][h][w] at [h][w][i][o] (transpose [2, 3, 1, 0])', () => {
    const [O, I, H, W] = [2, 3, 2, 4];
    const src = iota([O, I, H, W]);
    const out = oihwToHwio(src);
    expect(out.shape).toEqual([H, W, I, O]);
    const v = toFloat32(out);
    const s = toFloat32(src);
    for (let o = 0; o < O; o++)
      for (let i = 0; i < I; i++)
        for (let h = 0; h < H; h++)
          for (let w = 0; w < W; w++) expect(v[((h * W + w) * I + i) * O + o]).toBe(s[((o * I + i) * H + h) * W + w]);
    expect(rawTensorsEqual(hwioToOihw(out), src)).toBe(true);
  });

  it('linear [out, in] <-> dense [in, out]', () => {
    const w = iota([2, 3]); // [[0,1,2],[3,4,5]]
    const k = linearToTfjs(w);
    expect(k.shape).toEqual([3, 2]);
    expect(Array.from(toFloat32(k))).toEqual([0, 3, 1, 4, 2, 5]);
    expect(rawTensorsEqual(linearToTorch(k), w)).toBe(true);
  });

  it('keeps dtype and works on 8-byte elements', () => {
    const longs = {
      dtype: 'int64' as const,
      shape: [2, 2],
      data: new Uint8Array(new BigInt64Array([1n, 2n, 3n, 4n]).buffer),
    };
    const tr = transposeRaw(longs, [1, 0]);
    expect(tr.dtype).toBe('int64');
    expect(Array.from(new BigInt64Array(tr.data.slice().buffer))).toEqual([1n, 3n, 2n, 4n]);
  });

  it('rejects wrong ranks with the expected layout in the message', () => {
    expect(() => oihwToHwio(iota([2, 3]))).toThrow(/expected a 4-D conv kernel \[out, in, kH, kW\], got \[2, 3\]/);
    expect(() => linearToTfjs(iota([2, 3, 4]))).toThrow(/expected a 2-D weight/);
    expect(() => transposeRaw(iota([2, 3]), [0, 0])).toThrow(/not a permutation/);
  });
});

describe('key helpers', () => {
  const sd: StateDict = new Map([
    ['module.conv1.weight', t([1])],
    ['module.fc_1.weight', t([2])],
    ['module.fc_1.bias', t([3])],
    ['other', t([4])],
  ]);

  it('strip and add prefixes, keeping order and unprefixed keys', () => {
    const s = stripPrefix(sd);
    expect([...s.keys()]).toEqual(['conv1.weight', 'fc_1.weight', 'fc_1.bias', 'other']);
    expect(s.get('conv1.weight')).toBe(sd.get('module.conv1.weight'));
    expect([...addPrefix(s, 'module.').keys()]).toEqual([
      'module.conv1.weight',
      'module.fc_1.weight',
      'module.fc_1.bias',
      'module.other',
    ]);
  });

  it('select, drop and rename keys', () => {
    expect([...selectKeys(sd, /^module\.fc_1\./).keys()]).toEqual(['module.fc_1.weight', 'module.fc_1.bias']);
    expect([...selectKeys(sd, ['other']).keys()]).toEqual(['other']);
    expect([...dropKeys(stripPrefix(sd), (k) => k.startsWith('fc_')).keys()]).toEqual(['conv1.weight', 'other']);
    expect([...renameKeys(sd, { other: 'renamed' }).keys()]).toEqual([
      'module.conv1.weight',
      'module.fc_1.weight',
      'module.fc_1.bias',
      'renamed',
    ]);
    expect([...renameKeys(sd, (k) => (k === 'other' ? null : k.toUpperCase())).keys()]).toEqual([
      'MODULE.CONV1.WEIGHT',
      'MODULE.FC_1.WEIGHT',
      'MODULE.FC_1.BIAS',
    ]);
    expect(() => renameKeys(sd, () => 'same')).toThrow(
      /maps both 'module.conv1.weight' and 'module.fc_1.weight' to 'same'/,
    );
  });
});

describe('loadReport', () => {
  const expected = { 'a.weight': [2, 3], 'a.bias': [2], 'b.weight': [4] };
  const actual: StateDict = new Map([
    ['a.weight', t([2, 3])],
    ['a.bias', t([3])],
    ['extra', t([1])],
  ]);

  it('lists missing, unexpected and shape-mismatched keys', () => {
    const r = loadReport(expected, actual);
    expect(r.missing).toEqual(['b.weight']);
    expect(r.unexpected).toEqual(['extra']);
    expect(r.shapeMismatches).toEqual([{ key: 'a.bias', expected: [2], actual: [3] }]);
    expect(r.matched).toEqual(['a.weight']);
    expect(r.ok).toBe(false);
    expect(r.message).toContain('Missing key(s) in state_dict: "b.weight".');
    expect(r.message).toContain('Unexpected key(s) in state_dict: "extra".');
    expect(r.message).toContain(
      'size mismatch for a.bias: copying a param with shape [3] from checkpoint, the shape in current model is [2].',
    );
    expect(() => assertLoadable(r)).toThrow(StateDictError);
  });

  it('non-strict ignores missing/unexpected keys but never shape mismatches (as PyTorch)', () => {
    expect(loadReport(expected, actual, { strict: false }).ok).toBe(false);
    const fixed = new Map(actual).set('a.bias', t([2]));
    const r = loadReport(expected, fixed, { strict: false });
    expect([r.ok, r.missing, r.unexpected]).toEqual([true, ['b.weight'], ['extra']]);
    expect(() => assertLoadable(r)).not.toThrow();
    expect(loadReport(new Map([['x', t([1])]]), new Map([['x', t([1])]])).message).toBe('');
  });
});
