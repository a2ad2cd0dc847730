/**
 * Learning on real faces: `fer experiment real --quick` (stage 1 of the measured protocol: one branch from the ESR-9
 * AffectNet base, one epoch over the 3,228 FER2013 PublicTest training faces at the reference rates × 0.5) must score
 * the PrivateTest quarter clearly above the majority-class rate, in inference mode after precise BN. A regression
 * check of the whole pipeline, not proof of robust learning: one epoch is fragile (packages/fer-train/README.md, "Real
 * faces": some seeds stay at the majority rate on both sides), and any change in the last bits of a kernel or of the
 * order of a gradient sum sends it onto another trajectory (the CBAM max-gradient fix moved the previous setting's
 * seed 2, at lr × 1, from 34.0 % to 25.4 %). It runs seed 1 on the native backend, where runs are deterministic and
 * it measured 33.8 % (majority 24.5 %; hold-out 35.7 %; seeds 2 and 3: 39.0 and 28.1 %), and skips, saying why,
 * when fer-native's addon is not built.
 */
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { loadAddon } from 'fer-native';
import { DATA_DIR, REPO_ROOT, describeIfExists } from 'fer-test-utils';
import type { RealFacesReport } from '../src/experiments/real-faces';

jest.setTimeout(30 * 60_000);

/** Seed 1's measured margin over the majority rate (33.8 % against 24.5 %, 2026-12-03, after the seed fix). */
const MEASURED_MARGIN = 0.093;
/** Asserted: half of it (a different CPU instruction set changes oneDNN's rounding, hence the trajectory). */
const MARGIN = MEASURED_MARGIN / 2;
const SEED = 1;

/** The `fer` CLI as users run it (a child process, so it re-runs itself under tcmalloc: ~3× less CPU than jest's). */
function fer(args: string[]): Promise<{ code: number | null; output: string }> {
  const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
  const main = path.join(REPO_ROOT, 'packages', 'fer-train', 'src', 'cli', 'main.ts');
  return new Promise((resolve, reject) => {
    const child = spawn(tsx, [main, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

const { addon, reason } = loadAddon();
if (!addon)
  console.info(`skipped: ESR learns real faces needs the native backend (its margin was measured there): ${reason}`);
const describeNative = addon
  ? describeIfExists
  : (dir: string, name: string, fn: () => void) => describe.skip(name, fn);

describeNative(
  path.join(DATA_DIR, 'fer2013-test'),
  'ESR learns real faces (fer experiment real --quick, native)',
  () => {
    let dir = '';
    beforeAll(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-real-quick-'));
    });
    afterAll(async () => {
      await fs.rm(dir, { recursive: true, force: true });
    });

    it(`scores PrivateTest more than ${MARGIN * 100} points above the majority class`, async () => {
      const args = ['experiment', 'real', '--quick', '--seeds', String(SEED), '--backend', 'native'];
      const { code, output } = await fer([...args, '--data', DATA_DIR, '--out', dir]);
      expect({ code, tail: output.slice(-2000) }).toEqual({ code: 0, tail: expect.any(String) });
      const rep = JSON.parse(await fs.readFile(path.join(dir, 'report.json'), 'utf8')) as RealFacesReport;
      const [run] = rep.runs;
      const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
      console.info(
        `real faces --quick, seed ${SEED} (${rep.settings.backend}): PrivateTest ${pct(run.test.accuracy)} ` +
          `(majority ${pct(rep.majorityRate)}), hold-out ${pct(run.holdout.accuracy)}, ` +
          `${run.trainSeconds.toFixed(0)} s training, ${run.cpuSeconds.toFixed(0)} CPU-s`,
      );
      expect(rep.settings.backend).toBe('native');
      expect(rep.runs).toHaveLength(1);
      expect(run.test.size).toBeGreaterThan(800); // a quarter of the 3,589 PrivateTest faces
      expect(run.test.accuracy).toBeGreaterThan(rep.majorityRate + MARGIN);
      expect(run.holdout.accuracy).toBeGreaterThan(rep.majorityRate);
      // Not a one-class predictor: at least 3 classes are predicted correctly somewhere.
      expect(run.test.confusion.filter((row, i) => row[i] > 0).length).toBeGreaterThanOrEqual(3);
    });
  },
);
