/** Node-only part of fer-models-esr (file system): the reference's checkpoint folders and 0.1.0 save folders. */
export { fromTorchCheckpoint, importTorchCheckpoint, saveTorchCheckpoint } from './weights/checkpoint-files';
export { loadLegacyEsrFolder, LEGACY_MANIFEST } from './legacy-folder';
