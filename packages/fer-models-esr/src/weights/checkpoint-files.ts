import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { readStateDict, writeTorchStateDict } from 'fer-torch/node';
import { type RawTensor } from 'fer-torch';
import { FerInputError } from 'fer-core';
import type { EsrEnsemble } from '../esr';
import {
  BASE_FILE,
  branchFile,
  fromTorchStateDicts,
  toTorchStateDicts,
  type FromTorchOptions,
  type TorchImport,
} from './checkpoint';

/** Node-only: the reference's checkpoint folders on disk (`ESR.save`). */

/**
 * Imports a PyTorch checkpoint folder as the reference writes it (`<folder>/Net-Base-Shared_Representations.pt` +
 * `Net-Branch_<i>.pt`), or upstream ESR-9's folder (legacy `.pt` format). Reads through fer-torch (no pickle code is
 * executed). A folder holding only the base yields an ensemble with no branches.
 */
export async function fromTorchCheckpoint(folder: string, opts: FromTorchOptions = {}): Promise<EsrEnsemble> {
  return (await importTorchCheckpoint(folder, opts)).esr;
}

/** `fromTorchCheckpoint` plus the per-part load reports. */
export async function importTorchCheckpoint(folder: string, opts: FromTorchOptions = {}): Promise<TorchImport> {
  const read = (f: string) => readStateDict(f);
  const basePath = path.join(folder, BASE_FILE);
  if (!existsSync(basePath)) {
    throw new FerInputError(
      `No ${BASE_FILE} in ${folder}.`,
      'Point to the folder that ESR.save() wrote (e.g. SavedNetworks/<k>/).',
    );
  }
  const base = await read(basePath);
  const branches: Map<string, RawTensor>[] = [];
  for (let i = 1; opts.ensembleSize === undefined || i <= opts.ensembleSize; i++) {
    const f = path.join(folder, branchFile(i));
    if (!existsSync(f)) {
      if (opts.ensembleSize !== undefined)
        throw new FerInputError(`Expected ${opts.ensembleSize} branches, but ${f} is missing.`);
      break;
    }
    branches.push(await read(f));
  }
  return fromTorchStateDicts(base, branches, opts.config);
}

/**
 * Writes the ensemble as the reference's checkpoint folder (`ESR.save`): `<folder>/Net-Base-Shared_Representations.pt`
 * and `Net-Branch_<i>.pt`, PyTorch zip format (loadable with `torch.load` + `load_state_dict`).
 */
export async function saveTorchCheckpoint(esr: EsrEnsemble, folder: string): Promise<string[]> {
  const files: string[] = [];
  for (const { file, stateDict } of toTorchStateDicts(esr)) {
    const f = path.join(folder, file);
    await writeTorchStateDict(f, stateDict);
    files.push(f);
  }
  return files;
}
