/**
 * Diversity loss cost: forward and forward+gradient of `diversityLoss` for n = 9 heads, batch 32, 512-d heads
 * (ESR-9 channel attention) on wasm, for both presets; plus the 6×6 spatial maps. Prints medians; asserts nothing.
 * Flags: --backend=cpu|wasm (default wasm), --reps=N (default 10).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { diversityLoss, type DiversityOptions } from 'fer-diversity-loss';

function flag(flags: string[], name: string, fallback: string): string {
  const f = flags.find((a) => a.startsWith(`--${name}=`));
  return f ? f.slice(name.length + 3) : fallback;
}

async function timeMs(fn: () => tf.Tensor, reps: number): Promise<{ median: number; min: number }> {
  const times: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    const t0 = performance.now();
    const out = fn();
    await out.data();
    out.dispose();
    if (i >= 2) times.push(performance.now() - t0); // two warm-up runs
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], min: times[0] };
}

export async function run(flags: string[]): Promise<void> {
  const backend = flag(flags, 'backend', 'wasm');
  const reps = Number(flag(flags, 'reps', '10'));
  await tf.setBackend(backend);
  await tf.ready();
  const shapes: [string, number[]][] = [
    ['channel 9×32×512', [9, 32, 512]],
    ['spatial 9×32×6×6', [9, 32, 6, 6]],
  ];
  const presets: [string, DiversityOptions][] = [
    ['dpp (−logdet)', { preset: 'dpp' }],
    ['reference (−det)', { preset: 'reference' }],
  ];
  console.log(`backend ${tf.getBackend()}, ${reps} reps (median / min ms)`);
  for (const [label, shape] of shapes) {
    const heads = tf.tidy(() => tf.sigmoid(tf.randomNormal(shape, 0, 1, 'float32', 1)));
    for (const [pname, opts] of presets) {
      const fwd = await timeMs(() => diversityLoss(heads, opts), reps);
      const fb = await timeMs(() => tf.grad((h: tf.Tensor) => diversityLoss(h, opts))(heads), reps);
      console.log(
        `${label.padEnd(18)} ${pname.padEnd(17)} forward ${fwd.median.toFixed(1)} / ${fwd.min.toFixed(1)}   ` +
          `forward+gradient ${fb.median.toFixed(1)} / ${fb.min.toFixed(1)}`,
      );
    }
    heads.dispose();
  }
  console.log(`tensors alive after bench: ${tf.memory().numTensors}`);
}
