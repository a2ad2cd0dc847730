/**
 * Learning on real faces: `fer experiment real --quick` (one branch from the ESR-9 AffectNet base, one epoch over the
 * 3,228 FER2013 PublicTest training faces at the reference rates) must score the PrivateTest quarter clearly above
 * the majority-class rate, in inference mode after precise BN. A regression check of the whole pipeline, not proof of
 * robust learning: one epoch is fragile (packages/fer-train/README.md, "Real faces": seeds 1 and 2 learn on both
 * sides, seed 3 stays at the majority rate on both). It runs seed 2 on the native backend, where it was measured at
 * 34.0 % (majority 24.5 %) and where runs are deterministic. Other backends round differently in the last bits, which
 * a one-epoch run amplifies into another trajectory (wasm scored seed 1 at 29.0 % against native's 32.3 %), so the
 * test skips, saying why, when fer-native's addon is not built.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { loadAddon } from 'fer-native';
import { DATA_DIR, describeIfExists } from 'fer-test-utils';
import { REAL_FACES_DEFAULTS, REAL_FACES_QUICK, runRealFaces } from '../src/experiments/real-faces';

jest.setTimeout(30 * 60_000);

/** Seed 2's measured margin over the majority rate (34.0 % against 24.5 %). */
const MEASURED_MARGIN = 0.095;
/** Asserted: half of it (a different CPU instruction set changes oneDNN's rounding, hence the trajectory). */
const MARGIN = MEASURED_MARGIN / 2;
const SEED = 2;

const { addon, reason } = loadAddon();
if (!addon)
  console.info(`skipped: ESR learns real faces needs the native backend (its margin was measured there): ${reason}`);
const describeNative = addon
  ? describeIfExists
  : (dir: string, name: string, fn: () => void) => describe.skip(name, fn);

describeNative(path.join(DATA_DIR, 'fer2013-test'), 'ESR learns real faces (--quick, native, ../shared/data)', () => {
  let dir = '';
  beforeAll(async () => {
    await initBackend({ backend: 'native', quiet: true });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-real-quick-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it(`scores PrivateTest more than ${MARGIN * 100} points above the majority class`, async () => {
    const before = tf.memory().numTensors;
    const rep = await runRealFaces({
      ...REAL_FACES_DEFAULTS,
      ...REAL_FACES_QUICK,
      seeds: [SEED],
      data: DATA_DIR,
      out: dir,
    });
    const [run] = rep.runs;
    console.info(
      `real faces --quick, seed ${SEED} on ${tf.getBackend()}: PrivateTest ${(100 * run.test.accuracy).toFixed(1)} % ` +
        `(majority ${(100 * rep.majorityRate).toFixed(1)} %), hold-out ${(100 * run.holdout.accuracy).toFixed(1)} %, ` +
        `${run.trainSeconds.toFixed(0)} s training, ${run.cpuSeconds.toFixed(0)} CPU-s`,
    );
    expect(rep.runs).toHaveLength(1);
    expect(run.test.size).toBeGreaterThan(800); // a quarter of the 3,589 PrivateTest faces
    expect(run.test.accuracy).toBeGreaterThan(rep.majorityRate + MARGIN);
    expect(run.holdout.accuracy).toBeGreaterThan(rep.majorityRate);
    // Not a one-class predictor: at least 3 classes are predicted correctly somewhere.
    expect(run.test.confusion.filter((row, i) => row[i] > 0).length).toBeGreaterThanOrEqual(3);
    await expect(fs.stat(path.join(dir, 'report.json'))).resolves.toBeTruthy();
    expect(tf.memory().numTensors).toBe(before);
  });
});
