/**
 * manet_ferplus.py: fine-tune the MS-Celeb-1M-pretrained diversified MA-Net on FER+ (100 epochs, StepLR(15, 0.1), batch
 * 32 as the script hard-codes). SGD lr 0.01, momentum 0.9, weight decay 1e-4 on every parameter (PyTorch semantics),
 * StepLR stepped after each epoch; loss 0.6·CE(head 1) + 0.4·CE(head 2) + the patch-spatial, patch-channel and global
 * diversity terms.
 *
 *   pnpm tsx examples/manet_ferplus.ts <dataset root> [Pretrained_on_MSCeleb.pth.tar] [out dir]
 */
import { initBackend } from 'fer-backend';
import { ferPlus } from 'fer-datasets';
import { createModel, loadModel } from 'fer-models/node';
import { manetPlan, trainManet } from 'fer-train';

async function main(): Promise<void> {
  const [root, msceleb, out = 'checkpoint/FER'] = process.argv.slice(2);
  if (!root) throw new Error('Usage: manet_ferplus.ts <dataset root> [MS-Celeb checkpoint] [out]');
  await initBackend();
  const train = await ferPlus({ root, split: 'train', augment: true, cap: 5000, imageSize: 224 });
  const validation = await ferPlus({ root, split: 'valid', imageSize: 224 });
  const test = await ferPlus({ root, split: 'test', imageSize: 224 });
  const result = await trainManet({
    plan: manetPlan({ dataset: 'ferplus' }),
    // The label set comes from the dataset (its class order is the heads' order).
    createModel: () =>
      msceleb
        ? loadModel(msceleb, { labels: train.labels, seed: 0, expect: 'manet' }) // MS-Celeb heads replaced
        : createModel('manet', { labels: train.labels, seed: 0 }),
    train,
    validation,
    test,
    diversity: 'reference',
    beta: 0.6,
    microBatch: 8, // the reference batch accumulated in micro-batches that fit the wasm heap
    outDir: out,
    resume: 'auto', // continue after a crash; start when the folder holds no run
  });
  console.log(`validation accuracy: ${(100 * result.validation!.ensemble.accuracy).toFixed(2)}%`);
  result.model.dispose();
}

void main();
