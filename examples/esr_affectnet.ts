/**
 * esr_affectnet.py: grow a diversified ESR-9 on AffectNet (docs/method.md#esr-affectnet): 50 epochs for branch 1, then
 * 20 per new branch; base/newest/older rates 0.01/0.1/0.01 after stage 1; StepLR(10, 0.5) at epoch start; the best
 * snapshot of each stage reloaded before a branch is added; a fresh ≤5000-per-class subset per stage.
 *
 *   pnpm tsx examples/esr_affectnet.ts <pre-processed AffectNet root> [out dir]
 */
import { initBackend } from 'fer-backend';
import { AFFECTNET_LABELS } from 'fer-core';
import { affectNet } from 'fer-datasets';
import { createEsr } from 'fer-models-esr';
import { esrGrowthPlan, trainEsr } from 'fer-train';

async function main(): Promise<void> {
  const [root, out = 'experiments/AffectNet_Discrete/Diversified_ESR9'] = process.argv.slice(2);
  if (!root) throw new Error('Usage: esr_affectnet.ts <AffectNet root with Training_Labeled/ and Validation/> [out]');
  await initBackend();
  const result = await trainEsr({
    plan: esrGrowthPlan({ branches: 9, firstEpochs: 50, laterEpochs: 20, batchSize: 32 }),
    createModel: () =>
      createEsr({ base: 'desr9-affectnet', labels: AFFECTNET_LABELS }, { initialBranches: 1, seed: 0 }),
    train: await affectNet({ root, split: 'train', augment: true, cap: 5000 }),
    validation: await affectNet({ root, split: 'validation', cap: Infinity }),
    diversity: 'reference', // the paper's −det with a zero diagonal; 'dpp' for the corrected loss
    microBatch: 16, // batch 32 accumulated from two micro-batches (wasm heap)
    outDir: out,
    resume: 'auto', // continue after a crash; start when the folder holds no run
  });
  console.log(`validation accuracy of the ESR-9 ensemble: ${(100 * result.validation!.ensemble.accuracy).toFixed(2)}%`);
  result.model.dispose();
}

void main();
