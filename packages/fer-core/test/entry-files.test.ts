/**
 * fer-core/node's entry-file helpers, which fer-datasets, fer-parallel and fer-train use to find and start their
 * worker and task modules from sources (`.ts`, through tsx) and from dist (`.js` / `.mjs`).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { findEntry, moduleFile, workerLaunch } from 'fer-core/node';

let root: string;
const at = (...p: string[]) => path.join(root, ...p);
function touch(rel: string, text = ''): string {
  mkdirSync(path.dirname(at(rel)), { recursive: true });
  writeFileSync(at(rel), text);
  return at(rel);
}

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'fer-entry-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('moduleFile', () => {
  it('takes __filename as is and turns an ESM file URL into the same path', () => {
    expect(moduleFile(__filename)).toBe(__filename);
    expect(moduleFile(pathToFileURL(__filename).href)).toBe(__filename);
  });
});

describe('findEntry', () => {
  it("finds the entry with the caller's extension: .ts beside a source, .mjs beside an ESM build", () => {
    const src = touch('pkg/src/pipeline/worker.ts');
    touch('pkg/src/pipeline/worker.js'); // a stray build output beside the source is not taken
    expect(findEntry(at('pkg/src/pipeline/executor.ts'), 'worker').entry).toEqual({ file: src, typescript: true });
    const mjs = touch('pkg/dist/worker.mjs');
    expect(findEntry(at('pkg/dist/chunk-ABC.mjs'), 'worker').entry).toEqual({ file: mjs, typescript: false });
  });

  it('looks in each folder in order (bundled code sits at another depth) and lists them when nothing is there', () => {
    const task = touch('train/dist/parallel/task.js');
    const dirs = ['.', 'parallel', '../parallel'];
    expect(findEntry(at('train/dist/index.js'), 'task', dirs).entry?.file).toBe(task);
    expect(findEntry(at('train/dist/cli/main.js'), 'task', dirs).entry?.file).toBe(task);
    const missing = findEntry(at('train/dist/index.mjs'), 'task', dirs);
    expect(missing.entry).toBeNull();
    expect(missing.candidates).toEqual([
      at('train/dist/task.mjs'),
      at('train/dist/parallel/task.mjs'),
      at('train/parallel/task.mjs'),
    ]);
  });
});

describe('workerLaunch', () => {
  it('starts a built entry as is, unless tsx is asked for (the worker will load .ts modules)', () => {
    const entry = { file: touch('b/dist/worker.js'), typescript: false };
    expect(workerLaunch(entry, { resolveFrom: [root] })).toEqual({ source: entry.file, eval: false });
    const viaTsx = workerLaunch(entry, { tsx: true, resolveFrom: [__dirname] });
    expect(viaTsx?.eval).toBe(true);
    expect(viaTsx?.source).toContain(JSON.stringify(entry.file));
    expect(viaTsx?.env).toBeUndefined(); // tsx then resolves the tsconfig from the working directory
  });

  it('returns null when tsx cannot be resolved from the given folders', () => {
    const entry = { file: touch('c/src/worker.ts'), typescript: true };
    expect(workerLaunch(entry, { resolveFrom: [os.tmpdir()] })).toBeNull();
  });

  it('starts a TypeScript entry through tsx, with the nearest tsconfig.json, in a real worker thread', async () => {
    const tsconfig = touch('d/tsconfig.json', '{}');
    const file = touch(
      'd/src/worker.ts',
      "import { parentPort } from 'node:worker_threads';\nconst answer: number = 6 * 7;\nparentPort!.postMessage(answer);\n",
    );
    const launch = workerLaunch({ file, typescript: true }, { resolveFrom: [__dirname] })!;
    expect(launch.env?.TSX_TSCONFIG_PATH).toBe(tsconfig);
    const worker = new Worker(launch.source, { eval: launch.eval, env: launch.env });
    try {
      const got = await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(got).toBe(42);
    } finally {
      await worker.terminate();
    }
  });
});
