import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FER_ERROR_CODES, FerError } from 'fer-core';
import { writeFileAtomic } from 'fer-core/node';
import { recoverDirs } from './atomic-dir';

/** Who holds a run folder's lock (the content of `<out>/.lock`). */
export interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  since: string;
}

const LOCK = '.lock';

/** A run folder that cannot be used as asked: locked by another run, or holding a run that does not match. */
export class RunFolderError extends FerError {
  override name = 'RunFolderError';
  constructor(message: string, hint?: string) {
    super(FER_ERROR_CODES.runFolder, message, { hint });
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
    return typeof h.pid === 'number' && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` is a live process on this machine (EPERM: alive but someone else's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const describeHolder = (h: LockHolder) => `process ${h.pid} on ${h.host} (since ${h.since})`;

/**
 * An exclusive lock on a run folder: `<dir>/.lock` holds the owner's pid and host. It is created atomically (written
 * to a temporary file, then hard-linked to the lock name, which fails when the lock exists), so two runs can never
 * both hold it. A lock left by a dead process on this host is taken over with a notice; a live holder, or a holder on
 * another host (whose liveness cannot be checked), is an error naming it.
 */
export class RunLock {
  private released = false;
  private readonly onExit = () => this.releaseSync();

  private constructor(
    readonly file: string,
    readonly holder: LockHolder,
    /** The folder did not exist before: removed again on release if nothing was written into it. */
    private readonly createdDir: boolean,
  ) {
    // kill -9 leaves the lock behind (taken over later); a normal exit or Ctrl-C does not.
    process.once('exit', this.onExit);
  }

  static async acquire(dir: string, onNotice: (message: string) => void = () => {}): Promise<RunLock> {
    const createdDir = !existsSync(dir);
    await fs.mkdir(dir, { recursive: true });
    const file = path.join(dir, LOCK);
    const me: LockHolder = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
    const tmp = path.join(dir, `${LOCK}.${process.pid}.${Date.now()}.tmp`);
    await fs.writeFile(tmp, JSON.stringify(me));
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await fs.link(tmp, file);
          return new RunLock(file, me, createdDir);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        const h = readHolder(file);
        if (h && (h.host !== me.host || alive(h.pid))) {
          throw new RunFolderError(
            `The run folder ${dir} is in use by ${describeHolder(h)}.`,
            h.host === me.host
              ? 'Wait for that run to finish, stop it, or use another --out folder.'
              : `Use another --out folder, or delete ${file} if that run is no longer alive.`,
          );
        }
        // Dead holder (or an unreadable lock): move it aside under a unique name, then check it is the one we judged.
        const aside = path.join(dir, `${LOCK}.${process.pid}.${Date.now()}.stale.tmp`);
        try {
          await fs.rename(file, aside);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw e;
        }
        const moved = readHolder(aside);
        if (h && moved && (moved.pid !== h.pid || moved.since !== h.since)) {
          // Another process took the stale lock over in between: give it back.
          await fs.link(aside, file).catch(() => {});
          await fs.rm(aside, { force: true });
          continue;
        }
        await fs.rm(aside, { force: true });
        onNotice(
          h
            ? `took over the lock of ${dir} from ${describeHolder(h)}, which is no longer running.`
            : `replaced the unreadable lock file ${file}.`,
        );
      }
      throw new RunFolderError(`Could not lock the run folder ${dir}: other processes keep taking it.`);
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /** Removes the lock if this process still holds it. */
  async release(): Promise<void> {
    this.releaseSync();
  }

  private releaseSync(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    const h = readHolder(this.file);
    if (h && h.pid === this.holder.pid && h.since === this.holder.since) {
      try {
        unlinkSync(this.file);
      } catch {
        // already gone
      }
    }
    // A run refused before writing anything (bad options, missing data) leaves no empty folder behind.
    if (this.createdDir) {
      try {
        rmdirSync(path.dirname(this.file));
      } catch {
        // not empty: the run wrote its outputs
      }
    }
  }
}

/** What a run folder's `run.json` records: the options that decide the result, and the data it was trained on. */
export interface RunManifest {
  format: 'fer-run';
  version: 1;
  script: string;
  /** Options an exact resume needs unchanged (`--resume` refuses any difference and names it). */
  exact: Record<string, unknown>;
  /** Options recorded for the record that may change on resume (workers, checkpoint cadence, ...). */
  other: Record<string, unknown>;
  created: string;
}

export const MANIFEST = 'run.json';

/** A dataset's identity for resume checks: name, size, labels and, for file datasets, a hash of its sample list. */
export function datasetFingerprint(ds: {
  name: string;
  size: number;
  labels: readonly string[];
  records?: readonly { path?: string; emotion?: string; synthetic?: unknown }[];
}): Record<string, unknown> {
  const fp: Record<string, unknown> = { name: ds.name, size: ds.size, labels: [...ds.labels] };
  if (ds.records) {
    const h = createHash('sha256');
    // Paths relative to the dataset's common folder: moving the whole dataset does not change the fingerprint.
    const paths = ds.records.map((r) => r.path ?? '');
    const common = commonDir(paths.filter((p) => p));
    for (const r of ds.records)
      h.update(`${r.path ? path.relative(common, r.path) : JSON.stringify(r.synthetic ?? null)}\t${r.emotion}\n`);
    fp.samples = ds.records.length;
    fp.sha256 = h.digest('hex').slice(0, 16);
  }
  return fp;
}

function commonDir(paths: string[]): string {
  if (paths.length === 0) return '';
  let c = path.dirname(paths[0]);
  for (const p of paths) while (c.length > 1 && !p.startsWith(c + path.sep)) c = path.dirname(c);
  return c;
}

/** Dotted keys whose values differ (a key missing on one side counts), e.g. `plan.batchSize`. */
export function manifestDifferences(a: unknown, b: unknown, prefix = ''): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const isObj = (x: unknown) => x !== null && typeof x === 'object';
  if (!isObj(a) || !isObj(b) || Array.isArray(a) !== Array.isArray(b)) return [prefix || '(all)'];
  const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])];
  return keys.flatMap((k) =>
    manifestDifferences(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      prefix ? `${prefix}.${k}` : k,
    ),
  );
}

const show = (v: unknown) => (v === undefined ? 'unset' : JSON.stringify(v));

function get(o: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], o);
}

/** The files a run writes into its folder (what `overwrite` removes; nothing else there is touched). */
export const RUN_OUTPUTS = ['checkpoints', 'plots', 'model', 'history.json', 'history.csv', MANIFEST];

/**
 * Checks a run folder before training and writes its manifest:
 * - `resume`: the stored manifest's exact options must equal this run's (else an error naming each difference);
 *   a folder with no run at all is an error (`'auto'`: a fresh start), a run killed before its first checkpoint
 *   starts over with a notice;
 * - no `resume`: a folder that holds a run is refused unless `overwrite`, which deletes the run's outputs first.
 * Returns whether a checkpoint to resume from exists.
 */
export async function prepareRunFolder(
  dir: string,
  manifest: Omit<RunManifest, 'format' | 'version' | 'created'>,
  o: { resume?: boolean | 'auto'; overwrite?: boolean; lastCheckpoint: string; onNotice?: (m: string) => void },
): Promise<void> {
  const file = path.join(dir, MANIFEST);
  const hasManifest = existsSync(file);
  const hasCheckpoint = existsSync(o.lastCheckpoint);
  const holdsRun = hasManifest || hasCheckpoint || existsSync(path.join(dir, 'checkpoints'));
  if (o.resume === 'auto' && !holdsRun) {
    // Nothing to resume: a fresh run.
  } else if (o.resume) {
    if (!holdsRun)
      throw new RunFolderError(
        `--resume: ${dir} holds no run to resume (no ${MANIFEST}, no checkpoint).`,
        'Start without --resume, or pass the --out folder of the run to continue.',
      );
    if (hasManifest) {
      const stored = JSON.parse(await fs.readFile(file, 'utf8')) as RunManifest;
      const diffs = [
        ...(stored.script !== manifest.script ? ['script'] : []),
        ...manifestDifferences(stored.exact, manifest.exact),
      ];
      if (diffs.length > 0) {
        const detail = diffs
          .slice(0, 6)
          .map((k) =>
            k === 'script'
              ? `script ${show(stored.script)} -> ${show(manifest.script)}`
              : `${k} ${show(get(stored.exact, k))} -> ${show(get(manifest.exact, k))}`,
          )
          .join('; ');
        throw new RunFolderError(
          `--resume: this run differs from the one in ${dir} in ${diffs.length} option${diffs.length > 1 ? 's' : ''} that exact resume needs unchanged: ${detail}${diffs.length > 6 ? '; ...' : ''}.`,
          'Resume with the original options, or start a new run in another --out folder (or --overwrite this one).',
        );
      }
    } else if (hasCheckpoint) {
      o.onNotice?.(`${dir} has a checkpoint but no ${MANIFEST} (older run): options cannot be checked.`);
    }
    if (!hasCheckpoint)
      o.onNotice?.(
        `--resume: no checkpoint in ${dir} yet (the run stopped before its first one); starting from the beginning.`,
      );
    if (hasManifest) return;
  } else if (holdsRun) {
    if (!o.overwrite)
      throw new RunFolderError(
        `${dir} already holds a run (${hasManifest ? MANIFEST : 'checkpoints'}).`,
        'Pass --resume to continue it, --overwrite to replace it, or choose another --out folder.',
      );
    for (const f of RUN_OUTPUTS) await fs.rm(path.join(dir, f), { recursive: true, force: true });
    o.onNotice?.(`--overwrite: removed the previous run's outputs in ${dir}.`);
  }
  const full: RunManifest = { format: 'fer-run', version: 1, ...manifest, created: new Date().toISOString() };
  await writeFileAtomic(file, JSON.stringify(full, null, 1));
}

/** Temporary files of interrupted atomic writes: `.<name>.<pid>.<time>.tmp` (files or staging folders). */
const TEMP = /^\..+\.\d+\.\d+(\.[a-z]+)?\.tmp$/;

/**
 * Removes what killed writes left in a run folder (called with the lock held, so no live writer owns them):
 * temporary files in the folder and its checkpoints/, plots/ and model/ folders and staging folders of the model
 * save, after restoring the previous model when a kill hit between the two renames of `replaceDirAtomic`.
 * Returns the restored and removed paths.
 */
export async function cleanRunFolder(dir: string): Promise<{ restored: string[]; removed: string[] }> {
  const restored = await recoverDirs(dir);
  const removed: string[] = [];
  for (const sub of ['.', 'checkpoints', 'plots', 'model']) {
    const d = path.join(dir, sub);
    let names: string[];
    try {
      names = await fs.readdir(d);
    } catch {
      continue;
    }
    for (const n of names) {
      if (!TEMP.test(n)) continue;
      // A lock being taken right now by another process (its pid is in the name) is not ours to remove.
      const lockPid = /^\.lock\.(\d+)\./.exec(n)?.[1];
      if (lockPid && alive(Number(lockPid))) continue;
      await fs.rm(path.join(d, n), { recursive: true, force: true });
      removed.push(path.join(d, n));
    }
  }
  return { restored, removed };
}
