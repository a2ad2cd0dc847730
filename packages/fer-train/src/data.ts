import { FerInputError, type FerDataset } from 'fer-core';
import { affectNet, classFolders, ferPlus, rafDb, syntheticExpressions, type ImageDataset } from 'fer-datasets';

export type DatasetKind = 'affectnet' | 'ferplus' | 'rafdb' | 'folder' | 'synthetic';
export const DATASET_KINDS: readonly DatasetKind[] = ['affectnet', 'ferplus', 'rafdb', 'folder', 'synthetic'];

export interface SplitOptions {
  kind: DatasetKind;
  /** Dataset root (not needed for synthetic). */
  root?: string;
  /** 96 for ESR, 224 for MA-Net. */
  imageSize: number;
  /** Per-class cap of the training split (AffectNet and FER+: 5000 in the reference). */
  cap?: number;
  /** folder: class folders for validation / test (default: validation = the training folder, no test). */
  validationRoot?: string;
  testRoot?: string;
  /** synthetic: samples in train / validation / test and the base seed. */
  syntheticSizes?: [number, number, number];
  seed?: number;
  /** Decoding workers per split (default: the pipeline's). */
  workers?: number;
  onWarning?: (m: string) => void;
}

export interface Splits {
  train: ImageDataset;
  /** Model-selection split (AffectNet: Validation; FER+: FER2013Valid; RAF-DB: test, as the reference). */
  validation: ImageDataset;
  /** Final evaluation split where the dataset has one separate from validation (FER+: FER2013Test). */
  test?: ImageDataset;
  notes: string[];
}

function need(root: string | undefined, kind: string): string {
  if (!root) throw new FerInputError(`The ${kind} dataset needs a root folder.`, 'Pass --data <path>.');
  return root;
}

/**
 * The reference's splits per dataset (docs/method.md#data-pipelines): augmented, capped training split (ESR
 * augmentation for AffectNet and FER+, DAN's for RAF-DB), validation without augmentation, and a test split where one
 * exists.
 */
export async function loadSplits(o: SplitOptions): Promise<Splits> {
  const common = { imageSize: o.imageSize, workers: o.workers, onWarning: o.onWarning };
  switch (o.kind) {
    case 'affectnet': {
      const root = need(o.root, 'AffectNet');
      return {
        train: await affectNet({ ...common, root, split: 'train', augment: true, cap: o.cap ?? 5000, capSeed: o.seed }),
        validation: await affectNet({ ...common, root, split: 'validation', cap: Infinity }),
        notes: [
          'AffectNet has no public test split: the validation split is both selection and report (as the reference).',
        ],
      };
    }
    case 'ferplus': {
      const root = need(o.root, 'FER+');
      return {
        train: await ferPlus({ ...common, root, split: 'train', augment: true, cap: o.cap ?? 5000, capSeed: o.seed }),
        validation: await ferPlus({ ...common, root, split: 'valid' }),
        test: await ferPlus({ ...common, root, split: 'test' }),
        notes: [
          'FER+: model selection on FER2013Valid, final report on FER2013Test (the reference never evaluates the test split).',
        ],
      };
    }
    case 'rafdb': {
      const root = need(o.root, 'RAF-DB');
      return {
        train: await rafDb({ ...common, root, split: 'train', augment: true, cap: o.cap }),
        validation: await rafDb({ ...common, root, split: 'test' }),
        notes: [
          'RAF-DB: the reference selects the model on the test split, so its accuracy is optimistic (docs/method.md#defect-18).',
        ],
      };
    }
    case 'folder': {
      const root = need(o.root, 'folder');
      const train = await classFolders({ ...common, root, augment: true, cap: o.cap, capSeed: o.seed });
      return {
        train,
        validation: o.validationRoot
          ? await classFolders({ ...common, root: o.validationRoot })
          : await classFolders({ ...common, root }),
        test: o.testRoot ? await classFolders({ ...common, root: o.testRoot }) : undefined,
        notes: o.validationRoot
          ? []
          : ['folder: no --val-data given, so validation uses the training images (without augmentation).'],
      };
    }
    case 'synthetic': {
      const [n, v, t] = o.syntheticSizes ?? [1400, 350, 350];
      const seed = o.seed ?? 0;
      return {
        train: syntheticExpressions({ ...common, size: n, seed: seed * 3 + 1, augment: true }),
        validation: syntheticExpressions({ ...common, size: v, seed: seed * 3 + 2 }),
        test: syntheticExpressions({ ...common, size: t, seed: seed * 3 + 3 }),
        notes: ['synthetic: procedurally drawn faces; train, validation and test are drawn from different seeds.'],
      };
    }
  }
}

/** A single evaluation split for `fer eval`. */
export async function loadEvalSplit(o: SplitOptions & { split?: string }): Promise<FerDataset> {
  const common = { imageSize: o.imageSize, workers: o.workers, onWarning: o.onWarning };
  switch (o.kind) {
    case 'affectnet':
      return affectNet({ ...common, root: need(o.root, 'AffectNet'), split: 'validation', cap: Infinity });
    case 'ferplus':
      return ferPlus({ ...common, root: need(o.root, 'FER+'), split: (o.split ?? 'test') as 'test' });
    case 'rafdb':
      return rafDb({ ...common, root: need(o.root, 'RAF-DB'), split: (o.split ?? 'test') as 'test' });
    case 'folder':
      return classFolders({ ...common, root: need(o.root, 'folder'), cap: o.cap, capSeed: o.seed });
    case 'synthetic':
      return syntheticExpressions({ ...common, size: o.syntheticSizes?.[2] ?? 350, seed: (o.seed ?? 0) * 3 + 3 });
  }
}
