/**
 * `pnpm bench train-parallel [--model=esr1|manet] [--batch=32] [--micro=16] [--steps=2] [--workers=1,2]`: the
 * Trainer's optimizer step as users run it (fer-train `trainStep` in this thread for 1 worker, `DataParallelStep`
 * for `--compute-workers` ≥ 2), on the same batches: seconds per step, images/s and CPU-ms per image (process CPU
 * time, all threads: robust to a shared machine). Prints the load average; never asserts timings.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import type { Batch, FerModel } from 'fer-core';
import { createEsr } from 'fer-models-esr';
import { createManet } from 'fer-models-manet';
import {
  DataParallelStep,
  esrGrowthPlan,
  esrStageLoss,
  lossFromSpec,
  manetPlan,
  stageOptimizer,
  trainStep,
} from 'fer-train';

function flag(flags: string[], name: string): string | undefined {
  const f = flags.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  return f === undefined ? undefined : (f.split('=')[1] ?? '');
}

function makeBatch(n: number, size: number, classes: number, seed: number): Batch {
  return tf.tidy(() => ({
    images: tf.randomUniform([n, size, size, 3], 0, 1, 'float32', seed) as tf.Tensor4D,
    labels: tf.tensor1d(
      Array.from({ length: n }, (_, i) => (i * 5 + seed) % classes),
      'int32',
    ),
  }));
}

export async function run(flags: string[]): Promise<void> {
  const model = (flag(flags, 'model') ?? 'esr1') as 'esr1' | 'manet';
  if (model !== 'esr1' && model !== 'manet') throw new Error(`Expected --model=esr1|manet, but got '${model}'.`);
  const batch = Number(flag(flags, 'batch') ?? 32);
  const micro = Number(flag(flags, 'micro') ?? (model === 'manet' ? 8 : 16));
  const steps = Number(flag(flags, 'steps') ?? 2);
  const workerSets = (flag(flags, 'workers') ?? '1,2').split(',').map(Number);
  await initBackend({ backend: 'wasm', quiet: true });
  const size = model === 'manet' ? 224 : 96;
  const classes = model === 'manet' ? 7 : 8;
  const stage =
    model === 'manet'
      ? manetPlan({ dataset: 'rafdb', batchSize: batch }).stages[0]
      : esrGrowthPlan({ branches: 1, batchSize: batch }).stages[0];
  const loss =
    model === 'manet'
      ? lossFromSpec({ kind: 'manet', options: { diversity: 'reference' } })
      : esrStageLoss(stage, 'reference');
  console.log(
    `train-parallel: ${model}, batch ${batch}, micro-batch ${micro}, ${steps} timed step(s) after 1 warm-up; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    '| compute workers | s/step | images/s | CPU-ms/image | startup s | overhead ms/step (push, gradient request − workers, update) |\n|---:|---:|---:|---:|---:|---|',
  );
  for (const workers of workerSets) {
    const m: FerModel =
      model === 'manet'
        ? createManet({ numClasses: classes, seed: 1 })
        : createEsr('desr9-affectnet', { initialBranches: 1, seed: 1 });
    const sgd = stageOptimizer(m, stage);
    const t0 = performance.now();
    const par = workers > 1 ? await DataParallelStep.create(m, loss, { workers, microBatch: micro }) : undefined;
    const startup = (performance.now() - t0) / 1000;
    try {
      const once = async (seed: number) => {
        const b = makeBatch(batch, size, classes, seed);
        try {
          await (par ? par.step(sgd, b) : trainStep(m, sgd, b, loss, { microBatch: micro }));
        } finally {
          tf.dispose([b.images, b.labels]);
        }
      };
      await once(0);
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      const over: string[] = [];
      for (let s = 1; s <= steps; s++) {
        await once(s);
        if (par)
          over.push(
            `${par.lastTimings.push.toFixed(0)}, ${(par.lastTimings.gradients - par.lastTimings.workers).toFixed(0)}, ${par.lastTimings.update.toFixed(0)}`,
          );
      }
      const wall = (performance.now() - w0) / 1000 / steps;
      const c = process.cpuUsage(c0);
      const cpuMs = (c.user + c.system) / 1000 / (steps * batch);
      console.log(
        `| ${workers} | ${wall.toFixed(2)} | ${(batch / wall).toFixed(2)} | ${cpuMs.toFixed(0)} | ${par ? startup.toFixed(1) : '–'} | ${over.join('; ') || '–'} |`,
      );
    } finally {
      await par?.dispose();
      sgd.dispose();
      m.dispose();
    }
  }
}
