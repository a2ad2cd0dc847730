/**
 * AffectNet (docs/method.md#affectnet): the reference's pre-processing (annotation CSV → face crop → resized JPEGs
 * named `<id %07d>s<expression>s<int(valence·1000)>s<int(arousal·1000)>.jpg` in folders of 500) and the categorical
 * loader over that layout (codes 8-10 dropped, per-class cap redrawn per stage).
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { AFFECTNET_LABELS, FerInputError, type Emotion } from 'fer-core';
import type { DatasetProblem, ImageDataset, SampleRecord } from '../pipeline/dataset';
import { decodeImage, encodeJpeg } from '../pipeline/decode';
import { cropRaw, pixelsToRaw, resizeBilinear, type CropBox } from '../pipeline/image';
import { buildDataset, requireDir, type SourceDefaults, type SourceOptions } from './common';
import { parseCsv } from './csv';

/** The three annotation sets of the reference's `set_index` 0, 1, 2. */
export type AffectNetSet = 'automatic' | 'training' | 'validation';

export const AFFECTNET_SETS: Record<AffectNetSet, { csv: string; images: string[]; out: string }> = {
  automatic: {
    csv: 'automatically_annotated.csv',
    images: [
      'Automatically_Annotated_extracted',
      'Automatically_Annotated_Images',
      'Automatically_Annotated/Automatically_Annotated_Images',
    ],
    out: 'Training_Unlabeled',
  },
  training: {
    csv: 'training.csv',
    images: [
      'Manually_Annotated_extracted',
      'Manually_Annotated_Images',
      'Manually_Annotated/Manually_Annotated_Images',
    ],
    out: 'Training_Labeled',
  },
  validation: {
    csv: 'validation.csv',
    images: [
      'Manually_Annotated_extracted',
      'Manually_Annotated_Images',
      'Manually_Annotated/Manually_Annotated_Images',
    ],
    out: 'Validation',
  },
};

const CSV_DIRS = ['', 'Manually_Annotated_file_lists', 'Automatically_annotated_file_list', 'Annotations'];

/**
 * The reference's file name (`_generate_single_file_name`): `%07d` id, then `s`-separated expression code,
 * int(valence·1000) and int(arousal·1000) (truncated toward zero, in float64 as Python does), `.jpg`.
 * The README's underscore pattern is wrong (docs/method.md#defect-26).
 */
export function affectNetFileName(id: number, expression: number, valence: number, arousal: number): string {
  return `${String(id).padStart(7, '0')}s${expression}s${Math.trunc(valence * 1000)}s${Math.trunc(arousal * 1000)}.jpg`;
}

export interface AffectNetName {
  id: number;
  expression: number;
  /** In [-1, 1] (×1000 truncated on disk); −2 for the Uncertain/No-face codes. */
  valence: number;
  arousal: number;
}

/** Parses `0000000s7s-653s653.jpg`; null when the name does not follow the pattern. */
export function parseAffectNetFileName(name: string): AffectNetName | null {
  const m = /^(\d+)s(\d+)s(-?\d+)s(-?\d+)\.(jpe?g|png)$/i.exec(name);
  if (!m) return null;
  return { id: Number(m[1]), expression: Number(m[2]), valence: Number(m[3]) / 1000, arousal: Number(m[4]) / 1000 };
}

/**
 * Which box to cut. `correct`: `face_x`/`face_width` are columns, `face_y`/`face_height` rows (AffectNet's
 * definition). `reference`: the reference's (and upstream ESR's) axis swap, rows `face_x … face_x+face_width−1`
 * and columns `face_y … face_y+face_height−1` (docs/method.md#defect-20); use it to reproduce the reference's crops.
 */
export type AffectNetBox = 'correct' | 'reference';

export function affectNetCrop(
  faceX: number,
  faceY: number,
  faceWidth: number,
  faceHeight: number,
  box: AffectNetBox,
): CropBox {
  return box === 'reference'
    ? { top: faceX, left: faceY, height: faceWidth, width: faceHeight }
    : { left: faceX, top: faceY, width: faceWidth, height: faceHeight };
}

export interface PreprocessAffectNetOptions {
  /** Raw AffectNet root; the CSV and image folder are looked up under it unless given explicitly. */
  root?: string;
  /** Annotation CSV (default: `<root>/[Manually_Annotated_file_lists/]<set>.csv`). */
  csv?: string;
  /**
   * Image folder (default: the first of `Manually_Annotated_extracted`, `Manually_Annotated_Images`, ... under root).
   */
  images?: string;
  /** Destination root; images go to `<out>/<Training_Labeled|Validation|Training_Unlabeled>/<id // 500>/`. */
  out: string;
  set: AffectNetSet;
  /** Output side (96 for ESR, 224 for MA-Net); required, as in the reference (docs/method.md#defect-27). */
  imageSize: number;
  /** Default `correct`; `reference` reproduces the reference's row/column swap. */
  box?: AffectNetBox;
  /** JPEG quality; default 95 (OpenCV's default, as the reference writes). */
  quality?: number;
  /** Rows decoded at once. Default 4. */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface PreprocessError {
  /** 0-based data row of the CSV (header excluded); the file line is row + 2. */
  row: number;
  path: string;
  reason: string;
  /** What was wrong: the row's format, its expression code, or the image. */
  kind?: 'malformed' | 'code' | 'image';
}

export interface AffectNetPreprocessReport {
  outDir: string;
  rows: number;
  written: number;
  errors: PreprocessError[];
  /** Rows refused for an expression code that is not an integer 0-10 (they are also in `errors`, kind 'code'). */
  invalidCodes: number;
}

interface CsvRow {
  row: number;
  file: string;
  faceX: number;
  faceY: number;
  faceWidth: number;
  faceHeight: number;
  expression: number;
  valence: number;
  arousal: number;
}

function firstExisting(cands: string[]): string | undefined {
  return cands.find((c) => existsSync(c));
}

/**
 * The reference's `pre_process_affect_net`: every CSV row in order → read image → crop the annotation box →
 * OpenCV-bilinear resize to `imageSize`² → JPEG. Ids count successes only (a failed row's id goes to the next
 * image), so names match the reference's exactly. Unlike the reference, failures are recorded with their CSV
 * row (not an id) and counted once (docs/method.md#defect-21); sub-folders in `subDirectory_filePath` are honoured,
 * with the reference's flattened `<images>/<basename>` as a fallback.
 */
export async function preprocessAffectNet(opts: PreprocessAffectNetOptions): Promise<AffectNetPreprocessReport> {
  const set = AFFECTNET_SETS[opts.set];
  if (!set)
    throw new FerInputError(`Unknown AffectNet set '${opts.set}'. Valid: ${Object.keys(AFFECTNET_SETS).join(', ')}.`);
  if (!Number.isInteger(opts.imageSize) || opts.imageSize <= 0) {
    throw new FerInputError(
      `Expected imageSize to be a positive integer (96 for ESR, 224 for MA-Net), but got ${opts.imageSize}.`,
    );
  }
  const root = opts.root ?? '';
  const csvPath = opts.csv ?? firstExisting(CSV_DIRS.map((d) => path.join(root, d, set.csv)));
  if (!csvPath || !existsSync(csvPath)) {
    throw new FerInputError(
      `AffectNet annotation file ${set.csv} not found under ${root || '(no root)'}.`,
      'Pass csv or a root holding it.',
    );
  }
  const imagesDir = opts.images ?? firstExisting(set.images.map((d) => path.join(root, d)));
  if (!imagesDir || !existsSync(imagesDir)) {
    throw new FerInputError(
      `AffectNet image folder not found under ${root || '(no root)'} (tried ${set.images.join(', ')}).`,
      'Pass images explicitly.',
    );
  }
  const { rows, errors } = parseAnnotations(await fs.readFile(csvPath, 'utf8'), csvPath);
  const outDir = path.join(opts.out, set.out);
  const box = opts.box ?? 'correct';
  const size = opts.imageSize;
  const concurrency = opts.concurrency ?? 4;
  const total = rows.length + errors.length;
  let id = 0;
  let written = 0;

  const render = async (r: CsvRow): Promise<Buffer> => {
    const cands = [path.join(imagesDir, r.file), path.join(imagesDir, path.basename(r.file))];
    const file = cands.find((c) => existsSync(c)) ?? cands[0];
    const raw = await decodeImage(file);
    const crop = cropRaw(raw, affectNetCrop(r.faceX, r.faceY, r.faceWidth, r.faceHeight, box));
    return encodeJpeg(pixelsToRaw(resizeBilinear(crop, size, size)), opts.quality ?? 95);
  };

  for (let s = 0; s < rows.length; s += concurrency) {
    const chunk = rows.slice(s, s + concurrency);
    const results = await Promise.allSettled(chunk.map(render));
    for (let k = 0; k < chunk.length; k++) {
      const r = chunk[k];
      const res = results[k];
      if (res.status === 'rejected') {
        errors.push({ row: r.row, path: r.file, reason: (res.reason as Error).message, kind: 'image' });
        continue;
      }
      const dir = path.join(outDir, String(Math.floor(id / 500)));
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, affectNetFileName(id, r.expression, r.valence, r.arousal)), res.value);
      id++;
      written++;
    }
    opts.onProgress?.(s + chunk.length, rows.length);
  }
  errors.sort((a, b) => a.row - b.row);
  return { outDir, rows: total, written, errors, invalidCodes: errors.filter((e) => e.kind === 'code').length };
}

const REQUIRED = [
  'subDirectory_filePath',
  'face_x',
  'face_y',
  'face_width',
  'face_height',
  'expression',
  'valence',
  'arousal',
] as const;

function parseAnnotations(text: string, file: string): { rows: CsvRow[]; errors: PreprocessError[] } {
  const [header, ...data] = parseCsv(text);
  const col = Object.fromEntries(REQUIRED.map((c) => [c, header?.indexOf(c) ?? -1])) as Record<
    (typeof REQUIRED)[number],
    number
  >;
  const absent = REQUIRED.filter((c) => col[c] < 0);
  if (absent.length) {
    throw new FerInputError(
      `AffectNet annotation file ${file} lacks column(s) ${absent.join(', ')}.`,
      `Expected AffectNet's header: ${REQUIRED.join(',')} (plus facial_landmarks).`,
    );
  }
  const rows: CsvRow[] = [];
  const errors: PreprocessError[] = [];
  data.forEach((f, row) => {
    const num = (c: (typeof REQUIRED)[number]) => Number(f[col[c]]);
    const vals = [
      num('face_x'),
      num('face_y'),
      num('face_width'),
      num('face_height'),
      num('expression'),
      num('valence'),
      num('arousal'),
    ];
    const file = f[col.subDirectory_filePath] ?? '';
    if (!file || vals.some((v) => !Number.isFinite(v)) || f.length < header.length) {
      errors.push({
        row,
        path: file,
        reason: `malformed row (line ${row + 2}): expected numbers in ${REQUIRED.slice(1).join(', ')}`,
        kind: 'malformed',
      });
      return;
    }
    const [faceX, faceY, faceWidth, faceHeight, expression, valence, arousal] = vals;
    // The code goes into the file name and becomes the label: 12, -1 or 3.5 would silently make wrong labels.
    if (!Number.isInteger(expression) || expression < 0 || expression > 10) {
      errors.push({
        row,
        path: file,
        reason: `expression code '${f[col.expression]}' (line ${row + 2}) is not an AffectNet code (an integer 0-10)`,
        kind: 'code',
      });
      return;
    }
    rows.push({
      row,
      file,
      faceX: Math.trunc(faceX),
      faceY: Math.trunc(faceY),
      faceWidth: Math.trunc(faceWidth),
      faceHeight: Math.trunc(faceHeight),
      expression,
      valence,
      arousal,
    });
  });
  return { rows, errors };
}

export type AffectNetSplit = 'train' | 'validation' | 'unlabeled';

const SPLIT_DIR: Record<AffectNetSplit, string> = {
  train: 'Training_Labeled',
  validation: 'Validation',
  unlabeled: 'Training_Unlabeled',
};

export interface AffectNetOptions extends SourceOptions {
  /** The pre-processed root holding Training_Labeled/ and Validation/. */
  root: string;
  split: AffectNetSplit;
}

/**
 * The reference's `AffectNetCategorical` over a pre-processed root: numbered folders (non-numeric entries
 * skipped, docs/method.md#defect-23), labels from the file names, codes ≥ 8 dropped, valence/arousal parsed. Default
 * cap 5000 per class for `train` (the reference's), none for `validation`; `cap: Infinity` disables it. The capped
 * subset is a uniform random draw per class; call `redraw(seed)` per stage (ESR) or set `redrawCap: 'epoch'`.
 * Defaults: BGR, OpenCV bilinear, no normalisation, `augment: true` = ESR augmentation.
 */
export async function affectNet(opts: AffectNetOptions): Promise<ImageDataset> {
  if (!(opts.split in SPLIT_DIR))
    throw new FerInputError(`Unknown AffectNet split '${opts.split}'. Valid: ${Object.keys(SPLIT_DIR).join(', ')}.`);
  requireDir(
    opts.root,
    'AffectNet root',
    'Expected the pre-processed layout (Training_Labeled/, Validation/); run preprocessAffectNet first.',
  );
  const dir = path.join(opts.root, SPLIT_DIR[opts.split]);
  requireDir(
    dir,
    `AffectNet split '${opts.split}'`,
    `Expected ${SPLIT_DIR[opts.split]}/ with numbered folders under ${opts.root}; run preprocessAffectNet for this set.`,
  );
  const problems: DatasetProblem[] = [];
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const folders = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .filter((n) => {
      if (/\d/.test(n)) return true;
      problems.push({ kind: 'other', path: path.join(dir, n), message: `skipped non-numeric folder ${n}` });
      return false;
    })
    .sort((a, b) => Number(a.replace(/\D/g, '')) - Number(b.replace(/\D/g, '')) || (a < b ? -1 : a > b ? 1 : 0));
  const records: SampleRecord[] = [];
  let listed = 0;
  let dropped = 0;
  for (const folder of folders) {
    const files = (await fs.readdir(path.join(dir, folder))).sort();
    for (const f of files) {
      listed++;
      const p = path.join(dir, folder, f);
      const parsed = parseAffectNetFileName(f);
      if (!parsed) {
        problems.push({
          kind: 'malformed-row',
          path: p,
          message: `${folder}/${f} does not match <id>s<expression>s<valence>s<arousal>.jpg`,
        });
        continue;
      }
      if (parsed.expression >= 8) {
        dropped++;
        continue;
      }
      records.push({
        path: p,
        emotion: AFFECTNET_LABELS[parsed.expression] as Emotion,
        valence: parsed.valence,
        arousal: parsed.arousal,
      });
    }
  }
  if (!records.length) {
    throw new FerInputError(
      `No AffectNet images with codes 0-7 under ${dir} (${listed} files, ${dropped} with codes 8-10).`,
      'Check --data.',
    );
  }
  const defaults: SourceDefaults = {
    labels: AFFECTNET_LABELS,
    channelOrder: 'bgr',
    resize: 'bilinear',
    normalize: 'none',
    train: 'esr',
    cap: opts.split === 'train' ? 5000 : undefined,
  };
  return buildDataset(`affectnet/${opts.split}`, records, problems, defaults, opts, {
    listed,
    droppedCodes8to10: dropped,
  });
}
