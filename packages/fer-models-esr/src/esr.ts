import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  FerInputError,
  type FerNetwork,
  type ForwardResult,
  type InputConvention,
  type LabelSet,
  mixSeed,
  type ResetClassifierOptions,
  type VariableGroup,
} from 'fer-core';
import { resolveEsrConfig, type EsrConfig, type EsrConfigName } from './configs';
import { buildBase, buildBranch, checkImages, ensembleOutputs, runBase, runBranch } from './layers';
import { FoldedEsr } from './fold';
import { vote } from './vote';
import { packEsr, unpackEsr } from './io';

export interface EsrForwardOptions {
  /** Train mode for the whole ensemble: BN batch statistics and running-stat updates everywhere. */
  training: boolean;
  /**
   * Override the branches' mode. Default: `training`. `{ training: false, branchesTraining: true }` reproduces the
   * reference's validation (`eval_script` in the fixture, docs/method.md#defect-10): base in eval mode, branches in
   * train mode, their running statistics updated with the validation data. Only for faithful reproduction.
   */
  branchesTraining?: boolean;
}

/** In-memory copy of all weights, per part (base first). */
export interface EsrSnapshot {
  parts: tf.Tensor[][];
}

/** What a branch part of the ensemble is (for `variableGroups` and freezing). */
export type EsrPartName = 'base' | `branch_${number}`;

export interface CreateEsrOptions {
  /** Branches to create now (default 1; the reference grows from 1 to 9 with `addBranch`). */
  initialBranches?: number;
  /** Seed for the PyTorch-default initialisers (deterministic weights); omit for random. */
  seed?: number;
}

/**
 * An Ensemble with Shared Representations (Siqueira et al. 2020), optionally diversified with CBAM
 * (docs/method.md#esr). Parts are tfjs-layers `LayersModel`s: `base` ([N, S, S, 3] → [N, S', S', 128]) and one per
 * branch. The branches are real parts of the ensemble: the `training` flag reaches each of them (the reference's
 * plain-list defect is not reproduced unless asked for, see `EsrForwardOptions.branchesTraining`).
 */
export class EsrEnsemble implements FerNetwork {
  readonly kind = 'esr' as const;
  private cfg: EsrConfig;
  private baseModel: tfl.LayersModel;
  private branchModels: tfl.LayersModel[] = [];
  private readonly seed?: number;

  /**
   * Use `createEsr`, `loadEsr` or `fromTorchStateDicts` (or fer-models' `createModel`/`loadModel`). Takes ownership of
   * the given parts.
   */
  constructor(config: EsrConfig, base: tfl.LayersModel, branches: tfl.LayersModel[] = [], seed?: number) {
    this.cfg = config;
    this.baseModel = base;
    this.branchModels = [...branches];
    this.seed = seed;
  }

  /** Architecture and input convention (changes only through `resetClassifier`). */
  get config(): EsrConfig {
    return this.cfg;
  }

  get labels(): LabelSet {
    return this.config.labels;
  }

  get numBranches(): number {
    return this.branchModels.length;
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  get input(): InputConvention {
    const { inputSize: size, colorOrder, normalization } = this.config;
    return { size, colorOrder, normalization };
  }

  /** The shared base (owned by the ensemble). */
  get base(): tfl.LayersModel {
    return this.baseModel;
  }

  /** Branch `i` (1-based, as the reference's file names). Owned by the ensemble. */
  branch(i: number): tfl.LayersModel {
    const b = this.branchModels[i - 1];
    if (!b) throw new FerInputError(`Expected a branch index in 1..${this.numBranches}, but got ${i}.`);
    return b;
  }

  /** The parts in order: base, branch_1, … (owned by the ensemble). */
  parts(): { name: EsrPartName; model: tfl.LayersModel }[] {
    return [
      { name: 'base', model: this.baseModel },
      ...this.branchModels.map((model, i) => ({ name: `branch_${i + 1}` as EsrPartName, model })),
    ];
  }

  /**
   * Appends a freshly initialised branch (PyTorch default init; seeded when the ensemble has a seed) and returns its
   * 1-based index. `model` lets a caller add a prepared part instead (ownership passes to the ensemble).
   */
  addBranch(model?: tfl.LayersModel): number {
    const index = this.branchModels.length + 1;
    // mixSeed, not seed + index: run s's branch k+1 would otherwise equal run s+1's branch k.
    const m = model ?? buildBranch(this.config, index, this.seed === undefined ? undefined : mixSeed(this.seed, index));
    const outs = m.outputs.length;
    if (m.inputs[0].shape[3] !== 128 || m.outputs[0].shape[1] !== this.config.numClasses) {
      throw new FerInputError(
        `Expected a branch mapping 128 channels to ${this.config.numClasses} logits, but got ${m.name}.`,
      );
    }
    if (this.config.variant === 'cbam' && outs !== 3)
      throw new FerInputError(`Expected a CBAM branch with 3 outputs, but got ${outs}.`);
    this.branchModels.push(m);
    return index;
  }

  /**
   * One forward pass. Returns per-branch logits `[B, K]` and, for `cbam`, `heads.spatialAttention` [n, B, h, w]
   * (6×6 at 96 px) and `heads.channelAttention` [n, B, 512]; for `original` with the valence/arousal head,
   * `heads.valenceArousal` [n, B, 2]. All returned tensors are owned by the caller.
   * @param images [B, S, S, 3] float32 in the config's colour order and scaling
   */
  forward(images: tf.Tensor4D, opts: EsrForwardOptions = { training: false }): ForwardResult {
    if (this.branchModels.length === 0)
      throw new FerInputError('The ensemble has no branches.', 'Call addBranch() first.');
    checkImages(this.config, images);
    const training = opts.training === true;
    const branchesTraining = opts.branchesTraining ?? training;
    return tf.tidy(() => {
      const shared = runBase(this.baseModel, images, training);
      return ensembleOutputs(
        this.config,
        this.branchModels.map((b) => runBranch(b, shared, branchesTraining)),
      );
    });
  }

  /**
   * Ensemble prediction in eval mode: the plurality vote of the branches, ties to the lowest class index.
   * @returns [B] int32 class indices into `labels`, owned by the caller
   */
  predict(images: tf.Tensor4D): tf.Tensor1D {
    return tf.tidy(() => {
      const { logits, heads } = this.forward(images, { training: false });
      tf.dispose(heads);
      return vote(logits);
    });
  }

  /**
   * An inference-only view of the ensemble with every conv → batch norm → ReLU folded into one fused conv (W·γ/√(σ²+ε),
   * β + (b − μ)·γ/√(σ²+ε), ReLU as the conv's activation): same outputs as `forward(x, { training: false })` up to
   * float32 rounding, in fewer and cheaper ops. The view owns only the folded tensors (`dispose()` frees them; dispose
   * it before the ensemble); it reads the ensemble's other weights live and folds again when weights change, so
   * training, `restore` or `addBranch` between calls are seen. The ensemble's weights are never written. Throws a
   * `FerInputError` when a batch norm has no usable running statistics.
   * @example const infer = esr.fold(); const labels = infer.predict(x); infer.dispose();
   */
  fold(): FoldedEsr {
    return new FoldedEsr(this);
  }

  /** All trainable variables, base first, then branches in order. */
  trainableVariables(): tf.Variable[] {
    return this.variableGroups().flatMap((g) => g.variables);
  }

  /**
   * Trainable variables per part: `[{ name: 'base' }, { name: 'branch_1' }, …]`, the groups the reference's
   * optimizer gives different learning rates (base, newest branch, older branches; docs/method.md#esr-affectnet).
   * Frozen parts have no variables.
   */
  variableGroups(): VariableGroup[] {
    return this.parts().map(({ name, model }) => ({
      name,
      variables: model.trainableWeights.map((w) => w.read() as tf.Variable),
    }));
  }

  /** Freezes (`trainable: false`) or unfreezes a part: `'base'`, a 1-based branch index, or `'all'`. */
  setTrainable(part: 'base' | 'all' | number, trainable: boolean): void {
    const models =
      part === 'all' ? this.parts().map((p) => p.model) : part === 'base' ? [this.baseModel] : [this.branch(part)];
    for (const m of models) m.trainable = trainable;
  }

  /** Each branch's classifier `fc` (Linear(512 → numClasses)), in branch order. Owned by the ensemble. */
  getClassifier(): tfl.layers.Layer[] {
    return this.branchModels.map((b) => b.getLayer('fc'));
  }

  /**
   * Replaces every branch's classifier by a freshly initialised Linear(512 → labels.length) (the reference's RAF-DB
   * fine-tuning: `fc = Linear(512, 7)`, docs/method.md#esr), keeping all other weights. The valence/arousal head, which
   * reads the 8 logits, is dropped when the width changes. `opts.seed` defaults to the ensemble's seed.
   */
  resetClassifier(labels: LabelSet, opts: ResetClassifierOptions = {}): void {
    const numClasses = labels.length;
    const config = resolveEsrConfig({
      ...this.config,
      numClasses,
      labels,
      valenceArousal: this.config.valenceArousal && numClasses === 8,
    });
    const seed = opts.seed ?? this.seed;
    const next = this.branchModels.map((old, i) => {
      const fresh = buildBranch(config, i + 1, seed === undefined ? undefined : mixSeed(seed, 1000 + i));
      for (const layer of fresh.layers) {
        if (layer.name === 'fc' || layer.name === 'fc_dimensional' || layer.weights.length === 0) continue;
        const w = old.getLayer(layer.name).getWeights();
        layer.setWeights(w);
      }
      fresh.trainable = old.trainable;
      return fresh;
    });
    this.branchModels.forEach((m) => m.dispose());
    this.branchModels = next;
    this.cfg = config;
  }

  /**
   * A copy of every weight (trainable and running statistics), per part: the reference's `to_state_dict()` kept in
   * memory for "reload the best configuration". The caller owns the tensors (`tf.dispose(snapshot.parts)`).
   */
  snapshot(): EsrSnapshot {
    return { parts: this.parts().map(({ model }) => model.getWeights().map((w) => tf.clone(w))) };
  }

  /** Writes a `snapshot()` back (the reference's `reload`); the ensemble must have the same parts. */
  restore(snapshot: EsrSnapshot): void {
    const parts = this.parts();
    if (snapshot.parts.length !== parts.length) {
      throw new FerInputError(
        `Expected a snapshot of ${parts.length} parts (base + ${this.numBranches} branches), but got ${snapshot.parts.length}.`,
      );
    }
    parts.forEach(({ model }, i) => model.setWeights(snapshot.parts[i]));
  }

  /**
   * Saves config and every part as ONE tfjs artifact through `handler` (fer-core/node's `fileHandler(dir)` writes
   * `model.json` + `weights.bin`). Reload with `loadEsr(handler)` or fer-models' `loadModel`.
   */
  async save(handler: tf.io.IOHandler): Promise<tf.io.SaveResult> {
    if (!handler.save) throw new FerInputError('The IOHandler cannot save.', 'Pass a handler with a save method.');
    return handler.save(await packEsr(this.config, this.parts()));
  }

  dispose(): void {
    this.parts().forEach(({ model }) => model.dispose());
    this.branchModels = [];
  }
}

/**
 * A new ESR ensemble with PyTorch-default initialisation (docs/method.md#esr).
 * @example const esr = createEsr('desr9-affectnet', { initialBranches: 1, seed: 1 });
 */
export function createEsr(
  config: EsrConfigName | (Partial<EsrConfig> & { base?: EsrConfigName }) = 'desr9-affectnet',
  opts: CreateEsrOptions = {},
): EsrEnsemble {
  const c = resolveEsrConfig(config);
  const n = opts.initialBranches ?? 1;
  if (!Number.isInteger(n) || n < 0)
    throw new FerInputError(`Expected initialBranches to be a non-negative integer, but got ${n}.`);
  const esr = new EsrEnsemble(c, buildBase(c, opts.seed), [], opts.seed);
  for (let i = 0; i < n; i++) esr.addBranch();
  return esr;
}

/** Loads an ensemble saved by `EsrEnsemble.save` from any `tf.io` handler. The caller owns it. */
export async function loadEsr(handler: tf.io.IOHandler): Promise<EsrEnsemble> {
  if (!handler.load) throw new FerInputError('The IOHandler cannot load.', 'Pass a handler with a load method.');
  return esrFromArtifacts(await handler.load());
}

/** `loadEsr` for artifacts already loaded. */
export async function esrFromArtifacts(a: tf.io.ModelArtifacts): Promise<EsrEnsemble> {
  const { config, models } = await unpackEsr(a);
  const [base, ...branches] = models;
  const esr = new EsrEnsemble(config, base, []);
  for (const b of branches) esr.addBranch(b);
  return esr;
}
