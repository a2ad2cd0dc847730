import type { RawTensor } from 'fer-torch';
import { AFFECTNET_LABELS, RAFDB_LABELS, type LabelSet } from 'fer-core';
import { resolveEsrConfig, type EsrConfig, type EsrConfigName } from '../configs';
import { EsrEnsemble } from '../esr';
import { buildBase, buildBranch } from '../layers';
import { esrKeyMap, loadTorchStateDict, toTorchStateDict, type LoadReport } from './from-torch';

/** File names the reference (and upstream ESR) use inside a checkpoint folder (`ESR.save`, docs/method.md#esr). */
export const BASE_FILE = 'Net-Base-Shared_Representations.pt';
export const branchFile = (i: number): string => `Net-Branch_${i}.pt`;

export interface FromTorchOptions {
  /** Branch files to read (`Net-Branch_1.pt` … `_<n>.pt`); default: every consecutive one present. */
  ensembleSize?: number;
  /** Config overrides (labels, colour order, …); variant, class count and the valence/arousal head are detected. */
  config?: Partial<EsrConfig> & { base?: EsrConfigName };
}

/** An imported ensemble and what each part's load did. */
export interface TorchImport {
  esr: EsrEnsemble;
  reports: { part: string; report: LoadReport }[];
}

/**
 * Builds an ensemble from PyTorch state dicts (already read): the base and one per branch.
 * Variant (`cbam` when the base has CBAM keys), class count (`fc.weight` rows) and the valence/arousal head
 * (`fc_dimensional.*`) are read from the keys; loading is strict, as the reference's `ESR.load`.
 */
export function fromTorchStateDicts(
  base: ReadonlyMap<string, RawTensor>,
  branches: readonly ReadonlyMap<string, RawTensor>[],
  overrides: FromTorchOptions['config'] = {},
): TorchImport {
  const variant = base.has('cbam1.ChannelGate.mlp.1.weight') ? 'cbam' : 'original';
  const fc = branches[0]?.get('fc.weight');
  const numClasses = fc ? fc.shape[0] : (overrides.numClasses ?? 8);
  const valenceArousal =
    variant === 'original' &&
    (branches.length ? branches[0].has('fc_dimensional.weight') : (overrides.valenceArousal ?? true));
  const labels: LabelSet = overrides.labels ?? (numClasses === 7 ? RAFDB_LABELS : AFFECTNET_LABELS);
  const config = resolveEsrConfig({
    base: variant === 'cbam' ? 'desr9-affectnet' : 'esr9-affectnet',
    ...overrides,
    variant,
    numClasses,
    labels,
    valenceArousal,
  });
  const esr = new EsrEnsemble(config, buildBase(config), []);
  const reports: TorchImport['reports'] = [];
  try {
    reports.push({ part: 'base', report: loadTorchStateDict(esr.base, base, esrKeyMap('base', config)) });
    branches.forEach((sd, i) => {
      const m = buildBranch(config, i + 1);
      esr.addBranch(m);
      reports.push({ part: `branch_${i + 1}`, report: loadTorchStateDict(m, sd, esrKeyMap('branch', config)) });
    });
  } catch (e) {
    esr.dispose();
    throw e;
  }
  return { esr, reports };
}

/**
 * The ensemble as PyTorch state dicts under the reference's file names (`Net-Base-Shared_Representations.pt`,
 * `Net-Branch_<i>.pt`), for fer-torch's writer.
 */
export function toTorchStateDicts(esr: EsrEnsemble): { file: string; stateDict: Map<string, RawTensor> }[] {
  return esr.parts().map(({ name, model }) => ({
    file: name === 'base' ? BASE_FILE : branchFile(Number(name.split('_')[1])),
    stateDict: toTorchStateDict(model, esrKeyMap(name === 'base' ? 'base' : 'branch', esr.config)),
  }));
}
