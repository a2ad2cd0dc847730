import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';

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
    process.dlopen(mod, ADDON_PATH);
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
