/**
 * `fer experiment rescore <dir>`: scores the runs of a finished `fer experiment real` folder again, without
 * training, under every ensemble rule and test-time augmentation, on exactly the faces the runs were scored on
 * (rebuilt from the folder's `splits.json` and `report.json` settings), beside face-api's net on the same faces.
 *
 * The saved model (`runs/<variant>-seed<k>/model`) is the evaluated one, after precise BN (folders written before
 * 2026-12-03 hold the trainer's, saved before it). Precise BN depends on the weights and the seeded batches only (the
 * running statistics are rebuilt from zero), so redoing it with the run's seed restores the evaluated model from
 * either, and the faithful vote must then match the run's reported accuracy: `reproduced` checks that, split by split.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Emotion } from 'fer-core';
import { FerInputError } from 'fer-core';
import { fileHandler, writeFileAtomic } from 'fer-core/node';
import { loadEsr } from 'fer-models-esr';
import { evaluatePeer, type PeerResult } from './faceapi-peer';
import {
  evaluationDatasets,
  preciseBn,
  realFacesSets,
  scoreRealFaces,
  TTA_MODES,
  type RealFacesReport,
  type RunResult,
  type ScoredSplit,
  type SplitScore,
  type Tta,
} from './real-faces';
import { splitDataset, type RealFacesSplits, type SplitItem } from './real-faces-data';

export interface RescoreOptions {
  /** The experiment folder (`fer experiment real --out`). */
  dir: string;
  /** The shared data folder (default: the one the report names). */
  data?: string;
  /** Test-time augmentations to score (default both). */
  tta?: Tta[];
  peer?: boolean;
  workers?: number;
}

export interface RescoredRun {
  variant: string;
  seed: number;
  /** Per test-time augmentation, per split. */
  scores: Partial<Record<Tta, Partial<Record<ScoredSplit, SplitScore>>>>;
  /**
   * Whether the faithful vote under the run's own TTA equals the reported accuracy on every split the report holds
   * (null when that TTA was not rescored); `mismatches` names the splits that differ.
   */
  reproduced: boolean | null;
  mismatches: string[];
}

export interface RescoreReport {
  dir: string;
  backend: string;
  /** The report's settings (what the faces and precise BN were rebuilt from). */
  settings: RealFacesReport['settings'];
  runs: RescoredRun[];
  peer?: PeerResult;
  seconds: number;
}

const SPLITS: readonly ScoredSplit[] = ['test', 'testFerPlus', 'ckplus', 'jaffe', 'holdout'];
const SPLIT_NAMES: Record<ScoredSplit, string> = {
  test: 'PrivateTest',
  testFerPlus: 'PrivateTest, FER+ labels',
  ckplus: 'CK+48 (zero-shot)',
  jaffe: 'JAFFE (zero-shot)',
  holdout: 'hold-out (selection)',
};

async function readJson<T>(file: string, what: string): Promise<T> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new FerInputError(`Expected ${what} at '${file}', but it cannot be read.`, {
      hint: 'Pass the --out folder of a `fer experiment real` run that finished at least one run.',
      cause: e,
    });
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new FerInputError(`Expected JSON in '${file}' (${what}), but it does not parse.`, { cause: e });
  }
}

/** Rescores every finished run of the experiment folder `o.dir`; writes nothing (see `writeRescore`). */
export async function rescoreRealFaces(
  o: RescoreOptions,
  hooks: { log?: (m: string) => void; backend?: string } = {},
): Promise<RescoreReport> {
  const t0 = Date.now();
  const log = hooks.log ?? (() => {});
  const dir = path.resolve(o.dir);
  const report = await readJson<RealFacesReport>(path.join(dir, 'report.json'), 'report.json of fer experiment real');
  if (!report.settings || !Array.isArray(report.runs))
    throw new FerInputError(`Expected a report.json written by fer experiment real in '${dir}', but it holds another.`);
  if (!report.runs.length)
    throw new FerInputError(`Expected at least one finished run in '${dir}', but report.json lists none yet.`);
  const splits = await readJson<RealFacesSplits>(path.join(dir, 'splits.json'), 'splits.json of fer experiment real');
  if (splits.version !== 2 || !Array.isArray(splits.test))
    throw new FerInputError(`Expected splits.json version 2 in '${dir}', but got version ${String(splits.version)}.`);
  const st = report.settings;
  const data = o.data ?? st.data;
  const missing = splits.test.find((it) => !existsSync(path.join(data, it.file)));
  if (missing)
    throw new FerInputError(
      `Expected the experiment's faces under '${path.resolve(data)}', but '${missing.file}' is not there.`,
      'Pass --data <the shared data folder the run used>.',
    );
  if (hooks.backend && st.backend && hooks.backend !== st.backend)
    log(`note: the runs were scored on '${st.backend}', this is '${hooks.backend}': expect tiny differences.`);
  const ttas = o.tta ?? [...TTA_MODES];
  const runTta: Tta = st.tta ?? 'none';
  const sets = realFacesSets(splits, { trainCap: st.trainCap ?? Infinity, testFraction: st.testFraction });
  const ds = (name: string, items: SplitItem[]) =>
    splitDataset(data, name, items, { imageSize: st.imageSize, workers: o.workers });
  const evalData = { ...evaluationDatasets(sets, ds), holdout: ds('fer2013-public-holdout', sets.holdout) };
  log(
    `rescoring ${report.runs.length} run(s) of ${dir}: PrivateTest ${sets.test.length} faces, ${st.imageSize} px, precise BN ${st.bnBatches} batches of ${st.batch}; TTA ${ttas.join(', ')}`,
  );

  let peer: PeerResult | undefined;
  if (o.peer !== false && existsSync(path.join(data, 'faceapi-expression'))) {
    log("peer: face-api.js's expression network on the same faces ...");
    peer = await evaluatePeer(
      data,
      { test: sets.test, ckplus: sets.ckplus, jaffe: sets.jaffe },
      new Map<string, Emotion>(splits.testFerPlus.map((it) => [it.file, it.label])),
    );
  }

  const runs: RescoredRun[] = [];
  for (const r of report.runs) {
    const modelDir = path.join(dir, 'runs', `${r.variant}-seed${r.seed}`, 'model');
    if (!existsSync(path.join(modelDir, 'model.json')))
      throw new FerInputError(
        `Expected the saved model of run '${r.variant}' seed ${r.seed} at '${modelDir}', but it is missing.`,
      );
    const model = await loadEsr(fileHandler(modelDir));
    try {
      await preciseBn(model, ds('fer2013-public-train-plain', sets.train), st, r.seed);
      const scores: RescoredRun['scores'] = {};
      for (const tta of ttas) {
        scores[tta] = await scoreRealFaces(model, evalData, sets.ferPlus, tta);
        const t = scores[tta]!.test!;
        log(
          `${r.variant} seed ${r.seed}, TTA ${tta}: PrivateTest vote ${pc(t.accuracy)}, prob. ties ${pc(t.rules?.voteProbTies.accuracy)}, soft ${pc(t.rules?.soft.accuracy)}`,
        );
      }
      const mismatches = mismatchesOf(r, scores[runTta]);
      runs.push({
        variant: r.variant,
        seed: r.seed,
        scores,
        reproduced: scores[runTta] ? mismatches.length === 0 : null,
        mismatches,
      });
    } finally {
      model.dispose();
    }
  }
  return { dir, backend: hooks.backend ?? '', settings: st, runs, peer, seconds: (Date.now() - t0) / 1000 };
}

/** Splits whose reported faithful vote accuracy (and size) the rescored one does not equal exactly. */
function mismatchesOf(r: RunResult, scored: Partial<Record<ScoredSplit, SplitScore>> | undefined): string[] {
  if (!scored) return [];
  return SPLITS.filter((k) => {
    const was = r[k];
    const now = scored[k];
    return was && (!now || now.size !== was.size || now.accuracy !== was.accuracy);
  }).map((k) => `${SPLIT_NAMES[k]} ${pc(scored[k]?.accuracy)} vs reported ${pc(r[k]?.accuracy)}`);
}

const pc = (x?: number) => (x === undefined ? '–' : `${(100 * x).toFixed(1)}%`);
const f1 = (x?: number) => (x === undefined ? '–' : (100 * x).toFixed(1));

/** The rescore as markdown: one row per run × TTA × split, every rule, the peer on the same faces. */
export function rescoreTable(rep: RescoreReport): string {
  const peerOf = (k: ScoredSplit) => (k === 'holdout' ? undefined : rep.peer?.[k]?.accuracy);
  const lines = [
    '| run | TTA | split | faces | vote (faithful) % | vote, prob. ties % | soft (mean prob.) % | tied votes % | branches % | face-api peer % |',
    '|' + ' --- |'.repeat(10),
  ];
  for (const r of rep.runs) {
    for (const [tta, scores] of Object.entries(r.scores) as [Tta, Partial<Record<ScoredSplit, SplitScore>>][]) {
      for (const k of SPLITS) {
        const s = scores[k];
        if (!s) continue;
        lines.push(
          `| \`${r.variant}\` seed ${r.seed} | ${tta} | ${SPLIT_NAMES[k]} | ${s.size} | ${f1(s.accuracy)} | ${f1(s.rules?.voteProbTies.accuracy)} | ${f1(s.rules?.soft.accuracy)} | ${f1(s.tieRate)} | ${s.branchAccuracy.map(f1).join(' / ')} | ${f1(peerOf(k))} |`,
        );
      }
    }
  }
  lines.push('');
  for (const r of rep.runs) {
    const verdict =
      r.reproduced === null
        ? "not checked (the run's own TTA was not rescored)"
        : r.reproduced
          ? 'yes, every reported split exactly'
          : `NO (${r.mismatches.join('; ')})`;
    lines.push(`- \`${r.variant}\` seed ${r.seed}: reproduces the reported faithful vote: ${verdict}.`);
    const best = bestOnPrivateTest(r);
    if (best) {
      const p = rep.peer?.test?.accuracy;
      const vs =
        p === undefined
          ? ''
          : `; face-api peer ${pc(p)} on the same ${rep.peer!.test!.size} faces: ${best.accuracy > p ? 'beaten' : 'not beaten'} (${best.accuracy >= p ? '+' : ''}${(100 * (best.accuracy - p)).toFixed(1)} points)`;
      lines.push(`  Best PrivateTest figure: ${best.rule}, TTA ${best.tta}: ${pc(best.accuracy)}${vs}.`);
    }
  }
  lines.push(
    '',
    "Rules: vote = plurality of branch argmaxes, ties to the lowest class (upstream ESR, faithful); vote, prob. ties = ties broken by the tied classes' summed probabilities; soft = argmax of the mean probability. TTA flip: each branch's probabilities averaged over the face and its mirror.",
  );
  return lines.join('\n');
}

/** The highest PrivateTest accuracy of a run over rules and TTAs (ties: the first in rule, then TTA order). */
export function bestOnPrivateTest(r: RescoredRun): { rule: string; tta: Tta; accuracy: number } | null {
  let best: { rule: string; tta: Tta; accuracy: number } | null = null;
  for (const [tta, scores] of Object.entries(r.scores) as [Tta, Partial<Record<ScoredSplit, SplitScore>>][]) {
    const t = scores.test;
    if (!t) continue;
    const cands: [string, number | undefined][] = [
      ['vote', t.accuracy],
      ['vote, prob. ties', t.rules?.voteProbTies.accuracy],
      ['soft', t.rules?.soft.accuracy],
    ];
    for (const [rule, a] of cands)
      if (a !== undefined && (!best || a > best.accuracy)) best = { rule, tta, accuracy: a };
  }
  return best;
}

/** Writes `rescore.json` and `rescore.md` into `outDir` (new files; the run's own files are left alone). */
export async function writeRescore(outDir: string, rep: RescoreReport): Promise<string[]> {
  await fs.mkdir(outDir, { recursive: true });
  const files = [path.join(outDir, 'rescore.json'), path.join(outDir, 'rescore.md')];
  await writeFileAtomic(files[0], JSON.stringify(rep, null, 1) + '\n');
  await writeFileAtomic(files[1], rescoreTable(rep) + '\n');
  return files;
}
