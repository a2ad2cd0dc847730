/**
 * The built-in ESR task on wasm (small input to keep the test short): 2 workers × 1 micro-batch equal 1 worker
 * accumulating the same 2 micro-batches, with the full reference loss (CE per branch + both diversity terms);
 * inference shards give the single-worker logits; no tensors leak.
 */
import { expectArrayClose } from 'fer-test-utils';
import { DataParallel, esrTask } from '../src';

const [N, S, K] = [4, 56, 8]; // 56 px: the smallest size ≥ ESR's minimum (54) keeps the test short

function makeBatch() {
  const images = new Float32Array(N * S * S * 3).map((_, i) => 0.5 + 0.5 * Math.sin(0.013 * i));
  const labels = Int32Array.from({ length: N }, (_, i) => (i * 3) % K);
  return { images, shape: [N, S, S, 3] as [number, number, number, number], labels };
}

describe('esrTask', () => {
  it('2-worker data-parallel step equals single-worker accumulation over the same micro-batches; inference matches; no leaks', async () => {
    const task = esrTask({ branches: 2, seed: 7, backend: 'wasm' });
    const single = await DataParallel.create({ task, workers: 1, microBatch: N / 2 });
    let ref: { flat: Float32Array; loss: number; terms: Record<string, number>; logits: Float32Array; start: Float32Array };
    try {
      expect(single.backend).toBe('wasm');
      expect(new Set(single.variables.map((v) => v.group))).toEqual(new Set(['base', 'branch_1', 'branch_2']));
      const start = Float32Array.from(single.flatWeights);
      const logits = (await single.infer(makeBatch())).outputs;
      const g = await single.computeGradients(makeBatch());
      ref = { flat: Float32Array.from(g.flat), loss: g.loss, terms: g.terms, logits, start };
      const m0 = await single.memory();
      await single.computeGradients(makeBatch());
      expect((await single.memory())[0].numTensors).toBe(m0[0].numTensors);
      expect(m0[0].wasmHeapBytes).toBeGreaterThan(0);
    } finally {
      expect((await single.dispose()).leaked).toEqual([0]);
    }
    expect(Object.keys(ref.terms).sort()).toEqual(['ce_branch_1', 'ce_branch_2', 'div_channel', 'div_spatial']);
    expect(ref.loss).toBeCloseTo(Object.values(ref.terms).reduce((a, b) => a + b, 0), 5);
    expect(ref.flat.every(Number.isFinite)).toBe(true);

    const dp = await DataParallel.create({ task, workers: 2 });
    try {
      expect(Array.from(dp.flatWeights)).toEqual(Array.from(ref.start));
      const inf = await dp.infer(makeBatch());
      expect(inf.rowSize).toBe(2 * K);
      // Eval mode: per-image results, so sharding changes nothing.
      expectArrayClose(inf.outputs, ref.logits, { rtol: 1e-6, atol: 1e-7 }, 'logits');
      const g = await dp.computeGradients(makeBatch());
      expectArrayClose(g.flat, ref.flat, { rtol: 1e-6, atol: 1e-9 }, 'batch gradient');
      expect(g.loss).toBeCloseTo(ref.loss, 6);
      // Every variable that BN does not cancel gets a gradient (conv biases before a train-mode BN are ~0).
      const live = g.grads.filter((gr) => gr.some((v) => Math.abs(v) > 1e-6)).length;
      expect(live).toBeGreaterThan(dp.variables.length * 0.8);
    } finally {
      expect((await dp.dispose()).leaked).toEqual([0, 0]);
    }
  });
});
