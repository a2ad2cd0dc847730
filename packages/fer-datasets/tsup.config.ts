import { packageConfig, publicEntries } from '../../tsup.base';

export default packageConfig({
  // The worker is its own entry: executor.ts starts dist/worker.js (or .mjs) next to the bundle.
  entry: { ...publicEntries(), worker: 'src/pipeline/worker.ts' },
  dts: { entry: publicEntries() },
  // __dirname/__filename in the ESM build (the executor locates the worker script with them).
  shims: true,
});
