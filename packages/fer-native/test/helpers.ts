import { loadAddon } from 'fer-native';

/**
 * `describe` when fer-native's addon is built, else `describe.skip` after one line saying why (CI builds it; a
 * machine without g++/libdnnl-dev skips these suites).
 */
export function describeNative(name: string, fn: () => void): void {
  const { addon, reason } = loadAddon();
  if (!addon) {
    console.warn(`[fer-native tests] skipping '${name}': ${reason}`);
    describe.skip(name, fn);
    return;
  }
  describe(name, fn);
}
