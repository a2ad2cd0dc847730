export { writeFileAtomic } from './atomic';
export { fileHandler } from './file-handler';
