import { packageConfig, publicEntries } from '../../tsup.base';

// `image` is the browser-safe entry (preprocessing without sharp or Node built-ins).
const entries = { ...publicEntries(), image: 'src/image.ts' };

export default packageConfig({
  // The worker is its own entry: executor.ts starts dist/worker.js (or .mjs) next to the bundle.
  entry: { ...entries, worker: 'src/pipeline/worker.ts' },
  dts: { entry: entries },
});
