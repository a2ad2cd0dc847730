import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { FerInputError, isEmotion } from 'fer-core';
import { fileHandler } from 'fer-core/node';
import { resolveEsrConfig } from './configs';
import { EsrEnsemble } from './esr';
import { useFastStem } from './layers';

/** Name of the manifest the first save format (0.1.0) wrote next to one tfjs folder per part. */
export const LEGACY_MANIFEST = 'esr.json';

/**
 * Reads an ensemble saved by fer 0.1.0 (`<dir>/esr.json` + `base/`, `branch_<i>/`, each `model.json` + `weights.bin`),
 * so folders users already have keep loading. New saves are one artifact (`EsrEnsemble.save`).
 */
export async function loadLegacyEsrFolder(dir: string): Promise<EsrEnsemble> {
  const file = path.join(dir, LEGACY_MANIFEST);
  let manifest: { format?: unknown; formatVersion?: unknown; config?: { labels?: unknown[] }; parts?: string[] };
  try {
    manifest = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    throw new FerInputError(`Cannot read the ESR manifest ${file} (${(e as Error).message}).`, { cause: e });
  }
  if (manifest.format !== 'fer-models-esr' || manifest.formatVersion !== 1 || !Array.isArray(manifest.parts)) {
    throw new FerInputError(
      `Expected ${file} to be a fer-models-esr manifest of format version 1, but got format ${JSON.stringify(manifest.format)} version ${JSON.stringify(manifest.formatVersion)}.`,
    );
  }
  if (!manifest.config?.labels?.every(isEmotion))
    throw new FerInputError(`The labels in ${file} are not known emotions.`);
  const config = resolveEsrConfig({ ...(manifest.config as object) });
  if (manifest.parts[0] !== 'base')
    throw new FerInputError(
      `Expected the first part in ${file} to be 'base', but got ${JSON.stringify(manifest.parts[0])}.`,
    );
  const models: tfl.LayersModel[] = [];
  try {
    for (const p of manifest.parts) models.push(await tfl.loadLayersModel(fileHandler(path.join(dir, p))));
    const [base, ...branches] = models;
    useFastStem(base);
    const esr = new EsrEnsemble(config, base, []);
    for (const b of branches) esr.addBranch(b);
    return esr;
  } catch (e) {
    models.forEach((m) => m.dispose());
    throw e;
  }
}
