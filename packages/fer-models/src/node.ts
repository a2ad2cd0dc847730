import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { FerInputError } from 'fer-core';
import { fileHandler } from 'fer-core/node';
import { BASE_FILE, branchFile } from 'fer-models-esr/internal';
import { LEGACY_MANIFEST, loadLegacyEsrFolder } from 'fer-models-esr/node';
import { loadModel as loadFromSource, type LoadModelOptions, type ModelSource } from './load';
import type { EsrEnsemble } from 'fer-models-esr';
import type { Manet } from 'fer-models-manet';
import type { Model } from './registry';

export { createModel, listModels, modelInfo } from './registry';
export type { Model, ModelInfo, CreateModelOptions } from './registry';
export type { ModelSource, CheckpointBytes, LoadModelOptions } from './load';

/**
 * `loadModel` for Node: a string that is not an http(s) URL is a path, resolved here once:
 * - a folder with `model.json` (a model saved with `fileHandler`), or `esr.json` (an ESR saved by fer 0.1.0);
 * - a reference ESR checkpoint folder (`Net-Base-Shared_Representations.pt` + `Net-Branch_<i>.pt`);
 * - a `model.json` file, or a PyTorch / safetensors file (MA-Net).
 * Everything else (URLs, handlers, bytes) goes to the browser-safe `loadModel`.
 */
export function loadModel(source: ModelSource, opts: LoadModelOptions & { expect: 'esr' }): Promise<EsrEnsemble>;
export function loadModel(source: ModelSource, opts: LoadModelOptions & { expect: 'manet' }): Promise<Manet>;
export function loadModel(source: ModelSource, opts?: LoadModelOptions): Promise<Model>;
export async function loadModel(source: ModelSource, opts: LoadModelOptions = {}): Promise<Model> {
  if (typeof source !== 'string' || /^https?:\/\//.test(source)) return loadFromSource(source, opts);
  const { source: resolved, names } = await resolvePath(source);
  return loadFromSource(resolved, { ...opts, sourceNames: names });
}

async function resolvePath(p: string): Promise<{ source: ModelSource; names?: string[] }> {
  let stat;
  try {
    stat = await fs.stat(p);
  } catch {
    throw new FerInputError(
      `Nothing at ${p}.`,
      'Point to a saved model folder (model.json), a reference ESR checkpoint folder or a PyTorch file.',
    );
  }
  if (!stat.isDirectory()) {
    if (path.basename(p) === 'model.json') return { source: fileHandler(path.dirname(p)) };
    return { source: new Uint8Array(await fs.readFile(p)), names: [p] };
  }
  if (existsSync(path.join(p, 'model.json'))) return { source: fileHandler(p) };
  if (existsSync(path.join(p, LEGACY_MANIFEST))) return { source: legacyHandler(p) };
  if (existsSync(path.join(p, BASE_FILE))) {
    const names = [path.join(p, BASE_FILE)];
    for (let i = 1; existsSync(path.join(p, branchFile(i))); i++) names.push(path.join(p, branchFile(i)));
    const files = await Promise.all(names.map((f) => fs.readFile(f)));
    return { source: files.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)), names };
  }
  throw new FerInputError(
    `No model in ${p}.`,
    `Expected model.json (saved by fer), ${LEGACY_MANIFEST} (saved by fer 0.1.0) or ${BASE_FILE} + ${branchFile(1)} (saved by the reference).`,
  );
}

/** A 0.1.0 ESR folder as a handler, so it takes the same path as every other source. */
function legacyHandler(dir: string) {
  return {
    async load() {
      const esr = await loadLegacyEsrFolder(dir);
      try {
        let artifacts: import('@tensorflow/tfjs-core').io.ModelArtifacts | undefined;
        await esr.save({
          async save(a) {
            artifacts = a;
            return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
          },
        });
        return artifacts!;
      } finally {
        esr.dispose();
      }
    },
  };
}
