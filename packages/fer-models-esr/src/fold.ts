import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  FerInputError,
  type FerModel,
  type ForwardResult,
  type InputConvention,
  type LabelSet,
  type VariableGroup,
} from 'fer-core';
import type { EsrConfig } from './configs';
import { checkImages, ensembleOutputs, foldPart, runBase, runBranch, type PartFold } from './layers';
import { vote } from './vote';

/** What a fold reads from an ensemble (`EsrEnsemble`; kept structural so this module does not import it). */
export interface EsrFoldSource {
  readonly config: EsrConfig;
  readonly numBranches: number;
  parts(): { name: string; model: tfl.LayersModel }[];
}

/** `FoldedEsr.forward` options: inference only. */
export interface FoldedForwardOptions {
  /** Must be false (or omitted): a folded model has no batch statistics. */
  training?: boolean;
  /** Must be false (or omitted), as `training`. */
  branchesTraining?: boolean;
}

/**
 * `EsrEnsemble.fold()`: the ensemble in inference mode with each block's conv → batch norm → ReLU run as one fused
 * conv (fer-core's `FoldedConv2d`); pools, CBAM and classifiers are the ensemble's own layers in eval mode. It
 * implements `FerModel` (no trainable variables), so fer-train's `evaluate` and `predictImage` accept it.
 *
 * Ownership: the view owns the folded tensors only; the ensemble stays the caller's. Each call checks that the parts
 * are the ensemble's current ones (folding a new branch, freeing a dropped one) and each `FoldedConv2d` folds again
 * when its source variables were reassigned, so the view never serves stale weights.
 */
export class FoldedEsr implements FerModel {
  readonly kind = 'esr' as const;
  private readonly source: EsrFoldSource;
  private folds = new Map<tfl.LayersModel, PartFold>();
  private disposed = false;

  /** Use `EsrEnsemble.fold()`. Folds every part now, so a model without usable statistics is refused here. */
  constructor(source: EsrFoldSource) {
    this.source = source;
    try {
      this.currentFolds();
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  get config(): EsrConfig {
    return this.source.config;
  }

  get labels(): LabelSet {
    return this.source.config.labels;
  }

  get numBranches(): number {
    return this.source.numBranches;
  }

  get numClasses(): number {
    return this.source.config.numClasses;
  }

  get input(): InputConvention {
    const { inputSize: size, colorOrder, normalization } = this.source.config;
    return { size, colorOrder, normalization };
  }

  /**
   * Eval-mode forward, the outputs of `EsrEnsemble.forward(images, { training: false })` (owned by the caller).
   * `{ training: true }` is refused: batch statistics cannot be folded.
   */
  forward(images: tf.Tensor4D, opts: FoldedForwardOptions = {}): ForwardResult {
    if (opts.training === true || opts.branchesTraining === true) {
      throw new FerInputError(
        `Expected training: false for a folded (inference-only) ESR, but got ${opts.training === true ? 'training' : 'branchesTraining'}: true.`,
        'Run training-mode forwards on the EsrEnsemble itself; fold() is for inference.',
      );
    }
    if (this.disposed) throw new FerInputError('This folded ESR was disposed.', 'Call esr.fold() again.');
    if (this.source.numBranches === 0)
      throw new FerInputError('The ensemble has no branches.', 'Call addBranch() first.');
    checkImages(this.source.config, images);
    const [base, ...branches] = this.currentFolds();
    return tf.tidy(() => {
      const shared = runBase(base.model, images, false, base.fold);
      return ensembleOutputs(
        this.source.config,
        branches.map((b) => runBranch(b.model, shared, false, b.fold)),
      );
    });
  }

  /** The plurality vote of the branches, as `EsrEnsemble.predict`: [B] int32, owned by the caller. */
  predict(images: tf.Tensor4D): tf.Tensor1D {
    return tf.tidy(() => {
      const { logits, heads } = this.forward(images);
      tf.dispose(heads);
      return vote(logits);
    });
  }

  /** None: a folded model is not trained. */
  trainableVariables(): tf.Variable[] {
    return [];
  }

  variableGroups(): VariableGroup[] {
    return [];
  }

  /** Frees the folded tensors (not the ensemble). */
  dispose(): void {
    for (const fold of this.folds.values()) fold.forEach((f) => f.dispose());
    this.folds.clear();
    this.disposed = true;
  }

  /** The parts with their folds, folding parts that are new and freeing those the ensemble no longer has. */
  private currentFolds(): { model: tfl.LayersModel; fold: PartFold }[] {
    const parts = this.source.parts();
    const now = new Set(parts.map((p) => p.model));
    for (const [model, fold] of this.folds) {
      if (now.has(model)) continue;
      fold.forEach((f) => f.dispose());
      this.folds.delete(model);
    }
    return parts.map(({ name, model }) => {
      let fold = this.folds.get(model);
      if (!fold) {
        fold = foldPart(model, name);
        this.folds.set(model, fold);
      }
      return { model, fold };
    });
  }
}
