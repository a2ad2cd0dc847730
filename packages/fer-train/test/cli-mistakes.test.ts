/**
 * User mistakes at the `fer` command line give one clear line (issue 17, items 6, 9 and 12): a model with NaN
 * weights, bad files among the images to predict, a NaN option, `--max-steps 0`, a missing dataset folder and an
 * image the decoder rejects without detail.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import sharp from 'sharp';
import { initBackend } from 'fer-backend';
import { BASIC7_LABELS } from 'fer-core';
import { decodeImage } from 'fer-datasets';
import { EXIT, runCli } from '../src/cli/main';
import { createModel } from 'fer-models';
import { fileHandler } from 'fer-core/node';

// face-api's Node build requires the '@tensorflow/tfjs' umbrella package (see cli.slow.test.ts).
jest.mock('@tensorflow/tfjs', () => jest.requireActual('@tensorflow/tfjs-core'), { virtual: true });

let dir = '';
let modelDir = '';

/** `fer -q --backend wasm <args>`: stdout and stderr lines and the exit code. */
async function cli(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  let err = '';
  let out = '';
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += s.toString();
    return true;
  });
  try {
    const code = await runCli(['node', 'fer', '-q', '--backend', 'wasm', ...args], (s) => (err += s));
    const lines = (s: string) => s.split('\n').filter((l) => l !== '');
    return { code, out: lines(out), err: lines(err) };
  } finally {
    spy.mockRestore();
  }
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-mistakes-'));
  modelDir = path.join(dir, 'model');
  const m = createModel('desr-9', {
    labels: BASIC7_LABELS,
    inputSize: 54,
    seed: 1,
    branches: 1,
    colorOrder: 'rgb',
    normalization: null,
  });
  await m.save(fileHandler(modelDir));
  m.dispose();
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('fer predict and eval', () => {
  it('a model whose weights.bin is all 0xFF bytes is refused, naming the tensor', async () => {
    const bad = path.join(dir, 'nan-model');
    await fs.cp(modelDir, bad, { recursive: true });
    const weights = path.join(bad, 'weights.bin');
    const size = (await fs.stat(weights)).size;
    await fs.writeFile(weights, Buffer.alloc(size, 0xff));
    const face = path.join(dir, 'face.png');
    await writeNoisePng(face);
    const { code, out, err } = await cli('predict', '--model', bad, '--no-detect', face);
    expect(code).toBe(EXIT.known);
    expect(out).toEqual([]);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(
      new RegExp(
        `^error: The model in ${esc(bad)} has non-finite weights: (\\d+) of \\1 values of '[^']*conv1[^']*' are NaN or infinite\\..* \\[FER_NON_FINITE_WEIGHTS\\]$`,
      ),
    );
  });

  it('predict reports each bad file on one line, predicts the others, and exits non-zero', async () => {
    const face = path.join(dir, 'face.png');
    await writeNoisePng(face);
    const truncated = path.join(dir, 'truncated.jpg');
    const jpeg = await sharp(Buffer.alloc(64 * 64 * 3, 128), { raw: { width: 64, height: 64, channels: 3 } })
      .jpeg()
      .toBuffer();
    await fs.writeFile(truncated, jpeg.subarray(0, jpeg.length >> 1));
    const missing = path.join(dir, 'missing.jpg');
    const folder = path.join(dir, 'a-folder');
    await fs.mkdir(folder);
    const { code, out, err } = await cli(
      'predict',
      '--model',
      modelDir,
      '--no-detect',
      truncated,
      face,
      missing,
      folder,
    );
    expect(code).toBe(EXIT.known);
    expect(out).toHaveLength(4);
    expect(out[0]).toMatch(new RegExp(`^${esc(truncated)}: error: Cannot read image .*premature end of JPEG`));
    expect(out[1]).toMatch(new RegExp(`^${esc(face)}: whole image: \\w+ +\\(votes: \\w+×1; p=0\\.\\d\\d\\)$`));
    expect(out[2]).toMatch(new RegExp(`^${esc(missing)}: error: Cannot read image '${esc(missing)}': file not found`));
    expect(out[3]).toMatch(new RegExp(`^${esc(folder)}: error: Cannot read image .*EISDIR`));
    expect(err).toEqual([
      `error: 3 of 4 image(s) could not be read: ${truncated}, ${missing}, ${folder}. Each is reported above; the other images were predicted. [FER_INPUT]`,
    ]);
  });

  it('--min-score NaN is refused in one line', async () => {
    const { code, err } = await cli('predict', '--model', modelDir, '--min-score', 'NaN', 'x.jpg');
    expect(code).toBe(EXIT.known);
    expect(err).toHaveLength(1);
    expect(err[0]).toContain("--min-score must be a number from 0 to 1, got 'NaN'");
  });
});

describe('fer train', () => {
  it('--max-steps 0 is refused (a run stops after at least one step)', async () => {
    const { code, err } = await cli('train', 'esr', '--max-steps', '0', '--out', path.join(dir, 'r0'));
    expect(code).toBe(EXIT.known);
    expect(err).toHaveLength(1);
    expect(err[0]).toContain("--max-steps must be a positive integer, got '0'");
  });

  it('a missing dataset folder names the option to fix, --data', async () => {
    const missing = path.join(dir, 'no-such-folder');
    const { code, err } = await cli(
      'train',
      'esr',
      '--dataset',
      'folder',
      '--data',
      missing,
      '--out',
      path.join(dir, 'r1'),
    );
    expect(code).toBe(EXIT.known);
    expect(err).toHaveLength(1);
    expect(err[0]).toContain('check --data');
    expect(err[0]).not.toContain('--root');
    await expect(fs.stat(path.join(dir, 'r1'))).rejects.toThrow(/ENOENT/); // no empty run folder left behind
  });
});

describe('fer experiment', () => {
  it('an unknown --tta is refused in one line, for real and rescore', async () => {
    for (const args of [
      ['experiment', 'real', '--tta', 'rotate', '--out', path.join(dir, 'x0')],
      ['experiment', 'rescore', path.join(dir, 'x1'), '--tta', 'none,rotate'],
    ]) {
      const { code, err } = await cli(...args);
      expect(code).toBe(EXIT.known);
      expect(err).toHaveLength(1);
      expect(err[0]).toMatch(/--tta takes .*none.*flip.*got '(rotate|none,rotate)'/);
    }
  });

  it('rescore of a folder that holds no experiment says what it expected and what to pass', async () => {
    const { code, err } = await cli('experiment', 'rescore', dir);
    expect(code).toBe(EXIT.known);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^error: Expected report\.json of fer experiment real at '.*', but it cannot be read\./);
    expect(err[0]).toContain('Pass the --out folder');
  });
});

describe('fer preprocess affectnet', () => {
  it('exits non-zero when no row is written, with the count and the first reason', async () => {
    const root = path.join(dir, 'affectnet-raw');
    await fs.mkdir(path.join(root, 'Manually_Annotated_Images'), { recursive: true });
    await fs.mkdir(path.join(root, 'Manually_Annotated_file_lists'), { recursive: true });
    await fs.writeFile(
      path.join(root, 'Manually_Annotated_file_lists', 'training.csv'),
      'subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n' +
        '1/a.jpg,0,0,10,10,,12,0.1,0.2\n1/b.jpg,0,0,10,10,,x,0.1,0.2\n',
    );
    const { code, err } = await cli('preprocess', 'affectnet', '--root', root, '--out', path.join(dir, 'pre'));
    expect(code).toBe(EXIT.known);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(
      /^error: AffectNet training: 0 of 2 rows written to .*; 2 error\(s\), 1 with an invalid expression code \(first: expression code '12' \(line 2\) .*\)\. Nothing was written/,
    );
  });
});

describe('decoder reasons', () => {
  it('a header the decoder rejects without detail still says what the file is', async () => {
    const f = path.join(dir, 'header-only.png');
    await fs.writeFile(f, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    await expect(decodeImage(f)).rejects.toThrow(
      `Cannot read image '${f}': Input buffer has corrupt header: no detail from the decoder (8 bytes, starting 89 50 4e 47)`,
    );
  });
});

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function writeNoisePng(file: string): Promise<void> {
  const px = Buffer.from(Array.from({ length: 54 * 54 * 3 }, (_, i) => (i * 37) % 256));
  await sharp(px, { raw: { width: 54, height: 54, channels: 3 } })
    .png()
    .toFile(file);
}
