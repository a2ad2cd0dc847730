/**
 * `fer experiment compare`: hand-made reports in the two writers' formats (ours: camelCase settings; real_torch.py:
 * argparse names), compared against hand-derived differences.
 */
import { compareReports, type TorchReport } from '../src/experiments/real-faces-compare';
import { REAL_FACES_DEFAULTS, type RealFacesReport, type VariantSummary } from '../src/experiments/real-faces';

const summary = (variant: string, acc: number, seconds: number, ips: number, runs = 3): VariantSummary =>
  ({
    variant,
    runs,
    mean: { testAccuracy: acc, trainSeconds: seconds, imagesPerSecond: ips },
    std: { testAccuracy: 0.01, trainSeconds: 0, imagesPerSecond: 0 },
  }) as VariantSummary;

const ours = (): Pick<RealFacesReport, 'settings' | 'summary' | 'peer' | 'majorityRate'> => ({
  settings: { ...REAL_FACES_DEFAULTS, imageSize: 64, trainCap: null, backend: 'native' },
  summary: [summary('none', 0.4, 300, 20), summary('dpp', 0.45, 400, 16)],
  majorityRate: 0.245,
});

const torch = (over: Record<string, unknown> = {}): TorchReport => ({
  settings: {
    image_size: 64,
    branches: REAL_FACES_DEFAULTS.branches,
    first_epochs: REAL_FACES_DEFAULTS.firstEpochs,
    later_epochs: REAL_FACES_DEFAULTS.laterEpochs,
    batch: 32,
    lr_scale: REAL_FACES_DEFAULTS.lrScale,
    lr_step: REAL_FACES_DEFAULTS.lrStep,
    lr_gamma: REAL_FACES_DEFAULTS.lrGamma,
    test_fraction: 1,
    bn_batches: REAL_FACES_DEFAULTS.bnBatches,
    no_pretrained: false,
    ...over,
  },
  summary: [summary('none', 0.41, 200, 32), summary('dpp', 0.42, 250, 25.6), summary('reference', 0.5, 1, 1)],
});

describe('fer experiment compare', () => {
  it('gives ours − PyTorch per shared variant, the 1.5-point verdict and the speed ratio', () => {
    const c = compareReports(ours(), torch());
    expect(c.variants.map((v) => v.variant)).toEqual(['none', 'dpp']); // 'reference' only on one side
    expect(c.variants[0].differencePoints).toBeCloseTo(-1, 10);
    expect(c.variants[0].withinParity).toBe(true);
    expect(c.variants[1].differencePoints).toBeCloseTo(3, 10);
    expect(c.variants[1].withinParity).toBe(false);
    expect(c.markdown).toContain('| `none` | 3 / 3 | 40.0 | 41.0 | -1.0 | yes | 300 / 200 | 0.63 |');
    expect(c.markdown).toContain('| `dpp` | 3 / 3 | 45.0 | 42.0 | +3.0 | no | 400 / 250 | 0.63 |');
    expect(c.markdown).toContain('| PyTorch, `reference` | 3 | 50.0 ± 1.0 |');
  });

  it('refuses two runs of different protocols, naming each difference', () => {
    expect(() => compareReports(ours(), torch({ image_size: 96, lr_scale: 1 }))).toThrow(
      /settings differ \(imageSize 64 vs image_size 96; lrScale 0\.1 vs lr_scale 1\)/,
    );
    expect(() => compareReports(ours(), torch({ no_pretrained: true }))).toThrow(
      /pretrained true vs no_pretrained true/,
    );
  });

  it('says so when the two reports are swapped or foreign, or share no variant', () => {
    const o = ours();
    const t = torch();
    expect(() => compareReports(t as never, o as never)).toThrow(/the other way round/);
    expect(() => compareReports(o, { settings: {}, summary: [] })).toThrow(/the second is neither/);
    expect(() => compareReports(o, { ...t, summary: [summary('reference', 0.5, 1, 1)] })).toThrow(
      /ours has none, dpp and PyTorch's has reference/,
    );
  });
});
