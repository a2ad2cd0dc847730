/**
 * esr_ferplus.py: fine-tune the AffectNet-trained diversified ESR-9 on FER+ (docs/method.md#esr-finetuning): stage k
 * trains the CE of branches 1..k (branch k at 0.1, others and the base at 0.02; base and branch 1 at 0.1 in stage 1),
 * 100 then 60 epochs, StepLR(10, 0.75) at epoch start, best snapshot reloaded between stages. Model selection on
 * FER2013Valid, final report on FER2013Test.
 *
 *   pnpm tsx examples/esr_ferplus.ts <FER+ root> <AffectNet ESR-9 folder> [out dir]
 */
import { initBackend } from 'fer-backend';
import { ferPlus } from 'fer-datasets';
import { loadModel } from 'fer-models/node';
import { esrFineTunePlan, trainEsr } from 'fer-train';

async function main(): Promise<void> {
  const [root, pretrained, out = 'experiments/FER_plus/Diversified_ESR_9'] = process.argv.slice(2);
  if (!root || !pretrained) throw new Error('Usage: esr_ferplus.ts <FER+ root> <AffectNet-trained ESR-9 folder> [out]');
  await initBackend();
  // A saved tfjs folder or the reference's checkpoint folder, detected by loadModel.
  const load = () => loadModel(pretrained, { expect: 'esr' });
  const result = await trainEsr({
    plan: esrFineTunePlan({ dataset: 'ferplus', branches: 9, firstEpochs: 100, laterEpochs: 60, batchSize: 32 }),
    createModel: load, // AffectNet order, classifier kept
    train: await ferPlus({ root, split: 'train', augment: true, cap: 5000 }),
    validation: await ferPlus({ root, split: 'valid' }),
    test: await ferPlus({ root, split: 'test' }),
    diversity: 'reference',
    channelTermOnSpatial: true, // the script's "channel" term on the spatial maps (docs/method.md#defect-5)
    microBatch: 8,
    outDir: out,
    resume: 'auto', // continue after a crash; start when the folder holds no run
  });
  console.log(`FER+ test accuracy: ${(100 * result.test!.ensemble.accuracy).toFixed(2)}%`);
  result.model.dispose();
}

void main();
