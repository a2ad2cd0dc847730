/** Dtypes that PyTorch checkpoints and safetensors files carry. */
export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
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
  if (f.length !== numel(shape)) throw new RangeError(`fromFloat32: ${f.length} values do not fill shape [${shape.join(', ')}].`);
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
