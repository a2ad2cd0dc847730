import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { FerInputError, type LabelSet } from 'fer-core';
import { createEsr, fromTorchCheckpoint, loadEsr, type EsrEnsemble } from 'fer-models-esr';
import { createManet, fromMsCeleb, loadManet, type Manet } from 'fer-models-manet';
import { fileLoadHandler } from '../io/layers-files';

/** Loads an ensemble saved by `fer` (tfjs folder with esr.json) or a reference PyTorch checkpoint folder (Net-*.pt). */
export async function loadAnyEsr(dir: string): Promise<EsrEnsemble> {
  if (existsSync(path.join(dir, 'esr.json'))) return loadEsr(dir);
  if (existsSync(path.join(dir, 'Net-Base-Shared_Representations.pt'))) return fromTorchCheckpoint(dir);
  throw new FerInputError(
    `No ESR model in ${dir}: expected esr.json (saved by fer) or Net-Base-Shared_Representations.pt + Net-Branch_<i>.pt (saved by the reference).`,
  );
}

/** The input convention a dataset feeds (saved with the model so `fer predict` prepares faces the same way). */
export interface InputConvention {
  colorOrder: 'rgb' | 'bgr';
  normalization: { mean: [number, number, number]; std: [number, number, number] } | null;
}

/** Reads the channel order and normalisation of a fer-datasets `ImageDataset` (evaluation transform). */
export function inputConvention(ds: unknown): InputConvention {
  const cfg = (
    ds as {
      config?: { channelOrder?: 'rgb' | 'bgr'; transform?: { ops: { op: string; mean?: number[]; std?: number[] }[] } };
    }
  ).config;
  const norm = cfg?.transform?.ops.find((o) => o.op === 'normalize');
  return {
    colorOrder: cfg?.channelOrder ?? 'rgb',
    normalization: norm
      ? { mean: norm.mean as [number, number, number], std: norm.std as [number, number, number] }
      : null,
  };
}

/** A fresh ESR for a dataset's label set: PyTorch-default init, seeded, growing from one branch. */
export function freshEsr(
  labels: LabelSet,
  imageSize: number,
  seed: number,
  input: InputConvention = { colorOrder: 'rgb', normalization: null },
  branches = 1,
): EsrEnsemble {
  return createEsr(
    {
      base: 'desr9-affectnet',
      numClasses: labels.length,
      labels,
      inputSize: imageSize,
      colorOrder: input.colorOrder,
      normalization: input.normalization,
    },
    { initialBranches: branches, seed },
  );
}

/** An AffectNet-trained ensemble prepared for fine-tuning on `labels` (a new classifier when the classes differ). */
export async function pretrainedEsr(dir: string, labels: LabelSet): Promise<EsrEnsemble> {
  const esr = await loadAnyEsr(dir);
  const same = esr.labels.length === labels.length && esr.labels.every((l, i) => l === labels[i]);
  if (!same) esr.replaceClassifier(labels.length, labels);
  return esr;
}

/**
 * A diversified MA-Net for `labels`: from the MS-Celeb-1M checkpoint at `msceleb` when given (its 12,666-class heads
 * replaced by fresh ones seeded with `seed`), else a fresh model. The caller owns it.
 */
export async function manetFor(labels: LabelSet, seed: number, msceleb?: string): Promise<Manet> {
  if (msceleb) return fromMsCeleb(msceleb, { numClasses: labels.length, labels, seed });
  return createManet({ numClasses: labels.length, labels, seed });
}

export async function loadManetDir(dir: string): Promise<Manet> {
  return loadManet(await fileLoadHandler(dir));
}

/** What kind of model a saved folder holds. */
export function modelKind(dir: string): 'esr' | 'manet' {
  if (existsSync(path.join(dir, 'esr.json')) || existsSync(path.join(dir, 'Net-Base-Shared_Representations.pt')))
    return 'esr';
  if (existsSync(path.join(dir, 'model.json'))) return 'manet';
  throw new FerInputError(
    `No model found in ${dir}.`,
    'Point --model to the model/ folder a `fer train` run wrote, or to a reference checkpoint folder.',
  );
}
