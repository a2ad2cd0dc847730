/**
 * `pnpm bench manet [--batch=N] [--search] [--max=64]`
 *
 * MA-Net (224x224, 7 classes) training-step memory on wasm: one forward + backward of the reference loss
 * (β·CE1 + (1−β)·CE2 + the three −det diversity terms) per batch size, each in a fresh process because the wasm heap
 * (wasm32, at most 4 GiB) never shrinks and an out-of-memory abort kills the process. Prints the wasm heap after the
 * step, the time, and with `--search` the largest batch that fits (doubling, then bisection to a multiple of 2).
 * The trainer accumulates micro-batches of that size up to the reference batch of 128. Never asserts.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

interface ChildResult {
  ok: boolean;
  batch: number;
  heapMb?: number;
  tensorsMb?: number;
  seconds?: number;
  error?: string;
}

function flag(flags: string[], name: string): string | undefined {
  const f = flags.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  return f === undefined ? undefined : (f.split('=')[1] ?? 'true');
}

/** Runs one training step at `batch` in a child process; a crash (heap exhausted) is a failure. */
function measure(batch: number): ChildResult {
  const tsx = path.join(__dirname, '..', 'node_modules', '.bin', 'tsx');
  const r = spawnSync(tsx, [__filename, '--child', `--batch=${batch}`], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status === 0 && line) return JSON.parse(line.slice(7)) as ChildResult;
  const err = `${r.stderr ?? ''}`
    .split('\n')
    .filter((l) => /abort|memory|RangeError|Error/i.test(l))
    .slice(0, 2)
    .join(' | ');
  return { ok: false, batch, error: err || `exit ${r.status ?? r.signal}` };
}

function show(r: ChildResult): void {
  console.log(
    r.ok
      ? `batch ${String(r.batch).padStart(3)}: fits   wasm heap ${r.heapMb} MB, live tensors at the loss ${r.tensorsMb} MB, step ${r.seconds!.toFixed(1)} s`
      : `batch ${String(r.batch).padStart(3)}: FAILS  ${r.error}`,
  );
}

export async function run(flags: string[]): Promise<void> {
  const single = flag(flags, 'batch');
  if (single !== undefined && flag(flags, 'search') === undefined) {
    show(measure(Number(single)));
    return;
  }
  const max = Number(flag(flags, 'max') ?? 64);
  let lo = 0; // largest known to fit
  let hi = Infinity; // smallest known to fail
  for (let b = Number(single ?? 8); b <= max; b *= 2) {
    const r = measure(b);
    show(r);
    if (!r.ok) {
      hi = b;
      break;
    }
    lo = b;
  }
  while (Number.isFinite(hi) && hi - lo > 2) {
    const mid = Math.round((lo + hi) / 4) * 2;
    const r = measure(mid);
    show(r);
    if (r.ok) lo = mid;
    else hi = mid;
  }
  console.log(
    `largest batch whose forward + backward fits the wasm heap: ${lo}${Number.isFinite(hi) ? ` (fails at ${hi})` : ` (not bounded below --max=${max})`}`,
  );
}

async function child(batch: number): Promise<void> {
  const tf = await import('@tensorflow/tfjs-core');
  const { initBackend } = await import('fer-backend');
  const { crossEntropy } = await import('fer-core');
  const { diversityLoss, manetChannelHeads, manetGlobalHeads, manetSpatialHeads } = await import('fer-diversity-loss');
  const { createManet } = await import('fer-models-manet');
  await initBackend({ backend: 'wasm', quiet: true });
  const manet = createManet({ numClasses: 7, seed: 1 });
  const x = tf.randomUniform([batch, 224, 224, 3], 0, 1, 'float32', 2) as import('@tensorflow/tfjs-core').Tensor4D;
  const labels = tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 7),
    'int32',
  );
  let tensorsMb = 0;
  const t0 = Date.now();
  const { value, grads } = tf.variableGrads(() => {
    const out = manet.forward(x, { training: true });
    const ce = tf.add(
      tf.mul(0.6, crossEntropy(out.logits[0], labels)),
      tf.mul(0.4, crossEntropy(out.logits[1], labels)),
    );
    const div = [
      diversityLoss(manetSpatialHeads(out.heads.localFeatures), { preset: 'reference' }),
      diversityLoss(manetChannelHeads(out.heads.localFeatures), { preset: 'reference' }),
      diversityLoss(manetGlobalHeads(out.heads.globalFeatures), { preset: 'reference' }),
    ];
    tensorsMb = Math.round(tf.memory().numBytes / 2 ** 20);
    return tf.addN([ce, ...div]) as import('@tensorflow/tfjs-core').Scalar;
  }, manet.trainableVariables());
  await value.data();
  const seconds = (Date.now() - t0) / 1000;
  tf.dispose([value, grads as never, x, labels]);
  const b = tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } };
  const heapMb = b.wasm ? Math.round(b.wasm.HEAPU8.buffer.byteLength / 2 ** 20) : -1;
  console.log(`RESULT ${JSON.stringify({ ok: true, batch, heapMb, tensorsMb, seconds })}`);
}

if (require.main === module && process.argv.includes('--child')) {
  const b = Number(flag(process.argv.slice(2), 'batch'));
  child(b).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
