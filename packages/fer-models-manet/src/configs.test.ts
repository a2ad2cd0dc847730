import { AFFECTNET_LABELS, FerInputError, RAFDB_LABELS } from 'fer-core';
import { MANET_CONFIGS, resolveManetConfig } from './configs';
import { manetTorchEntries } from './weights/torch-keys';

describe('resolveManetConfig', () => {
  test('defaults: 7 classes, seed order, Kaiming convs', () => {
    const c = resolveManetConfig();
    expect(c).toMatchObject({ numClasses: 7, msScaleOrder: 'forward', convInit: 'kaiming', seed: null, name: 'manet' });
    expect(c.labels).toEqual(AFFECTNET_LABELS.slice(0, 7));
  });

  test('variants supply classes and labels', () => {
    expect(resolveManetConfig({ variant: 'rafdb' })).toMatchObject({ numClasses: 7, labels: RAFDB_LABELS });
    expect(resolveManetConfig({ variant: 'affectnet' })).toMatchObject({ numClasses: 8, labels: AFFECTNET_LABELS });
    expect(resolveManetConfig({ variant: 'msceleb' })).toMatchObject({ numClasses: 12666, labels: null });
    expect(MANET_CONFIGS.ferplus.referenceBatchSize).toBe(32);
  });

  test('bad options say what was expected and how to fix it', () => {
    expect(() => resolveManetConfig({ numClasses: 0 })).toThrow(FerInputError);
    expect(() => resolveManetConfig({ msScaleOrder: 'backward' as never })).toThrow(
      /Unknown msScaleOrder 'backward'. Valid: forward, reverse/,
    );
    expect(() => resolveManetConfig({ variant: 'raf' as never })).toThrow(/Valid: msceleb, rafdb, affectnet, ferplus/);
    expect(() => resolveManetConfig({ numClasses: 3, labels: RAFDB_LABELS })).toThrow(/numClasses = 3/);
  });
});

describe('manetTorchEntries (the reference state dict, docs/method.md#manet)', () => {
  const count = (k: number, filter: (key: string) => boolean = () => true) =>
    manetTorchEntries({ numClasses: k })
      .filter((e) => !/running_|num_batches/.test(e.key) && filter(e.key))
      .reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0);

  test('692 entries, 104 of them num_batches_tracked, indices in order', () => {
    const e = manetTorchEntries({ numClasses: 8 });
    expect(e).toHaveLength(692);
    expect(e.filter((x) => x.key.endsWith('num_batches_tracked'))).toHaveLength(104);
    expect(e.map((x) => x.index)).toEqual([...e.keys()]);
  });

  test('parameter counts match the reference (docs/method.md#manet)', () => {
    expect(count(8)).toBe(50_548_240);
    expect(count(7)).toBe(50_547_214);
    expect(count(12666)).toBe(63_535_348);
    expect(count(8, (k) => k.startsWith('layer1.'))).toBe(147_968);
    expect(count(8, (k) => k.startsWith('layer2.'))).toBe(525_568);
    expect(count(8, (k) => k.startsWith('layer3_1_p2.'))).toBe(2_116_840);
    expect(count(8, (k) => k.startsWith('layer4_1_p3.'))).toBe(8_460_552);
    expect(count(8, (k) => k.startsWith('layer3_2.'))).toBe(1_510_912);
    expect(count(8, (k) => k.startsWith('layer4_2.'))).toBe(6_036_480);
    expect(count(8, (k) => k.startsWith('fc_1.'))).toBe(4_104);
    // CBAM(512): 33,412 parameters (docs/method.md#cbam)
    expect(count(8, (k) => k.startsWith('layer4_1_p1.0.cbam.'))).toBe(33_412);
  });
});
