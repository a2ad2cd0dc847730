import { existsSync, readFileSync } from 'node:fs';
import { FerInputError } from 'fer-core';
import { writeFileAtomic } from 'fer-core/node';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { getBackend } from '@tensorflow/tfjs-core';
import type { DiversityMode } from '../../loss-types';
import {
  REAL_FACES_DEFAULTS,
  REAL_FACES_QUICK,
  markdownTable,
  runRealFaces,
  TTA_MODES,
  type RealFacesOptions,
  type Tta,
} from '../../experiments/real-faces';
import { rescoreRealFaces, rescoreTable, writeRescore } from '../../experiments/real-faces-rescore';
import { realFacesDataStatus } from '../../experiments/real-faces-data';
import { compareReports } from '../../experiments/real-faces-compare';
import type { Output } from '../output';

const num = (name: string, integer: boolean) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n)))
    throw new InvalidArgumentError(`${name} must be a non-negative ${integer ? 'integer' : 'number'}, got '${v}'.`);
  return n;
};
const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
const ttas = (v: string): Tta[] => {
  const xs = list(v);
  const bad = xs.find((x) => !TTA_MODES.includes(x as Tta));
  if (bad !== undefined || !xs.length)
    throw new InvalidArgumentError(`--tta takes ${TTA_MODES.join(' or ')} (comma-separated), got '${v}'.`);
  return xs as Tta[];
};

/** `fer experiment real`: the real-faces experiment (packages/fer-train/README.md, "Real faces"). */
export function experimentCommand(
  backend: (cmd: Command) => Promise<void>,
  outputOf: (cmd: Command) => Output,
): Command {
  const d = REAL_FACES_DEFAULTS;
  const cmd = new Command('experiment').description('reproducible experiments on real data');
  cmd
    .command('real')
    .description(
      'diversified ESR from the ESR-9 AffectNet base, trained on FER2013 PublicTest, tested on PrivateTest (FER2013 and FER+ labels) and zero-shot on CK+48 and JAFFE; variants none/reference/dpp over seeds; JSON + markdown + plots',
    )
    .option('--data <dir>', 'shared data folder', d.data)
    .option('--out <dir>', 'output folder (default runs/real-faces, or runs/real-faces-quick with --quick)')
    .option(
      '--quick',
      'stage 1 of the default run alone (one branch, one epoch over every training face), on a quarter of each test set',
    )
    .option(
      '--variants <list>',
      `diversity variants (default ${d.variants.join(',')}; "" with the peer on: only the peer)`,
      list,
    )
    .option('--seeds <list>', `seeds (default ${d.seeds.join(',')})`, (v) => list(v).map(num('--seeds', true)))
    .option('--image-size <n>', `input side (default ${d.imageSize}; ESR needs ≥ 54)`, num('--image-size', true))
    .option('--branches <n>', `final ensemble size (default ${d.branches})`, num('--branches', true))
    .option('--first-epochs <n>', `epochs of stage 1 (default ${d.firstEpochs})`, num('--first-epochs', true))
    .option('--later-epochs <n>', `epochs of each later stage (default ${d.laterEpochs})`, num('--later-epochs', true))
    .option('--batch <n>', `batch size (default ${d.batch})`, num('--batch', true))
    .option('--lr-scale <x>', `multiplies the esr_ferplus rates (default ${d.lrScale})`, num('--lr-scale', false))
    .option('--lr-step <n>', `StepLR period in epochs (default ${d.lrStep})`, num('--lr-step', true))
    .option('--lr-gamma <x>', `StepLR factor (default ${d.lrGamma})`, num('--lr-gamma', false))
    .option('--train-cap <n>', 'training faces per class at most (default: all)', num('--train-cap', true))
    .option(
      '--test-fraction <x>',
      `fraction of each test set evaluated (default ${d.testFraction})`,
      num('--test-fraction', false),
    )
    .option('--bn-batches <n>', `precise-BN batches at the end (default ${d.bnBatches})`, num('--bn-batches', true))
    .option('--no-pretrained', 'start the base from PyTorch-default init instead of the ESR-9 AffectNet base')
    .option('--no-peer', "skip face-api.js's expression network")
    .option('--workers <n>', 'image decoding worker threads', num('--workers', true))
    .option('--micro-batch <n>', 'micro-batch for gradient accumulation', num('--micro-batch', true))
    .option(
      '--tta <mode>',
      "test-time augmentation of every evaluation: none, or flip (each branch's probabilities averaged over the face and its mirror)",
      (v) => {
        const t = ttas(v);
        if (t.length !== 1) throw new InvalidArgumentError(`--tta takes one of ${TTA_MODES.join(', ')}, got '${v}'.`);
        return t[0];
      },
    )
    .action(async (opts, c: Command) => {
      const out = outputOf(c);
      const status = realFacesDataStatus(opts.data);
      if (!status.ok) {
        out.result(
          `skipped: the real-faces experiment needs fer2013-test/ and esr9-affectnet/weights/ under ${path.resolve(opts.data)} (missing: ${status.missing.join(', ')}). Pass --data <shared data folder>.`,
          { type: 'experiment-skipped', missing: status.missing },
        );
        return;
      }
      await backend(c);
      const { quick, ...given } = opts as Record<string, unknown>;
      const o: RealFacesOptions = {
        ...d,
        ...(quick ? REAL_FACES_QUICK : {}),
        ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
      } as RealFacesOptions;
      if (opts.peer === true && quick) o.peer = false;
      o.variants = o.variants as DiversityMode[];
      if (!existsSync(path.join(o.data, 'faceapi-expression'))) o.peer = false;
      const rep = await runRealFaces(o, {
        log: (m) => out.info(m),
        onEvent: out.trainEvents(),
        backend: getBackend(),
      });
      out.result(
        `\n=== real faces (${rep.seconds.toFixed(0)} s) ===\n${markdownTable(rep)}\nreport: ${path.join(path.resolve(o.out), 'report.{json,md}')}; plots: ${path.join(path.resolve(o.out), 'plots')}`,
        { type: 'experiment-real', summary: rep.summary, peer: rep.peer, majorityRate: rep.majorityRate },
      );
    });
  cmd
    .command('rescore')
    .description(
      "scores the finished runs of a `fer experiment real` folder again without training (precise BN redone with each run's seed, the same faces from its splits.json): every ensemble rule, with and without flip TTA, beside face-api.js on the same faces; writes rescore.{json,md}",
    )
    .argument('<dir>', 'the --out folder of fer experiment real (report.json, splits.json, runs/*/model)')
    .option('--data <dir>', "shared data folder (default: the report's)")
    .option('--tta <list>', `test-time augmentations to score (default ${TTA_MODES.join(',')})`, ttas)
    .option('--no-peer', "skip face-api.js's expression network")
    .option('--workers <n>', 'image decoding worker threads', num('--workers', true))
    .option('--out <dir>', 'where rescore.{json,md} go (default: <dir>)')
    .action(
      async (
        dir: string,
        opts: { data?: string; tta?: Tta[]; peer: boolean; workers?: number; out?: string },
        c: Command,
      ) => {
        const out = outputOf(c);
        await backend(c);
        const rep = await rescoreRealFaces(
          { dir, data: opts.data, tta: opts.tta, peer: opts.peer, workers: opts.workers },
          { log: (m) => out.info(m), backend: getBackend() },
        );
        const files = await writeRescore(path.resolve(opts.out ?? dir), rep);
        out.result(
          `\n=== rescore (${rep.seconds.toFixed(0)} s) ===\n${rescoreTable(rep)}\nwritten: ${files.join(', ')}`,
          {
            type: 'experiment-rescore',
            runs: rep.runs,
            peer: rep.peer,
          },
        );
      },
    );
  cmd
    .command('compare')
    .description(
      "our real-faces runs beside bench/real_torch.py's: both tables, and ours − PyTorch per variant over the seeds both ran",
    )
    .argument('<ours>', 'report.json written by `fer experiment real` (several: comma-separated)')
    .argument('<torch>', 'report.json written by bench/real_torch.py (several: comma-separated)')
    .option('--out <file>', 'also write the markdown to this file')
    .action(async (oursFiles: string, torchFiles: string, opts: { out?: string }, c: Command) => {
      const out = outputOf(c);
      const cmp = compareReports(
        list(oursFiles).map((f) => readReport(f, 'fer experiment real')),
        list(torchFiles).map((f) => readReport(f, 'bench/real_torch.py')),
      );
      if (opts.out) await writeFileAtomic(opts.out, cmp.markdown + '\n');
      out.result(cmp.markdown, { type: 'experiment-compare', variants: cmp.variants });
    });
  return cmd;
}

/** A report.json, or one line saying which file is unreadable and what writes it. */
function readReport(file: string, writer: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FerInputError(`Expected a report.json written by ${writer} at '${file}', but it cannot be read.`, {
      hint: `Run ${writer} first, or pass its report.json.`,
      cause: e,
    });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FerInputError(`Expected JSON in '${file}' (written by ${writer}), but it does not parse.`, { cause: e });
  }
}
