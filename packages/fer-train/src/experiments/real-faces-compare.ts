/**
 * `fer experiment compare`: our real-faces report beside `bench/real_torch.py`'s, as one table. It refuses two
 * reports whose protocols differ (a comparison of different settings would look valid and mean nothing).
 */
import { FerInputError } from 'fer-core';
import { markdownTable, type RealFacesReport, type VariantSummary } from './real-faces';

/** The bar: our mean PrivateTest accuracy within this many points of PyTorch's, per variant. */
export const PARITY_POINTS = 1.5;

/** What `bench/real_torch.py` writes (argparse names in `settings`). */
export interface TorchReport {
  settings: Record<string, unknown>;
  summary: VariantSummary[];
}

/** Settings that decide the result, as (our name, real_torch.py's name). */
const SAME: ReadonlyArray<[keyof RealFacesReport['settings'], string]> = [
  ['imageSize', 'image_size'],
  ['branches', 'branches'],
  ['firstEpochs', 'first_epochs'],
  ['laterEpochs', 'later_epochs'],
  ['batch', 'batch'],
  ['lrScale', 'lr_scale'],
  ['lrStep', 'lr_step'],
  ['lrGamma', 'lr_gamma'],
  ['testFraction', 'test_fraction'],
  ['bnBatches', 'bn_batches'],
];

export interface VariantComparison {
  variant: string;
  seeds: [number, number];
  /** Mean PrivateTest accuracy, ours and PyTorch's, and ours − PyTorch in points. */
  ours: number;
  torch: number;
  differencePoints: number;
  withinParity: boolean;
  trainSeconds: [number, number];
  imagesPerSecond: [number, number];
}

export interface RealFacesComparison {
  variants: VariantComparison[];
  markdown: string;
}

/** Compares per variant; throws a one-line FerInputError when the two runs did not use the same protocol. */
export function compareReports(
  ours: Pick<RealFacesReport, 'settings' | 'summary' | 'peer' | 'majorityRate'>,
  torch: TorchReport,
): RealFacesComparison {
  const isOurs = (r: unknown) =>
    typeof r === 'object' && r !== null && typeof (r as RealFacesReport).majorityRate === 'number';
  const isTorch = (r: unknown) =>
    typeof r === 'object' &&
    r !== null &&
    Array.isArray((r as TorchReport).summary) &&
    typeof (r as TorchReport).settings?.image_size === 'number';
  if (!isOurs(ours) || !isTorch(torch))
    throw new FerInputError(
      isOurs(torch) && isTorch(ours)
        ? "Expected our report first and PyTorch's second, but they arrived the other way round. Swap the two paths."
        : `Expected our report.json (fer experiment real) and bench/real_torch.py's, but ${isOurs(ours) ? 'the second' : 'the first'} is neither.`,
    );
  const differ = SAME.filter(([o, t]) => {
    const a = ours.settings[o];
    const b = torch.settings[t];
    // real_torch.py writes argparse values; our trainCap/testFraction are numbers too.
    return b !== undefined && Number(a) !== Number(b);
  }).map(([o, t]) => `${o} ${String(ours.settings[o])} vs ${t} ${String(torch.settings[t])}`);
  const oursPretrained = ours.settings.pretrained;
  if (torch.settings.no_pretrained !== undefined && Boolean(torch.settings.no_pretrained) === oursPretrained)
    differ.push(`pretrained ${String(oursPretrained)} vs no_pretrained ${String(torch.settings.no_pretrained)}`);
  if (differ.length)
    throw new FerInputError(
      `Expected two runs of the same protocol, but their settings differ (${differ.join('; ')}). Re-run bench/real_torch.py with the same options.`,
    );
  const variants: VariantComparison[] = [];
  for (const o of ours.summary) {
    const t = torch.summary.find((s) => s.variant === o.variant);
    if (!t) continue;
    const diff = 100 * (o.mean.testAccuracy - t.mean.testAccuracy);
    variants.push({
      variant: o.variant,
      seeds: [o.runs, t.runs],
      ours: o.mean.testAccuracy,
      torch: t.mean.testAccuracy,
      differencePoints: diff,
      withinParity: Math.abs(diff) <= PARITY_POINTS,
      trainSeconds: [o.mean.trainSeconds, t.mean.trainSeconds],
      imagesPerSecond: [o.mean.imagesPerSecond, t.mean.imagesPerSecond],
    });
  }
  if (!variants.length)
    throw new FerInputError(
      `Expected a diversity variant in both reports, but ours has ${ours.summary.map((s) => s.variant).join(', ') || 'none'} and PyTorch's has ${torch.summary.map((s) => s.variant).join(', ') || 'none'}.`,
    );
  const both = markdownTable({ summary: ours.summary, majorityRate: ours.majorityRate, peer: ours.peer })
    .split('\n')
    .filter((l) => l.startsWith('|'));
  const torchRows = markdownTable({ summary: torch.summary, majorityRate: ours.majorityRate }, 'PyTorch')
    .split('\n')
    .filter((l) => l.startsWith('| PyTorch'));
  // Our rows, then PyTorch's, then the peer (the last row of ours when present).
  const peerRow = ours.peer ? [both.pop() as string] : [];
  const f = (x: number) => (100 * x).toFixed(1);
  const lines = [
    ...both,
    ...torchRows,
    ...peerRow,
    '',
    `| variant | seeds (ours / PyTorch) | PrivateTest ours % | PrivateTest PyTorch % | ours − PyTorch (points) | within ${PARITY_POINTS} | train s ours / PyTorch | img/s ratio |`,
    '|' + ' --- |'.repeat(8),
    ...variants.map(
      (v) =>
        `| \`${v.variant}\` | ${v.seeds.join(' / ')} | ${f(v.ours)} | ${f(v.torch)} | ${v.differencePoints >= 0 ? '+' : ''}${v.differencePoints.toFixed(1)} | ${v.withinParity ? 'yes' : 'no'} | ${v.trainSeconds.map((s) => s.toFixed(0)).join(' / ')} | ${(v.imagesPerSecond[0] / v.imagesPerSecond[1]).toFixed(2)} |`,
    ),
    '',
    `Majority-class rate on PrivateTest (FER2013 labels): ${f(ours.majorityRate)}%.`,
  ];
  return { variants, markdown: lines.join('\n') };
}
