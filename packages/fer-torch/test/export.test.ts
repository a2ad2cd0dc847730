/**
 * Export: round trips, the structure of what we write against torch.save's own files, the reference ESR folder,
 * and — when Debian's python3-torch is installed — PyTorch itself loading our files with weights_only=True and
 * writing files (views, dtypes, legacy format) for us to read.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PickledObject, ZipReader } from 'fer-torch/internal';
import { UnsafePickleError, serializeTorchStateDict, type RawTensor, type StateDict } from 'fer-torch';
import { readSafetensors, readStateDict, readTorchFile, writeSafetensors, writeTorchStateDict } from 'fer-torch/node';
import { REFERENCE_DIR, describeIfExists } from 'fer-test-utils';
import { bytesSource } from '../src/bytes';
import { opcodeName } from '../src/pickle';

const ESR = path.join(REFERENCE_DIR, 'esr_cbam');

/** Exact values of any dtype (float64 and int64 included) as JS numbers. */
function exactValues(t: RawTensor): number[] {
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    switch (t.dtype) {
      case 'float64':
        out.push(dv.getFloat64(i * 8, true));
        break;
      case 'float32':
        out.push(dv.getFloat32(i * 4, true));
        break;
      case 'int64':
        out.push(Number(dv.getBigInt64(i * 8, true)));
        break;
      case 'int32':
        out.push(dv.getInt32(i * 4, true));
        break;
      case 'int16':
        out.push(dv.getInt16(i * 2, true));
        break;
      case 'int8':
        out.push(dv.getInt8(i));
        break;
      case 'uint8':
      case 'bool':
        out.push(dv.getUint8(i));
        break;
      case 'float16':
      case 'bfloat16': {
        const h = dv.getUint16(i * 2, true);
        if (t.dtype === 'bfloat16') out.push(new Float32Array(new Uint32Array([h << 16]).buffer)[0]);
        else {
          const e = (h >> 10) & 31,
            m = h & 1023,
            s = h & 0x8000 ? -1 : 1;
          out.push(
            e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15),
          );
        }
      }
    }
  }
  return out;
}

function bytesOf(arr: ArrayBufferView): Uint8Array {
  return new Uint8Array(arr.buffer.slice(arr.byteOffset, arr.byteOffset + arr.byteLength));
}

const shared = bytesOf(new Float32Array([0.5, -1.5, 2.25]));
/** One of every dtype, a 0-d scalar, an empty tensor and two tensors sharing one buffer (tied weights). */
function sampleStateDict(): StateDict {
  return new Map<string, RawTensor>([
    [
      'conv.weight',
      { dtype: 'float32', shape: [2, 1, 2, 2], data: bytesOf(new Float32Array([1, -2, 3.5, 1e-8, 0, -0, 7, 8])) },
    ],
    ['f64', { dtype: 'float64', shape: [2], data: bytesOf(new Float64Array([Math.PI, -1e300])) }],
    ['f16', { dtype: 'float16', shape: [2], data: bytesOf(new Uint16Array([0x3c00, 0xc100])) }],
    ['bf16', { dtype: 'bfloat16', shape: [2], data: bytesOf(new Uint16Array([0x3f80, 0x4049])) }],
    ['i64', { dtype: 'int64', shape: [3], data: bytesOf(new BigInt64Array([1n, -2n, 2n ** 40n])) }],
    ['i32', { dtype: 'int32', shape: [2], data: bytesOf(new Int32Array([7, -8])) }],
    ['i16', { dtype: 'int16', shape: [1], data: bytesOf(new Int16Array([-300])) }],
    ['i8', { dtype: 'int8', shape: [1], data: bytesOf(new Int8Array([-5])) }],
    ['u8', { dtype: 'uint8', shape: [2], data: new Uint8Array([0, 255]) }],
    ['flag', { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) }],
    ['bn.num_batches_tracked', { dtype: 'int64', shape: [], data: bytesOf(new BigInt64Array([276570n])) }],
    ['empty', { dtype: 'float32', shape: [0, 3], data: new Uint8Array(0) }],
    ['tied_a', { dtype: 'float32', shape: [3], data: shared }],
    ['tied_b', { dtype: 'float32', shape: [3], data: shared }],
  ]);
}

function expectSameDict(actual: StateDict, expected: StateDict): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [k, t] of expected) {
    const a = actual.get(k) as RawTensor;
    expect([k, a.dtype, a.shape]).toEqual([k, t.dtype, t.shape]);
    expect([k, Buffer.compare(Buffer.from(a.data), Buffer.from(t.data))]).toEqual([k, 0]);
  }
}

/** GLOBAL names and opcode names used by a protocol-2 data.pkl, found by walking its opcodes. */
function pickleGlobals(pkl: Uint8Array): string[] {
  const text = new TextDecoder('latin1').decode(pkl);
  return [...new Set([...text.matchAll(/c([\w.]+)\n(\w+)\n/g)].map((m) => `${m[1]}.${m[2]}`))].sort();
}

describe('export round trips', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'fer-torch-export-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('torch.save zip: write then read gives identical tensors; tied tensors share one storage', async () => {
    const sd = sampleStateDict();
    const file = path.join(dir, 'weights.pt');
    await writeTorchStateDict(file, sd);
    expectSameDict(await readStateDict(file), sd);
    const zip = ZipReader.open(bytesSource(readFileSync(file), file));
    const names = zip.entries.map((e) => e.name);
    expect(names[0]).toBe('weights/data.pkl');
    expect(names[names.length - 1]).toBe('weights/version');
    expect(names.filter((n) => n.startsWith('weights/data/'))).toHaveLength(sd.size - 1); // tied_b reuses tied_a's storage
    expect(new TextDecoder().decode(zip.read('weights/version'))).toBe('3\n');
  });

  it('wrapped {state_dict: ...} checkpoints read back with key and prefix options', async () => {
    const sd = sampleStateDict();
    const bytes = serializeTorchStateDict(new Map([...sd].map(([k, v]) => [`module.${k}`, v])), {
      wrapKey: 'state_dict',
    });
    expectSameDict(await readStateDict(bytes, { key: 'state_dict', stripPrefix: 'module.' }), sd);
  });

  it('safetensors: write then read gives identical tensors and metadata', async () => {
    const sd = sampleStateDict();
    const file = path.join(dir, 'weights.safetensors');
    await writeSafetensors(file, sd, { format: 'pt' });
    const back = await readSafetensors(file);
    expect(back.metadata).toEqual({ format: 'pt' });
    expectSameDict(new Map([...sd.keys()].map((k) => [k, back.tensors.get(k) as RawTensor])), sd);
    const viaReadStateDict = await readStateDict(file);
    expect(new Set(viaReadStateDict.keys())).toEqual(new Set(sd.keys()));
    expectSameDict(new Map([...sd.keys()].map((k) => [k, viaReadStateDict.get(k) as RawTensor])), sd);
  });

  it('refuses to export malformed tensors', () => {
    const bad = new Map([['w', { dtype: 'float32' as const, shape: [3], data: new Uint8Array(8) }]]);
    expect(() => serializeTorchStateDict(bad)).toThrow(/needs 12 bytes, got 8/);
  });
});

describeIfExists(ESR, 'exported .pt structure matches torch.save files', () => {
  it('same entry layout, flags, alignment and pickle globals as the genuine checkpoint', async () => {
    const genuinePath = path.join(ESR, 'torch_checkpoint/3/Net-Base-Shared_Representations.pt');
    const genuine = ZipReader.open(bytesSource(readFileSync(genuinePath), 'genuine'));
    const sd = await readStateDict(genuinePath);
    const ours = serializeTorchStateDict(sd, { archiveName: 'Net-Base-Shared_Representations' });
    const mine = ZipReader.open(bytesSource(ours, 'ours'));
    // same entries in the same order; storages byte-for-byte the same size (data.pkl is shorter: no _metadata here)
    const layout = (z: ZipReader) =>
      z.entries.map((e) => [e.name, e.method, e.name.endsWith('data.pkl') ? -1 : e.size, e.dataOffset % 64]);
    expect(layout(mine)).toEqual(layout(genuine));
    const pg = genuine.read(genuine.entries[0]);
    const pm = mine.read(mine.entries[0]);
    expect(pickleGlobals(pm)).toEqual(pickleGlobals(pg));
    expect(pickleGlobals(pm)).toEqual([
      'collections.OrderedDict',
      'torch.FloatStorage',
      'torch.LongStorage',
      'torch._utils._rebuild_tensor_v2',
    ]);
    // without _metadata the pickle is the genuine one minus the trailing BUILD of {'_metadata': ...}
    expect(Buffer.from(pm.subarray(0, pm.length - 1)).equals(Buffer.from(pg.subarray(0, pm.length - 1)))).toBe(true);
    expect(opcodeName(pm[pm.length - 1])).toBe('STOP');
    // local headers: flags 0x0808, stored, FB padding extra field; 16-byte data descriptors; ZIP64 end records
    const b = Buffer.from(ours);
    expect(b.readUInt32LE(0)).toBe(0x04034b50);
    expect(b.readUInt16LE(6)).toBe(0x0808);
    expect(b.toString('latin1', 30 + 40, 30 + 42)).toBe('FB');
    expect(b.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06]))).toBe(true);
    expect(b.includes(Buffer.from([0x50, 0x4b, 0x06, 0x07]))).toBe(true);
  });
});

describeIfExists(ESR, 'the reference ESR checkpoint folder', () => {
  it('each Net-*.pt reads (and re-exports to safetensors) equal to weights_init', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'fer-torch-esr-'));
    try {
      const parts: Array<[string, string]> = [
        ['Net-Base-Shared_Representations.pt', 'base.safetensors'],
        ...[1, 2, 3].map((b): [string, string] => [`Net-Branch_${b}.pt`, `branch_${b}.safetensors`]),
      ];
      for (const [src, dst] of parts) {
        const target = path.join(out, dst);
        await writeSafetensors(target, await readStateDict(path.join(ESR, 'torch_checkpoint/3', src)), { source: src });
        const mine = await readSafetensors(target);
        const ref = (await readSafetensors(path.join(ESR, 'weights_init', dst))).tensors;
        expect(mine.metadata).toEqual({ source: src });
        expect(mine.tensors.size).toBe(ref.size);
        for (const [k, t] of ref) {
          const m = mine.tensors.get(k) as RawTensor;
          // the fixture stores 0-d scalars as [1]; our files keep torch's []
          expect([k, m.dtype, m.shape.length === 0 ? [1] : m.shape]).toEqual([k, t.dtype, t.shape]);
          expect([k, Buffer.compare(Buffer.from(m.data), Buffer.from(t.data))]).toEqual([k, 0]);
        }
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

const PYTHON = '/usr/bin/python3';
// find_spec locates torch without importing it (importing takes seconds).
const hasTorch =
  existsSync(PYTHON) &&
  spawnSync(PYTHON, ['-c', 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("torch") else 1)'], {
    timeout: 60_000,
  }).status === 0;
const describeIfTorch = (name: string, fn: () => void) =>
  hasTorch
    ? describe(name, fn)
    : describe.skip(`${name} [skipped: ${PYTHON} has no torch; apt-get install -y python3-torch to run]`, fn);

const PY_SCRIPT = String.raw`
import collections, json, os, sys, torch
d = sys.argv[1]
base = torch.arange(24, dtype=torch.float32)
c = collections.OrderedDict()
torch.manual_seed(0)
c['f32'] = torch.randn(2, 3)
c['f64'] = torch.randn(3, dtype=torch.float64)
c['f16'] = torch.randn(4).half()
c['bf16'] = torch.randn(4).bfloat16()
c['i64'] = torch.tensor([1, -2, 2**40])
c['i32'] = torch.tensor([7, -8], dtype=torch.int32)
c['u8'] = torch.tensor([0, 255], dtype=torch.uint8)
c['bool'] = torch.tensor([True, False, True])
c['scalar'] = torch.tensor(3.5)
c['empty'] = torch.zeros(0, 3)
c['transposed'] = base.view(4, 6).t()
c['strided'] = base[5:17:3]
c['row'] = base.view(2, 12)[1]
c['expanded'] = torch.tensor([1.0, 2.0]).expand(3, 2)
c['param'] = torch.nn.Parameter(torch.ones(2))
torch.save(c, os.path.join(d, 'py_zip.pt'))
torch.save(c, os.path.join(d, 'py_legacy.pt'), _use_new_zipfile_serialization=False)
import numpy as np
class RecorderMeter:  # as in MA-Net's main.py: numpy arrays of per-epoch losses and accuracies
    def __init__(self, total_epoch):
        self.total_epoch, self.current_epoch = total_epoch, 0
        self.epoch_losses = np.zeros((total_epoch, 2), dtype=np.float32)
        self.epoch_accuracy = np.zeros((total_epoch, 2), dtype=np.float32)
net = torch.nn.Linear(3, 2)
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
net(torch.ones(1, 3)).sum().backward()
opt.step()
ckpt = {'epoch': 3, 'state_dict': c, 'best_acc': torch.tensor(61.5), 'optimizer': opt.state_dict(), 'recorder': RecorderMeter(4)}
torch.save(ckpt, os.path.join(d, 'py_ckpt.pth.tar'))
torch.save(ckpt, os.path.join(d, 'py_ckpt_legacy.pth.tar'), _use_new_zipfile_serialization=False)
big = collections.OrderedDict((f'layer{i}.weight', torch.full((2,), float(i))) for i in range(1100))
big['layer7.weight'] = torch.tensor(3, dtype=torch.int64)
torch.save(big, os.path.join(d, 'py_big.pt'))
m = torch.nn.Sequential(collections.OrderedDict([('conv', torch.nn.Conv2d(1, 2, 3)), ('bn', torch.nn.BatchNorm2d(2))]))
m.register_buffer('scratch', torch.ones(1), persistent=False)
torch.save(m, os.path.join(d, 'py_model.pt'))
torch.save(m, os.path.join(d, 'py_model_legacy.pt'), _use_new_zipfile_serialization=False)
desc = lambda t: [str(t.dtype).replace('torch.', ''), list(t.shape), t.detach().double().flatten().tolist()]
out = {'python': {k: desc(v) for k, v in c.items()}, 'model': {k: desc(v) for k, v in m.state_dict().items()}, 'ours': {}}
for f in sorted(os.listdir(d)):
    if f.startswith('ts_'):
        obj = torch.load(os.path.join(d, f), weights_only=True)
        sd = obj['state_dict'] if 'state_dict' in obj else obj
        out['ours'][f] = {k: desc(v) for k, v in sd.items()}
        out['ours'][f]['__tied__'] = sd['tied_a'].data_ptr() == sd['tied_b'].data_ptr()
        out['ours'][f]['__metadata__'] = getattr(sd, '_metadata', None)
print(json.dumps(out))
`;

describeIfTorch(`PyTorch interop (${PYTHON} with torch)`, () => {
  let dir: string;
  let result: {
    python: Record<string, [string, number[], number[]]>;
    model: Record<string, [string, number[], number[]]>;
    ours: Record<string, Record<string, unknown>>;
  };
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'fer-torch-py-'));
    const sd = sampleStateDict();
    writeFileSync(
      path.join(dir, 'ts_plain.pt'),
      serializeTorchStateDict(sd, {
        archiveName: 'ts_plain',
        metadata: new Map([
          ['', { version: 1 }],
          ['bn', { version: 2 }],
        ]),
      }),
    );
    writeFileSync(
      path.join(dir, 'ts_wrapped.pth.tar'),
      serializeTorchStateDict(sd, { archiveName: 'ts_wrapped.pth', wrapKey: 'state_dict' }),
    );
    const r = spawnSync(PYTHON, ['-c', PY_SCRIPT, dir], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
    result = JSON.parse(r.stdout);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('torch.load(weights_only=True) accepts our files and sees the same dtypes, shapes and values', () => {
    const sd = sampleStateDict();
    for (const f of ['ts_plain.pt', 'ts_wrapped.pth.tar']) {
      const got = result.ours[f];
      for (const [k, t] of sd) {
        const [dtype, shape, vals] = got[k] as [string, number[], number[]];
        expect([f, k, dtype, shape]).toEqual([f, k, t.dtype === 'float32' ? 'float32' : t.dtype, t.shape]);
        expect([f, k, vals]).toEqual([f, k, exactValues(t)]);
      }
      expect(got.__tied__).toBe(true);
    }
    expect(result.ours['ts_plain.pt'].__metadata__).toEqual({ '': { version: 1 }, bn: { version: 2 } });
  });

  it.each(['py_zip.pt', 'py_legacy.pt'])(
    'reads %s (dtypes, views, expand, Parameter, scalar) as PyTorch sees it',
    async (f) => {
      const sd = await readStateDict(path.join(dir, f));
      for (const [k, [dtype, shape, vals]] of Object.entries(result.python)) {
        const t = sd.get(k) as RawTensor;
        expect([k, t.dtype, t.shape]).toEqual([k, dtype, shape]);
        expect([k, exactValues(t)]).toEqual([k, vals]);
      }
    },
  );

  it('re-exports a 1100-tensor dict byte-identical to torch.save (memo past 256, SETITEMS batches of 1000)', async () => {
    const file = path.join(dir, 'py_big.pt');
    const sd = await readStateDict(file);
    expect(sd.size).toBe(1100);
    expect(Buffer.from(serializeTorchStateDict(sd, { archiveName: 'py_big' })).equals(readFileSync(file))).toBe(true);
  });

  it.each(['py_model.pt', 'py_model_legacy.pt'])(
    'rebuilds state_dict() from a whole pickled nn.Module (%s), only in inert mode',
    async (f) => {
      await expect(readStateDict(path.join(dir, f))).rejects.toThrow(UnsafePickleError);
      const sd = await readStateDict(path.join(dir, f), { unknownGlobals: 'inert' });
      expect([...sd.keys()]).toEqual(Object.keys(result.model));
      for (const [k, [dtype, shape, vals]] of Object.entries(result.model)) {
        const t = sd.get(k) as RawTensor;
        expect([k, t.dtype, t.shape, exactValues(t)]).toEqual([k, dtype, shape, vals]);
      }
    },
  );

  it.each(['py_ckpt.pth.tar', 'py_ckpt_legacy.pth.tar'])(
    'reads a training checkpoint with a RecorderMeter and SGD state (%s)',
    async (f) => {
      const file = path.join(dir, f);
      await expect(readStateDict(file, { key: 'state_dict' })).rejects.toThrow(/__main__\.RecorderMeter|numpy/);
      const sd = await readStateDict(file, { key: 'state_dict', unknownGlobals: 'inert' });
      expect([...sd.keys()]).toEqual(Object.keys(result.python));
      const tree = (await readTorchFile(file, { unknownGlobals: 'inert' })) as Map<string, unknown>;
      expect(tree.get('epoch')).toBe(3);
      expect(exactValues(tree.get('best_acc') as RawTensor)).toEqual([61.5]);
      const rec = tree.get('recorder') as PickledObject;
      expect(rec.qualifiedName).toBe('__main__.RecorderMeter');
      expect((rec.state as Map<string, unknown>).get('total_epoch')).toBe(4);
      const optState = (tree.get('optimizer') as Map<string, Map<number, Map<string, RawTensor>>>).get('state');
      expect([...(optState?.keys() ?? [])]).toEqual([0, 1]);
      expect(optState?.get(0)?.get('momentum_buffer')?.shape).toEqual([2, 3]);
    },
  );
});
