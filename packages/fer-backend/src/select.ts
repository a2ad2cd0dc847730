import * as tf from '@tensorflow/tfjs-core';
// Registers the stock gradients (tfjs-core's CJS bundle registers none) and tfjs-layers' chained ops.
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { registerGradientOverrides } from './gradients';
import { registerWasmTrainingKernels } from './wasm/register';

/** Backends in automatic preference order. `tfjs-node*` are optional peer dependencies, detected at run time. */
export const BACKEND_NAMES = ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendOptions {
  /** Backend to use; overrides `FER_BACKEND`. Default: `FER_BACKEND`, else the first available of BACKEND_NAMES. */
  backend?: BackendName | 'auto';
  /** Do not log the choice. */
  quiet?: boolean;
}

export interface BackendInfo {
  /** The backend package chosen. */
  name: BackendName;
  /** tfjs' own name for it (`tf.getBackend()`): 'tensorflow', 'wasm' or 'cpu'. */
  tfBackend: string;
  /** How it was chosen. */
  source: 'option' | 'env' | 'auto';
  /** True once tfjs' gradients are registered (always, after initBackend). */
  gradients: boolean;
  /** Kernels fer-backend registered for this backend (empty except on wasm). */
  kernels: string[];
  /** Gradient overrides fer-backend registered (global, every backend). */
  gradientOverrides: string[];
  /** Candidates tried before this one during automatic selection, with why each was skipped. */
  skipped: { name: BackendName; reason: string }[];
}

const INSTALL_HINT: Record<BackendName, string> = {
  'tfjs-node-gpu':
    'Install it with `npm install @tensorflow/tfjs-node-gpu@4.22.0` (needs CUDA 11.2 + cuDNN 8.1, and network access to storage.googleapis.com at install time, which downloads libtensorflow).',
  'tfjs-node':
    'Install it with `npm install @tensorflow/tfjs-node@4.22.0` (its install script downloads libtensorflow from storage.googleapis.com, so it needs that host reachable).',
  wasm: 'Install it with `npm install @tensorflow/tfjs-backend-wasm@4.22.0`.',
  cpu: 'Install it with `npm install @tensorflow/tfjs-backend-cpu@4.22.0`.',
};

/** Thrown when an explicitly requested backend cannot be used. */
export class BackendUnavailableError extends Error {
  constructor(
    readonly backend: BackendName,
    readonly reason: string,
  ) {
    super(
      `Backend '${backend}' was requested but is not available: ${reason}. ${INSTALL_HINT[backend]} Or pick another with FER_BACKEND=wasm or { backend: 'wasm' }.`,
    );
    this.name = 'BackendUnavailableError';
  }
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
  if ((BACKEND_NAMES as readonly string[]).includes(v)) return v as BackendName;
  throw new Error(`Unknown backend '${value}'. Valid: ${BACKEND_NAMES.join(', ')}, auto.`);
}

// A variable specifier keeps bundlers and tsc from resolving the optional native packages.
async function importOptional(spec: string): Promise<void> {
  await import(/* webpackIgnore: true */ spec);
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
 * Chooses and activates the tfjs backend, registers the gradients (importing fer-backend imports
 * `@tensorflow/tfjs-layers`, which registers tfjs' stock gradients), re-registers fer-backend's gradient overrides
 * after them (lean `FusedBatchNorm`), and on wasm registers the training kernels tfjs lacks. Order: explicit
 * `options.backend`, else `FER_BACKEND`, else the first available of tfjs-node-gpu, tfjs-node, wasm, cpu. An
 * explicit choice that is unavailable throws `BackendUnavailableError` naming how to install it. Logs the choice
 * once per process and backend unless `quiet`. Safe to call repeatedly.
 */
export async function initBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  let requested: BackendName | 'auto' = 'auto';
  let source: BackendInfo['source'] = 'auto';
  if (options.backend != null && options.backend !== 'auto') {
    requested = parseBackendName(options.backend);
    source = 'option';
  } else if (options.backend == null && process.env.FER_BACKEND) {
    requested = parseBackendName(process.env.FER_BACKEND);
    source = requested === 'auto' ? 'auto' : 'env';
  }
  // Kernels and gradients first: registries are global, so this holds whatever becomes active.
  const kernels = registerWasmTrainingKernels();
  const gradientOverrides = registerGradientOverrides();

  const skipped: BackendInfo['skipped'] = [];
  let chosen: BackendName | undefined;
  if (requested !== 'auto') {
    const why = await tryActivate(requested);
    if (why) throw new BackendUnavailableError(requested, why);
    chosen = requested;
  } else {
    for (const name of BACKEND_NAMES) {
      const why = await tryActivate(name);
      if (!why) {
        chosen = name;
        break;
      }
      skipped.push({ name, reason: why });
    }
    if (!chosen) {
      throw new Error(
        `No tfjs backend could be initialised: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}.`,
      );
    }
  }
  const info: BackendInfo = {
    name: chosen,
    tfBackend: tf.getBackend(),
    source,
    gradients: true,
    kernels: chosen === 'wasm' ? kernels : [],
    gradientOverrides,
    skipped,
  };
  if (!options.quiet && logged !== chosen) {
    logged = chosen;
    const extra = info.kernels.length ? `; training kernels: ${info.kernels.join(', ')}` : '';
    console.info(`[fer-backend] using ${chosen} (${source})${extra}`);
  }
  return info;
}
