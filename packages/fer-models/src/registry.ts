import { FerInputError, type InputConvention, type LabelSet, type ModelKind } from 'fer-core';
import { ESR_CONFIGS, createEsr, type EsrConfigName, type EsrEnsemble } from 'fer-models-esr';
import { MANET_CONFIGS, MANET_INPUT_SIZE, createManet, type Manet, type ManetVariant } from 'fer-models-manet';

/** Any model the suite ships; narrow with `model.kind`. */
export type Model = EsrEnsemble | Manet;

/**
 * A registered name's pretrained config: what the weights were trained for and how to feed them. Weights are
 * imported (`loadModel`), never downloaded.
 */
export interface ModelInfo {
  /** Canonical name, e.g. `desr-9.rafdb`. */
  name: string;
  kind: ModelKind;
  /** ESR: branches of the trained ensemble; MA-Net: its two heads. */
  branches: number;
  /** Class order of the logits (`null`: MS-Celeb identities). */
  labels: LabelSet | null;
  input: InputConvention;
  description: string;
}

export interface CreateModelOptions {
  /** Class order of the classifier. Default: the pretrained config's. A different set gets a fresh classifier. */
  labels?: LabelSet;
  /** Seed for the PyTorch-default initialisers; omit for random. */
  seed?: number;
  /** ESR: branches to create now (default: the name's count; the reference grows from 1 with `addBranch`). */
  branches?: number;
  /** ESR: square input side (default 96). MA-Net's is fixed at 224. */
  inputSize?: number;
  /** Input convention overrides (default: the pretrained config's). */
  colorOrder?: InputConvention['colorOrder'];
  normalization?: InputConvention['normalization'];
}

const ESR_TAGS = { affectnet: 'desr9-affectnet', ferplus: 'desr9-ferplus', rafdb: 'desr9-rafdb' } as const;
const MANET_TAGS = ['rafdb', 'affectnet', 'ferplus', 'msceleb'] as const;

/** Parsed `<architecture>[.<pretrained tag>]`. */
interface ParsedName {
  kind: ModelKind;
  branches: number;
  /** ESR: an `ESR_CONFIGS` key; MA-Net: a `MANET_CONFIGS` key. */
  config: EsrConfigName | ManetVariant;
  canonical: string;
}

const NAME_HELP =
  "Names: 'esr-<n>' (upstream ESR, AffectNet), 'desr-<n>[.affectnet|.ferplus|.rafdb]' (diversified ESR with CBAM), " +
  "'manet[.rafdb|.affectnet|.ferplus|.msceleb]'; <n> is the branch count, e.g. 'desr-9.rafdb'.";

function parseName(name: string): ParsedName {
  const m = /^(esr|desr)-(\d+)(?:\.([a-z]+))?$/.exec(name) ?? /^(manet)()(?:\.([a-z]+))?$/.exec(name);
  if (!m) throw new FerInputError(`Unknown model name '${name}'.`, NAME_HELP);
  const [, arch, n, tag] = m;
  if (arch === 'manet') {
    const t = (tag ?? 'rafdb') as ManetVariant;
    if (!MANET_TAGS.includes(t)) throw new FerInputError(`Unknown MA-Net config '${tag}' in '${name}'.`, NAME_HELP);
    return { kind: 'manet', branches: 2, config: t, canonical: `manet.${t}` };
  }
  const branches = Number(n);
  if (!Number.isInteger(branches) || branches < 1)
    throw new FerInputError(`Expected a branch count of at least 1 in '${name}', but got ${n}.`, NAME_HELP);
  if (arch === 'esr') {
    if (tag !== undefined && tag !== 'affectnet')
      throw new FerInputError(`Upstream ESR exists only as 'esr-<n>.affectnet', but got '${name}'.`, NAME_HELP);
    return { kind: 'esr', branches, config: 'esr9-affectnet', canonical: `esr-${branches}.affectnet` };
  }
  const t = (tag ?? 'affectnet') as keyof typeof ESR_TAGS;
  if (!(t in ESR_TAGS)) throw new FerInputError(`Unknown diversified-ESR config '${tag}' in '${name}'.`, NAME_HELP);
  return { kind: 'esr', branches, config: ESR_TAGS[t], canonical: `desr-${branches}.${t}` };
}

/** The pretrained config a name stands for (labels, input convention, branches). */
export function modelInfo(name: string): ModelInfo {
  const p = parseName(name);
  if (p.kind === 'manet') {
    const c = MANET_CONFIGS[p.config as ManetVariant];
    const { channelOrder, mean, std } = c.input;
    return {
      name: p.canonical,
      kind: 'manet',
      branches: 2,
      labels: c.labels,
      input: { size: MANET_INPUT_SIZE, colorOrder: channelOrder, normalization: mean && std ? { mean, std } : null },
      description: c.description,
    };
  }
  const c = ESR_CONFIGS[p.config as EsrConfigName];
  return {
    name: p.canonical,
    kind: 'esr',
    branches: p.branches,
    labels: c.labels,
    input: { size: c.inputSize, colorOrder: c.colorOrder, normalization: c.normalization },
    description: c.description,
  };
}

/** Every registered pretrained config (ESR with the reference's 9 branches; any `<n>` works in `createModel`). */
export function listModels(): ModelInfo[] {
  return [
    'esr-9.affectnet',
    ...Object.keys(ESR_TAGS).map((t) => `desr-9.${t}`),
    ...MANET_TAGS.map((t) => `manet.${t}`),
  ].map(modelInfo);
}

/**
 * A new model by name, PyTorch-default initialised (timm's `create_model`): `createModel('desr-9.rafdb')`,
 * `createModel('esr-1', { labels, seed })`, `createModel('manet', { labels })`. The caller owns it (`dispose`).
 */
export function createModel(name: `esr-${string}` | `desr-${string}`, opts?: CreateModelOptions): EsrEnsemble;
export function createModel(name: `manet${string}`, opts?: CreateModelOptions): Manet;
export function createModel(name: string, opts?: CreateModelOptions): Model;
export function createModel(name: string, opts: CreateModelOptions = {}): Model {
  const p = parseName(name);
  if (p.kind === 'manet') {
    const variant = p.config as ManetVariant;
    const labels = opts.labels ?? MANET_CONFIGS[variant].labels ?? undefined;
    if (opts.inputSize !== undefined && opts.inputSize !== MANET_INPUT_SIZE)
      throw new FerInputError(
        `MA-Net takes ${MANET_INPUT_SIZE} px inputs, but inputSize ${opts.inputSize} was asked for.`,
      );
    return createManet({
      variant,
      numClasses: labels ? labels.length : MANET_CONFIGS[variant].numClasses,
      labels,
      seed: opts.seed,
      colorOrder: opts.colorOrder,
      normalization: opts.normalization,
    });
  }
  const base = ESR_CONFIGS[p.config as EsrConfigName];
  const labels = opts.labels ?? base.labels;
  return createEsr(
    {
      base: p.config as EsrConfigName,
      numClasses: labels.length,
      labels,
      valenceArousal: base.valenceArousal && labels.length === 8,
      inputSize: opts.inputSize,
      colorOrder: opts.colorOrder,
      normalization: opts.normalization,
      ensembleSize: p.branches,
    },
    { initialBranches: opts.branches ?? p.branches, seed: opts.seed },
  );
}
