import { defineConfig } from 'tsup';

export default defineConfig({
  // The worker is loaded by path at run time (new Worker), so it is an entry of its own.
  entry: {
    index: 'src/index.ts',
    worker: 'src/worker.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  // __filename / __dirname in the ESM build (the engine finds worker.mjs next to itself).
  shims: true,
  target: 'node20',
});
