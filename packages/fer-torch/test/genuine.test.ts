/**
 * Genuine PyTorch files from ../shared: every tensor must equal its independently stored counterpart bit for bit,
 * and what we export must be byte-identical to what PyTorch 1.13 wrote.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ZipReader, torchArchiveName } from 'fer-torch/internal';
import { extractStateDict, serializeTorchStateDict, stateDictMetadata, type RawTensor } from 'fer-torch';
import { readSafetensors, readStateDict, readTorchFile } from 'fer-torch/node';
import { DATA_DIR, REFERENCE_DIR, describeIfExists } from 'fer-test-utils';
import { bytesSource } from '../src/bytes';

const ESR = path.join(REFERENCE_DIR, 'esr_cbam');
const MANET = path.join(REFERENCE_DIR, 'manet');
const ESR9 = path.join(DATA_DIR, 'esr9-affectnet', 'weights');

/**
 * The fixture's safetensors writer stored 0-d scalars (num_batches_tracked) as shape [1] although its manifest and
 * the .pt files say []. Shapes are compared exactly otherwise.
 */
function expectSameTensor(actual: RawTensor, expected: RawTensor, name: string): void {
  const scalarQuirk = actual.shape.length === 0 && expected.shape.length === 1 && expected.shape[0] === 1;
  expect({ name, dtype: actual.dtype, shape: scalarQuirk ? [1] : actual.shape }).toEqual({
    name,
    dtype: expected.dtype,
    shape: expected.shape,
  });
  expect(Buffer.compare(Buffer.from(actual.data), Buffer.from(expected.data))).toBe(0);
}

const ESR_PARTS = [
  ['Net-Base-Shared_Representations.pt', 'base', 'base'],
  ['Net-Branch_1.pt', 'branch_1', 'branch_1'],
  ['Net-Branch_2.pt', 'branch_2', 'branch_2'],
  ['Net-Branch_3.pt', 'branch_3', 'branch_3'],
] as const;

describeIfExists(ESR, 'genuine torch.save zip files (esr_cbam/torch_checkpoint/3)', () => {
  const manifest = JSON.parse(readFileSync(path.join(ESR, 'manifest.json'), 'utf8'));

  it.each(ESR_PARTS)(
    '%s equals weights_init/%s.safetensors bit for bit, in state_dict order',
    async (file, st, part) => {
      const sd = await readStateDict(path.join(ESR, 'torch_checkpoint/3', file));
      const ref = (await readSafetensors(path.join(ESR, 'weights_init', `${st}.safetensors`))).tensors;
      const info = manifest.torch_checkpoint.files[part];
      expect([...sd.keys()]).toEqual(info.keys_in_order);
      expect(new Set(sd.keys())).toEqual(new Set(ref.keys()));
      for (const [k, t] of ref) expectSameTensor(sd.get(k) as RawTensor, t, k);
      // shapes also match the manifest's per-tensor record (which has [] for scalars)
      for (const rec of manifest.tensors.filter((r: { file: string }) => r.file === `weights_init/${st}.safetensors`)) {
        expect([rec.name, (sd.get(rec.name) as RawTensor).shape]).toEqual([rec.name, rec.shape]);
      }
    },
  );

  it('finds every zip entry at the data offset the manifest records (64-byte aligned)', () => {
    for (const [file, , part] of ESR_PARTS) {
      const bytes = readFileSync(path.join(ESR, 'torch_checkpoint/3', file));
      const zip = ZipReader.open(bytesSource(bytes, file));
      const got = zip.entries.map((e) => ({
        name: e.name,
        compress_type: e.method,
        size: e.size,
        data_offset: e.dataOffset,
      }));
      expect(got).toEqual(manifest.torch_checkpoint.files[part].zip_entries);
      expect(zip.entries.every((e) => e.dataOffset % 64 === 0)).toBe(true);
    }
  });

  it('keeps the OrderedDict _metadata (BatchNorm version 2, others 1)', async () => {
    const obj = await readTorchFile(path.join(ESR, 'torch_checkpoint/3/Net-Base-Shared_Representations.pt'));
    const md = stateDictMetadata(obj);
    expect(md?.get('bn1')?.get('version')).toBe(2);
    expect(md?.get('conv1')?.get('version')).toBe(1);
    expect(md?.get('')?.get('version')).toBe(1);
  });

  it.each(ESR_PARTS)('re-exports %s byte-identical to what torch.save wrote', async (file) => {
    const f = path.join(ESR, 'torch_checkpoint/3', file);
    const obj = await readTorchFile(f);
    const out = serializeTorchStateDict(extractStateDict(obj), {
      archiveName: torchArchiveName(f),
      metadata: stateDictMetadata(obj),
    });
    const ref = readFileSync(f);
    expect(out.byteLength).toBe(ref.byteLength);
    expect(createHash('sha256').update(out).digest('hex')).toBe(createHash('sha256').update(ref).digest('hex'));
  });
});

describeIfExists(MANET, 'genuine MS-Celeb-format training checkpoint (manet/msceleb_format)', () => {
  const file = path.join(MANET, 'msceleb_format/Pretrained_on_MSCeleb_subset.pth.tar');

  it("reads checkpoint['state_dict'] equal to msceleb_subset.safetensors, and strips 'module.'", async () => {
    const ref = (await readSafetensors(path.join(MANET, 'msceleb_subset.safetensors'))).tensors;
    const auto = await readStateDict(file); // finds the 'state_dict' entry by itself
    const keyed = await readStateDict(file, { key: 'state_dict' });
    expect([...auto.keys()]).toEqual([...keyed.keys()]);
    expect(keyed.size).toBe(30);
    for (const [k, t] of ref) expectSameTensor(keyed.get(k) as RawTensor, t, k);
    const stripped = await readStateDict(file, { key: 'state_dict', stripPrefix: 'module.' });
    expect([...stripped.keys()]).toEqual([...keyed.keys()].map((k) => k.slice('module.'.length)));
    expect(stripped.get('conv1.weight')?.shape).toEqual([64, 3, 7, 7]);
  });

  it('re-exports the wrapped {state_dict: ...} file byte-identical to torch.save', async () => {
    const obj = await readTorchFile(file);
    const out = serializeTorchStateDict(extractStateDict(obj, { key: 'state_dict' }), {
      archiveName: torchArchiveName(file),
      metadata: stateDictMetadata(obj, 'state_dict'),
      wrapKey: 'state_dict',
    });
    expect(Buffer.compare(Buffer.from(out), readFileSync(file))).toBe(0);
  });
});

describeIfExists(ESR9, 'legacy (pre-1.6) torch.save file: upstream ESR-9 base', () => {
  it('reads all 28 tensors equal to base-extracted.bin, in file order', async () => {
    const sd = await readStateDict(path.join(ESR9, 'Net-Base-Shared_Representations.pt'));
    const meta = JSON.parse(readFileSync(path.join(ESR9, 'base-extracted.json'), 'utf8'));
    const bin = readFileSync(path.join(ESR9, 'base-extracted.bin'));
    expect([...sd.keys()]).toEqual(meta.tensors.map((t: { name: string }) => t.name));
    let total = 0;
    for (const rec of meta.tensors) {
      const t = sd.get(rec.name) as RawTensor;
      expect([rec.name, t.dtype, t.shape]).toEqual([rec.name, rec.dtype, rec.shape]);
      const want = bin.subarray(rec.byteOffset, rec.byteOffset + rec.byteLength);
      expect(Buffer.compare(Buffer.from(t.data), want)).toBe(0);
      expect(createHash('sha256').update(t.data).digest('hex')).toBe(rec.sha256);
      total += t.data.byteLength / (t.dtype === 'int64' ? 8 : 4);
    }
    expect(total).toBe(375684);
  });
});
