import { packageConfig, publicEntries } from '../../tsup.base';

export default packageConfig({
  // parallel/task is loaded by path in fer-parallel's worker threads, so it is an entry of its own.
  entry: { ...publicEntries(), 'cli/main': 'src/cli/main.ts', 'parallel/task': 'src/parallel/task.ts' },
});
