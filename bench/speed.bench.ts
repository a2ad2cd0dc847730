/**
 * `pnpm bench speed [flags]`: training and inference speed of ESR and MA-Net on our backends, beside PyTorch on the
 * same CPU (../shared/bench/torch_bench.py, which re-executes itself under tcmalloc) when
 * `/usr/bin/python3 -c "import torch"` works. Our variants: `native` (fer-native's oneDNN kernels, one compute
 * thread whose oneDNN uses both cores, the whole batch at once: no micro-batching) and `wasm2` (wasm, two
 * data-parallel workers, micro-batched to fit the 4 GB heaps); `wasm1` on request. Prints images/s, ours/PyTorch ratios
 * and peak memory. Never asserts timings: the machine may be shared, so the load average is printed with the table.
 *
 * Measures (issue 9): esr1-train (ESR base + 1 branch, batch 32), esr9-train (9 branches, batch 32), esr9-infer
 * (ESR-9 eval forward, batch 32, batch norms folded into the convs: the replica's `esr.fold()`; torch_bench.py runs
 * PyTorch's unfolded `model.eval()` forward), manet-train (MA-Net 224×224, batch 32; wasm accumulates micro-batches).
 *
 * The replicas are fer-train's training task (`trainTaskSpec` with `replicaModelSpec`; what `fer train
 * --compute-workers N` runs) on fer-parallel's `DataParallel`, updated by `FlatSgd` on the host. The loss is
 * fer-train's `lossFromSpec`, the same as torch_bench.py's: ESR Σ_k CE(branch k) + (≥ 2 branches) the spatial and
 * channel diversity terms of the last CBAM attention with the 'reference' preset (−det, γ 10, zero diagonal); MA-Net
 * 0.6·CE(fc_1) + 0.4·CE(fc_2) + the patch-spatial, patch-channel and global diversity terms ('reference').
 *
 * Flags:
 *   --only=esr1-train,esr9-train,esr9-infer,manet-train   measures to run (default all)
 *   --variants=native,wasm2   our variants (default both; native is skipped with a line when its addon is absent)
 *   --quick                1 timed run per case; MA-Net at effective batch 32
 *   --runs=N               timed runs per case (default 3; MA-Net on wasm: 1)
 *   --manet-batch=N        MA-Net effective batch (default 32, PyTorch's too)
 *   --micro-esr1=N --micro-esr9=N --micro-manet=N   wasm micro-batch per worker (defaults 16, 8, 8: what fits the heap)
 *   --no-torch             skip PyTorch
 *   --malloc=tcmalloc|glibc   allocator of the native child (default tcmalloc when libtcmalloc-minimal4 is
 *                          installed, as torch_bench.py does for PyTorch)
 *   --json=FILE            also write all results as JSON
 *   --profile=esr1|esr9|manet   instead: per-kernel times of one training micro-batch (in one process);
 *                          --backend=wasm|native (default wasm), --batch=N sets the micro-batch (native default 32),
 *                          --detail=KERNEL[,KERNEL…] lists those kernels' calls with shapes, in call order;
 *                          --clock=cpu times kernels in process CPU time (all threads) instead of wall time, which
 *                          on a shared machine also counts waiting for a descheduled OpenMP thread;
 *                          --warmup=N untimed steps first (default 1; 3 reaches the steady state, whose heap is
 *                          already faulted in)
 *
 * Each of our cases runs in a fresh child process (`--child=<json>`), so its peak RSS and wasm heaps are its own.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataParallel, FlatSgd, type SgdGroupOptions, type TaskSpec } from 'fer-parallel';
import { resolveEsrConfig } from 'fer-models-esr/internal';
import { resolveManetConfig } from 'fer-models-manet/internal';
import { trainTaskSpec, type LossSpec, type ReplicaModelSpec } from 'fer-train';

type Measure = 'esr1-train' | 'esr9-train' | 'esr9-infer' | 'manet-train';
const MEASURES: readonly Measure[] = ['esr1-train', 'esr9-train', 'esr9-infer', 'manet-train'];

/** One of our cases, as sent to a child process. */
interface CaseSpec {
  measure: Measure;
  backend: Backend;
  workers: number;
  batch: number;
  microBatch: number;
  runs: number;
}

interface CaseResult extends CaseSpec {
  msMedian: number;
  msMin: number;
  msMax: number;
  imgPerS: number;
  /** Median of the slowest worker's compute time per step; the rest is summing, SGD and broadcast. */
  workerMsMedian: number;
  peakRssMb: number;
  wasmHeapMb: (number | null)[];
  startupMs: number;
  /** Process CPU time (all threads) per image over the timed runs, ms: contention-robust cost. */
  cpuMsPerImage: number;
  /** The kernel's share of it (page faults, madvise, thread wake-ups), ms per image. */
  sysMsPerImage: number;
  /** Minor page faults per image over the timed runs (fresh pages the allocator handed out). */
  faultsPerImage: number;
  error?: string;
}

interface TorchRecord {
  model: string;
  mode: string;
  batch: number;
  ms_median: number;
  img_per_s: number;
  framework: string;
  threads: number;
}

const REPO = path.resolve(__dirname, '..');
const TORCH_BENCH = path.join(process.env.FER_SHARED_DIR ?? path.resolve(REPO, '../shared'), 'bench', 'torch_bench.py');

function flag(flags: string[], name: string): string | undefined {
  const f = flags.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (!f) return undefined;
  return f.includes('=') ? f.slice(f.indexOf('=') + 1) : '';
}

function intFlag(flags: string[], name: string, dflt: number): number {
  const v = flag(flags, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`Expected --${name} to be a positive integer, but got '${v}'.`);
  return n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Deterministic pseudo-random batch (uniform [0, 1) images, labels mod k), in shared memory. */
function makeBatch(n: number, size: number, classes: number) {
  const images = new Float32Array(new SharedArrayBuffer(n * size * size * 3 * 4));
  let s = 12345;
  for (let i = 0; i < images.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    images[i] = (s >>> 8) / 16777216;
  }
  const labels = new Int32Array(new SharedArrayBuffer(n * 4));
  for (let i = 0; i < n; i++) labels[i] = (i * 5 + 3) % classes;
  return { images, labels, shape: [n, size, size, 3] as [number, number, number, number] };
}

/** The reference losses of torch_bench.py, as fer-train loss specs. */
const ESR_LOSS: LossSpec = { kind: 'esr', options: { diversity: 'reference' } };
const MANET_LOSS: LossSpec = { kind: 'manet', options: { diversity: 'reference', beta: 0.6 } };

/** fer-train's training task for a model and loss, on wasm or native. */
function trainTask(model: ReplicaModelSpec, loss: LossSpec, backend: Backend): TaskSpec {
  return trainTaskSpec({ model, loss, backend }) as TaskSpec;
}

type Backend = 'wasm' | 'native';

function taskOf(
  m: Measure,
  backend: Backend = 'wasm',
): {
  task: TaskSpec;
  size: number;
  classes: number;
  sgd: SgdGroupOptions | Record<string, SgdGroupOptions>;
} {
  const esr = (branches: number): ReplicaModelSpec => ({
    kind: 'esr',
    config: resolveEsrConfig('desr9-affectnet'),
    branches,
    frozen: [],
  });
  switch (m) {
    case 'esr1-train':
      return { task: trainTask(esr(1), ESR_LOSS, backend), size: 96, classes: 8, sgd: { lr: 0.1, momentum: 0.9 } };
    case 'esr9-train':
    case 'esr9-infer': {
      // esr_affectnet.py: base 0.01, newest branch 0.1, older branches 0.01.
      const groups: Record<string, SgdGroupOptions> = { base: { lr: 0.01, momentum: 0.9 } };
      for (let b = 1; b <= 9; b++) groups[`branch_${b}`] = { lr: b === 9 ? 0.1 : 0.01, momentum: 0.9 };
      return { task: trainTask(esr(9), ESR_LOSS, backend), size: 96, classes: 8, sgd: groups };
    }
    case 'manet-train':
      return {
        task: trainTask({ kind: 'manet', config: resolveManetConfig({ numClasses: 7 }) }, MANET_LOSS, backend),
        size: 224,
        classes: 7,
        sgd: { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 },
      };
  }
}

/**
 * The training task builds MA-Net with zero conv kernels (the trainer's weights replace them); the bench gives its
 * conv kernels (HWIO) Kaiming-normal fan-out values as the reference initialises them, so activations and the
 * diversity terms are those of a real step. Seeded; ESR replicas are already PyTorch-initialised.
 */
function kaimingConvKernels(
  variables: { shape: number[] }[],
  write: (i: number, values: Float32Array) => void,
  seed = 1,
): void {
  let s = seed >>> 0;
  const uniform = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  variables.forEach((v, i) => {
    if (v.shape.length !== 4) return;
    const [h, w, , o] = v.shape;
    const std = Math.sqrt(2 / (h * w * o));
    const values = new Float32Array(v.shape.reduce((a, b) => a * b, 1));
    for (let j = 0; j < values.length; j++)
      values[j] = std * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
    write(i, values);
  });
}

/** Runs one case in this process (the child side). */
async function runCase(c: CaseSpec): Promise<CaseResult> {
  const { task, size, classes, sgd } = taskOf(c.measure, c.backend);
  const t0 = performance.now();
  const dp = await DataParallel.create({ task, workers: c.workers, microBatch: c.microBatch });
  if (c.measure === 'manet-train') {
    kaimingConvKernels(dp.variables, (i, values) => dp.weights[i].set(values));
    await dp.setWeights();
  }
  const startupMs = performance.now() - t0;
  try {
    const batch = makeBatch(c.batch, size, classes);
    const opt = new FlatSgd(dp.variables, sgd);
    const infer = c.measure === 'esr9-infer';
    const step = async (b: typeof batch): Promise<number> => {
      if (infer) return Math.max(...(await dp.infer(b)).workerMs);
      const g = await dp.computeGradients(b);
      opt.step(dp.weights, g.grads);
      await dp.setWeights();
      return Math.max(...g.workerMs);
    };
    // Warm-up: one micro-batch per worker is enough to compile every kernel path (a full MA-Net step is minutes).
    await step(makeBatch(Math.min(c.batch, c.microBatch * c.workers), size, classes));
    const times: number[] = [];
    const workerTimes: number[] = [];
    const cpu0 = process.cpuUsage();
    const faults0 = process.resourceUsage().minorPageFault;
    for (let r = 0; r < c.runs; r++) {
      const t = performance.now();
      workerTimes.push(await step(batch));
      times.push(performance.now() - t);
      process.stderr.write(`  ${c.measure} ${label(c)} run ${r + 1}/${c.runs}: ${(times[r] / 1000).toFixed(2)} s\n`);
    }
    const cpu = process.cpuUsage(cpu0);
    const mem = await dp.memory();
    const ms = median(times);
    return {
      ...c,
      msMedian: ms,
      msMin: Math.min(...times),
      msMax: Math.max(...times),
      imgPerS: (c.batch * 1000) / ms,
      workerMsMedian: median(workerTimes),
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      wasmHeapMb: mem.map((m) => (m.wasmHeapBytes === null ? null : m.wasmHeapBytes / 2 ** 20)),
      startupMs,
      cpuMsPerImage: (cpu.user + cpu.system) / 1000 / (c.runs * c.batch),
      sysMsPerImage: cpu.system / 1000 / (c.runs * c.batch),
      faultsPerImage: (process.resourceUsage().minorPageFault - faults0) / (c.runs * c.batch),
    };
  } finally {
    await dp.dispose();
  }
}

/** Per-kernel time of one training micro-batch of the training task, in this process (the child side of --profile). */
async function profileCase(model: 'esr1' | 'esr9' | 'manet', batch: number, backend: Backend): Promise<void> {
  const tf = await import('@tensorflow/tfjs-core');
  const measure: Measure = model === 'manet' ? 'manet-train' : (`${model}-train` as Measure);
  const { task, size, classes } = taskOf(measure, backend);
  const mod = (await import(task.module)) as { createReplica: (c: unknown) => Promise<import('fer-parallel').Replica> };
  const replica = await mod.createReplica(task.config);
  if (model === 'manet')
    kaimingConvKernels(replica.variables, (i, values) =>
      tf.tidy(() => replica.variables[i].assign(tf.tensor(values, replica.variables[i].shape))),
    );
  const b = makeBatch(batch, size, classes);
  const shard = { images: b.images, shape: b.shape, labels: b.labels };
  const once = async () =>
    tf.dispose(
      (await replica.computeGradients(shard)).grads.filter(
        (g): g is import('@tensorflow/tfjs-core').Tensor => g instanceof tf.Tensor,
      ),
    );
  // Warm-up steps: the first steps also fault in the allocator's heap (tens of thousands of fresh pages per MA-Net
  // step, each slow on a VM), which a steady-state step does not pay.
  for (let i = 0; i < flagWarmup; i++) await once();
  if (flagCpuClock) {
    // Kernel time as process CPU time (all threads) instead of wall time: on a shared machine a kernel's wall time
    // includes waiting for its OpenMP partner to be scheduled. Synchronous backends (cpu, native, wasm) only.
    const be = tf.backend() as unknown as { time: (f: () => void) => Promise<{ kernelMs: number }> };
    be.time = async (f) => {
      const c0 = process.cpuUsage();
      f();
      const c = process.cpuUsage(c0);
      return { kernelMs: (c.user + c.system) / 1000 };
    };
  }
  const t0 = performance.now();
  const info = await tf.profile(once);
  const wall = performance.now() - t0;
  const agg = new Map<string, { ms: number; n: number }>();
  for (const k of info.kernels) {
    const ms = Number(await k.kernelTimeMs) || 0;
    const a = agg.get(k.name) ?? { ms: 0, n: 0 };
    a.ms += ms;
    a.n += 1;
    agg.set(k.name, a);
  }
  const total = [...agg.values()].reduce((x, a) => x + a.ms, 0);
  console.log(
    `profile ${model}, micro-batch ${batch}, backend ${tf.getBackend()}, kernel times: ${flagCpuClock ? 'process CPU' : 'wall'}: wall ${(wall / 1000).toFixed(2)} s (profiling adds overhead), kernels ${(total / 1000).toFixed(2)} s, peak heap ${(info.peakBytes / 2 ** 20).toFixed(0)} MB`,
  );
  console.log('| kernel | calls | ms | share |\n|---|---:|---:|---:|');
  for (const [name, a] of [...agg.entries()].sort((x, y) => y[1].ms - x[1].ms).slice(0, 25)) {
    console.log(`| ${name} | ${a.n} | ${a.ms.toFixed(0)} | ${((100 * a.ms) / total).toFixed(1)}% |`);
  }
  const detail = flagDetail?.split(',');
  if (detail) {
    for (const k of info.kernels.filter((x) => detail.includes(x.name))) {
      console.log(
        `  ${k.name} ${JSON.stringify(k.inputShapes)} -> ${JSON.stringify(k.outputShapes)}: ${(Number(await k.kernelTimeMs) || 0).toFixed(0)} ms`,
      );
    }
  }
  replica.dispose?.();
}

let flagDetail: string | undefined;
let flagCpuClock = false;
let flagWarmup = 1;

const TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
let nativeMalloc: 'tcmalloc' | 'glibc' = 'glibc';

/** Runs a case in a fresh child process and parses its result line. */
function runChild(c: CaseSpec): Promise<CaseResult> {
  return new Promise((resolve) => {
    // The native path allocates full-size activations per op like PyTorch does, so it gets PyTorch's allocator
    // treatment: tcmalloc keeps freed buffers instead of returning them to the kernel (glibc's mmap threshold).
    const env = { ...process.env };
    if (c.backend === 'native' && nativeMalloc === 'tcmalloc') env.LD_PRELOAD = TCMALLOC;
    const child = spawn(process.execPath, ['--import', 'tsx', __filename, `--child=${JSON.stringify(c)}`], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      const s = String(d);
      err += s;
      for (const line of s.split('\n')) if (/^\s+\S+ \dw run /.test(line)) process.stderr.write(`${line}\n`);
    });
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('@@RESULT '));
      if (line) return resolve(JSON.parse(line.slice(9)));
      const why = (err.split('\n').find((l) => /Error|abort|memory/i.test(l)) ?? `exit code ${code}`).trim();
      resolve({
        ...c,
        msMedian: NaN,
        msMin: NaN,
        msMax: NaN,
        imgPerS: NaN,
        workerMsMedian: NaN,
        peakRssMb: NaN,
        wasmHeapMb: [],
        startupMs: NaN,
        cpuMsPerImage: NaN,
        sysMsPerImage: NaN,
        faultsPerImage: NaN,
        error: why,
      });
    });
  });
}

function torchAvailable(): boolean {
  if (!existsSync(TORCH_BENCH)) return false;
  return spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

/** Runs torch_bench.py once for everything needed; returns its records and its peak RSS (MB) if measurable. */
function runTorch(
  models: string[],
  modes: string[],
  runs: number,
  manetBatch: number,
): { records: TorchRecord[]; peakRssMb: number | null } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fer-speed-'));
  const json = path.join(dir, 'torch.json');
  const args = [
    TORCH_BENCH,
    '--bench',
    '--json',
    json,
    '--only',
    models.join(','),
    '--modes',
    modes.join(','),
    '--runs',
    String(runs),
    '--esr-batch',
    '32',
    '--manet-batch',
    String(manetBatch),
  ];
  const useTime = existsSync('/usr/bin/time');
  const r = useTime
    ? spawnSync('/usr/bin/time', ['-f', '@@MAXRSS %M', '/usr/bin/python3', ...args], {
        cwd: path.dirname(TORCH_BENCH),
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      })
    : spawnSync('/usr/bin/python3', args, { cwd: path.dirname(TORCH_BENCH), encoding: 'utf8', maxBuffer: 1 << 26 });
  try {
    if (r.status !== 0)
      throw new Error(`torch_bench.py failed (exit ${r.status}): ${String(r.stderr).split('\n').slice(-5).join(' ')}`);
    const m = /@@MAXRSS (\d+)/.exec(String(r.stderr));
    return { records: JSON.parse(readFileSync(json, 'utf8')), peakRssMb: m ? Number(m[1]) / 1024 : null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const TORCH_KEY: Record<Measure, [string, string]> = {
  'esr1-train': ['esr1', 'train'],
  'esr9-train': ['esr9', 'train'],
  'esr9-infer': ['esr9', 'fwd'],
  'manet-train': ['manet', 'train'],
};

/** A variant's name in the table: 'native', or 'wasm 2w'. */
function label(v: { backend: Backend; workers: number }): string {
  return v.backend === 'native' ? 'native' : `wasm ${v.workers}w`;
}

function fmt(x: number | null | undefined, d = 2): string {
  return x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d);
}

export async function run(flags: string[]): Promise<void> {
  const prof = flag(flags, 'profile');
  if (prof !== undefined) {
    const model = (prof || 'esr1') as 'esr1' | 'esr9' | 'manet';
    if (!['esr1', 'esr9', 'manet'].includes(model))
      throw new Error(`Expected --profile=esr1|esr9|manet, but got '${prof}'.`);
    flagDetail = flag(flags, 'detail');
    flagCpuClock = flag(flags, 'clock') === 'cpu';
    flagWarmup = intFlag(flags, 'warmup', 1);
    const backend = (flag(flags, 'backend') ?? 'wasm') as Backend;
    if (!['wasm', 'native'].includes(backend)) throw new Error(`Expected --backend=wasm|native, but got '${backend}'.`);
    const dflt = backend === 'native' ? 32 : model === 'esr1' ? 16 : 8;
    await profileCase(model, intFlag(flags, 'batch', dflt), backend);
    return;
  }
  const quick = flag(flags, 'quick') !== undefined;
  const only = (flag(flags, 'only') ?? MEASURES.join(',')).split(',').filter(Boolean) as Measure[];
  const bad = only.filter((m) => !MEASURES.includes(m));
  if (bad.length) throw new Error(`Unknown measure ${bad.join(', ')}. Valid: ${MEASURES.join(', ')}.`);
  const malloc = flag(flags, 'malloc') ?? (existsSync(TCMALLOC) ? 'tcmalloc' : 'glibc');
  if (malloc !== 'tcmalloc' && malloc !== 'glibc')
    throw new Error(`Expected --malloc=tcmalloc|glibc, but got '${malloc}'.`);
  if (malloc === 'tcmalloc' && !existsSync(TCMALLOC))
    throw new Error(`--malloc=tcmalloc needs ${TCMALLOC}: apt-get install -y libtcmalloc-minimal4.`);
  nativeMalloc = malloc;
  const variantNames = (flag(flags, 'variants') ?? 'native,wasm2').split(',').filter(Boolean);
  const badVariant = variantNames.filter((v) => !/^(native|wasm[1-9])$/.test(v));
  if (badVariant.length)
    throw new Error(`Expected --variants like native,wasm2,wasm1, but got '${badVariant.join(',')}'.`);
  let variants = variantNames.map((v) =>
    v === 'native'
      ? { backend: 'native' as const, workers: 1 }
      : { backend: 'wasm' as const, workers: Number(v.slice(4)) },
  );
  if (variants.some((v) => v.backend === 'native')) {
    const { loadAddon } = await import('fer-native');
    const { addon, reason } = loadAddon();
    if (!addon) {
      console.log(`native variant skipped: ${reason}`);
      variants = variants.filter((v) => v.backend !== 'native');
    } else {
      const i = addon.info();
      console.log(
        `native: fer-native over oneDNN ${i.onednn} (${i.isa}), ${i.threads} threads, ${nativeMalloc} malloc`,
      );
    }
  }
  const runs = intFlag(flags, 'runs', quick ? 1 : 3);
  const manetBatch = intFlag(flags, 'manet-batch', 32);
  const micro: Record<Measure, number> = {
    'esr1-train': intFlag(flags, 'micro-esr1', 16),
    'esr9-train': intFlag(flags, 'micro-esr9', 8),
    'esr9-infer': 16,
    'manet-train': intFlag(flags, 'micro-manet', 8),
  };
  const withTorch = flag(flags, 'no-torch') === undefined && torchAvailable();
  const load0 = os.loadavg();
  const started = Date.now();
  console.log(
    `speed: ${only.join(', ')}; ours: ${variants.map(label).join(', ')}; ${runs} run(s) (MA-Net on wasm 1) after 1 warm-up; load average ${load0.map((l) => l.toFixed(2)).join(' ')}`,
  );

  let torch: { records: TorchRecord[]; peakRssMb: number | null } | null = null;
  if (withTorch) {
    const models = [...new Set(only.map((m) => TORCH_KEY[m][0]))];
    const modes = [...new Set(only.map((m) => TORCH_KEY[m][1]))];
    console.log(
      `PyTorch: torch_bench.py --only ${models.join(',')} --modes ${modes.join(',')} --runs ${runs} --manet-batch ${manetBatch} ...`,
    );
    try {
      torch = runTorch(models, modes, runs, manetBatch);
    } catch (e) {
      console.log(`PyTorch side failed: ${(e as Error).message}`);
    }
  } else {
    console.log(
      'PyTorch side skipped (--no-torch, or /usr/bin/python3 cannot import torch, or torch_bench.py not found).',
    );
  }

  const results: CaseResult[] = [];
  for (const m of only) {
    for (const v of variants) {
      const batch = m === 'manet-train' ? manetBatch : 32;
      const c: CaseSpec = {
        measure: m,
        backend: v.backend,
        workers: v.workers,
        batch,
        // native: no 4 GB heap, so the whole batch in one pass.
        microBatch: v.backend === 'native' ? batch : Math.min(micro[m], Math.ceil(batch / v.workers)),
        // wasm's MA-Net step takes minutes: one run. Native runs as many as PyTorch, so its median is past the
        // first steps' fresh-page faults (packages/fer-native/README.md).
        runs: m === 'manet-train' && v.backend !== 'native' ? 1 : runs,
      };
      console.log(`ours: ${m}, ${label(c)}, batch ${batch}, micro-batch ${c.microBatch}...`);
      results.push(await runChild(c));
    }
  }

  const rows: string[] = [];
  const head = [
    'measure',
    'batch',
    'PyTorch img/s',
    ...variants.flatMap((v) => [`ours ${label(v)} img/s`, `ratio ${label(v)}`]),
    'peak RSS MB (ours ' + variants.map(label).join('/') + '; torch)',
    'wasm heap MB/worker',
  ];
  rows.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const m of only) {
    const [tm, tmode] = TORCH_KEY[m];
    const t = torch?.records.find((r) => r.model === tm && r.mode === tmode);
    const ours = variants.map(
      (v) => results.find((r) => r.measure === m && r.backend === v.backend && r.workers === v.workers)!,
    );
    const cells = ours.flatMap((r) => [
      r.error ? `failed: ${r.error.slice(0, 60)}` : fmt(r.imgPerS),
      t && !r.error ? fmt(r.imgPerS / t.img_per_s) : '–',
    ]);
    const rss = `${ours.map((r) => fmt(r.peakRssMb, 0)).join('/')}; ${fmt(torch?.peakRssMb, 0)}`;
    const heap = ours.map((r) => r.wasmHeapMb.map((h) => fmt(h, 0)).join('+') || '–').join(' / ');
    rows.push(`| ${m} | ${ours[0].batch} | ${t ? fmt(t.img_per_s) : '–'} | ${cells.join(' | ')} | ${rss} | ${heap} |`);
  }
  const load1 = os.loadavg();
  console.log('\n' + rows.join('\n'));
  console.log(
    `\nimg/s = batch / median step time (forward, backward, gradient sum, SGD and weight broadcast; inference: forward only). ` +
      `PyTorch: ${torch?.records[0]?.framework ?? 'n/a'}, ${torch?.records[0]?.threads ?? '-'} threads; torch peak RSS covers its whole run. ` +
      `Load average before ${load0.map((l) => l.toFixed(2)).join(' ')}, after ${load1.map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} CPUs ` +
      `(ratios are only meaningful on an otherwise idle machine). Wall time ${((Date.now() - started) / 60000).toFixed(1)} min.`,
  );
  for (const r of results) {
    if (r.error) continue;
    const overhead = r.msMedian - r.workerMsMedian;
    console.log(
      `  ${r.measure} ${label(r)}: step ${fmt(r.msMedian / 1000)} s (min ${fmt(r.msMin / 1000)}, max ${fmt(r.msMax / 1000)}), slowest worker ${fmt(r.workerMsMedian / 1000)} s, ` +
        `engine overhead ${fmt(overhead, 0)} ms, CPU ${fmt(r.cpuMsPerImage, 0)} ms/image (sys ${fmt(r.sysMsPerImage, 0)}, ${fmt(r.faultsPerImage, 0)} page faults), micro-batch ${r.microBatch}, start-up ${fmt(r.startupMs / 1000, 1)} s`,
    );
  }
  const jsonOut = flag(flags, 'json');
  if (jsonOut)
    writeFileSync(jsonOut, JSON.stringify({ ours: results, torch, load: { before: load0, after: load1 } }, null, 2));
}

if (require.main === module) {
  const arg = process.argv.find((a) => a.startsWith('--child='));
  if (!arg) {
    run(process.argv.slice(2)).catch((e) => {
      console.error(e);
      process.exit(1);
    });
  } else {
    runCase(JSON.parse(arg.slice('--child='.length)) as CaseSpec).then(
      (r) => {
        console.log(`@@RESULT ${JSON.stringify(r)}`);
        process.exit(0);
      },
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  }
}
