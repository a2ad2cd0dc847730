import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeBackend } from './backend-type';
import { allFloat32, cpuKernel, f32, output } from './util';

type Conv2DInfo = tf.backend_util.Conv2DInfo;
type PadAttr = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

/** Activation codes of native/conv.cc (oneDNN eltwise post-ops); prelu is composed with cpu's Prelu kernel. */
const ACTIVATION: Record<string, number> = { linear: 0, relu: 1, relu6: 2, elu: 3, sigmoid: 4, leakyrelu: 5 };

/**
 * native/conv.cc's geometry array, or null when oneDNN's output-size rule would disagree with tfjs' (then the
 * caller uses cpu's kernel). `groups` is 1, or the input channels for a depthwise convolution.
 */
function geometry(info: Conv2DInfo, groups = 1): number[] | null {
  const p = info.padInfo;
  const effH = (info.filterHeight - 1) * info.dilationHeight + 1;
  const effW = (info.filterWidth - 1) * info.dilationWidth + 1;
  if (p.top < 0 || p.left < 0 || p.bottom < 0 || p.right < 0) return null;
  if (Math.floor((info.inHeight + p.top + p.bottom - effH) / info.strideHeight) + 1 !== info.outHeight) return null;
  if (Math.floor((info.inWidth + p.left + p.right - effW) / info.strideWidth) + 1 !== info.outWidth) return null;
  return [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.outChannels,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    p.top,
    p.left,
    p.bottom,
    p.right,
    groups,
  ];
}

interface ConvAttrs {
  strides: number | [number, number];
  pad: PadAttr;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function convInfo(xShape: number[], filterShape: number[], a: ConvAttrs, depthwise = false): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    depthwise,
    'channelsLast',
  );
}

/** A kernel that runs natively when `plan` accepts the call, and cpu's kernel otherwise (NCHW, odd dtypes...). */
function withFallback(name: string, native: (args: Parameters<KernelFunc>[0]) => TensorInfo | null): KernelFunc {
  return (args) => native(args) ?? (cpuKernel(name)(args) as TensorInfo);
}

const conv2d: KernelFunc = withFallback(tf.Conv2D, ({ inputs, backend, attrs }) => {
  const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as ConvAttrs;
  if ((a.dataFormat ?? 'NHWC') !== 'NHWC' || !allFloat32(x, filter)) return null;
  const info = convInfo(x.shape, filter.shape, a);
  const geo = geometry(info);
  if (!geo) return null;
  const b = backend as NativeBackend;
  const out = output(b, info.outShape);
  b.addon.conv2d(f32(b, x), f32(b, filter), out.values, geo, null, 0, 0);
  return out.info;
});

const fusedConv2d: KernelFunc = withFallback(tf.FusedConv2D, ({ inputs, backend, attrs }) => {
  const { x, filter, bias, preluActivationWeights } = inputs as {
    x: TensorInfo;
    filter: TensorInfo;
    bias?: TensorInfo;
    preluActivationWeights?: TensorInfo;
  };
  const a = attrs as unknown as ConvAttrs & { activation: string; leakyreluAlpha?: number };
  if ((a.dataFormat ?? 'NHWC') !== 'NHWC' || !allFloat32(x, filter, bias, preluActivationWeights)) return null;
  const info = convInfo(x.shape, filter.shape, a);
  const geo = geometry(info);
  if (!geo) return null;
  // oneDNN's bias is per output channel: other broadcasts go to cpu's kernel.
  if (
    bias &&
    !(bias.shape[bias.shape.length - 1] === info.outChannels && tf.util.sizeFromShape(bias.shape) === info.outChannels)
  ) {
    return null;
  }
  const activation = a.activation ?? 'linear';
  const code = activation === 'prelu' ? 0 : ACTIVATION[activation];
  if (code === undefined) return null;
  const b = backend as NativeBackend;
  const out = output(b, info.outShape);
  b.addon.conv2d(f32(b, x), f32(b, filter), out.values, geo, bias ? f32(b, bias) : null, code, a.leakyreluAlpha ?? 0.2);
  if (activation !== 'prelu') return out.info;
  // PReLU's slope tensor may broadcast any way: cpu's Prelu kernel applies it, as tfjs' own fused path does.
  const y = cpuKernel(tf.Prelu)({ inputs: { x: out.info, alpha: preluActivationWeights! }, backend: b, attrs: {} });
  b.disposeIntermediateTensorInfo(out.info);
  return y as TensorInfo;
});

const conv2dBackpropInput: KernelFunc = withFallback(tf.Conv2DBackpropInput, ({ inputs, backend, attrs }) => {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as ConvAttrs & { inputShape: number[] };
  if ((a.dataFormat ?? 'NHWC') !== 'NHWC' || !allFloat32(dy, filter)) return null;
  const info = convInfo(a.inputShape, filter.shape, a);
  const geo = geometry(info);
  if (!geo) return null;
  const b = backend as NativeBackend;
  const out = output(b, a.inputShape);
  b.addon.conv2dBackpropInput(f32(b, dy), f32(b, filter), out.values, geo);
  return out.info;
});

const conv2dBackpropFilter: KernelFunc = withFallback(tf.Conv2DBackpropFilter, ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as ConvAttrs & { filterShape: number[] };
  if ((a.dataFormat ?? 'NHWC') !== 'NHWC' || !allFloat32(x, dy)) return null;
  const info = convInfo(x.shape, a.filterShape, a);
  const geo = geometry(info);
  if (!geo) return null;
  const b = backend as NativeBackend;
  const out = output(b, a.filterShape);
  b.addon.conv2dBackpropFilter(f32(b, x), f32(b, dy), out.values, geo);
  return out.info;
});

/** Conv2D, FusedConv2D, Conv2DBackpropInput, Conv2DBackpropFilter on oneDNN (native/conv.cc). */
export const convKernels: KernelConfig[] = [
  { kernelName: tf.Conv2D, backendName: 'native', kernelFunc: conv2d },
  { kernelName: tf.FusedConv2D, backendName: 'native', kernelFunc: fusedConv2d },
  { kernelName: tf.Conv2DBackpropInput, backendName: 'native', kernelFunc: conv2dBackpropInput },
  { kernelName: tf.Conv2DBackpropFilter, backendName: 'native', kernelFunc: conv2dBackpropFilter },
];
