#!/usr/bin/env node
/**
 * The `fer` command line: train, evaluate, predict, convert, preprocess, the demo and the real-faces experiment.
 * Run from the repository with `pnpm fer <command>` (or `pnpm demo`).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { initBackend, type BackendName } from 'fer-backend';
import { FER_ERROR_CODES, isFerError } from 'fer-core';
import { Output, type OutputMode } from './output';
import { runTrain } from './commands/train';
import { runEval } from './commands/eval';
import { runPredict } from './commands/predict';
import { runConvert } from './commands/convert';
import { runPreprocessAffectNet } from './commands/preprocess';
import { runDemo, DEMO_DEFAULTS } from './commands/demo';
import { experimentCommand } from './commands/experiment';
import { allocatorNote, rerunUnderTcmalloc, shouldUseTcmalloc } from './allocator';

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a non-negative integer, got '${v}'.`);
    return n;
  };
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0)
      throw new InvalidArgumentError(`${name} must be a positive integer, got '${v}'.`);
    return n;
  };
}

/** A finite number in [min, max] (`Number('NaN')` and `Number('')` would slip through a plain `Number`). */
export function finiteNumber(name: string, min = -Infinity, max = Infinity, exclusiveMin = false) {
  return (v: string): number => {
    const n = v.trim() === '' ? NaN : Number(v);
    if (!Number.isFinite(n) || n < min || n > max || (exclusiveMin && n === min))
      throw new InvalidArgumentError(
        `${name} must be a number ${exclusiveMin ? 'above' : 'from'} ${min}${max < Infinity ? ` to ${max}` : ''}, got '${v}'.`,
      );
    return n;
  };
}

function intList(v: string): number[] {
  const xs = v.split(',').map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x <= 0))
    throw new InvalidArgumentError(`Expected comma-separated positive integers, got '${v}'.`);
  return xs;
}

interface GlobalOpts {
  backend?: string;
  quiet?: boolean;
  json?: boolean;
}

function outputOf(cmd: Command): Output {
  const g = cmd.optsWithGlobals() as GlobalOpts;
  const mode: OutputMode = g.json ? 'json' : g.quiet ? 'quiet' : 'pretty';
  return new Output(mode);
}

async function backend(cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals() as GlobalOpts;
  const info = await initBackend({
    backend: (g.backend as BackendName | 'auto' | undefined) ?? undefined,
    quiet: true,
  });
  const native = info.skipped.find((s) => s.name === 'native');
  if (native) outputOf(cmd).info(`native kernels unavailable: ${native.reason}`);
  const malloc = info.name === 'native' ? `; ${allocatorNote()}` : '';
  outputOf(cmd).info(`backend: ${info.name} (${info.source}); kernels: ${info.kernelPack}${malloc}`);
  outputOf(cmd).json({ type: 'backend', name: info.name, source: info.source, kernelPack: info.kernelPack });
}

export function buildProgram(): Command {
  const program = new Command('fer')
    .description('Facial expression recognition with diversified ESR and MA-Net on TensorFlow.js')
    .option(
      '--backend <name>',
      'tfjs backend: auto, tfjs-node-gpu, tfjs-node, native, wasm, cpu (default: FER_BACKEND or auto)',
    )
    .option('-q, --quiet', 'print results only, no progress')
    .option('--json', 'print JSON lines (events and results) on stdout')
    .option('--verbose', 'on an error, also print its stack trace and causes');

  const train = program.command('train').description('train or fine-tune a model with a reference schedule');
  for (const model of ['esr', 'manet'] as const) {
    train
      .command(model)
      .description(
        model === 'esr'
          ? 'ESR: grow an ensemble (esr_affectnet) or fine-tune a pretrained one (--pretrained: esr_ferplus / esr_rafdb)'
          : 'MA-Net: manet_affectnet / manet_ferplus / manet_rafdb schedules',
      )
      .addOption(
        new Option('--dataset <name>', 'dataset')
          .choices(['affectnet', 'ferplus', 'rafdb', 'folder', 'synthetic'])
          .default('synthetic'),
      )
      .option(
        '--data <path>',
        'dataset root (AffectNet: pre-processed root; FER+: folder with Images/ and Labels/; RAF-DB: basic/; folder: class folders)',
      )
      .option('--val-data <path>', 'folder dataset: validation class folders')
      .option('--test-data <path>', 'folder dataset: test class folders')
      .option('--out <dir>', 'output folder (checkpoints, history, plots, model)')
      .addOption(
        new Option('--diversity <mode>', "diversity loss: 'reference' (the paper's code), 'dpp' (corrected), 'none'")
          .choices(['reference', 'dpp', 'none'])
          .default('dpp'),
      )
      .option(
        '--faithful-channel',
        "ESR fine-tuning: compute the 'channel' term on the spatial maps as esr_ferplus/esr_rafdb do (docs/method.md#defect-5)",
      )
      .addOption(
        new Option(
          '--diversity-scope <scope>',
          'ESR fine-tuning: diversity over all branches (reference) or trained ones',
        )
          .choices(['reference', 'trained'])
          .default('reference'),
      )
      .option(
        '--pretrained <path>',
        model === 'esr'
          ? 'AffectNet-trained ensemble (fer model folder or reference checkpoint folder) to fine-tune'
          : 'MS-Celeb-1M checkpoint (Pretrained_on_MSCeleb.pth.tar)',
      )
      .option('--branches <n>', 'ESR ensemble size (reference 9)', int('--branches'))
      .option('--epochs <n>', 'epochs of the first stage (ESR 50 / fine-tune 100; MA-Net 20 or 100)', int('--epochs'))
      .option('--later-epochs <n>', 'ESR: epochs of each later stage (20 / 60)', int('--later-epochs'))
      .option('--batch <n>', 'batch size (reference: ESR 32, MA-Net 128; FER+ MA-Net 32)', int('--batch'))
      .option(
        '--micro-batch <n>',
        'largest micro-batch per forward/backward (gradient accumulation up to --batch)',
        int('--micro-batch'),
      )
      .option('--cap <n>', 'per-class cap of the training split (reference 5000 for AffectNet and FER+)', int('--cap'))
      .option('--image-size <n>', 'input side (ESR 96, MA-Net 224)', int('--image-size'))
      .option('--synthetic-size <train,val,test>', 'synthetic dataset sizes', intList)
      .option('--workers <n>', 'image decoding worker threads', int('--workers'))
      .option(
        '--compute-workers <n>',
        'worker threads computing each step data-parallel, each with its own backend (2 uses both cores of a 2-core machine; default 1)',
        int('--compute-workers'),
      )
      .option('--seed <n>', 'seed for initialisation, shuffling and augmentation', int('--seed'), 0)
      .option(
        '--resume',
        'continue the run in --out from its last checkpoint (refused if an option that decides the result changed)',
      )
      .option('--overwrite', 'replace the run already in --out (without it, a folder holding a run is refused)')
      .option(
        '--max-steps <n>',
        'stop after n ≥ 1 optimizer steps (checkpointed; continue with --resume; 0 is refused)',
        positiveInt('--max-steps'),
      )
      .option('--checkpoint-every <n>', 'also checkpoint every n steps within an epoch', int('--checkpoint-every'))
      .option('--no-plots', 'do not write SVG/PNG plots')
      .option(
        '--bn-batches <n>',
        "short runs: select the model with batch statistics, then recompute every BN's running statistics over n training batches before the final evaluation and the saved model",
        int('--bn-batches'),
      )
      .action(async (opts, cmd: Command) => {
        await backend(cmd);
        await runTrain(model, opts, outputOf(cmd));
      });
  }

  program
    .command('eval')
    .description('evaluate a saved model: per-branch and ensemble accuracy, per-class and macro-F1, confusion matrix')
    .requiredOption('--model <dir>', 'model folder (written by fer train, or a reference ESR checkpoint folder)')
    .addOption(
      new Option('--dataset <name>', 'dataset')
        .choices(['affectnet', 'ferplus', 'rafdb', 'folder', 'synthetic'])
        .default('folder'),
    )
    .option('--data <path>', 'dataset root')
    .option('--split <name>', 'split (FER+: train, valid, test; RAF-DB: train, test)')
    .option('--image-size <n>', "input side (default: the model's)", int('--image-size'))
    .option('--batch <n>', 'batch size', int('--batch'), 32)
    .option('--out <dir>', 'write the confusion matrix (SVG, PNG) here')
    .option('--workers <n>', 'image decoding worker threads', int('--workers'))
    .option('--seed <n>', 'synthetic dataset seed', int('--seed'), 0)
    .option('--cap <n>', 'folder: at most n images per class (seeded subset)', int('--cap'))
    .option(
      '--synthetic-size <train,val,test>',
      'synthetic: the sizes given to fer train (the test split is evaluated)',
      intList,
    )
    .action(async (opts, cmd: Command) => {
      await backend(cmd);
      await runEval(opts, outputOf(cmd));
    });

  program
    .command('predict')
    .description("find the faces in photos and print one prediction per face, with each branch's vote")
    .argument('<images...>', 'image files (JPEG, PNG, ...)')
    .option('--model <dir>', 'model folder', 'runs/demo/model')
    .option('--no-detect', 'the images are already cropped faces')
    .option('--min-score <x>', 'minimum face detection score (0 to 1)', finiteNumber('--min-score', 0, 1), 0.3)
    .action(async (images: string[], opts, cmd: Command) => {
      await backend(cmd);
      await runPredict(images, opts, outputOf(cmd));
    });

  program
    .command('convert')
    .description('convert between PyTorch checkpoints and tfjs model folders')
    .argument('<input>', 'reference ESR checkpoint folder, fer model folder, or MA-Net .pth/.pth.tar/.safetensors')
    .argument('<output>', 'output folder or file')
    .addOption(
      new Option('--to <format>', 'output format when the input is a tfjs folder').choices(['torch', 'safetensors']),
    )
    .option('--num-classes <n>', 'MA-Net: classes of the fresh heads', int('--num-classes'))
    .action(async (input: string, output: string, opts, cmd: Command) => {
      await backend(cmd);
      await runConvert(input, output, opts, outputOf(cmd));
    });

  program
    .command('preprocess')
    .description('prepare a dataset the way the reference does')
    .command('affectnet')
    .description('crop and resize AffectNet faces into <out>/<set>/<id // 500>/<id>s<expr>s<val>s<aro>.jpg')
    .requiredOption('--root <dir>', 'raw AffectNet root (Manually_Annotated_Images/, Manually_Annotated_file_lists/)')
    .requiredOption('--out <dir>', 'destination root')
    .addOption(
      new Option('--set <name>', 'annotation set').choices(['training', 'validation', 'automatic']).default('training'),
    )
    .option('--image-size <n>', 'output side (96 for ESR, 224 for MA-Net)', int('--image-size'), 96)
    .option('--faithful-box', "reproduce the reference's swapped crop axes (docs/method.md#defect-20)")
    .action(async (opts, cmd: Command) => {
      await runPreprocessAffectNet(opts, outputOf(cmd));
    });

  program
    .command('demo')
    .description('train a diversified ESR on synthetic faces in a few minutes and report accuracy and branch diversity')
    .option('--out <dir>', 'output folder', DEMO_DEFAULTS.out)
    .option(
      '--image-size <n>',
      'input side (ESR needs ≥ 54; the reference uses 96)',
      int('--image-size'),
      DEMO_DEFAULTS.imageSize,
    )
    .option('--branches <n>', 'final ensemble size', int('--branches'), DEMO_DEFAULTS.branches)
    .option('--train-size <n>', 'synthetic training faces', int('--train-size'), DEMO_DEFAULTS.trainSize)
    .option('--val-size <n>', 'synthetic validation faces', int('--val-size'), DEMO_DEFAULTS.valSize)
    .option('--test-size <n>', 'synthetic test faces', int('--test-size'), DEMO_DEFAULTS.testSize)
    .option('--first-epochs <n>', 'epochs of the first stage', int('--first-epochs'), DEMO_DEFAULTS.firstEpochs)
    .option('--later-epochs <n>', 'epochs of each later stage', int('--later-epochs'), DEMO_DEFAULTS.laterEpochs)
    .option('--batch <n>', 'batch size', int('--batch'), DEMO_DEFAULTS.batch)
    .option('--seed <n>', 'seed', int('--seed'), DEMO_DEFAULTS.seed)
    .option('--no-compare', "skip the 'none' comparison")
    .option('--augment', 'ESR training augmentation on the synthetic faces')
    .option(
      '--lr-scale <x>',
      'multiply every learning rate of the schedule',
      finiteNumber('--lr-scale', 0, Infinity, true),
      DEMO_DEFAULTS.lrScale,
    )
    .option(
      '--bn-batches <n>',
      'training batches to recompute the BN running statistics over before the final evaluation (0: evaluate with batch statistics)',
      int('--bn-batches'),
      DEMO_DEFAULTS.bnBatches,
    )
    .option('--workers <n>', 'image decoding worker threads', int('--workers'))
    .action(async (opts, cmd: Command) => {
      await backend(cmd);
      await runDemo({ ...DEMO_DEFAULTS, ...opts }, outputOf(cmd));
    });
  program.addCommand(experimentCommand(backend, outputOf));
  return program;
}

/**
 * Exit codes: 0 success, 1 unexpected failure (a bug: stack printed), 2 bad usage or a known error, 3 non-finite loss.
 */
export const EXIT = { ok: 0, unexpected: 1, known: 2, nonFinite: 3 } as const;

/** Usage errors say which command's help to read; commander errors carry no command, so each command tags its own. */
function tagUsageErrors(cmd: Command, path: string): void {
  cmd.exitOverride((err) => {
    throw Object.assign(err, { helpCommand: path });
  });
  cmd.configureOutput({ outputError: () => {} });
  for (const sub of cmd.commands) tagUsageErrors(sub, `${path} ${sub.name()}`);
}

/** Node's own I/O errors (ENOENT, EACCES, ...) are known too: their message names the path and the problem. */
function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return e instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code) && 'syscall' in e;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** The stack of `e` and of each `cause` below it. */
function stackWithCauses(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e, depth = 0; c !== undefined && depth < 8; c = (c as Error).cause, depth++)
    parts.push(`${depth === 0 ? '' : 'caused by: '}${c instanceof Error ? (c.stack ?? c.message) : String(c)}`);
  return parts.join('\n');
}

/**
 * Reports a failure the way the CLI does and returns the exit code: a known error (fer error, usage error, Node I/O
 * error) as one line `error: <what went wrong and how to fix it>`; anything else with its stack. `verbose` adds the
 * stack and the `cause` chain to known errors.
 */
export function reportError(e: unknown, write: (s: string) => void, verbose = false): number {
  if (e instanceof CommanderError) {
    // --help and --version end this way too, with their own exit code and output already written.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
      return e.exitCode;
    const cmd = (e as CommanderError & { helpCommand?: string }).helpCommand ?? 'fer';
    write(`${oneLine(e.message).replace(/\.?$/, '.')} See '${cmd} --help'.\n`);
    return EXIT.known;
  }
  if (isFerError(e) || isSystemError(e)) {
    const code = isFerError(e) ? ` [${e.code}]` : '';
    write(`error: ${oneLine(e.message)}${code}\n`);
    if (verbose) write(`${stackWithCauses(e)}\n`);
    // Training that blew up (non-finite or diverged) exits 3: the options are valid, the numbers were not.
    const numeric: string[] = [FER_ERROR_CODES.nonFiniteLoss, FER_ERROR_CODES.diverged];
    return isFerError(e) && numeric.includes(e.code) ? EXIT.nonFinite : EXIT.known;
  }
  write(`${stackWithCauses(e)}\n`);
  return EXIT.unexpected;
}

/** Runs the CLI on `argv` (node, script, args...) and returns the exit code; errors are reported on `stderr`. */
export async function runCli(argv: string[], stderr: (s: string) => void = (s) => process.stderr.write(s)) {
  const program = buildProgram();
  tagUsageErrors(program, 'fer');
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (e) {
    return reportError(e, stderr, argv.includes('--verbose'));
  }
}

export async function main(argv = process.argv): Promise<void> {
  // The native backend is much faster under tcmalloc (allocator.ts): run this command again under it.
  const code = shouldUseTcmalloc(argv.slice(2)) ? await rerunUnderTcmalloc(argv) : await runCli(argv);
  // Decoding workers and the wasm runtime can keep the event loop alive; the work is done.
  process.exit(code);
}

if (typeof require !== 'undefined' && require.main === module) void main();
