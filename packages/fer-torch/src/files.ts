import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileSource } from './file-source';
import { parseSafetensors, serializeSafetensors, type SafetensorsFile } from './safetensors';
import { extractStateDict, stripPrefix, type ReadStateDictOptions, type StateDict } from './state-dict';
import { readTorchSource, type ReadTorchOptions } from './torch-load';
import { bytesSource } from './bytes';
import type { RawTensor } from './tensor';
import { serializeTorchStateDict, torchArchiveName, type TorchSaveOptions } from './torch-save';

/** Node-only: the file-system side of fer-torch (the parsers and serialisers themselves take bytes). */

/** `parseTorchFile` for a path (read by ranges, never whole) or bytes. */
export async function readTorchFile(pathOrBytes: string | Uint8Array, opts: ReadTorchOptions = {}): Promise<unknown> {
  return readTorchSource(typeof pathOrBytes === 'string' ? fileSource(pathOrBytes) : bytesSource(pathOrBytes), opts);
}

/** `parseStateDict` for a path or bytes. */
export async function readStateDict(
  pathOrBytes: string | Uint8Array,
  opts: ReadStateDictOptions = {},
): Promise<StateDict> {
  const obj = await readTorchFile(pathOrBytes, opts);
  const sd = extractStateDict(obj, { key: opts.key, source: typeof pathOrBytes === 'string' ? pathOrBytes : 'buffer' });
  return opts.stripPrefix ? stripPrefix(sd, opts.stripPrefix) : sd;
}

export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  const bytes = new Uint8Array(await fs.readFile(file));
  return parseSafetensors(bytes, file);
}

async function writeAtomic(file: string, data: Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Writes `sd` (PyTorch names, NCHW/OIHW layouts) as a `torch.save` zip that `torch.load(file, weights_only=True)`
 * accepts. The archive folder is named after the file, as torch names it. The write is atomic.
 */
export async function writeTorchStateDict(
  file: string,
  sd: ReadonlyMap<string, RawTensor>,
  opts: TorchSaveOptions = {},
): Promise<void> {
  await writeAtomic(
    file,
    serializeTorchStateDict(sd, { ...opts, archiveName: opts.archiveName ?? torchArchiveName(file) }),
  );
}

/**
 * Writes tensors as a safetensors file (largest element size first, then by name; every tensor aligned), atomically.
 */
export async function writeSafetensors(
  file: string,
  tensors: ReadonlyMap<string, RawTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeAtomic(file, serializeSafetensors(new Map(tensors), metadata));
}
