import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { FerInputError } from 'fer-core';
import { BASE_FILE, fromTorchCheckpoint, loadEsr, toTorchStateDicts } from 'fer-models-esr';
import { fromMsCeleb, manetTorchEntries, tfjsToTorch, torchParameter, type Manet } from 'fer-models-manet';
import { writeSafetensors, writeTorchStateDict, type RawTensor } from 'fer-torch';
import { fileSaveHandler } from '../../io/layers-files';
import { loadManetDir } from '../models';
import type { Output } from '../output';

export interface ConvertCommandOptions {
  /** 'tfjs' (from PyTorch), 'torch' or 'safetensors' (from tfjs). Default: the other side of the input. */
  to?: string;
  numClasses?: number;
}

async function manetStateDict(m: Manet): Promise<Map<string, RawTensor>> {
  const sd = new Map<string, RawTensor>();
  for (const e of manetTorchEntries(m.config)) {
    const { variable } = torchParameter(m, e.key);
    const t = tfjsToTorch(variable, e.transform);
    const vals = (await t.data()) as Float32Array;
    t.dispose();
    if (e.role === 'bn_count') {
      const big = new BigInt64Array([BigInt(Math.round(vals[0]))]);
      sd.set(e.key, { dtype: 'int64', shape: [], data: new Uint8Array(big.buffer) });
    } else sd.set(e.key, { dtype: 'float32', shape: e.shape, data: new Uint8Array(vals.slice().buffer) });
  }
  return sd;
}

/**
 * `fer convert IN OUT`:
 * - a reference ESR checkpoint folder (Net-Base-Shared_Representations.pt + Net-Branch_<i>.pt) → tfjs folder;
 * - an ESR tfjs folder (esr.json) → PyTorch folder (`.pt` files torch.load reads) or safetensors files;
 * - an MA-Net `.pth.tar` / `.safetensors` (MS-Celeb format) → tfjs folder (heads replaced, `--num-classes`);
 * - an MA-Net tfjs folder → one `.pth` (or `.safetensors`) state dict with PyTorch names.
 */
export async function runConvert(
  input: string,
  output: string,
  o: ConvertCommandOptions,
  out: Output,
): Promise<string[]> {
  if (!existsSync(input)) throw new FerInputError(`Nothing at ${input}.`);
  const written: string[] = [];
  if (statSync(input).isDirectory() && existsSync(path.join(input, BASE_FILE))) {
    const esr = await fromTorchCheckpoint(input);
    await esr.save(output);
    written.push(output);
    out.result(`ESR with ${esr.numBranches} branch(es) converted from PyTorch to tfjs: ${output}`, {
      type: 'converted',
      from: input,
      to: output,
      format: 'tfjs',
    });
    esr.dispose();
  } else if (statSync(input).isDirectory() && existsSync(path.join(input, 'esr.json'))) {
    const esr = await loadEsr(input);
    const fmt = o.to ?? 'torch';
    for (const { file, stateDict } of toTorchStateDicts(esr)) {
      const target = path.join(output, fmt === 'safetensors' ? file.replace(/\.pt$/, '.safetensors') : file);
      if (fmt === 'safetensors') await writeSafetensors(target, stateDict);
      else await writeTorchStateDict(target, stateDict);
      written.push(target);
    }
    out.result(`ESR converted from tfjs to ${fmt}: ${written.join(', ')}`, {
      type: 'converted',
      from: input,
      to: written,
      format: fmt,
    });
    esr.dispose();
  } else if (statSync(input).isDirectory() && existsSync(path.join(input, 'model.json'))) {
    const m = await loadManetDir(input);
    const sd = await manetStateDict(m);
    const target = o.to === 'safetensors' ? output.replace(/(\.pth?)?$/, '.safetensors') : output;
    if (o.to === 'safetensors') await writeSafetensors(target, sd);
    else await writeTorchStateDict(target, sd);
    written.push(target);
    out.result(`MA-Net converted from tfjs to ${o.to ?? 'torch'}: ${target} (${sd.size} entries)`, {
      type: 'converted',
      from: input,
      to: target,
    });
    m.dispose();
  } else if (/\.(pth|pth\.tar|pt|tar|safetensors)$/.test(input)) {
    const m = await fromMsCeleb(input, { numClasses: o.numClasses ?? 7 });
    await m.save(fileSaveHandler(output));
    written.push(output);
    out.result(`MA-Net converted from PyTorch to tfjs (heads: ${m.config.numClasses} classes, fresh): ${output}`, {
      type: 'converted',
      from: input,
      to: output,
      format: 'tfjs',
    });
    m.dispose();
  } else {
    throw new FerInputError(
      `Cannot tell what ${input} is.`,
      'Expected a reference ESR checkpoint folder, a folder written by fer (esr.json or model.json), or an MA-Net .pth/.pth.tar/.safetensors file.',
    );
  }
  void tf;
  return written;
}
