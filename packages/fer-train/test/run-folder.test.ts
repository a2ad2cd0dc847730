/**
 * Run folders are safe against a user's mistakes: one run per folder at a time (lock, tested with real processes),
 * `--resume` only with the options of the stored run, no silent overwrite, no leftovers of killed writes.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Trainer, type TrainEvent } from '../src/trainer';
import { RunFolderError, RunLock, cleanRunFolder, manifestDifferences } from '../src/io/run-folder';
import { replaceDirAtomic } from '../src/io/atomic-dir';
import { esrGrowthPlan } from '../src/schedule/plans';
import { TinyEnsemble, tinyTrainerOptions } from './tiny';

const ROOT = path.resolve(__dirname, '../../..');
const CHILD = path.join(__dirname, 'run-child.ts');
/** `node --import tsx` (not the tsx wrapper): the child's pid is the process that holds the lock. */
const childArgs = (mode: string, dir: string) => ['--import', 'tsx', CHILD, mode, dir];

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-runfolder-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

type Opts = ConstructorParameters<typeof Trainer<TinyEnsemble>>[0];
/** A short one-stage run (2 epochs of 3 steps) of the tiny ensemble. */
function options(outDir: string, extra: Partial<Opts> = {}): Opts {
  return {
    ...tinyTrainerOptions(outDir),
    plan: esrGrowthPlan({ branches: 1, firstEpochs: 2, laterEpochs: 1, batchSize: 4 }),
    ...extra,
  };
}

async function train(o: Opts): Promise<{ notices: string[]; error?: Error }> {
  const notices: string[] = [];
  try {
    const r = await new Trainer({
      ...o,
      onEvent: (e: TrainEvent) => {
        if (e.type === 'notice') notices.push(e.message);
      },
    }).run();
    r.model.dispose();
    return { notices };
  } catch (e) {
    return { notices, error: e as Error };
  }
}

/** Starts `run-child.ts <mode> <dir>` and resolves once it printed `waitFor`. */
function child(mode: string, dir: string, waitFor: string): Promise<ChildProcessWithoutNullStreams> {
  const p = spawn(process.execPath, childArgs(mode, dir), { cwd: ROOT });
  return new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(waitFor)) resolve(p);
    });
    p.on('exit', (code) => reject(new Error(`child ${mode} exited with ${code} before '${waitFor}': ${out}`)));
  });
}

function exited(p: ChildProcessWithoutNullStreams): Promise<void> {
  return new Promise((resolve) =>
    p.exitCode !== null || p.signalCode !== null ? resolve() : p.on('exit', () => resolve()),
  );
}

describe('run folder lock (real processes)', () => {
  it('refuses a folder locked by a live process and names that process', async () => {
    const dir = path.join(await tmp(), 'run');
    const holder = await child('hold', dir, 'locked');
    try {
      const { error } = await train(options(dir));
      expect(error).toBeInstanceOf(RunFolderError);
      expect(error!.message).toContain(`in use by process ${holder.pid} on ${os.hostname()}`);
      expect(existsSync(path.join(dir, 'run.json'))).toBe(false);
    } finally {
      holder.kill('SIGKILL');
      await exited(holder);
    }
  });

  it('takes over the lock of a killed process with a notice', async () => {
    const dir = path.join(await tmp(), 'run');
    const holder = await child('hold', dir, 'locked');
    holder.kill('SIGKILL');
    await exited(holder);
    expect(existsSync(path.join(dir, '.lock'))).toBe(true);
    const { notices, error } = await train(options(dir));
    expect(error).toBeUndefined();
    expect(notices.join('\n')).toContain(`from process ${holder.pid} on ${os.hostname()}`);
    expect(existsSync(path.join(dir, '.lock'))).toBe(false);
  });

  it('lets exactly one of two processes started together train in the same folder', async () => {
    const dir = path.join(await tmp(), 'run');
    const run = (): Promise<string> =>
      new Promise((resolve) => {
        const p = spawn(process.execPath, childArgs('train', dir), { cwd: ROOT });
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('exit', () => resolve(out.trim().split('\n').pop()!));
      });
    const ends = await Promise.all([run(), run()]);
    const ok = ends.filter((e) => e === 'done');
    const refused = ends.filter((e) => e.startsWith('error RunFolderError'));
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(1);
    // Refused either by the lock (both started together) or, if the first had already finished, as a folder in use.
    expect(refused[0]).toMatch(/in use by process \d+|already holds a run/);
  });
});

describe('run manifest', () => {
  it('refuses a folder holding a run without --resume or --overwrite', async () => {
    const dir = await tmp();
    expect((await train(options(dir))).error).toBeUndefined();
    const before = readFileSync(path.join(dir, 'checkpoints', 'last.safetensors'));
    const { error } = await train(options(dir, { seed: 6 }));
    expect(error).toBeInstanceOf(RunFolderError);
    expect(error!.message).toMatch(/already holds a run .*--resume .*--overwrite/);
    expect(readFileSync(path.join(dir, 'checkpoints', 'last.safetensors')).equals(before)).toBe(true);
  });

  it('--overwrite replaces the previous run and keeps files it did not write', async () => {
    const dir = await tmp();
    expect((await train(options(dir, { maxSteps: 2 }))).error).toBeUndefined();
    await fs.writeFile(path.join(dir, 'notes.txt'), 'mine');
    const { error, notices } = await train(options(dir, { seed: 6, overwrite: true }));
    expect(error).toBeUndefined();
    expect(notices.join('\n')).toContain('--overwrite');
    expect(JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8')).exact.seed).toBe(6);
    expect(readFileSync(path.join(dir, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('--resume names every option that differs (batch, seed, image size) and changes nothing', async () => {
    const dir = await tmp();
    const first = { maxSteps: 2, manifest: { exact: { imageSize: 64 } } };
    expect((await train(options(dir, first))).error).toBeUndefined();
    const before = readFileSync(path.join(dir, 'checkpoints', 'last.safetensors'));
    const { error } = await train(
      options(dir, {
        resume: true,
        seed: 9,
        plan: esrGrowthPlan({ branches: 1, firstEpochs: 2, laterEpochs: 1, batchSize: 2 }),
        manifest: { exact: { imageSize: 48 } },
      }),
    );
    expect(error).toBeInstanceOf(RunFolderError);
    expect(error!.message).toContain('plan.batchSize 4 -> 2');
    expect(error!.message).toContain('seed 5 -> 9');
    expect(error!.message).toContain('imageSize 64 -> 48');
    expect(readFileSync(path.join(dir, 'checkpoints', 'last.safetensors')).equals(before)).toBe(true);
  });

  it('--resume accepts changes that keep exact resume (checkpoint cadence, step limit)', async () => {
    const dir = await tmp();
    expect((await train(options(dir, { maxSteps: 2 }))).error).toBeUndefined();
    const { error, notices } = await train(options(dir, { resume: true, checkpointEverySteps: 1 }));
    expect(error).toBeUndefined();
    expect(notices).toEqual([]);
  });

  it('--resume on a folder with no run says so', async () => {
    const dir = await tmp();
    const { error } = await train(options(dir, { resume: true }));
    expect(error).toBeInstanceOf(RunFolderError);
    expect(error!.message).toMatch(/holds no run to resume .*Start without --resume/);
  });

  it("resume 'auto' (the example scripts) starts a run in an empty folder, then resumes it", async () => {
    const dir = await tmp();
    const events: TrainEvent[] = [];
    expect((await train(options(dir, { resume: 'auto', maxSteps: 2 }))).error).toBeUndefined();
    const r = await new Trainer({ ...options(dir, { resume: 'auto' }), onEvent: (e) => events.push(e) }).run();
    r.model.dispose();
    expect(events.find((e) => e.type === 'resumed')).toMatchObject({ position: { globalStep: 2 } });
  });

  it('--resume of a run killed before its first checkpoint starts over with a notice', async () => {
    const dir = await tmp();
    expect((await train(options(dir, { maxSteps: 1 }))).error).toBeUndefined();
    await fs.rm(path.join(dir, 'checkpoints'), { recursive: true });
    const { error, notices } = await train(options(dir, { resume: true }));
    expect(error).toBeUndefined();
    expect(notices.join('\n')).toMatch(/no checkpoint in .* yet .*starting from the beginning/);
  });

  it('reports differences as dotted keys, a missing key included', () => {
    expect(manifestDifferences({ a: 1, p: { b: [1, 2] } }, { a: 1, p: { b: [1, 3] }, c: 0 })).toEqual(['p.b.1', 'c']);
  });
});

describe('crash leftovers', () => {
  it('removes temporary files of killed writes at the next start and says so', async () => {
    const dir = await tmp();
    expect((await train(options(dir, { maxSteps: 2 }))).error).toBeUndefined();
    const leftovers = [
      path.join(dir, 'checkpoints', '.last.safetensors.4242.1700000000000.tmp'),
      path.join(dir, '.history.json.4242.1700000000000.tmp'),
      path.join(dir, '.model.4242.1700000000000.new.tmp', 'weights.bin'),
    ];
    for (const f of leftovers) {
      await fs.mkdir(path.dirname(f), { recursive: true });
      await fs.writeFile(f, 'partial');
    }
    const { error, notices } = await train(options(dir, { resume: true }));
    expect(error).toBeUndefined();
    expect(notices.join('\n')).toContain('removed 3 temporary file(s)');
    for (const f of leftovers) expect(existsSync(f)).toBe(false);
    expect(existsSync(path.join(dir, '.model.4242.1700000000000.new.tmp'))).toBe(false);
  });

  it('a failed model save leaves the previous model folder untouched', async () => {
    const dir = await tmp();
    const model = path.join(dir, 'model');
    await replaceDirAtomic(model, async (d) => {
      await fs.writeFile(path.join(d, 'a'), 'old a');
      await fs.writeFile(path.join(d, 'b'), 'old b');
    });
    const failing = replaceDirAtomic(model, async (d) => {
      await fs.writeFile(path.join(d, 'a'), 'new a');
      throw new Error('killed');
    });
    await expect(failing).rejects.toThrow('killed');
    expect(readFileSync(path.join(model, 'a'), 'utf8')).toBe('old a');
    expect(readFileSync(path.join(model, 'b'), 'utf8')).toBe('old b');
    expect((await fs.readdir(dir)).sort()).toEqual(['model']);
  });

  it('a kill between the two renames of a model save restores the previous model at the next start', async () => {
    const dir = await tmp();
    // The state such a kill leaves: the old folder renamed aside, the complete new one not yet in place.
    const aside = path.join(dir, '.model.4242.1700000000000.old.tmp');
    const staged = path.join(dir, '.model.4242.1700000000000.new.tmp');
    await fs.mkdir(aside);
    await fs.writeFile(path.join(aside, 'weights.bin'), 'old');
    await fs.mkdir(staged);
    await fs.writeFile(path.join(staged, 'weights.bin'), 'new');
    const { restored, removed } = await cleanRunFolder(dir);
    expect(restored).toEqual([path.join(dir, 'model')]);
    expect(removed).toEqual([staged]);
    expect(readFileSync(path.join(dir, 'model', 'weights.bin'), 'utf8')).toBe('old');
  });

  it('releases the lock when run() throws', async () => {
    const dir = await tmp();
    const { error } = await train(options(dir, { resume: true }));
    expect(error).toBeDefined();
    expect(existsSync(path.join(dir, '.lock'))).toBe(false);
    const lock = await RunLock.acquire(dir);
    await lock.release();
  });
});
