/**
 * `pnpm bench torch [--repeat=5]`
 *
 * fer-torch throughput on the reference checkpoints in ../shared: reading a torch.save zip (with and without CRC-32
 * checks), the legacy ESR-9 base, safetensors, and writing a torch.save zip and safetensors. Prints MB/s (median of
 * the repeats) and the process's peak RSS. Never asserts timings.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { readSafetensors, readStateDict, writeTorchStateDict } from 'fer-torch/node';
import { serializeSafetensors, serializeTorchStateDict } from 'fer-torch';

const SHARED = process.env.FER_SHARED_DIR ?? path.resolve(__dirname, '../../shared');
const BRANCH_PT = path.join(SHARED, 'reference/esr_cbam/torch_checkpoint/3/Net-Branch_1.pt');
const BRANCH_ST = path.join(SHARED, 'reference/esr_cbam/weights_init/branch_1.safetensors');
const LEGACY = path.join(SHARED, 'data/esr9-affectnet/weights/Net-Base-Shared_Representations.pt');

async function median(repeat: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

export async function run(args: string[]): Promise<void> {
  const repeat = Number(args.find((a) => a.startsWith('--repeat='))?.split('=')[1] ?? 5);
  if (!existsSync(BRANCH_PT)) {
    console.log(`skipped: ${BRANCH_PT} not found (fixtures live in ../shared)`);
    return;
  }
  const mb = (file: string) => statSync(file).size / 1e6;
  const row = (what: string, megabytes: number, ms: number) =>
    console.log(
      `${what.padEnd(44)} ${megabytes.toFixed(2).padStart(7)} MB  ${ms.toFixed(1).padStart(8)} ms  ${(megabytes / (ms / 1000)).toFixed(0).padStart(6)} MB/s`,
    );

  row('read torch.save zip (CRC-32 checked)', mb(BRANCH_PT), await median(repeat, () => readStateDict(BRANCH_PT)));
  row(
    'read torch.save zip (verifyCrc: false)',
    mb(BRANCH_PT),
    await median(repeat, () => readStateDict(BRANCH_PT, { verifyCrc: false })),
  );
  if (existsSync(LEGACY))
    row('read legacy torch.save (ESR-9 base)', mb(LEGACY), await median(repeat, () => readStateDict(LEGACY)));
  row('read safetensors', mb(BRANCH_ST), await median(repeat, () => readSafetensors(BRANCH_ST)));
  const sd = await readStateDict(BRANCH_PT);
  row('serialize torch.save zip (in memory)', mb(BRANCH_PT), await median(repeat, () => serializeTorchStateDict(sd)));
  row('serialize safetensors (in memory)', mb(BRANCH_ST), await median(repeat, () => serializeSafetensors(sd)));
  const dir = mkdtempSync(path.join(tmpdir(), 'fer-torch-bench-'));
  try {
    row(
      'write torch.save zip (atomic, to tmp)',
      mb(BRANCH_PT),
      await median(repeat, () => writeTorchStateDict(path.join(dir, 'w.pt'), sd)),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
}
