import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { DATA_DIR, describeIfExists, expectNoLeak } from 'fer-test-utils';
import { AFFECTNET_LABELS } from 'fer-core';
import { affectNet, decodeImage, preprocessAffectNet } from 'fer-datasets';
import { affectNetFileName, parseAffectNetFileName } from 'fer-datasets/internal';

const ROOT = path.join(DATA_DIR, 'affectnet-mini');
const quiet = { onWarning: () => {} };
const SIZE = 48;

test('file names follow the reference (s separators, %07d ids, int() truncation toward zero)', () => {
  expect(affectNetFileName(0, 7, -0.653, 0.653)).toBe('0000000s7s-653s653.jpg');
  expect(affectNetFileName(1234567, 9, -2, -2)).toBe('1234567s9s-2000s-2000.jpg');
  expect(affectNetFileName(5, 1, 1.001, -0.0009)).toBe('0000005s1s1000s0.jpg'); // 1.001·1000 = 1000.999… in float64
  expect(parseAffectNetFileName('0000000s7s-653s653.jpg')).toEqual({
    id: 0,
    expression: 7,
    valence: -0.653,
    arousal: 0.653,
  });
  expect(parseAffectNetFileName('0000000_7_-653_653.jpg')).toBeNull(); // the README's pattern (docs/method.md#defect-26)
});

/** Mean absolute difference between two equally sized uint8 buffers, in [0, 1]. */
function mad(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length / 255;
}

describeIfExists(ROOT, 'AffectNet on ../shared/data/affectnet-mini', () => {
  let out: string;
  let correct: Awaited<ReturnType<typeof preprocessAffectNet>>;
  beforeAll(async () => {
    out = mkdtempSync(path.join(tmpdir(), 'fer-affectnet-'));
    correct = await preprocessAffectNet({
      root: ROOT,
      out: path.join(out, 'correct'),
      set: 'training',
      imageSize: SIZE,
    });
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  const csvRows = () =>
    readFileSync(path.join(ROOT, 'Manually_Annotated_file_lists', 'training.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','));

  test("preprocessing writes the reference's names into <id // 500>/ and reports bad rows by CSV row", async () => {
    expect(correct.rows).toBe(68);
    expect(correct.written).toBe(66);
    expect(correct.errors.map((e) => [e.row, e.path])).toEqual([
      [66, '199/missing.jpg'],
      [67, '199/truncated.jpg'],
    ]);
    expect(correct.errors[0].reason).toMatch(/file not found/);
    expect(correct.errors[1].reason).toMatch(/premature end|truncated|corrupt/i);
    // Expected names, recomputed here: ids count successes only; int() truncates.
    const expected: string[] = [];
    let id = 0;
    for (const f of csvRows()) {
      if (f[0].includes('missing') || f[0].includes('truncated')) continue;
      const [expr, val, aro] = f.slice(-3);
      expected.push(
        `${String(id++).padStart(7, '0')}s${expr}s${Math.trunc(Number(val) * 1000)}s${Math.trunc(Number(aro) * 1000)}.jpg`,
      );
    }
    expect(readdirSync(correct.outDir)).toEqual(['0']);
    expect(readdirSync(path.join(correct.outDir, '0')).sort()).toEqual(expected.sort());
    expect(expected).toContain('0000000s6s834s-592.jpg');
    expect(expected).toContain('0000063s8s-2000s-2000.jpg');
  });

  test('the crop matches the annotation box: correct box by default, the reference swap as an option', async () => {
    const ref = await preprocessAffectNet({
      root: ROOT,
      out: path.join(out, 'reference'),
      set: 'training',
      imageSize: SIZE,
      box: 'reference',
    });
    expect(ref.written).toBe(66);
    // Row 1: 100/angry_0001.jpg, face_x 57, face_y 31, face_width 216, face_height 224 in a 360×300 photo.
    const src = path.join(ROOT, 'Manually_Annotated_Images', '100', 'angry_0001.jpg');
    const cut = async (left: number, top: number, width: number, height: number) =>
      new Uint8Array(
        (
          await sharp(src)
            .extract({ left, top, width, height })
            .resize(SIZE, SIZE, { kernel: 'linear', fit: 'fill' })
            .raw()
            .toBuffer()
        ).buffer,
      );
    const xIsColumn = await cut(57, 31, 216, 224);
    const xIsRow = await cut(31, 57, 224, 216);
    const name = '0000001s6s394s40.jpg';
    const ours = (await decodeImage(path.join(correct.outDir, '0', name))).data;
    const theirs = (await decodeImage(path.join(ref.outDir, '0', name))).data;
    expect(mad(ours, xIsColumn)).toBeLessThan(0.03);
    expect(mad(ours, xIsRow)).toBeGreaterThan(2 * mad(ours, xIsColumn));
    expect(mad(theirs, xIsRow)).toBeLessThan(0.03);
    expect(mad(theirs, xIsColumn)).toBeGreaterThan(2 * mad(theirs, xIsRow));
  });

  test('malformed CSV rows and missing columns', async () => {
    const lines = readFileSync(path.join(ROOT, 'Manually_Annotated_file_lists', 'training.csv'), 'utf8')
      .trim()
      .split('\n');
    const csv = path.join(out, 'bad.csv');
    writeFileSync(csv, [lines[0], lines[1], '100/angry_0001.jpg,abc,1,2', lines[3]].join('\n'));
    const r = await preprocessAffectNet({
      csv,
      images: path.join(ROOT, 'Manually_Annotated_Images'),
      out: path.join(out, 'bad'),
      set: 'training',
      imageSize: 8,
    });
    expect(r.written).toBe(2);
    expect(r.errors.map((e) => e.row)).toEqual([1]);
    expect(r.errors[0].reason).toMatch(/malformed row \(line 3\)/);
    writeFileSync(csv, 'subDirectory_filePath,face_x\n100/angry_0001.jpg,1\n');
    await expect(preprocessAffectNet({ csv, images: ROOT, out, set: 'training', imageSize: 8 })).rejects.toThrow(
      /lacks column\(s\) face_y/,
    );
    await expect(preprocessAffectNet({ root: ROOT, out, set: 'training', imageSize: 0 })).rejects.toThrow(/imageSize/);
  });

  test('expression codes that are not integers 0-10 are refused, counted, and the first is shown', async () => {
    const lines = readFileSync(path.join(ROOT, 'Manually_Annotated_file_lists', 'training.csv'), 'utf8')
      .trim()
      .split('\n');
    const k = lines[0].split(',').indexOf('expression');
    const withCode = (l: string, code: string) =>
      l
        .split(',')
        .map((v, i) => (i === k ? code : v))
        .join(',');
    const csv = path.join(out, 'codes.csv');
    writeFileSync(
      csv,
      [lines[0], withCode(lines[1], '12'), withCode(lines[2], '-1'), withCode(lines[3], '3.5'), lines[4]].join('\n'),
    );
    const progress: [number, number][] = [];
    const r = await preprocessAffectNet({
      csv,
      images: path.join(ROOT, 'Manually_Annotated_Images'),
      out: path.join(out, 'codes'),
      set: 'training',
      imageSize: 8,
      onProgress: (done, total) => progress.push([done, total]),
    });
    expect(r.written).toBe(1);
    expect(r.invalidCodes).toBe(3);
    expect(r.errors.map((e) => [e.row, e.kind])).toEqual([
      [0, 'code'],
      [1, 'code'],
      [2, 'code'],
    ]);
    expect(r.errors[0].reason).toBe("expression code '12' (line 2) is not an AffectNet code (an integer 0-10)");
    expect(r.errors[2].reason).toContain("'3.5'");
    // The progress total is the number of rows to render, and the last report reaches it.
    expect(progress.at(-1)).toEqual([1, 1]);
  });

  test('loader: codes 8-10 dropped, valence/arousal parsed, caps applied and redrawn by seed', async () => {
    const root = path.join(out, 'correct');
    const all = await affectNet({ root, split: 'train', workers: 0, ...quiet });
    expect(all.stats).toMatchObject({ listed: 66, droppedCodes8to10: 3, kept: 63 });
    expect(all.classCounts()).toEqual([9, 9, 9, 9, 9, 9, 9, 0]);
    const first = all.records.find((r) => r.path!.endsWith('0000000s6s834s-592.jpg'))!;
    expect(first).toMatchObject({ emotion: 'anger', valence: 0.834, arousal: -0.592 });

    const capped = await affectNet({ root, split: 'train', cap: 5, capSeed: 1, workers: 0, ...quiet });
    expect(capped.classCounts()).toEqual([5, 5, 5, 5, 5, 5, 5, 0]);
    const pick = () => capped.activeRecords().map((r) => path.basename(r.path!));
    const a = pick();
    capped.redraw(2);
    const b = pick();
    capped.redraw(1);
    expect(pick()).toEqual(a);
    expect(b).not.toEqual(a);
    expect(capped.classCounts()).toEqual([5, 5, 5, 5, 5, 5, 5, 0]);
    expect(capped.preprocessing()).toEqual({
      imageSize: 96,
      channelOrder: 'bgr',
      resize: 'bilinear',
      labels: [...AFFECTNET_LABELS],
    });

    const one = await capped.sample(0);
    expect([one.image.width, one.image.height, one.image.data.length]).toEqual([96, 96, 96 * 96 * 3]);
    expect(one.label).toBe(capped.labels.indexOf(one.record.emotion));

    // Batches: BGR by default (the reference's OpenCV path), the caller disposes them, nothing else leaks.
    const rgb = await affectNet({ root, split: 'train', cap: 1, channelOrder: 'rgb', workers: 0, ...quiet });
    const bgr = await affectNet({ root, split: 'train', cap: 1, workers: 0, ...quiet });
    const [x, y] = await Promise.all([rgb.sample(0), bgr.sample(0)]);
    for (let i = 0; i < x.image.data.length; i += 3) {
      if (x.image.data[i] !== y.image.data[i + 2] || x.image.data[i + 2] !== y.image.data[i])
        throw new Error(`not swapped at ${i}`);
    }
    await expectNoLeak(
      async () => {
        for await (const b of capped.batches({ batchSize: 16, seed: 3 })) {
          expect(b.images.shape).toEqual([16, 96, 96, 3]);
          tf.dispose([b.images, b.labels]);
          break;
        }
      },
      { returned: 0 },
    );

    await expect(affectNet({ root, split: 'validation' })).rejects.toThrow(/AffectNet split 'validation' not found/);
  });
});
