import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { StateDictError } from './errors';
import { readStateDict, type ReadStateDictOptions } from './state-dict';
import { writeSafetensors } from './torch-save';

/** File names the reference's `ESR.save()` writes into `<ensemble size>/` (model/diversified_esr.py). */
export const ESR_BASE_FILE = 'Net-Base-Shared_Representations.pt';
export const ESR_BRANCH_FILE = /^Net-Branch_(\d+)\.pt$/;

export interface ConvertedFile {
  source: string;
  target: string;
  /** Number of tensors written. */
  tensors: number;
  bytes: number;
}

export interface EsrConversion {
  /** Number of branches found (`Net-Branch_1.pt` … `Net-Branch_<n>.pt`). */
  ensembleSize: number;
  files: ConvertedFile[];
}

/**
 * Converts a reference ESR checkpoint folder (`Net-Base-Shared_Representations.pt` + `Net-Branch_<i>.pt`, zip or
 * legacy format) to `base.safetensors` and `branch_<i>.safetensors` in `outDir`, with PyTorch names and layouts
 * unchanged and `{ format: 'pt', source: <file name> }` metadata. Branches must be numbered 1…n without gaps.
 */
export async function convertEsrCheckpointFolder(
  folder: string,
  outDir: string,
  opts: ReadStateDictOptions = {},
): Promise<EsrConversion> {
  let names: string[];
  try {
    names = await fs.readdir(folder);
  } catch (e) {
    throw new StateDictError(`Cannot read the ESR checkpoint folder ${folder} (${(e as Error).message}).`, {
      hint: `Point it at the folder that holds ${ESR_BASE_FILE}, e.g. SavedNetworks/9.`,
      cause: e,
    });
  }
  if (!names.includes(ESR_BASE_FILE)) {
    throw new StateDictError(
      `No ${ESR_BASE_FILE} in ${folder}. Point it at the folder that ESR.save() wrote (e.g. SavedNetworks/9), which holds ${ESR_BASE_FILE} and Net-Branch_<i>.pt.`,
    );
  }
  const branches = names
    .map((n) => ESR_BRANCH_FILE.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  branches.forEach((b, i) => {
    if (b !== i + 1)
      throw new StateDictError(
        `${folder}: expected Net-Branch_${i + 1}.pt, but the branches found are ${branches.join(', ')}; ESR.load() needs 1…n without gaps.`,
      );
  });
  const jobs: Array<[string, string]> = [
    [ESR_BASE_FILE, 'base.safetensors'],
    ...branches.map((b): [string, string] => [`Net-Branch_${b}.pt`, `branch_${b}.safetensors`]),
  ];
  await fs.mkdir(outDir, { recursive: true });
  const files: ConvertedFile[] = [];
  for (const [src, dst] of jobs) {
    const source = path.join(folder, src);
    const target = path.join(outDir, dst);
    const sd = await readStateDict(source, opts);
    await writeSafetensors(target, sd, { format: 'pt', source: src });
    files.push({ source, target, tensors: sd.size, bytes: (await fs.stat(target)).size });
  }
  return { ensembleSize: branches.length, files };
}
