import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { FerInputError } from '../errors';
import { writeFileAtomic } from './atomic';

/**
 * The one Node file handler: a `tf.io.IOHandler` that saves a model as `<dir>/model.json` + `<dir>/weights.bin`
 * (tfjs's standard layout, which `tf.loadLayersModel('<url>/model.json')` and `loadModel(url)` read in a browser) and
 * loads it back. Node has no `file://` handler without tfjs-node. Weights are written before `model.json`, each
 * atomically, so a crash never leaves a `model.json` pointing at missing weights.
 */
export function fileHandler(dir: string): tf.io.IOHandler {
  return {
    async save(a: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (!a.weightData || !a.weightSpecs) throw new Error('The model produced no weights to save.');
      const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(a.weightData));
      const modelJson: tf.io.ModelJSON = {
        modelTopology: a.modelTopology as object,
        format: a.format ?? 'layers-model',
        generatedBy: a.generatedBy,
        convertedBy: a.convertedBy ?? null,
        userDefinedMetadata: a.userDefinedMetadata,
        weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
      };
      await writeFileAtomic(path.join(dir, 'weights.bin'), weights);
      await writeFileAtomic(path.join(dir, 'model.json'), JSON.stringify(modelJson));
      return {
        modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength },
      };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      const file = path.join(dir, 'model.json');
      let json: tf.io.ModelJSON;
      try {
        json = JSON.parse(await fs.readFile(file, 'utf8')) as tf.io.ModelJSON;
      } catch (e) {
        throw new FerInputError(`Cannot read a tfjs model at ${file} (${(e as Error).message}).`, {
          hint: 'Point to a folder a model was saved to (it holds model.json and weights.bin).',
          cause: e,
        });
      }
      if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
        throw new FerInputError(`Expected ${file} to hold modelTopology and weightsManifest, but one is missing.`);
      }
      const buffers: Uint8Array[] = [];
      for (const g of json.weightsManifest) {
        for (const p of g.paths) {
          try {
            buffers.push(new Uint8Array(await fs.readFile(path.join(dir, p))));
          } catch (e) {
            throw new FerInputError(
              `Cannot read the weights ${path.join(dir, p)} listed in ${file} (${(e as Error).message}).`,
              { hint: 'The folder is incomplete: save the model again.', cause: e },
            );
          }
        }
      }
      const data = new Uint8Array(buffers.reduce((s, b) => s + b.byteLength, 0));
      let off = 0;
      for (const b of buffers) {
        data.set(b, off);
        off += b.byteLength;
      }
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        userDefinedMetadata: json.userDefinedMetadata,
        weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
        weightData: data.buffer,
      };
    },
  };
}
