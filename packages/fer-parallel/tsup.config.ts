import { packageConfig, publicEntries } from '../../tsup.base';

export default packageConfig({
  // The worker is loaded by path at run time (new Worker), so it is an entry of its own.
  entry: { ...publicEntries(), worker: 'src/worker.ts' },
});
