import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Cbam, FerInputError, FoldedConv2d, TorchBatchNorm, assertShape, useLazyInputGradient } from 'fer-core';
import { featureSizes, minInputSize, type EsrConfig } from './configs';

type Sym = tfl.SymbolicTensor;

/** PyTorch default init for Conv2d/Linear: weight and bias ~ U(±1/√fan_in) (kaiming_uniform with a = √5). */
function torchInit(fanIn: number, seed: number | undefined, salt: number) {
  const s = seed === undefined ? undefined : seed * 7919 + salt;
  return {
    kernelInitializer: tfl.initializers.varianceScaling({
      scale: 1 / 3,
      mode: 'fanIn',
      distribution: 'uniform',
      seed: s,
    }),
    biasInitializer: tfl.initializers.randomUniform({
      minval: -1 / Math.sqrt(fanIn),
      maxval: 1 / Math.sqrt(fanIn),
      seed: s === undefined ? undefined : s + 1,
    }),
  };
}

/**
 * One ESR block: conv (bias, stride 1) → BN (PyTorch semantics) → ReLU → [max-pool 2×2/2] → [CBAM].
 * Layer names `conv<i>`, `bn<i>`, `relu<i>`, `pool<i>`, `cbam<i>` mirror the PyTorch module names.
 */
function block(
  x: Sym,
  i: number,
  inC: number,
  outC: number,
  k: number,
  opts: { pad: boolean; pool: boolean; cbam: boolean; seed?: number; salt: number },
): { y: Sym; channelAttention?: Sym; spatialAttention?: Sym } {
  let y = tfl.layers
    .conv2d({
      name: `conv${i}`,
      filters: outC,
      kernelSize: k,
      padding: opts.pad ? 'same' : 'valid',
      useBias: true,
      ...torchInit(inC * k * k, opts.seed, opts.salt),
    })
    .apply(x) as Sym;
  y = new TorchBatchNorm({ name: `bn${i}` }).apply(y) as Sym;
  y = tfl.layers.reLU({ name: `relu${i}` }).apply(y) as Sym;
  if (opts.pool)
    y = tfl.layers.maxPooling2d({ name: `pool${i}`, poolSize: 2, strides: 2, padding: 'valid' }).apply(y) as Sym;
  if (!opts.cbam) return { y };
  const seed = opts.seed === undefined ? undefined : opts.seed * 7919 + opts.salt + 100;
  const [out, ch, sp] = new Cbam({ name: `cbam${i}`, reduction: 16, seed }).apply(y) as Sym[];
  return { y: out, channelAttention: ch, spatialAttention: sp };
}

/**
 * The shared base (docs/method.md#esr): [N, S, S, 3] → [N, S', S', 128] (96 → 20).
 * conv5 3→64, conv3 64→128 + pool, conv3 128→128, conv3 128→128 + pool; CBAM after each block in `cbam`.
 */
export function buildBase(config: EsrConfig, seed?: number): tfl.LayersModel {
  const cbam = config.variant === 'cbam';
  const input = tfl.input({ shape: [null, null, 3], name: 'image' });
  let x = block(input, 1, 3, 64, 5, { pad: false, pool: false, cbam, seed, salt: 1 }).y;
  x = block(x, 2, 64, 128, 3, { pad: false, pool: true, cbam, seed, salt: 2 }).y;
  x = block(x, 3, 128, 128, 3, { pad: false, pool: false, cbam, seed, salt: 3 }).y;
  x = block(x, 4, 128, 128, 3, { pad: false, pool: true, cbam, seed, salt: 4 }).y;
  const model = tfl.model({ name: 'esr_base', inputs: input, outputs: x });
  useFastStem(model);
  return model;
}

/**
 * conv1 reads the image, which nothing trainable precedes: run it as the plain conv op so a training step never
 * computes the image gradient (fer-core's `useLazyInputGradient`; the fused conv's gradient spent ~69 ms per
 * micro-batch of 8 at 96 px on it). Applied to every base, created or loaded; forward values are unchanged.
 */
export function useFastStem(base: tfl.LayersModel): void {
  useLazyInputGradient(base.getLayer('conv1'));
}

/**
 * One convolutional branch (docs/method.md#esr): [N, S', S', 128] → outputs
 * - `cbam`: [logits [N, K], channelAttention [N, 512], spatialAttention [N, h, w, 1]] (last CBAM's attention);
 * - `original`: [logits] or, with the valence/arousal head, [logits, valenceArousal [N, 2]].
 */
export function buildBranch(config: EsrConfig, index: number, seed?: number): tfl.LayersModel {
  const cbam = config.variant === 'cbam';
  const input = tfl.input({ shape: [null, null, 128], name: 'shared_features' });
  let x = block(input, 1, 128, 128, 3, { pad: false, pool: false, cbam, seed, salt: 11 }).y;
  x = block(x, 2, 128, 256, 3, { pad: false, pool: true, cbam, seed, salt: 12 }).y;
  x = block(x, 3, 256, 256, 3, { pad: false, pool: false, cbam, seed, salt: 13 }).y;
  const last = block(x, 4, 256, 512, 3, { pad: true, pool: false, cbam, seed, salt: 14 });
  const pooled = tfl.layers.globalAveragePooling2d({ name: 'gap', dataFormat: 'channelsLast' }).apply(last.y) as Sym;
  const logits = tfl.layers
    .dense({ name: 'fc', units: config.numClasses, ...torchInit(512, seed, 15) })
    .apply(pooled) as Sym;
  const outputs: Sym[] = [logits];
  if (cbam) outputs.push(last.channelAttention!, last.spatialAttention!);
  else if (config.valenceArousal) {
    const r = tfl.layers.reLU({ name: 'relu_logits' }).apply(logits) as Sym;
    outputs.push(
      tfl.layers.dense({ name: 'fc_dimensional', units: 2, ...torchInit(config.numClasses, seed, 16) }).apply(r) as Sym,
    );
  }
  return tfl.model({ name: `esr_branch_${index}`, inputs: input, outputs });
}

function layerOf(model: tfl.LayersModel, name: string): tfl.layers.Layer | undefined {
  return model.layers.find((l) => l.name === name);
}

/** The folded conv → BN → ReLU of each of a part's four blocks (index i − 1 for block i). Owned by the caller. */
export type PartFold = readonly FoldedConv2d[];

/**
 * Folds every block of a part (`conv<i>` → eval-mode `bn<i>` → `relu<i>`) into one fused conv + bias + ReLU. Throws
 * a `FerInputError` naming the layer when a batch norm is missing or has no usable statistics; frees what it folded
 * before throwing.
 */
export function foldPart(model: tfl.LayersModel, part: string): PartFold {
  const folds: FoldedConv2d[] = [];
  try {
    for (let i = 1; i <= 4; i++) {
      const conv = layerOf(model, `conv${i}`);
      const bn = layerOf(model, `bn${i}`);
      if (!conv || !(bn instanceof TorchBatchNorm) || !layerOf(model, `relu${i}`)) {
        throw new FerInputError(
          `Cannot fold ESR part '${part}': expected layers conv${i}, bn${i} (TorchBatchNorm) and relu${i}, but got ${conv?.getClassName() ?? 'no conv'}, ${bn?.getClassName() ?? 'no batch norm'}.`,
          'Fold a model built by fer-models-esr (createEsr, loadEsr, fromTorchCheckpoint).',
        );
      }
      folds.push(new FoldedConv2d(conv, bn, 'relu', ` in ESR part '${part}'`));
    }
  } catch (e) {
    folds.forEach((f) => f.dispose());
    throw e;
  }
  return folds;
}

/**
 * Runs the four blocks of a part eagerly, layer by layer, as the PyTorch `forward` does. (`LayersModel.apply` would
 * also work, but tfjs-layers' executor calls a multi-output layer once per fetched output: the last CBAM would run
 * three times and move its running statistics three times in train mode.) With `fold` (inference only), each block's
 * conv → BN → ReLU runs as its folded fused conv.
 */
function runBlocks(
  model: tfl.LayersModel,
  x: tf.Tensor,
  training: boolean,
  fold?: PartFold,
): { y: tf.Tensor; ch?: tf.Tensor; sp?: tf.Tensor } {
  let y = x;
  let ch: tf.Tensor | undefined;
  let sp: tf.Tensor | undefined;
  for (let i = 1; i <= 4; i++) {
    if (fold) {
      y = fold[i - 1].apply(y as tf.Tensor4D);
    } else {
      y = layerOf(model, `conv${i}`)!.apply(y) as tf.Tensor;
      // A plain relu<i> runs inside the batch norm (fused into its kernels on fer-native, the same values).
      const relu = layerOf(model, `relu${i}`)!;
      const plain = relu.getClassName() === 'ReLU' && relu.getConfig().maxValue == null;
      y = layerOf(model, `bn${i}`)!.apply(y, { training, relu: plain }) as tf.Tensor;
      if (!plain) y = relu.apply(y) as tf.Tensor;
    }
    const pool = layerOf(model, `pool${i}`);
    if (pool) y = pool.apply(y) as tf.Tensor;
    const cbam = layerOf(model, `cbam${i}`);
    if (cbam) [y, ch, sp] = cbam.apply(y, { training }) as tf.Tensor[];
  }
  return { y, ch, sp };
}

/** Base forward: [N, S, S, 3] → [N, S', S', 128]. Call inside `tf.tidy`. `fold`: inference only. */
export function runBase(model: tfl.LayersModel, x: tf.Tensor4D, training: boolean, fold?: PartFold): tf.Tensor4D {
  return runBlocks(model, x, training, fold).y as tf.Tensor4D;
}

/** Branch forward, same outputs as the branch model's (see `buildBranch`). Call inside `tf.tidy`. */
export function runBranch(model: tfl.LayersModel, x: tf.Tensor4D, training: boolean, fold?: PartFold): tf.Tensor[] {
  const { y, ch, sp } = runBlocks(model, x, training, fold);
  const pooled = layerOf(model, 'gap')!.apply(y) as tf.Tensor;
  const logits = layerOf(model, 'fc')!.apply(pooled) as tf.Tensor;
  if (ch && sp) return [logits, ch, sp];
  const va = layerOf(model, 'fc_dimensional');
  if (!va) return [logits];
  return [logits, va.apply(layerOf(model, 'relu_logits')!.apply(logits)) as tf.Tensor];
}

/** The ensemble's `ForwardResult` from each branch's `runBranch` outputs. Call inside `tf.tidy`. */
export function ensembleOutputs(
  config: EsrConfig,
  outs: tf.Tensor[][],
): { logits: tf.Tensor2D[]; heads: Record<string, tf.Tensor> } {
  const logits = outs.map((o) => o[0] as tf.Tensor2D);
  const heads: Record<string, tf.Tensor> = {};
  if (config.variant === 'cbam') {
    heads.channelAttention = tf.stack(outs.map((o) => o[1]));
    heads.spatialAttention = tf.stack(outs.map((o) => tf.squeeze(o[2], [3])));
  } else if (config.valenceArousal) {
    heads.valenceArousal = tf.stack(outs.map((o) => o[1]));
  }
  return { logits, heads };
}

/** Refuses anything but square [B, S, S, 3] images large enough for the four pools. */
export function checkImages(config: EsrConfig, images: tf.Tensor4D): void {
  assertShape('images', images.shape, [null, null, null, 3], 'Pass a [batch, height, width, 3] float32 tensor.');
  const [, h, w] = images.shape;
  if (h !== w || featureSizes(h).branch < 1) {
    throw new FerInputError(
      `Expected square images of at least ${minInputSize()}×${minInputSize()} pixels (ESR uses ${config.inputSize}), but got ${h}×${w}.`,
      `Resize faces to ${config.inputSize}×${config.inputSize}.`,
    );
  }
}
