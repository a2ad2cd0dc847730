import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { FerInputError, isEmotion } from 'fer-core';
import { resolveEsrConfig, type EsrConfig } from './configs';
import { useFastStem } from './layers';

/** Format tag of an ensemble's `modelTopology` (one tfjs artifact holds every part). */
const FORMAT = 'fer-models-esr';
const FORMAT_VERSION = 2;

/** One part (`base`, `branch_<i>`) inside the ensemble's artifact. */
interface PartTopology {
  name: string;
  /** The part's tfjs-layers topology, as `tf.loadLayersModel` reads it. */
  modelTopology: object;
  /** The part's weights, unprefixed; their bytes follow the previous parts' in `weightData`. */
  weightSpecs: tf.io.WeightsManifestEntry[];
  byteLength: number;
}

/** `modelTopology` of a saved ensemble: the config (labels, input convention) and every part. */
export interface EsrTopology {
  format: typeof FORMAT;
  formatVersion: typeof FORMAT_VERSION;
  config: EsrConfig;
  parts: PartTopology[];
}

/** True when `a` is an ensemble saved by `EsrEnsemble.save` (format 2). */
export function isEsrArtifacts(a: tf.io.ModelArtifacts): boolean {
  return (a.modelTopology as { format?: unknown } | undefined)?.format === FORMAT;
}

/**
 * Packs an ensemble's parts into ONE tfjs artifact: `modelTopology` is an `EsrTopology`, weights are the parts'
 * weights in order, named `<part>/<weight>` in the manifest. Any `tf.io` handler saves it (one `model.json` + one
 * weights file), and `unpackEsr` splits it again.
 */
export async function packEsr(
  config: EsrConfig,
  parts: { name: string; model: tfl.LayersModel }[],
): Promise<tf.io.ModelArtifacts> {
  const topo: PartTopology[] = [];
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: ArrayBuffer[] = [];
  for (const { name, model } of parts) {
    let a: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        a = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    if (!a?.weightData || !a.weightSpecs) throw new Error(`Saving part ${name} produced no weights.`);
    const data = tf.io.CompositeArrayBuffer.join(a.weightData);
    topo.push({
      name,
      modelTopology: a.modelTopology as object,
      weightSpecs: a.weightSpecs,
      byteLength: data.byteLength,
    });
    specs.push(...a.weightSpecs.map((s) => ({ ...s, name: `${name}/${s.name}` })));
    buffers.push(data);
  }
  const topology: EsrTopology = { format: FORMAT, formatVersion: FORMAT_VERSION, config, parts: topo };
  return {
    modelTopology: topology as unknown as object,
    format: 'fer-models-esr',
    generatedBy: `fer-models-esr (tfjs-layers v${tfl.version_layers})`,
    weightSpecs: specs,
    weightData: tf.io.CompositeArrayBuffer.join(buffers),
  };
}

/** The config and the parts' LayersModels (base first) of a `packEsr` artifact. The caller owns the models. */
export async function unpackEsr(a: tf.io.ModelArtifacts): Promise<{ config: EsrConfig; models: tfl.LayersModel[] }> {
  const t = a.modelTopology as Partial<EsrTopology> | undefined;
  if (t?.format !== FORMAT || t.formatVersion !== FORMAT_VERSION || !Array.isArray(t.parts)) {
    throw new FerInputError(
      `Expected an ESR artifact (format ${FORMAT} version ${FORMAT_VERSION}), but got format ${JSON.stringify(t?.format)} version ${JSON.stringify(t?.formatVersion)}.`,
      'Load a model saved by EsrEnsemble.save(), or use loadModel() from fer-models, which detects the kind.',
    );
  }
  if (!t.config?.labels?.every(isEmotion))
    throw new FerInputError('The labels in the ESR artifact are not known emotions.');
  const config = resolveEsrConfig({ ...t.config });
  if (t.parts[0]?.name !== 'base') {
    throw new FerInputError(
      `Expected the first part of the ESR artifact to be 'base', but got ${JSON.stringify(t.parts[0]?.name)}.`,
    );
  }
  const data = a.weightData ? tf.io.CompositeArrayBuffer.join(a.weightData) : new ArrayBuffer(0);
  const total = t.parts.reduce((s, p) => s + p.byteLength, 0);
  if (data.byteLength !== total) {
    throw new FerInputError(
      `Expected ${total} bytes of ESR weights, but got ${data.byteLength}.`,
      'The weights file is truncated or belongs to another model: save the ensemble again.',
    );
  }
  const models: tfl.LayersModel[] = [];
  let off = 0;
  try {
    for (const p of t.parts) {
      const weightData = data.slice(off, off + p.byteLength);
      off += p.byteLength;
      try {
        models.push(
          await tfl.loadLayersModel(
            tf.io.fromMemory({ modelTopology: p.modelTopology, weightSpecs: p.weightSpecs, weightData }),
          ),
        );
      } catch (e) {
        throw new FerInputError(`Cannot load part '${p.name}' of the ESR artifact (${(e as Error).message}).`, {
          hint: 'The artifact is incomplete: save the ensemble again.',
          cause: e,
        });
      }
    }
  } catch (e) {
    models.forEach((m) => m.dispose());
    throw e;
  }
  useFastStem(models[0]);
  return { config, models };
}
