/**
 * `pnpm bench web [flags]`: ESR-9 inference (desr9-affectnet: 9 branches with CBAM, 96 px) in the web demo, in
 * headless Chromium, beside the same code in Node on wasm. Both time the page's `classifyFaces` (forward, softmax,
 * attention read back) on one batch after a warm-up. Chromium here has no GPU: its WebGL is SwiftShader, i.e. WebGL
 * emulated on the CPU, so the page figure is a software-rendering one. Prints images/s and the load average; never
 * asserts timings. Skipped (with a line) when Debian's Chromium is not installed.
 *
 * Flags: --batch=N (default 8), --iterations=N (timed batches, default 3), --backend=webgl|wasm (the page's; default
 * webgl).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { fileHandler } from 'fer-core/node';
import { createEsr } from 'fer-models-esr';
import type { FerDemoApi } from '../examples/web/src/api';
import { classifyFaces } from '../examples/web/src/model';

declare const window: { ferDemo: FerDemoApi };

/** What is used of puppeteer-core (a dev dependency of examples/web, not of the bench). */
interface Puppeteer {
  launch(opts: object): Promise<{ newPage(): Promise<Tab>; close(): Promise<void> }>;
}
interface Tab {
  goto(url: string, opts: object): Promise<unknown>;
  evaluate<A extends unknown[], T>(fn: (...args: A) => T, ...args: A): Promise<Awaited<T>>;
}

const CHROMIUM = process.env.FER_CHROMIUM ?? '/usr/bin/chromium';
const WEB = path.join(__dirname, '../examples/web');

function flag(args: string[], name: string, fallback: string): string {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
}

export async function run(args: string[]): Promise<void> {
  if (!existsSync(CHROMIUM)) {
    console.log(`web bench skipped: ${CHROMIUM} not found (apt-get install -y chromium)`);
    return;
  }
  const batch = Number(flag(args, 'batch', '8'));
  const iterations = Number(flag(args, 'iterations', '3'));
  const pageBackend = flag(args, 'backend', 'webgl');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fer-web-bench-'));
  try {
    await initBackend({ backend: 'wasm', quiet: true });
    const esr = createEsr('desr9-affectnet', { initialBranches: 9, seed: 1 });
    await esr.save(fileHandler(path.join(dir, 'model')));

    // Node, wasm: the page's own classifyFaces on the same batch.
    const S = esr.config.inputSize;
    const px = new Float32Array(batch * S * S * 3).map((_, i) => (i % 251) / 251);
    const folded = esr.fold(); // as the page classifies
    await classifyFaces(folded, px, batch);
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) await classifyFaces(folded, px, batch);
    const nodeIps = (batch * iterations) / ((performance.now() - t0) / 1000);
    folded.dispose();
    esr.dispose();

    // The page: built and served by the demo's own scripts.
    const { buildPage } = await import(path.join(WEB, 'build.mjs'));
    const { startServer } = await import(path.join(WEB, 'serve.mjs'));
    await buildPage({ quiet: true });
    const server = await startServer({ model: path.join(dir, 'model'), port: 0 });
    // puppeteer-core is the web demo's dev dependency: resolved from there.
    const puppeteer = createRequire(path.join(WEB, 'package.json'))('puppeteer-core') as Puppeteer;
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      protocolTimeout: 1_200_000,
      args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
    });
    let page: { backend: string; imagesPerSecond: number };
    try {
      const tab = await browser.newPage();
      await tab.goto(`${server.url}?backend=${pageBackend}`, { waitUntil: 'load' });
      const problem = await tab.evaluate(() => window.ferDemo.ready);
      if (problem) throw new Error(`the page did not start: ${problem}`);
      page = await tab.evaluate((b: number, n: number) => window.ferDemo.benchmark(b, n), batch, iterations);
    } finally {
      await browser.close();
      await server.close();
    }
    const load = os.loadavg().map((l) => l.toFixed(1));
    console.log(
      `ESR-9 (desr9-affectnet, 9 branches, 96 px) inference, batch ${batch}, ${iterations} timed batches, ` +
        `load average ${load.join(' ')} on ${os.cpus().length} cores:`,
    );
    const label = page.backend === 'webgl' ? 'WebGL (SwiftShader: software, no GPU)' : page.backend;
    console.log(`  headless Chromium, ${label}: ${page.imagesPerSecond.toFixed(2)} images/s`);
    console.log(`  Node, wasm (${tf.getBackend()}): ${nodeIps.toFixed(2)} images/s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
