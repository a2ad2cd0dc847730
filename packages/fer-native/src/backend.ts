import * as tf from '@tensorflow/tfjs-core';
// Importing the cpu backend registers its kernels, which the native backend starts from.
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { loadAddon, type AddonInfo, type NativeAddon } from './addon';
import { NATIVE_KERNELS } from './kernels';
import { BufferPool, type PoolStats } from './pool';

/** tfjs' name for the backend (`tf.setBackend('native')`). */
export const NATIVE_BACKEND = 'native';

/**
 * tfjs-backend-cpu's backend under another name: tensors live in plain typed arrays (no 4 GB wasm heap, no copy
 * into the addon: it reads them in place), every cpu kernel works unchanged, and the native kernels replace the
 * heavy ones. oneDNN threads inside this one process, so no worker data-parallelism is needed.
 */
export class NativeBackend extends MathBackendCPU {
  /** Reuses disposed outputs' buffers (src/pool.ts); the kernels allocate through it. */
  readonly pool: BufferPool;

  constructor(
    readonly addon: NativeAddon,
    poolBytes = poolCapFromEnv(),
  ) {
    super();
    // MathBackendCPU warns "install the node backend" on its first write in Node; this is that faster backend.
    (this as unknown as { firstUse: boolean }).firstUse = false;
    this.pool = new BufferPool(poolBytes);
  }

  override write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId {
    const id = super.write(values, shape, dtype);
    this.pool.adopt(values);
    return id;
  }

  override readSync(dataId: tf.DataId): tf.backend_util.BackendValues {
    // cpu hands out its own array: from now on the caller may hold it, so its buffer is never reused.
    this.pool.escape(this.data.get(dataId)?.values);
    return super.readSync(dataId);
  }

  override disposeData(dataId: tf.DataId, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const done = super.disposeData(dataId, force);
    if (values && !this.data.has(dataId)) this.pool.reclaim(values);
    return done;
  }

  override dispose(): void {
    super.dispose();
    this.pool.clear();
  }

  /** The buffer pool's counters (reuse hits and misses, free bytes, escaped buffers). */
  poolStats(): PoolStats {
    return this.pool.snapshot();
  }
}

/** `FER_NATIVE_POOL_MB` caps the free bytes kept for reuse (0: no reuse); default 4 GiB. */
export function poolCapFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FER_NATIVE_POOL_MB;
  if (raw === undefined || raw === '') return 4096 * 2 ** 20;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb < 0) {
    throw new Error(
      `FER_NATIVE_POOL_MB: expected a number of megabytes ≥ 0 (0 turns buffer reuse off), but got '${raw}'. ` +
        'Unset it for the default (4096).',
    );
  }
  return Math.floor(mb * 2 ** 20);
}

export interface NativeRegistration {
  /** True when the 'native' backend is registered (the addon loaded). */
  ok: boolean;
  /** Why not, in one line (empty when ok). */
  reason: string;
  /** The addon's oneDNN version, ISA and threads (when ok). */
  info?: AddonInfo;
  /** Kernels the addon provides (the rest are tfjs-backend-cpu's). */
  kernels: string[];
}

let registration: NativeRegistration | undefined;

/**
 * Registers the 'native' tfjs backend once: every tfjs-backend-cpu kernel re-registered under 'native', then the
 * addon's kernels over them. Does not activate it (`tf.setBackend('native')` does). Safe to call repeatedly;
 * returns why not when the addon is not built or fails to load.
 */
export function registerNativeBackend(): NativeRegistration {
  if (registration) return registration;
  const { addon, reason } = loadAddon();
  if (!addon) {
    registration = { ok: false, reason, kernels: [] };
    return registration;
  }
  let info: AddonInfo;
  try {
    info = addon.info();
  } catch (e) {
    registration = {
      ok: false,
      reason: `fer-native's addon failed its self-check: ${(e as Error).message}`,
      kernels: [],
    };
    return registration;
  }
  if (!tf.findBackend(NATIVE_BACKEND)) {
    // Priority below cpu's (1): tfjs never picks it on its own; fer-backend's initBackend does.
    tf.registerBackend(NATIVE_BACKEND, () => new NativeBackend(addon), 0);
  }
  registerNativeKernels();
  registration = { ok: true, reason: '', info, kernels: NATIVE_KERNELS.map((k) => k.kernelName) };
  return registration;
}

/** (Re)registers cpu's kernels, then the native ones, for the 'native' backend. */
export function registerNativeKernels(): void {
  for (const cfg of tf.getKernelsForBackend('cpu')) {
    if (!tf.getKernel(cfg.kernelName, NATIVE_BACKEND)) tf.registerKernel({ ...cfg, backendName: NATIVE_BACKEND });
  }
  for (const cfg of NATIVE_KERNELS) {
    if (tf.getKernel(cfg.kernelName, NATIVE_BACKEND)) tf.unregisterKernel(cfg.kernelName, NATIVE_BACKEND);
    tf.registerKernel({ ...cfg, backendName: NATIVE_BACKEND });
  }
}
