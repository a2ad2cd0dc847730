import { defineConfig } from 'tsup';

export default defineConfig({
  // parallel/task is loaded by path in fer-parallel's worker threads, so it is an entry of its own.
  entry: { index: 'src/index.ts', 'cli/main': 'src/cli/main.ts', 'parallel/task': 'src/parallel/task.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
