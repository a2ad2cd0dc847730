import * as tfl from '@tensorflow/tfjs-layers';
import { Cbam, TorchBatchNorm, useLazyInputGradient } from 'fer-core';
import type { MsScaleOrder } from './configs';
import { ChannelSlice, TorchMaxPool2d } from './layers';

type Sym = tfl.SymbolicTensor;

/** CBAM's spatial-gate BatchNorm uses momentum 0.01 (docs/method.md#cbam); every other BN the PyTorch default 0.1. */
const BN_MOMENTUM = 0.1;

/**
 * Builds MA-Net's layers on symbolic tensors. Layer names are the PyTorch module paths (`layer3_1_p1.0.conv1`), so
 * checkpoint keys map onto them by name (weights/torch-keys.ts); helper layers get a suffix after the module path.
 */
export class ManetBuilder {
  private seedCounter = 0;

  constructor(
    private readonly seed: number | null,
    private readonly convInit: 'kaiming' | 'zeros' = 'kaiming',
  ) {}

  private nextSeed(): number | undefined {
    return this.seed === null ? undefined : this.seed * 10000 + 8 * this.seedCounter++; // Cbam uses seed + 0..4
  }

  /**
   * Conv2d without bias, PyTorch padding made explicit: stride 1 with p = (k − 1)/2 is 'same' (symmetric), p = 0 is
   * 'valid', anything else is zero padding + 'valid' (a stride-2 'same' would pad 0 before and 1 after).
   * Kaiming-normal, fan_out, ReLU gain as the reference initialises every Conv2d (docs/method.md#manet).
   */
  conv(x: Sym, name: string, filters: number, kernel: number, stride: number, pad: number, onInput = false): Sym {
    let padding: 'same' | 'valid' = 'valid';
    if (pad > 0 && stride === 1 && 2 * pad === kernel - 1) padding = 'same';
    else if (pad > 0) x = tfl.layers.zeroPadding2d({ padding: pad, name: `${name}.pad` }).apply(x) as Sym;
    const layer = tfl.layers.conv2d({
      filters,
      kernelSize: kernel,
      strides: stride,
      padding,
      useBias: false,
      name,
      kernelInitializer:
        this.convInit === 'zeros'
          ? tfl.initializers.zeros()
          : tfl.initializers.varianceScaling({
              scale: 2,
              mode: 'fanOut',
              distribution: 'normal',
              seed: this.nextSeed(),
            }),
    });
    // A conv on the image: nothing trainable reaches its input, so skip the input gradient (see useLazyInputGradient).
    if (onInput) useLazyInputGradient(layer);
    return layer.apply(x) as Sym;
  }

  /**
   * PyTorch batch norm; `relu` makes it BN → ReLU as one layer: on fer-native the ReLU runs inside the train-mode
   * batch-norm kernels (two fewer full-size passes, no pre-ReLU map kept), with the same values as `relu(bn(x))`.
   */
  bn(x: Sym, name: string, relu = false): Sym {
    return new TorchBatchNorm({ name, momentum: BN_MOMENTUM, relu }).apply(x) as Sym;
  }

  relu(x: Sym, name: string): Sym {
    return tfl.layers.reLU({ name }).apply(x) as Sym;
  }

  /** Left-to-right sum ((a + b) + c), the reference's order: it matters in train mode (bench README). */
  add(xs: Sym[], name: string): Sym {
    return tfl.layers.add({ name }).apply(xs) as Sym;
  }

  concat(xs: Sym[], axis: number, name: string): Sym {
    return tfl.layers.concatenate({ axis, name }).apply(xs) as Sym;
  }

  /** `nn.Linear(in, out)` with PyTorch's default init: U(±1/√in) for weight and bias. */
  linear(x: Sym, name: string, units: number): Sym {
    const inFeatures = x.shape[x.shape.length - 1] as number;
    const bound = 1 / Math.sqrt(inFeatures);
    const init = () => tfl.initializers.randomUniform({ minval: -bound, maxval: bound, seed: this.nextSeed() });
    return tfl.layers.dense({ units, name, kernelInitializer: init(), biasInitializer: init() }).apply(x) as Sym;
  }

  /** conv1 7x7/2 pad 3 -> bn1 -> ReLU -> MaxPool 3x3/2 pad 1: [B,224,224,3] -> [B,56,56,64]. */
  stem(x: Sym): Sym {
    const y = this.bn(this.conv(x, 'conv1', 64, 7, 2, 3, true), 'bn1', true);
    return new TorchMaxPool2d({ poolSize: 3, strides: 2, padding: 1, name: 'maxpool' }).apply(y) as Sym;
  }

  /** Projection shortcut (conv1x1 with stride, then BN) when the block changes shape, else the identity. */
  private shortcut(x: Sym, prefix: string, planes: number, stride: number): Sym {
    const inPlanes = x.shape[3] as number;
    if (stride === 1 && inPlanes === planes) return x;
    return this.bn(this.conv(x, `${prefix}.downsample.0`, planes, 1, stride, 0), `${prefix}.downsample.1`);
  }

  /**
   * BasicBlock, or AttentionBlock when `attention` (CBAM(planes, 16) on the residual before the add; its attention
   * maps are discarded): conv3x3(stride)-BN-ReLU-conv3x3-BN[-CBAM] + shortcut, ReLU.
   */
  basicBlock(x: Sym, prefix: string, planes: number, stride: number, attention: boolean): Sym {
    let out = this.bn(this.conv(x, `${prefix}.conv1`, planes, 3, stride, 1), `${prefix}.bn1`, true);
    out = this.bn(this.conv(out, `${prefix}.conv2`, planes, 3, 1, 1), `${prefix}.bn2`);
    if (attention) {
      const gated = new Cbam({ name: `${prefix}.cbam`, reduction: 16, seed: this.nextSeed() }).apply(out);
      out = (Array.isArray(gated) ? gated[0] : gated) as Sym;
    }
    return this.relu(this.add([out, this.shortcut(x, prefix, planes, stride)], `${prefix}.add`), `${prefix}.relu2`);
  }

  /**
   * The seed's MulScaleBlock (docs/method.md#manet): conv3x3(stride)-BN-ReLU, split into four groups s0..s3 of
   * planes/4; two paths of conv3x3-BN steps, y1 = cb(s0), y_j = cb(ReLU(y_{j-1}) + s_{j-1}); output ReLU(P1 + P2 +
   * shortcut). With `order: 'reverse'` path 2 runs s3 -> s0 as upstream since 2023 (module j still reads group j).
   */
  mulScaleBlock(x: Sym, prefix: string, planes: number, stride: number, order: MsScaleOrder): Sym {
    const t = this.bn(this.conv(x, `${prefix}.conv1`, planes, 3, stride, 1), `${prefix}.bn1`, true);
    const w = planes / 4;
    const groups = [0, 1, 2, 3].map(
      (j) => new ChannelSlice({ start: j * w, size: w, name: `${prefix}.split${j}` }).apply(t) as Sym,
    );
    const path = (p: 1 | 2, chain: number[]): Sym => {
      const ys: Sym[] = [];
      let prev: Sym | null = null;
      for (const j of chain) {
        const name = (kind: string) => `${prefix}.${kind}${p}_2_${j + 1}`; // conv1_2_3, bn2_2_4, ...
        const input: Sym =
          prev === null ? groups[j] : this.add([this.relu(prev, name('relu')), groups[j]], name('add'));
        prev = this.bn(this.conv(input, name('conv'), w, 3, 1, 1), name('bn'));
        ys[j] = prev;
      }
      return this.concat(ys, 3, `${prefix}.cat${p}`);
    };
    const p1 = path(1, [0, 1, 2, 3]);
    const p2 = path(2, order === 'forward' ? [0, 1, 2, 3] : [3, 2, 1, 0]);
    return this.relu(this.add([p1, p2, this.shortcut(x, prefix, planes, stride)], `${prefix}.add`), `${prefix}.relu2`);
  }

  /** `_make_layer`: `blocks` blocks, the first with the stride (and a projection when needed). */
  stage(
    x: Sym,
    prefix: string,
    planes: number,
    stride: number,
    block: (x: Sym, prefix: string, planes: number, stride: number) => Sym,
    blocks = 2,
  ): Sym {
    let y = block(x, `${prefix}.0`, planes, stride);
    for (let b = 1; b < blocks; b++) y = block(y, `${prefix}.${b}`, planes, 1);
    return y;
  }
}
