/**
 * The real-faces gap, controlled (issue #14): one stage of `fer experiment real` with the randomness taken out, so
 * that `bench/real_gap_torch.py` can replay it in PyTorch step by step.
 *
 * What it runs: the real experiment's own parts (`pretrainedEsr`: the ESR-9 AffectNet base loaded into the CBAM ESR,
 * fresh CBAM and branch 1 seeded; `splitDataset`: decode, 48 → 64 bilinear; `realFacesPlan` stage 1: base and branch
 * at 0.1 × lr-scale, SGD momentum 0.9; `esrStageLoss`; `trainStep`), over the training faces in ONE fixed order
 * (a seeded shuffle written to `order.json`), without augmentation, one epoch. It writes what the PyTorch side needs
 * to start from the same point and to compare:
 *
 *   <out>/order.json            the training faces in the order used (relative paths, labels)
 *   <out>/init/{base,branch_<k>}.safetensors  the initial weights, PyTorch state-dict keys (reference names): the
 *                               base and every branch the experiment grows (--branches, default 2); `--init-only`
 *                               stops here (bench/real_torch.py --init-from <out>/init starts from them)
 *   <out>/final/{base,branch_1}.safetensors  the weights after the epoch
 *   <out>/pixels.f32            every training face as fed to the model, [N, S, S] float32 (channel 0; grey)
 *   <out>/aug.json              per-image mean / std / zero fraction of the first --aug-images faces, augmented
 *   <out>/steps.json            the loss and correct count of every step
 *
 *   npx tsx bench/real-gap.ts --splits <splits.json> --out <dir> [--data ../shared/data] [--seed 1] [--steps N]
 *     [--backend native] [--lr-scale 0.5] [--image-size 64] [--aug-images 512] [--branches 2] [--init-only]
 *   /usr/bin/python3 bench/real_gap_torch.py --dir <dir>
 *
 * Prints one line and exits 0 when the data folder is absent.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from 'fer-backend';
import { Rng } from 'fer-core';
import { toTorchStateDicts, type EsrEnsemble } from 'fer-models-esr';
import { writeSafetensors } from 'fer-torch/node';
import { esrStageLoss, learningRatesAt, stageOptimizer, trainStep } from 'fer-train';
import {
  REAL_FACES_DEFAULTS,
  pretrainedEsr,
  readUpstreamBase,
  realFacesPlan,
} from '../packages/fer-train/src/experiments/real-faces';
import { splitDataset, type SplitItem } from '../packages/fer-train/src/experiments/real-faces-data';

function flag(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function writeWeights(esr: EsrEnsemble, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const { file, stateDict } of toTorchStateDicts(esr)) {
    const part = file.startsWith('Net-Base') ? 'base' : `branch_${/Branch_(\d+)/.exec(file)![1]}`;
    await writeSafetensors(path.join(dir, `${part}.safetensors`), stateDict);
  }
}

async function main(): Promise<void> {
  const data = path.resolve(flag('data', path.join(__dirname, '../../shared/data'))!);
  if (!existsSync(path.join(data, 'fer2013-test'))) {
    console.log(`skipped: no fer2013-test/ under ${data} (pass --data <shared data folder>)`);
    return;
  }
  const splitsFile = flag('splits');
  const outArg = flag('out');
  if (!splitsFile || !outArg) throw new Error('Expected --splits <splits.json> and --out <dir>.');
  const out = path.resolve(outArg);
  const seed = Number(flag('seed', '1'));
  const imageSize = Number(flag('image-size', '64'));
  const lrScale = Number(flag('lr-scale', String(REAL_FACES_DEFAULTS.lrScale)));
  const augImages = Number(flag('aug-images', '512'));
  const branches = Number(flag('branches', String(REAL_FACES_DEFAULTS.branches)));
  const info = await initBackend({ backend: (flag('backend') as BackendName | undefined) ?? undefined, quiet: true });
  mkdirSync(out, { recursive: true });

  const splits = JSON.parse(readFileSync(splitsFile, 'utf8')) as { train: SplitItem[] };
  const items = [...splits.train];
  new Rng(seed).shuffle(items); // one mixed order, read by both sides (a class-sorted one would starve batch norm)
  writeFileSync(path.join(out, 'order.json'), JSON.stringify({ seed, imageSize, items }, null, 1) + '\n');

  const base = await readUpstreamBase(data);
  const { esr } = pretrainedEsr(base, imageSize, seed);
  // The initial weights of every stage: base and branch 1, and branch 2 as stage 2 of the experiment grows it (the
  // ensemble seeds each new branch from its own seed and index, so a second copy grown here is that branch).
  const grown = pretrainedEsr(base, imageSize, seed).esr;
  for (let k = 2; k <= branches; k++) grown.addBranch();
  await writeWeights(grown, path.join(out, 'init'));
  grown.dispose();
  if (process.argv.includes('--init-only')) {
    console.log(`wrote ${path.join(out, 'init')} (base and ${branches} branches, seed ${seed})`);
    esr.dispose();
    return;
  }

  const o = { ...REAL_FACES_DEFAULTS, imageSize, lrScale };
  const plan = realFacesPlan(o);
  const stage = plan.stages[0];
  const sgd = stageOptimizer(esr, stage);
  sgd.setLearningRates(learningRatesAt(plan, 1, 0));
  const loss = esrStageLoss(stage, 'none');
  const maxSteps = Number(flag('steps', String(Infinity)));

  // Augmentation statistics (the draws cannot match PyTorch's; their distribution should).
  const aug = splitDataset(data, 'gap-aug', items.slice(0, augImages), { imageSize, augment: true, workers: 0 });
  const augStats: { mean: number; std: number; zero: number }[] = [];
  for await (const b of aug.batches({ batchSize: 64, shuffle: false, seed, epoch: 0 })) {
    const v = (await b.images.data()) as Float32Array;
    const px = imageSize * imageSize * 3;
    for (let i = 0; i < b.labels.shape[0]; i++) {
      const img = v.subarray(i * px, (i + 1) * px);
      let s = 0;
      let s2 = 0;
      let z = 0;
      for (let j = 0; j < img.length; j += 3) {
        s += img[j];
        s2 += img[j] * img[j];
        if (img[j] === 0) z++;
      }
      const n = img.length / 3;
      augStats.push({ mean: s / n, std: Math.sqrt(Math.max(0, s2 / n - (s / n) ** 2)), zero: z / n });
    }
    tf.dispose([b.images, b.labels]);
  }
  writeFileSync(path.join(out, 'aug.json'), JSON.stringify(augStats) + '\n');

  const train = splitDataset(data, 'gap-train', items, { imageSize, augment: false, workers: 0 });
  const fd = openSync(path.join(out, 'pixels.f32'), 'w');
  const steps: { loss: number; correct: number; count: number }[] = [];
  const t0 = Date.now();
  try {
    for await (const batch of train.batches({ batchSize: plan.batchSize, shuffle: false })) {
      try {
        const v = (await batch.images.data()) as Float32Array;
        const grey = new Float32Array(v.length / 3);
        for (let i = 0; i < grey.length; i++) grey[i] = v[3 * i];
        writeSync(fd, new Uint8Array(grey.buffer));
        if (steps.length >= maxSteps) continue;
        const r = await trainStep(esr, sgd, batch, loss);
        steps.push({ loss: r.loss, correct: r.correct[0], count: r.count });
        if (steps.length % 10 === 0)
          console.log(`step ${steps.length}: loss ${r.loss.toFixed(5)} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      } finally {
        tf.dispose([batch.images, batch.labels]);
      }
    }
  } finally {
    closeSync(fd);
  }
  await writeWeights(esr, path.join(out, 'final'));
  const mean = steps.reduce((a, s) => a + s.loss, 0) / steps.length;
  writeFileSync(
    path.join(out, 'steps.json'),
    JSON.stringify({ backend: info.name, seed, imageSize, lrs: sgd.learningRates(), steps, meanLoss: mean }, null, 1) +
      '\n',
  );
  console.log(`${steps.length} steps on ${info.name}, mean loss ${mean.toFixed(5)}; wrote ${out}`);
  sgd.dispose();
  esr.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
