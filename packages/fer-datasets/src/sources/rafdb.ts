/**
 * RAF-DB basic (docs/method.md#rafdb). The official release layout the reference's code reads:
 * `<root>/EmoLabel/list_patition_label.txt` ("train_00001.jpg 5") + `<root>/Image/aligned/<stem>_aligned.jpg`,
 * labels 1-7 in the release order (Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral); and the README's
 * `<root>/{train,test}/0..6/` folder layout with its own order (Neutral, Happiness, Sadness, Surprise, Fear,
 * Disgust, Anger) (docs/method.md#defect-25). Both map to `Emotion`s; batches use the release order unless `labels`
 * says otherwise.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { FerInputError, RAFDB_LABELS, type Emotion } from 'fer-core';
import type { DatasetProblem, ImageDataset, SampleRecord } from '../pipeline/dataset';
import { buildDataset, type SourceDefaults, type SourceOptions } from './common';
import { listClassFolders } from './folders';

export type RafDbSplit = 'train' | 'test';
export type RafDbLayout = 'official' | 'folders';

/** The README's ImageFolder names (copied from upstream MA-Net). */
export const RAFDB_README_FOLDERS: Readonly<Record<string, Emotion>> = {
  '0': 'neutral',
  '1': 'happy',
  '2': 'sad',
  '3': 'surprise',
  '4': 'fear',
  '5': 'disgust',
  '6': 'anger',
};

export interface RafDbOptions extends SourceOptions {
  /** `.../RAF-DB/basic` (official layout; its parent also works) or the README's root with train/ and test/. */
  root: string;
  split: RafDbSplit;
  /** Default: detected (official when EmoLabel/ exists). */
  layout?: RafDbLayout;
}

const DEFAULTS: SourceDefaults = {
  labels: RAFDB_LABELS,
  channelOrder: 'rgb',
  resize: 'antialias',
  normalize: 'imagenet',
  train: 'rafdb',
};

function officialRoot(root: string): string | undefined {
  for (const r of [root, path.join(root, 'basic')])
    if (existsSync(path.join(r, 'EmoLabel', 'list_patition_label.txt'))) return r;
  return undefined;
}

/**
 * Parses list_patition_label.txt for one split (rows whose name starts with `train` vs all others, as the reference).
 */
export function parseRafDbList(
  text: string,
  split: RafDbSplit,
): { entries: { row: number; name: string; emotion: Emotion }[]; problems: DatasetProblem[] } {
  const entries: { row: number; name: string; emotion: Emotion }[] = [];
  const problems: DatasetProblem[] = [];
  text.split(/\r?\n/).forEach((line, row) => {
    if (!line.trim()) return;
    const parts = line.trim().split(/\s+/);
    const code = Number(parts[1]);
    if (parts.length !== 2 || !Number.isInteger(code)) {
      problems.push({
        kind: 'malformed-row',
        row,
        message: `list_patition_label.txt row ${row}: expected '<name>.jpg <1-7>', got '${line.trim()}'`,
      });
      return;
    }
    const isTrain = parts[0].startsWith('train');
    if (isTrain !== (split === 'train')) return;
    if (code < 1 || code > 7) {
      problems.push({
        kind: 'unknown-label',
        row,
        message: `list_patition_label.txt row ${row}: label ${code} is not in 1-7`,
      });
      return;
    }
    entries.push({ row, name: parts[0], emotion: RAFDB_LABELS[code - 1] });
  });
  return { entries, problems };
}

/**
 * RAF-DB basic. Defaults follow the reference's RAF-DB scripts: RGB, PIL-style (antialiased) bilinear resize,
 * ImageNet normalisation, `augment: true` = the DAN/MA-Net augmentation (flip, rotate+crop, erasing).
 */
export async function rafDb(opts: RafDbOptions): Promise<ImageDataset> {
  if (opts.split !== 'train' && opts.split !== 'test')
    throw new FerInputError(`Unknown RAF-DB split '${opts.split}'. Valid: train, test.`);
  const official = officialRoot(opts.root);
  const layout = opts.layout ?? (official ? 'official' : 'folders');
  if (layout === 'folders') {
    const dir = path.join(opts.root, opts.split);
    const { records, problems } = await listClassFolders(dir, RAFDB_README_FOLDERS);
    return buildDataset(`rafdb/${opts.split}`, records, problems, DEFAULTS, opts, { listed: records.length });
  }
  if (!official) {
    throw new FerInputError(
      `RAF-DB label list not found: ${path.join(opts.root, 'EmoLabel', 'list_patition_label.txt')}.`,
      'Expected the release layout basic/EmoLabel/list_patition_label.txt + basic/Image/aligned/, or pass layout: "folders" for train/0..6/.',
    );
  }
  const { entries, problems } = parseRafDbList(
    await fs.readFile(path.join(official, 'EmoLabel', 'list_patition_label.txt'), 'utf8'),
    opts.split,
  );
  const imageDir = path.join(official, 'Image', 'aligned');
  let present: Set<string>;
  try {
    present = new Set(await fs.readdir(imageDir));
  } catch (e) {
    throw new FerInputError(`RAF-DB aligned images not found: ${imageDir}.`, {
      hint: 'Expected basic/Image/aligned/<name>_aligned.jpg from the release.',
      cause: e,
    });
  }
  const records: SampleRecord[] = [];
  let missing = 0;
  for (const e of entries) {
    const file = `${e.name.replace(/\.[^.]+$/, '')}_aligned.jpg`;
    if (!present.has(file)) {
      missing++;
      problems.push({
        kind: 'missing-file',
        row: e.row,
        path: path.join(imageDir, file),
        message: `${file} (row ${e.row}) is missing from ${imageDir}`,
      });
      continue;
    }
    records.push({ path: path.join(imageDir, file), emotion: e.emotion });
  }
  if (!records.length || missing > (opts.maxBadFraction ?? 0.5) * entries.length) {
    throw new FerInputError(
      `${missing} of ${entries.length} RAF-DB ${opts.split} images are missing from ${imageDir}.`,
      'Check --data.',
    );
  }
  return buildDataset(`rafdb/${opts.split}`, records, problems, DEFAULTS, opts, { listed: entries.length, missing });
}
