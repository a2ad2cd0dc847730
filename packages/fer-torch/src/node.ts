/** Node-only part of fer-torch: checkpoints on disk (`import { readStateDict } from 'fer-torch/node'`). */
export { readTorchFile, readStateDict, readSafetensors, writeTorchStateDict, writeSafetensors } from './files';
