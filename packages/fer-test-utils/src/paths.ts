import * as path from 'node:path';

/** Repo root: packages/fer-test-utils/src -> ../../.. */
export const REPO_ROOT = path.resolve(__dirname, '../../..');
/** ../shared next to the repo (the CI clone gets a copy there too). */
export const SHARED_DIR = process.env.FER_SHARED_DIR ?? path.resolve(REPO_ROOT, '../shared');
export const REFERENCE_DIR = path.join(SHARED_DIR, 'reference');
export const DATA_DIR = path.join(SHARED_DIR, 'data');
