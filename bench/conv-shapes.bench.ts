/**
 * `pnpm bench conv-shapes [flags]`: forward, backward-data and backward-weights time of the models' convolutions at
 * batch 32 (ESR at 96 px, MA-Net at 224 px), fer-native's oneDNN kernels beside PyTorch's `conv2d` on the same shapes
 * (bench/conv_shapes_torch.py, run under tcmalloc as torch_bench.py is). Both sides use the same oneDNN (Debian's
 * 2.6.3). Prints the fastest of the repeats in ms, which a shared machine disturbs least. Never asserts timings.
 *
 * Flags:
 *   --set=esr|manet|all    shapes (default all)
 *   --reps=N               timed calls per op after one warm-up (default 5)
 *   --clock=wall|cpu       wall time (default) or process CPU time (all threads)
 *   --threads=N            threads on both sides (default: the addon's, i.e. OpenMP's default)
 *   --no-torch             ours only
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAddon } from 'fer-native';

/** One convolution: batch, input side, channels in/out, square kernel, stride, padding, calls per training step. */
interface Shape {
  n: number;
  h: number;
  c: number;
  o: number;
  k: number;
  s: number;
  p: number;
  calls: number;
  where: string;
}

const sh = (h: number, c: number, o: number, k: number, s: number, p: number, calls: number, where: string): Shape => ({
  n: 32,
  h,
  c,
  o,
  k,
  s,
  p,
  calls,
  where,
});

/** ESR-1 at 96 px: the base's four blocks, then the branch's four (layers.ts). conv1's input gradient never runs. */
const ESR: Shape[] = [
  sh(96, 3, 64, 5, 1, 0, 1, 'esr base conv1'),
  sh(92, 64, 128, 3, 1, 0, 1, 'esr base conv2'),
  sh(45, 128, 128, 3, 1, 0, 1, 'esr base conv3'),
  sh(43, 128, 128, 3, 1, 0, 1, 'esr base conv4'),
  sh(20, 128, 128, 3, 1, 0, 1, 'esr branch conv1'),
  sh(18, 128, 256, 3, 1, 0, 1, 'esr branch conv2'),
  sh(8, 256, 256, 3, 1, 0, 1, 'esr branch conv3'),
  sh(6, 256, 512, 3, 1, 1, 1, 'esr branch conv4'),
];

/**
 * MA-Net at 224 px, the distinct convolutions of one training step with their call counts (from `pnpm bench speed
 * --profile=manet --detail=FusedConv2D`). Stride-2 convs get their padding from a ZeroPadding2D layer, so they run
 * unpadded on the padded map. Most calls are the four patch branches' and the multi-scale blocks' small maps.
 */
const MANET: Shape[] = [
  sh(230, 3, 64, 7, 2, 0, 1, 'manet stem conv1'),
  sh(56, 64, 64, 3, 1, 1, 4, 'manet layer1'),
  sh(58, 64, 128, 3, 2, 0, 1, 'manet layer2 s2'),
  sh(56, 64, 128, 1, 2, 0, 1, 'manet layer2 downsample'),
  sh(28, 128, 128, 3, 1, 1, 3, 'manet layer2'),
  sh(30, 128, 256, 3, 2, 0, 1, 'manet global s2'),
  sh(28, 128, 256, 1, 2, 0, 1, 'manet global downsample'),
  sh(14, 256, 256, 3, 1, 1, 1, 'manet global 3x3'),
  sh(16, 256, 512, 3, 2, 0, 1, 'manet global s2 (2)'),
  sh(14, 256, 512, 1, 2, 0, 1, 'manet global downsample (2)'),
  sh(14, 64, 64, 3, 1, 1, 16, 'manet multi-scale 3x3'),
  sh(16, 128, 256, 3, 2, 0, 4, 'manet patch s2'),
  sh(14, 128, 256, 1, 2, 0, 4, 'manet patch downsample'),
  sh(7, 128, 128, 3, 1, 1, 16, 'manet patch 3x3 128'),
  sh(7, 256, 256, 3, 1, 1, 12, 'manet patch 3x3 256'),
  sh(7, 256, 512, 3, 1, 1, 4, 'manet patch 3x3 256→512'),
  sh(7, 256, 512, 1, 1, 0, 4, 'manet patch 1x1 256→512'),
  sh(7, 512, 512, 3, 1, 1, 13, 'manet patch 3x3 512'),
];

const outSide = (s: Shape) => Math.floor((s.h + 2 * s.p - s.k) / s.s) + 1;

/** native/conv.cc's geometry array (see fer-native src/kernels/conv.ts). */
function geometry(s: Shape): number[] {
  const oh = outSide(s);
  return [s.n, s.h, s.h, s.c, s.k, s.k, s.o, oh, oh, s.s, s.s, 1, 1, s.p, s.p, s.p, s.p, 1];
}

function random(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() - 0.5;
  return a;
}

type Timing = { fwd: number; bwdData: number; bwdWeights: number };

function fastest(reps: number, clock: 'wall' | 'cpu', fn: () => void): number {
  fn();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    fn();
    const c = process.cpuUsage(c0);
    best = Math.min(best, clock === 'cpu' ? (c.user + c.system) / 1000 : performance.now() - t0);
  }
  return best;
}

const TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';

function torchTimings(shapes: Shape[], reps: number, clock: string, threads: number): Timing[] | string {
  const script = path.join(__dirname, 'conv_shapes_torch.py');
  const env = { ...process.env, ...(existsSync(TCMALLOC) ? { LD_PRELOAD: TCMALLOC } : {}) };
  const arg = JSON.stringify({ shapes, reps, clock, threads });
  const r = spawnSync('/usr/bin/python3', [script, arg], { env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) return `PyTorch side failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
  return JSON.parse(r.stdout) as Timing[];
}

export async function run(flags: string[]): Promise<void> {
  const flag = (name: string) => flags.find((f) => f.startsWith(`--${name}=`))?.split('=')[1];
  const set = flag('set') ?? 'all';
  if (!['esr', 'manet', 'all'].includes(set)) throw new Error(`Expected --set=esr|manet|all, but got '${set}'.`);
  const reps = Number(flag('reps') ?? 5);
  const clock = (flag('clock') ?? 'wall') as 'wall' | 'cpu';
  if (clock !== 'wall' && clock !== 'cpu') throw new Error(`Expected --clock=wall|cpu, but got '${clock}'.`);
  const { addon, reason } = loadAddon();
  if (!addon) {
    console.log(`skipped: ${reason}`);
    return;
  }
  if (flag('threads')) addon.setThreads(Number(flag('threads')));
  const threads = addon.info().threads;
  const shapes = [...(set === 'manet' ? [] : ESR), ...(set === 'esr' ? [] : MANET)];

  const ours: Timing[] = shapes.map((s) => {
    const oh = outSide(s);
    const x = random(s.n * s.h * s.h * s.c);
    const w = random(s.k * s.k * s.c * s.o);
    const y = new Float32Array(s.n * oh * oh * s.o);
    const dy = random(y.length);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    const geo = geometry(s);
    return {
      fwd: fastest(reps, clock, () => addon.conv2d(x, w, y, geo, null, 0, 0)),
      bwdData: fastest(reps, clock, () => addon.conv2dBackpropInput(dy, w, dx, geo)),
      bwdWeights: fastest(reps, clock, () => addon.conv2dBackpropFilter(x, dy, dw, geo)),
    };
  });
  const torch = flags.includes('--no-torch') ? 'skipped (--no-torch)' : torchTimings(shapes, reps, clock, threads);

  console.log(
    `conv shapes, batch 32, fastest of ${reps}, ${clock === 'cpu' ? 'process CPU' : 'wall'} ms, ${threads} threads, ` +
      `load average ${os.loadavg()[0].toFixed(2)}`,
  );
  if (typeof torch === 'string') console.log(`PyTorch: ${torch}`);
  const t = typeof torch === 'string' ? null : torch;
  console.log('| conv | in → out | calls | ours fwd / bwd data / bwd weights | PyTorch | ours/PyTorch |');
  console.log('|---|---|---:|---:|---:|---:|');
  const f = (x: Timing) => `${x.fwd.toFixed(1)} / ${x.bwdData.toFixed(1)} / ${x.bwdWeights.toFixed(1)}`;
  // A training step runs each conv's three ops, except the input gradient of a conv on the image (3 channels).
  const step = (s: Shape, x: Timing) => s.calls * (x.fwd + (s.c === 3 ? 0 : x.bwdData) + x.bwdWeights);
  const totals = new Map<string, [number, number]>();
  shapes.forEach((s, i) => {
    const geo = `${s.k}×${s.k}/${s.s} ${s.c}→${s.o} @${s.h}${s.p ? ` pad ${s.p}` : ''} → ${outSide(s)}`;
    const ratio = t ? (step(s, ours[i]) / step(s, t[i])).toFixed(2) : '–';
    console.log(`| ${s.where} | ${geo} | ${s.calls} | ${f(ours[i])} | ${t ? f(t[i]) : '–'} | ${ratio} |`);
    const model = s.where.split(' ')[0];
    const [a, b] = totals.get(model) ?? [0, 0];
    totals.set(model, [a + step(s, ours[i]), b + (t ? step(s, t[i]) : NaN)]);
  });
  for (const [model, [a, b]] of totals) {
    const vs = t ? `, PyTorch ${b.toFixed(0)} ms, ours/PyTorch ${(a / b).toFixed(2)}` : '';
    console.log(`${model} training step, convolutions only: ours ${a.toFixed(0)} ms${vs}`);
  }
}
