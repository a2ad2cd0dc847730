import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic } from 'fer-core';

/**
 * A tfjs IOHandler that writes `model.json` + `weights.bin` into `dir` (Node has no `file://` handler without
 * tfjs-node). The files load in a browser with `tf.loadLayersModel(url)`.
 */
export function fileSaveHandler(dir: string): tf.io.IOHandler {
  return tf.io.withSaveHandler(async (a) => {
    if (!a.weightData || !a.weightSpecs) throw new Error('The model produced no weights to save.');
    const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(a.weightData));
    const modelJson = {
      modelTopology: a.modelTopology,
      format: a.format ?? 'layers-model',
      generatedBy: a.generatedBy,
      convertedBy: null,
      userDefinedMetadata: a.userDefinedMetadata,
      weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
    };
    await writeFileAtomic(path.join(dir, 'weights.bin'), weights);
    await writeFileAtomic(path.join(dir, 'model.json'), JSON.stringify(modelJson));
    return {
      modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength },
    };
  });
}

/** Reads what `fileSaveHandler` wrote. */
export async function fileLoadHandler(dir: string): Promise<tf.io.IOHandler> {
  const json = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON & {
    userDefinedMetadata?: Record<string, unknown>;
  };
  const bufs: Uint8Array[] = [];
  for (const g of json.weightsManifest)
    for (const p of g.paths) bufs.push(new Uint8Array(await fs.readFile(path.join(dir, p))));
  const data = new Uint8Array(bufs.reduce((s, b) => s + b.byteLength, 0));
  let off = 0;
  for (const b of bufs) {
    data.set(b, off);
    off += b.byteLength;
  }
  return tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: data.buffer,
    userDefinedMetadata: json.userDefinedMetadata as Record<string, object> | undefined,
  });
}
