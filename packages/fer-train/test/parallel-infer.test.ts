/**
 * Data-parallel inference through fer-train's training task (the replicas `DataParallel.infer` runs, e.g. in
 * `pnpm bench speed`): 2 workers holding the master model's weights and state give the single-process eval-mode
 * logits of every branch, image-major; nothing leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { Rng } from 'fer-core';
import { createEsr } from 'fer-models-esr';
import { DataParallel } from 'fer-parallel';
import { expectArrayClose } from 'fer-test-utils';
import { replicaModelSpec, trainTaskSpec } from '../src/parallel/data-parallel';
import { stateOf } from '../src/parallel/state';

const [B, S, K] = [5, 56, 8]; // 56 px: the smallest input ESR accepts; 5 images: uneven shards (3 + 2)

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

describe('training task: infer', () => {
  it('2 workers give the master ESR-2 eval logits [B, branches, K]; no leaks', async () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 5 });
    const rng = new Rng(9);
    const images = Float32Array.from({ length: B * S * S * 3 }, () => rng.next());
    const x = tf.tensor4d(images, [B, S, S, 3]);
    // Non-trivial running statistics, so a replica that ignored the master state would show.
    tf.dispose(esr.forward(x, { training: true }) as unknown as tf.TensorContainer);
    const dp = await DataParallel.create({
      task: trainTaskSpec({
        model: replicaModelSpec(esr),
        loss: { kind: 'esr', options: { diversity: 'reference' } },
        backend: 'wasm',
      }),
      workers: 2,
    });
    try {
      const vars = esr.variableGroups().flatMap((g) => g.variables);
      const reads = await Promise.all([...vars, ...stateOf(esr)].map(async (v) => (await v.data()) as Float32Array));
      vars.forEach((_, i) => dp.weights[i].set(reads[i]));
      const state = new Float32Array(dp.stateSize);
      let off = 0;
      for (const r of reads.slice(vars.length)) {
        state.set(r, off);
        off += r.length;
      }
      await dp.setWeights(dp.flatWeights, state);

      const got = await dp.infer({ images, shape: [B, S, S, 3], labels: new Int32Array(B) });
      expect(got.rowSize).toBe(2 * K);
      const want = tf.tidy(() => tf.stack(esr.forward(x, { training: false }).logits, 1));
      expect(want.shape).toEqual([B, 2, K]);
      // Eval mode is per image: sharding changes nothing but float32 rounding.
      expectArrayClose(got.outputs, (await want.data()) as Float32Array, { rtol: 1e-5, atol: 1e-6 }, 'logits');
      want.dispose();
    } finally {
      expect((await dp.dispose()).leaked).toEqual([0, 0]);
      x.dispose();
      esr.dispose();
    }
  });
});
