import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { initBackend } from 'fer-backend';
import { DATA_DIR, describeIfExists } from 'fer-test-utils';
import { importTorchCheckpoint } from 'fer-models-esr/node';
import { toTorchStateDicts } from 'fer-models-esr';

const WEIGHTS = path.join(DATA_DIR, 'esr9-affectnet', 'weights');

describeIfExists(WEIGHTS, 'upstream ESR-9 base (legacy torch.save) imports into the original variant', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
  });

  it('every tensor equals base-extracted.bin; the base maps 96 px to 20×20×128', async () => {
    // Only the base could be copied (SOURCE.md): the folder yields an ensemble without branches.
    const { esr, reports } = await importTorchCheckpoint(WEIGHTS);
    expect(esr.config.variant).toBe('original');
    expect(esr.numBranches).toBe(0);
    expect(reports[0].report.loaded.length).toBe(28);
    const extracted = JSON.parse(await fs.readFile(path.join(WEIGHTS, 'base-extracted.json'), 'utf8')) as {
      tensors: { name: string; dtype: string; shape: number[]; byteOffset: number; byteLength: number }[];
    };
    const bin = await fs.readFile(path.join(WEIGHTS, 'base-extracted.bin'));
    const [{ stateDict }] = toTorchStateDicts(esr);
    expect([...stateDict.keys()].sort()).toEqual(extracted.tensors.map((t) => t.name).sort());
    for (const t of extracted.tensors) {
      const got = stateDict.get(t.name)!;
      expect([t.name, got.shape]).toEqual([t.name, t.shape]);
      // Bit-exact round trip through the tfjs weights: same bytes as the official file.
      expect([t.name, Buffer.from(got.data).equals(bin.subarray(t.byteOffset, t.byteOffset + t.byteLength))]).toEqual([
        t.name,
        true,
      ]);
    }
    const x = tf.randomUniform([1, 96, 96, 3], 0, 1, 'float32', 1);
    const y = esr.base.predict(x) as tf.Tensor;
    expect(y.shape).toEqual([1, 20, 20, 128]);
    expect(Math.min(...y.dataSync())).toBeGreaterThanOrEqual(0); // ReLU output
    tf.dispose([x, y]);
    esr.dispose();
  });
});
