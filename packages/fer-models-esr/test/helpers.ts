import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as fert from 'fer-torch';
import type { RawTensor } from 'fer-torch';
import type { Fixture } from 'fer-test-utils';
import { createEsr, esrKeyMap, loadTorchStateDict, type EsrEnsemble } from 'fer-models-esr';

type ReadStateDict = (file: string) => Promise<Map<string, RawTensor>>;
/** fer-torch's `.pt` reader when it exists (zip and legacy formats); else null. */
export const readStateDict: ReadStateDict | null = (fert as unknown as { readStateDict?: ReadStateDict }).readStateDict ?? null;

/** The fixture's state dict of `part` ('base' | 'branch_<i>'): genuine `.pt` when fer-torch can read it. */
export async function fixtureStateDict(fx: Fixture, part: string): Promise<Map<string, RawTensor>> {
  if (readStateDict) {
    const file = part === 'base' ? 'Net-Base-Shared_Representations.pt' : `Net-Branch_${part.split('_')[1]}.pt`;
    return readStateDict(path.join(fx.dir, 'torch_checkpoint', '3', file));
  }
  return (await fert.readSafetensors(path.join(fx.dir, 'weights_init', `${part}.safetensors`))).tensors;
}

const cache = new Map<string, Promise<Map<string, RawTensor>>>();

/** Base + `n` CBAM branches with the esr_cbam initial weights (state dicts read once per process). */
export async function referenceEnsemble(fx: Fixture, n: number): Promise<EsrEnsemble> {
  const esr = createEsr('desr9-affectnet', { initialBranches: n, seed: 1 });
  for (const p of esr.parts()) {
    if (!cache.has(p.name)) cache.set(p.name, fixtureStateDict(fx, p.name));
    loadTorchStateDict(p.model, await cache.get(p.name)!, esrKeyMap(p.name === 'base' ? 'base' : 'branch', { variant: 'cbam' }));
  }
  return esr;
}

/** NCHW fixture image → NHWC. Caller owns. */
export async function nhwc(fx: Fixture, file: string, name: string): Promise<tf.Tensor4D> {
  const x = await fx.tensor(file, name);
  const y = tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
  x.dispose();
  return y;
}

export async function labels(fx: Fixture, file: string, name: string): Promise<tf.Tensor1D> {
  const raw = await fx.raw(file, name);
  return tf.tensor1d(fert.toFloat32(raw), 'int32');
}

/** Manifest tolerance of one tensor, with `atol_rel_max` resolved against the reference. */
export function tolerance(fx: Fixture, file: string, name: string, ref?: ArrayLike<number>): { rtol: number; atol: number } {
  const entry = (fx.manifest.tensors as { file: string; name: string; tolerance: { rtol: number; atol?: number; atol_rel_max?: number } }[])
    .find((t) => t.file === file && t.name === name);
  if (!entry) throw new Error(`No manifest entry for ${file}:${name}`);
  const { rtol, atol, atol_rel_max } = entry.tolerance;
  if (atol_rel_max !== undefined) {
    let m = 0;
    for (let i = 0; i < (ref?.length ?? 0); i++) m = Math.max(m, Math.abs(ref![i]));
    return { rtol, atol: atol_rel_max * m };
  }
  return { rtol, atol: atol ?? 0 };
}

/** PyTorch layout of a tfjs weight value (as stored in the fixtures). Caller owns. */
export function toTorchLayout(v: tf.Tensor, transform: 'conv' | 'linear' | 'copy' | 'count'): tf.Tensor {
  return tf.tidy(() => (transform === 'conv' ? tf.transpose(v, [3, 2, 0, 1]) : transform === 'linear' ? tf.transpose(v) : tf.clone(v)));
}
