/** Node-only part of fer-core (file system): `import { fileHandler } from 'fer-core/node'`. */
export { writeFileAtomic, fileHandler } from './io';
