import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { FerInputError, type TorchTransform } from 'fer-core';
import { loadReport, parseStateDict, toFloat32, type LoadReport, type RawTensor } from 'fer-torch';
import { createManet, type Manet } from '../manet';
import type { ManetOptions } from '../configs';
import { MANET_HEAD_KEYS, manetTorchEntries, type ManetTorchEntry } from './torch-keys';

/** What a checkpoint load did; `fromMsCeleb` attaches it to the model as `loadReport`. */
export interface ManetLoadReport {
  source: string;
  /** Prefix stripped from every key (`module.` for DataParallel checkpoints), or null. */
  strippedPrefix: string | null;
  /** Entries copied into the model. */
  loaded: number;
  /** Float values copied. */
  values: number;
  /** Checkpoint entries deliberately not loaded (e.g. the 12,666-class heads), with their shapes. */
  dropped: Array<{ key: string; shape: number[] }>;
  /** Model entries the checkpoint lacked (kept at their fresh initialisation); empty for a full checkpoint. */
  missing: string[];
  /** Heads initialised fresh: `fc_1`, `fc_2` with [numClasses, 512] weights. */
  freshHeads: string[];
  /** fer-torch's PyTorch-style comparison (matched / missing / unexpected / shape mismatches) of what was loaded. */
  torch: LoadReport;
}

export interface LoadTorchOptions {
  /** Strip this prefix from every key that has it (e.g. `module.`). */
  stripPrefix?: string;
  /** Keys (after stripping) to leave out; they are reported as dropped. */
  drop?: readonly string[];
  /** Allow model entries missing from the checkpoint (they keep their current values). Default false. */
  allowMissing?: boolean;
  /** Where the tensors came from (for messages). */
  source?: string;
}

type ManetLike = Pick<Manet, 'model' | 'config'>;

function variablesByName(model: tfl.LayersModel): Map<string, tfl.LayerVariable> {
  return new Map(model.weights.map((w) => [w.originalName, w]));
}

/** PyTorch layout -> tfjs layout for one entry. The result is owned by the caller. */
export function torchToTfjs(values: tf.Tensor, transform: TorchTransform): tf.Tensor {
  return tf.tidy(() => {
    switch (transform) {
      case 'conv':
        return tf.transpose(values, [2, 3, 1, 0]); // OIHW -> HWIO
      case 'linear':
        return tf.transpose(values); // [out, in] -> [in, out]
      default:
        return tf.clone(values);
    }
  });
}

/** tfjs layout -> PyTorch layout (for comparing weights and gradients with PyTorch). Owned by the caller. */
export function tfjsToTorch(values: tf.Tensor, transform: TorchTransform): tf.Tensor {
  return tf.tidy(() => {
    switch (transform) {
      case 'conv':
        return tf.transpose(values, [3, 2, 0, 1]); // HWIO -> OIHW
      case 'linear':
        return tf.transpose(values);
      default:
        return tf.clone(values);
    }
  });
}

/**
 * The tfjs variable that holds PyTorch entry `key` (without `module.`), and its entry (shape, transform).
 * The variable is owned by the model.
 */
export function torchParameter(manet: ManetLike, key: string): { variable: tf.Variable; entry: ManetTorchEntry } {
  const entry = manetTorchEntries(manet.config).find((e) => e.key === key);
  if (!entry)
    throw new FerInputError(
      `Unknown MA-Net state-dict key '${key}'.`,
      'Keys look like layer3_1_p1.0.conv1.weight (no module. prefix).',
    );
  const v = variablesByName(manet.model).get(`${entry.layer}/${entry.weight}`);
  if (!v) throw new Error(`The model has no variable '${entry.layer}/${entry.weight}' for '${key}'.`);
  return { variable: v.read() as tf.Variable, entry };
}

/**
 * Copies a PyTorch-named state dict into the model (layouts converted). Strict by default: unknown keys, shape
 * mismatches and (unless `allowMissing`) missing keys throw, naming the keys and the fix.
 */
export function loadTorchStateDict(
  manet: ManetLike,
  stateDict: ReadonlyMap<string, RawTensor>,
  opts: LoadTorchOptions = {},
): ManetLoadReport {
  const source = opts.source ?? 'state dict';
  const prefix = opts.stripPrefix ?? null;
  const drop = new Set(opts.drop ?? []);
  const entries = manetTorchEntries(manet.config);
  const byKey = new Map(entries.map((e) => [e.key, e]));
  const vars = variablesByName(manet.model);

  const renamed = new Map<string, RawTensor>();
  for (const [k, t] of stateDict) {
    const key = prefix !== null && k.startsWith(prefix) ? k.slice(prefix.length) : k;
    // Some converters store the 0-d num_batches_tracked as [1]; it is the same single counter.
    const scalar = byKey.get(key)?.shape.length === 0 && t.shape.length === 1 && t.shape[0] === 1;
    renamed.set(key, scalar ? { ...t, shape: [] } : t);
  }

  const unexpected = [...renamed.keys()].filter((k) => !byKey.has(k) && !drop.has(k));
  if (unexpected.length > 0) {
    const hint =
      prefix === null && unexpected.some((k) => k.startsWith('module.'))
        ? "The keys carry DataParallel's 'module.' prefix: pass stripPrefix: 'module.'."
        : 'Is this an MA-Net (diversified_manet.py / upstream manet.py) checkpoint?';
    throw new FerInputError(
      `${source}: ${unexpected.length} unexpected key(s) for MA-Net, e.g. ${unexpected.slice(0, 5).join(', ')}.`,
      hint,
    );
  }
  const dropped = [...renamed.entries()].filter(([k]) => drop.has(k)).map(([key, t]) => ({ key, shape: [...t.shape] }));
  const missing = entries.filter((e) => !renamed.has(e.key) && !drop.has(e.key)).map((e) => e.key);
  if (missing.length > 0 && !opts.allowMissing) {
    throw new FerInputError(
      `${source}: ${missing.length} of ${entries.length} MA-Net entries are missing, e.g. ${missing.slice(0, 5).join(', ')}.`,
      'Pass allowMissing: true to keep the fresh initialisation for them (e.g. for a partial checkpoint).',
    );
  }
  // Validate every shape before writing anything.
  const kept = new Map([...renamed].filter(([k]) => !drop.has(k)));
  const torch = loadReport(new Map(entries.filter((e) => !drop.has(e.key)).map((e) => [e.key, e.shape])), kept, {
    strict: !opts.allowMissing,
  });
  const bad = torch.shapeMismatches[0];
  if (bad) {
    throw new FerInputError(
      `${source}: '${bad.key}' has shape [${bad.actual.join(', ')}], but MA-Net needs [${bad.expected.join(', ')}]` +
        (torch.shapeMismatches.length > 1 ? ` (and ${torch.shapeMismatches.length - 1} more mismatches).` : '.'),
      bad.key.startsWith('fc_')
        ? `Drop the heads (drop: ${JSON.stringify(MANET_HEAD_KEYS)}) or build the model with numClasses ${bad.actual[0]}.`
        : undefined,
    );
  }
  let loaded = 0;
  let values = 0;
  for (const [key, t] of renamed) {
    const e = byKey.get(key);
    if (!e || drop.has(key)) continue;
    const v = vars.get(`${e.layer}/${e.weight}`);
    if (!v) throw new Error(`The model has no variable '${e.layer}/${e.weight}' for '${key}'.`);
    tf.tidy(() => {
      v.write(torchToTfjs(tf.tensor(floatValues(t), t.shape, 'float32'), e.transform));
    });
    loaded++;
    values += t.shape.reduce((a, b) => a * b, 1);
  }
  return { source, strippedPrefix: prefix, loaded, values, dropped, missing, freshHeads: [], torch };
}

/** float32 values of a raw tensor: a fast copy for aligned little-endian float32, else fer-torch's conversion. */
function floatValues(t: RawTensor): Float32Array {
  if (t.dtype === 'float32' && t.data.byteOffset % 4 === 0 && new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
    return new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4).slice();
  }
  return toFloat32(t);
}

/**
 * The model as a PyTorch-named state dict (the reference's `MANet.state_dict()` keys and layouts, in its order;
 * `num_batches_tracked` as int64), e.g. for fer-torch's `writeTorchStateDict` or `serializeTorchStateDict`.
 * Keys get `prefix` (pass `'module.'` for the DataParallel layout the scripts save). Tensors own their bytes.
 */
export function toTorchStateDict(manet: ManetLike, prefix = ''): Map<string, RawTensor> {
  const vars = variablesByName(manet.model);
  const out = new Map<string, RawTensor>();
  for (const e of manetTorchEntries(manet.config)) {
    const v = vars.get(`${e.layer}/${e.weight}`);
    if (!v) throw new Error(`The model has no variable '${e.layer}/${e.weight}' for '${e.key}'.`);
    const t = tfjsToTorch(v.read(), e.transform);
    const values = t.dataSync() as Float32Array;
    t.dispose();
    if (e.transform === 'count') {
      const data = new Uint8Array(8);
      new DataView(data.buffer).setBigInt64(0, BigInt(Math.round(values[0])), true);
      out.set(prefix + e.key, { dtype: 'int64', shape: [], data });
    } else {
      out.set(prefix + e.key, {
        dtype: 'float32',
        shape: [...e.shape],
        data: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
      });
    }
  }
  return out;
}

export interface FromMsCelebOptions extends ManetOptions {
  /** Allow a checkpoint without every backbone entry (missing ones keep their fresh init). Default false. */
  allowMissing?: boolean;
}

/**
 * MA-Net initialised from the MS-Celeb-1M checkpoint (docs/method.md#msceleb-checkpoint): the `state_dict` with
 * `module.` prefixes is loaded strictly, the 12,666-class heads are dropped, and `fc_1`/`fc_2` are fresh `Linear(512,
 * numClasses)` layers with PyTorch's default init. Accepts the bytes of the genuine `Pretrained_on_MSCeleb.pth.tar`
 * (torch.save zip or legacy, `{'state_dict': …}`), a converted `.safetensors` file (keys with or without `module.`), or
 * the tensors themselves. The returned model (owned by the caller) carries the `loadReport`.
 */
export async function fromMsCeleb(
  checkpoint: Uint8Array | ReadonlyMap<string, RawTensor>,
  opts: FromMsCelebOptions = {},
): Promise<Manet & { loadReport: ManetLoadReport }> {
  const source = checkpoint instanceof Uint8Array ? 'MS-Celeb checkpoint' : 'MS-Celeb state dict';
  const tensors = checkpoint instanceof Uint8Array ? await readCheckpoint(checkpoint) : checkpoint;
  const hasPrefix = [...tensors.keys()].some((k) => k.startsWith('module.'));
  // Backbone weights are overwritten: skip their random draw unless some may stay (allowMissing).
  const manet = createManet({ convInit: opts.allowMissing ? 'kaiming' : 'zeros', ...opts });
  try {
    const report = loadTorchStateDict(manet, tensors, {
      stripPrefix: hasPrefix ? 'module.' : undefined,
      drop: MANET_HEAD_KEYS,
      allowMissing: opts.allowMissing,
      source,
    });
    report.freshHeads = ['fc_1', 'fc_2'];
    return Object.assign(manet, { loadReport: report });
  } catch (e) {
    manet.dispose();
    throw e;
  }
}

/**
 * torch.save zip or legacy file, or safetensors (sniffed). The genuine file pickles the training script's
 * RecorderMeter next to `state_dict` (docs/method.md#msceleb-checkpoint), so unknown globals are kept inert, never
 * executed.
 */
async function readCheckpoint(bytes: Uint8Array): Promise<ReadonlyMap<string, RawTensor>> {
  return parseStateDict(bytes, { unknownGlobals: 'inert' });
}
