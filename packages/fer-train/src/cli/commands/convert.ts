import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { AFFECTNET_LABELS, FerInputError, RAFDB_LABELS, parseChoice, type LabelSet } from 'fer-core';
import { fileHandler } from 'fer-core/node';
import { toTorchStateDicts } from 'fer-models-esr';
import { manetToTorch } from 'fer-models-manet';
import { loadModel } from 'fer-models/node';
import { writeSafetensors, writeTorchStateDict } from 'fer-torch/node';
import { type RawTensor } from 'fer-torch';
import type { Output } from '../output';

export interface ConvertCommandOptions {
  /** 'tfjs' (from PyTorch), 'torch' or 'safetensors' (from tfjs). Default: the other side of the input. */
  to?: string;
  /** Classes of the fresh heads when an MA-Net checkpoint has MS-Celeb identity heads. Default 7. */
  numClasses?: number;
}

const FORMATS = ['tfjs', 'torch', 'safetensors'] as const;

/**
 * `fer convert IN OUT`: whatever `loadModel` reads (a saved tfjs folder, a reference ESR checkpoint folder, an MA-Net
 * `.pth.tar` / `.safetensors`), written as
 * - `tfjs`: one `model.json` + `weights.bin` folder (the default for PyTorch input);
 * - `torch` / `safetensors`: PyTorch names and layouts, ESR as the reference's folder (`Net-Base-…pt`,
 *   `Net-Branch_<i>.pt`), MA-Net as one state dict file (the default for tfjs input: `torch`).
 */
export async function runConvert(
  input: string,
  output: string,
  o: ConvertCommandOptions,
  out: Output,
): Promise<string[]> {
  if (!existsSync(input)) throw new FerInputError(`Nothing at ${input}.`);
  const tfjs =
    path.basename(input) === 'model.json' || ['model.json', 'esr.json'].some((f) => existsSync(path.join(input, f)));
  const to = parseChoice('--to', o.to ?? (tfjs ? 'torch' : 'tfjs'), FORMATS);
  const labels = o.numClasses === undefined ? undefined : defaultLabels(o.numClasses);
  const model = await loadModel(input, { labels });
  const written: string[] = [];
  try {
    if (to === 'tfjs') {
      await model.save(fileHandler(output));
      written.push(output);
    } else {
      const dicts: { file: string; stateDict: Map<string, RawTensor> }[] =
        model.kind === 'esr'
          ? toTorchStateDicts(model).map((d) => ({ file: path.join(output, d.file), stateDict: d.stateDict }))
          : [{ file: output, stateDict: manetToTorch(model) }];
      for (const { file, stateDict } of dicts) {
        if (to === 'safetensors') {
          const target = file.replace(/(\.pth?)?$/, '.safetensors');
          await writeSafetensors(target, stateDict);
          written.push(target);
        } else {
          await writeTorchStateDict(file, stateDict);
          written.push(file);
        }
      }
    }
    const what =
      model.kind === 'esr' ? `ESR with ${model.numBranches} branch(es)` : `MA-Net (${model.numClasses} classes)`;
    out.result(`${what} converted to ${to}: ${written.join(', ')}`, {
      type: 'converted',
      from: input,
      to: written.length === 1 ? written[0] : written,
      format: to,
    });
  } finally {
    model.dispose();
  }
  return written;
}

/** Labels for `--num-classes` (fresh heads): RAF-DB's 7, else the first K of AffectNet's 8. */
function defaultLabels(k: number): LabelSet {
  if (k === 7) return RAFDB_LABELS;
  if (k > AFFECTNET_LABELS.length) throw new FerInputError(`Expected --num-classes of at most 8, but got ${k}.`);
  return AFFECTNET_LABELS.slice(0, k);
}
