/**
 * The real-faces experiment's data: FER2013's two test halves, FER+ majority labels on the PrivateTest faces, and
 * the zero-shot sets (CK+48, JAFFE), all from `../shared/data` (never copied into the repository).
 *
 * The splits are written as plain JSON (`splits.json`: relative file names and labels) so that the PyTorch
 * restatement (`bench/real_torch.py`) reads exactly the same faces.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { AFFECTNET_LABELS, BASIC7_LABELS, FerInputError, Rng, type Emotion, type LabelSet } from 'fer-core';
import { ImageDataset, esrTrainTransform, type SampleRecord } from 'fer-datasets';
import { listClassFolders, readFerPlusLabels } from 'fer-datasets/internal';

/** One face of a split: path relative to the data folder, label. */
export interface SplitItem {
  file: string;
  label: Emotion;
}

/** How the FER+ PNGs were matched to the PrivateTest JPEGs (see `matchFerPlus`). */
export interface FerPlusMatch {
  /** Rows of FER+'s test label.csv. */
  ferplusRows: number;
  /** Rows matched one-to-one to a PrivateTest JPEG. */
  matched: number;
  /** Rows left out: no JPEG within the threshold was free. */
  unmatched: number;
  /** Rows with more than one JPEG within the threshold (identical faces in FER2013). */
  ambiguous: number;
  /** Matched rows whose FER+ majority is one of the 7 classes (the second test split). */
  kept: number;
  /** Matched rows that the majority rule drops (no majority, unknown, not a face) or labels contempt. */
  dropped: number;
  /** Matched faces whose FER+ majority differs from the FER2013 label (among `kept`). */
  relabelled: number;
  /** Root-mean-square pixel difference (0-255) of the matched pairs: median and maximum. */
  rmseMedian: number;
  rmseMax: number;
  /** The acceptance threshold on that RMSE. */
  threshold: number;
}

export interface RealFacesSplits {
  /** Format version of this file. */
  version: 2;
  labels: LabelSet;
  holdoutFraction: number;
  splitSeed: number;
  /** PublicTest minus the hold-out: training faces. */
  train: SplitItem[];
  /** Stratified part of PublicTest for model selection. */
  holdout: SplitItem[];
  /** PrivateTest with the FER2013 labels. */
  test: SplitItem[];
  /** PrivateTest JPEGs (the same files as `test`) with the FER+ majority label, 7 classes only. */
  testFerPlus: SplitItem[];
  ferPlusMatch: FerPlusMatch | null;
  /** Zero-shot sets: images of the classes the model knows (CK+'s contempt is left out). */
  ckplus: SplitItem[];
  jaffe: SplitItem[];
  /** Class counts per split. */
  counts: Record<string, Record<string, number>>;
}

const FER2013 = 'fer2013-test';

/** Which of the experiment's folders exist under `dataDir`; FER2013's test folders are required. */
export function realFacesDataStatus(dataDir: string): { ok: boolean; missing: string[] } {
  const need = [FER2013, 'esr9-affectnet/weights/Net-Base-Shared_Representations.pt'];
  const optional = ['ferplus/Labels/FER2013Test/label.csv', 'ckplus48', 'jaffe/png', 'faceapi-expression/weights'];
  const missing = [...need, ...optional].filter((p) => !existsSync(path.join(dataDir, p)));
  return { ok: need.every((p) => existsSync(path.join(dataDir, p))), missing };
}

const countBy = (items: SplitItem[]) => {
  const c: Record<string, number> = {};
  for (const it of items) c[it.label] = (c[it.label] ?? 0) + 1;
  return c;
};

async function folderItems(dataDir: string, sub: string, labels: LabelSet): Promise<SplitItem[]> {
  const root = path.join(dataDir, sub);
  if (!existsSync(root)) return [];
  const { records } = await listClassFolders(root);
  return records
    .filter((r) => labels.includes(r.emotion))
    .map((r) => ({ file: path.relative(dataDir, r.path!), label: r.emotion }));
}

/** 48×48 grey pixels of an image file (any format sharp reads), as bytes. */
async function grey48(file: string): Promise<Uint8Array> {
  const { data, info } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
  if (info.width !== 48 || info.height !== 48 || info.channels !== 1) {
    throw new FerInputError(
      `Expected a 48x48 grey face in ${file}, but got ${info.width}x${info.height}x${info.channels}.`,
    );
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** 6×6 means of 8×8 blocks: a JPEG-robust key for the nearest-neighbour search. */
function blockKey(px: Uint8Array): Float32Array {
  const k = new Float32Array(36);
  for (let y = 0; y < 48; y++) for (let x = 0; x < 48; x++) k[(y >> 3) * 6 + (x >> 3)] += px[y * 48 + x] / 64;
  return k;
}

function sqDist(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

/**
 * Matches FER+'s test PNGs (lossless copies of FER2013 PrivateTest rows) to the PrivateTest JPEGs of fer2013-test.
 * The JPEG file names carry random ids, so the join is by pixels: for each PNG, the JPEG with the smallest RMSE
 * (candidates by 8×8-block means, then full 48×48), accepted when the RMSE is below `threshold` (JPEG noise is ~2;
 * distinct faces differ by tens), assigned one-to-one closest first.
 */
export async function matchFerPlus(
  dataDir: string,
  test: SplitItem[],
  threshold = 12,
): Promise<{ items: SplitItem[]; match: FerPlusMatch } | null> {
  const root = path.join(dataDir, 'ferplus');
  if (!existsSync(path.join(root, 'Labels', 'FER2013Test', 'label.csv'))) return null;
  const summary = await readFerPlusLabels(root, 'test');
  const rows = summary.rows;
  const pngs: (Uint8Array | null)[] = [];
  for (const r of rows) {
    const f = path.join(root, 'Images', 'FER2013Test', r.file);
    pngs.push(existsSync(f) ? await grey48(f) : null);
  }
  const jpgs: Uint8Array[] = [];
  for (const t of test) jpgs.push(await grey48(path.join(dataDir, t.file)));
  const jKeys = jpgs.map(blockKey);
  // Every (row, JPEG) pair under the threshold among each row's CAND nearest by block means.
  const pairs: { i: number; j: number; e: number }[] = [];
  const CAND = 5;
  pngs.forEach((p, i) => {
    if (!p) return;
    const key = blockKey(p);
    const cand: [number, number][] = [];
    for (let j = 0; j < jKeys.length; j++) {
      const d = sqDist(key, jKeys[j]);
      if (cand.length < CAND || d < cand[cand.length - 1][0]) {
        cand.push([d, j]);
        cand.sort((a, b) => a[0] - b[0]);
        if (cand.length > CAND) cand.pop();
      }
    }
    for (const [, j] of cand) {
      const e = Math.sqrt(sqDist(p, jpgs[j]) / 2304);
      if (e <= threshold) pairs.push({ i, j, e });
    }
  });
  // Greedy one-to-one assignment, closest pairs first: FER2013 holds a few identical faces (and FER+ names one
  // PNG twice), so a row may have several JPEGs within JPEG noise; each JPEG and each row is used once.
  pairs.sort((a, b) => a.e - b.e || a.i - b.i || a.j - b.j);
  const rowTaken = new Map<number, { j: number; e: number }>();
  const jpgTaken = new Set<number>();
  for (const p of pairs) {
    if (rowTaken.has(p.i) || jpgTaken.has(p.j)) continue;
    rowTaken.set(p.i, { j: p.j, e: p.e });
    jpgTaken.add(p.j);
  }
  const perRow = new Map<number, number>();
  for (const p of pairs) perRow.set(p.i, (perRow.get(p.i) ?? 0) + 1);
  const ambiguous = [...perRow.values()].filter((n) => n > 1).length;
  const owner = new Map<number, { i: number; e: number }>();
  for (const [i, { j, e }] of rowTaken) owner.set(j, { i, e });
  const items: SplitItem[] = [];
  const errs: number[] = [];
  let dropped = 0;
  let relabelled = 0;
  for (const [j, { i, e }] of [...owner.entries()].sort((a, b) => a[0] - b[0])) {
    errs.push(e);
    const idx = summary.labels[i];
    const emotion = idx >= 0 ? AFFECTNET_LABELS[idx] : undefined;
    if (!emotion || !BASIC7_LABELS.includes(emotion)) {
      dropped++;
      continue;
    }
    if (emotion !== test[j].label) relabelled++;
    items.push({ file: test[j].file, label: emotion });
  }
  errs.sort((a, b) => a - b);
  return {
    items,
    match: {
      ferplusRows: rows.length,
      matched: owner.size,
      unmatched: rows.length - owner.size,
      ambiguous,
      kept: items.length,
      dropped,
      relabelled,
      rmseMedian: errs.length ? errs[errs.length >> 1] : NaN,
      rmseMax: errs.length ? errs[errs.length - 1] : NaN,
      threshold,
    },
  };
}

/**
 * Builds the experiment's splits from `dataDir` (`../shared/data`): PublicTest → train + a stratified hold-out
 * (`holdoutFraction` of each class, drawn with `splitSeed`), PrivateTest → test, and the derived sets.
 */
export async function buildRealFacesSplits(
  dataDir: string,
  o: { holdoutFraction?: number; splitSeed?: number } = {},
): Promise<RealFacesSplits> {
  const status = realFacesDataStatus(dataDir);
  if (!status.ok) {
    throw new FerInputError(
      `The real-faces experiment needs ${FER2013}/ and esr9-affectnet/weights/ under ${dataDir}; missing: ${status.missing.join(', ')}.`,
      'Point --data to the shared data folder (see its README.md).',
    );
  }
  const holdoutFraction = o.holdoutFraction ?? 0.1;
  const splitSeed = o.splitSeed ?? 0;
  const labels = BASIC7_LABELS;
  const all = await folderItems(dataDir, FER2013, labels);
  const name = (it: SplitItem) => path.basename(it.file);
  const pub = all.filter((it) => name(it).startsWith('PublicTest_'));
  const test = all.filter((it) => name(it).startsWith('PrivateTest_'));
  const train: SplitItem[] = [];
  const holdout: SplitItem[] = [];
  const rng = new Rng(splitSeed);
  for (const e of labels) {
    const cls = pub.filter((it) => it.label === e).sort((a, b) => (a.file < b.file ? -1 : 1));
    rng.shuffle(cls);
    const n = Math.round(cls.length * holdoutFraction);
    holdout.push(...cls.slice(0, n));
    train.push(...cls.slice(n));
  }
  const byFile = (a: SplitItem, b: SplitItem) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0);
  train.sort(byFile);
  holdout.sort(byFile);
  // Selection scores the hold-out with batch statistics, so each batch must mix the classes: a class-sorted list
  // gives batches of one class, which batch norm normalises the class signal out of (below-majority accuracy).
  new Rng(splitSeed + 1).shuffle(holdout);
  const fp = await matchFerPlus(dataDir, test);
  const ckplus = await folderItems(dataDir, 'ckplus48', labels);
  const jaffe = await folderItems(dataDir, path.join('jaffe', 'png'), labels);
  const splits: RealFacesSplits = {
    version: 2,
    labels,
    holdoutFraction,
    splitSeed,
    train,
    holdout,
    test,
    testFerPlus: fp?.items ?? [],
    ferPlusMatch: fp?.match ?? null,
    ckplus,
    jaffe,
    counts: {},
  };
  for (const k of ['train', 'holdout', 'test', 'testFerPlus', 'ckplus', 'jaffe'] as const)
    splits.counts[k] = countBy(splits[k]);
  return splits;
}

export async function writeSplits(file: string, s: RealFacesSplits): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, JSON.stringify(s, null, 1) + '\n');
}

/** The split as a fer-datasets pipeline: grey faces replicated to 3 channels, bilinear resize to `imageSize`. */
export function splitDataset(
  dataDir: string,
  name: string,
  items: SplitItem[],
  o: { imageSize: number; augment?: boolean; workers?: number; labels?: LabelSet },
): ImageDataset {
  const samples: SampleRecord[] = items.map((it) => ({ path: path.join(dataDir, it.file), emotion: it.label }));
  return new ImageDataset({
    name,
    labels: o.labels ?? BASIC7_LABELS,
    samples,
    imageSize: o.imageSize,
    channelOrder: 'bgr',
    resize: 'bilinear',
    transform: o.augment ? esrTrainTransform() : { name: 'eval', ops: [] },
    workers: o.workers,
  });
}
