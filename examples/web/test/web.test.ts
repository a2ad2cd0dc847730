/**
 * The web demo in a real browser: Debian's Chromium, headless, driven by puppeteer-core (nothing downloads a
 * browser). The page is built and served by its own two commands, photos go in through its file picker, and what it
 * shows is compared with Node: `fer predict` (wasm) for labels and probabilities, the model's own forward for the
 * attention maps, fer-models-esr's PyTorch import for a dropped checkpoint, and the training step on cpu and wasm.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Browser, Page } from 'puppeteer-core';
import { initBackend } from 'fer-backend';
import { decodeImage, rawToModelInput } from 'fer-datasets';
import { fileHandler } from 'fer-core/node';
import { createEsr, type EsrEnsemble } from 'fer-models-esr';
import { fromTorchCheckpoint, saveTorchCheckpoint } from 'fer-models-esr/node';
import { DATA_DIR } from 'fer-test-utils';
import type { FerDemoApi } from '../src/api';
import { DEFAULT_STEP, runTrainingStep, type StepResult } from '../src/train-step';

// The page's globals, as the callbacks passed to page.evaluate see them (this file is type-checked without DOM).
declare const window: { ferDemo: FerDemoApi; location: { href: string }; stepInPage?: Promise<StepResult> };
interface CanvasLike {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
}

const CHROMIUM = process.env.FER_CHROMIUM ?? '/usr/bin/chromium';
const WEB = path.resolve(__dirname, '..');
const OUT = process.env.FER_ARTIFACTS_DIR ?? path.join(WEB, 'out');
const PHOTOS = [
  ...['angry', 'disgusted', 'fearful', 'happy', 'neutral', 'sad', 'surprised'].map((n) =>
    path.join(DATA_DIR, 'faceapi-expression/images', `${n}.jpg`),
  ),
  ...['jackie', 'sheldon', 'surprise'].map((n) => path.join(DATA_DIR, 'esr9-affectnet/samples', `${n}.jpg`)),
];

const missing = !existsSync(CHROMIUM)
  ? `${CHROMIUM} not found (apt-get install -y chromium)`
  : !PHOTOS.every((p) => existsSync(p))
    ? `sample photos not found under ${DATA_DIR} (../shared/data)`
    : null;
const describeBrowser = missing ? describe.skip : describe;
if (missing) console.info(`web demo tests skipped: ${missing}`);

/** Runs `node ...args` in examples/web; resolves with the child once `ready` matches its stdout. */
function start(args: string[], ready: RegExp): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: WEB, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(ready);
      if (m) resolve({ child, match: m });
    });
    child.stderr!.on('data', (d) => (err += d));
    child.on('exit', (code) => reject(new Error(`node ${args.join(' ')} exited with ${code}: ${err || out}`)));
  });
}

/** Max |a − b| over two equal-length arrays. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

interface NodeFace {
  box: PageFace['box'];
  emotion: string;
  votes: string[];
  probabilities: Record<string, number>;
}

/** `fer predict --json` on the photos, as a user runs it (tsx from sources, wasm backend). */
async function ferPredict(model: string, photos: string[]): Promise<NodeFace[][]> {
  const cli = path.resolve(WEB, '../../packages/fer-train/src/cli/main.ts');
  const env = { ...process.env, FER_BACKEND: 'wasm' };
  const lines: string = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, '--json', 'predict', '--model', model, ...photos], {
      cwd: path.resolve(WEB, '../..'),
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`fer predict exited with ${code}: ${err}`)),
    );
  });
  const byImage = new Map<string, NodeFace[]>(photos.map((p) => [p, []]));
  for (const line of lines.split('\n').filter(Boolean)) {
    const r = JSON.parse(line);
    if (r.type === 'prediction' && r.face) byImage.get(r.image)!.push(r);
  }
  return photos.map((p) => byImage.get(p)!);
}

interface PageFace {
  box: { left: number; top: number; width: number; height: number; score: number } | null;
  emotion: string;
  votes: string[];
  probabilities: Record<string, number>;
  branchProbabilities: number[][];
  attention: number[][][];
}

describeBrowser('web demo in headless Chromium', () => {
  let dir: string;
  let browser: Browser;
  let page: Page;
  let server: ChildProcess;
  const pageProblems: string[] = [];
  let esr: EsrEnsemble;
  let nodePredictions: Promise<NodeFace[][]>;

  beforeAll(async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    dir = mkdtempSync(path.join(os.tmpdir(), 'fer-web-'));
    mkdirSync(OUT, { recursive: true });
    // A seeded 3-branch CBAM ESR made here; its classifiers are scaled ×30 so that the probabilities are far
    // from uniform and the branches disagree (a comparison of near-uniform outputs would prove little). 72 px, not
    // 96: the comparisons hold at any size, SwiftShader (CPU WebGL) spends most of this test in the model's convs,
    // and 72 px still gives a 3×3 attention map per branch (64 px: 2×2).
    esr = createEsr({ base: 'desr9-affectnet', inputSize: 72 }, { initialBranches: 3, seed: 5 });
    for (let k = 1; k <= 3; k++) {
      const fc = esr.branch(k).getLayer('fc');
      const [w, b] = fc.getWeights();
      fc.setWeights([tf.mul(w, 30), tf.mul(b, 30)]);
    }
    await esr.save(fileHandler(path.join(dir, 'model')));
    await saveTorchCheckpoint(esr, path.join(dir, 'torch'));

    nodePredictions = ferPredict(path.join(dir, 'model'), PHOTOS);
    nodePredictions.catch(() => undefined); // awaited (and reported) by its test
    const puppeteer = await import('puppeteer-core');
    // The page's build and the browser's start overlap (the build is the demo's own command, run once).
    [browser] = await Promise.all([
      puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        // One training step on SwiftShader takes minutes when the machine is busy (puppeteer's default is 3).
        protocolTimeout: 1_200_000,
        // SwiftShader is Chromium's CPU WebGL; recent versions ask for the flag to use it.
        args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
      }),
      start(['build.mjs'], /built .*\n/),
    ]);
    const served = await start(['serve.mjs', '--port', '0', '--model', path.join(dir, 'model')], /serving (\S+)/);
    server = served.child;
    page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 1000 });
    page.on('console', (m) => {
      if (m.type() === 'error') pageProblems.push(`console.error: ${m.text()}`);
    });
    page.on('pageerror', (e) => pageProblems.push(`page error: ${(e as Error).message}`));
    await page.goto(served.match[1], { waitUntil: 'load' });
    expect(await page.evaluate(() => window.ferDemo.ready)).toBeNull();
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    server?.kill();
    esr?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    // Console errors and unhandled rejections in the page fail the test that caused them.
    const problems = pageProblems.splice(0);
    expect(problems).toEqual([]);
  });

  /** Puts a file into one of the page's file inputs and waits until the page has handled it. */
  async function upload(selector: string, files: string[], done: () => boolean): Promise<void> {
    const input = await page.$(selector);
    await input!.uploadFile(...files);
    await page.waitForFunction(done, { timeout: 600_000 });
    const s = await page.evaluate(() => window.ferDemo.status());
    if (s.error) throw new Error(`the page reported: ${s.text}`);
  }

  it('picks WebGL (no WebGPU adapter here) with the project selection', async () => {
    const b = await page.evaluate(() => window.ferDemo.backend());
    expect(b?.name).toBe('webgl');
    expect(b?.skipped.map((s) => s.name)).toEqual(['webgpu']);
  });

  it("shows fer predict's labels and probabilities for the sample photos, and one attention heatmap per branch", async () => {
    const node = await nodePredictions;
    let worstProb = 0;
    let worstBox = 0;
    let faces = 0;
    for (const [i, photo] of PHOTOS.entries()) {
      const before = await page.evaluate(() => window.ferDemo.analyses());
      await upload(
        '#photo',
        [photo],
        new Function(`return window.ferDemo.analyses() > ${before} || window.ferDemo.status().error`) as () => boolean,
      );
      const got = (await page.evaluate(() => window.ferDemo.lastFaces())) as PageFace[];
      const want = node[i];
      expect([path.basename(photo), got.length]).toEqual([path.basename(photo), want.length]);
      got.forEach((g, j) => {
        const w = want[j];
        faces++;
        for (const k of ['left', 'top', 'width', 'height'] as const)
          worstBox = Math.max(worstBox, Math.abs(g.box![k] - w.box![k]));
        expect([path.basename(photo), g.emotion, g.votes]).toEqual([path.basename(photo), w.emotion, w.votes]);
        const labels = Object.keys(w.probabilities);
        worstProb = Math.max(
          worstProb,
          maxDiff(
            labels.map((l) => g.probabilities[l]),
            labels.map((l) => w.probabilities[l]),
          ),
        );
      });
    }
    console.info(
      `web demo: ${faces} faces in ${PHOTOS.length} photos; page (WebGL) vs fer predict (wasm): max box difference ${worstBox} px, max probability difference ${worstProb.toExponential(2)}`,
    );
    expect(faces).toBeGreaterThanOrEqual(PHOTOS.length);
    // Same pixels (Chromium's and sharp's JPEG decoders agree byte for byte), same detector boxes on WebGL and wasm,
    // then float32 rounding only: measured 0 px and 6e-8 here.
    expect(worstBox).toBe(0);
    expect(worstProb).toBeLessThan(1e-5);

    // The heatmaps of the last photo: one canvas per branch, each non-uniform, and not all alike.
    const stats = await page.$$eval('#branches canvas', (cs) =>
      (cs as unknown as CanvasLike[]).map((c) => {
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let s = 0;
        let s2 = 0;
        for (let i = 0; i < d.length; i += 4) {
          const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
          s += v;
          s2 += v * v;
        }
        const n = d.length / 4;
        return { w: c.width, std: Math.sqrt(s2 / n - (s / n) ** 2), mean: s / n };
      }),
    );
    expect(stats).toHaveLength(3);
    for (const s of stats) expect(s.std).toBeGreaterThan(5);
    await page.screenshot({ path: path.join(OUT, 'web-demo.png'), fullPage: true });
  });

  it("the page's forward on Node's face crops equals Node's (probabilities and CBAM attention)", async () => {
    const S = esr.config.inputSize;
    const crops = [];
    // Two faces: a batch (as the page's multi-face path runs it) at half the cost of four on SwiftShader.
    for (const photo of PHOTOS.slice(0, 2)) {
      const raw = await decodeImage(photo);
      crops.push(await rawToModelInput(raw, { size: S, channelOrder: esr.config.colorOrder }));
    }
    const px = new Float32Array(crops.length * S * S * 3);
    crops.forEach((c, i) => px.set(c.data, i * S * S * 3));
    const got = (await page.evaluate(
      (data: number[], n: number) => window.ferDemo.classifyPixels(new Float32Array(data), n),
      Array.from(px),
      crops.length,
    )) as PageFace[];
    const out = esr.forward(tf.tensor4d(px, [crops.length, S, S, 3]), { training: false });
    const probs = tf.tidy(() => tf.stack(out.logits.map((l) => tf.softmax(l))).arraySync() as number[][][]);
    const att = out.heads.spatialAttention.arraySync() as number[][][][];
    tf.dispose([...out.logits, ...Object.values(out.heads)]);
    let dp = 0;
    let da = 0;
    got.forEach((g, i) => {
      g.branchProbabilities.forEach((p, k) => (dp = Math.max(dp, maxDiff(p, probs[k][i]))));
      g.attention.forEach((a, k) => (da = Math.max(da, maxDiff(a.flat(), att[k][i].flat()))));
    });
    console.info(
      `web demo: same crops, WebGL vs wasm: max probability difference ${dp.toExponential(2)}, attention ${da.toExponential(2)}`,
    );
    expect(dp).toBeLessThan(1e-5); // measured 9e-8
    expect(da).toBeLessThan(1e-5);
  });

  it('converts a dropped PyTorch checkpoint in the page and predicts as fer-models-esr does in Node', async () => {
    const files = readdirSync(path.join(dir, 'torch')).map((f) => path.join(dir, 'torch', f));
    await upload(
      '#torch',
      files,
      () => window.ferDemo.modelSource().startsWith('PyTorch') || window.ferDemo.status().error,
    );
    const imported = await fromTorchCheckpoint(path.join(dir, 'torch'));
    try {
      const S = imported.config.inputSize;
      const crop = await rawToModelInput(await decodeImage(PHOTOS[3]), {
        size: S,
        channelOrder: imported.config.colorOrder,
      });
      const got = (await page.evaluate(
        (data: number[]) => window.ferDemo.classifyPixels(new Float32Array(data), 1),
        Array.from(crop.data),
      )) as PageFace[];
      const want = tf.tidy(() => {
        const r = imported.forward(tf.tensor4d(crop.data, [1, S, S, 3]), { training: false });
        return r.logits.map((l) => Array.from(tf.softmax(l).dataSync()));
      });
      let d = 0;
      got[0].branchProbabilities.forEach((p, k) => (d = Math.max(d, maxDiff(p, want[k]))));
      expect(d).toBeLessThan(1e-5);
    } finally {
      imported.dispose();
      await page.evaluate(() => window.ferDemo.loadModelUrl(new URL('model', window.location.href).href));
    }
  });

  it('one ESR training step on WebGL gives the loss and gradients of Node wasm', async () => {
    // The page's step starts on its own (after this evaluate returns), so Node's step below runs meanwhile.
    await page.evaluate(() => {
      window.stepInPage = new Promise((resolve) => setTimeout(resolve, 0)).then(() => window.ferDemo.trainingStep());
      window.stepInPage.catch(() => undefined); // awaited (and reported) below
    });
    // Node's wasm path (the project's default without native backends); cpu, pure JS, costs minutes per step here.
    await initBackend({ backend: 'wasm', quiet: true });
    const node = await runTrainingStep(DEFAULT_STEP);
    const fromPage = await page.evaluate(async () => {
      const r = await window.stepInPage!;
      // Float32Arrays do not survive evaluate's JSON: send them as base64.
      const b64 = (a: Float32Array) => {
        const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
        let s = '';
        for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
        return btoa(s);
      };
      return { ...r, grads: Object.fromEntries(Object.entries(r.grads).map(([k, g]) => [k, b64(g)])) };
    });
    const webgl: StepResult = {
      ...fromPage,
      grads: Object.fromEntries(
        Object.entries(fromPage.grads).map(([k, s]) => {
          const b = Buffer.from(s, 'base64');
          return [k, new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4)];
        }),
      ),
    };
    expect(webgl.backend).toBe('webgl');
    expect(webgl.leaked).toBe(0);
    expect(node.leaked).toBe(0);
    // Gradients: max |Δ| relative to the largest gradient entry of the model (G), and per variable relative to
    // its own largest entry for every variable whose gradient is not ~0. (The conv biases that feed a train-mode
    // batch norm have an exactly-zero gradient; both backends return float32 rounding noise there.)
    expect(Object.keys(webgl.grads).sort()).toEqual(Object.keys(node.grads).sort());
    const amax = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const G = Math.max(...Object.values(node.grads).map(amax));
    let global = 0;
    let worst = 0;
    let worstKey = '';
    let zeroGrad = 0;
    for (const [k, g] of Object.entries(node.grads)) {
      const d = maxDiff(webgl.grads[k], g);
      global = Math.max(global, d / G);
      const scale = amax(g);
      if (scale < 1e-4 * G) {
        zeroGrad++;
        continue;
      }
      if (d / scale > worst) [worst, worstKey] = [d / scale, k];
    }
    const dl = Math.abs(webgl.loss - node.loss) / Math.abs(node.loss);
    console.info(
      `web training step, WebGL vs Node wasm: loss ${webgl.loss.toFixed(6)} vs ${node.loss.toFixed(6)} (rel ${dl.toExponential(2)}), gradients: max |Δ|/G ${global.toExponential(2)}, worst per-variable rel. ${worst.toExponential(2)} (${worstKey}; ${zeroGrad} ~0 gradients left out), loss after the step ${webgl.lossAfter.toFixed(6)} vs ${node.lossAfter.toFixed(6)}`,
    );
    expect(dl).toBeLessThan(1e-4);
    for (const [k, v] of Object.entries(node.terms))
      expect(Math.abs(webgl.terms[k] - v)).toBeLessThan(1e-3 * Math.max(1, Math.abs(v)));
    // Measured: loss 4e-7 relative, |Δ|/G 9.5e-4, per variable 3.9e-3: float32 sums in another order (WebGL's packed
    // shaders vs XNNPACK) through a deep backward pass with train-mode batch norm over a batch of 2.
    expect(global).toBeLessThan(3e-3);
    expect(worst).toBeLessThan(2e-2);
    expect(Math.abs(webgl.lossAfter - node.lossAfter) / Math.abs(node.lossAfter)).toBeLessThan(1e-4);
  });
});
