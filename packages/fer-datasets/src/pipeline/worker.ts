/**
 * Worker-thread entry: receives `{ id, items }` jobs, answers `{ id, images, errors }` with the pixel buffer
 * transferred (not copied). Built to `dist/worker.js` / `dist/worker.mjs`; from TS sources it is loaded through
 * tsx's require hook (see executor.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { processJob, type ItemSpec, type PipelineConfig } from './process';

const cfg = (workerData as { config: PipelineConfig }).config;
const port = parentPort;
if (!port) throw new Error('fer-datasets worker must run in a worker thread.');

port.on('message', (msg: { id: number; items: ItemSpec[] }) => {
  processJob(msg.items, cfg).then(
    (r) => port.postMessage({ id: msg.id, images: r.images, errors: r.errors }, [r.images.buffer as ArrayBuffer]),
    (e) => port.postMessage({ id: msg.id, fatal: (e as Error).stack ?? String(e) }),
  );
});
