/**
 * `fer experiment compare`: our real-faces runs beside `bench/real_torch.py`'s, as one table. Each side may come in
 * several reports (variants or seeds run separately); both sides are summarised by the same code (`summarise`). Runs
 * of different protocols, or a run counted twice, are refused: such a table would look valid and mean nothing.
 */
import { FerInputError } from 'fer-core';
import { markdownTable, summarise, type RealFacesReport, type RunResult } from './real-faces';

/** The issue's bar: our mean PrivateTest accuracy within this many points of PyTorch's, per variant. */
export const PARITY_POINTS = 1.5;

/** Our report, as `fer experiment real` writes it (only what a comparison reads). */
export type OursReport = Pick<RealFacesReport, 'settings' | 'runs' | 'peer' | 'majorityRate'>;

/** What `bench/real_torch.py` writes: argparse names in `settings`, runs in our `RunResult` shape. */
export interface TorchReport {
  settings: Record<string, unknown>;
  runs: RunResult[];
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

/** real_torch.py's diagnostics (argparse names): they replace a seed's own weights or data streams. */
const DIAGNOSTICS = ['init_from', 'data_seed'] as const;

export interface VariantComparison {
  variant: string;
  /** The seeds both sides ran: the per-variant means are over these only. */
  seeds: number[];
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

const isOurs = (r: unknown): r is OursReport =>
  typeof r === 'object' &&
  r !== null &&
  typeof (r as OursReport).majorityRate === 'number' &&
  Array.isArray((r as OursReport).runs);
const isTorch = (r: unknown): r is TorchReport =>
  typeof r === 'object' &&
  r !== null &&
  Array.isArray((r as TorchReport).runs) &&
  typeof (r as TorchReport).settings?.image_size === 'number';

/** One side's settings as (our name → value), for comparing within and across sides. */
function protocol(r: OursReport | TorchReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [o, t] of SAME) out[o] = Number(isOurs(r) ? r.settings[o] : r.settings[t]);
  out.pretrained = Number(isOurs(r) ? r.settings.pretrained : !r.settings.no_pretrained);
  // A flip-TTA run's headline is not the one-pass protocol real_torch.py scores (no TTA there unless it says so).
  out.flipTta = Number(r.settings.tta === 'flip');
  return out;
}

function differences(a: Record<string, number>, b: Record<string, number>): string[] {
  return Object.keys(a)
    .filter((k) => !(Number.isNaN(a[k]) && Number.isNaN(b[k])) && a[k] !== b[k])
    .map((k) => `${k} ${a[k]} vs ${b[k]}`);
}

/** Concatenates one side's runs, refusing differing protocols and a (variant, seed) run twice. */
function mergeSide(reports: (OursReport | TorchReport)[], side: string): RunResult[] {
  const first = protocol(reports[0]);
  reports.slice(1).forEach((r, i) => {
    const d = differences(first, protocol(r));
    if (d.length)
      throw new FerInputError(
        `Expected ${side} reports of one protocol, but report ${i + 2} differs from the first (${d.join('; ')}).`,
      );
  });
  const runs = reports.flatMap((r) => r.runs);
  const seen = new Set<string>();
  for (const r of runs) {
    const key = `${r.variant} seed ${r.seed}`;
    if (seen.has(key))
      throw new FerInputError(`Expected each run once, but ${side} reports hold '${key}' twice. Pass one of them.`);
    seen.add(key);
  }
  return runs;
}

/**
 * Compares per variant over the seeds both sides ran; throws a one-line FerInputError for reports of the wrong kind
 * or order, different protocols, or runs counted twice.
 */
export function compareReports(ours: unknown[], torch: unknown[]): RealFacesComparison {
  if (!ours.length || !torch.length)
    throw new FerInputError('Expected at least one report per side (ours, then PyTorch).');
  if (!ours.every(isOurs) || !torch.every(isTorch))
    throw new FerInputError(
      ours.every(isTorch) && torch.every(isOurs)
        ? "Expected our reports first and PyTorch's second, but they arrived the other way round. Swap the two arguments."
        : `Expected report.json files written by fer experiment real, then by bench/real_torch.py, but ${ours.every(isOurs) ? "PyTorch's side" : 'our side'} holds another file.`,
    );
  for (const r of torch as TorchReport[]) {
    const used = DIAGNOSTICS.filter((k) => r.settings[k] !== undefined && r.settings[k] !== null);
    if (used.length)
      throw new FerInputError(
        `Expected PyTorch runs of the protocol, but a report ran the diagnostic ${used.map((k) => `--${k.replace('_', '-')}`).join(' and ')} (its runs do not start from their own seed's draws). Re-run bench/real_torch.py without it.`,
      );
  }
  const oursRuns = mergeSide(ours, 'our');
  const torchRuns = mergeSide(torch, "PyTorch's");
  const d = differences(protocol(ours[0]), protocol(torch[0]));
  if (d.length)
    throw new FerInputError(
      `Expected two runs of the same protocol, but their settings differ (${d.join('; ')}). Re-run bench/real_torch.py with the same options.`,
    );

  // Each variant over the seeds both sides have, so a mean never mixes different seed sets.
  const variants: VariantComparison[] = [];
  const keptOurs: RunResult[] = [];
  const keptTorch: RunResult[] = [];
  for (const variant of [...new Set(oursRuns.map((r) => r.variant))]) {
    const t = torchRuns.filter((r) => r.variant === variant);
    const seeds = oursRuns
      .filter((r) => r.variant === variant && t.some((x) => x.seed === r.seed))
      .map((r) => r.seed)
      .sort((a, b) => a - b);
    if (!seeds.length) continue;
    const pick = (rs: RunResult[]) => rs.filter((r) => r.variant === variant && seeds.includes(r.seed));
    const [o] = summarise(pick(oursRuns));
    const [p] = summarise(pick(torchRuns));
    keptOurs.push(...pick(oursRuns));
    keptTorch.push(...pick(torchRuns));
    const diff = 100 * (o.mean.testAccuracy - p.mean.testAccuracy);
    variants.push({
      variant,
      seeds,
      ours: o.mean.testAccuracy,
      torch: p.mean.testAccuracy,
      differencePoints: diff,
      withinParity: Math.abs(diff) <= PARITY_POINTS,
      trainSeconds: [o.mean.trainSeconds, p.mean.trainSeconds],
      imagesPerSecond: [o.mean.imagesPerSecond, p.mean.imagesPerSecond],
    });
  }
  if (!variants.length)
    throw new FerInputError(
      `Expected a variant and seed run on both sides, but ours has ${[...new Set(oursRuns.map((r) => `${r.variant} ${r.seed}`))].join(', ')} and PyTorch's has ${[...new Set(torchRuns.map((r) => `${r.variant} ${r.seed}`))].join(', ')}.`,
    );

  const majorityRate = ours[0].majorityRate;
  const peer = ours.find((r) => r.peer)?.peer;
  const rows = (md: string, prefix: string) => md.split('\n').filter((l) => l.startsWith(prefix));
  const oursTable = rows(markdownTable({ summary: summarise(keptOurs), majorityRate, peer }), '|');
  const peerRow = peer ? [oursTable.pop() as string] : [];
  const torchRows = rows(markdownTable({ summary: summarise(keptTorch), majorityRate }, 'PyTorch'), '| PyTorch');
  const f = (x: number) => (100 * x).toFixed(1);
  const lines = [
    ...oursTable,
    ...torchRows,
    ...peerRow,
    '',
    `| variant | seeds | PrivateTest ours % | PrivateTest PyTorch % | ours − PyTorch (points) | within ${PARITY_POINTS} | train s ours / PyTorch | img/s ratio |`,
    '|' + ' --- |'.repeat(8),
    ...variants.map(
      (v) =>
        `| \`${v.variant}\` | ${v.seeds.join(', ')} | ${f(v.ours)} | ${f(v.torch)} | ${v.differencePoints >= 0 ? '+' : ''}${v.differencePoints.toFixed(1)} | ${v.withinParity ? 'yes' : 'no'} | ${v.trainSeconds.map((s) => s.toFixed(0)).join(' / ')} | ${(v.imagesPerSecond[0] / v.imagesPerSecond[1]).toFixed(2)} |`,
    ),
    '',
    `Majority-class rate on PrivateTest (FER2013 labels): ${f(majorityRate)}%.`,
  ];
  return { variants, markdown: lines.join('\n') };
}
