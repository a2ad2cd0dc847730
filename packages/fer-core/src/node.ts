/** Node-only part of fer-core (file system, worker entries): `import { fileHandler } from 'fer-core/node'`. */
export { writeFileAtomic, fileHandler } from './io';
export { moduleFile, findEntry, workerLaunch } from './entry-files';
export type { EntryFile, WorkerLaunch } from './entry-files';
