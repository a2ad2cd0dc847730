import * as tf from '@tensorflow/tfjs-core';
import { FerInputError } from 'fer-core';
import { loadModel } from 'fer-models';
import type { EsrEnsemble, FoldedEsr } from 'fer-models-esr';

/** Loads a saved ESR (`model.json` + `weights.bin`, as `model.save(fileHandler(dir))` writes) from a URL. */
export async function loadEsrFromUrl(url: string): Promise<EsrEnsemble> {
  return (await loadModel(url, { expect: 'esr' })) as EsrEnsemble;
}

/** A dropped file: its name and bytes. */
export interface NamedBytes {
  name: string;
  bytes: Uint8Array;
}

const BASE_RE = /Net-Base-Shared_Representations\.pt$/;
const BRANCH_RE = /Net-Branch_(\d+)\.pt$/;

/**
 * Converts a PyTorch ESR checkpoint in the page: `Net-Base-Shared_Representations.pt` plus `Net-Branch_<i>.pt`
 * (the reference's and upstream ESR-9's file names), parsed from bytes by fer-torch (no pickle code runs).
 */
export async function esrFromTorchFiles(files: readonly NamedBytes[]): Promise<EsrEnsemble> {
  const base = files.find((f) => BASE_RE.test(f.name));
  const branches = files
    .map((f) => ({ f, m: BRANCH_RE.exec(f.name) }))
    .filter((x) => x.m)
    .map((x) => ({ f: x.f, i: Number(x.m![1]) }))
    .sort((a, b) => a.i - b.i);
  if (!base || branches.length === 0)
    throw new FerInputError(
      `Expected Net-Base-Shared_Representations.pt and at least one Net-Branch_<i>.pt, but got ${files.map((f) => f.name).join(', ') || 'no files'}.`,
      'Drop all files of the checkpoint folder at once.',
    );
  branches.forEach((b, k) => {
    if (b.i !== k + 1)
      throw new FerInputError(`Expected branch files numbered 1..${branches.length}, but branch ${k + 1} is missing.`);
  });
  return (await loadModel([base.bytes, ...branches.map((b) => b.f.bytes)], { expect: 'esr' })) as EsrEnsemble;
}

/** One face's result: the ensemble label, each branch's vote and probabilities, and its spatial attention. */
export interface EsrFaceResult {
  emotion: string;
  votes: string[];
  /** Mean of the branches' softmax probabilities (what `fer predict` reports). */
  probabilities: Record<string, number>;
  /** Per branch, softmax probabilities in label order. */
  branchProbabilities: number[][];
  /** Per branch, the last CBAM's spatial attention [h][w] (empty for the original ESR, which has no CBAM). */
  attention: number[][][];
}

/**
 * Runs the ensemble on faces already prepared as the model expects ([n, S, S, 3] floats in its colour order and
 * scaling), and combines as `fer predict` does: plurality vote of the branches (ties to the lowest class index) and
 * the mean of their softmax probabilities. Pass `esr.fold()` (what the page does) for the faster folded inference.
 */
export async function classifyFaces(
  esr: EsrEnsemble | FoldedEsr,
  px: Float32Array,
  n: number,
): Promise<EsrFaceResult[]> {
  const S = esr.config.inputSize;
  const labels = esr.labels as readonly string[];
  const K = labels.length;
  const [probsT, attT] = tf.tidy(() => {
    let x: tf.Tensor = tf.tensor4d(px, [n, S, S, 3]);
    const norm = esr.config.normalization;
    if (norm) x = tf.div(tf.sub(x, tf.tensor1d([...norm.mean])), tf.tensor1d([...norm.std]));
    const r = esr.forward(x as tf.Tensor4D, { training: false });
    const probs = tf.stack(r.logits.map((l) => tf.softmax(l))); // [m, n, K]
    return [probs, r.heads.spatialAttention ?? null] as const;
  });
  const p = (await probsT.array()) as number[][][];
  const att = attT ? ((await attT.array()) as number[][][][]) : null; // [m, n, h, w]
  tf.dispose([probsT, attT]);
  const m = p.length;
  return Array.from({ length: n }, (_, i) => {
    const branchProbabilities = p.map((b) => b[i]);
    const preds = branchProbabilities.map(argmax);
    const counts = new Array<number>(K).fill(0);
    preds.forEach((c) => counts[c]++);
    const cls = argmax(counts);
    const probabilities = Object.fromEntries(
      labels.map((l, c) => [l, branchProbabilities.reduce((s, b) => s + b[c], 0) / m]),
    );
    return {
      emotion: labels[cls],
      votes: preds.map((c) => labels[c]),
      probabilities,
      branchProbabilities,
      attention: att ? att.map((b) => b[i]) : [],
    };
  });
}

/** Index of the first maximum. */
function argmax(v: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}
