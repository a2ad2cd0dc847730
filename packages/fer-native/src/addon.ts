import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';

/** What the compiled addon reports about itself. */
export interface AddonInfo {
  /** oneDNN version, e.g. '2.6.3'. */
  onednn: string;
  /** The instruction set oneDNN dispatches to on this CPU, e.g. 'avx512_core_bf16'. */
  isa: string;
  /** OpenMP threads oneDNN and the addon's own loops use. */
  threads: number;
}

/**
 * The addon's functions. Kernel groups add theirs (native/<group>.cc); the TS wrappers in src/kernels/<group>.ts
 * declare the signatures they call, so this stays an open record.
 */
export interface NativeAddon {
  info(): AddonInfo;
  /** `n`: a positive integer (the addon checks it). */
  setThreads(n: unknown): void;
  [fn: string]: (...args: unknown[]) => unknown;
}

export const APT_COMMAND = 'apt-get install -y g++ libdnnl-dev';

/** Where the build script writes the addon (package root / build). Works from src/ (tsx, jest) and dist/. */
export const ADDON_PATH = path.resolve(__dirname, '..', 'build', 'fer_native.node');

let cached: { addon: NativeAddon | null; reason: string } | undefined;

/**
 * Loads build/fer_native.node once. Returns the addon, or null and one line saying why (not built: how to build
 * it; failed to load: the loader's first line).
 */
export function loadAddon(): { addon: NativeAddon | null; reason: string } {
  if (cached) return cached;
  if (!existsSync(ADDON_PATH)) {
    cached = {
      addon: null,
      reason: `fer-native's addon is not built (${ADDON_PATH} is missing): run \`${APT_COMMAND}\`, then \`pnpm install\` (or \`node ${path.join(path.dirname(ADDON_PATH), '..', 'scripts', 'build-addon.cjs')}\`)`,
    };
    return cached;
  }
  const rebuild = `node ${path.join(path.dirname(ADDON_PATH), '..', 'scripts', 'build-addon.cjs')}`;
  const buildDir = path.dirname(ADDON_PATH);
  if (sourcesStale(path.join(buildDir, '..', 'native'), path.join(buildDir, 'fer_native.sources'))) {
    cached = {
      addon: null,
      reason: `fer-native's addon was built from older sources than its native/ folder; rebuild it with \`${rebuild}\``,
    };
    return cached;
  }
  try {
    const mod = { exports: {} as NativeAddon };
    withSpinCount(() => process.dlopen(mod, ADDON_PATH), realSetenv());
    cached = { addon: mod.exports, reason: '' };
  } catch (e) {
    const first = String((e as Error)?.message ?? e).split('\n')[0];
    cached = {
      addon: null,
      reason: `fer-native's addon failed to load (${first}); rebuild it with \`node ${path.join(path.dirname(ADDON_PATH), '..', 'scripts', 'build-addon.cjs')} --force --strict\``,
    };
  }
  return cached;
}

/** libgomp spin iterations before an idle OpenMP thread sleeps, unless the user set a wait policy. */
export const GOMP_SPIN_COUNT = '10000';

/** Sets (a string) or unsets (undefined) a variable of the process's C environment, which libgomp reads. */
export type Setenv = (name: string, value: string | undefined) => void;

/**
 * The C environment's setter for this thread: process.env on the main thread (Node writes it through), and
 * build/fer_env.node's elsewhere (a worker's process.env is a copy native code never sees); null without it.
 */
function realSetenv(): Setenv | null {
  if (isMainThread)
    return (name, value) => {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    };
  const shim = path.join(path.dirname(ADDON_PATH), 'fer_env.node');
  if (!existsSync(shim)) return null;
  try {
    const mod = { exports: {} as { setenv: Setenv } };
    process.dlopen(mod, shim);
    return mod.exports.setenv;
  } catch {
    return null;
  }
}

/**
 * Runs `load` (the dlopen that loads libgomp with the addon) with `GOMP_SPINCOUNT` set to {@link GOMP_SPIN_COUNT}
 * in the C environment when neither it nor `OMP_WAIT_POLICY` is set, then unsets it: libgomp reads it once, at load,
 * and child processes (PyTorch in `pnpm bench speed`) must not inherit it. libgomp's default spins an idle thread
 * ~300,000 pauses (milliseconds) after every parallel region; between our kernels the JS thread works alone, so the
 * partner burnt CPU, and on a shared machine it took the core from threads with work (ESR-1 training at load ~6:
 * 139–188 → 105–107 CPU ms/image, 5.2–7.8 → 9.0–9.4 img/s). 10,000 still covers the gap between back-to-back
 * kernels. Without a setter (`null`) libgomp keeps its defaults.
 */
export function withSpinCount<T>(load: () => T, setenv: Setenv | null): T {
  const set = setenv !== null && process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined;
  if (set) setenv(GOMP_SPIN_COUNT_VAR, GOMP_SPIN_COUNT);
  try {
    return load();
  } finally {
    if (set) setenv(GOMP_SPIN_COUNT_VAR, undefined);
  }
}

const GOMP_SPIN_COUNT_VAR = 'GOMP_SPINCOUNT';

/**
 * Whether the addon was built from other sources than `nativeDir` holds now: the digest the build script recorded
 * (scripts/build-addon.cjs, `sourcesDigest`) against one over the `.cc`/`.h` files. A pulled checkout without a
 * reinstall would otherwise call functions the old binary lacks. No record or no sources (built by hand): trusted.
 */
export function sourcesStale(nativeDir: string, recordedFile: string): boolean {
  if (!existsSync(nativeDir) || !existsSync(recordedFile)) return false;
  const h = createHash('sha256');
  for (const f of readdirSync(nativeDir)
    .filter((n) => /\.(cc|h)$/.test(n))
    .sort())
    h.update(f).update(readFileSync(path.join(nativeDir, f)));
  return h.digest('hex') !== readFileSync(recordedFile, 'utf8');
}
