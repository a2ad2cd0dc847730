/**
 * How a PyTorch state-dict entry becomes a tfjs weight: the layout change it needs.
 * - `conv`: OIHW → HWIO (`transpose [2, 3, 1, 0]`)
 * - `linear`: [out, in] → [in, out]
 * - `copy`: same layout (biases, BN vectors)
 * - `count`: int64 scalar → float32 scalar (`num_batches_tracked`)
 */
export type TorchTransform = 'conv' | 'linear' | 'copy' | 'count';

/** One weight of a layer: PyTorch key suffix, tfjs weight suffix (after `<layer>/`), transform. */
export interface TorchKeySpec {
  torch: string;
  tfjs: string;
  transform: TorchTransform;
}

/** `torch.nn.BatchNorm2d` ↔ `TorchBatchNorm` (weights in `TorchBatchNorm`'s order). */
export const TORCH_BN_KEYS: readonly TorchKeySpec[] = [
  { torch: 'weight', tfjs: 'gamma', transform: 'copy' },
  { torch: 'bias', tfjs: 'beta', transform: 'copy' },
  { torch: 'running_mean', tfjs: 'running_mean', transform: 'copy' },
  { torch: 'running_var', tfjs: 'running_var', transform: 'copy' },
  { torch: 'num_batches_tracked', tfjs: 'num_batches_tracked', transform: 'count' },
];

/** The reference's `cbam.CBAM` (= upstream MA-Net's attention module) ↔ `Cbam`, in `Cbam`'s weight order. */
export const CBAM_TORCH_KEYS: readonly TorchKeySpec[] = [
  { torch: 'ChannelGate.mlp.1.weight', tfjs: 'mlp1_kernel', transform: 'linear' },
  { torch: 'ChannelGate.mlp.1.bias', tfjs: 'mlp1_bias', transform: 'copy' },
  { torch: 'ChannelGate.mlp.3.weight', tfjs: 'mlp2_kernel', transform: 'linear' },
  { torch: 'ChannelGate.mlp.3.bias', tfjs: 'mlp2_bias', transform: 'copy' },
  { torch: 'SpatialGate.spatial.conv.weight', tfjs: 'spatial_conv_kernel', transform: 'conv' },
  ...TORCH_BN_KEYS.map((k) => ({
    torch: `SpatialGate.spatial.bn.${k.torch}`,
    tfjs: `spatial_bn_${k.tfjs}`,
    transform: k.transform,
  })),
];

/** `torch.nn.Conv2d` (with bias) ↔ tfjs `conv2d`. */
export const TORCH_CONV_KEYS: readonly TorchKeySpec[] = [
  { torch: 'weight', tfjs: 'kernel', transform: 'conv' },
  { torch: 'bias', tfjs: 'bias', transform: 'copy' },
];

/** `torch.nn.Linear` ↔ tfjs `dense`. */
export const TORCH_LINEAR_KEYS: readonly TorchKeySpec[] = [
  { torch: 'weight', tfjs: 'kernel', transform: 'linear' },
  { torch: 'bias', tfjs: 'bias', transform: 'copy' },
];
