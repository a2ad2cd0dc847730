import { existsSync } from 'node:fs';
import { defineConfig, type Options } from 'tsup';

/**
 * The public entry points of the package in the working directory: `src/index.ts` (browser-safe where the package
 * is), plus `src/node.ts` (Node-only: files, workers) and `src/internal.ts` (suite internals) when present. They
 * match the package's `exports` (`.`, `./node`, `./internal`).
 */
export function publicEntries(): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const e of ['index', 'node', 'internal']) if (existsSync(`src/${e}.ts`)) entries[e] = `src/${e}.ts`;
  return entries;
}

/**
 * The build every package shares: ESM + CJS + d.ts from the public entries. Packages that load a worker or a task
 * module by path at run time pass extra entries (and `shims` for __dirname in the ESM build).
 */
export function packageConfig(overrides: Options = {}) {
  return defineConfig({
    entry: publicEntries(),
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
    // Entries share one copy of each module (classes, layer registrations) in CJS too, so `instanceof` holds across
    // `fer-x` and `fer-x/node`.
    splitting: true,
    // `moduleFile(typeof __filename === 'string' ? __filename : import.meta.url)` (fer-core/node) needs
    // import.meta.url only in ESM. CJS takes __filename, and must not contain `import.meta` at all: Node would then
    // load the .js file as an ES module.
    esbuildOptions(options, { format }) {
      if (format === 'cjs') options.define = { ...options.define, 'import.meta.url': 'undefined' };
    },
    ...overrides,
  });
}
