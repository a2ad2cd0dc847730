import { defineConfig, type Options } from 'tsup';

/**
 * The build every package shares: ESM + CJS + d.ts for Node 20 from `src/index.ts`. Packages that load a worker or a
 * task module by path at run time pass extra entries (and `shims` for __dirname in the ESM build).
 */
export function packageConfig(overrides: Options = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
    ...overrides,
  });
}
