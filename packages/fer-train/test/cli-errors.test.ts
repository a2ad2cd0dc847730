/**
 * Every known error reaches a `fer` user as one line (`error: <what, how to fix> [FER_…]`) and a non-zero exit code;
 * the stack and the `cause` chain only with --verbose; usage mistakes as one line that points at the command's help.
 * Errors a CLI invocation can trigger cheaply go through `runCli`; the rest through `reportError`, with instances
 * made by the real failing call where one exists.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { BackendUnavailableError, BackendInputError } from 'fer-backend';
import { FER_ERROR_CODES, FerError, FerInputError, isFerError } from 'fer-core';
import { decodeImage, ImageDecodeError } from 'fer-datasets';
import { diversityLoss, DiversityInputError } from 'fer-diversity-loss';
import { WorkerTaskError } from 'fer-parallel';
import { extractStateDict, SafetensorsError, StateDictError, TorchFormatError, UnsafePickleError } from 'fer-torch';
import { EXIT, reportError, runCli } from '../src/cli/main';
import { NonFiniteLossError } from '../src/step';
import { DivergenceError } from '../src/guards';
import { RunFolderError } from '../src/io/run-folder';

/** pickle.dumps(Evil()) (protocol 2) where Evil.__reduce__ is (os.system, ('touch /tmp/fer-torch-pwned',)). */
const REDUCE_PAYLOAD =
  '800263706f7369780a73797374656d0a7100581a000000746f756368202f746d702f6665722d746f7263682d70776e656471018571025271032e';

async function run(args: string[]): Promise<{ code: number; lines: string[] }> {
  let err = '';
  const code = await runCli(['node', 'fer', '-q', ...args], (s) => {
    err += s;
  });
  return { code, lines: err.split('\n').filter((l) => l !== '') };
}

/** `fer -q --backend cpu <args>`: what stderr got, line by line, and the exit code. */
const cli = (...args: string[]) => run(['--backend', 'cpu', ...args]);

function report(e: unknown, verbose = false): { code: number; lines: string[] } {
  let err = '';
  const code = reportError(e, (s) => (err += s), verbose);
  return { code, lines: err.split('\n').filter((l) => l !== '') };
}

describe('fer CLI errors', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-cli-errors-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('an unknown option: one line naming it and the help to read, exit 2', async () => {
    const { code, lines } = await cli('--bogus');
    expect(code).toBe(EXIT.known);
    expect(lines).toEqual(["error: unknown option '--bogus'. See 'fer --help'."]);
  });

  it("an invalid option value of a subcommand: one line pointing at that subcommand's help", async () => {
    const { code, lines } = await cli('train', 'esr', '--epochs', 'x');
    expect(code).toBe(EXIT.known);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: option '--epochs <n>' argument 'x' is invalid\..*See 'fer train esr --help'\.$/);
  });

  it('an unknown backend name: FER_INPUT in one line', async () => {
    const { code, lines } = await run(['--backend', 'nope', 'convert', 'a', 'b']);
    expect(code).toBe(EXIT.known);
    expect(lines).toEqual([
      "error: Unknown backend 'nope'. Valid: tfjs-node-gpu, tfjs-node, native, wasm, cpu, webgpu, webgl, auto. [FER_INPUT]",
    ]);
  });

  it('a missing input to convert: FER_INPUT in one line', async () => {
    const { code, lines } = await cli('convert', path.join(dir, 'missing'), path.join(dir, 'out'));
    expect(code).toBe(EXIT.known);
    expect(lines).toEqual([`error: Nothing at ${path.join(dir, 'missing')}. [FER_INPUT]`]);
  });

  it('experiment compare with a missing or non-JSON report: FER_INPUT in one line naming the file and its writer', async () => {
    const missing = path.join(dir, 'no-report.json');
    const torn = path.join(dir, 'torn-report.json');
    await fs.writeFile(torn, '{"settings": {');
    let r = await cli('experiment', 'compare', missing, torn);
    expect(r.code).toBe(EXIT.known);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatch(
      new RegExp(
        `^error: Expected a report\\.json written by fer experiment real at '${missing}', but it cannot be read\\..*\\[FER_INPUT\\]$`,
      ),
    );
    r = await cli('experiment', 'compare', torn, missing);
    expect(r.lines).toEqual([
      `error: Expected JSON in '${torn}' (written by fer experiment real), but it does not parse. [FER_INPUT]`,
    ]);
  });

  it('a file that is no checkpoint: FER_TORCH_FORMAT in one line', async () => {
    const file = path.join(dir, 'garbage.pth');
    await fs.writeFile(file, 'garbage');
    const { code, lines } = await cli('convert', file, path.join(dir, 'out'));
    expect(code).toBe(EXIT.known);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: .*garbage\.pth: not a PyTorch checkpoint: .* \[FER_TORCH_FORMAT\]$/);
  });

  it('a malicious pickle: FER_UNSAFE_PICKLE in one line, nothing executed', async () => {
    const file = path.join(dir, 'evil.pth');
    await fs.writeFile(file, Buffer.from(REDUCE_PAYLOAD, 'hex'));
    const { code, lines } = await cli('convert', file, path.join(dir, 'out'));
    expect(code).toBe(EXIT.known);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /refusing to load the global 'posix\.system'.*Nothing was executed.* \[FER_UNSAFE_PICKLE\]$/,
    );
  });

  it('a corrupt safetensors header: FER_SAFETENSORS in one line; --verbose adds the stack and the JSON cause', async () => {
    const file = path.join(dir, 'bad.safetensors');
    const header = Buffer.from('{not json}');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    await fs.writeFile(file, Buffer.concat([len, header]));
    const quiet = await cli('convert', file, path.join(dir, 'out'));
    expect(quiet.code).toBe(EXIT.known);
    expect(quiet.lines).toHaveLength(1);
    expect(quiet.lines[0]).toMatch(
      /^error: .*bad\.safetensors: header is not valid UTF-8 JSON .* \[FER_SAFETENSORS\]$/,
    );
    const verbose = await cli('--verbose', 'convert', file, path.join(dir, 'out'));
    expect(verbose.code).toBe(EXIT.known);
    expect(verbose.lines[0]).toBe(quiet.lines[0]);
    expect(verbose.lines.some((l) => l.startsWith('SafetensorsError: '))).toBe(true);
    expect(verbose.lines.some((l) => l.startsWith('caused by: SyntaxError'))).toBe(true);
  });

  it('a pickle that holds no state dict: FER_STATE_DICT in one line', () => {
    let e: unknown;
    try {
      extractStateDict(42, { source: 'x.pt' });
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(StateDictError);
    const { code, lines } = report(e);
    expect(code).toBe(EXIT.known);
    expect(lines).toEqual(['error: x.pt: expected a state dict (names → tensors), got number 42. [FER_STATE_DICT]']);
  });

  it('a requested backend that is not installed: FER_BACKEND_UNAVAILABLE with its install hint', () => {
    const e = new BackendUnavailableError('tfjs-node', '@tensorflow/tfjs-node is not installed');
    const { code, lines } = report(e);
    expect(code).toBe(EXIT.known);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(e.hint);
    expect(lines[0]).toMatch(
      /^error: Backend 'tfjs-node' was requested but is not available: .*\[FER_BACKEND_UNAVAILABLE\]$/,
    );
  });

  it('an undecodable image: FER_IMAGE_DECODE in one line, the decoder error as cause', async () => {
    const e = await decodeImage(new Uint8Array([1, 2, 3]), 'x.jpg').catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ImageDecodeError);
    expect((e as Error).cause).toBeInstanceOf(Error);
    const { code, lines } = report(e);
    expect(code).toBe(EXIT.known);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: Cannot read image 'x\.jpg': .* \[FER_IMAGE_DECODE\]$/);
  });

  it('bad input to the diversity loss: FER_INPUT in one line', () => {
    let e: unknown;
    try {
      diversityLoss([] as never);
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(DiversityInputError);
    const { code, lines } = report(e);
    expect(code).toBe(EXIT.known);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: Expected .* \[FER_INPUT\]$/);
  });

  it('a non-finite loss: FER_NON_FINITE_LOSS, exit 3, with what to try', () => {
    const { code, lines } = report(new NonFiniteLossError(['diversity'], { diversity: NaN }));
    expect(code).toBe(EXIT.nonFinite);
    expect(lines).toEqual([
      'error: Training stopped: non-finite diversity (diversity = NaN). The last good checkpoint was left untouched. ' +
        'Lower the learning rate, check the input data, or use the dpp diversity loss. [FER_NON_FINITE_LOSS]',
    ]);
  });

  it("a worker's failure: FER_WORKER_TASK in one line, keeping the worker error's hint and code as cause", () => {
    const remote = new FerInputError('Expected a batch of 4, but got 3.', 'Pass whole batches.');
    const e = new WorkerTaskError(1, 'grads', {
      name: remote.name,
      message: remote.message,
      stack: remote.stack,
      code: remote.code,
      hint: remote.hint,
    });
    expect(e.hint).toBe('Pass whole batches.');
    expect((e.cause as FerInputError).code).toBe('FER_INPUT');
    const { code, lines } = report(e);
    expect(code).toBe(EXIT.known);
    expect(lines).toEqual([
      'error: fer-parallel worker 1 failed in grads: FerInputError: Expected a batch of 4, but got 3. Pass whole batches. ' +
        '[FER_WORKER_TASK]',
    ]);
  });

  it('a Node I/O error is one line too; an unexpected error prints its stack and exits 1', () => {
    const io = Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), {
      code: 'ENOENT',
      syscall: 'open',
    });
    expect(report(io)).toEqual({ code: EXIT.known, lines: ["error: ENOENT: no such file or directory, open 'x'"] });
    const bug = report(new TypeError('x is undefined'));
    expect(bug.code).toBe(EXIT.unexpected);
    expect(bug.lines[0]).toBe('TypeError: x is undefined');
    expect(bug.lines.length).toBeGreaterThan(1);
  });
});

describe('the error family', () => {
  const instances: Array<[Error, string]> = [
    [new FerInputError('m'), FER_ERROR_CODES.input],
    [new DiversityInputError('m'), FER_ERROR_CODES.input],
    [new BackendInputError('m'), FER_ERROR_CODES.input],
    [new NonFiniteLossError(['ce'], { ce: NaN }), FER_ERROR_CODES.nonFiniteLoss],
    [new DivergenceError('r', { stage: 1, epoch: 0, step: 1, globalStep: 1 }, undefined), FER_ERROR_CODES.diverged],
    [new RunFolderError('m'), FER_ERROR_CODES.runFolder],
    [new ImageDecodeError('p', 'r'), FER_ERROR_CODES.imageDecode],
    [new WorkerTaskError(0, 'op', { name: 'Error', message: 'm' }), FER_ERROR_CODES.workerTask],
    [new TorchFormatError('m'), FER_ERROR_CODES.torchFormat],
    [new UnsafePickleError('m'), FER_ERROR_CODES.unsafePickle],
    [new StateDictError('m'), FER_ERROR_CODES.stateDict],
    [new SafetensorsError('m'), FER_ERROR_CODES.safetensors],
    [new BackendUnavailableError('wasm', 'r'), FER_ERROR_CODES.backendUnavailable],
  ];

  it.each(instances.map(([e, code]) => [e.name, e, code] as const))(
    '%s carries its stable code and isFerError recognises it',
    (_name, e, code) => {
      expect(isFerError(e)).toBe(true);
      expect((e as FerError).code).toBe(code);
    },
  );

  it('the hint is appended to the message once, and the cause is the standard one', () => {
    const cause = new Error('low-level');
    const e = new FerInputError('Bad thing.', { hint: 'Do this.', cause });
    expect(e.message).toBe('Bad thing. Do this.');
    expect(e.hint).toBe('Do this.');
    expect(e.cause).toBe(cause);
    expect(e).toBeInstanceOf(FerError);
    expect(new TorchFormatError('Bad. Fix.', { hint: 'Fix.' }).message).toBe('Bad. Fix.');
  });

  it('plain errors and Node errors are not fer errors', () => {
    expect(isFerError(new Error('x'))).toBe(false);
    expect(isFerError(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe(false);
    expect(isFerError({ code: 'FER_INPUT', message: 'not an Error' })).toBe(false);
  });
});
