/**
 * manet_rafdb.py: fine-tune the MS-Celeb-1M-pretrained diversified MA-Net on RAF-DB (100 epochs, StepLR(15, 0.1), batch
 * 128; the test split selects the model, as the reference). SGD lr 0.01, momentum 0.9, weight decay 1e-4 on every
 * parameter (PyTorch semantics), StepLR stepped after each epoch; loss 0.6·CE(head 1) + 0.4·CE(head 2) + the
 * patch-spatial, patch-channel and global diversity terms.
 *
 *   pnpm tsx examples/manet_rafdb.ts <dataset root> [Pretrained_on_MSCeleb.pth.tar] [out dir]
 */
import { initBackend } from 'fer-backend';
import { rafDb } from 'fer-datasets';
import { createModel, loadModel } from 'fer-models/node';
import { manetPlan, trainManet } from 'fer-train';

async function main(): Promise<void> {
  const [root, msceleb, out = 'checkpoint/RAFDB'] = process.argv.slice(2);
  if (!root) throw new Error('Usage: manet_rafdb.ts <dataset root> [MS-Celeb checkpoint] [out]');
  await initBackend();
  const train = await rafDb({ root, split: 'train', augment: true, imageSize: 224 });
  const validation = await rafDb({ root, split: 'test', imageSize: 224 });
  const result = await trainManet({
    plan: manetPlan({ dataset: 'rafdb' }),
    // The label set comes from the dataset (its class order is the heads' order).
    createModel: () =>
      msceleb
        ? loadModel(msceleb, { labels: train.labels, seed: 0, expect: 'manet' }) // MS-Celeb heads replaced
        : createModel('manet', { labels: train.labels, seed: 0 }),
    train,
    validation,
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
