/** Building blocks for the suite's own packages and tests; not a stable API. */
export { ESR_VARIANTS, resolveEsrConfig, featureSizes, minInputSize } from './configs';
export { buildBase, buildBranch } from './layers';
export { packEsr, unpackEsr } from './io';
export type { EsrTopology } from './io';
export { esrKeyMap, loadTorchStateDict, toTorchStateDict, torchToTfjs, tfjsToTorch } from './weights/from-torch';
export type { EsrKeyEntry, LoadReport, LoadStateDictOptions } from './weights/from-torch';
export { BASE_FILE, branchFile } from './weights/checkpoint';
