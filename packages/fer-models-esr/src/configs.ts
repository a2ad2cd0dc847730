import { AFFECTNET_LABELS, FerInputError, RAFDB_LABELS, type LabelSet } from 'fer-core';

/**
 * - `original`: upstream ESR (Siqueira et al., AAAI-20; docs/method.md#upstream-esr): no attention; each branch may
 *   carry the valence/arousal head Linear(8→2) applied to ReLU(logits).
 * - `cbam`: the diversified ESR of the reference (`model/diversified_esr.py`, docs/method.md#esr): CBAM after every
 *   conv block of the base and of each branch; the last branch CBAM's attention feeds the diversity loss.
 */
export type EsrVariant = 'original' | 'cbam';
export const ESR_VARIANTS: readonly EsrVariant[] = ['original', 'cbam'];

/**
 * Channel order the weights expect. The reference reads AffectNet and FER+ with OpenCV (BGR), RAF-DB with PIL (RGB).
 */
export type ColorOrder = 'bgr' | 'rgb';

/** Everything that defines an ESR ensemble's architecture and its input convention (typed data, STYLE.md). */
export interface EsrConfig {
  variant: EsrVariant;
  /** Classifier width K (8 for AffectNet/FER+, 7 for RAF-DB). */
  numClasses: number;
  /** Class order of the logits; length must equal `numClasses`. */
  labels: LabelSet;
  /** Square input side in pixels (96 for ESR; the reference's FER+ script used 224, docs/method.md#defect-12). */
  inputSize: number;
  colorOrder: ColorOrder;
  /** Per-channel mean/std applied by the data pipeline before the model (null: plain [0, 1]). */
  normalization: { mean: readonly [number, number, number]; std: readonly [number, number, number] } | null;
  /** `original` only: add upstream's valence/arousal head (`fc_dimensional`, Linear(8→2) on ReLU(logits)). */
  valenceArousal: boolean;
  /** Branch count the trained ensemble has (ESR-9: 9); `createEsr` starts with `initialBranches`. */
  ensembleSize: number;
}

/** A named, documented variant (weights are imported, never downloaded: see README). */
export interface EsrPretrainedConfig extends EsrConfig {
  description: string;
}

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;

export const ESR_CONFIGS = {
  /** Upstream ESR-9 (AffectNet, 8 classes, BGR [0, 1], valence/arousal heads). */
  'esr9-affectnet': {
    variant: 'original',
    numClasses: 8,
    labels: AFFECTNET_LABELS,
    inputSize: 96,
    colorOrder: 'bgr',
    normalization: null,
    valenceArousal: true,
    ensembleSize: 9,
    description: 'Upstream ESR-9 (Siqueira et al. 2020) trained on AffectNet; no attention, valence/arousal heads.',
  },
  /** Diversified ESR-9 with CBAM trained on AffectNet (`esr_affectnet.py`): BGR in [0, 1]. */
  'desr9-affectnet': {
    variant: 'cbam',
    numClasses: 8,
    labels: AFFECTNET_LABELS,
    inputSize: 96,
    colorOrder: 'bgr',
    normalization: null,
    valenceArousal: false,
    ensembleSize: 9,
    description: 'Diversified ESR-9 with CBAM (Heidari & Iosifidis 2022), AffectNet 8 classes.',
  },
  /** Fine-tuned on FER+ (`esr_ferplus.py`): AffectNet order, BGR in [0, 1], the AffectNet classifier kept. */
  'desr9-ferplus': {
    variant: 'cbam',
    numClasses: 8,
    labels: AFFECTNET_LABELS,
    inputSize: 96,
    colorOrder: 'bgr',
    normalization: null,
    valenceArousal: false,
    ensembleSize: 9,
    description:
      'Diversified ESR-9 fine-tuned on FER+ (8 classes, AffectNet order). The reference fed 224 px (docs/method.md#defect-12); 96 here.',
  },
  /** Fine-tuned on RAF-DB (`esr_rafdb.py`): RAF-DB order, RGB with ImageNet mean/std, fresh Linear(512→7). */
  'desr9-rafdb': {
    variant: 'cbam',
    numClasses: 7,
    labels: RAFDB_LABELS,
    inputSize: 96,
    colorOrder: 'rgb',
    normalization: IMAGENET,
    valenceArousal: false,
    ensembleSize: 9,
    description: 'Diversified ESR-9 fine-tuned on RAF-DB (7 classes, RAF-DB order, RGB + ImageNet normalisation).',
  },
} as const satisfies Record<string, EsrPretrainedConfig>;

export type EsrConfigName = keyof typeof ESR_CONFIGS;

/** Fills defaults (from `desr9-affectnet`, or the named base config) and validates. */
export function resolveEsrConfig(
  config: EsrConfigName | (Partial<EsrConfig> & { base?: EsrConfigName }) = 'desr9-affectnet',
): EsrConfig {
  const names = Object.keys(ESR_CONFIGS) as EsrConfigName[];
  if (typeof config === 'string') {
    if (!(config in ESR_CONFIGS))
      throw new FerInputError(`Unknown ESR config '${config}'. Valid: ${names.join(', ')}.`);
    config = { base: config };
  }
  const { base = 'desr9-affectnet', ...overrides } = config;
  if (!(base in ESR_CONFIGS)) throw new FerInputError(`Unknown ESR config '${base}'. Valid: ${names.join(', ')}.`);
  const { description: _d, ...defaults } = ESR_CONFIGS[base];
  const c: EsrConfig = { ...(defaults as EsrConfig), ...stripUndefined(overrides) };
  if (overrides.numClasses !== undefined && overrides.labels === undefined && c.labels.length !== c.numClasses) {
    throw new FerInputError(
      `ESR config has numClasses ${c.numClasses} but its labels (${c.labels.join(', ')}) have ${c.labels.length}.`,
      'Pass `labels` with one emotion per class.',
    );
  }
  if (!ESR_VARIANTS.includes(c.variant))
    throw new FerInputError(`Unknown ESR variant '${c.variant}'. Valid: ${ESR_VARIANTS.join(', ')}.`);
  for (const k of ['numClasses', 'inputSize', 'ensembleSize'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0)
      throw new FerInputError(`Expected ${k} to be a positive integer, but got ${c[k]}.`);
  }
  if (c.labels.length !== c.numClasses) {
    throw new FerInputError(
      `Expected ${c.numClasses} labels (numClasses), but got ${c.labels.length}: ${c.labels.join(', ')}.`,
    );
  }
  if (minInputSize() > c.inputSize) {
    throw new FerInputError(`Expected inputSize of at least ${minInputSize()} pixels, but got ${c.inputSize}.`);
  }
  if (c.valenceArousal && (c.variant !== 'original' || c.numClasses !== 8)) {
    throw new FerInputError(
      `The valence/arousal head exists only in the 'original' variant with 8 classes, but got variant '${c.variant}' with ${c.numClasses}.`,
      'Set valenceArousal: false.',
    );
  }
  return c;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Spatial sizes through the network for a square input of side `s` (valid convs, floor max-pools; docs/method.md#esr):
 * base output and the branch's final (attention) map. 96 → 20 and 6; 224 → 52 and 22.
 */
export function featureSizes(s: number): { base: number; branch: number } {
  const base = Math.floor((Math.floor((s - 6) / 2) - 4) / 2);
  const branch = Math.floor((base - 4) / 2) - 2;
  return { base, branch };
}

/** Smallest input side that leaves a 1×1 attention map. */
export function minInputSize(): number {
  let s = 1;
  while (featureSizes(s).branch < 1) s++;
  return s;
}
