import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { FerInputError } from 'fer-core';
import { writeFileAtomic } from 'fer-core/node';
import { parseSafetensors, serializeSafetensors, type RawTensor } from 'fer-torch';
import type { SgdState } from '../optim/sgd';

/** Where a run stands: `step` batches of 0-based `epoch` of 1-based `stage` are done. */
export interface TrainingPosition {
  stage: number;
  epoch: number;
  step: number;
  /** Optimizer steps since the run started. */
  globalStep: number;
}

/** The JSON half of a checkpoint (stored in the safetensors metadata). */
export interface CheckpointMeta<H = unknown> {
  format: 'fer-train-checkpoint';
  version: 1;
  position: TrainingPosition;
  /** Variable names and shapes in the order of the stored `model/<i>` tensors (checked on load). */
  variables: { name: string; shape: number[]; dtype: string }[];
  optimizer?: Omit<SgdState, 'buffers'>;
  history: H;
  /** Anything else the trainer needs to continue (seed, RNG state, best metric, configuration). */
  extra: Record<string, unknown>;
}

export interface Checkpoint<H = unknown> {
  meta: CheckpointMeta<H>;
  /** Model variable values in `meta.variables` order. */
  values: RawTensor[];
  /** Momentum buffers (null = none) in optimizer variable order. */
  optimizerBuffers: (Float32Array | null)[];
}

function toRaw(values: Float32Array | Int32Array, shape: number[]): RawTensor {
  const data = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  return { dtype: values instanceof Int32Array ? 'int32' : 'float32', shape, data };
}

/** Reads every variable to the CPU (one `data()` each). The returned arrays are copies. */
export async function snapshotVariables(variables: readonly tf.Variable[]): Promise<RawTensor[]> {
  const out: RawTensor[] = [];
  for (const v of variables) {
    const d = (await v.data()) as Float32Array | Int32Array;
    out.push(toRaw(d.slice() as Float32Array | Int32Array, [...v.shape]));
  }
  return out;
}

/** Assigns stored values to variables, checking count, shape and dtype first (nothing is assigned on mismatch). */
export function restoreVariables(
  variables: readonly tf.Variable[],
  values: readonly RawTensor[],
  names?: readonly string[],
): void {
  if (variables.length !== values.length) {
    throw new FerInputError(
      `The checkpoint holds ${values.length} variables but the model has ${variables.length}.`,
      'Resume or load with the same model configuration (architecture, number of branches and classes).',
    );
  }
  variables.forEach((v, i) => {
    const r = values[i];
    if (r.shape.length !== v.shape.length || r.shape.some((d, j) => d !== v.shape[j])) {
      throw new FerInputError(
        `Checkpoint variable ${i} (${names?.[i] ?? '?'}) has shape [${r.shape}] but model variable '${v.name}' has [${v.shape}].`,
      );
    }
  });
  variables.forEach((v, i) => {
    const r = values[i];
    const arr =
      r.dtype === 'int32'
        ? new Int32Array(r.data.buffer.slice(r.data.byteOffset, r.data.byteOffset + r.data.byteLength))
        : new Float32Array(r.data.buffer.slice(r.data.byteOffset, r.data.byteOffset + r.data.byteLength));
    tf.tidy(() => v.assign(tf.tensor(arr, r.shape, v.dtype)));
  });
}

/**
 * Writes one self-contained checkpoint file (safetensors: `model/<i>`, `optim/<i>`, JSON in the metadata) atomically:
 * a crash leaves either the previous file or the complete new one.
 */
export async function saveCheckpoint<H>(
  file: string,
  ck: {
    meta: Omit<CheckpointMeta<H>, 'format' | 'version' | 'variables'>;
    variables: readonly tf.Variable[];
    values?: RawTensor[];
    optimizer?: SgdState;
  },
): Promise<void> {
  const values = ck.values ?? (await snapshotVariables(ck.variables));
  const tensors: Record<string, RawTensor> = {};
  values.forEach((r, i) => (tensors[`model/${i}`] = r));
  const optimizerMeta = ck.optimizer ? { groups: ck.optimizer.groups, steps: ck.optimizer.steps } : undefined;
  const hasBuffer: number[] = [];
  ck.optimizer?.buffers.forEach((b, i) => {
    hasBuffer.push(b === null ? 0 : b.length === 0 ? 1 : 2);
    if (b && b.length > 0) tensors[`optim/${i}`] = toRaw(b, [b.length]);
  });
  const meta: CheckpointMeta<H> & { bufferFlags?: number[] } = {
    format: 'fer-train-checkpoint',
    version: 1,
    ...ck.meta,
    variables: ck.variables.map((v, i) => ({ name: v.name, shape: values[i].shape, dtype: values[i].dtype })),
    optimizer: optimizerMeta as CheckpointMeta<H>['optimizer'],
    bufferFlags: ck.optimizer ? hasBuffer : undefined,
  };
  await writeFileAtomic(file, serializeSafetensors(tensors, { 'fer-train': JSON.stringify(meta) }));
}

export async function loadCheckpoint<H = unknown>(file: string): Promise<Checkpoint<H>> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await fs.readFile(file));
  } catch (e) {
    throw new FerInputError(`Cannot read checkpoint ${file}: ${(e as Error).message}.`, {
      hint: 'Check the path, or start without --resume.',
      cause: e,
    });
  }
  const st = parseSafetensors(bytes, file);
  const json = st.metadata?.['fer-train'];
  if (!json)
    throw new FerInputError(`${file} is a safetensors file but not a fer-train checkpoint (no 'fer-train' metadata).`);
  const meta = JSON.parse(json) as CheckpointMeta<H> & { bufferFlags?: number[] };
  if (meta.format !== 'fer-train-checkpoint' || meta.version !== 1)
    throw new FerInputError(`Unsupported checkpoint format in ${file}: ${meta.format} v${meta.version}.`);
  const values = meta.variables.map((_, i) => {
    const t = st.tensors.get(`model/${i}`);
    if (!t) throw new FerInputError(`Checkpoint ${file} is missing tensor model/${i}.`);
    return t;
  });
  const optimizerBuffers = (meta.bufferFlags ?? []).map((f, i) => {
    if (f === 0) return null;
    if (f === 1) return new Float32Array(0);
    const t = st.tensors.get(`optim/${i}`)!;
    return new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  });
  return { meta, values, optimizerBuffers };
}

/** The optimizer state stored in a checkpoint, ready for `Sgd.setState`. */
export function checkpointOptimizerState(ck: Checkpoint): SgdState | undefined {
  if (!ck.meta.optimizer) return undefined;
  return { ...ck.meta.optimizer, buffers: ck.optimizerBuffers };
}
