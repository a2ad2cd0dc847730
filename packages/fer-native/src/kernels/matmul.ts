import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeBackend } from './backend-type';
import { allFloat32, cpuKernel, f32, output } from './util';

/** Activation codes of native/matmul.cc (oneDNN eltwise post-ops); prelu is composed with cpu's Prelu kernel. */
const ACTIVATION: Record<string, number> = { linear: 0, relu: 1, relu6: 2, elu: 3, sigmoid: 4, leakyrelu: 5 };

interface Plan {
  geometry: number[];
  outShape: number[];
}

/** native/matmul.cc's geometry, or null for batch broadcasts oneDNN is not given (cpu's kernel handles those). */
function plan(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): Plan | null {
  if (a.shape.length < 2 || b.shape.length < 2) return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb || m < 1 || k < 1 || n < 1) return null; // cpu's kernel throws tfjs' own message
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = tf.util.sizeFromShape(outerA);
  const batchB = tf.util.sizeFromShape(outerB);
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return null; // cpu's kernel throws tfjs' own message
  }
  // One side a single matrix, or the same batch on both: exactly oneDNN's batch broadcast.
  const ok = batchA === 1 || batchB === 1 || (batchA === batchB && tf.util.sizeFromShape(outer) === batchA);
  if (!ok) return null;
  return { geometry: [batchA, batchB, m, k, n, transposeA ? 1 : 0, transposeB ? 1 : 0], outShape: [...outer, m, n] };
}

function withFallback(name: string, native: (args: Parameters<KernelFunc>[0]) => TensorInfo | null): KernelFunc {
  return (args) => native(args) ?? (cpuKernel(name)(args) as TensorInfo);
}

const batchMatMul: KernelFunc = withFallback(tf.BatchMatMul, ({ inputs, backend, attrs }) => {
  const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
  if (!allFloat32(a, b)) return null;
  const p = plan(a, b, transposeA, transposeB);
  if (!p) return null;
  const nb = backend as NativeBackend;
  const out = output(nb, p.outShape);
  nb.addon.matmul(f32(nb, a), f32(nb, b), out.values, p.geometry, null, 0, 0);
  return out.info;
});

const fusedMatMul: KernelFunc = withFallback(tf._FusedMatMul, ({ inputs, backend, attrs }) => {
  const { a, b, bias, preluActivationWeights } = inputs as {
    a: TensorInfo;
    b: TensorInfo;
    bias?: TensorInfo;
    preluActivationWeights?: TensorInfo;
  };
  const { transposeA, transposeB, activation, leakyreluAlpha } = attrs as unknown as {
    transposeA: boolean;
    transposeB: boolean;
    activation?: string;
    leakyreluAlpha?: number;
  };
  if (!allFloat32(a, b, bias, preluActivationWeights)) return null;
  const p = plan(a, b, transposeA, transposeB);
  if (!p) return null;
  const n = p.outShape[p.outShape.length - 1];
  // oneDNN's bias here is per output column: other broadcasts go to cpu's kernel.
  if (bias && !(bias.shape[bias.shape.length - 1] === n && tf.util.sizeFromShape(bias.shape) === n)) return null;
  const act = activation ?? 'linear';
  const code = act === 'prelu' ? 0 : ACTIVATION[act];
  if (code === undefined) return null;
  const nb = backend as NativeBackend;
  const out = output(nb, p.outShape);
  nb.addon.matmul(
    f32(nb, a),
    f32(nb, b),
    out.values,
    p.geometry,
    bias ? f32(nb, bias) : null,
    code,
    leakyreluAlpha ?? 0.2,
  );
  if (act !== 'prelu') return out.info;
  const y = cpuKernel(tf.Prelu)({ inputs: { x: out.info, alpha: preluActivationWeights! }, backend: nb, attrs: {} });
  nb.disposeIntermediateTensorInfo(out.info);
  return y as TensorInfo;
});

/** BatchMatMul (tf.matMul) and _FusedMatMul on oneDNN (native/matmul.cc). */
export const matmulKernels: KernelConfig[] = [
  { kernelName: tf.BatchMatMul, backendName: 'native', kernelFunc: batchMatMul },
  { kernelName: tf._FusedMatMul, backendName: 'native', kernelFunc: fusedMatMul },
];
