import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';

/**
 * Replaces folder `dir` as a whole: `write` fills a fresh staging folder next to it, then the old folder is renamed
 * aside, the staging folder renamed into place and the old one deleted. A kill at any point leaves either the old
 * folder or the complete new one at `dir` (after `recoverDirs` on the next start, which puts the old folder back
 * when the kill hit between the two renames), never a mix of old and new files.
 */
export async function replaceDirAtomic(dir: string, write: (staging: string) => Promise<void>): Promise<void> {
  const parent = path.dirname(dir);
  const stamp = `${process.pid}.${Date.now()}`;
  const staging = path.join(parent, `.${path.basename(dir)}.${stamp}.new.tmp`);
  const old = path.join(parent, `.${path.basename(dir)}.${stamp}.old.tmp`);
  await fs.mkdir(staging, { recursive: true });
  try {
    await write(staging);
  } catch (e) {
    await fs.rm(staging, { recursive: true, force: true });
    throw e;
  }
  const hadOld = existsSync(dir);
  if (hadOld) await fs.rename(dir, old);
  await fs.rename(staging, dir);
  if (hadOld) await fs.rm(old, { recursive: true, force: true });
}

/**
 * Puts back a folder whose replacement was killed between its two renames (`.<name>.<pid>.<time>.old.tmp` present,
 * `<name>` missing). Returns the restored folders. Call before deleting temporary files.
 */
export async function recoverDirs(parent: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(parent);
  } catch {
    return [];
  }
  const restored: string[] = [];
  for (const n of names) {
    const m = /^\.(.+)\.\d+\.\d+\.old\.tmp$/.exec(n);
    if (!m) continue;
    const target = path.join(parent, m[1]);
    if (existsSync(target)) continue;
    await fs.rename(path.join(parent, n), target);
    restored.push(target);
  }
  return restored;
}
