/**
 * The synthetic expressions dataset: cartoon faces drawn on the fly (see synthetic-render.ts), so training and
 * demos run anywhere without downloading data. 7 classes (BASIC7 order) or 8 (AffectNet order), balanced.
 */
import { AFFECTNET_LABELS, BASIC7_LABELS, FerInputError, mixSeed, type LabelSet } from 'fer-core';
import { ImageDataset, type PipelineOptions, type SampleRecord } from '../pipeline/dataset';
import { resolveTransform, type Normalization } from './common';

export interface SyntheticOptions extends PipelineOptions {
  /** Number of samples. */
  size: number;
  /** Everything about every face derives from it. Use different seeds for train and held-out sets. */
  seed: number;
  /** 7 (no contempt) or 8 classes. Default 7. */
  classes?: 7 | 8;
  normalize?: Normalization;
}

/**
 * A balanced synthetic set: sample i has emotion `labels[i % classes]` and is drawn from `mixSeed(seed, i)`.
 * Default 96×96 RGB, no normalisation; `augment: true` adds the ESR augmentation on top.
 */
export function syntheticExpressions(opts: SyntheticOptions): ImageDataset {
  const { size, seed, classes = 7, augment, normalize = 'none', ...pipeline } = opts;
  if (!Number.isInteger(size) || size <= 0)
    throw new FerInputError(`Expected size to be a positive integer, but got ${size}.`);
  if (classes !== 7 && classes !== 8) throw new FerInputError(`Expected classes to be 7 or 8, but got ${classes}.`);
  const labels: LabelSet = classes === 8 ? AFFECTNET_LABELS : BASIC7_LABELS;
  const samples: SampleRecord[] = Array.from({ length: size }, (_, i) => {
    const emotion = labels[i % classes];
    return { emotion, synthetic: { seed: mixSeed(seed, i), emotion } };
  });
  const transform = resolveTransform(
    augment,
    { labels, channelOrder: 'rgb', resize: 'bilinear', normalize: 'none', train: 'esr' },
    normalize,
  );
  const ds = new ImageDataset({
    ...pipeline,
    name: `synthetic/${classes}-class/seed-${seed}`,
    labels,
    samples,
    transform,
  });
  Object.assign(ds.stats, { listed: size, kept: size });
  return ds;
}
