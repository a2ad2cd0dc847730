/**
 * FER+ (docs/method.md#ferplus): FER2013 faces relabelled by 10 annotators (Barsoum et al. 2016). Official layout:
 * `<root>/Images/FER2013{Train,Valid,Test}/*.png` and `<root>/Labels/FER2013{Train,Valid,Test}/label.csv`
 * (no header; file, face box, 10 vote counts in the order neutral, happiness, surprise, sadness, anger, disgust,
 * fear, contempt, unknown, NF).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { AFFECTNET_LABELS, FerInputError, type Emotion } from 'fer-core';
import type { DatasetProblem, ImageDataset, SampleRecord } from '../pipeline/dataset';
import { buildDataset, requireDir, type SourceDefaults, type SourceOptions } from './common';
import { parseCsv } from './csv';

export type FerPlusSplit = 'train' | 'valid' | 'test';

const SPLIT_DIR: Record<FerPlusSplit, string> = { train: 'FER2013Train', valid: 'FER2013Valid', test: 'FER2013Test' };

/** Vote columns of label.csv, in file order. */
export const FERPLUS_VOTE_COLUMNS = [
  'neutral',
  'happiness',
  'surprise',
  'sadness',
  'anger',
  'disgust',
  'fear',
  'contempt',
  'unknown',
  'NF',
] as const;

/** FER+ emotion index → AffectNet index (the reference's remap: 2↔3, 4↔6). */
export const FERPLUS_TO_AFFECTNET = [0, 1, 3, 2, 6, 5, 4, 7] as const;

export interface FerPlusRow {
  /** 0-based row of label.csv. */
  row: number;
  file: string;
  /** The face box as written, e.g. [0, 0, 48, 48]: row start, column start, row end, column end. */
  box: [number, number, number, number];
  /** The 10 vote counts. */
  votes: number[];
}

/**
 * The official FER+ majority rule (FERPlus `_process_data`, mode 'majority'; reference `FERplus`): counts ≤ 1 are
 * removed as outliers; the label is the first arg-max when it holds a strict majority of all remaining votes
 * (unknown and NF included); otherwise, or when that arg-max is unknown/NF, the row is dropped (null).
 * @returns the FER+ emotion index 0..7 or null
 */
export function ferPlusMajority(votes: readonly number[]): number | null {
  const v = votes.map((x) => (x < 1 + Number.EPSILON ? 0 : x));
  const sum = v.reduce((a, b) => a + b, 0);
  let arg = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[arg]) arg = i;
  if (!(v[arg] > 0.5 * sum)) return null;
  return arg < 8 ? arg : null;
}

/**
 * The vote distribution as a soft label over the 8 emotions in AffectNet order: outliers (≤ 1 vote) removed as
 * in the majority rule, unknown/NF discarded, renormalised. All zeros when no emotion keeps a vote.
 * (FERPlus's own 'probability' mode additionally keeps at most the top 3 emotions; this keeps all.)
 */
export function ferPlusSoftLabel(votes: readonly number[]): number[] {
  const v = votes.slice(0, 8).map((x) => (x < 1 + Number.EPSILON ? 0 : x));
  const sum = v.reduce((a, b) => a + b, 0);
  const out = new Array<number>(8).fill(0);
  if (sum > 0) v.forEach((x, i) => (out[FERPLUS_TO_AFFECTNET[i]] = x / sum));
  return out;
}

/** Columns of the official label.csv: file name, face box, the 10 vote counts. */
export const FERPLUS_COLUMNS = 2 + FERPLUS_VOTE_COLUMNS.length;

/**
 * Parses label.csv text. Malformed rows are returned as problems (with their 0-based row), not thrown. When most
 * rows have another column count than the official layout, the file's layout is wrong (an extra or missing vote
 * column shifts every vote): `layoutError` names the first such row.
 */
export function parseFerPlusLabels(text: string): {
  rows: FerPlusRow[];
  problems: DatasetProblem[];
  layoutError?: { row: number; columns: number };
} {
  const rows: FerPlusRow[] = [];
  const problems: DatasetProblem[] = [];
  const table = parseCsv(text);
  const byCount = new Map<number, number>();
  for (const f of table) byCount.set(f.length, (byCount.get(f.length) ?? 0) + 1);
  const usual = [...byCount].sort((a, b) => b[1] - a[1])[0]?.[0];
  const layoutError =
    usual !== undefined && usual !== FERPLUS_COLUMNS
      ? { row: table.findIndex((f) => f.length === usual), columns: usual }
      : undefined;
  table.forEach((f, row) => {
    const bad = (why: string) => problems.push({ kind: 'malformed-row', row, message: `label.csv row ${row}: ${why}` });
    if (f.length !== FERPLUS_COLUMNS)
      return bad(`expected ${FERPLUS_COLUMNS} columns (file, box, 10 votes), got ${f.length}`);
    const box = f[1]
      .replace(/[()\s]/g, '')
      .split(',')
      .map(Number);
    if (box.length !== 4 || box.some((b) => !Number.isInteger(b) || b < 0))
      return bad(`face box '${f[1]}' is not '(r0, c0, r1, c1)'`);
    const votes = f.slice(2, 12).map(Number);
    if (votes.some((x) => !Number.isFinite(x) || x < 0))
      return bad(`vote counts ${f.slice(2, 12).join(',')} are not non-negative numbers`);
    if (!f[0].trim()) return bad('empty file name');
    rows.push({ row, file: f[0].trim(), box: box as FerPlusRow['box'], votes });
  });
  return { rows, problems, layoutError };
}

export interface FerPlusLabelSummary {
  split: FerPlusSplit;
  rows: FerPlusRow[];
  /** Per row: AffectNet index, or -1 when the majority rule drops it. */
  labels: number[];
  /** Kept rows per class, AffectNet order. */
  counts: number[];
  kept: number;
  dropped: number;
  problems: DatasetProblem[];
}

/** Reads and labels one split's label.csv without touching the images. */
export async function readFerPlusLabels(root: string, split: FerPlusSplit): Promise<FerPlusLabelSummary> {
  const file = path.join(root, 'Labels', SPLIT_DIR[split], 'label.csv');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new FerInputError(`FER+ label file not found: ${file}.`, {
      hint: `Expected <root>/Labels/${SPLIT_DIR[split]}/label.csv from github.com/microsoft/FERPlus; check --data (${root}).`,
      cause: e,
    });
  }
  const { rows, problems, layoutError } = parseFerPlusLabels(text);
  if (layoutError)
    throw new FerInputError(
      `${file} line ${layoutError.row + 1} has ${layoutError.columns} columns, but the official FER+ label.csv has ${FERPLUS_COLUMNS} (file name, face box, ${FERPLUS_VOTE_COLUMNS.length} vote counts: ${FERPLUS_VOTE_COLUMNS.join(', ')}).`,
      'Use the label.csv files of github.com/microsoft/FERPlus unchanged: an extra or missing column shifts every vote.',
    );
  const counts = new Array<number>(8).fill(0);
  const labels = rows.map((r) => {
    const k = ferPlusMajority(r.votes);
    if (k === null) return -1;
    const a = FERPLUS_TO_AFFECTNET[k];
    counts[a]++;
    return a;
  });
  const kept = counts.reduce((a, b) => a + b, 0);
  return { split, rows, labels, counts, kept, dropped: rows.length - kept, problems };
}

export interface FerPlusOptions extends SourceOptions {
  /** The folder holding `Images/` and `Labels/`. */
  root: string;
  split: FerPlusSplit;
  /** Attach the vote distribution to each sample; batches then carry `soft` [n, K]. Default false. */
  soft?: boolean;
}

const DEFAULTS: SourceDefaults = {
  labels: AFFECTNET_LABELS,
  channelOrder: 'bgr',
  resize: 'bilinear',
  normalize: 'none',
  train: 'esr',
};

/**
 * FER+ as an 8-class dataset in AffectNet order, labelled by the official majority rule. Rows whose image is
 * missing are reported (once, summarised) and skipped; a split with no images at all is an error.
 * Defaults follow the reference: BGR (the images are grey anyway), OpenCV bilinear resize, no normalisation,
 * `augment: true` = ESR augmentation. The reference resizes FER+ to 224 for every model (docs/method.md#defect-12);
 * here `imageSize` decides (default 96).
 */
export async function ferPlus(opts: FerPlusOptions): Promise<ImageDataset> {
  if (!(opts.split in SPLIT_DIR)) {
    throw new FerInputError(`Unknown FER+ split '${opts.split}'. Valid: ${Object.keys(SPLIT_DIR).join(', ')}.`);
  }
  requireDir(
    opts.root,
    'FER+ root',
    'Expected a folder with Images/FER2013{Train,Valid,Test} and Labels/...; check --data.',
  );
  const summary = await readFerPlusLabels(opts.root, opts.split);
  const imageDir = path.join(opts.root, 'Images', SPLIT_DIR[opts.split]);
  let present: Set<string>;
  try {
    present = new Set(await fs.readdir(imageDir));
  } catch (e) {
    throw new FerInputError(
      `FER+ images for split '${opts.split}' not found: ${imageDir} does not exist (${summary.rows.length} images listed in its label.csv).`,
      { hint: "Generate them with FERPlus's generate_training_data.py from fer2013.csv, or check --data.", cause: e },
    );
  }
  const problems = [...summary.problems];
  const records: SampleRecord[] = [];
  let missing = 0;
  summary.rows.forEach((r, i) => {
    const label = summary.labels[i];
    if (label < 0) return;
    if (!present.has(r.file)) {
      missing++;
      problems.push({
        kind: 'missing-file',
        row: r.row,
        path: path.join(imageDir, r.file),
        message: `${r.file} listed in label.csv is missing from ${imageDir}`,
      });
      return;
    }
    const [r0, c0, r1, c1] = r.box;
    const rec: SampleRecord = {
      path: path.join(imageDir, r.file),
      emotion: AFFECTNET_LABELS[label] as Emotion,
      crop: { top: r0, left: c0, height: r1 - r0, width: c1 - c0 },
    };
    if (opts.soft) rec.soft = ferPlusSoftLabel(r.votes);
    records.push(rec);
  });
  if (!records.length || missing > (opts.maxBadFraction ?? 0.5) * summary.kept) {
    throw new FerInputError(
      `${missing} of the ${summary.kept} labelled FER+ ${opts.split} images are missing from ${imageDir} ` +
        `(first: ${problems.find((p) => p.kind === 'missing-file')?.message}).`,
      'Check --data, or regenerate the PNGs from fer2013.csv.',
    );
  }
  return buildDataset(`ferplus/${opts.split}`, records, problems, DEFAULTS, opts, {
    listed: summary.rows.length,
    droppedByMajorityRule: summary.dropped,
    missing,
  });
}
