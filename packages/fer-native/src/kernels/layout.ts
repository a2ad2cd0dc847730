import * as tf from '@tensorflow/tfjs-core';
import type { NativeBackend } from './backend-type';
import { nativeKernel } from './ops-common';

/**
 * Tile, Transpose, Concat, PadV2, Slice and SplitV on the addon (native/layout.cc): one threaded strided copy of
 * float32 or int32 data, exact by construction. Other dtypes (bool, string, complex) and float32 tensors holding other
 * data stay with tfjs-backend-cpu's kernels.
 */

type Data32 = Float32Array | Int32Array;

/** The tensor's data when it is float32 in a Float32Array or int32 in an Int32Array (what the copy can move). */
function data32(backend: NativeBackend, t: tf.TensorInfo): Data32 | null {
  const v = backend.data.get(t.dataId)?.values;
  if (t.dtype === 'float32' && v instanceof Float32Array) return v;
  if (t.dtype === 'int32' && v instanceof Int32Array) return v;
  return null;
}

/** An uninitialised output of the input's kind from the backend's pool (every element is written). */
function like(backend: NativeBackend, v: Data32, n: number): Data32 {
  return v instanceof Float32Array ? backend.pool.float32(n) : backend.pool.int32(n);
}

const tile = nativeKernel('Tile', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const xv = data32(backend, x);
  const reps = (attrs as unknown as tf.TileAttrs).reps;
  if (!xv || reps.length !== x.shape.length || x.shape.length === 0) return null;
  const shape = x.shape.map((d, i) => d * reps[i]);
  const n = tf.util.sizeFromShape(shape);
  if (n === 0) return null;
  const out = like(backend, xv, n);
  backend.addon.opsTile(xv, x.shape, reps, out);
  return backend.makeTensorInfo(shape, x.dtype, out);
});

const transpose = nativeKernel('Transpose', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const xv = data32(backend, x);
  const perm = (attrs as unknown as tf.TransposeAttrs).perm;
  if (!xv || perm.length !== x.shape.length || xv.length === 0) return null;
  const shape = perm.map((p) => x.shape[p]);
  const out = like(backend, xv, xv.length);
  backend.addon.opsTranspose(xv, x.shape, perm, out);
  return backend.makeTensorInfo(shape, x.dtype, out);
});

const concat = nativeKernel('Concat', ({ inputs, backend, attrs }) => {
  const ts = (Array.isArray(inputs) ? inputs : Object.values(inputs)) as tf.TensorInfo[];
  if (ts.length < 2) return null;
  const axis = tf.util.parseAxisParam((attrs as unknown as tf.ConcatAttrs).axis, ts[0].shape)[0];
  const vs = ts.map((t) => data32(backend, t));
  const kind = vs[0]?.constructor;
  if (vs.some((v) => !v || v.length === 0 || v.constructor !== kind) || ts.some((t) => t.dtype !== ts[0].dtype)) {
    return null;
  }
  tf.backend_util.assertParamsConsistent(
    ts.map((t) => t.shape),
    axis,
  );
  const shape = tf.backend_util.computeOutShape(
    ts.map((t) => t.shape),
    axis,
  );
  const outer = tf.util.sizeFromShape(ts[0].shape.slice(0, axis));
  const inner = ts.map((t) => tf.util.sizeFromShape(t.shape.slice(axis)));
  const out = like(backend, vs[0]!, tf.util.sizeFromShape(shape));
  backend.addon.opsConcat2d(vs, inner, outer, out);
  return backend.makeTensorInfo(shape, ts[0].dtype, out);
});

const pad = nativeKernel('PadV2', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const xv = data32(backend, x);
  const { paddings, constantValue } = attrs as unknown as tf.PadV2Attrs;
  if (!xv || xv.length === 0 || paddings.length !== x.shape.length) return null;
  const shape = paddings.map((p, i) => p[0] + x.shape[i] + p[1]);
  if (paddings.some((p) => p[0] < 0 || p[1] < 0)) return null;
  // The constant as the output type stores it, passed as its 32 bits.
  const fill = xv instanceof Float32Array ? new Float32Array([constantValue]) : new Int32Array([constantValue]);
  const out = like(backend, xv, tf.util.sizeFromShape(shape));
  backend.addon.opsPad(
    xv,
    x.shape,
    paddings.map((p) => p[0]),
    new Uint32Array(fill.buffer)[0],
    out,
    shape,
  );
  return backend.makeTensorInfo(shape, x.dtype, out);
});

/** A slice is one contiguous run when every dim before the first sliced one is 1 (cpu then returns a view). */
function contiguousSlice(shape: number[], begin: number[], size: number[]): boolean {
  return tf.slice_util.isSliceContinous(shape, begin, size);
}

/** Slice that is not one contiguous run (those stay with cpu's kernel, which returns a zero-copy view). */
const slice = nativeKernel('Slice', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const xv = data32(backend, x);
  const { begin, size } = attrs as unknown as tf.SliceAttrs;
  if (!xv || xv.length === 0) return null;
  const [b, s] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size);
  if (contiguousSlice(x.shape, b, s) || tf.util.sizeFromShape(s) === 0) return null;
  const out = like(backend, xv, tf.util.sizeFromShape(s));
  backend.addon.opsSlice(xv, x.shape, b, s, out);
  return backend.makeTensorInfo(s, x.dtype, out);
});

/** SplitV along an inner axis (CBAM's gradient of its [max, mean] concat): one strided copy per piece. */
const splitV: tf.KernelConfig = {
  kernelName: 'SplitV',
  backendName: 'native',
  kernelFunc: (args) => {
    const backend = args.backend as NativeBackend;
    const x = args.inputs.x as tf.TensorInfo;
    const { numOrSizeSplits, axis } = args.attrs as unknown as tf.SplitVAttrs;
    const xv = data32(backend, x);
    const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, numOrSizeSplits, $axis);
    const begin = x.shape.map(() => 0);
    if (
      !xv ||
      xv.length === 0 ||
      sizes.some((n) => n === 0) ||
      contiguousSlice(x.shape, begin, sizeAt(x.shape, $axis, sizes[0]))
    ) {
      return tf.getKernel('SplitV', 'cpu')!.kernelFunc(args) as tf.TensorInfo[];
    }
    return sizes.map((n) => {
      const size = sizeAt(x.shape, $axis, n);
      const out = like(backend, xv, tf.util.sizeFromShape(size));
      backend.addon.opsSlice(xv, x.shape, begin, size, out);
      const info = backend.makeTensorInfo(size, x.dtype, out);
      begin[$axis] += n;
      return info;
    });
  },
};

function sizeAt(shape: number[], axis: number, n: number): number[] {
  const s = shape.slice();
  s[axis] = n;
  return s;
}

export const layoutKernels: tf.KernelConfig[] = [tile, transpose, concat, pad, slice, splitV];
