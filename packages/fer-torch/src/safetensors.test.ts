import { MAX_HEADER_BYTES, parseSafetensors, serializeSafetensors } from './safetensors';
import { DTYPE_SIZE, fromFloat32, rawTensorsEqual, type RawTensor } from './tensor';

describe('safetensors', () => {
  const tensors = new Map<string, RawTensor>([
    ['a.mask', { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) }],
    ['b.weight', fromFloat32([1, 2, 3, 4, 5, 6], [2, 3])],
    ['c.count', { dtype: 'int64', shape: [], data: new Uint8Array(new BigInt64Array([9n]).buffer) }],
    ['d.half', { dtype: 'float16', shape: [1], data: new Uint8Array([0, 0x3c]) }],
  ]);

  it('round-trips every tensor and the metadata', () => {
    const back = parseSafetensors(serializeSafetensors(tensors, { format: 'pt' }));
    expect(back.metadata).toEqual({ format: 'pt' });
    for (const [k, t] of tensors) expect([k, rawTensorsEqual(back.tensors.get(k) as RawTensor, t)]).toEqual([k, true]);
  });

  it('pads the header to 8 bytes and aligns every tensor to its element size (largest dtypes first)', () => {
    const bytes = serializeSafetensors(tensors);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    const order = Object.entries(header as Record<string, { dtype: string; data_offsets: [number, number] }>)
      .sort((x, y) => x[1].data_offsets[0] - y[1].data_offsets[0])
      .map(([k]) => k);
    expect(order).toEqual(['c.count', 'b.weight', 'd.half', 'a.mask']);
    for (const [k, t] of tensors)
      expect([k, (8 + n + header[k].data_offsets[0]) % DTYPE_SIZE[t.dtype]]).toEqual([k, 0]);
  });

  it('caps the header at 100 MB', () => {
    expect(MAX_HEADER_BYTES).toBe(100 * 1024 * 1024);
  });
});
