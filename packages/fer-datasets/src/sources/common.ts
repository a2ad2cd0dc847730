/** Shared plumbing for the sources: option resolution and label-set restriction. */
import { existsSync, statSync } from 'node:fs';
import { FerInputError, type Emotion, type LabelSet } from 'fer-core';
import { esrTrainTransform, evalTransform, manetRafdbTrainTransform, type Transform } from '../pipeline/augment';
import { ImageDataset, type DatasetProblem, type PipelineOptions, type SampleRecord } from '../pipeline/dataset';
import type { ChannelOrder, ResizeMode } from '../pipeline/image';

export type Normalization = 'none' | 'imagenet' | { mean: [number, number, number]; std: [number, number, number] };

/** Options every file-backed source accepts. */
export interface SourceOptions extends PipelineOptions {
  /**
   * Class order of the batches' labels. Default: the source's own order (AffectNet order for AffectNet and
   * FER+, the release order for RAF-DB). Samples whose emotion is not in the set are dropped and reported.
   */
  labels?: LabelSet;
  /** Per-channel normalisation after augmentation. Default: the reference's choice for the source. */
  normalize?: Normalization;
}

export interface SourceDefaults {
  labels: LabelSet;
  channelOrder: ChannelOrder;
  resize: ResizeMode;
  normalize: Normalization;
  /** Which reference training augmentation `augment: true` means. */
  train: 'esr' | 'rafdb';
  cap?: number;
}

function normOp(n: Normalization): Transform['ops'] {
  return evalTransform(n).ops;
}

/** `augment` option → transform, with the normalisation appended where the reference applies it. */
export function resolveTransform(
  augment: boolean | Transform | undefined,
  d: SourceDefaults,
  normalize: Normalization,
): Transform {
  if (augment && typeof augment === 'object') return augment;
  if (!augment) return evalTransform(normalize);
  if (d.train === 'rafdb') {
    const n = normalize === 'none' ? null : normalize === 'imagenet' ? undefined : normalize;
    if (n === null) {
      const t = manetRafdbTrainTransform();
      return { name: 'rafdb-train-unnormalized', ops: t.ops.filter((o) => o.op !== 'normalize') };
    }
    return manetRafdbTrainTransform(n ?? {});
  }
  const t = esrTrainTransform();
  return { name: normalize === 'none' ? t.name : `${t.name}-normalized`, ops: [...t.ops, ...normOp(normalize)] };
}

/**
 * Keeps the records whose emotion is in `labels` (reporting the others once per emotion) and reorders soft
 * distributions, given over `from`, into `labels` order (renormalised).
 */
export function restrictToLabels(
  records: SampleRecord[],
  labels: LabelSet,
  problems: DatasetProblem[],
  from?: LabelSet,
): SampleRecord[] {
  const dropped = new Map<Emotion, number>();
  const out: SampleRecord[] = [];
  for (const r of records) {
    if (!labels.includes(r.emotion)) {
      dropped.set(r.emotion, (dropped.get(r.emotion) ?? 0) + 1);
      continue;
    }
    if (r.soft && from && from !== labels) {
      const s = labels.map((e) => {
        const k = from.indexOf(e);
        return k < 0 ? 0 : r.soft![k];
      });
      const sum = s.reduce((a, b) => a + b, 0);
      out.push({ ...r, soft: sum > 0 ? s.map((x) => x / sum) : s });
    } else {
      out.push(r);
    }
  }
  for (const [e, n] of dropped) {
    problems.push({
      kind: 'dropped-label',
      message: `${n} sample(s) labelled '${e}' dropped: not in the requested labels (${labels.join(', ')})`,
    });
  }
  return out;
}

export function buildDataset(
  name: string,
  records: SampleRecord[],
  problems: DatasetProblem[],
  d: SourceDefaults,
  opts: SourceOptions,
  stats: Record<string, number>,
  sourceLabels: LabelSet = d.labels,
): ImageDataset {
  const labels = opts.labels ?? d.labels;
  const kept = restrictToLabels(records, labels, problems, sourceLabels);
  if (!kept.length) {
    throw new FerInputError(
      `No usable samples in ${name} (${stats.listed ?? records.length} listed).`,
      problems.length ? `First problem: ${problems[0].message}` : undefined,
    );
  }
  const normalize = opts.normalize ?? d.normalize;
  const { augment, labels: _l, normalize: _n, ...pipeline } = opts;
  const ds = new ImageDataset({
    ...pipeline,
    name,
    labels,
    samples: kept,
    problems,
    cap: opts.cap === Infinity ? undefined : (opts.cap ?? d.cap),
    channelOrder: opts.channelOrder ?? d.channelOrder,
    resize: opts.resize ?? d.resize,
    transform: resolveTransform(augment, d, normalize),
  });
  Object.assign(ds.stats, stats, { kept: kept.length });
  return ds;
}

/** Throws a clear error unless `dir` is an existing directory. */
export function requireDir(dir: string, what: string, hint: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new FerInputError(`${what} not found: ${dir}.`, hint);
  }
}
