/**
 * `fer experiment rescore` on a miniature experiment folder over real FER2013 faces (../shared/data; skipped, saying
 * so, when absent): a 2-branch ESR saved before precise BN, as the trainer saves it (in one case after it, as the
 * experiment saves it since 2026-12-03), and scored in this process the way `fer experiment real` scores it (precise
 * BN with the run's seed, then inference). The rescore, from the saved files alone, must reproduce those figures
 * exactly, say so, flag a report that does not match, and leak nothing.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { BASIC7_LABELS } from 'fer-core';
import { loadEsr } from 'fer-models-esr';
import { fileHandler } from 'fer-core/node';
import { listClassFolders } from 'fer-datasets/internal';
import { DATA_DIR, describeIfExists } from 'fer-test-utils';
import {
  REAL_FACES_DEFAULTS,
  evaluationDatasets,
  preciseBn,
  pretrainedEsr,
  readUpstreamBase,
  realFacesSets,
  scoreRealFaces,
  type RealFacesReport,
  type RunResult,
  type SplitScore,
} from '../src/experiments/real-faces';
import { splitDataset, type RealFacesSplits, type SplitItem } from '../src/experiments/real-faces-data';
import { rescoreRealFaces, rescoreTable } from '../src/experiments/real-faces-rescore';

jest.setTimeout(10 * 60_000);

describeIfExists(path.join(DATA_DIR, 'fer2013-test'), 'fer experiment rescore (../shared/data)', () => {
  let dir: string;
  let report: RealFacesReport;
  /** The saved model scored without precise BN: what a rescore that forgot it would report. */
  let unrecalibrated: SplitScore;
  let splits: RealFacesSplits;
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-rescore-'));
    // A few faces per class: PublicTest for training and hold-out, PrivateTest for the test.
    const { records } = await listClassFolders(path.join(DATA_DIR, 'fer2013-test'));
    const take = (prefix: string, from: number, n: number): SplitItem[] =>
      BASIC7_LABELS.flatMap((e) =>
        records
          .filter((r) => r.emotion === e && path.basename(r.path!).startsWith(prefix))
          .slice(from, from + n)
          .map((r) => ({ file: path.relative(DATA_DIR, r.path!), label: e })),
      );
    splits = {
      version: 2,
      labels: BASIC7_LABELS,
      holdoutFraction: 0.1,
      splitSeed: 0,
      train: take('PublicTest_', 0, 3),
      holdout: take('PublicTest_', 3, 1),
      test: take('PrivateTest_', 0, 2),
      testFerPlus: [],
      ferPlusMatch: null,
      ckplus: [],
      jaffe: [],
      counts: {},
    };
    await fs.writeFile(path.join(dir, 'splits.json'), JSON.stringify(splits));
    const settings = {
      ...REAL_FACES_DEFAULTS,
      data: DATA_DIR,
      out: dir,
      variants: ['dpp' as const],
      seeds: [4],
      batch: 7,
      bnBatches: 2,
      testFraction: 1,
      peer: false,
      trainCap: null,
      backend: tf.getBackend(),
    };
    // The run: saved before precise BN (as the trainer saves it), then scored as the experiment scores it.
    const { esr } = pretrainedEsr(await readUpstreamBase(DATA_DIR), settings.imageSize, 4);
    esr.addBranch();
    try {
      await esr.save(fileHandler(path.join(dir, 'runs', 'dpp-seed4', 'model')));
      const sets = realFacesSets(splits, { trainCap: Infinity, testFraction: 1 });
      const ds = (name: string, items: SplitItem[]) => splitDataset(DATA_DIR, name, items, { imageSize: 64 });
      const data = { ...evaluationDatasets(sets, ds), holdout: ds('holdout', sets.holdout) };
      unrecalibrated = (await scoreRealFaces(esr, data, null)).test!;
      await preciseBn(esr, ds('train-plain', sets.train), settings, 4);
      const scores = await scoreRealFaces(esr, data, null);
      const run = { variant: 'dpp', seed: 4, test: scores.test, holdout: scores.holdout } as RunResult;
      report = { settings, runs: [run] } as unknown as RealFacesReport;
      await fs.writeFile(path.join(dir, 'report.json'), JSON.stringify(report));
    } finally {
      esr.dispose();
    }
  });
  afterAll(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('reproduces the reported faithful vote exactly from the saved model, scores flip TTA, leaks nothing', async () => {
    const before = tf.memory().numTensors;
    const rep = await rescoreRealFaces({ dir, peer: false }, { backend: tf.getBackend() });
    expect(tf.memory().numTensors).toBe(before);
    const [r] = rep.runs;
    expect(r.reproduced).toBe(true);
    expect(r.mismatches).toEqual([]);
    expect(r.scores.none!.test!.confusion).toEqual(report.runs[0].test.confusion);
    // Not a trivial match: without precise BN the same model scores these faces differently.
    expect(unrecalibrated.confusion).not.toEqual(report.runs[0].test.confusion);
    expect(r.scores.none!.holdout!.branchAccuracy).toEqual(report.runs[0].holdout.branchAccuracy);
    expect(r.scores.flip!.test!.size).toBe(14);
    expect(r.scores.flip!.test!.rules).toBeDefined();
    const md = rescoreTable(rep);
    expect(md).toContain('| `dpp` seed 4 | flip | PrivateTest | 14 |');
    expect(md).toContain('reproduces the reported faithful vote: yes, every reported split exactly');
  });

  it('reproduces it as well from a model saved after precise BN, as the experiment saves it now', async () => {
    const after = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-rescore-after-'));
    try {
      await fs.cp(dir, after, { recursive: true });
      const model = path.join(after, 'runs', 'dpp-seed4', 'model');
      const esr = await loadEsr(fileHandler(model));
      try {
        const sets = realFacesSets(splits, { trainCap: Infinity, testFraction: 1 });
        const ds = (name: string, items: SplitItem[]) => splitDataset(DATA_DIR, name, items, { imageSize: 64 });
        await preciseBn(esr, ds('train-plain', sets.train), { bnBatches: 2, batch: 7 }, 4);
        await fs.rm(model, { recursive: true });
        await esr.save(fileHandler(model));
      } finally {
        esr.dispose();
      }
      // Precise BN rebuilds the statistics from zero, so the rescore's second pass gives the same model.
      const rep = await rescoreRealFaces({ dir: after, peer: false, tta: ['none'] }, { backend: tf.getBackend() });
      expect(rep.runs[0].reproduced).toBe(true);
      expect(rep.runs[0].scores.none!.test!.confusion).toEqual(report.runs[0].test.confusion);
    } finally {
      await fs.rm(after, { recursive: true, force: true });
    }
  });

  it('says which split does not match a report it cannot reproduce', async () => {
    const bad = structuredClone(report);
    bad.runs[0].holdout.accuracy += 0.5;
    const other = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-rescore-bad-'));
    try {
      await fs.cp(dir, other, { recursive: true });
      await fs.writeFile(path.join(other, 'report.json'), JSON.stringify(bad));
      const rep = await rescoreRealFaces({ dir: other, peer: false, tta: ['none'] });
      expect(rep.runs[0].reproduced).toBe(false);
      expect(rep.runs[0].mismatches).toEqual([expect.stringMatching(/^hold-out \(selection\) .* vs reported /)]);
      expect(rescoreTable(rep)).toContain('reproduces the reported faithful vote: NO (hold-out');
    } finally {
      await fs.rm(other, { recursive: true, force: true });
    }
  });

  it('refuses, in one line, a folder without report, or a run without its saved model', async () => {
    const empty = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-rescore-empty-'));
    try {
      await expect(rescoreRealFaces({ dir: empty })).rejects.toThrow(
        /^Expected report\.json .* cannot be read\. Pass the --out folder/,
      );
      await fs.cp(path.join(dir, 'splits.json'), path.join(empty, 'splits.json'));
      await fs.cp(path.join(dir, 'report.json'), path.join(empty, 'report.json'));
      await expect(rescoreRealFaces({ dir: empty, peer: false })).rejects.toThrow(
        /^Expected the saved model of run 'dpp' seed 4 at '.*model', but it is missing\.$/,
      );
    } finally {
      await fs.rm(empty, { recursive: true, force: true });
    }
  });
});
