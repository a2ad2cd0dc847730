/**
 * `pnpm bench roofline [--no-torch] [--runs=5]`: how fast *could* the wasm backend be? Issue 9's ratio targets,
 * checked against arithmetic rather than hope.
 *
 * 1. Work per image: every Conv2D / FusedConv2D / MatMul kernel of one eval-mode forward (batch 1, tf.profile) is
 *    counted in multiply-accumulates (MACs). A training step needs at least forward + weight gradient + input
 *    gradient of each layer (the first conv needs no input gradient): that lower bound is printed as train MACs.
 * 2. Peak speed of one core: the best of a 1024³ matMul and the models' own largest conv shapes on wasm (XNNPACK,
 *    one thread per process under Node), and the same ops in PyTorch (1 and 2 threads) when
 *    `/usr/bin/python3 -c "import torch"` works.
 * 3. The ceiling: 2 workers × wasm peak GMAC/s ÷ MACs per image, i.e. images/s if every MAC ran at peak and nothing
 *    else cost time, beside PyTorch's measured images/s (torch_bench.py on this machine, same run) and the ratio the
 *    ceiling allows. Never asserts timings.
 * 4. When fer-native's addon is built: oneDNN's measured peak on this CPU (both cores, one process) for a 2048³
 *    matmul and the same conv shapes at batch 32 (forward, input gradient, filter gradient), the native ceiling,
 *    and the GMAC/s PyTorch achieves (its img/s × MACs per image) against that peak.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { createEsr } from 'fer-models-esr';
import { createManet } from 'fer-models-manet';

const REPO = path.resolve(__dirname, '..');
const TORCH_BENCH = path.join(process.env.FER_SHARED_DIR ?? path.resolve(REPO, '../shared'), 'bench', 'torch_bench.py');

interface Work {
  forwardMacs: number;
  trainMacs: number;
  /** The largest convs (by MACs) as [input shape, filter shape, strides, pad] for the peak measurement. */
  convs: { x: number[]; w: number[]; macs: number }[];
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** MACs of one forward at batch 1, from the kernels tf.profile saw. */
async function countWork(forward: (x: tf.Tensor4D) => tf.Tensor | tf.Tensor[] | object, size: number): Promise<Work> {
  const x = tf.zeros([1, size, size, 3]) as tf.Tensor4D;
  const info = await tf.profile(() => {
    forward(x);
  });
  x.dispose();
  let forwardMacs = 0;
  let firstConvMacs = 0;
  const convs: Work['convs'] = [];
  for (const k of info.kernels) {
    if (k.name === 'Conv2D' || k.name === 'FusedConv2D') {
      const [xs, ws] = k.inputShapes as number[][];
      const out = k.outputShapes[0] as number[];
      const macs = prod(out) * ws[0] * ws[1] * ws[2];
      forwardMacs += macs;
      if (xs[3] === 3) firstConvMacs += macs;
      convs.push({ x: xs, w: ws, macs });
    } else if (k.name === 'BatchMatMul' || k.name === '_FusedMatMul' || k.name === 'MatMul') {
      const [a] = k.inputShapes as number[][];
      const out = k.outputShapes[0] as number[];
      const kDim = prod(a) / (out.length === 3 ? out[0] * out[1] : out[0]);
      forwardMacs += prod(out) * kDim;
    }
  }
  convs.sort((p, q) => q.macs - p.macs);
  // Weight gradient of every layer + input gradient of every layer but the image's conv: the same MACs again.
  return { forwardMacs, trainMacs: 3 * forwardMacs - firstConvMacs, convs: convs.slice(0, 3) };
}

function bestMs(runs: number, fn: () => void): number {
  fn(); // warm-up (XNNPACK packs weights on first use)
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

/** GMAC/s of a 1024³ matMul and of conv shapes, on the current backend (one thread). */
function wasmPeak(runs: number, convs: Work['convs']): { matmul: number; conv: { shape: string; gmacs: number }[] } {
  const n = 1024;
  const a = tf.randomUniform([n, n]);
  const b = tf.randomUniform([n, n]);
  const mm = bestMs(runs, () => tf.matMul(a, b).dataSync());
  tf.dispose([a, b]);
  const conv = convs.map((c) => {
    const batch = 8;
    const x = tf.randomUniform([batch, c.x[1], c.x[2], c.x[3]]) as tf.Tensor4D;
    const w = tf.randomUniform(c.w as [number, number, number, number]) as tf.Tensor4D;
    const ms = bestMs(runs, () => tf.conv2d(x, w, 1, 'same').dataSync());
    const out = tf.tidy(() => tf.conv2d(x, w, 1, 'same').shape);
    tf.dispose([x, w]);
    return {
      shape: `x[8,${c.x.slice(1).join(',')}] w[${c.w.join(',')}]`,
      gmacs: (prod(out) * c.w[0] * c.w[1] * c.w[2]) / ms / 1e6,
    };
  });
  return { matmul: n ** 3 / mm / 1e6, conv };
}

function torchAvailable(): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

/** PyTorch's GMAC/s on the same 1024³ matMul and conv shapes (NCHW), with 1 and 2 threads. */
function torchPeak(runs: number, convs: Work['convs']): Record<string, { matmul: number; conv: number[] }> {
  const py = `
import json, sys, time, torch
convs = json.loads(sys.argv[1]); runs = int(sys.argv[2]); res = {}
def best(fn):
    fn(); b = 1e9
    for _ in range(runs):
        t = time.perf_counter(); fn(); b = min(b, time.perf_counter() - t)
    return b
with torch.no_grad():
    for th in (1, 2):
        torch.set_num_threads(th)
        a = torch.rand(1024, 1024); bb = torch.rand(1024, 1024)
        mm = 1024 ** 3 / best(lambda: a @ bb) / 1e9
        cv = []
        for c in convs:
            x = torch.rand(8, c['x'][3], c['x'][1], c['x'][2]); w = torch.rand(c['w'][3], c['w'][2], c['w'][0], c['w'][1])
            pad = c['w'][0] // 2
            out = torch.nn.functional.conv2d(x, w, padding=pad)
            macs = out.numel() * c['w'][0] * c['w'][1] * c['w'][2]
            cv.append(macs / best(lambda: torch.nn.functional.conv2d(x, w, padding=pad)) / 1e9)
        res[str(th)] = {'matmul': mm, 'conv': cv}
print(json.dumps(res))
`;
  const r = spawnSync('/usr/bin/python3', ['-c', py, JSON.stringify(convs), String(runs)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch peak measurement failed: ${r.stderr.split('\n').slice(-3).join(' ')}`);
  return JSON.parse(r.stdout);
}

interface TorchRecord {
  model: string;
  mode: string;
  img_per_s: number;
}

function torchModels(runs: number): TorchRecord[] {
  const json = path.join(os.tmpdir(), `roofline-torch-${process.pid}.json`);
  const r = spawnSync(
    '/usr/bin/python3',
    [TORCH_BENCH, '--bench', '--json', json, '--runs', String(runs), '--esr-batch', '32', '--manet-batch', '8'],
    {
      cwd: path.dirname(TORCH_BENCH),
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    },
  );
  if (r.status !== 0) throw new Error(`torch_bench.py failed: ${r.stderr.split('\n').slice(-3).join(' ')}`);
  const out = JSON.parse(readFileSync(json, 'utf8')) as TorchRecord[];
  rmSync(json, { force: true });
  return out;
}

/** oneDNN through fer-native, both cores: GMAC/s of a 2048³ matmul and each conv shape at batch 32 (best of runs). */
async function nativePeak(
  runs: number,
  shapes: { x: number[]; w: number[] }[],
): Promise<{ matmul: number; conv: { shape: string; fwd: number; bwdInput: number; bwdFilter: number }[] } | null> {
  const { loadAddon } = await import('fer-native');
  const { addon } = loadAddon();
  if (!addon) return null;
  const best = (macs: number, fn: () => void) => {
    fn(); // warm-up: primitive creation
    let ms = Infinity;
    for (let r = 0; r < runs; r++) {
      const t = performance.now();
      fn();
      ms = Math.min(ms, performance.now() - t);
    }
    return macs / (ms * 1e6);
  };
  const n = 2048;
  const a = new Float32Array(n * n).fill(0.5);
  const b = new Float32Array(n * n).fill(0.25);
  const c = new Float32Array(n * n);
  const matmul = best(n ** 3, () => addon.matmul(a, b, c, [1, 1, n, n, n, 0, 0], null, 0, 0));
  const conv = shapes.map((sh) => {
    const x = [32, ...sh.x.slice(1)] as [number, number, number, number];
    const info = tf.backend_util.computeConv2DInfo(x, sh.w as [number, number, number, number], 1, 1, 'same');
    const p = info.padInfo;
    const geo = [
      ...x,
      info.filterHeight,
      info.filterWidth,
      info.outChannels,
      info.outHeight,
      info.outWidth,
      1,
      1,
      1,
      1,
      p.top,
      p.left,
      p.bottom,
      p.right,
      1,
    ];
    const xv = new Float32Array(prod(x)).fill(0.1);
    const wv = new Float32Array(prod(sh.w)).fill(0.01);
    const yv = new Float32Array(prod(info.outShape));
    const macs = prod(info.outShape) * info.filterHeight * info.filterWidth * info.inChannels;
    return {
      shape: `x${JSON.stringify(x)} w${JSON.stringify(sh.w)}`,
      fwd: best(macs, () => addon.conv2d(xv, wv, yv, geo, null, 0, 0)),
      bwdInput: best(macs, () => addon.conv2dBackpropInput(yv, wv, xv, geo)),
      bwdFilter: best(macs, () => addon.conv2dBackpropFilter(xv, yv, wv, geo)),
    };
  });
  return { matmul, conv };
}

export async function run(args: string[]): Promise<void> {
  const runs = Number(args.find((a) => a.startsWith('--runs='))?.split('=')[1] ?? 5);
  const withTorch = !args.includes('--no-torch') && existsSync(TORCH_BENCH) && torchAvailable();
  const backend = (await initBackend({ backend: 'wasm', quiet: true })).name;
  console.log(
    `backend ${backend}; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );

  const esr1 = createEsr('desr9-affectnet', { initialBranches: 1, seed: 0 });
  const esr9 = createEsr('desr9-affectnet', { initialBranches: 9, seed: 0 });
  const manet = createManet({ numClasses: 7, seed: 0 });
  const models = {
    esr1: await countWork((x) => esr1.forward(x, { training: false }), 96),
    esr9: await countWork((x) => esr9.forward(x, { training: false }), 96),
    manet: await countWork((x) => manet.forward(x, { training: false }), 224),
  };
  esr1.dispose();
  esr9.dispose();
  manet.dispose();
  console.log('\nwork per image (multiply-accumulates):');
  for (const [name, w] of Object.entries(models)) {
    console.log(
      `  ${name.padEnd(6)} forward ${(w.forwardMacs / 1e9).toFixed(2)} GMAC   training step (lower bound) ${(w.trainMacs / 1e9).toFixed(2)} GMAC`,
    );
  }

  const shapes = [...models.esr1.convs.slice(0, 2), ...models.manet.convs.slice(0, 1)];
  const ours = wasmPeak(runs, shapes);
  const oursPeak = Math.max(ours.matmul, ...ours.conv.map((c) => c.gmacs));
  console.log(`\npeak of one core, GMAC/s (best of ${runs}):`);
  console.log(
    `  ${backend.padEnd(8)} matMul 1024³ ${ours.matmul.toFixed(1)}; ${ours.conv.map((c) => `${c.shape} ${c.gmacs.toFixed(1)}`).join('; ')}`,
  );
  let torchImg: TorchRecord[] = [];
  if (withTorch) {
    const tp = torchPeak(runs, shapes);
    for (const th of ['1', '2'])
      console.log(
        `  torch ${th}t  matMul 1024³ ${tp[th].matmul.toFixed(1)}; conv ${tp[th].conv.map((g) => g.toFixed(1)).join('; ')}`,
      );
    torchImg = torchModels(3);
  } else {
    console.log(
      '  PyTorch side skipped (--no-torch, or /usr/bin/python3 cannot import torch, or torch_bench.py not found)',
    );
  }

  const workers = 2;
  console.log(
    `\nceiling: ${workers} workers × ${oursPeak.toFixed(1)} GMAC/s, every MAC at peak, nothing else costing time:`,
  );
  console.log('  case          MACs/img   ceiling img/s   PyTorch img/s (2 threads)   ratio ceiling');
  const cases: [string, keyof typeof models, 'train' | 'fwd'][] = [
    ['esr1 train', 'esr1', 'train'],
    ['esr9 train', 'esr9', 'train'],
    ['esr9 infer', 'esr9', 'fwd'],
    ['manet train', 'manet', 'train'],
  ];
  for (const [label, m, mode] of cases) {
    const macs = mode === 'train' ? models[m].trainMacs : models[m].forwardMacs;
    const ceiling = (workers * oursPeak * 1e9) / macs;
    const t = torchImg.find((r) => r.model === m && r.mode === mode);
    console.log(
      `  ${label.padEnd(12)} ${(macs / 1e9).toFixed(2).padStart(8)} G ${ceiling.toFixed(1).padStart(14)} ${(t ? t.img_per_s.toFixed(1) : '-').padStart(27)} ${(t ? (ceiling / t.img_per_s).toFixed(2) : '-').padStart(15)}`,
    );
  }

  const native = await nativePeak(Math.min(runs, 3), shapes);
  if (!native) {
    console.log(
      "\nnative (oneDNN) peak skipped: fer-native's addon is not built (apt-get install -y g++ libdnnl-dev).",
    );
    return;
  }
  const nativeBest = Math.max(native.matmul, ...native.conv.flatMap((c) => [c.fwd, c.bwdInput, c.bwdFilter]));
  console.log('\noneDNN peak through fer-native, both cores in one process, GMAC/s (batch 32 convs):');
  console.log(`  matmul 2048³ ${native.matmul.toFixed(1)}`);
  for (const c of native.conv)
    console.log(
      `  ${c.shape}: forward ${c.fwd.toFixed(1)}, input grad ${c.bwdInput.toFixed(1)}, filter grad ${c.bwdFilter.toFixed(1)}`,
    );
  console.log(`\nnative ceiling at ${nativeBest.toFixed(1)} GMAC/s, and what PyTorch achieves against it:`);
  console.log('  case          MACs/img   ceiling img/s   PyTorch img/s   PyTorch GMAC/s   of peak');
  for (const [label, m, mode] of cases) {
    const macs = mode === 'train' ? models[m].trainMacs : models[m].forwardMacs;
    const t = torchImg.find((r) => r.model === m && r.mode === mode);
    const achieved = t ? (t.img_per_s * macs) / 1e9 : NaN;
    console.log(
      `  ${label.padEnd(12)} ${(macs / 1e9).toFixed(2).padStart(8)} G ${((nativeBest * 1e9) / macs).toFixed(1).padStart(14)} ${(t ? t.img_per_s.toFixed(1) : '-').padStart(15)} ${(t ? achieved.toFixed(1) : '-').padStart(16)} ${(t ? `${((100 * achieved) / nativeBest).toFixed(0)}%` : '-').padStart(9)}`,
    );
  }
}
