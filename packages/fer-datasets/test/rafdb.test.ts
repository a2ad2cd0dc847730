import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { DATA_DIR, describeIfExists } from 'fer-test-utils';
import { RAFDB_LABELS } from 'fer-core';
import { RAFDB_README_FOLDERS } from 'fer-datasets/internal';
import { rafDb } from 'fer-datasets';

const ROOT = path.join(DATA_DIR, 'rafdb-mini', 'basic');
const quiet = { onWarning: () => {}, workers: 0 };

describeIfExists(ROOT, 'RAF-DB on ../shared/data/rafdb-mini', () => {
  test('official layout: splits by name prefix, release label order, counts', async () => {
    const train = await rafDb({ root: ROOT, split: 'train', ...quiet });
    const test = await rafDb({ root: path.dirname(ROOT), split: 'test', ...quiet }); // the parent of basic/ works too
    expect(train.labels).toEqual(RAFDB_LABELS);
    expect(RAFDB_LABELS).toEqual(['surprise', 'fear', 'disgust', 'happy', 'sad', 'anger', 'neutral']);
    expect(train.size).toBe(70);
    expect(test.size).toBe(35);
    expect(train.classCounts()).toEqual([10, 10, 10, 10, 10, 10, 10]);
    expect(test.classCounts()).toEqual([5, 5, 5, 5, 5, 5, 5]);
    expect(train.records.every((r) => path.basename(r.path!).startsWith('train_'))).toBe(true);
    expect(test.records.every((r) => /test_\d+_aligned\.jpg$/.test(r.path!))).toBe(true);
    // "train_00005.jpg 6": file label 6 − 1 = 5 = anger; "train_00061.jpg 1" = surprise.
    const byName = new Map(train.records.map((r) => [path.basename(r.path!), r.emotion]));
    expect(byName.get('train_00005_aligned.jpg')).toBe('anger');
    expect(byName.get('train_00061_aligned.jpg')).toBe('surprise');
  });

  test('defaults: 96×96 RGB with ImageNet normalisation; eval batches in listing order', async () => {
    const ds = await rafDb({ root: ROOT, split: 'test', ...quiet });
    expect(ds.preprocessing()).toEqual({
      imageSize: 96,
      channelOrder: 'rgb',
      resize: 'antialias',
      normalize: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
      labels: [...RAFDB_LABELS],
    });
    const it = ds.batches({ batchSize: 4 });
    const { value: b } = await it.next();
    await it.return(undefined);
    try {
      expect(b.images.shape).toEqual([4, 96, 96, 3]);
      const labels = Array.from((await b.labels.data()) as Int32Array);
      expect(labels).toEqual(
        ds
          .activeRecords()
          .slice(0, 4)
          .map((r) => RAFDB_LABELS.indexOf(r.emotion)),
      );
      const min = (await tf.min(b.images).data())[0];
      expect(min).toBeLessThan(-1.5); // (0 − 0.485)/0.229 ≈ −2.1 where the image is dark
    } finally {
      tf.dispose([b.images, b.labels]);
    }
  });

  test('README layout train/0..6 (Neutral, Happiness, Sadness, Surprise, Fear, Disgust, Anger) maps to the same emotions', async () => {
    const official = await rafDb({ root: ROOT, split: 'train', ...quiet });
    const tmp = mkdtempSync(path.join(tmpdir(), 'fer-rafdb-'));
    try {
      const digitOf = Object.fromEntries(Object.entries(RAFDB_README_FOLDERS).map(([d, e]) => [e, d]));
      for (const r of official.records) {
        const dir = path.join(tmp, 'train', digitOf[r.emotion]);
        mkdirSync(dir, { recursive: true });
        symlinkSync(r.path!, path.join(dir, path.basename(r.path!)));
      }
      const folders = await rafDb({ root: tmp, split: 'train', ...quiet });
      expect(folders.labels).toEqual(RAFDB_LABELS);
      const want = new Map(official.records.map((r) => [path.basename(r.path!), r.emotion]));
      expect(folders.size).toBe(70);
      for (const r of folders.records) expect(r.emotion).toBe(want.get(path.basename(r.path!)));
      await expect(rafDb({ root: tmp, split: 'test', ...quiet })).rejects.toThrow(/Dataset root not found: .*test/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
