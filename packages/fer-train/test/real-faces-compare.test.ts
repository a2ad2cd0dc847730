/**
 * `fer experiment compare`: hand-made reports in the two writers' formats (ours: camelCase settings; real_torch.py:
 * argparse names; runs in one shape), compared against hand-derived means and differences.
 */
import { compareReports, type OursReport, type TorchReport } from '../src/experiments/real-faces-compare';
import { REAL_FACES_DEFAULTS, type RunResult } from '../src/experiments/real-faces';

const run = (variant: RunResult['variant'], seed: number, acc: number, seconds: number, ips: number): RunResult => ({
  variant,
  seed,
  test: { size: 10, accuracy: acc, macroF1: acc / 2, branchAccuracy: [acc], confusion: [] },
  holdout: { size: 5, accuracy: 0.5, macroF1: 0.4, branchAccuracy: [0.5], confusion: [] },
  selection: [0.5],
  trainSeconds: seconds,
  totalSeconds: seconds,
  cpuSeconds: seconds,
  trainImages: seconds * ips,
  imagesPerSecond: ips,
  curves: { trainLoss: [1], holdoutAccuracy: [0.5], stageStarts: [0] },
});

const ours = (runs: RunResult[]): OursReport => ({
  settings: { ...REAL_FACES_DEFAULTS, trainCap: null, backend: 'native' },
  runs,
  majorityRate: 0.245,
});

const torch = (runs: RunResult[], over: Record<string, unknown> = {}): TorchReport => ({
  settings: {
    image_size: REAL_FACES_DEFAULTS.imageSize,
    branches: REAL_FACES_DEFAULTS.branches,
    first_epochs: REAL_FACES_DEFAULTS.firstEpochs,
    later_epochs: REAL_FACES_DEFAULTS.laterEpochs,
    batch: 32,
    lr_scale: REAL_FACES_DEFAULTS.lrScale,
    lr_step: REAL_FACES_DEFAULTS.lrStep,
    lr_gamma: REAL_FACES_DEFAULTS.lrGamma,
    test_fraction: REAL_FACES_DEFAULTS.testFraction,
    bn_batches: REAL_FACES_DEFAULTS.bnBatches,
    no_pretrained: false,
    ...over,
  },
  runs,
});

describe('fer experiment compare', () => {
  it('merges each side, compares per variant over the seeds both ran: difference, 1.5-point verdict, speed ratio', () => {
    // Ours in two reports; 'none' seed 3 only on our side, 'reference' only on PyTorch's.
    const o = [
      ours([run('none', 1, 0.4, 300, 20), run('none', 2, 0.42, 300, 20), run('none', 3, 0.1, 300, 20)]),
      ours([run('dpp', 1, 0.45, 400, 16), run('dpp', 2, 0.45, 400, 16)]),
    ];
    const t = [
      torch([run('none', 1, 0.41, 200, 32), run('none', 2, 0.43, 200, 32)]),
      torch([run('dpp', 1, 0.42, 250, 25.6), run('dpp', 2, 0.42, 250, 25.6), run('reference', 1, 0.5, 1, 1)]),
    ];
    const c = compareReports(o, t);
    expect(c.variants.map((v) => [v.variant, v.seeds])).toEqual([
      ['none', [1, 2]],
      ['dpp', [1, 2]],
    ]);
    // none: ours (0.40 + 0.42) / 2 = 41.0 vs 42.0; dpp: 45.0 vs 42.0.
    expect(c.variants[0].differencePoints).toBeCloseTo(-1, 10);
    expect(c.variants[0].withinParity).toBe(true);
    expect(c.variants[1].differencePoints).toBeCloseTo(3, 10);
    expect(c.variants[1].withinParity).toBe(false);
    expect(c.markdown).toContain('| `none` | 1, 2 | 41.0 | 42.0 | -1.0 | yes | 300 / 200 | 0.63 |');
    expect(c.markdown).toContain('| `dpp` | 1, 2 | 45.0 | 42.0 | +3.0 | no | 400 / 250 | 0.63 |');
    // The per-side tables show the same seed sets: the sample std of 0.40, 0.42 (and of 0.41, 0.43) is 1.4 points.
    expect(c.markdown).toContain('| ours, `none` | 2 | 41.0 ± 1.4 |');
    expect(c.markdown).toContain('| PyTorch, `none` | 2 | 42.0 ± 1.4 |');
    expect(c.markdown).not.toContain('`reference`');
  });

  it('refuses different protocols across or within a side, and a run counted twice', () => {
    const o = [ours([run('none', 1, 0.4, 1, 1)])];
    expect(() => compareReports(o, [torch([run('none', 1, 0.4, 1, 1)], { image_size: 96, lr_scale: 1 })])).toThrow(
      /settings differ \(imageSize 64 vs 96; lrScale 0\.25 vs 1\)/,
    );
    expect(() => compareReports(o, [torch([], { no_pretrained: true })])).toThrow(/pretrained 1 vs 0/);
    // A flip-TTA headline is another protocol than real_torch.py's single pass.
    const flip = [{ ...o[0], settings: { ...o[0].settings, tta: 'flip' as const } }];
    expect(() => compareReports(flip, [torch([run('none', 1, 0.4, 1, 1)])])).toThrow(/flipTta 1 vs 0/);
    // real_torch.py --tta flip scores the same way: those two compare.
    expect(compareReports(flip, [torch([run('none', 1, 0.4, 1, 1)], { tta: 'flip' })]).variants).toHaveLength(1);
    expect(() =>
      compareReports(o, [torch([run('none', 1, 0.4, 1, 1)]), torch([run('none', 2, 0.4, 1, 1)], { batch: 16 })]),
    ).toThrow(/PyTorch's reports of one protocol, but report 2 differs from the first \(batch 32 vs 16\)/);
    // Diagnostic PyTorch runs (another seed's data streams, our initial weights) are not the protocol.
    expect(() => compareReports(o, [torch([run('none', 1, 0.4, 1, 1)], { data_seed: 1 })])).toThrow(
      /ran the diagnostic --data-seed \(/,
    );
    expect(() =>
      compareReports(o, [torch([run('none', 1, 0.4, 1, 1)], { init_from: 'x/init', data_seed: null })]),
    ).toThrow(/ran the diagnostic --init-from \(/);
    // argparse writes null for an unused option: such a report compares.
    expect(
      compareReports(o, [torch([run('none', 1, 0.4, 1, 1)], { init_from: null, data_seed: null })]).variants,
    ).toHaveLength(1);
    expect(() => compareReports([...o, ...o], [torch([run('none', 1, 0.4, 1, 1)])])).toThrow(
      /our reports hold 'none seed 1' twice/,
    );
  });

  it('says so when the sides are swapped or foreign, or share no run', () => {
    const o = [ours([run('none', 1, 0.4, 1, 1)])];
    const t = [torch([run('dpp', 1, 0.4, 1, 1)])];
    expect(() => compareReports(t, o)).toThrow(/the other way round/);
    expect(() => compareReports(o, [{ settings: {}, summary: [] }])).toThrow(/PyTorch's side holds another file/);
    expect(() => compareReports(o, t)).toThrow(/ours has none 1 and PyTorch's has dpp 1/);
  });
});
