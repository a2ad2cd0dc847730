import { defineConfig } from 'tsup';

export default defineConfig({
  // The worker and the task modules are loaded by path at run time (new Worker / require), so each is an entry.
  entry: {
    index: 'src/index.ts',
    worker: 'src/worker.ts',
    'tasks/esr': 'src/tasks/esr.ts',
    'tasks/manet': 'src/tasks/manet.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  // __filename / __dirname in the ESM build (the engine finds worker.mjs next to itself).
  shims: true,
  target: 'node20',
});
