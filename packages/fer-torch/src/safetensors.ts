import { SafetensorsError } from './errors';
import { DTYPE_SIZE, numel, type DType, type RawTensor } from './tensor';

/**
 * safetensors: 8-byte little-endian header length, a JSON header `{name: {dtype, shape, data_offsets}}` with an
 * optional `__metadata__`, then the byte buffer. Everything is validated before use: a hostile file cannot make us
 * allocate or read past what it really holds.
 */
export interface SafetensorsFile {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

/** Header larger than this is refused (the format's reference implementation uses 100 MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const ST_DTYPES: Readonly<Record<string, DType>> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const ST_NAMES: Readonly<Record<DType, string>> = Object.fromEntries(
  Object.entries(ST_DTYPES).map(([k, v]) => [v, k]),
) as Record<DType, string>;

export { SafetensorsError };

/** Parses a safetensors buffer. Tensors are views into `bytes` (no copy); copy them if `bytes` will be reused. */
export function parseSafetensors(bytes: Uint8Array, source = 'buffer'): SafetensorsFile {
  const fail = (msg: string, cause?: unknown) =>
    new SafetensorsError(`${source}: ${msg}`, cause === undefined ? {} : { cause });
  if (bytes.byteLength < 8) throw fail(`expected at least 8 bytes (header length), got ${bytes.byteLength}.`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = dv.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES))
    throw fail(`header of ${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit.`);
  const hl = Number(headerLen);
  if (8 + hl > bytes.byteLength)
    throw fail(`header claims ${hl} bytes but the file has only ${bytes.byteLength - 8} after the length.`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + hl)));
  } catch (e) {
    throw fail(`header is not valid UTF-8 JSON (${(e as Error).message}).`, e);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw fail('header must be a JSON object.');
  const body = bytes.subarray(8 + hl);
  const tensors = new Map<string, RawTensor>();
  const ranges: Array<[number, number, string]> = [];
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (info === null || typeof info !== 'object') throw fail('__metadata__ must be an object of strings.');
      metadata = Object.fromEntries(Object.entries(info as object).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const t = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof t.dtype === 'string' ? ST_DTYPES[t.dtype] : undefined;
    if (!dtype)
      throw fail(
        `tensor '${name}' has unsupported dtype ${JSON.stringify(t.dtype)}; expected one of ${Object.keys(ST_DTYPES).join(', ')}.`,
      );
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail(`tensor '${name}' has an invalid shape ${JSON.stringify(t.shape)}.`);
    }
    const offs = t.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offs[0] > offs[1]
    ) {
      throw fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}.`);
    }
    const [begin, end] = offs as [number, number];
    const shape = t.shape as number[];
    const want = numel(shape) * DTYPE_SIZE[dtype];
    if (end - begin !== want)
      throw fail(
        `tensor '${name}' (${dtype} [${shape.join(', ')}]) needs ${want} bytes but its offsets span ${end - begin}.`,
      );
    if (end > body.byteLength)
      throw fail(`tensor '${name}' ends at byte ${end}, past the ${body.byteLength}-byte data section.`);
    ranges.push([begin, end, name]);
    tensors.set(name, { dtype, shape: [...shape], data: body.subarray(begin, end) });
  }
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  // As the reference implementation requires: tensors tile the data section exactly, without overlaps or holes.
  let covered = 0;
  for (let i = 0; i < ranges.length; i++) {
    const [begin, end, name] = ranges[i];
    if (begin < covered) throw fail(`tensors '${ranges[i - 1][2]}' and '${name}' overlap.`);
    if (begin > covered)
      throw fail(
        `bytes ${covered}..${begin} of the data section belong to no tensor (before '${name}'); the offsets are corrupt.`,
      );
    covered = end;
  }
  if (covered !== body.byteLength) {
    throw fail(
      `the data section has ${body.byteLength} bytes but the tensors cover ${covered}; the file is truncated or has trailing bytes.`,
    );
  }
  return { tensors, metadata };
}

/**
 * Serialises tensors with an 8-byte-aligned header. Like the reference (Rust) writer, tensors are ordered by element
 * size, largest first, then by name, so every tensor starts at a multiple of its element size in the file and a
 * reader can view it as a typed array without copying.
 */
export function serializeSafetensors(
  tensors: Map<string, RawTensor> | Record<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort(
    ([a, ta], [b, tb]) => DTYPE_SIZE[tb.dtype] - DTYPE_SIZE[ta.dtype] || (a < b ? -1 : a > b ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const size = numel(t.shape) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== size)
      throw new SafetensorsError(
        `tensor '${name}' has ${t.data.byteLength} bytes, expected ${size} for ${t.dtype} [${t.shape.join(', ')}].`,
      );
    header[name] = { dtype: ST_NAMES[t.dtype], shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.byteLength % 8)) % 8;
  if (pad) json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let pos = 8 + json.byteLength;
  for (const [, t] of entries) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}
