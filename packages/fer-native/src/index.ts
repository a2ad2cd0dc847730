export { loadAddon, ADDON_PATH, APT_COMMAND } from './addon';
export type { AddonInfo, NativeAddon } from './addon';
export { registerNativeBackend, registerNativeKernels, NativeBackend, NATIVE_BACKEND } from './backend';
export type { NativeRegistration } from './backend';
export { NATIVE_KERNELS } from './kernels';
