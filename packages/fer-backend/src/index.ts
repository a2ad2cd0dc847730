// Minimal bootstrap; the backend issue (#2) grows this into the full selector and the wasm training kernels.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface BackendOptions {
  backend?: BackendName;
  quiet?: boolean;
}

export interface BackendInfo {
  name: BackendName;
}

export async function initBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  const name = options.backend ?? (process.env.FER_BACKEND as BackendName | undefined) ?? 'wasm';
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`Backend '${name}' could not be initialised.`);
  await tf.ready();
  return { name };
}
