/**
 * `pnpm bench backend [--batch=16] [--steps=2] [--forward-batch=32] [--no-cpu] [--cpu-train] [--profile |
 * --profile-calls]`
 *
 * An ESR-shaped network (base + one branch, BN + ReLU after every conv, 96x96x3 input) built from plain tfjs ops:
 *   base:   conv5x5 3->64, conv3x3 64->128, pool, conv3x3 128->128, conv3x3 128->128, pool   [B, 20, 20, 128]
 *   branch: conv3x3 128->128, conv3x3 128->256, pool, conv3x3 256->256, conv3x3 256->512 same  [B, 6, 6, 512]
 *           global average pool, dense 512->8
 * Prints forward and training-step (forward + backward + SGD update) images/s on wasm, and on cpu for a tiny batch,
 * with the process's peak RSS and the wasm heap size. `--profile` adds a per-kernel time table of one wasm
 * training step. Never asserts timings.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';

const CONVS: { k: number; ci: number; co: number; pad: 'valid' | 'same'; poolAfter: boolean }[] = [
  { k: 5, ci: 3, co: 64, pad: 'valid', poolAfter: false },
  { k: 3, ci: 64, co: 128, pad: 'valid', poolAfter: true },
  { k: 3, ci: 128, co: 128, pad: 'valid', poolAfter: false },
  { k: 3, ci: 128, co: 128, pad: 'valid', poolAfter: true },
  { k: 3, ci: 128, co: 128, pad: 'valid', poolAfter: false },
  { k: 3, ci: 128, co: 256, pad: 'valid', poolAfter: true },
  { k: 3, ci: 256, co: 256, pad: 'valid', poolAfter: false },
  { k: 3, ci: 256, co: 512, pad: 'same', poolAfter: false },
];
const CLASSES = 8;

interface EsrShaped {
  vars: tf.Variable[];
  logits(x: tf.Tensor4D): tf.Tensor2D;
  dispose(): void;
}

function buildNet(): EsrShaped {
  const vars: tf.Variable[] = [];
  const convs = CONVS.map((c) =>
    tf.tidy(() => {
      const w = tf.variable(
        tf.randomNormal([c.k, c.k, c.ci, c.co], 0, Math.sqrt(2 / (c.k * c.k * c.ci)), 'float32', 1),
      );
      const gamma = tf.variable(tf.ones([c.co]));
      const beta = tf.variable(tf.zeros([c.co]));
      vars.push(w, gamma, beta);
      return { ...c, w, gamma, beta };
    }),
  );
  const dense = tf.tidy(() => {
    const w = tf.variable(tf.randomNormal([512, CLASSES], 0, Math.sqrt(1 / 512), 'float32', 2));
    const b = tf.variable(tf.zeros([CLASSES]));
    vars.push(w, b);
    return { w, b };
  });
  return {
    vars,
    logits: (x) =>
      tf.tidy(() => {
        let h = x;
        for (const c of convs) {
          h = tf.conv2d(h, c.w as tf.Tensor4D, 1, c.pad);
          const m = tf.moments(h, [0, 1, 2]);
          h = tf.relu(tf.batchNorm(h, m.mean, m.variance, c.beta, c.gamma, 1e-5)) as tf.Tensor4D;
          if (c.poolAfter) h = tf.maxPool(h, 2, 2, 'valid');
        }
        return tf.add(tf.matMul(tf.mean(h, [1, 2]), dense.w), dense.b) as tf.Tensor2D;
      }),
    dispose: () => tf.dispose(vars),
  };
}

function flag(flags: string[], name: string, dflt: number): number {
  const f = flags.find((a) => a.startsWith(`--${name}=`));
  return f ? Number(f.split('=')[1]) : dflt;
}

const peakRssMb = () => (process.resourceUsage().maxRSS / 1024).toFixed(0);
function wasmHeapMb(): string {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } };
  return b.wasm ? (b.wasm.HEAPU8.buffer.byteLength / 2 ** 20).toFixed(0) : '-';
}

/** Wall and process-CPU seconds per call. CPU time is the figure to compare on a shared machine. */
async function timeIt(reps: number, fn: () => Promise<void>): Promise<{ wall: number; cpu: number }> {
  await fn(); // warm-up: creates XNNPACK operators, grows the heap
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < reps; i++) await fn();
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / reps / 1000, cpu: (c.user + c.system) / 1e6 / reps };
}

function report(what: string, batch: number, t: { wall: number; cpu: number }): void {
  console.log(
    `${what} batch ${String(batch).padStart(2)}: ${(batch / t.cpu).toFixed(2)} img/s per CPU-second (${t.cpu.toFixed(2)} CPU-s), ` +
      `${(batch / t.wall).toFixed(2)} img/s wall (${t.wall.toFixed(2)} s)  [peak RSS ${peakRssMb()} MB, wasm heap ${wasmHeapMb()} MB]`,
  );
}

function data(batch: number) {
  return tf.tidy(() => ({
    x: tf.randomUniform([batch, 96, 96, 3], 0, 1, 'float32', 3) as tf.Tensor4D,
    y: tf.oneHot(
      tf.tensor1d(
        Array.from({ length: batch }, (_, i) => i % CLASSES),
        'int32',
      ),
      CLASSES,
    ),
  }));
}

async function measure(backend: 'wasm' | 'cpu', fwdBatch: number, trainBatch: number, steps: number, doTrain: boolean) {
  await initBackend({ backend, quiet: true });
  const net = buildNet();
  const opt = tf.train.sgd(0.01);
  try {
    const f = data(fwdBatch);
    const fwd = await timeIt(steps, async () => {
      const out = net.logits(f.x);
      await out.data();
      out.dispose();
    });
    tf.dispose([f.x, f.y]);
    report(`${backend.padEnd(4)} forward   `, fwdBatch, fwd);
    if (!doTrain) return;
    const t = data(trainBatch);
    const step = await timeIt(steps, async () => {
      const cost = opt.minimize(
        () => tf.losses.softmaxCrossEntropy(t.y, net.logits(t.x)) as tf.Scalar,
        true,
        net.vars,
      )!;
      await cost.data();
      cost.dispose();
    });
    tf.dispose([t.x, t.y]);
    report(`${backend.padEnd(4)} train step`, trainBatch, step);
  } finally {
    opt.dispose();
    net.dispose();
  }
}

/**
 * One wasm training step with every wasm kernel wrapped to record process-CPU time, exclusive of nested kernels
 * (fer-backend's composed kernels call other kernels).
 */
async function profileStep(batch: number, perCall: boolean): Promise<void> {
  await initBackend({ backend: 'wasm', quiet: true });
  const net = buildNet();
  const opt = tf.train.sgd(0.01);
  const t = data(batch);
  const step = () => {
    const cost = opt.minimize(() => tf.losses.softmaxCrossEntropy(t.y, net.logits(t.x)) as tf.Scalar, true, net.vars)!;
    cost.dataSync();
    cost.dispose();
  };
  step();
  const rows = new Map<string, { us: number; n: number }>();
  const stack: number[] = []; // child time accumulated per open kernel
  const calls: string[] = [];
  const detailed = new Set(['Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad', 'BatchMatMul']);
  const originals = tf.getKernelsForBackend('wasm').map((k) => ({ ...k }));
  for (const k of originals) {
    const inner = k.kernelFunc;
    tf.unregisterKernel(k.kernelName, 'wasm');
    tf.registerKernel({
      ...k,
      kernelFunc: (args) => {
        const c0 = process.cpuUsage();
        stack.push(0);
        try {
          return inner(args);
        } finally {
          const c = process.cpuUsage(c0);
          const total = c.user + c.system;
          const children = stack.pop()!;
          if (stack.length) stack[stack.length - 1] += total;
          const r = rows.get(k.kernelName) ?? { us: 0, n: 0 };
          r.us += total - children;
          r.n += 1;
          rows.set(k.kernelName, r);
          if (perCall && stack.length === 0 && detailed.has(k.kernelName)) {
            const shapes = Object.values(args.inputs).map((t) => `[${(t as tf.TensorInfo).shape.join(',')}]`);
            calls.push(`  ${(total / 1000).toFixed(0).padStart(6)} ms  ${k.kernelName} ${shapes.join(' ')}`);
          }
        }
      },
    });
  }
  const c0 = process.cpuUsage();
  step();
  const c = process.cpuUsage(c0);
  for (const k of originals) {
    tf.unregisterKernel(k.kernelName, 'wasm');
    tf.registerKernel(k);
  }
  const totalMs = (c.user + c.system) / 1000;
  const kernelMs = [...rows.values()].reduce((t, r) => t + r.us / 1000, 0);
  const sorted = [...rows.entries()].sort((a, b) => b[1].us - a[1].us).slice(0, 22);
  console.log(
    `wasm training-step profile, batch ${batch}: ${totalMs.toFixed(0)} CPU-ms in all, ${kernelMs.toFixed(0)} in kernels; per kernel, exclusive of nested kernels:`,
  );
  for (const [name, r] of sorted) {
    console.log(
      `  ${name.padEnd(24)} ${(r.us / 1000).toFixed(0).padStart(7)} ms ${((100 * r.us) / 1000 / totalMs).toFixed(1).padStart(5)}%  x${r.n}`,
    );
  }
  if (perCall) console.log(`top-level calls (inclusive CPU time):\n${calls.join('\n')}`);
  tf.dispose([t.x, t.y]);
  opt.dispose();
  net.dispose();
}

export async function run(flags: string[]): Promise<void> {
  const batch = flag(flags, 'batch', 16);
  const fwdBatch = flag(flags, 'forward-batch', 32);
  const steps = flag(flags, 'steps', 2);
  if (flags.includes('--profile') || flags.includes('--profile-calls')) {
    await profileStep(batch, flags.includes('--profile-calls'));
    return;
  }
  console.log(`ESR-shaped net (base + 1 branch, 96x96x3): ${steps} timed repetitions after one warm-up`);
  await measure('wasm', fwdBatch, batch, steps, true);
  if (!flags.includes('--no-cpu')) {
    // The pure-JS backend is ~30x slower than wasm, and its stock Conv2DBackpropFilter is a scalar loop
    // (minutes per image): training on cpu runs only with --cpu-train.
    await measure('cpu', 1, 1, 1, flags.includes('--cpu-train'));
  }
}
