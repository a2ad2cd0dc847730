/**
 * Reliability: a small synthetic training run (`run-child.ts`, real trainer and files, tiny model on cpu) is killed
 * with SIGKILL at 5 points drawn from a fixed seed (an event count, then 0-3 ms, so kills land between and inside
 * steps and checkpoint writes, which happen after every step here), resumed after each kill, and must end
 * bit-identical to an uninterrupted run, with no temporary file or lock left behind.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import { Rng } from 'fer-core';
import { loadCheckpoint } from '../src/io/checkpoint';
import type { History } from '../src/history';

const ROOT = path.resolve(__dirname, '../../..');
const CHILD = path.join(__dirname, 'run-child.ts');

interface ChildRun {
  lines: string[];
  code: number | null;
  signal: string | null;
}

/** Runs the child; with `killAfter`, SIGKILLs it `delayMs` after its `killAfter`-th output line. */
function runChild(mode: 'train' | 'resume', dir: string, killAfter?: number, delayMs = 0): Promise<ChildRun> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', CHILD, mode, dir], { cwd: ROOT });
    const lines: string[] = [];
    let buf = '';
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const l of parts) {
        lines.push(l);
        if (killAfter !== undefined && lines.length === killAfter) setTimeout(() => p.kill('SIGKILL'), delayMs);
      }
    });
    p.on('exit', (code, signal) => resolve({ lines, code, signal }));
  });
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await walk(p)));
  }
  return out;
}

async function finalState(dir: string) {
  const last = await loadCheckpoint<History>(path.join(dir, 'checkpoints', 'last.safetensors'));
  return {
    model: readFileSync(path.join(dir, 'model', 'weights.bin')),
    modelJson: readFileSync(path.join(dir, 'model', 'model.json'), 'utf8'),
    last: last.values.map((v) => Buffer.from(v.data).toString('base64')),
    position: last.meta.position,
    history: (JSON.parse(readFileSync(path.join(dir, 'history.json'), 'utf8')) as History).epochs.map(
      ({ seconds: _s, ...r }) => r,
    ),
  };
}

describe('reliability: kill -9 at 5 seeded points, resume each time', () => {
  let root = '';
  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-reliability-'));
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('ends bit-identical to an uninterrupted run with no temporary file or lock left', async () => {
    const reference = await runChild('train', path.join(root, 'a'));
    expect(reference.lines.at(-1)).toBe('done');
    const events = reference.lines.length;

    const dir = path.join(root, 'b');
    const rng = new Rng(17);
    const kills: { after: number; delay: number; killed: boolean }[] = [];
    for (let k = 0; k < 5; k++) {
      // Within the first sixth of a whole run's output: 5 kills cannot reach the end, each resume makes progress.
      const after = 1 + Math.floor(rng.uniform(0, 1) * (events / 6));
      const delay = Math.floor(rng.uniform(0, 4));
      const r = await runChild(k === 0 ? 'train' : 'resume', dir, after, delay);
      kills.push({ after, delay, killed: r.signal === 'SIGKILL' });
      expect(r.lines.some((l) => l.startsWith('error'))).toBe(false);
    }
    expect(kills.filter((k) => k.killed)).toHaveLength(5);
    const end = await runChild('resume', dir);
    expect(end.lines.at(-1)).toBe('done');

    const [want, got] = await Promise.all([finalState(path.join(root, 'a')), finalState(dir)]);
    expect(got.position).toEqual(want.position);
    expect(got.last).toEqual(want.last);
    expect(got.model.equals(want.model)).toBe(true);
    expect(got.modelJson).toBe(want.modelJson);
    expect(got.history).toEqual(want.history);
    const leftovers = (await walk(dir)).filter((f) => /\.tmp$|\.lock$/.test(path.basename(f)));
    expect(leftovers).toEqual([]);
  });
});
