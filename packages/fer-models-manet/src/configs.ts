import {
  AFFECTNET_LABELS,
  FerInputError,
  RAFDB_LABELS,
  assertPositiveInt,
  parseChoice,
  type InputConvention,
  type LabelSet,
} from 'fer-core';

/**
 * Input side the architecture requires: the 28x28 layer2 map is cut into 14x14 patches (docs/method.md#manet,
 * #defect-29).
 */
export const MANET_INPUT_SIZE = 224;

/**
 * Number of MS-Celeb-1M identities: the class count of the pretrained checkpoint's heads
 * (docs/method.md#msceleb-checkpoint).
 */
export const MSCELEB_NUM_CLASSES = 12666;

/**
 * Largest batch whose training forward + backward fits the wasm heap (wasm32, 4 GiB), measured with
 * `pnpm bench manet` (batch 14: 3.7 GB heap; 16 aborts). README "Memory".
 */
export const MANET_WASM_MAX_BATCH = 14;

/**
 * Recommended micro-batch on wasm: leaves room for the optimizer's momentum and a gradient accumulator (2 × 202 MB)
 * and divides the reference batch of 128 (16 accumulation steps).
 */
export const MANET_WASM_MICRO_BATCH = 8;

/**
 * Order of the second path of the multi-scale block (docs/method.md#defect-33, #upstream-manet):
 * - `forward` (default): the seed's block and the original upstream (2021); both paths run s0 -> s3.
 * - `reverse`: upstream MA-Net since April 2023; path 2 runs s3 -> s0.
 */
export type MsScaleOrder = 'forward' | 'reverse';
export const MS_SCALE_ORDERS: readonly MsScaleOrder[] = ['forward', 'reverse'];

/** One reference variant as typed data (the class count and label order a head is trained for). */
export interface ManetPretrainedConfig {
  readonly numClasses: number;
  /** Class order of the logits; `null` for the MS-Celeb identity heads. */
  readonly labels: LabelSet | null;
  /**
   * The reference script's input convention (docs/method.md#data-pipelines, #defect-11); the data pipeline applies it.
   */
  readonly input: {
    readonly channelOrder: 'rgb' | 'bgr';
    readonly mean: readonly [number, number, number] | null;
    readonly std: readonly [number, number, number] | null;
  };
  /** The reference script's training batch size: reach it with gradient accumulation (see README, memory). */
  readonly referenceBatchSize: number;
  readonly description: string;
}

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;

export const MANET_CONFIGS = {
  msceleb: {
    numClasses: MSCELEB_NUM_CLASSES,
    labels: null,
    input: { channelOrder: 'rgb', mean: null, std: null },
    referenceBatchSize: 128,
    description: 'MS-Celeb-1M identity pretraining (upstream main.py pipeline: ToTensor only); the checkpoint heads.',
  },
  rafdb: {
    numClasses: 7,
    labels: RAFDB_LABELS,
    input: { channelOrder: 'rgb', ...IMAGENET },
    referenceBatchSize: 128,
    description: 'manet_rafdb.py: RAF-DB basic, 7 classes, RGB with ImageNet normalisation.',
  },
  affectnet: {
    numClasses: 8,
    labels: AFFECTNET_LABELS,
    input: { channelOrder: 'bgr', mean: null, std: null },
    referenceBatchSize: 128,
    description: 'manet_affectnet.py: AffectNet-8, BGR in [0, 1] without normalisation.',
  },
  ferplus: {
    numClasses: 8,
    labels: AFFECTNET_LABELS,
    input: { channelOrder: 'bgr', mean: null, std: null },
    referenceBatchSize: 32,
    description: 'manet_ferplus.py: FER+ relabelled to AffectNet order, BGR (grey) in [0, 1], batch 32 hard-coded.',
  },
} as const satisfies Record<string, ManetPretrainedConfig>;

export type ManetVariant = keyof typeof MANET_CONFIGS;

export interface ManetOptions {
  /** Classes per head. Default: the variant's, else 7. */
  numClasses?: number;
  /** Class order saved with the model. Default: the variant's labels, else the first `numClasses` of AffectNet's. */
  labels?: LabelSet;
  /** A named reference variant supplying `numClasses` and `labels`. */
  variant?: ManetVariant;
  /** Multi-scale path-2 order. Default 'forward' (the seed). */
  msScaleOrder?: MsScaleOrder;
  /** Seed for the initialisers (deterministic weights); omit for random. */
  seed?: number;
  /** Model name (tfjs). Default 'manet'. */
  name?: string;
  /**
   * Conv initialisation: 'kaiming' (default; the reference's Kaiming-normal, fan_out) or 'zeros', which skips the
   * random draw for weights a checkpoint overwrites anyway (about 50M values). The heads are always PyTorch-default.
   */
  convInit?: 'kaiming' | 'zeros';
  /** Channel order and normalisation the weights expect. Default: the variant's, else RGB in [0, 1]. */
  colorOrder?: 'rgb' | 'bgr';
  normalization?: InputConvention['normalization'];
}

export interface ResolvedManetConfig {
  /** The input convention, saved with the model so prediction prepares faces the way training did. */
  input: InputConvention;
  numClasses: number;
  labels: LabelSet | null;
  msScaleOrder: MsScaleOrder;
  seed: number | null;
  name: string;
  convInit: 'kaiming' | 'zeros';
}

/** Fills the defaults in one place and validates the options (errors name what to fix). */
export function resolveManetConfig(opts: ManetOptions = {}): ResolvedManetConfig {
  const variant =
    opts.variant === undefined
      ? undefined
      : MANET_CONFIGS[parseChoice('MA-Net variant', opts.variant, Object.keys(MANET_CONFIGS) as ManetVariant[])];
  const numClasses = opts.numClasses ?? variant?.numClasses ?? 7;
  assertPositiveInt('numClasses', numClasses);
  let labels: LabelSet | null = opts.labels ?? (variant ? variant.labels : null);
  if (labels === null && variant === undefined && numClasses <= AFFECTNET_LABELS.length)
    labels = AFFECTNET_LABELS.slice(0, numClasses);
  if (labels !== null && labels.length !== numClasses) {
    throw new FerInputError(
      `Expected labels to have numClasses = ${numClasses} entries, but got ${labels.length} (${labels.join(', ')}).`,
      'Pass matching numClasses and labels.',
    );
  }
  const msScaleOrder = parseChoice('msScaleOrder', opts.msScaleOrder ?? 'forward', MS_SCALE_ORDERS);
  if (opts.seed !== undefined && !Number.isInteger(opts.seed))
    throw new FerInputError(`Expected seed to be an integer, but got ${opts.seed}.`);
  const convInit = parseChoice('convInit', opts.convInit ?? 'kaiming', ['kaiming', 'zeros'] as const);
  const colorOrder = parseChoice('colorOrder', opts.colorOrder ?? variant?.input.channelOrder ?? 'rgb', [
    'rgb',
    'bgr',
  ] as const);
  const v = variant?.input;
  const normalization =
    opts.normalization !== undefined ? opts.normalization : v?.mean && v.std ? { mean: v.mean, std: v.std } : null;
  const input: InputConvention = { size: MANET_INPUT_SIZE, colorOrder, normalization };
  return { input, numClasses, labels, msScaleOrder, seed: opts.seed ?? null, name: opts.name ?? 'manet', convInit };
}
