import * as tf from '@tensorflow/tfjs-core';
import { AFFECTNET_LABELS, FerInputError, RAFDB_LABELS, type LabelSet, type ModelKind } from 'fer-core';
import type { EsrEnsemble } from 'fer-models-esr';
import type { Manet } from 'fer-models-manet';
import { esrFromArtifacts, fromTorchStateDicts, isEsrArtifacts } from 'fer-models-esr';
import { createManet, fromMsCeleb, isManetArtifacts, manetFromArtifacts } from 'fer-models-manet';
import { loadTorchStateDict, MSCELEB_NUM_CLASSES } from 'fer-models-manet/internal';

import { parseStateDict, type RawTensor } from 'fer-torch';
import type { Model } from './registry';

/** Bytes of one PyTorch (`torch.save` zip or legacy) or safetensors file. */
export type CheckpointBytes = Uint8Array | ArrayBuffer;

/**
 * What `loadModel` reads:
 * - a URL string (`…/model.json`, or a folder URL to which `/model.json` is appended), fetched with `tf.io.http`;
 *   in Node, `fer-models/node`'s `loadModel` also takes a folder or file path;
 * - a `tf.io.IOHandler` (`tf.io.browserFiles`, `tf.io.fromMemory`, fer-core/node's `fileHandler`, …);
 * - the bytes of a PyTorch checkpoint: one file (MA-Net), or several (an ESR base and its branches, in order).
 */
export type ModelSource = string | tf.io.IOHandler | CheckpointBytes | readonly CheckpointBytes[];

export interface LoadModelOptions {
  /** Class order wanted. When the saved labels differ, the classifier is reset (fresh, seeded with `seed`). */
  labels?: LabelSet;
  /** Seed of a fresh classifier (label reset, MS-Celeb heads). */
  seed?: number;
  /** `fetch` used for URLs (default: the global one). */
  fetchFunc?: typeof fetch;
  /** Require this kind (the result is typed accordingly); another kind throws, naming what was found. */
  expect?: ModelKind;
  /** What error messages call checkpoint bytes, one name per file (fer-models/node passes the paths). */
  sourceNames?: readonly string[];
}

const sameLabels = (a: LabelSet | null, b: LabelSet) =>
  a !== null && a.length === b.length && a.every((l, i) => l === b[i]);

/**
 * Loads any model the suite saves or imports, detecting ESR or MA-Net once, and resets the classifier when
 * `opts.labels` differ from the model's. The caller owns the model (`dispose`).
 * @example const esr = await loadModel('https://example.org/desr9/model.json');
 */
export function loadModel(source: ModelSource, opts: LoadModelOptions & { expect: 'esr' }): Promise<EsrEnsemble>;
export function loadModel(source: ModelSource, opts: LoadModelOptions & { expect: 'manet' }): Promise<Manet>;
export function loadModel(source: ModelSource, opts?: LoadModelOptions): Promise<Model>;
export async function loadModel(source: ModelSource, opts: LoadModelOptions = {}): Promise<Model> {
  const model = await loadAsSaved(source, opts);
  try {
    if (opts.expect && model.kind !== opts.expect) {
      const name = (k: ModelKind) => (k === 'esr' ? 'an ESR ensemble' : 'an MA-Net');
      throw new FerInputError(`Expected ${name(opts.expect)}, but the source holds ${name(model.kind)}.`);
    }
    if (opts.labels && !sameLabels(model.labels, opts.labels)) model.resetClassifier(opts.labels, { seed: opts.seed });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

async function loadAsSaved(source: ModelSource, opts: LoadModelOptions): Promise<Model> {
  if (typeof source === 'string') {
    const url = /\.json(\?.*)?$/.test(source) ? source : `${source.replace(/\/$/, '')}/model.json`;
    return fromArtifacts(await tf.io.http(url, { fetchFunc: opts.fetchFunc }).load!(), url);
  }
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) return fromTorch([source], opts);
  if (Array.isArray(source)) return fromTorch(source as readonly CheckpointBytes[], opts);
  const handler = source as tf.io.IOHandler;
  if (typeof handler.load !== 'function') {
    throw new FerInputError(
      'Expected a URL, a tf.io handler with a load method, or checkpoint bytes, but got an object without load().',
    );
  }
  return fromArtifacts(await handler.load(), 'the IOHandler');
}

/** The one place that tells a saved ESR from a saved MA-Net. */
export async function fromArtifacts(a: tf.io.ModelArtifacts, from = 'the artifact'): Promise<Model> {
  if (isEsrArtifacts(a)) return esrFromArtifacts(a);
  if (isManetArtifacts(a)) return manetFromArtifacts(a);
  throw new FerInputError(
    `${from} holds no model of this suite (neither an ESR ensemble nor an MA-Net).`,
    'Load a model saved with model.save(handler), or a PyTorch checkpoint.',
  );
}

type TorchPart = 'manet' | 'esr-base' | 'esr-branch';

/** The one place that tells ESR from MA-Net state dicts (keys without DataParallel's `module.` prefix). */
function torchPart(sd: ReadonlyMap<string, RawTensor>): TorchPart | null {
  const keys = [...sd.keys()].map((k) => (k.startsWith('module.') ? k.slice(7) : k));
  if (keys.some((k) => k.startsWith('layer3_1_p1.'))) return 'manet';
  if (keys.includes('conv1.weight') && keys.includes('fc.weight')) return 'esr-branch';
  if (keys.includes('conv1.weight') && keys.includes('bn4.weight')) return 'esr-base';
  return null;
}

async function fromTorch(files: readonly CheckpointBytes[], opts: LoadModelOptions): Promise<Model> {
  if (files.length === 0) throw new FerInputError('Expected at least one checkpoint file, but got none.');
  const dicts: ReadonlyMap<string, RawTensor>[] = [];
  for (const [i, f] of files.entries()) {
    const bytes = f instanceof Uint8Array ? f : new Uint8Array(f);
    // The genuine MS-Celeb file pickles a RecorderMeter next to the weights: keep it inert, never execute it.
    dicts.push(await parseStateDict(bytes, { unknownGlobals: 'inert', source: opts.sourceNames?.[i] }));
  }
  const parts = dicts.map(torchPart);
  if (parts.length === 1 && parts[0] === 'manet') return manetFromTorch(dicts[0], opts);
  if (parts[0] === 'esr-base' && parts.slice(1).every((p) => p === 'esr-branch'))
    return fromTorchStateDicts(dicts[0], dicts.slice(1)).esr;
  throw new FerInputError(
    `Cannot tell what the checkpoint holds (file kinds: ${parts.map((p) => p ?? 'unknown').join(', ')}).`,
    'Pass one MA-Net file, or an ESR base (Net-Base-Shared_Representations.pt) followed by its branches in order.',
  );
}

async function manetFromTorch(sd: ReadonlyMap<string, RawTensor>, opts: LoadModelOptions): Promise<Model> {
  const head = sd.get('fc_1.weight') ?? sd.get('module.fc_1.weight');
  const saved = head?.shape[0];
  // MS-Celeb identity heads, or a class count other than the one asked for: fresh heads.
  if (saved === undefined || saved === MSCELEB_NUM_CLASSES || (opts.labels && opts.labels.length !== saved)) {
    const labels = opts.labels ?? RAFDB_LABELS;
    return fromMsCeleb(sd, { numClasses: labels.length, labels, seed: opts.seed });
  }
  const labels = saved === 7 ? RAFDB_LABELS : saved === 8 ? AFFECTNET_LABELS : null;
  const manet = createManet({ numClasses: saved, labels: labels ?? undefined, convInit: 'zeros', seed: opts.seed });
  try {
    const prefixed = [...sd.keys()].some((k) => k.startsWith('module.'));
    loadTorchStateDict(manet, sd, { stripPrefix: prefixed ? 'module.' : undefined, source: 'MA-Net checkpoint' });
  } catch (e) {
    manet.dispose();
    throw e;
  }
  return manet;
}
