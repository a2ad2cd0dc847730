import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { DATA_DIR, describeIfExists, expectNoLeak } from 'fer-test-utils';
import { AFFECTNET_LABELS } from 'fer-core';
import { ferPlus } from 'fer-datasets';
import { ferPlusMajority, ferPlusSoftLabel, readFerPlusLabels } from 'fer-datasets/internal';

const ROOT = path.join(DATA_DIR, 'ferplus');
const quiet = { onWarning: () => {} };

test('majority rule on hand-made vote rows', () => {
  // Outliers (≤ 1 vote) removed, then strict majority of all remaining votes, unknown/NF included.
  expect(ferPlusMajority([6, 0, 1, 2, 0, 0, 0, 0, 1, 0])).toBe(0); // 6 > 8/2
  expect(ferPlusMajority([5, 5, 0, 0, 0, 0, 0, 0, 0, 0])).toBeNull(); // 5 is not > 5
  expect(ferPlusMajority([5, 4, 1, 0, 0, 0, 0, 0, 0, 0])).toBe(0); // the 1 is removed: 5 > 4.5
  expect(ferPlusMajority([0, 0, 0, 0, 0, 0, 0, 0, 7, 3])).toBeNull(); // majority 'unknown'
  expect(ferPlusMajority([0, 0, 0, 0, 0, 0, 0, 0, 0, 10])).toBeNull(); // not a face
  expect(ferPlusMajority([1, 1, 1, 1, 1, 1, 1, 1, 1, 1])).toBeNull(); // everything removed
  expect(ferPlusMajority([0, 0, 4, 3, 0, 0, 0, 0, 0, 0])).toBe(2); // 4 > 3.5
  const soft = ferPlusSoftLabel([3, 0, 1, 6, 0, 0, 0, 0, 0, 0]); // FER+ order → AffectNet order (sad = 2)
  expect(soft).toEqual([1 / 3, 0, 2 / 3, 0, 0, 0, 0, 0]);
});

describeIfExists(ROOT, 'FER+ on ../shared/data/ferplus', () => {
  test('Train/Valid/Test label files give the docs/method.md#ferplus counts', async () => {
    const want = {
      train: { rows: 28558, kept: 25045, counts: [8733, 7284, 3022, 3136, 536, 116, 2098, 120] },
      valid: { rows: 3579, kept: 3191, counts: [1180, 862, 348, 411, 60, 25, 289, 16] },
      test: { rows: 3573, kept: 3137, counts: [1083, 892, 382, 394, 86, 16, 269, 15] },
    } as const;
    for (const split of ['train', 'valid', 'test'] as const) {
      const s = await readFerPlusLabels(ROOT, split);
      expect({ rows: s.rows.length, kept: s.kept, counts: s.counts }).toEqual(want[split]);
      expect(s.problems).toEqual([]);
    }
  });

  test('test split: every image labelled as extra/labels_majority.csv says', async () => {
    const ds = await ferPlus({ root: ROOT, split: 'test', workers: 0, ...quiet });
    const lines = readFileSync(path.join(ROOT, 'extra', 'labels_majority.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    const expected = new Map<string, string>();
    for (const l of lines) {
      const f = l.split(',');
      // `_known_bad` (fer0033120.png): its label.csv votes say neutral; the pixels are a glyph (see SOURCE.md).
      expected.set(f[0], f[1] === '_known_bad' ? 'Neutral' : f[4]);
    }
    const got = new Map(ds.records.map((r) => [path.basename(r.path!), r.emotion]));
    const mismatches: string[] = [];
    for (const [file, name] of expected) {
      const mine = got.get(file);
      const theirs = name ? name.toLowerCase() : undefined;
      if ((mine ?? undefined) !== theirs) mismatches.push(`${file}: ${mine} vs ${theirs}`);
    }
    expect(mismatches).toEqual([]);
    expect(ds.size).toBe(3137);
    expect(ds.classCounts()).toEqual([1083, 892, 382, 394, 86, 16, 269, 15]);
    expect(ds.labels).toEqual(AFFECTNET_LABELS);
    expect(ds.stats).toMatchObject({ listed: 3573, droppedByMajorityRule: 436, missing: 0, kept: 3137 });
  });

  test('train and valid: images absent → a clear error naming the folder and the count', async () => {
    await expect(ferPlus({ root: ROOT, split: 'train', ...quiet })).rejects.toThrow(
      /FER\+ images for split 'train' not found: .*FER2013Train does not exist \(28558 images listed/,
    );
    await expect(ferPlus({ root: ROOT, split: 'valid', ...quiet })).rejects.toThrow(/FER2013Valid does not exist/);
    await expect(ferPlus({ root: '/nonexistent/ferplus', split: 'test' })).rejects.toThrow(/FER\+ root not found/);
  });

  test('some images missing: reported once with their label.csv rows, the rest loads', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'fer-ferplus-'));
    try {
      const rows = readFileSync(path.join(ROOT, 'Labels', 'FER2013Test', 'label.csv'), 'utf8')
        .trim()
        .split('\n')
        .slice(0, 20);
      mkdirSync(path.join(tmp, 'Labels', 'FER2013Test'), { recursive: true });
      mkdirSync(path.join(tmp, 'Images', 'FER2013Test'), { recursive: true });
      writeFileSync(path.join(tmp, 'Labels', 'FER2013Test', 'label.csv'), rows.join('\n') + '\nbroken-row\n');
      const files = rows.map((r) => r.split(',')[0]);
      files
        .slice(3)
        .forEach((f) =>
          symlinkSync(path.join(ROOT, 'Images', 'FER2013Test', f), path.join(tmp, 'Images', 'FER2013Test', f)),
        );
      const warnings: string[] = [];
      const ds = await ferPlus({ root: tmp, split: 'test', workers: 0, onWarning: (m) => warnings.push(m) });
      const labelled = (await readFerPlusLabels(tmp, 'test')).labels;
      const missingKept = [0, 1, 2].filter((i) => labelled[i] >= 0);
      expect(ds.problems.filter((p) => p.kind === 'missing-file').map((p) => p.row)).toEqual(missingKept);
      expect(ds.problems.filter((p) => p.kind === 'malformed-row').map((p) => p.row)).toEqual([20]);
      expect(ds.size).toBe(labelled.filter((l) => l >= 0).length - missingKept.length);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/missing-file × \d+: row 0: fer\d+\.png listed in label\.csv is missing/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('batches: grey → 3 equal channels, 96×96 in [0, 1], soft labels, capped subset, no leak', async () => {
    const ds = await ferPlus({ root: ROOT, split: 'test', cap: 3, soft: true, workers: 0, ...quiet });
    expect(ds.size).toBe(24);
    expect(ds.classCounts()).toEqual([3, 3, 3, 3, 3, 3, 3, 3]);
    const it = ds.batches({ batchSize: 16, seed: 1 });
    const first = await expectNoLeak(async () => (await it.next()).value, { returned: 3 });
    void first;
    // Drain the rest, checking contents.
    let n = 16;
    for await (const b of it) {
      try {
        expect(b.images.shape).toEqual([8, 96, 96, 3]);
        expect(b.soft!.shape).toEqual([8, 8]);
        const px = (await b.images.data()) as Float32Array;
        expect(px.every((v) => v >= 0 && v <= 1)).toBe(true);
        for (let i = 0; i < px.length; i += 3)
          if (px[i] !== px[i + 1] || px[i] !== px[i + 2]) throw new Error('channels differ');
        const soft = (await b.soft!.array()) as number[][];
        const labels = (await b.labels.data()) as Int32Array;
        soft.forEach((row, i) => {
          expect(row.reduce((a, c) => a + c, 0)).toBeCloseTo(1, 5);
          expect(row[labels[i]]).toBe(Math.max(...row)); // the majority emotion has the most votes
        });
        n += b.labels.shape[0];
      } finally {
        tf.dispose(b as unknown as tf.TensorContainer);
      }
    }
    expect(n).toBe(24);
  });
});

describe('label.csv layout', () => {
  const row = (votes: number[]) => `fer0000001.png,"(0, 0, 48, 48)",${votes.join(',')}`;
  const write = (lines: string[]) => {
    const root = mkdtempSync(path.join(tmpdir(), 'fer-ferplus-layout-'));
    mkdirSync(path.join(root, 'Labels', 'FER2013Test'), { recursive: true });
    writeFileSync(path.join(root, 'Labels', 'FER2013Test', 'label.csv'), lines.join('\n') + '\n');
    return root;
  };

  test.each([
    ['an extra vote column (11 votes)', 11, 13],
    ['a missing vote column (9 votes)', 9, 11],
  ])('%s: one error naming the file, the line and the count found', async (_what, votes, columns) => {
    const root = write([row(new Array(votes).fill(1)), row(new Array(votes).fill(2))]);
    try {
      const file = path.join(root, 'Labels', 'FER2013Test', 'label.csv');
      await expect(readFerPlusLabels(root, 'test')).rejects.toThrow(
        `${file} line 1 has ${columns} columns, but the official FER+ label.csv has 12 (file name, face box, 10 vote counts: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF).`,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('a single broken row in a well-formed file stays a reported problem', async () => {
    const root = write([row([0, 8, 0, 0, 0, 0, 0, 0, 0, 2]), 'broken-row', row([9, 0, 0, 0, 0, 0, 0, 0, 1, 0])]);
    try {
      const s = await readFerPlusLabels(root, 'test');
      expect(s.labels).toEqual([1, 0]);
      expect(s.problems.map((p) => p.row)).toEqual([1]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
