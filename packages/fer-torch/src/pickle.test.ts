import { PICKLES_BY_PROTOCOL, PICKLE_OBJECT_CANON } from '../test/fixtures/pickles';
import {
  EMPTY_DICT,
  EMPTY_LIST,
  MARK,
  NEWOBJ,
  PROTO2,
  REDUCE,
  SETITEMS,
  STOP,
  APPENDS,
  BUILD,
  EMPTY_TUPLE,
  global,
  hexBytes,
  int,
  pk,
  str,
  float,
  NONE,
  NEWTRUE,
} from '../test/helpers';
import { TorchFormatError, UnsafePickleError } from './errors';
import { PickledObject, PyDict, opcodeName, unpickle } from './pickle';

/** Canonical form mirroring `canon()` in test/fixtures/make_pickles.py. */
function canon(x: unknown): unknown {
  if (x === null || typeof x === 'boolean') return x;
  if (typeof x === 'bigint') return { i: String(x) };
  if (typeof x === 'number') {
    if (Object.is(x, -0)) return { f: '-0' };
    return Number.isInteger(x) ? { i: String(x) } : { f: String(x) };
  }
  if (typeof x === 'string') return { s: x };
  if (x instanceof Uint8Array) return { b: Buffer.from(x).toString('hex') };
  if (Array.isArray(x)) return x.map(canon);
  if (x instanceof PyDict)
    return { [x.kind === 'OrderedDict' ? 'od' : 'd']: [...x].map(([k, v]) => [canon(k), canon(v)]) };
  if (x instanceof Set) {
    const items = [...x].map(canon);
    return { set: items.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) };
  }
  throw new Error(`unexpected ${Object.prototype.toString.call(x)}`);
}

describe('unpickle: CPython pickles of one object at every protocol', () => {
  it.each([0, 1, 2, 3, 4, 5])('protocol %i decodes to the same canonical value CPython computed', (p) => {
    const bytes = hexBytes(PICKLES_BY_PROTOCOL[p]);
    const { value, end } = unpickle(bytes);
    expect(end).toBe(bytes.length);
    expect(JSON.stringify(canon(value))).toBe(PICKLE_OBJECT_CANON);
    // memo references keep identity: the two entries of 'shared' are one list
    const shared = (value as PyDict).get('shared') as unknown[][];
    expect(shared[0]).toBe(shared[1]);
  });
});

describe('unpickle: opcodes', () => {
  it('reads NONE, NEWTRUE, BINFLOAT (big-endian), LONG1, lists with APPENDS, TUPLE3', () => {
    const bytes = pk(
      ...PROTO2,
      EMPTY_LIST,
      MARK,
      NONE,
      NEWTRUE,
      ...float(0.1),
      0x8a,
      9,
      [0, 0, 0, 0, 0, 0, 0, 0, 1],
      ...int(1),
      ...int(2),
      ...int(3),
      0x87,
      APPENDS,
      STOP,
    );
    expect(unpickle(bytes).value).toEqual([null, true, 0.1, 2n ** 64n, [1, 2, 3]]);
  });

  it('builds an OrderedDict and keeps BUILD attributes (the state_dict _metadata)', () => {
    const bytes = pk(
      ...PROTO2,
      ...global('collections', 'OrderedDict'),
      EMPTY_TUPLE,
      REDUCE,
      MARK,
      ...str('b'),
      ...int(1),
      ...str('a'),
      ...int(2),
      SETITEMS,
      EMPTY_DICT,
      ...str('_metadata'),
      EMPTY_DICT,
      0x73,
      BUILD,
      STOP,
    );
    const od = unpickle(bytes).value as PyDict;
    expect(od.kind).toBe('OrderedDict');
    expect([...od.keys()]).toEqual(['b', 'a']);
    expect(od.attributes.get('_metadata')).toBeInstanceOf(PyDict);
  });

  it('names opcodes for diagnostics', () => {
    expect([0x71, 0x8a, 0x95, 0x93].map(opcodeName)).toEqual(['BINPUT', 'LONG1', 'FRAME', 'STACK_GLOBAL']);
  });

  it('refuses truncated and malformed streams with a TorchFormatError naming the opcode and byte', () => {
    expect(() => unpickle(pk(...PROTO2, 0x58, [0xff, 0xff, 0xff, 0x7f], 'abc'))).toThrow(
      /truncated.*BINUNICODE at byte 2/,
    );
    expect(() => unpickle(pk(...PROTO2, 0x8e, [0, 0, 0, 0, 0, 0, 0, 0x10]))).toThrow(TorchFormatError);
    expect(() => unpickle(pk(...PROTO2, ...int(1)))).toThrow(/truncated/);
    expect(() => unpickle(pk(...PROTO2, 0x68, 5, STOP))).toThrow(/memo index 5 was never stored/);
    expect(() => unpickle(pk(...PROTO2, 0x73, STOP))).toThrow(/stack underflow/);
    expect(() => unpickle(pk(...PROTO2, 0xff))).toThrow(/unknown opcode byte 0xff/);
    expect(() => unpickle(pk(0x80, 9))).toThrow(/unsupported pickle protocol 9/);
    expect(() => unpickle(pk(...PROTO2, 0x8b, [1, 0, 1, 0]))).toThrow(/larger than any checkpoint needs/);
  });
});

describe('unpickle: unknown globals', () => {
  // A training checkpoint's RecorderMeter: NEWOBJ on a __main__ class, then BUILD with its __dict__.
  const recorder = pk(
    ...PROTO2,
    ...global('__main__', 'RecorderMeter'),
    EMPTY_TUPLE,
    NEWOBJ,
    EMPTY_DICT,
    MARK,
    ...str('total_epoch'),
    ...int(40),
    ...str('best'),
    ...float(0.61),
    SETITEMS,
    BUILD,
    STOP,
  );

  it('refuses them by default, saying nothing ran and how to opt in', () => {
    expect(() => unpickle(recorder)).toThrow(UnsafePickleError);
    expect(() => unpickle(recorder)).toThrow(
      /'__main__\.RecorderMeter'.*not on the allow-list.*Nothing was executed.*unknownGlobals: 'inert'/s,
    );
  });

  it("keeps them as inert records with unknownGlobals: 'inert'", () => {
    const obj = unpickle(recorder, { unknownGlobals: 'inert' }).value as PickledObject;
    expect(obj).toBeInstanceOf(PickledObject);
    expect([obj.module, obj.name, obj.args]).toEqual(['__main__', 'RecorderMeter', []]);
    expect([...(obj.state as PyDict).entries()]).toEqual([
      ['total_epoch', 40],
      ['best', 0.61],
    ]);
  });

  it('records REDUCE on an inert global (e.g. a numpy scalar) without calling it', () => {
    const bytes = pk(
      ...PROTO2,
      ...global('numpy.core.multiarray', 'scalar'),
      MARK,
      ...str('f8'),
      ...str('raw'),
      0x74,
      REDUCE,
      STOP,
    );
    const obj = unpickle(bytes, { unknownGlobals: 'inert' }).value as PickledObject;
    expect([obj.qualifiedName, obj.args]).toEqual(['numpy.core.multiarray.scalar', ['f8', 'raw']]);
  });
});

describe('inert mode and harmless builtins', () => {
  it('keeps defaultdict(list) as an inert record, but only in inert mode', () => {
    const bytes = pk(
      ...PROTO2,
      ...global('collections', 'defaultdict'),
      ...global('builtins', 'list'),
      0x85,
      REDUCE,
      STOP,
    );
    expect(() => unpickle(bytes)).toThrow(/'collections\.defaultdict'.*not on the allow-list/);
    const obj = unpickle(bytes, { unknownGlobals: 'inert' }).value as PickledObject;
    expect(obj.qualifiedName).toBe('collections.defaultdict');
    expect((obj.args[0] as { qualifiedName: string }).qualifiedName).toBe('builtins.list');
  });
});
