/**
 * The real-faces experiment's data side on ../shared/data (no training): the splits (sizes from the data's
 * SOURCE.md tables, disjointness, stratified hold-out), the FER+ pixel join, and the ESR-9 base import into the CBAM
 * ESR (which keys load, one value checked against base-extracted.json). Slow only because it decodes the 7,178
 * FER2013 and 3,573 FER+ faces (about 15 s of CPU).
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { BASIC7_LABELS } from 'fer-core';
import { DATA_DIR, describeIfExists } from 'fer-test-utils';
import { pretrainedEsr, readUpstreamBase } from '../src/experiments/real-faces';
import { buildRealFacesSplits, type RealFacesSplits } from '../src/experiments/real-faces-data';

jest.setTimeout(20 * 60_000);

describeIfExists(path.join(DATA_DIR, 'fer2013-test'), 'real-faces splits and base import (../shared/data)', () => {
  let s: RealFacesSplits;
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    s = await buildRealFacesSplits(DATA_DIR);
  });

  it('splits FER2013 by Usage: 3,589 PublicTest (train + 10% stratified hold-out) and 3,589 PrivateTest, disjoint', () => {
    expect(s.train.length + s.holdout.length).toBe(3589);
    expect(s.test).toHaveLength(3589);
    const names = (xs: { file: string }[]) => xs.map((x) => path.basename(x.file));
    expect(names(s.train).every((n) => n.startsWith('PublicTest_'))).toBe(true);
    expect(names(s.holdout).every((n) => n.startsWith('PublicTest_'))).toBe(true);
    expect(names(s.test).every((n) => n.startsWith('PrivateTest_'))).toBe(true);
    const train = new Set(s.train.map((x) => x.file));
    expect(s.holdout.some((x) => train.has(x.file))).toBe(false);
    // SOURCE.md: PublicTest per class; the hold-out takes round(10%) of each.
    const pub = { anger: 467, disgust: 56, fear: 496, happy: 895, sad: 653, surprise: 415, neutral: 607 };
    for (const [e, n] of Object.entries(pub)) expect(s.counts.holdout[e]).toBe(Math.round(n * 0.1));
    expect(s.counts.test).toEqual({
      anger: 491,
      disgust: 55,
      fear: 528,
      happy: 879,
      sad: 594,
      surprise: 416,
      neutral: 626,
    });
  });

  it('orders the hold-out so that every batch of 32 mixes the classes (it is scored with batch statistics)', () => {
    for (let i = 0; i + 32 <= s.holdout.length; i += 32) {
      const classes = new Set(s.holdout.slice(i, i + 32).map((x) => x.label));
      expect(classes.size).toBeGreaterThanOrEqual(4);
    }
  });

  it('joins every FER+ test row to a distinct PrivateTest JPEG by pixels (JPEG noise only)', () => {
    const m = s.ferPlusMatch!;
    if (!m) return; // ferplus/ absent: nothing to check
    expect(m.matched).toBe(m.ferplusRows);
    expect(m.rmseMax).toBeLessThan(3); // JPEG re-encoding of the same pixels; other faces differ by tens
    const files = new Set(s.testFerPlus.map((x) => x.file));
    expect(files.size).toBe(s.testFerPlus.length);
    expect(s.testFerPlus.every((x) => path.basename(x.file).startsWith('PrivateTest_'))).toBe(true);
    expect(s.testFerPlus.every((x) => BASIC7_LABELS.includes(x.label))).toBe(true);
    expect(m.kept + m.dropped).toBe(m.matched);
  });

  it("loads the ESR-9 base's convolutions and batch norms into the CBAM ESR and leaves the CBAM modules fresh", async () => {
    const before = tf.memory().numTensors;
    const base = await readUpstreamBase(DATA_DIR);
    const { esr, report } = pretrainedEsr(base, 64, 1);
    try {
      // 4 convs × (weight, bias) + 4 BNs × (weight, bias, running mean, running var, num_batches_tracked).
      expect(report!.loaded.filter((k) => k.startsWith('conv'))).toHaveLength(8);
      expect(report!.loaded.filter((k) => k.startsWith('bn'))).toHaveLength(20);
      expect(report!.unexpected).toEqual([]);
      expect(report!.missing.length).toBeGreaterThan(0);
      expect(report!.missing.every((k) => k.startsWith('cbam'))).toBe(true);
      const w = esr.base.weights.find((v) => v.originalName === 'conv1/kernel')!.read();
      // base-extracted.json: conv1.weight[0,0,0,0..3] = 0.0646, 0.0840, ... (OIHW); tfjs HWIO [0,0..3,0,0]
      const slice = tf.slice(w, [0, 0, 0, 0], [1, 4, 1, 1]);
      const v = await slice.data();
      slice.dispose();
      expect(v[0]).toBeCloseTo(0.06458032131195068, 7);
      expect(v[1]).toBeCloseTo(0.08401725441217422, 7);
    } finally {
      esr.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
