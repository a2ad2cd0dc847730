/**
 * A real training process for the run-folder tests (`tsx packages/fer-train/test/run-child.ts <mode> <outDir>`):
 * - `hold`: takes the folder lock, prints `locked`, and waits until killed;
 * - `train` / `resume`: runs the tiny trainer (cpu) on the folder and prints every event as a JSON line, then
 *   `done` (exit 0) or the error's name and message (exit 2).
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { writeFileAtomic } from 'fer-core/node';
import { RunLock } from '../src/io/run-folder';
import { Trainer, stateVariables } from '../src/trainer';
import { snapshotVariables } from '../src/io/checkpoint';
import { tinyTrainerOptions } from './tiny';

async function main(): Promise<void> {
  const [mode, outDir] = process.argv.slice(2);
  if (mode === 'hold') {
    await RunLock.acquire(outDir);
    process.stdout.write('locked\n');
    setInterval(() => {}, 1 << 30);
    return;
  }
  await tf.setBackend('cpu');
  const res = await new Trainer({
    ...tinyTrainerOptions(outDir),
    resume: mode === 'resume',
    checkpointEverySteps: 1,
    onEvent: (e) => process.stdout.write(`${JSON.stringify({ type: e.type })}\n`),
    // The model is saved as two files, so a kill between them would show as a mixed folder.
    model: {
      ...tinyTrainerOptions(outDir).model,
      save: async (m, dir) => {
        const values = await snapshotVariables(stateVariables(m));
        const bytes = Buffer.concat(values.map((v) => Buffer.from(v.data)));
        await writeFileAtomic(path.join(dir, 'weights.bin'), bytes);
        await writeFileAtomic(
          path.join(dir, 'model.json'),
          JSON.stringify({ bytes: bytes.length, sum: checksum(bytes) }),
        );
      },
    },
  }).run();
  res.model.dispose();
  process.stdout.write('done\n');
}

/** A checksum of the weights, stored in model.json: a model folder is consistent when it matches weights.bin. */
export function checksum(b: Uint8Array): number {
  let h = 0;
  for (const x of b) h = (h * 31 + x) >>> 0;
  return h;
}

main().catch((e: Error) => {
  process.stdout.write(`error ${e.name}: ${e.message}\n`);
  process.exit(2);
});
