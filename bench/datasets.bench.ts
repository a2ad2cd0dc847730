/**
 * Dataset pipeline throughput (fer-datasets): images/s delivered as tfjs batches, with the reference's training
 * augmentation, at 96×96 (ESR) and 224×224 (MA-Net), decoding in-process and in 1 and 2 worker threads.
 * Real JPEGs from ../shared/data/fer2013-test when present, plus the synthetic source. Never asserts timings.
 *
 *   pnpm bench datasets [--quick]
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  classFolders,
  esrTrainTransform,
  manetRafdbTrainTransform,
  syntheticExpressions,
  type ImageDataset,
} from 'fer-datasets';

const DATA = path.resolve(__dirname, '../../shared/data/fer2013-test');

/**
 * Wall-clock images/s and process CPU time per image (all threads). On a shared, loaded machine the CPU time is
 * the steadier figure: an idle 2-core machine delivers about min(2, workers + 1) / cpu-seconds-per-image.
 */
async function measure(ds: ImageDataset, batchSize: number, limit: number): Promise<{ ips: number; cpuMs: number }> {
  // One warm-up batch (worker start-up, JIT) is excluded from the timing.
  let n = 0;
  let t0 = 0;
  let c0 = process.cpuUsage();
  for await (const b of ds.batches({ batchSize, seed: 1 })) {
    if (t0 === 0) {
      t0 = performance.now();
      c0 = process.cpuUsage();
    } else n += b.labels.shape[0];
    tf.dispose([b.images, b.labels]);
    if (n >= limit) break;
  }
  const cpu = process.cpuUsage(c0);
  return { ips: (n / (performance.now() - t0)) * 1000, cpuMs: (cpu.user + cpu.system) / 1000 / n };
}

export async function run(flags: string[]): Promise<void> {
  await tf.setBackend('cpu');
  const quick = flags.includes('--quick');
  const rows: string[][] = [];
  const quiet = { onWarning: () => {} };
  const cases: {
    name: string;
    size: number;
    make: (workers: number) => Promise<ImageDataset> | ImageDataset;
    limit: number;
  }[] = [];
  if (existsSync(DATA)) {
    cases.push(
      {
        name: 'fer2013 JPEG, ESR aug',
        size: 96,
        limit: quick ? 600 : 3000,
        make: (w) => classFolders({ root: DATA, imageSize: 96, augment: esrTrainTransform(), workers: w, ...quiet }),
      },
      {
        name: 'fer2013 JPEG, MA-Net/RAF-DB aug',
        size: 224,
        limit: quick ? 200 : 1000,
        make: (w) =>
          classFolders({ root: DATA, imageSize: 224, augment: manetRafdbTrainTransform(), workers: w, ...quiet }),
      },
    );
  } else {
    console.log(`(${DATA} not found: real-image rows skipped)`);
  }
  cases.push({
    name: 'synthetic faces, ESR aug',
    size: 96,
    limit: quick ? 300 : 1500,
    make: (w) => syntheticExpressions({ size: 20000, seed: 1, imageSize: 96, augment: true, workers: w }),
  });
  for (const c of cases) {
    for (const workers of [0, 1, 2]) {
      const ds = await c.make(workers);
      const { ips, cpuMs } = await measure(ds, 32, c.limit);
      rows.push([c.name, `${c.size}`, `${workers}`, ips.toFixed(0), cpuMs.toFixed(2)]);
      console.log(
        `  ${c.name} @${c.size}, workers ${workers}: ${ips.toFixed(0)} img/s, ${cpuMs.toFixed(2)} CPU ms/img`,
      );
    }
  }
  console.log(
    `\nload average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${os.cpus().length} cores`,
  );
  console.log('| source | size | workers | images/s | CPU ms/img (all threads) |\n|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  console.log(
    '\nFor scale: an ESR training step consumes ~2-20 img/s on this machine kind (../shared/notes), MA-Net ~12 img/s;' +
      ' the target is >= 5x that and >= 400 img/s at 96x96.',
  );
}
