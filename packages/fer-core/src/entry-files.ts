/**
 * Entry files that a package starts by path (worker scripts, task modules), found from the calling module in both
 * layouts: TypeScript sources (jest, tsx: `name.ts` beside the caller) and the built package (`name.js` / `name.mjs`,
 * the caller's own extension). fer-datasets, fer-parallel and fer-train use it. Node only.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The calling module's path, from `__filename` (CommonJS: dist `.js`, jest, tsx) or `import.meta.url` (ESM dist
 * `.mjs`, where `__filename` does not exist). Call it as
 * `moduleFile(typeof __filename === 'string' ? __filename : import.meta.url)`, so no bundler shim is needed (a shim
 * would put Node imports into every chunk, browser-safe ones included).
 */
export function moduleFile(filenameOrUrl: string): string {
  return filenameOrUrl.startsWith('file:') ? fileURLToPath(filenameOrUrl) : filenameOrUrl;
}

export interface EntryFile {
  /** Absolute path. */
  file: string;
  /** A `.ts` source: it runs only through tsx (see `workerLaunch`). */
  typescript: boolean;
}

/**
 * The entry `name` next to `caller` (a path from `moduleFile`): `name` plus the caller's extension (`.ts` in sources,
 * `.js`/`.mjs` in dist), looked for in each of `dirs` (relative to the caller's folder; bundled code sits at another
 * depth than its source). Returns the first that exists, or null; `candidates` lists where it looked, for errors.
 */
export function findEntry(
  caller: string,
  name: string,
  dirs: readonly string[] = ['.'],
): { entry: EntryFile | null; candidates: string[] } {
  const ext = path.extname(caller);
  const candidates = dirs.map((d) => path.resolve(path.dirname(caller), d, name + ext));
  const file = candidates.find((f) => existsSync(f));
  return { entry: file ? { file, typescript: ext === '.ts' } : null, candidates };
}

/** How to start a `worker_threads` Worker: `new Worker(source, { eval, env })`. */
export interface WorkerLaunch {
  source: string;
  eval: boolean;
  env?: NodeJS.ProcessEnv;
}

function findUp(dir: string, name: string): string | undefined {
  for (let d = dir; ; d = path.dirname(d)) {
    const f = path.join(d, name);
    if (existsSync(f)) return f;
    if (path.dirname(d) === d) return undefined;
  }
}

/**
 * How to start a worker on `entry`. A built entry (with `tsx: false`) starts as is. Otherwise (a `.ts` entry, or
 * `tsx: true` because the worker will load `.ts` modules): an eval'd bootstrap requires tsx's CommonJS hook first
 * (`--import tsx` does not reach a worker's entry on Node 20); for a `.ts` entry `TSX_TSCONFIG_PATH` names the
 * nearest tsconfig.json, so workspace imports resolve to sources as in the parent. tsx is resolved from
 * `resolveFrom` (folders); null when it is not installed.
 */
export function workerLaunch(
  entry: EntryFile,
  opts: { tsx?: boolean; resolveFrom: readonly string[] },
): WorkerLaunch | null {
  if (!(opts.tsx ?? entry.typescript)) return { source: entry.file, eval: false };
  let tsx: string | undefined;
  for (const dir of opts.resolveFrom) {
    try {
      tsx = createRequire(path.join(dir, 'noop.js')).resolve('tsx/cjs');
      break;
    } catch {
      // not installed where this folder resolves from; try the next
    }
  }
  if (!tsx) return null;
  const tsconfig = entry.typescript ? findUp(path.dirname(entry.file), 'tsconfig.json') : undefined;
  return {
    source: `require(${JSON.stringify(tsx)});\nrequire(${JSON.stringify(entry.file)});`,
    eval: true,
    env: tsconfig ? { ...process.env, TSX_TSCONFIG_PATH: tsconfig } : undefined,
  };
}
