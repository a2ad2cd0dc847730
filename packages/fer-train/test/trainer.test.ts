import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import { Trainer, stateVariables, type TrainEvent } from '../src/trainer';
import { loadCheckpoint } from '../src/io/checkpoint';
import { parseSafetensors } from 'fer-torch';
import { NonFiniteLossError } from '../src/step';
import type { LossFn } from '../src/loss-types';
import { TinyEnsemble, tinyCeLoss, tinyTrainerOptions } from './tiny';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const ceLoss = tinyCeLoss;

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'fer-trainer-'));
}

function options(outDir: string, extra: Partial<ConstructorParameters<typeof Trainer<TinyEnsemble>>[0]> = {}) {
  return { ...tinyTrainerOptions(outDir), ...extra };
}

async function weights(m: TinyEnsemble): Promise<number[][]> {
  return Promise.all(stateVariables(m).map(async (v) => Array.from(await v.data())));
}

describe('Trainer: a 3-stage growth run', () => {
  const dir = path.join(os.tmpdir(), `fer-trainer-growth-${process.pid}`);
  const events: TrainEvent[] = [];
  /** Per addBranch call: did the model equal the previous stage's best file just before? */
  const reloads: boolean[] = [];
  let res: Awaited<ReturnType<Trainer<TinyEnsemble>['run']>>;

  beforeAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
    const opts = options(dir, { onEvent: (e: TrainEvent) => events.push(e) });
    opts.model.addBranch = (m: TinyEnsemble, seed: number) => {
      const file = path.join(dir, 'checkpoints', `stage-${m.numBranches}-best.safetensors`);
      const stored = [...parseSafetensors(new Uint8Array(readFileSync(file))).tensors.entries()]
        .filter(([k]) => k.startsWith('model/'))
        .map(([, r]) =>
          Array.from(new Float32Array(r.data.buffer.slice(r.data.byteOffset, r.data.byteOffset + r.data.byteLength))),
        );
      reloads.push(JSON.stringify(stateVariables(m).map((v) => Array.from(v.dataSync()))) === JSON.stringify(stored));
      m.addBranch(seed);
    };
    res = await new Trainer(opts).run();
  });
  afterAll(async () => {
    res?.model.dispose();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('runs the epochs of each stage in order', () => {
    const epochs = events.filter((e): e is Extract<TrainEvent, { type: 'epoch' }> => e.type === 'epoch');
    expect(epochs.map((e) => [e.stage, e.epoch])).toEqual([
      [1, 0],
      [1, 1],
      [1, 2],
      [1, 3],
      [1, 4],
      [1, 5],
      [2, 0],
      [2, 1],
      [2, 2],
      [3, 0],
      [3, 1],
      [3, 2],
    ]);
  });

  it("gives each stage's variable groups the plan's learning rates (new branch 0.1, the others 0.01)", () => {
    const epochs = events.filter((e): e is Extract<TrainEvent, { type: 'epoch' }> => e.type === 'epoch');
    expect(epochs[0].lrs).toEqual({ base: 0.1, branch_1: 0.1 });
    expect(epochs[6].lrs).toEqual({ base: 0.01, branch_1: 0.01, branch_2: 0.1 });
    expect(epochs[11].lrs).toEqual({ base: 0.01, branch_1: 0.01, branch_2: 0.01, branch_3: 0.1 });
  });

  it("reloads the previous stage's best snapshot before adding a branch", () => {
    expect(reloads).toEqual([true, true]);
    expect(res.model.numBranches).toBe(3);
  });

  it('records every epoch in history.json and history.csv, with one column per branch', () => {
    expect(res.history.epochs).toHaveLength(12);
    expect(res.history.epochs[11].valAccuracy).toHaveLength(3);
    expect(res.validation!.branches).toHaveLength(3);
    const csv = readFileSync(path.join(dir, 'history.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(13);
    expect(csv[0]).toContain('lr_branch_3');
  });

  it('learns the separable toy set (ensemble accuracy clearly above chance, 1/3)', () => {
    expect(res.validation!.ensemble.accuracy).toBeGreaterThan(0.6);
  });
});

describe('Trainer: resume and failures', () => {
  it('resumes a run killed mid-epoch (and again across a stage boundary) to the same final weights and history', async () => {
    const a = await tmp();
    const full = await new Trainer(options(a)).run();
    const want = await weights(full.model);
    full.model.dispose();

    const b = await tmp();
    // stage 1, epoch 1, step 1
    const first = await new Trainer(options(b, { maxSteps: 4, checkpointEverySteps: 1 })).run();
    expect(first.stopped).toBe(true);
    first.model.dispose();
    const ck = await loadCheckpoint(path.join(b, 'checkpoints', 'last.safetensors'));
    expect(ck.meta.position).toEqual({ stage: 1, epoch: 1, step: 1, globalStep: 4 });
    // into stage 2
    const second = await new Trainer(options(b, { maxSteps: 16, resume: true, checkpointEverySteps: 1 })).run();
    expect(second.stopped).toBe(true);
    second.model.dispose();
    expect((await loadCheckpoint(path.join(b, 'checkpoints', 'last.safetensors'))).meta.position).toMatchObject({
      stage: 2,
      epoch: 0,
      step: 2,
    });
    const done = await new Trainer(options(b, { resume: true })).run();
    expect(done.stopped).toBe(false);
    expect(await weights(done.model)).toEqual(want);
    const strip = (h: typeof full.history) => h.epochs.map(({ seconds: _s, ...r }) => r);
    expect(strip(done.history)).toEqual(strip(full.history));
    done.model.dispose();
    await Promise.all([a, b].map((d) => fs.rm(d, { recursive: true, force: true })));
  });

  it('stops on a non-finite loss term, names it, and leaves the last good checkpoint untouched', async () => {
    const dir = await tmp();
    let calls = 0;
    const nanLoss: LossFn = (out, y) => {
      const l = ceLoss(out, y);
      calls++;
      l.terms.div_spatial = calls === 3 ? tf.scalar(Number.NaN) : tf.scalar(0);
      const total = tf.add(l.total, l.terms.div_spatial) as tf.Scalar;
      l.total.dispose();
      return { total, terms: l.terms };
    };
    let lastBytes: Buffer | undefined;
    const lastFile = path.join(dir, 'checkpoints', 'last.safetensors');
    const before = tf.memory().numTensors;
    const err = await new Trainer(
      options(dir, {
        loss: () => nanLoss,
        checkpointEverySteps: 1,
        onEvent: (e: TrainEvent) => {
          if (e.type === 'checkpoint' && e.kind === 'last') lastBytes = readFileSync(lastFile);
        },
      }),
    )
      .run()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteLossError);
    expect((err as NonFiniteLossError).terms).toEqual(['div_spatial']);
    expect((err as NonFiniteLossError).message).toMatch(/non-finite div_spatial/);
    expect(readFileSync(lastFile).equals(lastBytes!)).toBe(true);
    expect((await loadCheckpoint(lastFile)).meta.position.globalStep).toBe(2);
    expect(tf.memory().numTensors).toBe(before);
    await fs.rm(dir, { recursive: true, force: true });
  });
});
