/**
 * MS-Celeb-1M checkpoint import (docs/method.md#msceleb-checkpoint): the genuine-format subset in
 * ../shared/reference/manet/msceleb_format, and a full-size synthetic checkpoint with 12,666-class heads built here;
 * plus the tfjs save/load round trip and leak tests of both forward modes on the loaded model.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { readSafetensors, readStateDict } from 'fer-torch/node';
import { toFloat32, type RawTensor } from 'fer-torch';
import { REFERENCE_DIR, describeIfExists, expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { FerInputError } from 'fer-core';
import { MSCELEB_NUM_CLASSES, manetTorchEntries, tfjsToTorch, torchParameter } from 'fer-models-manet/internal';
import { fromMsCeleb, loadManet, manetToTorch as toTorchStateDict, type Manet } from 'fer-models-manet';

const MANET_DIR = path.join(REFERENCE_DIR, 'manet');
const SUBSET_PTH = path.join(MANET_DIR, 'msceleb_format', 'Pretrained_on_MSCeleb_subset.pth.tar');
const SUBSET_ST = path.join(MANET_DIR, 'msceleb_subset.safetensors');

/** Values of a model entry in PyTorch layout. */
function torchValues(manet: Manet, key: string): Float32Array {
  const { variable, entry } = torchParameter(manet, key);
  const t = tfjsToTorch(variable, entry.transform);
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
}

/** A cheap deterministic pattern: ((7919·i + 104729·k) mod 1000)/1000 − 0.5, period 1000 in i, so tiled. */
function patterned(shape: number[], k: number): RawTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const f = new Float32Array(n);
  for (let i = 0; i < Math.min(n, 1000); i++) f[i] = ((i * 7919 + k * 104729) % 1000) / 1000 - 0.5;
  for (let len = 1000; len < n; len *= 2) f.copyWithin(len, 0, Math.min(len, n - len));
  return { dtype: 'float32', shape, data: new Uint8Array(f.buffer) };
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

/** The conv-gradient kernels of d(sum(conv1(x)))/d(kernel) on a small image. */
async function stemGradientKernels(manet: Manet): Promise<string[]> {
  const conv1 = manet.model.getLayer('conv1');
  const kernel = conv1.trainableWeights[0].read() as tf.Variable;
  const x = tf.randomUniform([1, 16, 16, 3], 0, 1, 'float32', 2);
  const info = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(
      () => tf.sum(conv1.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      [kernel],
    );
    tf.dispose([value, ...Object.values(grads)]);
    return [];
  });
  x.dispose();
  return info.kernels.map((k) => k.name).filter((n) => n.startsWith('Conv2DBackprop'));
}

describeIfExists(MANET_DIR, 'fromMsCeleb: the genuine-format subset checkpoint', () => {
  test('loads (module. stripped, 30 entries), equals msceleb_subset.safetensors bit for bit, and reports the rest missing', async () => {
    const before = tf.memory().numTensors;
    const manet = await fromMsCeleb(new Uint8Array(readFileSync(SUBSET_PTH)), {
      numClasses: 7,
      allowMissing: true,
      convInit: 'zeros',
      seed: 1,
    });
    // Loading leaves only the model's own variables alive.
    expect(tf.memory().numTensors - before).toBe(manet.model.weights.length);
    try {
      const expected = (await readSafetensors(SUBSET_ST)).tensors;
      expect(expected.size).toBe(30);
      const r = manet.loadReport;
      expect(r.strippedPrefix).toBe('module.');
      expect(r.loaded).toBe(30);
      expect(r.dropped).toEqual([]);
      expect(r.missing).toHaveLength(692 - 30 - 4);
      expect(r.freshHeads).toEqual(['fc_1', 'fc_2']);
      for (const [name, t] of expected) {
        const key = name.replace(/^module\./, '');
        if (key.endsWith('num_batches_tracked')) {
          expect(torchValues(manet, key)[0]).toBe(Number(toFloat32(t)[0]));
          continue;
        }
        expectArrayClose(torchValues(manet, key), toFloat32(t), { rtol: 0, atol: 0 }, key);
      }
      expect(manet.numClasses).toBe(7);
    } finally {
      manet.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test('a strict load of the partial checkpoint names the missing keys and the fix', async () => {
    await expect(
      fromMsCeleb(new Uint8Array(readFileSync(SUBSET_PTH)), { numClasses: 7, convInit: 'zeros' }),
    ).rejects.toThrow(/658 of 692 MA-Net entries are missing.*allowMissing: true/s);
  });

  test('the converted safetensors subset loads the same way', async () => {
    const sd = await readStateDict(SUBSET_ST);
    const manet = await fromMsCeleb(sd, { numClasses: 8, allowMissing: true, convInit: 'zeros' });
    try {
      expect(manet.loadReport.loaded).toBe(30);
      expectArrayClose(
        torchValues(manet, 'layer1.1.bn2.running_var'),
        toFloat32(sd.get('module.layer1.1.bn2.running_var')!),
        { rtol: 0, atol: 0 },
      );
    } finally {
      manet.dispose();
    }
  });
});

describe('fromMsCeleb: a full-size synthetic checkpoint with 12,666-class heads', () => {
  let manet: Manet & { loadReport: import('../src').ManetLoadReport };
  let sd: Map<string, RawTensor>;

  beforeAll(async () => {
    // The genuine file's structure: torch.save({'state_dict': {'module.<key>': tensor}}) of manet() (12,666 classes).
    const entries = manetTorchEntries({ numClasses: MSCELEB_NUM_CLASSES });
    sd = new Map(
      entries.map(
        (e) =>
          [
            `module.${e.key}`,
            e.role === 'bn_count'
              ? { dtype: 'int64', shape: [], data: new Uint8Array([3, 0, 0, 0, 0, 0, 0, 0]) }
              : patterned(e.shape, e.index),
          ] as [string, RawTensor],
      ),
    );
    // (The torch.save container itself is covered by the genuine subset file above and by fer-torch's tests.)
    manet = await fromMsCeleb(sd, { numClasses: 7, seed: 11 });
  });

  afterAll(() => manet?.dispose());

  test('loads strictly, drops the 12,666-class heads and gives fresh 7-class heads', () => {
    const r = manet.loadReport;
    expect(r.loaded).toBe(688);
    expect(r.missing).toEqual([]);
    expect(r.dropped).toEqual([
      { key: 'fc_1.weight', shape: [12666, 512] },
      { key: 'fc_1.bias', shape: [12666] },
      { key: 'fc_2.weight', shape: [12666, 512] },
      { key: 'fc_2.bias', shape: [12666] },
    ]);
    expect(r.values).toBe(50_547_214 - 2 * (7 * 512 + 7) + 43_528); // backbone parameters + buffers (104 counters)
    expect(r.torch.ok).toBe(true);
    for (const key of [
      'conv1.weight',
      'layer3_1_p4.1.cbam.SpatialGate.spatial.conv.weight',
      'layer3_1_p2.0.cbam.ChannelGate.mlp.3.weight',
      'layer4_2.1.bn2_2_4.running_var',
      'layer4_2.0.downsample.0.weight',
    ]) {
      expectArrayClose(torchValues(manet, key), toFloat32(sd.get(`module.${key}`)!), { rtol: 0, atol: 0 }, key);
    }
    expect(torchValues(manet, 'bn1.num_batches_tracked')[0]).toBe(3);
    // Trainable = the reference's parameters (docs/method.md#manet, K = 7); the rest are the BN buffers.
    const size = (vs: tf.Variable[]) => vs.reduce((n, v) => n + v.size, 0);
    expect(size(manet.trainableVariables())).toBe(50_547_214);
    expect(size(manet.nonTrainableVariables())).toBe(43_528);
    expect(manet.variableGroups().map((g) => [g.name, g.variables.length])).toEqual([
      ['manet', manet.trainableVariables().length],
    ]);
    const fc = torchParameter(manet, 'fc_1.weight').variable;
    expect(fc.shape).toEqual([512, 7]);
    // PyTorch's default Linear init: U(±1/√512), not the checkpoint's pattern.
    const w = fc.dataSync();
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(512));
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.5 / Math.sqrt(512));
  });

  test('toTorchStateDict gives the checkpoint back bit for bit (all 688 backbone entries), in state-dict order', () => {
    const back = toTorchStateDict(manet, 'module.');
    expect([...back.keys()]).toEqual([...sd.keys()]);
    for (const [key, t] of back) {
      if (/fc_[12]\./.test(key)) {
        expect(t.shape[0]).toBe(7);
        continue;
      }
      const want = sd.get(key)!;
      expect({ key, dtype: t.dtype, shape: t.shape }).toEqual({ key, dtype: want.dtype, shape: want.shape });
      expect(Buffer.compare(Buffer.from(t.data), Buffer.from(want.data))).toBe(0);
    }
  });

  test('forward (eval and train) leaves no tensors behind; outputs have the documented shapes', async () => {
    const x = tf.randomUniform([2, 224, 224, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    for (const training of [false, true]) {
      const out = await expectNoLeak(() => manet.forward(x, { training }), { returned: 4 });
      expect(out.logits.map((l) => l.shape)).toEqual([
        [2, 7],
        [2, 7],
      ]);
      expect(out.heads.globalFeatures.shape).toEqual([2, 2, 512]);
      expect(out.heads.localFeatures.shape).toEqual([4, 2, 7, 7, 512]);
    }
    x.dispose();
    expect(() => manet.forward(tf.zeros([1, 96, 96, 3]) as tf.Tensor4D, { training: false })).toThrow(FerInputError);
  });

  test('saves and loads in the tfjs-layers format with identical weights and outputs', async () => {
    let artifacts: tf.io.ModelArtifacts | undefined;
    await manet.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const loaded = await loadManet(tf.io.fromMemory(artifacts!));
    try {
      expect(loaded.config).toEqual(manet.config);
      expect(loaded.model.weights.length).toBe(manet.model.weights.length);
      for (const key of [
        'conv1.weight',
        'layer4_1_p3.1.cbam.ChannelGate.mlp.1.bias',
        'fc_2.weight',
        'layer2.0.bn1.running_var',
      ]) {
        expectArrayClose(torchValues(loaded, key), torchValues(manet, key), { rtol: 0, atol: 0 }, key);
      }
      const x = tf.randomUniform([1, 224, 224, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
      const a = manet.forward(x, { training: false });
      const b = loaded.forward(x, { training: false });
      expectArrayClose(b.logits[1].dataSync(), a.logits[1].dataSync(), { rtol: 0, atol: 0 }, 'logits after reload');
      tf.dispose([x, a as unknown as tf.TensorContainer, b as unknown as tf.TensorContainer]);
      // Both stems skip the image gradient (fer-core's useLazyInputGradient, applied by createManet and loadManet).
      for (const m of [manet, loaded]) expect(await stemGradientKernels(m)).toEqual(['Conv2DBackpropFilter']);
    } finally {
      loaded.dispose();
    }
  });
});
