import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { FerInputError, isEmotion, writeFileAtomic } from 'fer-core';
import { resolveConfig, type EsrConfig } from './configs';
import { EsrEnsemble } from './esr';
import { useFastStem } from './layers';

/** Manifest of a saved ensemble (`<dir>/esr.json`). Each part is a standard tfjs-layers model folder. */
export interface EsrManifest {
  format: 'fer-models-esr';
  formatVersion: 1;
  config: EsrConfig;
  /** Sub-folders in order: `base`, `branch_1`, …; each holds `model.json` + `weights.bin`. */
  parts: string[];
}

const MANIFEST = 'esr.json';

/**
 * Saves the ensemble to `dir`: `esr.json` (config, label order, colour order) plus one tfjs-layers model folder per
 * part (`base/`, `branch_<i>/`, each `model.json` + `weights.bin`). Every part loads in a browser with
 * `tf.loadLayersModel('<url>/base/model.json')` once the custom layers are registered (import fer-core).
 */
export async function saveEsr(esr: EsrEnsemble, dir: string): Promise<EsrManifest> {
  const parts = esr.parts();
  for (const { name, model } of parts) await saveLayersModel(model, path.join(dir, name));
  const manifest: EsrManifest = {
    format: 'fer-models-esr',
    formatVersion: 1,
    config: esr.config,
    parts: parts.map((p) => p.name),
  };
  await writeFileAtomic(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** Loads what `saveEsr` wrote. The returned ensemble owns its models. */
export async function loadEsr(dir: string): Promise<EsrEnsemble> {
  const file = path.join(dir, MANIFEST);
  let manifest: EsrManifest;
  try {
    manifest = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    throw new FerInputError(`Cannot read an ESR ensemble manifest at ${file} (${(e as Error).message}).`, {
      hint: 'Point to a folder written by EsrEnsemble.save().',
      cause: e,
    });
  }
  if (manifest.format !== 'fer-models-esr' || manifest.formatVersion !== 1) {
    throw new FerInputError(
      `Expected ${file} to be a fer-models-esr manifest of format version 1, but got format ${JSON.stringify(manifest.format)} version ${JSON.stringify(manifest.formatVersion)}.`,
    );
  }
  if (!manifest.config?.labels?.every(isEmotion))
    throw new FerInputError(`The labels in ${file} are not known emotions.`);
  const config = resolveConfig({ ...manifest.config });
  const [baseName] = manifest.parts;
  if (baseName !== 'base')
    throw new FerInputError(`Expected the first part in ${file} to be 'base', but got ${JSON.stringify(baseName)}.`);
  const models: tfl.LayersModel[] = [];
  try {
    for (const p of manifest.parts) {
      try {
        models.push(await loadLayersModelFromDir(path.join(dir, p)));
      } catch (e) {
        throw new FerInputError(`Cannot load part '${p}' of the ESR ensemble in ${dir} (${(e as Error).message}).`, {
          hint: 'The folder is incomplete: save the ensemble again.',
          cause: e,
        });
      }
    }
  } catch (e) {
    models.forEach((m) => m.dispose());
    throw e;
  }
  const [base, ...branches] = models;
  useFastStem(base);
  const esr = new EsrEnsemble(config, base, []);
  for (const b of branches) esr.addBranch(b);
  return esr;
}

/** Writes one LayersModel as tfjs's standard `model.json` + `weights.bin` (the format `tf.loadLayersModel` reads). */
export async function saveLayersModel(model: tfl.LayersModel, dir: string): Promise<void> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts?.weightData || !artifacts.weightSpecs) throw new Error(`Saving ${model.name} produced no weights.`);
  const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as object,
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
    convertedBy: null,
    weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
  };
  await writeFileAtomic(path.join(dir, 'weights.bin'), weights);
  await writeFileAtomic(path.join(dir, 'model.json'), JSON.stringify(modelJson));
}

/** Reads a `model.json` + weight files folder from disk into `tf.loadLayersModel` (Node has no `file://` without tfjs-node). */
export async function loadLayersModelFromDir(dir: string): Promise<tfl.LayersModel> {
  const json = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const specs = json.weightsManifest.flatMap((g) => g.weights);
  const buffers: Uint8Array[] = [];
  for (const g of json.weightsManifest)
    for (const p of g.paths) buffers.push(new Uint8Array(await fs.readFile(path.join(dir, p))));
  const total = buffers.reduce((s, b) => s + b.byteLength, 0);
  const weightData = new Uint8Array(total);
  let off = 0;
  for (const b of buffers) {
    weightData.set(b, off);
    off += b.byteLength;
  }
  return tfl.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData: weightData.buffer }),
  );
}
