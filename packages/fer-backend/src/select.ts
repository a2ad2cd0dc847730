import * as tf from '@tensorflow/tfjs-core';
// Registers the stock gradients (tfjs-core's CJS bundle registers none) and tfjs-layers' chained ops.
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { checkTfjsVersion, type TfjsVersionCheck } from 'fer-core';
import { registerGradientOverrides, restoreStockGradients } from './gradients';
import { registerWasmTrainingKernels } from './wasm/register';

/**
 * Backends in automatic preference order. `tfjs-node*` are optional peer dependencies, detected at run time;
 * `native` is fer-native's oneDNN kernel pack (an optional peer too), used when its addon is built.
 */
export const BACKEND_NAMES = ['tfjs-node-gpu', 'tfjs-node', 'native', 'wasm', 'cpu'] as const;
/**
 * The automatic order in a browser. fer-backend does not import the GPU backends (large, browser-only): a page
 * imports `@tensorflow/tfjs-backend-webgpu` and/or `-webgl` first, and the registered ones are tried in this order.
 */
export const BROWSER_BACKEND_NAMES = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number] | (typeof BROWSER_BACKEND_NAMES)[number];
const ALL_NAMES: readonly BackendName[] = [...BACKEND_NAMES, 'webgpu', 'webgl'];

/** True outside Node (a page or a web worker): no `process.versions.node`. */
function inBrowser(): boolean {
  return typeof process === 'undefined' || !process.versions?.node;
}

export interface BackendOptions {
  /** Backend to use; overrides `FER_BACKEND`. Default: `FER_BACKEND`, else the first available of BACKEND_NAMES. */
  backend?: BackendName | 'auto';
  /** Do not log the choice. */
  quiet?: boolean;
  /**
   * Register fer-backend's gradient overrides (default true). They replace tfjs' stock gradients of
   * `FusedBatchNorm`, `Sum`, `Mean` and `Max` process-wide (every model, every backend) with versions of the same
   * values that use less memory and time (see gradients.ts). `false` keeps, or puts back, the stock gradients.
   */
  gradientOverrides?: boolean;
  /** When the installed tfjs is not the verified 4.22.0: `'warn'` once (default), `'error'` (throws), or `'off'`. */
  tfjsVersionCheck?: TfjsVersionCheck;
}

export interface BackendInfo {
  /** The backend package chosen. */
  name: BackendName;
  /** tfjs' own name for it (`tf.getBackend()`): 'tensorflow', 'native', 'webgpu', 'webgl', 'wasm' or 'cpu'. */
  tfBackend: string;
  /** How it was chosen. */
  source: 'option' | 'env' | 'auto';
  /** True once tfjs' gradients are registered (always, after initBackend). */
  gradients: boolean;
  /** Kernels fer-backend registered for this backend: wasm's training kernels, or fer-native's native kernels. */
  kernels: string[];
  /** The kernel pack in use, in one line (e.g. 'fer-native: oneDNN 2.6.3, avx512_core_bf16, 2 threads'). */
  kernelPack: string;
  /** Gradient overrides fer-backend registered (global, every backend); empty with `gradientOverrides: false`. */
  gradientOverrides: string[];
  /** Candidates tried before this one during automatic selection, with why each was skipped. */
  skipped: { name: BackendName; reason: string }[];
}

const INSTALL_HINT: Record<BackendName, string> = {
  'tfjs-node-gpu':
    'Install it with `npm install @tensorflow/tfjs-node-gpu@4.22.0` (needs CUDA 11.2 + cuDNN 8.1, and network access to storage.googleapis.com at install time, which downloads libtensorflow).',
  'tfjs-node':
    'Install it with `npm install @tensorflow/tfjs-node@4.22.0` (its install script downloads libtensorflow from storage.googleapis.com, so it needs that host reachable).',
  native:
    'It needs the fer-native package and its addon: `npm install fer-native`, with `apt-get install -y g++ libdnnl-dev` done first so its install script can compile it.',
  wasm: 'Install it with `npm install @tensorflow/tfjs-backend-wasm@4.22.0`.',
  cpu: 'Install it with `npm install @tensorflow/tfjs-backend-cpu@4.22.0`.',
  webgpu:
    "Import '@tensorflow/tfjs-backend-webgpu' (4.22.0) before initBackend(); it needs a browser with WebGPU and a GPU adapter.",
  webgl: "Import '@tensorflow/tfjs-backend-webgl' (4.22.0) before initBackend(); it needs a browser with WebGL.",
};

/**
 * Thrown when an explicitly requested backend cannot be used. fer-backend does not depend on fer-core, so this
 * follows its error convention (stable `FER_…` `code`, `hint` appended to the message) without the base class.
 */
export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
  readonly code = 'FER_BACKEND_UNAVAILABLE';
  readonly hint: string;
  constructor(
    /** `auto`: none of the backends tried could be initialised. */
    readonly backend: BackendName | 'auto',
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    const hint =
      backend === 'auto'
        ? INSTALL_HINT.cpu
        : `${INSTALL_HINT[backend]} Or pick another with FER_BACKEND=wasm or { backend: 'wasm' }.`;
    const what =
      backend === 'auto'
        ? `No tfjs backend could be initialised (${reason}).`
        : `Backend '${backend}' was requested but is not available: ${reason}.`;
    super(`${what} ${hint}`, options);
    this.hint = hint;
  }
}

/** A backend option (`FER_BACKEND`, `--backend`) that names no backend; code `FER_INPUT` like fer-core's. */
export class BackendInputError extends Error {
  override readonly name = 'BackendInputError';
  readonly code = 'FER_INPUT';
}

/**
 * Parses a backend name as given by a user (`FER_BACKEND`, a CLI flag). Accepts `tensorflow` / `node` as
 * aliases for `tfjs-node`, and `auto`.
 */
export function parseBackendName(value: string): BackendName | 'auto' {
  const v = value.trim().toLowerCase();
  if (v === 'auto') return 'auto';
  if (v === 'tensorflow' || v === 'node') return 'tfjs-node';
  if (v === 'gpu' || v === 'node-gpu') return 'tfjs-node-gpu';
  if ((ALL_NAMES as readonly string[]).includes(v)) return v as BackendName;
  throw new BackendInputError(`Unknown backend '${value}'. Valid: ${ALL_NAMES.join(', ')}, auto.`);
}

// A variable specifier keeps bundlers and tsc from resolving the optional native packages.
async function importOptional(spec: string): Promise<unknown> {
  return import(/* webpackIgnore: true */ spec);
}

/** The part of fer-native this module uses (typed here so fer-backend does not depend on it at import time). */
interface FerNativeModule {
  registerNativeBackend(): {
    ok: boolean;
    reason: string;
    info?: { onednn: string; isa: string; threads: number };
    kernels: string[];
  };
}

let nativePack: { kernels: string[]; pack: string } | undefined;

async function activateNative(): Promise<string | null> {
  if (process.env.FER_NATIVE === '0') return 'disabled by FER_NATIVE=0';
  let mod: FerNativeModule;
  try {
    mod = (await importOptional('fer-native')) as FerNativeModule;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if ((err?.code === 'MODULE_NOT_FOUND' || err?.code === 'ERR_MODULE_NOT_FOUND') && /fer-native/.test(err.message)) {
      // In a source checkout, worker threads resolve workspace packages through their dist: `pnpm build` first.
      return 'fer-native is not installed (or, in a source checkout, not built: run pnpm build)';
    }
    return `fer-native failed to load (${firstLine(err)})`;
  }
  const reg = mod.registerNativeBackend();
  if (!reg.ok) return reg.reason;
  if (!(await tf.setBackend('native'))) return "tf.setBackend('native') returned false";
  const i = reg.info;
  nativePack = {
    kernels: reg.kernels,
    pack: i ? `fer-native: oneDNN ${i.onednn}, ${i.isa}, ${i.threads} threads` : 'fer-native',
  };
  return null;
}

/** Loads a backend's package and makes it active. Returns null on success, else why it is unavailable. */
async function tryActivate(name: BackendName): Promise<string | null> {
  try {
    if (name === 'tfjs-node-gpu' || name === 'tfjs-node') {
      const spec = `@tensorflow/${name}`;
      try {
        await importOptional(spec);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err?.code === 'MODULE_NOT_FOUND' || err?.code === 'ERR_MODULE_NOT_FOUND') {
          if (String(err.message).includes(spec)) return `${spec} is not installed`;
        }
        return `${spec} failed to load (${firstLine(err)})`;
      }
      if (!tf.findBackend('tensorflow')) return `${spec} loaded but registered no 'tensorflow' backend`;
      if (!(await tf.setBackend('tensorflow'))) return `${spec}'s backend failed to initialise`;
      return null;
    }
    if (name === 'native') return await activateNative();
    if (name === 'webgpu' || name === 'webgl') {
      // The factory stays registered after a failed initialisation (findBackend would start an async init).
      if (!tf.findBackendFactory(name)) return `@tensorflow/tfjs-backend-${name} is not imported`;
      if (!(await tf.setBackend(name))) return `${name} failed to initialise in this browser (tfjs logged why)`;
      await tf.ready();
      return null;
    }
    if (!(await tf.setBackend(name))) return `tf.setBackend('${name}') returned false`;
    await tf.ready();
    return null;
  } catch (e) {
    return firstLine(e);
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}

let logged = '';

/**
 * Chooses and activates the tfjs backend. First checks the installed tfjs version against the verified one
 * (`tfjsVersionCheck`), then registers the gradients (importing fer-backend imports `@tensorflow/tfjs-layers`, which
 * registers tfjs' stock gradients), re-registers fer-backend's process-wide gradient overrides after them (unless
 * `gradientOverrides: false`), and on wasm registers the training kernels tfjs lacks. Order: explicit
 * `options.backend`, else `FER_BACKEND`, else the first available of tfjs-node-gpu, tfjs-node, native (fer-native's
 * oneDNN kernels, when its addon is built; `FER_NATIVE=0` skips it), wasm, cpu. In a browser: webgpu,
 * webgl, wasm, cpu, among the backends the page imported. An
 * explicit choice that is unavailable throws `BackendUnavailableError` naming how to install it. Logs the choice
 * once per process and backend unless `quiet`. Safe to call repeatedly.
 */
export async function initBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  let requested: BackendName | 'auto' = 'auto';
  let source: BackendInfo['source'] = 'auto';
  if (options.backend != null && options.backend !== 'auto') {
    requested = parseBackendName(options.backend);
    source = 'option';
  } else if (options.backend == null && !inBrowser() && process.env.FER_BACKEND) {
    requested = parseBackendName(process.env.FER_BACKEND);
    source = requested === 'auto' ? 'auto' : 'env';
  }
  checkTfjsVersion(options.tfjsVersionCheck ?? 'warn');
  // Kernels and gradients first: registries are global, so this holds whatever becomes active.
  const kernels = registerWasmTrainingKernels();
  let gradientOverrides: string[] = [];
  if (options.gradientOverrides === false) restoreStockGradients();
  else gradientOverrides = registerGradientOverrides();

  const skipped: BackendInfo['skipped'] = [];
  let chosen: BackendName | undefined;
  if (requested !== 'auto') {
    const why = await tryActivate(requested);
    if (why) throw new BackendUnavailableError(requested, why);
    chosen = requested;
  } else {
    for (const name of inBrowser() ? BROWSER_BACKEND_NAMES : BACKEND_NAMES) {
      const why = await tryActivate(name);
      if (!why) {
        chosen = name;
        break;
      }
      skipped.push({ name, reason: why });
    }
    if (!chosen) {
      throw new BackendUnavailableError('auto', skipped.map((s) => `${s.name}: ${s.reason}`).join('; '));
    }
  }
  const info: BackendInfo = {
    name: chosen,
    tfBackend: tf.getBackend(),
    source,
    gradients: true,
    kernels: chosen === 'wasm' ? kernels : chosen === 'native' ? (nativePack?.kernels ?? []) : [],
    kernelPack:
      chosen === 'native'
        ? (nativePack?.pack ?? 'fer-native')
        : chosen === 'wasm'
          ? 'tfjs-backend-wasm + fer-backend training kernels'
          : chosen.startsWith('tfjs-node')
            ? 'libtensorflow'
            : `tfjs-backend-${chosen}`,
    gradientOverrides,
    skipped,
  };
  if (!options.quiet && logged !== chosen) {
    logged = chosen;
    const native = skipped.find((s) => s.name === 'native');
    // Auto-selection fell past the native pack: say why once, so a slow run is never a mystery.
    if (native) console.info(`[fer-backend] native kernels unavailable: ${native.reason}`);
    console.info(`[fer-backend] using ${chosen} (${source}); kernels: ${info.kernelPack}`);
  }
  return info;
}
