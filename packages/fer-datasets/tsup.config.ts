import { defineConfig } from 'tsup';

export default defineConfig({
  // The worker is its own entry: executor.ts starts dist/worker.js (or .mjs) next to the bundle.
  entry: { index: 'src/index.ts', worker: 'src/pipeline/worker.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src/index.ts' } },
  clean: true,
  sourcemap: true,
  target: 'node20',
  // __dirname/__filename in the ESM build (the executor locates the worker script with them).
  shims: true,
});
