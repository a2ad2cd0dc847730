import { packageConfig } from '../../tsup.base';

export default packageConfig({
  // parallel/task is loaded by path in fer-parallel's worker threads, so it is an entry of its own.
  entry: { index: 'src/index.ts', 'cli/main': 'src/cli/main.ts', 'parallel/task': 'src/parallel/task.ts' },
});
