import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { DATA_DIR, describeIfExists } from 'fer-test-utils';
import { AFFECTNET_LABELS } from 'fer-core';
import { classFolders, decodeImage, loadImage } from 'fer-datasets';

const quiet = { onWarning: () => {}, workers: 0 };

describeIfExists(path.join(DATA_DIR, 'ckplus48'), 'class folders on ../shared/data', () => {
  test('CK+48: folder names via EMOTION_ALIASES, labels in AffectNet order, counts', async () => {
    const ds = await classFolders({ root: path.join(DATA_DIR, 'ckplus48'), ...quiet });
    expect(ds.labels).toEqual(['happy', 'sad', 'surprise', 'fear', 'disgust', 'anger', 'contempt']);
    expect(ds.classCounts()).toEqual([207, 84, 249, 75, 177, 135, 54]);
    // Scoring an 8-class model: ask for AffectNet's order (neutral stays empty).
    const eight = await classFolders({ root: path.join(DATA_DIR, 'ckplus48'), labels: AFFECTNET_LABELS, ...quiet });
    expect(eight.classCounts()).toEqual([0, 207, 84, 249, 75, 177, 135, 54]);
  });

  test('JAFFE: TIFF (incl. palette) decodes to the same pixels as the PNG copies, grey → 3 channels', async () => {
    for (const name of ['KA.HA1.29', 'KM.HA1.4']) {
      const tif = await decodeImage(path.join(DATA_DIR, 'jaffe', 'tiff', 'happy', `${name}.tiff`));
      const png = await decodeImage(path.join(DATA_DIR, 'jaffe', 'png', 'happy', `${name}.png`));
      expect([tif.width, tif.height]).toEqual([256, 256]);
      expect(Buffer.compare(Buffer.from(tif.data), Buffer.from(png.data))).toBe(0);
      for (let i = 0; i < tif.data.length; i += 3) if (tif.data[i] !== tif.data[i + 2]) throw new Error('not grey');
    }
    const bgr = await loadImage(path.join(DATA_DIR, 'jaffe', 'png', 'happy', 'KA.HA1.29.png'), {
      size: 64,
      channelOrder: 'bgr',
    });
    expect(bgr.data.length).toBe(64 * 64 * 3);
  });

  test('bad input: unknown and empty folders reported, unreadable files skipped and counted, most-bad stops', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'fer-folders-'));
    const src = path.join(DATA_DIR, 'ckplus48', 'happy');
    const good = ['S010_006_00000013.png', 'S011_006_00000011.png', 'S014_005_00000015.png'];
    try {
      for (const d of ['happy', 'Sadness', 'fear', '_no_majority']) mkdirSync(path.join(tmp, d));
      good.forEach((f) => copyFileSync(path.join(src, f), path.join(tmp, 'happy', f)));
      good.forEach((f) => copyFileSync(path.join(src, f), path.join(tmp, 'Sadness', f)));
      copyFileSync(path.join(src, good[0]), path.join(tmp, '_no_majority', 'x.png'));
      writeFileSync(path.join(tmp, 'happy', 'notes.txt'), 'not an image, not listed');
      writeFileSync(path.join(tmp, 'happy', 'broken.jpg'), 'this is not a JPEG');
      const warnings: string[] = [];
      const ds = await classFolders({ root: tmp, workers: 0, onWarning: (m) => warnings.push(m) });
      expect(ds.labels).toEqual(['happy', 'sad']);
      expect(ds.size).toBe(7);
      expect(ds.problems.map((p) => p.kind).sort()).toEqual(['empty-class', 'unknown-label']);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/_no_majority/);
      let seen = 0;
      for await (const b of ds.batches({ batchSize: 4 })) {
        seen += b.labels.shape[0];
        expect(b.images.shape.slice(1)).toEqual([96, 96, 3]);
        tf.dispose([b.images, b.labels]);
      }
      expect(seen).toBe(6);
      expect(ds.size).toBe(6);
      expect(ds.problems.filter((p) => p.kind === 'unreadable-image').map((p) => path.basename(p.path!))).toEqual([
        'broken.jpg',
      ]);
      expect(warnings.some((w) => /skipping .*broken\.jpg/.test(w))).toBe(true);

      // Most files unreadable → stop with a clear error.
      for (let i = 0; i < 8; i++) writeFileSync(path.join(tmp, 'Sadness', `bad${i}.png`), Buffer.alloc(10));
      const worse = await classFolders({ root: tmp, labels: ['sad'], ...quiet });
      const drain = async () => {
        for await (const b of worse.batches({ batchSize: 4 })) tf.dispose([b.images, b.labels]);
      };
      await expect(drain()).rejects.toThrow(/8 of 11 images tried in .* could not be read/);
      await expect(classFolders({ root: path.join(tmp, 'fear') })).rejects.toThrow(/No images in class folders/);
      await expect(classFolders({ root: path.join(tmp, 'nope') })).rejects.toThrow(/Dataset root not found/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
