import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  FerInputError,
  assertShape,
  useLazyInputGradient,
  type FerNetwork,
  type ForwardOptions,
  type InputConvention,
  type ResetClassifierOptions,
  type ForwardResult,
  type LabelSet,
  type VariableGroup,
} from 'fer-core';
import { ManetBuilder } from './blocks';
import { FoldedManet } from './fold';
import { MANET_INPUT_SIZE, resolveManetConfig, type ManetOptions, type ResolvedManetConfig } from './configs';

/** What `Manet.forward` puts in `ForwardResult.heads`. */
export interface ManetHeads {
  /** [2, B, 512]: (f_1 pooled local grid, f_2 pooled multi-scale branch), as the reference's `global_feat`. */
  globalFeatures: tf.Tensor3D;
  /** [4, B, 7, 7, 512]: layer4_1_p1..p4 outputs (TL, TR, BL, BR), NHWC; the reference's `local_feat` is NCHW. */
  localFeatures: tf.Tensor5D;
}

/** The 2x2 patch grid on the 28x28 layer2 map: [[top, bottom], [left, right]] crops, in p1..p4 order. */
const PATCH_CROPS: ReadonlyArray<[[number, number], [number, number]]> = [
  [
    [0, 14],
    [0, 14],
  ],
  [
    [0, 14],
    [14, 0],
  ],
  [
    [14, 0],
    [0, 14],
  ],
  [
    [14, 0],
    [14, 0],
  ],
];

/**
 * The diversified MA-Net graph (docs/method.md#manet) as a functional tfjs-layers model, NHWC.
 * Input [B, 224, 224, 3]; outputs, in order: logits fc_1 [B, K], logits fc_2 [B, K], f_1 [B, 512], f_2 [B, 512],
 * local maps p1..p4 [B, 7, 7, 512].
 */
export function buildManetModel(config: ResolvedManetConfig): tfl.LayersModel {
  const b = new ManetBuilder(config.seed, config.convInit);
  const input = tfl.input({ shape: [MANET_INPUT_SIZE, MANET_INPUT_SIZE, 3], name: 'image' });
  let x = b.stem(input); // [B, 56, 56, 64]
  x = b.stage(x, 'layer1', 64, 1, (y, p, c, s) => b.basicBlock(y, p, c, s, false));
  x = b.stage(x, 'layer2', 128, 2, (y, p, c, s) => b.basicBlock(y, p, c, s, false)); // [B, 28, 28, 128]

  const attention = (y: tfl.SymbolicTensor, p: string, c: number, s: number) => b.basicBlock(y, p, c, s, true);
  const local = PATCH_CROPS.map((cropping, k) => {
    const patch = tfl.layers.cropping2D({ cropping, name: `patch${k + 1}` }).apply(x) as tfl.SymbolicTensor; // [B,14,14,128]
    const y = b.stage(patch, `layer3_1_p${k + 1}`, 256, 2, attention); // [B, 7, 7, 256]
    return b.stage(y, `layer4_1_p${k + 1}`, 512, 1, attention); // [B, 7, 7, 512]
  });
  // [L1 | L2] over [L3 | L4] (width, then height) -> [B, 14, 14, 512] -> [B, 512]
  const grid = b.concat(
    [b.concat([local[0], local[1]], 2, 'grid_top'), b.concat([local[2], local[3]], 2, 'grid_bottom')],
    1,
    'grid',
  );
  const f1 = tfl.layers.globalAveragePooling2d({ name: 'avgpool_1' }).apply(grid) as tfl.SymbolicTensor;

  const multiScale = (y: tfl.SymbolicTensor, p: string, c: number, s: number) =>
    b.mulScaleBlock(y, p, c, s, config.msScaleOrder);
  let g = b.stage(x, 'layer3_2', 256, 2, multiScale); // [B, 14, 14, 256]
  g = b.stage(g, 'layer4_2', 512, 2, multiScale); // [B, 7, 7, 512]
  const f2 = tfl.layers.globalAveragePooling2d({ name: 'avgpool_2' }).apply(g) as tfl.SymbolicTensor;

  const out1 = b.linear(f1, 'fc_1', config.numClasses);
  const out2 = b.linear(f2, 'fc_2', config.numClasses);
  return tfl.model({ inputs: input, outputs: [out1, out2, f1, f2, ...local], name: config.name });
}

/** Metadata key under which the resolved config is saved with the model. */
const METADATA_KEY = 'fer-models-manet';

/**
 * Diversified MA-Net implementing `FerNetwork`. Wraps a tfjs-layers `LayersModel` (`.model`) whose layer names are the
 * PyTorch module paths. Create with `createManet` or `loadManet` (or fer-models' `createModel`/`loadModel`).
 */
export class Manet implements FerNetwork {
  readonly kind = 'manet' as const;
  /** Two heads (fc_1 on the local grid, fc_2 on the multi-scale path), each a "branch" of the ensemble vote. */
  readonly numBranches = 2;

  constructor(
    private net: tfl.LayersModel,
    private cfg: ResolvedManetConfig,
  ) {}

  /** The functional model (owned; replaced by `resetClassifier`). */
  get model(): tfl.LayersModel {
    return this.net;
  }

  get config(): ResolvedManetConfig {
    return this.cfg;
  }

  get labels(): LabelSet {
    return this.cfg.labels ?? [];
  }

  get numClasses(): number {
    return this.cfg.numClasses;
  }

  get input(): InputConvention {
    return this.cfg.input;
  }

  /** The heads `fc_1` and `fc_2` (Linear(512 → numClasses)). Owned by the model. */
  getClassifier(): tfl.layers.Layer[] {
    return [this.net.getLayer('fc_1'), this.net.getLayer('fc_2')];
  }

  /**
   * Fresh PyTorch-default heads Linear(512 → labels.length) for `labels`, every other weight kept (as the reference
   * replaces the MS-Celeb heads). Rebuilds the graph, since the heads' width is part of it.
   */
  resetClassifier(labels: LabelSet, opts: ResetClassifierOptions = {}): void {
    const config: ResolvedManetConfig = {
      ...this.cfg,
      numClasses: labels.length,
      labels,
      seed: opts.seed ?? this.cfg.seed,
    };
    const fresh = buildManetModel({ ...config, convInit: 'zeros' });
    for (const layer of fresh.layers) {
      if (layer.name === 'fc_1' || layer.name === 'fc_2' || layer.weights.length === 0) continue;
      layer.setWeights(this.net.getLayer(layer.name).getWeights());
    }
    fresh.trainable = this.net.trainable;
    this.net.dispose();
    this.net = fresh;
    this.cfg = config;
  }

  /**
   * @param images [B, 224, 224, 3] float32 NHWC (already normalised as the variant expects).
   * @param opts.training batch-statistics BN and running-stat updates (B ≥ 2 needed).
   * @returns logits [fc_1 [B, K], fc_2 [B, K]] and `heads` (`ManetHeads`); every tensor is owned by the caller.
   */
  forward(images: tf.Tensor4D, opts: ForwardOptions): ForwardResult & { heads: ManetHeads } {
    assertShape(
      'MA-Net input images',
      images.shape,
      [null, MANET_INPUT_SIZE, MANET_INPUT_SIZE, 3],
      'MA-Net needs NHWC 224x224 RGB/BGR crops (the 28x28 layer2 map is split into 14x14 patches).',
    );
    return tf.tidy(() => {
      const [out1, out2, f1, f2, ...local] = this.model.apply(images, { training: opts.training }) as tf.Tensor[];
      return {
        logits: [out1 as tf.Tensor2D, out2 as tf.Tensor2D],
        heads: { globalFeatures: tf.stack([f1, f2]) as tf.Tensor3D, localFeatures: tf.stack(local) as tf.Tensor5D },
      };
    });
  }

  /**
   * An inference-only view with every conv → batch norm (→ ReLU) folded into one fused conv: the outputs of
   * `forward(x, { training: false })` up to float32 rounding. Owns only the folded tensors (`dispose()` frees them;
   * dispose it before the model), never writes the model's weights, and folds again when they change. Throws a
   * `FerInputError` when a batch norm has no usable running statistics.
   */
  fold(): FoldedManet {
    return new FoldedManet(this);
  }

  /** Every trainable variable (the reference trains all parameters, one SGD group). Owned by the model. */
  trainableVariables(): tf.Variable[] {
    return this.model.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  /** One group, as `manet_*.py` builds `SGD(model.parameters(), ...)`; weight decay applies to BN and biases too. */
  variableGroups(): VariableGroup[] {
    return [{ name: 'manet', variables: this.trainableVariables() }];
  }

  /** BN running statistics and counters (not trained; saved with the model). */
  nonTrainableVariables(): tf.Variable[] {
    return this.model.nonTrainableWeights.map((w) => w.read() as tf.Variable);
  }

  /** Saves topology + weights in the tfjs-layers format, with the config in the user metadata. */
  async save(handler: tf.io.IOHandler): Promise<tf.io.SaveResult> {
    this.net.setUserDefinedMetadata({
      [METADATA_KEY]: { ...this.cfg, labels: this.cfg.labels ? [...this.cfg.labels] : null } as unknown as object,
    });
    return this.net.save(handler);
  }

  dispose(): void {
    this.net.dispose();
  }
}

/** A fresh MA-Net (Kaiming-normal convs, unit BN, PyTorch-default heads). The caller owns it (`dispose`). */
export function createManet(opts: ManetOptions = {}): Manet {
  const config = resolveManetConfig(opts);
  return new Manet(buildManetModel(config), config);
}

/** True when `a` is a model saved by `Manet.save`. */
export function isManetArtifacts(a: tf.io.ModelArtifacts): boolean {
  return (a.userDefinedMetadata as Record<string, unknown> | undefined)?.[METADATA_KEY] !== undefined;
}

/** Loads a model saved with `Manet.save` (tfjs-layers format) from any `tf.io` handler. The caller owns it. */
export async function loadManet(handler: tf.io.IOHandler): Promise<Manet> {
  if (!handler.load) throw new FerInputError('The IOHandler cannot load.', 'Pass a handler with a load method.');
  return manetFromArtifacts(await handler.load());
}

/** `loadManet` for artifacts already loaded. */
export async function manetFromArtifacts(a: tf.io.ModelArtifacts): Promise<Manet> {
  const meta = (a.userDefinedMetadata as Record<string, unknown> | undefined)?.[METADATA_KEY] as
    | (Omit<ResolvedManetConfig, 'input'> & { input?: InputConvention })
    | undefined;
  if (!meta) {
    throw new FerInputError(
      `The model has no '${METADATA_KEY}' metadata, so it was not saved by Manet.save().`,
      'Load it with loadModel() from fer-models, which detects the kind, or save it with Manet.save().',
    );
  }
  const model = await tfl.loadLayersModel(tf.io.fromMemory(a));
  useLazyInputGradient(model.getLayer('conv1'));
  // Models saved before the input convention was recorded were trained on RGB in [0, 1] unless told otherwise.
  const input = meta.input ?? { size: MANET_INPUT_SIZE, colorOrder: 'rgb', normalization: null };
  return new Manet(model, { ...meta, input });
}
