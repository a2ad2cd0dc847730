import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  CBAM_TORCH_KEYS,
  FerInputError,
  TORCH_BN_KEYS,
  TORCH_CONV_KEYS,
  TORCH_LINEAR_KEYS,
  type TorchKeySpec,
  type TorchTransform,
} from 'fer-core';
import { fromFloat32, toFloat32, type RawTensor } from 'fer-torch';
import type { EsrVariant } from '../configs';

/** One state-dict entry of an ESR part: its PyTorch key, the tfjs weight it becomes, the layout change. */
export interface EsrKeyEntry {
  /** PyTorch `state_dict()` key, e.g. `cbam1.ChannelGate.mlp.1.weight`. */
  torch: string;
  /** tfjs weight name inside the part, e.g. `cbam1/mlp1_kernel`. */
  tfjs: string;
  transform: TorchTransform;
}

/**
 * The key map of one ESR part, in PyTorch `state_dict()` order (conv1-4, bn1-4, [cbam1-4], [fc, fc_dimensional]).
 * Pure: the single source of truth for import (`loadTorchStateDict`) and export (`toTorchStateDict`).
 * - reference (`model/diversified_esr.py`): base 68 entries, branch 70 (`cbam` variant);
 * - upstream ESR-9 (`model/ml/esr_9.py`): base 28, branch 32 with `fc_dimensional` (`original`).
 */
export function esrKeyMap(
  part: 'base' | 'branch',
  opts: { variant: EsrVariant; valenceArousal?: boolean },
): EsrKeyEntry[] {
  const out: EsrKeyEntry[] = [];
  const add = (mod: string, layer: string, specs: readonly TorchKeySpec[]) => {
    for (const s of specs) out.push({ torch: `${mod}.${s.torch}`, tfjs: `${layer}/${s.tfjs}`, transform: s.transform });
  };
  for (let i = 1; i <= 4; i++) add(`conv${i}`, `conv${i}`, TORCH_CONV_KEYS);
  for (let i = 1; i <= 4; i++) add(`bn${i}`, `bn${i}`, TORCH_BN_KEYS);
  if (opts.variant === 'cbam') for (let i = 1; i <= 4; i++) add(`cbam${i}`, `cbam${i}`, CBAM_TORCH_KEYS);
  if (part === 'branch') {
    add('fc', 'fc', TORCH_LINEAR_KEYS);
    if (opts.valenceArousal) add('fc_dimensional', 'fc_dimensional', TORCH_LINEAR_KEYS);
  }
  return out;
}

/** What `loadTorchStateDict` did. */
export interface LoadReport {
  loaded: string[];
  /** PyTorch keys the part expects but the state dict lacks (left at their current values). */
  missing: string[];
  /** State-dict keys the part has no place for (ignored). */
  unexpected: string[];
}

export interface LoadStateDictOptions {
  /** Throw on missing or unexpected keys, as PyTorch's `load_state_dict(strict=True)`. Default true. */
  strict?: boolean;
  /** PyTorch keys to leave untouched (e.g. `fc.weight`, `fc.bias` when the classifier is replaced). */
  skip?: readonly string[];
  /** Prefix stripped from state-dict keys (e.g. `module.`). */
  stripPrefix?: string;
}

function weightByName(model: tfl.LayersModel): Map<string, tfl.LayerVariable> {
  return new Map(model.weights.map((w) => [w.originalName, w]));
}

/** PyTorch layout → tfjs layout, as a new tensor (caller owns). */
export function torchToTfjs(t: RawTensor, transform: TorchTransform, key: string): tf.Tensor {
  const values = toFloat32(t);
  return tf.tidy(() => {
    switch (transform) {
      case 'conv':
        if (t.shape.length !== 4)
          throw new FerInputError(
            `Expected '${key}' to be a 4-D OIHW conv weight, but got shape [${t.shape.join(', ')}].`,
          );
        return tf.transpose(tf.tensor4d(values, t.shape as [number, number, number, number]), [2, 3, 1, 0]);
      case 'linear':
        if (t.shape.length !== 2)
          throw new FerInputError(
            `Expected '${key}' to be a 2-D [out, in] linear weight, but got shape [${t.shape.join(', ')}].`,
          );
        return tf.transpose(tf.tensor2d(values, t.shape as [number, number]));
      case 'count':
        return tf.scalar(values[0] ?? 0);
      case 'copy':
        return tf.tensor(values, t.shape);
    }
  });
}

/** tfjs layout → PyTorch layout (float32, or int64 for counters). */
export function tfjsToTorch(value: tf.Tensor, transform: TorchTransform): RawTensor {
  if (transform === 'count') {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setBigInt64(0, BigInt(Math.round(value.dataSync()[0])), true);
    return { dtype: 'int64', shape: [], data };
  }
  const t = tf.tidy(() =>
    transform === 'conv'
      ? tf.transpose(value, [3, 2, 0, 1])
      : transform === 'linear'
        ? tf.transpose(value)
        : tf.clone(value),
  );
  try {
    return fromFloat32(t.dataSync() as Float32Array, t.shape);
  } finally {
    t.dispose();
  }
}

/**
 * Writes a PyTorch state dict into one ESR part (`base` or a branch), converting layouts per `esrKeyMap`.
 * Shapes are checked against the part; strict mode (default) also refuses missing and unexpected keys.
 */
export function loadTorchStateDict(
  model: tfl.LayersModel,
  stateDict: ReadonlyMap<string, RawTensor>,
  entries: readonly EsrKeyEntry[],
  opts: LoadStateDictOptions = {},
): LoadReport {
  const strict = opts.strict ?? true;
  const skip = new Set(opts.skip ?? []);
  const prefix = opts.stripPrefix ?? '';
  const sd = new Map<string, RawTensor>();
  for (const [k, v] of stateDict) sd.set(prefix && k.startsWith(prefix) ? k.slice(prefix.length) : k, v);
  const weights = weightByName(model);
  const known = new Set(entries.map((e) => e.torch));
  const report: LoadReport = {
    loaded: [],
    missing: entries.filter((e) => !sd.has(e.torch) && !skip.has(e.torch)).map((e) => e.torch),
    unexpected: [...sd.keys()].filter((k) => !known.has(k) && !skip.has(k)),
  };
  if (strict && (report.missing.length || report.unexpected.length)) {
    throw new FerInputError(
      `State dict does not fit ESR part '${model.name}': missing [${report.missing.join(', ')}], unexpected [${report.unexpected.join(', ')}].`,
      'Check the variant (cbam vs original) and the valence/arousal head, or load with { strict: false }.',
    );
  }
  for (const e of entries) {
    const raw = sd.get(e.torch);
    if (!raw || skip.has(e.torch)) continue;
    const w = weights.get(e.tfjs);
    if (!w) throw new Error(`ESR part '${model.name}' has no weight '${e.tfjs}' (key map and model disagree).`);
    const t = torchToTfjs(raw, e.transform, e.torch);
    try {
      if (t.shape.length !== w.shape.length || t.shape.some((d, i) => d !== w.shape[i])) {
        throw new FerInputError(
          `Expected '${e.torch}' to fill ${e.tfjs} of shape [${w.shape.join(', ')}], but it converts to [${t.shape.join(', ')}].`,
          'The checkpoint belongs to a different architecture or class count.',
        );
      }
      w.write(t);
    } finally {
      t.dispose();
    }
    report.loaded.push(e.torch);
  }
  return report;
}

/** One ESR part as a PyTorch state dict (PyTorch key order and layouts); for fer-torch's export. */
export function toTorchStateDict(model: tfl.LayersModel, entries: readonly EsrKeyEntry[]): Map<string, RawTensor> {
  const weights = weightByName(model);
  const out = new Map<string, RawTensor>();
  for (const e of entries) {
    const w = weights.get(e.tfjs);
    if (!w) throw new Error(`ESR part '${model.name}' has no weight '${e.tfjs}'.`);
    out.set(e.torch, tfjsToTorch(w.read(), e.transform));
  }
  return out;
}
