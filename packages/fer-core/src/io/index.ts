export { writeFileAtomic } from './atomic';
