import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  FerInputError,
  FoldedGraph,
  assertShape,
  type FerModel,
  type ForwardResult,
  type InputConvention,
  type LabelSet,
  type VariableGroup,
} from 'fer-core';
import { MANET_INPUT_SIZE, type ResolvedManetConfig } from './configs';

/** What a fold reads from a `Manet` (structural, so this module does not import manet.ts). */
export interface ManetFoldSource {
  readonly model: tfl.LayersModel;
  readonly config: ResolvedManetConfig;
  readonly labels: LabelSet;
  readonly numClasses: number;
  readonly input: InputConvention;
}

/**
 * `Manet.fold()`: MA-Net in inference mode with every conv → batch norm (→ ReLU) run as one fused conv (fer-core's
 * `FoldedGraph`): the stem, each block's first conv with its ReLU, second convs, shortcuts and the multi-scale convs
 * without (their batch-norm output is added or concatenated first). Everything else is the model's own layers.
 * Implements `FerModel` (no trainable variables). Owns only the folded tensors; follows the model when its weights
 * change or `resetClassifier` rebuilds it.
 */
export class FoldedManet implements FerModel {
  readonly kind = 'manet' as const;
  readonly numBranches = 2;
  private readonly source: ManetFoldSource;
  private graph: FoldedGraph | null = null;
  private disposed = false;

  /** Use `Manet.fold()`. Folds now, so a model without usable statistics is refused here. */
  constructor(source: ManetFoldSource) {
    this.source = source;
    this.current();
  }

  get config(): ResolvedManetConfig {
    return this.source.config;
  }

  get labels(): LabelSet {
    return this.source.labels;
  }

  get numClasses(): number {
    return this.source.numClasses;
  }

  get input(): InputConvention {
    return this.source.input;
  }

  /** The conv → batch norm pairs folded, and whether a ReLU was fused (for reports and tests). */
  get folded(): readonly { conv: string; bn: string; activation: 'relu' | 'linear' }[] {
    return this.current().folded;
  }

  /** Eval-mode forward, the outputs of `Manet.forward(images, { training: false })` (owned by the caller). */
  forward(images: tf.Tensor4D, opts: { training?: boolean } = {}): ForwardResult {
    if (opts.training === true) {
      throw new FerInputError(
        'Expected training: false for a folded (inference-only) MA-Net, but got training: true.',
        'Run training-mode forwards on the Manet itself; fold() is for inference.',
      );
    }
    assertShape(
      'MA-Net input images',
      images.shape,
      [null, MANET_INPUT_SIZE, MANET_INPUT_SIZE, 3],
      'MA-Net needs NHWC 224x224 RGB/BGR crops (the 28x28 layer2 map is split into 14x14 patches).',
    );
    const graph = this.current();
    return tf.tidy(() => {
      const [out1, out2, f1, f2, ...local] = graph.apply(images);
      return {
        logits: [out1 as tf.Tensor2D, out2 as tf.Tensor2D],
        heads: { globalFeatures: tf.stack([f1, f2]) as tf.Tensor3D, localFeatures: tf.stack(local) as tf.Tensor5D },
      };
    });
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  variableGroups(): VariableGroup[] {
    return [];
  }

  /** Frees the folded tensors (not the model). */
  dispose(): void {
    this.graph?.dispose();
    this.graph = null;
    this.disposed = true;
  }

  private current(): FoldedGraph {
    if (this.disposed) throw new FerInputError('This folded MA-Net was disposed.', 'Call manet.fold() again.');
    if (this.graph?.model !== this.source.model) {
      this.graph?.dispose();
      this.graph = null;
      this.graph = new FoldedGraph(this.source.model, ' in MA-Net');
    }
    return this.graph;
  }
}
