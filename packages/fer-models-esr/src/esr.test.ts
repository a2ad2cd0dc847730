import * as http from 'node:http';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { RAFDB_LABELS, sumCrossEntropy } from 'fer-core';
import { fileHandler } from 'fer-core/node';
import { expectArrayClose, expectNoLeak } from 'fer-test-utils';
import { createEsr, fromTorchStateDicts, loadEsr, toTorchStateDicts, vote, type EsrEnsemble } from './index';
import { featureSizes, minInputSize } from './internal';
import { fromTorchCheckpoint, loadLegacyEsrFolder, saveTorchCheckpoint } from './node';

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

const count = (vars: { shape: number[] }[]) => vars.reduce((s, v) => s + v.shape.reduce((a, b) => a * b, 1), 0);
const images = (n: number, s = 96, seed = 1) => tf.randomUniform([n, s, s, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
const runningStats = (esr: EsrEnsemble) =>
  esr.parts().map(({ model }) => model.getLayer('bn1').getWeights()[2].dataSync().slice(0, 4).join(','));

describe('ESR architecture', () => {
  it('has the reference parameter counts (docs/method.md#esr, #upstream-esr)', () => {
    const cbam = createEsr('desr9-affectnet', { initialBranches: 1, seed: 1 });
    expect(count(cbam.variableGroups()[0].variables)).toBe(382_316);
    expect(count(cbam.variableGroups()[1].variables)).toBe(2_272_224);
    const raf = createEsr({ base: 'desr9-rafdb' }, { initialBranches: 1, seed: 1 });
    expect(count(raf.variableGroups()[1].variables)).toBe(2_271_711);
    const orig = createEsr('esr9-affectnet', { initialBranches: 1, seed: 1 });
    expect(count(orig.variableGroups()[0].variables)).toBe(374_784);
    // Upstream counts the branch with its valence/arousal head: 2,219,418.
    expect(count(orig.variableGroups()[1].variables)).toBe(2_219_418);
    [cbam, raf, orig].forEach((e) => e.dispose());
  });

  it('maps 96 px to 20×20 shared features and 6×6 attention; 224 px to 52 and 22', () => {
    expect(featureSizes(96)).toEqual({ base: 20, branch: 6 });
    expect(featureSizes(224)).toEqual({ base: 52, branch: 22 });
    expect(featureSizes(minInputSize()).branch).toBe(1);
    expect(featureSizes(minInputSize() - 1).branch).toBeLessThan(1);
  });

  it('seeds runs independently: run s+1 shares no branch with run s, and a seed reproduces itself', () => {
    const firstConv = (e: EsrEnsemble, k: number) =>
      Array.from(e.parts()[k].model.getLayer('conv1').getWeights()[0].dataSync().slice(0, 8));
    const a = createEsr('desr9-affectnet', { initialBranches: 2, seed: 1 });
    const b = createEsr('desr9-affectnet', { initialBranches: 1, seed: 2 });
    const a2 = createEsr('desr9-affectnet', { initialBranches: 2, seed: 1 });
    expect(firstConv(b, 1)).not.toEqual(firstConv(a, 2));
    expect(firstConv(a, 1)).not.toEqual(firstConv(a, 2));
    expect(firstConv(a2, 2)).toEqual(firstConv(a, 2));
    [a, b, a2].forEach((e) => e.dispose());
  });

  it('forward returns per-branch logits and stacked attention heads; growth with addBranch()', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 3 });
    expect(esr.addBranch()).toBe(3);
    expect(esr.numBranches).toBe(3);
    const x = images(2);
    const out = esr.forward(x, { training: false });
    expect(out.logits.map((l) => l.shape)).toEqual([
      [2, 8],
      [2, 8],
      [2, 8],
    ]);
    expect(out.heads.spatialAttention.shape).toEqual([3, 2, 6, 6]);
    expect(out.heads.channelAttention.shape).toEqual([3, 2, 512]);
    const sp = out.heads.spatialAttention.dataSync();
    expect(Math.min(...sp)).toBeGreaterThan(0);
    expect(Math.max(...sp)).toBeLessThan(1);
    tf.dispose([x, ...out.logits, ...Object.values(out.heads)]);
    esr.dispose();
  });

  it('original variant: no attention, valence/arousal head on ReLU(logits)', () => {
    const esr = createEsr('esr9-affectnet', { initialBranches: 2, seed: 4 });
    const x = images(2, minInputSize());
    const out = esr.forward(x, { training: false });
    expect(Object.keys(out.heads)).toEqual(['valenceArousal']);
    expect(out.heads.valenceArousal.shape).toEqual([2, 2, 2]);
    // Independent check of the head: Linear(8→2) of ReLU(logits) with the layer's own weights.
    const [k, b] = esr.branch(1).getLayer('fc_dimensional').getWeights();
    const want = tf.tidy(() => tf.add(tf.matMul(tf.relu(out.logits[0]), k), b));
    const got = tf.tidy(() => tf.squeeze(tf.slice(out.heads.valenceArousal, [0, 0, 0], [1, 2, 2]), [0]));
    expectArrayClose(got.dataSync(), want.dataSync(), { rtol: 1e-6, atol: 1e-7 }, 'valence/arousal');
    tf.dispose([x, want, got, ...out.logits, ...Object.values(out.heads)]);
    esr.dispose();
  });

  it('the training flag reaches every branch; the reference mixed mode is opt-in', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 5 });
    const x = images(2, minInputSize());
    const before = runningStats(esr);
    tf.dispose(esr.forward(x, { training: false }) as unknown as tf.TensorContainer);
    expect(runningStats(esr)).toEqual(before);
    tf.dispose(esr.forward(x, { training: true }) as unknown as tf.TensorContainer);
    const afterTrain = runningStats(esr);
    afterTrain.forEach((s, i) => expect([i, s]).not.toEqual([i, before[i]]));
    tf.dispose(esr.forward(x, { training: false, branchesTraining: true }) as unknown as tf.TensorContainer);
    const mixed = runningStats(esr);
    expect(mixed[0]).toBe(afterTrain[0]);
    expect(mixed[1]).not.toBe(afterTrain[1]);
    expect(mixed[2]).not.toBe(afterTrain[2]);
    x.dispose();
    esr.dispose();
  });

  it('snapshot() / restore() bring back every weight, running statistics included', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 1, seed: 14 });
    const x = images(2, minInputSize());
    const snap = esr.snapshot();
    const before = runningStats(esr);
    const k = esr.branch(1).getLayer('fc').getWeights()[0].dataSync().slice();
    tf.dispose(esr.forward(x, { training: true }) as unknown as tf.TensorContainer);
    esr
      .branch(1)
      .getLayer('fc')
      .setWeights([tf.zerosLike(esr.branch(1).getLayer('fc').getWeights()[0]), tf.zeros([8])]);
    expect(runningStats(esr)).not.toEqual(before);
    esr.restore(snap);
    expect(runningStats(esr)).toEqual(before);
    expect(esr.branch(1).getLayer('fc').getWeights()[0].dataSync()).toEqual(k);
    esr.addBranch();
    expect(() => esr.restore(snap)).toThrow(/snapshot of 3 parts.*got 2/);
    tf.dispose([x, ...snap.parts.flat()]);
    esr.dispose();
  });

  it('variable groups per part; freezing removes a part from training', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 6 });
    expect(esr.variableGroups().map((g) => g.name)).toEqual(['base', 'branch_1', 'branch_2']);
    const all = esr.trainableVariables().length;
    // Per part: 4 convs (2) + 4 BNs (2) + 4 CBAMs (7), + fc (2) in a branch: the reference optimizer's 44 / 46.
    expect(esr.variableGroups().map((g) => g.variables.length)).toEqual([44, 46, 46]);
    esr.setTrainable('base', false);
    expect(esr.variableGroups()[0].variables).toEqual([]);
    expect(esr.trainableVariables().length).toBe(all - 44);
    esr.setTrainable('all', true);
    expect(esr.trainableVariables().length).toBe(all);
    esr.dispose();
  });

  it('resetClassifier: fresh Linear(512→7), every other weight kept', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 7 });
    const conv = esr.branch(2).getLayer('conv3').getWeights()[0].dataSync().slice();
    expect(esr.getClassifier().map((l) => l.getWeights()[0].shape)).toEqual([
      [512, 8],
      [512, 8],
    ]);
    esr.resetClassifier(RAFDB_LABELS);
    expect(esr.numClasses).toBe(7);
    expect(esr.labels).toEqual(RAFDB_LABELS);
    expect(esr.branch(2).getLayer('conv3').getWeights()[0].dataSync()).toEqual(conv);
    expect(esr.branch(1).getLayer('fc').getWeights()[0].shape).toEqual([512, 7]);
    const x = images(1, minInputSize());
    const out = esr.forward(x, { training: false });
    expect(out.logits[1].shape).toEqual([1, 7]);
    tf.dispose([x, ...out.logits, ...Object.values(out.heads)]);
    esr.dispose();
  });

  it('rejects bad input with the fix in the message', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 1, seed: 8 });
    const grey = tf.zeros([1, 96, 96, 1]) as tf.Tensor4D;
    const tiny = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    expect(() => esr.forward(grey, { training: false })).toThrow(/\[\?, \?, \?, 3\]/);
    expect(() => esr.forward(tiny, { training: false })).toThrow(/at least 54×54.*Resize faces to 96×96/);
    expect(() => createEsr({ numClasses: 7 })).toThrow(/labels/);
    expect(() => createEsr('esr10' as never)).toThrow(
      "Unknown ESR config 'esr10'. Valid: esr9-affectnet, desr9-affectnet, desr9-ferplus, desr9-rafdb.",
    );
    const empty = createEsr('desr9-affectnet', { initialBranches: 0 });
    expect(() => empty.forward(tiny, { training: false })).toThrow(/no branches.*addBranch/);
    tf.dispose([grey, tiny]);
    esr.dispose();
    empty.dispose();
  });
});

describe('vote', () => {
  it('plurality of branch argmaxes, ties to the lowest class index', () => {
    const l = (rows: number[][]) => tf.tensor2d(rows);
    const logits = [
      l([
        [0, 5, 0],
        [9, 0, 0],
        [0, 0, 1],
        [0, 1, 0],
      ]),
      l([
        [0, 0, 5],
        [0, 9, 0],
        [0, 1, 0],
        [0, 0, 2],
      ]),
      l([
        [0, 0, 7],
        [0, 0, 9],
        [1, 0, 0],
        [3, 0, 0],
      ]),
      l([
        [0, 3, 0],
        [0, 0, 0.5],
        [0, 2, 0],
        [0, 1, 0],
      ]),
    ];
    // votes: sample 0 {1,2,2,1} tie → 1; sample 1 {0,1,2,2} → 2; sample 2 {2,1,0,1} → 1; sample 3 {1,2,0,1} → 1
    const v = vote(logits);
    expect(v.dtype).toBe('int32');
    expect(Array.from(v.dataSync())).toEqual([1, 2, 1, 1]);
    const tie = vote([l([[0, 1]]), l([[1, 0]])]);
    expect(Array.from(tie.dataSync())).toEqual([0]);
    tf.dispose([...logits, v, tie]);
  });

  it('predict() votes in eval mode', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 3, seed: 9 });
    const x = images(2, minInputSize());
    const out = esr.forward(x, { training: false });
    const want = vote(out.logits);
    const got = esr.predict(x);
    expectArrayClose(got.dataSync(), want.dataSync(), { rtol: 1e-6, atol: 1e-7 }, 'valence/arousal');
    tf.dispose([x, want, got, ...out.logits, ...Object.values(out.heads)]);
    esr.dispose();
  });
});

describe('save / load', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'esr-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('round trip gives identical outputs; the saved folder loads over HTTP as in a browser', async () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 10 });
    const x = images(2, minInputSize());
    tf.dispose(esr.forward(x, { training: true }) as unknown as tf.TensorContainer); // non-trivial running stats
    await esr.save(fileHandler(path.join(dir, 'esr')));
    const files = (await fs.readdir(path.join(dir, 'esr'))).sort();
    expect(files).toEqual(['model.json', 'weights.bin']);

    const loaded = await loadEsr(fileHandler(path.join(dir, 'esr')));
    expect(loaded.config).toEqual(esr.config);
    const a = esr.forward(x, { training: false });
    const b = loaded.forward(x, { training: false });
    for (let i = 0; i < 2; i++) expect(Array.from(b.logits[i].dataSync())).toEqual(Array.from(a.logits[i].dataSync()));
    expect(Array.from(b.heads.spatialAttention.dataSync())).toEqual(Array.from(a.heads.spatialAttention.dataSync()));

    // Serve the folder and load the ensemble the way a browser would.
    const root = path.join(dir, 'esr');
    const server = http.createServer(async (req, res) => {
      try {
        res.end(await fs.readFile(path.join(root, decodeURIComponent(req.url!.split('?')[0]))));
      } catch {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      // tfjs' standard HTTP loader, as in a browser. The fetch shim only re-parses the JSON inside jest's sandbox:
      // Node's fetch builds arrays in the outer realm, which tfjs-layers' tslib (sandbox realm) cannot iterate.
      const fetchFunc = async (url: string | URL | Request) => {
        const r = await fetch(url);
        const bytes = new Uint8Array(await r.arrayBuffer());
        return {
          ok: r.ok,
          status: r.status,
          statusText: r.statusText,
          headers: r.headers,
          url: String(url),
          json: async () => JSON.parse(new TextDecoder().decode(bytes)),
          arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
        } as unknown as Response;
      };
      const remote = await loadEsr(tf.io.http(`http://127.0.0.1:${port}/model.json`, { fetchFunc }));
      const c = remote.forward(x, { training: false });
      for (let i = 0; i < 2; i++)
        expect(Array.from(c.logits[i].dataSync())).toEqual(Array.from(a.logits[i].dataSync()));
      remote.dispose();
      tf.dispose([...c.logits, ...Object.values(c.heads)]);
    } finally {
      server.close();
    }
    tf.dispose([x, ...a.logits, ...Object.values(a.heads), ...b.logits, ...Object.values(b.heads)]);
    esr.dispose();
    loaded.dispose();
  });

  it('refuses a folder that is not a saved model, or a truncated one', async () => {
    await expect(loadEsr(fileHandler(path.join(dir, 'nothing')))).rejects.toThrow(
      /Cannot read a tfjs model at .*model\.json/,
    );
    const esr = createEsr('desr9-affectnet', { initialBranches: 1, seed: 15 });
    await esr.save(fileHandler(path.join(dir, 'partial')));
    esr.dispose();
    const bin = path.join(dir, 'partial', 'weights.bin');
    await fs.writeFile(bin, (await fs.readFile(bin)).subarray(0, 1000));
    const before = tf.memory().numTensors;
    await expect(loadEsr(fileHandler(path.join(dir, 'partial')))).rejects.toThrow(
      /bytes of ESR weights.*save the ensemble again/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('reads the 0.1.0 folder layout (esr.json + one tfjs folder per part) with identical outputs', async () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 16 });
    const legacy = path.join(dir, 'legacy');
    for (const { name, model } of esr.parts()) await model.save(fileHandler(path.join(legacy, name)));
    const manifest = {
      format: 'fer-models-esr',
      formatVersion: 1,
      config: esr.config,
      parts: ['base', 'branch_1', 'branch_2'],
    };
    await fs.writeFile(path.join(legacy, 'esr.json'), JSON.stringify(manifest));
    const loaded = await loadLegacyEsrFolder(legacy);
    expect(loaded.config).toEqual(esr.config);
    const x = images(1, minInputSize());
    const a = esr.forward(x, { training: false });
    const b = loaded.forward(x, { training: false });
    for (let i = 0; i < 2; i++) expect(Array.from(b.logits[i].dataSync())).toEqual(Array.from(a.logits[i].dataSync()));
    tf.dispose([x, ...a.logits, ...Object.values(a.heads), ...b.logits, ...Object.values(b.heads)]);
    esr.dispose();
    loaded.dispose();
  });
});

describe('PyTorch state dicts', () => {
  it('export → import restores every tensor; strict import names missing and unexpected keys', () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 11 });
    const dicts = toTorchStateDicts(esr);
    expect(dicts.map((d) => d.file)).toEqual([
      'Net-Base-Shared_Representations.pt',
      'Net-Branch_1.pt',
      'Net-Branch_2.pt',
    ]);
    expect(dicts.map((d) => d.stateDict.size)).toEqual([68, 70, 70]);
    expect(dicts[1].stateDict.get('conv4.weight')!.shape).toEqual([512, 256, 3, 3]);
    const { esr: back } = fromTorchStateDicts(
      dicts[0].stateDict,
      dicts.slice(1).map((d) => d.stateDict),
    );
    expect(back.config.variant).toBe('cbam');
    const bytes = (t: tf.Tensor) => Buffer.from((t.dataSync() as Float32Array).buffer);
    esr.parts().forEach((p, i) => {
      const w1 = p.model.getWeights();
      const w2 = back.parts()[i].model.getWeights();
      expect(w2.length).toBe(w1.length);
      w1.forEach((w, j) => expect([p.name, j, bytes(w2[j]).equals(bytes(w))]).toEqual([p.name, j, true]));
    });
    const broken = new Map(dicts[1].stateDict);
    broken.delete('fc.bias');
    broken.set('fc_dimensional.weight', broken.get('fc.weight')!);
    expect(() => fromTorchStateDicts(dicts[0].stateDict, [broken])).toThrow(
      /missing \[fc\.bias\], unexpected \[fc_dimensional\.weight\]/,
    );
    esr.dispose();
    back.dispose();
  });

  it('saveTorchCheckpoint writes the reference folder layout that fromTorchCheckpoint reads back', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'esr-pt-'));
    try {
      const esr = createEsr('esr9-affectnet', { initialBranches: 1, seed: 13 });
      const files = await saveTorchCheckpoint(esr, dir);
      expect(files.map((f) => path.basename(f))).toEqual(['Net-Base-Shared_Representations.pt', 'Net-Branch_1.pt']);
      const back = await fromTorchCheckpoint(dir);
      expect([back.config.variant, back.config.valenceArousal, back.numBranches]).toEqual(['original', true, 1]);
      const bytes = (t: tf.Tensor) => Buffer.from((t.dataSync() as Float32Array).buffer);
      esr.parts().forEach((p, i) => {
        const w2 = back.parts()[i].model.getWeights();
        p.model
          .getWeights()
          .forEach((w, j) => expect([p.name, j, bytes(w2[j]).equals(bytes(w))]).toEqual([p.name, j, true]));
      });
      esr.dispose();
      back.dispose();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

/** Output shapes of the `Conv2DBackpropInput` kernels one training gradient step runs. */
async function inputGradientShapes(esr: EsrEnsemble, x: tf.Tensor4D, y: tf.Tensor1D): Promise<number[][]> {
  const info = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(
      () => sumCrossEntropy(esr.forward(x, { training: true }).logits, y),
      esr.trainableVariables(),
    );
    tf.dispose([value, ...Object.values(grads)]);
    return [];
  });
  return info.kernels.filter((k) => k.name === 'Conv2DBackpropInput').map((k) => k.outputShapes[0] as number[]);
}

describe('stem convolution', () => {
  it('a training step never differentiates the image, created or loaded (conv1 gets useLazyInputGradient)', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'esr-stem-'));
    const esr = createEsr('desr9-affectnet', { initialBranches: 1, seed: 13 });
    const s = minInputSize();
    const x = images(2, s);
    const y = tf.tensor1d([1, 3], 'int32');
    try {
      await esr.save(fileHandler(dir));
      const loaded = await loadEsr(fileHandler(dir));
      try {
        for (const model of [esr, loaded]) {
          const shapes = await inputGradientShapes(model, x, y);
          // Every later conv still passes its gradient down (conv2's input: [2, s-4, s-4, 64]) ...
          expect(shapes).toContainEqual([2, s - 4, s - 4, 64]);
          // ... but nothing is computed for the [2, s, s, 3] image.
          expect(shapes.filter((sh) => sh[3] === 3)).toEqual([]);
        }
      } finally {
        loaded.dispose();
      }
    } finally {
      tf.dispose([x, y]);
      esr.dispose();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('memory', () => {
  it('does not leak: eval forward, train forward, predict, a gradient step', async () => {
    const esr = createEsr('desr9-affectnet', { initialBranches: 2, seed: 12 });
    const x = images(2, minInputSize());
    const y = tf.tensor1d([1, 3], 'int32');
    await expectNoLeak(() => esr.forward(x, { training: false }), { returned: 4 });
    await expectNoLeak(() => esr.forward(x, { training: true }), { returned: 4 });
    await expectNoLeak(() => esr.predict(x), { returned: 1 });
    const optimizer = tf.train.sgd(0.01);
    await expectNoLeak(
      () => {
        const { value, grads } = tf.variableGrads(
          () => sumCrossEntropy(esr.forward(x, { training: true }).logits, y),
          esr.trainableVariables(),
        );
        optimizer.applyGradients(grads);
        tf.dispose(grads);
        return value;
      },
      { returned: 1 },
    );
    optimizer.dispose();
    tf.dispose([x, y]);
    esr.dispose();
  });
});
