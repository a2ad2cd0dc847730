import * as http from 'node:http';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { AFFECTNET_LABELS, BASIC7_LABELS, RAFDB_LABELS, type FerNetwork } from 'fer-core';
import { fileHandler } from 'fer-core/node';
import { toTorchStateDicts, type EsrEnsemble } from 'fer-models-esr';
import { saveTorchCheckpoint } from 'fer-models-esr/node';
import { manetToTorch } from 'fer-models-manet';
import { serializeTorchStateDict } from 'fer-torch';
import { createModel, listModels, modelInfo, loadModel as loadBrowser } from 'fer-models';
import { loadModel } from 'fer-models/node';

beforeAll(async () => {
  await initBackend({ backend: 'wasm', quiet: true });
});

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-models-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const images = (n: number, s: number, seed = 1) => tf.randomUniform([n, s, s, 3], 0, 1, 'float32', seed) as tf.Tensor4D;

/** Each branch's logits (eval mode) as plain arrays. */
function logits(model: FerNetwork, x: tf.Tensor4D): number[][] {
  const out = model.forward(x, { training: false });
  const values = out.logits.map((l) => Array.from(l.dataSync()));
  tf.dispose([...out.logits, ...Object.values(out.heads)]);
  return values;
}

/** Every weight that is not a classifier's, per layer name (flattened), to prove a label reset kept them. */
function nonClassifierWeights(model: FerNetwork): Map<string, number[]> {
  const classifier = new Set(model.getClassifier());
  const layersOf = (m: FerNetwork) =>
    m.kind === 'esr'
      ? (m as unknown as { parts(): { name: string; model: import('@tensorflow/tfjs-layers').LayersModel }[] })
          .parts()
          .flatMap((p) => p.model.layers.map((l) => ({ key: `${p.name}/${l.name}`, l })))
      : (m as unknown as { model: import('@tensorflow/tfjs-layers').LayersModel }).model.layers.map((l) => ({
          key: l.name,
          l,
        }));
  const out = new Map<string, number[]>();
  for (const { key, l } of layersOf(model)) {
    if (classifier.has(l) || l.name === 'fc_dimensional') continue;
    out.set(
      key,
      l.getWeights().flatMap((w) => Array.from(w.dataSync())),
    );
  }
  return out;
}

/** Serves `root` over HTTP for `fn`, as a static file server would. */
async function serve<T>(root: string, fn: (base: string) => Promise<T>): Promise<T> {
  const server = http.createServer(async (req, res) => {
    try {
      res.end(await fs.readFile(path.join(root, decodeURIComponent(req.url!.split('?')[0]))));
    } catch {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await fn(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  } finally {
    server.close();
  }
}

// Node's fetch builds its JSON in the outer realm, which tfjs (inside jest's sandbox) cannot iterate: re-parse it here.
const fetchFunc = (async (url: string) => {
  const r = await fetch(url);
  const bytes = new Uint8Array(await r.arrayBuffer());
  return {
    ok: r.ok,
    status: r.status,
    statusText: r.statusText,
    headers: r.headers,
    url,
    json: async () => JSON.parse(new TextDecoder().decode(bytes)),
    arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  } as unknown as Response;
}) as unknown as typeof fetch;

describe('createModel', () => {
  it('builds ESR by name with the pretrained config (labels, input convention, branches)', () => {
    const esr = createModel('desr-3.rafdb', { seed: 1, branches: 2 });
    expect([esr.kind, esr.numBranches, esr.config.variant, esr.config.ensembleSize]).toEqual(['esr', 2, 'cbam', 3]);
    expect(esr.labels).toEqual(RAFDB_LABELS);
    expect(esr.input).toEqual(modelInfo('desr-3.rafdb').input);
    expect(esr.input.colorOrder).toBe('rgb');
    esr.dispose();
    const up = createModel('esr-1', { seed: 1 });
    expect([up.config.variant, up.config.valenceArousal, up.numBranches, up.input.colorOrder]).toEqual([
      'original',
      true,
      1,
      'bgr',
    ]);
    up.dispose();
  });

  it('gives a fresh classifier for other labels, and the same weights for the same seed', () => {
    const a = createModel('desr-2', { labels: BASIC7_LABELS, seed: 4 });
    const b = createModel('desr-2', { labels: BASIC7_LABELS, seed: 4 });
    expect(a.numClasses).toBe(7);
    expect(a.getClassifier().map((l) => l.getWeights()[0].shape)).toEqual([
      [512, 7],
      [512, 7],
    ]);
    const x = images(1, 56);
    expect(logits(b, x)).toEqual(logits(a, x));
    tf.dispose(x);
    a.dispose();
    b.dispose();
  });

  it('names what is wrong with a bad name', () => {
    expect(() => createModel('resnet-50')).toThrow(/Unknown model name 'resnet-50'.*desr-<n>/);
    expect(() => createModel('desr-0')).toThrow(/branch count of at least 1/);
    expect(() => createModel('desr-9.imagenet')).toThrow(/Unknown diversified-ESR config 'imagenet'/);
    expect(() => createModel('manet.sfew')).toThrow(/Unknown MA-Net config 'sfew'/);
  });

  it('lists the registered pretrained configs with their input conventions', () => {
    const names = listModels().map((m) => m.name);
    expect(names).toEqual([
      'esr-9.affectnet',
      'desr-9.affectnet',
      'desr-9.ferplus',
      'desr-9.rafdb',
      'manet.rafdb',
      'manet.affectnet',
      'manet.ferplus',
      'manet.msceleb',
    ]);
    const rafdb = modelInfo('manet');
    expect(rafdb.name).toBe('manet.rafdb');
    expect(rafdb.input).toEqual({
      size: 224,
      colorOrder: 'rgb',
      normalization: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    });
    expect(modelInfo('manet.affectnet').input.colorOrder).toBe('bgr');
  });
});

describe('loadModel: ESR from every source kind', () => {
  let esr: EsrEnsemble;
  let x: tf.Tensor4D;
  let expected: number[][];
  beforeAll(async () => {
    esr = createModel('desr-2', { seed: 10, branches: 2, inputSize: 56 });
    x = images(2, 56);
    tf.dispose(esr.forward(x, { training: true }) as unknown as tf.TensorContainer); // non-trivial running stats
    expected = logits(esr, x);
    await esr.save(fileHandler(path.join(dir, 'esr')));
  });
  afterAll(() => {
    esr.dispose();
    x.dispose();
  });

  it('a saved folder (Node path), a model.json path and a tf.io handler give identical outputs', async () => {
    for (const source of [
      path.join(dir, 'esr'),
      path.join(dir, 'esr', 'model.json'),
      fileHandler(path.join(dir, 'esr')),
    ]) {
      const m = await loadModel(source);
      expect(m.kind).toBe('esr');
      expect(m.input).toEqual(esr.input);
      expect(logits(m, x)).toEqual(expected);
      m.dispose();
    }
  });

  it('a URL, with the browser-safe loadModel', async () => {
    await serve(path.join(dir, 'esr'), async (base) => {
      for (const url of [`${base}/model.json`, `${base}/`]) {
        const m = await loadBrowser(url, { fetchFunc });
        expect(logits(m, x)).toEqual(expected);
        m.dispose();
      }
    });
  });

  it('PyTorch checkpoint bytes (base + branches) and the reference checkpoint folder', async () => {
    const files = toTorchStateDicts(esr).map((d) => serializeTorchStateDict(d.stateDict));
    const fromBytes = await loadBrowser(files);
    // The reference's files carry no input convention: the architecture and weights round-trip exactly.
    expect([fromBytes.kind, fromBytes.numBranches]).toEqual(['esr', 2]);
    expect(logits(fromBytes, x)).toEqual(expected);
    fromBytes.dispose();
    await saveTorchCheckpoint(esr, path.join(dir, 'esr-pt'));
    const fromFolder = await loadModel(path.join(dir, 'esr-pt'));
    expect(logits(fromFolder, x)).toEqual(expected);
    fromFolder.dispose();
  });

  it('a 0.1.0 folder (esr.json + one folder per part)', async () => {
    const legacy = path.join(dir, 'legacy');
    for (const { name, model } of esr.parts()) await model.save(fileHandler(path.join(legacy, name)));
    const manifest = {
      format: 'fer-models-esr',
      formatVersion: 1,
      config: esr.config,
      parts: ['base', 'branch_1', 'branch_2'],
    };
    await fs.writeFile(path.join(legacy, 'esr.json'), JSON.stringify(manifest));
    const m = await loadModel(legacy);
    expect(logits(m, x)).toEqual(expected);
    m.dispose();
  });

  it('resets the classifier when the labels differ, keeping every other weight', async () => {
    const m = await loadModel(path.join(dir, 'esr'), { labels: RAFDB_LABELS, seed: 3 });
    expect([m.numClasses, m.labels]).toEqual([7, RAFDB_LABELS]);
    expect(nonClassifierWeights(m)).toEqual(nonClassifierWeights(esr));
    m.dispose();
    const same = await loadModel(path.join(dir, 'esr'), { labels: AFFECTNET_LABELS });
    expect(logits(same, x)).toEqual(expected); // same labels: classifier kept
    same.dispose();
  });

  it('leaves no tensor behind: load + forward + dispose, and a failed load', async () => {
    const before = tf.memory().numTensors;
    const m = await loadModel(path.join(dir, 'esr'), { labels: RAFDB_LABELS });
    logits(m, x);
    m.dispose();
    await expect(loadModel(path.join(dir, 'esr'), { expect: 'manet' })).rejects.toThrow(
      /Expected an MA-Net, but the source holds an ESR ensemble/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('names the fix for sources that hold no model', async () => {
    await expect(loadModel(path.join(dir, 'nothing-here'))).rejects.toThrow(/Nothing at .*nothing-here/);
    await fs.mkdir(path.join(dir, 'empty'), { recursive: true });
    await expect(loadModel(path.join(dir, 'empty'))).rejects.toThrow(/No model in .*model\.json.*esr\.json/);
    const plain = tf.io.fromMemory({
      modelTopology: { class_name: 'Sequential' },
      weightSpecs: [],
      weightData: new ArrayBuffer(0),
    });
    await expect(loadBrowser(plain)).rejects.toThrow(/holds no model of this suite/);
    const notTorch = serializeTorchStateDict(
      new Map([['w', { dtype: 'float32', shape: [1], data: new Uint8Array(4) }]]),
    );
    await expect(loadBrowser(notTorch)).rejects.toThrow(
      /Cannot tell what the checkpoint holds \(file kinds: unknown\)/,
    );
  });
});

describe('loadModel: MA-Net', () => {
  it('round-trips through a handler and PyTorch bytes with identical outputs; other labels get fresh heads', async () => {
    const manet = createModel('manet', { seed: 2 });
    const x = images(1, 224, 3);
    const expected = logits(manet, x);
    await manet.save(fileHandler(path.join(dir, 'manet')));
    const saved = await loadModel(path.join(dir, 'manet'));
    expect([saved.kind, saved.numBranches, saved.labels, saved.input]).toEqual(['manet', 2, manet.labels, manet.input]);
    expect(logits(saved, x)).toEqual(expected);
    saved.dispose();

    const bytes = serializeTorchStateDict(manetToTorch(manet, 'module.'));
    const fromTorch = await loadBrowser(bytes);
    expect(fromTorch.labels).toEqual(RAFDB_LABELS); // 7 heads read as RAF-DB's order
    expect(logits(fromTorch, x)).toEqual(expected);
    fromTorch.dispose();

    const before = tf.memory().numTensors;
    const eight = await loadBrowser(bytes, { labels: AFFECTNET_LABELS, seed: 1 });
    expect(eight.getClassifier().map((l) => l.getWeights()[0].shape)).toEqual([
      [512, 8],
      [512, 8],
    ]);
    expect(nonClassifierWeights(eight)).toEqual(nonClassifierWeights(manet));
    eight.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(x);
    manet.dispose();
  });
});
