import { packageConfig } from '../../tsup.base';

export default packageConfig({
  // The worker is its own entry: executor.ts starts dist/worker.js (or .mjs) next to the bundle.
  entry: { index: 'src/index.ts', worker: 'src/pipeline/worker.ts' },
  dts: { entry: { index: 'src/index.ts' } },
  // __dirname/__filename in the ESM build (the executor locates the worker script with them).
  shims: true,
});
