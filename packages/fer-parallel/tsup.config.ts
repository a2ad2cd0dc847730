import { packageConfig, publicEntries } from '../../tsup.base';

export default packageConfig({
  // The worker is loaded by path at run time (new Worker), so it is an entry of its own.
  entry: { ...publicEntries(), worker: 'src/worker.ts' },
  // __filename / __dirname in the ESM build (the engine finds worker.mjs next to itself).
  shims: true,
});
