/**
 * The `fer` commands end to end with the real ESR (wasm): train on RAF-DB mini (one short stage), evaluate on a
 * seeded subset of fer2013-test, then `predict` on the photos: every photo yields at least one detected face and one
 * prediction per face, with one vote per branch.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { existsSync, promises as fs } from 'node:fs';
import { initBackend } from 'fer-backend';
import { DATA_DIR, describeIfExists, testBackend } from 'fer-test-utils';
import { runTrain } from '../src/cli/commands/train';
import { runEval } from '../src/cli/commands/eval';
import { runPredict } from '../src/cli/commands/predict';
import { Output } from '../src/cli/output';

// face-api's Node build requires the '@tensorflow/tfjs' umbrella package; the CLI resolves it to tfjs-core at load
// time (Node's resolver), which jest's own resolver does not see, so the test maps it the same way.
jest.mock('@tensorflow/tfjs', () => jest.requireActual('@tensorflow/tfjs-core'), { virtual: true });

const PHOTOS = [
  ...['angry', 'disgusted', 'fearful', 'happy', 'neutral', 'sad', 'surprised'].map((e) =>
    path.join(DATA_DIR, 'faceapi-expression', 'images', `${e}.jpg`),
  ),
  ...['jackie', 'sheldon', 'surprise'].map((n) => path.join(DATA_DIR, 'esr9-affectnet', 'samples', `${n}.jpg`)),
];

describeIfExists(DATA_DIR, 'fer CLI: train -> eval -> predict (real ESR on wasm)', () => {
  let dir = '';
  const out = new Output('quiet');

  beforeAll(async () => {
    await initBackend({ backend: testBackend(), quiet: true });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-cli-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('trains a 2-branch ESR on RAF-DB mini (64 px, growth schedule) and writes model, history and plots', async () => {
    const { result } = await runTrain(
      'esr',
      {
        dataset: 'rafdb',
        data: path.join(DATA_DIR, 'rafdb-mini', 'basic'),
        out: dir,
        diversity: 'dpp',
        imageSize: 64,
        branches: 2,
        epochs: 1,
        laterEpochs: 1,
        batch: 16,
        microBatch: 8,
        cap: 2,
        seed: 0,
        plots: true,
        workers: 0,
      },
      out,
    );
    expect(result.stopped).toBe(false);
    expect(result.history.epochs.map((e) => e.stage)).toEqual([1, 2]);
    expect(result.validation!.branches).toHaveLength(2);
    for (const f of [
      'model/model.json',
      'history.json',
      'history.csv',
      'plots/accuracy.png',
      'plots/loss.svg',
      'checkpoints/last.safetensors',
      'checkpoints/stage-2-best.safetensors',
    ]) {
      expect(existsSync(path.join(dir, f))).toBe(true);
    }
    result.model.dispose();
  });

  it('evaluates the saved model on a seeded subset of fer2013-test', async () => {
    const r = await runEval(
      {
        model: path.join(dir, 'model'),
        dataset: 'folder',
        data: path.join(DATA_DIR, 'fer2013-test'),
        batch: 32,
        cap: 5,
        seed: 0,
        workers: 0,
        out: dir,
      },
      out,
    );
    expect(r.size).toBe(35);
    expect(r.ensemble.confusion.flat().reduce((a, b) => a + b, 0)).toBe(35);
    expect(existsSync(path.join(dir, 'confusion.png'))).toBe(true);
  });

  it('predict finds the faces in every photo and prints one prediction per face with each branch vote', async () => {
    const results = await runPredict(PHOTOS, { model: path.join(dir, 'model'), detect: true, minScore: 0.3 }, out);
    expect(results).toHaveLength(PHOTOS.length);
    for (const r of results) {
      expect(r.faces.length).toBeGreaterThanOrEqual(1);
      for (const f of r.faces) {
        expect(f.box!.width).toBeGreaterThan(20);
        expect(f.votes).toHaveLength(2);
        expect(typeof f.emotion).toBe('string');
        expect(Object.values(f.probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      }
    }
    const cropped = await runPredict(
      [path.join(DATA_DIR, 'faceapi-expression', 'test-images', 'angry_cropped.jpg')],
      { model: path.join(dir, 'model'), detect: false, minScore: 0.3 },
      out,
    );
    expect(cropped[0].faces).toHaveLength(1);
    expect(cropped[0].faces[0].box).toBeNull();
  });
});
