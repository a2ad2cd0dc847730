/** Dtypes that PyTorch checkpoints and safetensors files carry. */
export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/**
 * A framework-free tensor: a contiguous C-order byte buffer with dtype and shape.
 * Conversion to tfjs happens at the model boundary; this package does not depend on tfjs.
 */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  /** Contiguous C-order little-endian bytes, exactly `numel(shape) * DTYPE_SIZE[dtype]` long. */
  data: Uint8Array;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Values as a Float32Array (float16/bfloat16/float64/int types are converted; int64 beyond 2^53 loses precision). */
export function toFloat32(t: RawTensor): Float32Array {
  const n = numel(t.shape);
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'float32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case 'float64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'float16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      break;
    case 'bfloat16':
      for (let i = 0; i < n; i++) {
        const b = new DataView(new ArrayBuffer(4));
        b.setUint32(0, dv.getUint16(i * 2, true) << 16, true);
        out[i] = b.getFloat32(0, true);
      }
      break;
    case 'int64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case 'int32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case 'int16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case 'int8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    case 'uint8':
    case 'bool':
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
      break;
  }
  return out;
}

/** A float32 RawTensor over a copy of `values`. */
export function fromFloat32(values: Float32Array | number[], shape: number[]): RawTensor {
  const f = values instanceof Float32Array ? values : Float32Array.from(values);
  if (f.length !== numel(shape))
    throw new RangeError(`fromFloat32: ${f.length} values do not fill shape [${shape.join(', ')}].`);
  const data = new Uint8Array(f.byteLength);
  new Float32Array(data.buffer).set(f);
  return { dtype: 'float32', shape: [...shape], data };
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Checks that `t.data` holds exactly the bytes its dtype and shape need. */
export function assertRawTensor(t: RawTensor, what = 'tensor'): void {
  if (!t || !(t.data instanceof Uint8Array) || !Array.isArray(t.shape) || !(t.dtype in DTYPE_SIZE)) {
    throw new TypeError(`${what}: expected a RawTensor { dtype, shape, data: Uint8Array }.`);
  }
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new RangeError(`${what}: invalid shape [${t.shape.join(', ')}].`);
  const want = numel(t.shape) * DTYPE_SIZE[t.dtype];
  if (t.data.byteLength !== want) {
    throw new RangeError(`${what}: ${t.dtype} [${t.shape.join(', ')}] needs ${want} bytes, got ${t.data.byteLength}.`);
  }
}

/** C-order (contiguous) strides of `shape`, in elements. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/**
 * Gathers a strided view (`offset`, `shape`, `stride` in elements, as torch stores them) of `storage` into a new
 * contiguous C-order buffer. The caller has checked that every index is inside `storage`.
 */
export function gatherStrided(
  storage: Uint8Array,
  itemSize: number,
  offset: number,
  shape: readonly number[],
  stride: readonly number[],
): Uint8Array {
  const n = numel(shape);
  const out = new Uint8Array(n * itemSize);
  if (n === 0) return out;
  const rank = shape.length;
  if (rank === 0) {
    out.set(storage.subarray(offset * itemSize, (offset + 1) * itemSize));
    return out;
  }
  // Copy runs along the innermost dimension; contiguous innermost runs copy as one block.
  const inner = shape[rank - 1];
  const innerStride = stride[rank - 1];
  const idx = new Array<number>(rank - 1).fill(0);
  let o = 0;
  for (;;) {
    let base = offset;
    for (let d = 0; d < rank - 1; d++) base += idx[d] * stride[d];
    if (innerStride === 1) {
      out.set(storage.subarray(base * itemSize, (base + inner) * itemSize), o);
      o += inner * itemSize;
    } else {
      for (let i = 0; i < inner; i++) {
        const b = (base + i * innerStride) * itemSize;
        for (let k = 0; k < itemSize; k++) out[o++] = storage[b + k];
      }
    }
    let d = rank - 2;
    while (d >= 0) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
  return out;
}

/** `tf.transpose` on raw bytes: output dim i is input dim `perm[i]`. Returns a new tensor. */
export function transposeRaw(t: RawTensor, perm: readonly number[]): RawTensor {
  assertRawTensor(t);
  const rank = t.shape.length;
  if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new RangeError(
      `transpose: perm [${perm.join(', ')}] is not a permutation of the ${rank} dims of [${t.shape.join(', ')}].`,
    );
  }
  const inStrides = contiguousStrides(t.shape);
  const shape = perm.map((p) => t.shape[p]);
  const stride = perm.map((p) => inStrides[p]);
  return { dtype: t.dtype, shape, data: gatherStrided(t.data, DTYPE_SIZE[t.dtype], 0, shape, stride) };
}

/** Reverses the byte order of every element in place (big-endian storages). */
export function swapBytesInPlace(data: Uint8Array, itemSize: number): void {
  if (itemSize === 1) return;
  for (let i = 0; i + itemSize <= data.length; i += itemSize) {
    for (let a = i, b = i + itemSize - 1; a < b; a++, b--) {
      const t = data[a];
      data[a] = data[b];
      data[b] = t;
    }
  }
}

/** True when both tensors have the same dtype, shape and bytes. */
export function rawTensorsEqual(a: RawTensor, b: RawTensor): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i]))
    return false;
  if (a.data.byteLength !== b.data.byteLength) return false;
  for (let i = 0; i < a.data.byteLength; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}
