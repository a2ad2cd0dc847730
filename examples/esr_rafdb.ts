/**
 * esr_rafdb.py: fine-tune the AffectNet-trained diversified ESR-9 on RAF-DB (docs/method.md#esr-finetuning): as
 * esr_ferplus, with a new 7-way classifier in every branch, RAF-DB's 96×96 RGB ImageNet-normalised pipeline and DAN's
 * augmentation. As in the reference, the test split selects the model (optimistic; docs/method.md#defect-18).
 *
 *   pnpm tsx examples/esr_rafdb.ts <RAF-DB basic/ root> <AffectNet ESR-9 folder> [out dir]
 */
import { initBackend } from 'fer-backend';
import { RAFDB_LABELS } from 'fer-core';
import { rafDb } from 'fer-datasets';
import { loadModel } from 'fer-models/node';
import { esrFineTunePlan, trainEsr } from 'fer-train';

async function main(): Promise<void> {
  const [root, pretrained, out = 'experiments/RAFDB/Diversified_ESR_9'] = process.argv.slice(2);
  if (!root || !pretrained)
    throw new Error('Usage: esr_rafdb.ts <RAF-DB basic/ root> <AffectNet-trained ESR-9 folder> [out]');
  await initBackend();
  // RAF-DB's labels differ from AffectNet's: loadModel gives every branch a fresh Linear(512 → 7).
  const load = () => loadModel(pretrained, { labels: RAFDB_LABELS, expect: 'esr' });
  const result = await trainEsr({
    plan: esrFineTunePlan({ dataset: 'rafdb', branches: 9, firstEpochs: 100, laterEpochs: 60, batchSize: 32 }),
    createModel: load,
    train: await rafDb({ root, split: 'train', augment: true }),
    validation: await rafDb({ root, split: 'test' }),
    diversity: 'reference',
    channelTermOnSpatial: true,
    microBatch: 8,
    outDir: out,
    resume: 'auto', // continue after a crash; start when the folder holds no run
  });
  console.log(`RAF-DB test accuracy: ${(100 * result.validation!.ensemble.accuracy).toFixed(2)}%`);
  result.model.dispose();
}

void main();
