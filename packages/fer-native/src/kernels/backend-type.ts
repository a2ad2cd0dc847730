import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from '../addon';
import type { BufferPool } from '../pool';

/**
 * What the kernels use of the native backend: tfjs-backend-cpu's backend plus the addon. Declared here, not imported
 * from backend.ts, because backend.ts imports the kernels (no import cycle).
 */
export type NativeBackend = MathBackendCPU & { readonly addon: NativeAddon; readonly pool: BufferPool };
